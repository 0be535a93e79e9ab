"""The `classink` command: one entry point, one subcommand family per room.

Each room registers its own subcommands so that this file never grows with their options; imports
stay inside `register` functions' handlers so `classink --help` is fast on a Raspberry Pi.
"""

from __future__ import annotations

import argparse
import logging
import sys

from classink import CommandError, __version__

ROOMS = (
    "classink.demo",
    "gateway.cli",
    "central.cli",
    "central.fleet.cli",
    "central.matching.cli",
    "central.sheets.cli",
    "central.tracing.cli",
    "hardware_sim.cli",
    "gateway.scoring.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="classink", description="Dot-pattern pens in classrooms: pen, gateway and central."
    )
    parser.add_argument("--version", action="version", version=f"classink {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    import importlib

    for room in ROOMS:
        importlib.import_module(room).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * args.verbose
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.handler(args) or 0)
    except CommandError as exc:
        print(f"classink {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
