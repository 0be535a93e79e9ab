"""Plain-Python reference of the strokes checker (ext/strokecheck.pyx must agree with it).

check_strokes(text, start, end) -> (verdict, message)
find_strokes(text) -> (verdict, start, end, message)

`text[start:end]` should be the JSON value of an answer's `strokes`; find_strokes locates it in a
whole answer and checks it in the same pass (central uses that one). It is read once, in place,
against the rules answer-event.v1.json states for strokes (STROKES_SCHEMA), so that central need
not parse thousands of pen-point numbers into Python objects only to validate them and throw them
away. The verdict is one of

- VALID: well-formed JSON that meets those rules (then the span is plain ASCII);
- INVALID: not JSON, or JSON that breaks a rule; the message names the first problem found;
- UNDECIDED: something this checker leaves to the full parser and validator: escaped or repeated
  property names, t0_ms not written as plain digits (-0, 1.0 and 1e3 are integers to JSON Schema),
  numbers with an exponent or a run of 20 or more digits (where parsers disagree on range and type).

A value of the wrong type is skipped by matching brackets only, which is enough: the span is
rejected whatever that value holds, and a repeated property name, which could replace it, makes
the verdict UNDECIDED instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

VALID, INVALID, UNDECIDED = 0, 1, 2

# The `strokes` subschema these rules implement; central uses the checker only while the schema
# file still says exactly this.
STROKES_SCHEMA: dict[str, Any] = {
    "type": "array",
    "minItems": 1,
    "items": {
        "type": "object",
        "additionalProperties": False,
        "required": ["t0_ms", "points"],
        "properties": {
            "t0_ms": {"type": "integer", "minimum": 0},
            "offline": {"type": "boolean", "description": "fetched from the pen's offline memory"},
            "points": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "array",
                    "items": {"type": "number"},
                    "minItems": 4,
                    "maxItems": 4,
                },
            },
        },
    },
}

# Problem codes, shared with the Cython kernel; the message templates take the stroke index i,
# point index j, number index k, a count n and the byte offset `at` in `text`.
SYNTAX = 1
STROKES_NOT_ARRAY = 2
STROKES_EMPTY = 3
STROKE_NOT_OBJECT = 4
UNEXPECTED_PROPERTY = 5
NO_T0 = 6
NO_POINTS = 7
T0_NOT_INTEGER = 8
OFFLINE_NOT_BOOLEAN = 9
POINTS_NOT_ARRAY = 10
POINTS_EMPTY = 11
POINT_NOT_ARRAY = 12
POINT_SIZE = 13
NOT_A_NUMBER = 14
ESCAPED_NAME = 20
REPEATED_NAME = 21
NUMBER_FORM = 22
T0_FORM = 23

MESSAGES = {
    SYNTAX: "$.strokes: not JSON at byte {at}",
    STROKES_NOT_ARRAY: "$.strokes: not an array",
    STROKES_EMPTY: "$.strokes: no strokes",
    STROKE_NOT_OBJECT: "$.strokes[{i}]: not an object",
    UNEXPECTED_PROPERTY: "$.strokes[{i}]: a property other than t0_ms, offline and points",
    NO_T0: "$.strokes[{i}]: t0_ms is missing",
    NO_POINTS: "$.strokes[{i}]: points is missing",
    T0_NOT_INTEGER: "$.strokes[{i}].t0_ms: not an integer",
    OFFLINE_NOT_BOOLEAN: "$.strokes[{i}].offline: not a boolean",
    POINTS_NOT_ARRAY: "$.strokes[{i}].points: not an array",
    POINTS_EMPTY: "$.strokes[{i}].points: no points",
    POINT_NOT_ARRAY: "$.strokes[{i}].points[{j}]: not an array",
    POINT_SIZE: "$.strokes[{i}].points[{j}]: {n} items, not 4",
    NOT_A_NUMBER: "$.strokes[{i}].points[{j}][{k}]: not a number",
    ESCAPED_NAME: "$.strokes[{i}]: a property name with escapes",
    REPEATED_NAME: "$.strokes[{i}]: a property given twice",
    NUMBER_FORM: "$.strokes[{i}].points[{j}][{k}]: a number with an exponent or 20+ digits",
    T0_FORM: "$.strokes[{i}].t0_ms: not written as plain digits",
}

# Why find_strokes leaves an answer to the parser: codes shared with the Cython kernel.
NOT_AN_OBJECT = 1
UNTERMINATED = 2
ESCAPED_MEMBER = 3
TWO_STROKES = 4
NO_COLON = 5
NO_STROKES = 6
LOCATE_MESSAGES = {
    NOT_AN_OBJECT: "$: not a JSON object",
    UNTERMINATED: "$: a string or object that never ends",
    ESCAPED_MEMBER: "$: a member name with escapes",
    TWO_STROKES: "$: strokes given twice",
    NO_COLON: "$.strokes: no colon after the name",
    NO_STROKES: "$: no strokes",
}

_MAX_DIGITS = 19
# Sets of byte values rather than bytes, so that -1 (the end of the span) can be looked up too.
_WHITESPACE = frozenset(b" \t\r\n")
_DIGITS = frozenset(b"0123456789")
_OPENING = frozenset(b"[{")
_CLOSING = frozenset(b"]}")
_SCALAR_END = frozenset(b" \t\r\n,]}")
_T0, _OFFLINE, _POINTS = 1, 2, 4
_NAMES = {b"t0_ms": _T0, b"offline": _OFFLINE, b"points": _POINTS}


def message(code: int, i: int, j: int, k: int, n: int, at: int) -> str:
    return MESSAGES[code].format(i=i, j=j, k=k, n=n, at=at)


class _Stop(Exception):
    def __init__(self, verdict: int, code: int) -> None:
        super().__init__(code)
        self.verdict = verdict
        self.code = code


class _Scan:
    def __init__(self, text: bytes, start: int, end: int) -> None:
        self.text, self.pos, self.end = text, start, end
        self.i = self.j = self.k = self.n = 0
        self.problem = 0  # the first rule broken, as a code; 0 while none
        self.where = (0, 0, 0, 0, 0)

    def peek(self) -> int:
        return self.text[self.pos] if self.pos < self.end else -1

    def take(self) -> int:
        byte = self.peek()
        self.pos += 1
        return byte

    def whitespace(self) -> None:
        while self.pos < self.end and self.text[self.pos] in _WHITESPACE:
            self.pos += 1

    def digits(self) -> int:
        began = self.pos
        while self.pos < self.end and self.text[self.pos] in _DIGITS:
            self.pos += 1
        return self.pos - began

    def broken(self, code: int) -> None:
        if not self.problem:
            self.problem = code
            self.where = (self.i, self.j, self.k, self.n, self.pos)

    def syntax(self) -> None:
        self.problem, self.where = SYNTAX, (self.i, self.j, self.k, 0, self.pos)
        raise _Stop(INVALID, SYNTAX)

    def undecided(self, code: int) -> None:
        self.problem, self.where = code, (self.i, self.j, self.k, 0, self.pos)
        raise _Stop(UNDECIDED, code)

    def skip_string(self) -> None:
        self.pos += 1  # the opening quote
        while self.pos < self.end and self.text[self.pos] != ord('"'):
            self.pos += 2 if self.text[self.pos] == ord("\\") else 1
        if self.pos >= self.end:
            self.syntax()
        self.pos += 1

    def skip_value(self) -> None:
        """Past a value of the wrong type, by matching brackets only (see the module's doc)."""
        byte = self.peek()
        if byte == ord('"'):
            self.skip_string()
            return
        if byte in _OPENING:
            depth = 0
            while True:
                byte = self.peek()
                if byte == -1:
                    self.syntax()
                if byte == ord('"'):
                    self.skip_string()
                    continue
                self.pos += 1
                if byte in _OPENING:
                    depth += 1
                elif byte in _CLOSING:
                    depth -= 1
                    if depth == 0:
                        return
        began = self.pos
        while self.pos < self.end and self.text[self.pos] not in _SCALAR_END:
            self.pos += 1
        if self.pos == began:
            self.syntax()

    def strokes(self) -> None:
        self.whitespace()
        self.value()
        self.whitespace()
        if self.pos != self.end:
            self.syntax()

    def value(self) -> None:
        """The strokes' value, from its first byte; stops right after it."""
        if self.peek() != ord("["):
            self.broken(STROKES_NOT_ARRAY)
            self.skip_value()
        else:
            self.pos += 1
            self.whitespace()
            if self.peek() == ord("]"):
                self.pos += 1
                self.broken(STROKES_EMPTY)
            else:
                while True:
                    self.stroke()
                    self.whitespace()
                    byte = self.take()
                    if byte == ord("]"):
                        break
                    if byte != ord(","):
                        self.pos -= 1
                        self.syntax()
                    self.whitespace()
                    self.i += 1

    def stroke(self) -> None:
        if self.peek() != ord("{"):
            self.broken(STROKE_NOT_OBJECT)
            self.skip_value()
            return
        self.pos += 1
        self.whitespace()
        seen = 0
        if self.peek() == ord("}"):
            self.pos += 1
        else:
            while True:
                if self.peek() != ord('"'):
                    self.syntax()
                began = self.pos + 1
                self.skip_string()
                name = self.text[began : self.pos - 1]
                if b"\\" in name:
                    self.undecided(ESCAPED_NAME)
                self.whitespace()
                if self.take() != ord(":"):
                    self.pos -= 1
                    self.syntax()
                self.whitespace()
                bit = _NAMES.get(name, 0)
                if bit & seen:
                    self.undecided(REPEATED_NAME)
                seen |= bit
                if bit == _T0:
                    self.t0_ms()
                elif bit == _OFFLINE:
                    self.offline()
                elif bit == _POINTS:
                    self.points()
                else:
                    self.broken(UNEXPECTED_PROPERTY)
                    self.skip_value()
                self.whitespace()
                byte = self.take()
                if byte == ord("}"):
                    break
                if byte != ord(","):
                    self.pos -= 1
                    self.syntax()
                self.whitespace()
        if not seen & _T0:
            self.broken(NO_T0)
        if not seen & _POINTS:
            self.broken(NO_POINTS)

    def t0_ms(self) -> None:
        byte = self.peek()
        if byte == ord("-"):
            self.undecided(T0_FORM)
        if byte not in _DIGITS:
            self.broken(T0_NOT_INTEGER)
            self.skip_value()
            return
        if byte == ord("0"):
            self.pos += 1
            count = 1
        else:
            count = self.digits()
        byte = self.peek()
        if count > _MAX_DIGITS or byte == ord(".") or byte == ord("e") or byte == ord("E"):
            self.undecided(T0_FORM)

    def offline(self) -> None:
        for literal in (b"true", b"false"):
            if self.text.startswith(literal, self.pos, self.end):
                self.pos += len(literal)
                return
        self.broken(OFFLINE_NOT_BOOLEAN)
        self.skip_value()

    def points(self) -> None:
        if self.peek() != ord("["):
            self.broken(POINTS_NOT_ARRAY)
            self.skip_value()
            return
        self.pos += 1
        self.whitespace()
        if self.peek() == ord("]"):
            self.pos += 1
            self.broken(POINTS_EMPTY)
            return
        self.j = 0
        while True:
            self.point()
            self.whitespace()
            byte = self.take()
            if byte == ord("]"):
                break
            if byte != ord(","):
                self.pos -= 1
                self.syntax()
            self.whitespace()
            self.j += 1
        self.j = 0

    def point(self) -> None:
        if self.peek() != ord("["):
            self.broken(POINT_NOT_ARRAY)
            self.skip_value()
            return
        self.pos += 1
        self.whitespace()
        self.k = 0
        if self.peek() == ord("]"):
            self.pos += 1
        else:
            while True:
                self.number()
                self.k += 1
                self.whitespace()
                byte = self.take()
                if byte == ord("]"):
                    break
                if byte != ord(","):
                    self.pos -= 1
                    self.syntax()
                self.whitespace()
        if self.k != 4:
            self.n = self.k
            self.broken(POINT_SIZE)
            self.n = 0
        self.k = 0

    def number(self) -> None:
        byte = self.peek()
        if byte != ord("-") and byte not in _DIGITS:
            self.broken(NOT_A_NUMBER)
            self.skip_value()
            return
        if byte == ord("-"):
            self.pos += 1
        byte = self.peek()
        if byte == ord("0"):
            self.pos += 1
            count = 1
        else:
            count = self.digits()
            if count == 0:
                self.syntax()
        if count > _MAX_DIGITS:
            self.undecided(NUMBER_FORM)
        if self.peek() == ord("."):
            self.pos += 1
            count = self.digits()
            if count == 0:
                self.syntax()
            if count > _MAX_DIGITS:
                self.undecided(NUMBER_FORM)
        byte = self.peek()
        if byte == ord("e") or byte == ord("E"):
            self.undecided(NUMBER_FORM)


def _verdict(scan: _Scan, read: Callable[[], None]) -> tuple[int, str | None]:
    try:
        read()
        verdict = INVALID if scan.problem else VALID
    except _Stop as stop:
        verdict = stop.verdict
    if verdict == VALID:
        return VALID, None
    return verdict, message(scan.problem, *scan.where)


def check_strokes(text: bytes, start: int, end: int) -> tuple[int, str | None]:
    if not 0 <= start <= end <= len(text):
        raise ValueError(f"span {start}:{end} is outside the {len(text)} bytes given")
    scan = _Scan(text, start, end)
    return _verdict(scan, scan.strokes)


def find_strokes(text: bytes) -> tuple[int, int, int, str | None]:
    """(verdict, start, end, message) for the strokes of the answer `text`, located and checked
    in one pass: the top level is read like ext/jsonspan's value_span, and the value of its
    `strokes` member by check_strokes' rules, which also find where it ends. start:end is the
    strokes' span when the verdict is VALID, and -1:-1 otherwise. Where the top level is not
    one object with one `strokes` member named without escapes, the verdict is UNDECIDED (the
    caller's parser decides), and so it is for a top level that is not JSON: only the strokes
    are checked here."""
    size = len(text)
    pos = 0
    while pos < size and text[pos] in _WHITESPACE:
        pos += 1
    if pos >= size or text[pos] != ord("{"):
        return UNDECIDED, -1, -1, LOCATE_MESSAGES[NOT_AN_OBJECT]
    depth = 0
    expect_name = False
    found = (-1, -1)
    while pos < size:
        byte = text[pos]
        if byte == ord('"'):
            began = pos = pos + 1
            while pos < size and text[pos] != ord('"'):
                pos += 2 if text[pos] == ord("\\") else 1
            if pos >= size:
                return UNDECIDED, -1, -1, LOCATE_MESSAGES[UNTERMINATED]
            name_end = pos
            pos += 1
            if depth == 1 and expect_name:
                expect_name = False
                name = text[began:name_end]
                if b"\\" in name:
                    return UNDECIDED, -1, -1, LOCATE_MESSAGES[ESCAPED_MEMBER]
                if name == b"strokes":
                    if found[0] >= 0:
                        return UNDECIDED, -1, -1, LOCATE_MESSAGES[TWO_STROKES]
                    while pos < size and text[pos] in _WHITESPACE:
                        pos += 1
                    if pos >= size or text[pos] != ord(":"):
                        return UNDECIDED, -1, -1, LOCATE_MESSAGES[NO_COLON]
                    pos += 1
                    while pos < size and text[pos] in _WHITESPACE:
                        pos += 1
                    scan = _Scan(text, pos, size)
                    verdict, problem = _verdict(scan, scan.value)
                    if verdict != VALID:
                        return verdict, -1, -1, problem
                    found = (pos, scan.pos)
                    pos = scan.pos
            continue
        if byte in _OPENING:
            depth += 1
            if depth == 1:
                expect_name = True
        elif byte in _CLOSING:
            depth -= 1
        elif byte == ord(",") and depth == 1:
            expect_name = True
        if depth <= 0:
            if found[0] < 0:
                return UNDECIDED, -1, -1, LOCATE_MESSAGES[NO_STROKES]
            return VALID, found[0], found[1], None
        pos += 1
    return UNDECIDED, -1, -1, LOCATE_MESSAGES[UNTERMINATED]
