"""The strokes checker (ext.strokecheck) against its Python reference, and both against a real
JSON parser and jsonschema with the contract's strokes rules: VALID only where those accept,
INVALID only where they refuse, and the same verdict and message from both implementations."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from central.payloads import PayloadRejected, parse_json_strictly
from classink.schemas import SCHEMAS_DIR, reference_validator
from ext import strokecheck, strokecheck_ref
from ext.strokecheck_ref import INVALID, STROKES_SCHEMA, UNDECIDED, VALID

STROKES_VALIDATOR = reference_validator(
    {"$schema": "https://json-schema.org/draft/2020-12/schema", **STROKES_SCHEMA}
)
PREFIX = b'{"a":[1,{"strokes":2}],"s":"\\"strokes\\"","strokes":'
SUFFIX = b',"z":null}'
# Bytes that make or break JSON and the strokes rules.
EDIT_BYTES = b'0123456789-+.eE[]{},:" \t\n\\tfnulrsx\x00\x7f\xff'


def edit_bytes(text: bytearray, at: int, edit: int, byte: int) -> None:
    """Insert (edit 0), delete (1) or replace (2) one byte at `at`, in place."""
    if edit == 0:
        text.insert(at, byte)
    elif at < len(text):
        if edit == 1:
            del text[at]
        else:
            text[at] = byte


def _reference_verdict(text: bytes) -> int:
    """VALID or INVALID as the standard library's parser and jsonschema see strokes `text`."""
    try:
        strokes = parse_json_strictly(text)
    except PayloadRejected:
        return INVALID
    return VALID if STROKES_VALIDATOR.is_valid(strokes) else INVALID


def _check_both(text: bytes) -> tuple[int, str | None]:
    fast = strokecheck.check_strokes(text, 0, len(text))
    assert fast == strokecheck_ref.check_strokes(text, 0, len(text)), text
    verdict, message = fast
    assert (message is None) == (verdict == VALID)
    if verdict != UNDECIDED:
        assert verdict == _reference_verdict(text), (text, message)
    found = strokecheck.find_strokes(PREFIX + text + SUFFIX)
    assert found == strokecheck_ref.find_strokes(PREFIX + text + SUFFIX), text
    if verdict == VALID:
        # Wrapped in an answer, the span is this text without the whitespace around it.
        start = len(PREFIX) + len(text) - len(text.lstrip(b" \t\r\n"))
        assert found == (VALID, start, len(PREFIX) + len(text.rstrip(b" \t\r\n")), None)
    return fast


def _stroke_text(rng: random.Random) -> bytes:
    strokes = [
        {
            "t0_ms": rng.randrange(10**6),
            "points": [
                [round(rng.uniform(-50, 300), rng.randrange(4)), rng.randrange(100), 8 * i, 0.5]
                for i in range(rng.randrange(1, 6))
            ],
            **({"offline": rng.random() < 0.5} if rng.random() < 0.3 else {}),
        }
        for _ in range(rng.randrange(1, 4))
    ]
    indent = rng.choice([None, None, 0, 1])
    separators = rng.choice([(",", ":"), (", ", ": "), (" ,", " : ")])
    return json.dumps(strokes, indent=indent, separators=separators).encode()


def test_an_answers_strokes_are_valid() -> None:
    text = (
        b'[{"t0_ms":0,"points":[[22.0,31.5,0,0.4],[-7,0,1.25,0]]},'
        b'{"t0_ms":300,"offline":true,"points":[[1,2,3,4]]}]'
    )
    assert _check_both(text) == (VALID, None)
    assert _check_both(b' [ { "points" : [ [ 1 , 2 , 3 , 4 ] ] , "t0_ms" : 0 } ] ') == (VALID, None)


@pytest.mark.parametrize(
    ("text", "verdict", "message"),
    [
        (b"[]", INVALID, "$.strokes: no strokes"),
        (b"{}", INVALID, "$.strokes: not an array"),
        (b"null", INVALID, "$.strokes: not an array"),
        (b"[1]", INVALID, "$.strokes[0]: not an object"),
        (b'[{"points":[[1,2,3,4]]}]', INVALID, "$.strokes[0]: t0_ms is missing"),
        (b'[{"t0_ms":0}]', INVALID, "$.strokes[0]: points is missing"),
        (b'[{"t0_ms":"0","points":[[1,2,3,4]]}]', INVALID, "$.strokes[0].t0_ms: not an integer"),
        (b'[{"t0_ms":0,"points":[]}]', INVALID, "$.strokes[0].points: no points"),
        (
            b'[{"t0_ms":0,"points":[[1,2,3,4],[1,2,3]]}]',
            INVALID,
            "$.strokes[0].points[1]: 3 items, not 4",
        ),
        (
            b'[{"t0_ms":0,"points":[[1,2,3,4,5]]}]',
            INVALID,
            "$.strokes[0].points[0]: 5 items, not 4",
        ),
        (
            b'[{"t0_ms":0,"points":[[1,2,null,4]]}]',
            INVALID,
            "$.strokes[0].points[0][2]: not a number",
        ),
        (
            b'[{"t0_ms":0,"points":[[1,2,3,4]],"offline":1}]',
            INVALID,
            "$.strokes[0].offline: not a boolean",
        ),
        (
            b'[{"t0_ms":0,"points":[[1,2,3,4]],"x":[{"y":"]"}]}]',
            INVALID,
            "$.strokes[0]: a property other than t0_ms, offline and points",
        ),
        (b'[{"t0_ms":0,"points":[[1,2,3,04]]}]', INVALID, "$.strokes: not JSON at byte 30"),
        (b'[{"t0_ms":0,"points":[[1,2,3,4]]},]', INVALID, "$.strokes: not JSON at byte 34"),
        (b'[{"t0_ms":0,"points":[[1,2,3,4.]]}]', INVALID, "$.strokes: not JSON at byte 31"),
        (b'[{"t0_ms":0,"points":[[1,2,3,4]]}] x', INVALID, "$.strokes: not JSON at byte 35"),
        (
            b'[{"t0_ms":-0,"points":[[1,2,3,4]]}]',
            UNDECIDED,
            "$.strokes[0].t0_ms: not written as plain digits",
        ),
        (
            b'[{"t0_ms":1.0,"points":[[1,2,3,4]]}]',
            UNDECIDED,
            "$.strokes[0].t0_ms: not written as plain digits",
        ),
        (
            b'[{"t0_ms":0,"points":[[1,2,3,4e1]]}]',
            UNDECIDED,
            "$.strokes[0].points[0][3]: a number with an exponent or 20+ digits",
        ),
        (
            b'[{"t0_ms":0,"points":[[1,2,3,12345678901234567890]]}]',
            UNDECIDED,
            "$.strokes[0].points[0][3]: a number with an exponent or 20+ digits",
        ),
        (
            b'[{"t0_ms":0,"t0_ms":1,"points":[[1,2,3,4]]}]',
            UNDECIDED,
            "$.strokes[0]: a property given twice",
        ),
        (
            b'[{"t0\\u005fms":0,"points":[[1,2,3,4]]}]',
            UNDECIDED,
            "$.strokes[0]: a property name with escapes",
        ),
    ],
)
def test_verdicts_and_messages(text: bytes, verdict: int, message: str) -> None:
    assert _check_both(text) == (verdict, message)


