"""`classink scoring train` and `classink recognize`: build the answer models and use them.

Heavy imports (numpy, scikit-learn) stay inside the handlers so `classink --help` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO


def register(subparsers: argparse._SubParsersAction) -> None:
    scoring = subparsers.add_parser("scoring", help="answer recognisers: training")
    scoring_sub = scoring.add_subparsers(dest="scoring_command", required=True, metavar="COMMAND")
    train = scoring_sub.add_parser(
        "train",
        help="train the digit/choice/mark models and write them with report.json",
        description="Train on the shared handwriting (training writers only) and evaluate on "
        "held-out writers. Prints progress on stderr and a JSON summary as the last line.",
    )
    add_train_arguments(train)
    train.set_defaults(handler=train_command)

    recognize = subparsers.add_parser(
        "recognize",
        help="recognise answers from a JSONL file of strokes",
        description="Read one answer per line ({'strokes': [...]}, other keys ignored) and write "
        "one {'label', 'confidence'} line per input line, in order. A malformed line gives "
        "label null and an 'error'; the exit status is then 1.",
    )
    recognize.add_argument("--field", required=True, choices=("digit", "choice", "mark"))
    recognize.add_argument("input", metavar="IN.jsonl", help="input file, or - for stdin")
    recognize.set_defaults(handler=recognize_command)


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", type=Path, default=None, help="folder for the models (default: the shipped ones)"
    )
    parser.add_argument(
        "--data", type=Path, default=None, help="shared data folder (the one holding handwriting/)"
    )


def train_command(args: argparse.Namespace) -> int:
    from gateway.scoring.train import run

    return run(args)


def recognize_command(args: argparse.Namespace) -> int:
    if args.input == "-":
        return recognize_stream(args.field, sys.stdin, sys.stdout, sys.stderr)
    # Undecodable bytes become U+FFFD so they fail that one line's JSON, not the whole run.
    with open(args.input, encoding="utf-8", errors="replace") as f:
        return recognize_stream(args.field, f, sys.stdout, sys.stderr)


def recognize_stream(field: str, lines: TextIO, out: TextIO, err: TextIO) -> int:
    """One output line per input line; a bad line is reported and answered with an error."""
    from gateway.scoring.recognizer import Recognizer

    recognizer = Recognizer.load()
    failures = 0
    for number, line in enumerate(lines, start=1):
        try:
            p = recognizer.predict(field, _strokes_of(line))
            result: dict = {"label": p.label, "confidence": round(p.confidence, 4)}
        except ValueError as exc:
            failures += 1
            print(f"line {number}: {exc}", file=err)
            result = {"label": None, "confidence": 0.0, "error": str(exc)}
        out.write(json.dumps(result) + "\n")
    out.flush()
    return 1 if failures else 0


def _strokes_of(line: str) -> Any:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON: {exc}") from None
    if not isinstance(record, dict) or "strokes" not in record:
        raise ValueError("expected a JSON object with a 'strokes' key")
    return record["strokes"]
