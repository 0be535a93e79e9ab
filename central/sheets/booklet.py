"""One booklet per student: their page addresses, the PDF, and the manifest that maps back.

Each student's booklet is the template's pages with the note (booklet number) replaced by the
student's own, so every printed page has its own patch of the dot lattice and a decoded position
tells whose booklet the pen wrote on (protocol_specs/lattice.md).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas

from central.sheets import SheetsError
from central.sheets.layout import Heading, Typeface, draw_layout
from central.sheets.pattern import DotLayer
from central.sheets.students import Student
from classink.lattice_pages import (
    CELL_DOTS,
    PITCH_MM,
    LatticeArea,
    PageAddress,
    page_area,
)
from gateway.templates import ExamTemplate, Page

MANIFEST_SCHEMA = "classink.booklet-manifest.v1"


@dataclass(frozen=True)
class PrintedPage:
    template_page: Page
    address: PageAddress
    area: LatticeArea


@dataclass(frozen=True)
class Booklet:
    student: Student
    note: int
    pages: tuple[PrintedPage, ...]


def plan_booklets(
    template: ExamTemplate, students: list[Student], first_note: int | None = None
) -> list[Booklet]:
    """Addresses and lattice areas of every student's pages, checked before anything is drawn."""
    booklet_keys = {(p.address.section, p.address.owner, p.address.note) for p in template.pages}
    if len(booklet_keys) != 1:
        raise SheetsError(
            f"template {template.template_id}: its pages must share one section, owner and note "
            f"(one booklet), but they have {sorted(booklet_keys)}"
        )
    ((section, owner, template_note),) = booklet_keys
    first = template_note if first_note is None else first_note
    booklets = []
    for index, student in enumerate(students):
        note = first + index
        pages = []
        for page in template.pages:
            try:
                address = PageAddress(section, owner, note, page.address.page)
                area = page_area(address, page.size_mm)
            except ValueError as error:
                raise SheetsError(
                    f"cannot print the booklet of {student.student_id}: {error}. Booklet notes "
                    f"run from --first-note {first} up; choose a smaller one, or a template "
                    "whose section and owner are at most 62"
                ) from error
            pages.append(PrintedPage(page, address, area))
        booklets.append(Booklet(student, note, tuple(pages)))
    return booklets


def check_printable(template: ExamTemplate, students: list[Student], face: Typeface) -> None:
    """Refuse text the typeface would print as black boxes, before an hour of printing."""
    texts = [("the template title", template.title), ("the template id", template.template_id)]
    for region in (r for p in template.pages for r in p.regions):
        texts += [
            (f"the question id {region.question_id}", region.question_id),
            (f"the prompt of {region.question_id}", region.prompt),
        ]
    texts += [(f"the name of {s.student_id}", s.name) for s in students]
    texts += [(f"the student_id {s.student_id}", s.student_id) for s in students]
    problems = [f"{where} ({missing})" for where, text in texts if (missing := face.missing(text))]
    if problems:
        shown = "; ".join(problems[:5]) + (
            f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
        )
        raise SheetsError(
            f"the font {face.regular} has no characters for {shown}. Pass --font with a "
            "TrueType file that covers them (e.g. a Noto Sans .ttf for the script)"
        )


def _encoder() -> Callable:
    try:
        from ext import lattice
    except ImportError as error:
        raise SheetsError(
            "the dot-pattern codec ext.lattice is not built: run `make build` (or "
            "`.venv/bin/python setup.py build_ext --inplace`) in the classink checkout"
        ) from error
    except FileNotFoundError as error:  # its tables come from the shared data sets
        raise SheetsError(str(error)) from error
    return lattice.encode


def print_booklets(
    template: ExamTemplate,
    booklets: list[Booklet],
    out: Path,
    face: Typeface,
    on_page: Callable[[], None] = lambda: None,
) -> None:
    """Write every booklet, in order, to one PDF; `out` appears only once it is complete."""
    encode = _encoder()
    partial = out.with_name(out.name + ".part")
    canvas = Canvas(str(partial), pageCompression=1, enforceColorSpace="cmyk")
    canvas.setTitle(template.title)
    canvas.setSubject(f"classink booklets for exam {template.template_id}")
    canvas.setCreator("classink sheets print")
    dots = DotLayer(canvas)
    points = {
        r.question_id: r.points
        for page in template.pages
        for r in page.regions
        if r.points is not None
    }
    for booklet in booklets:
        for number, printed in enumerate(booklet.pages, start=1):
            width_mm, height_mm = printed.template_page.size_mm
            canvas.setPageSize((width_mm * mm, height_mm * mm))
            heading = Heading(
                title=template.title,
                student_name=booklet.student.name,
                student_id=booklet.student.student_id,
                address=str(printed.address),
                page_number=number,
                page_count=len(booklet.pages),
                template_id=template.template_id,
            )
            draw_layout(canvas, printed.template_page, heading, face, points)
            area = printed.area
            # Dots go last, on top: printers that do not overprint would otherwise knock the
            # carbon dots out wherever the layout ink lies, leaving holes the pen cannot read.
            dots.draw(
                encode(area.height, area.width, area.x0, area.y0, (area.u, area.v)),
                height_mm * mm,
            )
            canvas.showPage()
            on_page()
    try:
        canvas.save()
        partial.replace(out)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise SheetsError(f"cannot write {out}: {error}") from error


def manifest(template: ExamTemplate, booklets: list[Booklet], pdf: Path) -> dict:
    """The booklet manifest (protocol_specs/lattice.md): which lattice area is whose page."""
    students = []
    pdf_page = 0
    for booklet in booklets:
        pages = []
        for printed in booklet.pages:
            pdf_page += 1
            area = printed.area
            pages.append(
                {
                    "address": str(printed.address),
                    "template_address": str(printed.template_page.address),
                    "pdf_page": pdf_page,
                    "size_mm": list(printed.template_page.size_mm),
                    "lattice": {
                        "u": area.u,
                        "v": area.v,
                        "x0": area.x0,
                        "y0": area.y0,
                        "width": area.width,
                        "height": area.height,
                    },
                }
            )
        students.append(
            {
                "student_id": booklet.student.student_id,
                "name": booklet.student.name,
                "note": booklet.note,
                "pages": pages,
            }
        )
    return {
        "schema": MANIFEST_SCHEMA,
        "template_id": template.template_id,
        "title": template.title,
        "pdf": pdf.name,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "pitch_mm": PITCH_MM,
        "cell_dots": CELL_DOTS,
        "students": students,
    }


def write_manifest(path: Path, data: dict) -> None:
    try:
        path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    except OSError as error:
        raise SheetsError(f"cannot write the manifest {path}: {error}") from error