def test_a_repeated_member_that_replaces_a_bad_one_is_left_to_the_parser() -> None:
    # Parsers keep the last of repeated names, so this stroke is valid although its first t0_ms
    # is not: the checker must not call it INVALID.
    text = b'[{"t0_ms":true,"points":[[1,2,3,4]],"t0_ms":0}]'
    assert _reference_verdict(text) == VALID
    assert _check_both(text)[0] == UNDECIDED


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"[]", "$: not a JSON object"),
        (b'{"a":1}', "$: no strokes"),
        (
            b'{"strokes":[{"t0_ms":0,"points":[[1,2,3,4]]}],"strokes":null}',
            "$: strokes given twice",
        ),
        (b'{"str\\u006fkes":[{"t0_ms":0,"points":[[1,2,3,4]]}]}', "$: a member name with escapes"),
        (b'{"strokes" [{"t0_ms":0,"points":[[1,2,3,4]]}]}', "$.strokes: no colon after the name"),
        (b'{"strokes":[{"t0_ms":0,"points":[[1,2,3,4]]}]', "$: a string or object that never ends"),
        (b'{"a":"b', "$: a string or object that never ends"),
    ],
)
def test_answers_find_strokes_leaves_to_the_parser(text: bytes, message: str) -> None:
    expected = (UNDECIDED, -1, -1, message)
    assert strokecheck.find_strokes(text) == strokecheck_ref.find_strokes(text) == expected


def test_spans_outside_the_text_are_refused() -> None:
    for check in (strokecheck.check_strokes, strokecheck_ref.check_strokes):
        with pytest.raises(ValueError, match="outside"):
            check(b"[]", 1, 3)
        assert check(b"", 0, 0) == (INVALID, "$.strokes: not JSON at byte 0")


def test_the_rules_are_the_schema_files() -> None:
    schema = json.loads((SCHEMAS_DIR / "answer-event.v1.json").read_text(encoding="utf-8"))
    assert schema["properties"]["strokes"] == STROKES_SCHEMA


def test_many_mutated_strokes_agree() -> None:
    """Random edits of realistic strokes: thousands of VALID, INVALID and UNDECIDED texts."""
    rng = random.Random(11)
    verdicts: dict[int, int] = {VALID: 0, INVALID: 0, UNDECIDED: 0}
    for _ in range(3000):
        text = bytearray(_stroke_text(rng))
        for _ in range(rng.choice([0, 0, 1, 1, 2, 3])):
            at = rng.randrange(len(text) + 1)
            edit_bytes(text, at, rng.randrange(3), EDIT_BYTES[rng.randrange(len(EDIT_BYTES))])
        verdicts[_check_both(bytes(text))[0]] += 1
    assert min(verdicts.values()) > 20, verdicts


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 10**20) | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(
            st.sampled_from(["t0_ms", "points", "offline", "x"]), children, max_size=4
        )
    ),
    max_leaves=20,
)
near_strokes = st.lists(
    st.fixed_dictionaries(
        {"t0_ms": st.integers(0, 10**6) | json_values},
        optional={
            "points": st.lists(
                st.lists(st.floats(-1e6, 1e6) | st.integers(-1000, 1000) | json_values, max_size=5),
                max_size=4,
            )
            | json_values,
            "offline": st.booleans() | json_values,
        },
    )
    | json_values,
    max_size=3,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(strokes=near_strokes | json_values, spaced=st.booleans())
def test_generated_strokes_agree(strokes: Any, spaced: bool) -> None:
    text = json.dumps(strokes, separators=(", ", ": ") if spaced else (",", ":")).encode()
    _check_both(text)


@settings(max_examples=300, deadline=None)
@given(
    data=st.binary(max_size=60)
    | st.lists(st.sampled_from(list(EDIT_BYTES)), max_size=60).map(bytes)
)
def test_arbitrary_bytes_agree(data: bytes) -> None:
    _check_both(data)
