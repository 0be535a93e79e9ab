"""`classink sheets print`: per-student exam booklets on dot-pattern paper."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from central.sheets import PREVIEW_DPI


def register(subparsers: argparse._SubParsersAction) -> None:
    sheets = subparsers.add_parser("sheets", help="printable exam booklets with the dot pattern")
    commands = sheets.add_subparsers(dest="sheets_command", required=True, metavar="SUBCOMMAND")
    cmd = commands.add_parser(
        "print",
        help="one booklet per student: a PDF, its manifest, and optionally a PNG preview",
        description="Every student gets the template's pages at their own booklet number "
        "(note), each page carrying its own patch of the dot pattern at true size. The "
        "manifest maps every printed page address back to its student "
        "(protocol_specs/lattice.md).",
    )
    cmd.add_argument("--template", type=Path, required=True, help="exam template JSON")
    cmd.add_argument(
        "--students", type=Path, required=True, help="CSV with the header student_id,name"
    )
    cmd.add_argument("--out", type=Path, required=True, help="booklet PDF to write")
    cmd.add_argument(
        "--first-note",
        type=int,
        help="booklet number of the first student; the others follow (default: the template's)",
    )
    cmd.add_argument(
        "--manifest", type=Path, help="manifest JSON to write (default: OUT with .manifest.json)"
    )
    cmd.add_argument("--preview", type=Path, help="also render one page to this PNG")
    cmd.add_argument(
        "--preview-page", type=int, default=1, help="PDF page to preview, from 1 (default 1)"
    )
    cmd.add_argument(
        "--preview-dpi",
        type=int,
        default=PREVIEW_DPI,
        help=f"preview resolution (default {PREVIEW_DPI} dpi)",
    )
    cmd.add_argument(
        "--font", type=Path, help="TrueType font for names and prompts Helvetica cannot print"
    )
    cmd.set_defaults(handler=print_command)


def print_command(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from central.sheets import SheetsError
    from central.sheets.booklet import (
        check_printable,
        manifest,
        plan_booklets,
        print_booklets,
        write_manifest,
    )
    from central.sheets.layout import Typeface
    from central.sheets.preview import render_preview
    from central.sheets.students import read_students
    from gateway.templates import TemplateError, load_template

    console = Console(stderr=True)
    manifest_path = args.manifest or args.out.with_suffix(".manifest.json")
    try:
        for target in (args.out, manifest_path, args.preview):
            if target is not None and not target.parent.is_dir():
                raise SheetsError(f"folder {target.parent} does not exist: create it first")
        if args.preview_dpi < 36 or args.preview_dpi > 2400:
            raise SheetsError("--preview-dpi must be between 36 and 2400")
        template = load_template(args.template)
        students = read_students(args.students)
        face = Typeface.from_file(args.font) if args.font else Typeface()
        check_printable(template, students, face)
        booklets = plan_booklets(template, students, args.first_note)
        pages = sum(len(b.pages) for b in booklets)
        if args.preview and not 1 <= args.preview_page <= pages:
            raise SheetsError(f"--preview-page must be 1..{pages}, the pages this run prints")
        started = time.perf_counter()
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        ) as progress:
            task = progress.add_task("printing pages", total=pages)
            print_booklets(
                template, booklets, args.out, face, on_page=lambda: progress.advance(task)
            )
        elapsed = time.perf_counter() - started
        write_manifest(manifest_path, manifest(template, booklets, args.out))
        size = args.out.stat().st_size
        print(
            f"{args.out}: {len(booklets)} booklet(s), {pages} page(s), {size / 1e6:.1f} MB "
            f"({size / pages / 1e3:.0f} KB and {elapsed / pages:.2f} s per page); "
            f"manifest {manifest_path}"
        )
        if args.preview:
            width, height = render_preview(
                args.out, args.preview_page, args.preview, args.preview_dpi
            )
            print(
                f"{args.preview}: page {args.preview_page} at {args.preview_dpi} dpi, "
                f"{width} × {height} pixels"
            )
    except (SheetsError, TemplateError) as error:
        print(f"classink sheets print: {error}", file=sys.stderr)
        return 2
    return 0
