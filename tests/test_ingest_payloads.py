"""The fast payload checks (orjson, jsonschema-rs) against the reference ones (the standard
library's parser with the contract's rules, jsonschema): the same verdict on every payload."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import Messages

from central.payloads import (
    PayloadRejected,
    PayloadValidator,
    load_validators,
    parse_json,
    parse_json_strictly,
)

VALIDATORS = load_validators()

# Values that break, or nearly break, some rule of some field.
CANDIDATES: list[Any] = [
    None,
    "",
    "x",
    "7",
    "gw-1\n",
    "Site_1",
    "a" * 63,
    "a" * 200,
    "00:1a:2b:3c:4d:5e",
    "1.2.3.4",
    "2025-03-04T09:15:30Z",
    "2025-03-04T09:15:30.250+01:00",
    "2025-03-04 09:15:30",
    "2025-02-30T09:15:30Z",
    "9999-12-31T23:59:59-01:00",
    "0001-01-01T00:00:00+01:00",
    "2025-03-04t09:15:30z",
    0,
    1,
    -1,
    0.5,
    1.5,
    2**63,
    True,
    False,
    [],
    [1.0, 2.0, 3.0],
    [1.0, 2.0, 3.0, 4.0],
    [1.0, 2.0, 3.0, True],
    {},
    {"t0_ms": 0, "points": [[1, 2, 3, 4]]},
    "scored",
    "review",
    "student_id",
    "teacher_mark",
    "classink.answer.v1",
    "online",
    "offline",
]


def _mutations(doc: dict[str, Any]) -> Iterator[Any]:
    yield doc
    yield [doc]
    yield dict(doc, unexpected=1)
    for key in doc:
        yield {k: v for k, v in doc.items() if k != key}
        for value in CANDIDATES:
            yield dict(doc, **{key: value})
    if "strokes" in doc:
        for value in CANDIDATES:
            changed = copy.deepcopy(doc)
            changed["strokes"][0]["points"][0] = value
            yield changed
            changed = copy.deepcopy(doc)
            changed["strokes"][1]["points"][1][2] = value
            yield changed
            changed = copy.deepcopy(doc)
            changed["strokes"][0]["t0_ms"] = value
            yield changed
            changed = copy.deepcopy(doc)
            changed["strokes"][0]["offline"] = value
            yield changed
        yield dict(doc, strokes=[{"t0_ms": 0, "points": []}])
        yield dict(doc, strokes=[{"t0_ms": 0}])


def _answers(messages: Messages) -> list[dict[str, Any]]:
    return [
        messages.answer(),
        messages.answer(status="review", review_reason="low_confidence"),
        messages.answer(kind="student_id", correct=None, points_awarded=None, student_id=None),
        messages.answer(kind="teacher_mark", marker_id="t-1"),
        messages.answer(kind="score", marker_id="t-1", correct=False, points_awarded=0),
    ]


def _agree(validator: PayloadValidator, doc: Any) -> None:
    reference = validator.reference_problem(doc)
    assert validator._fast_accepts(doc) == (reference is None), (doc, reference)
    assert validator.problem(doc) == reference


def test_compiled_answer_validator_agrees_with_jsonschema(messages: Messages) -> None:
    checked = 0
    for base in _answers(messages):
        for doc in _mutations(base):
            _agree(VALIDATORS["answers"], doc)
            checked += 1
    assert checked > 4000


def test_compiled_status_validator_agrees_with_jsonschema(messages: Messages) -> None:
    for base in (messages.status(), messages.status(at=None, state="offline")):
        for doc in _mutations(base):
            _agree(VALIDATORS["status"], doc)


def test_both_kinds_of_message_pass_the_other_kinds_validator_never(messages: Messages) -> None:
    _agree(VALIDATORS["answers"], messages.status())
    _agree(VALIDATORS["status"], messages.answer())


PAYLOADS = [
    b"{}",
    b'{"a": 1}',
    b"",
    b"{not json",
    b"\xff\xfe\x00garbage",
    b'{"confidence": NaN}',
    b'{"confidence": Infinity}',
    b'{"confidence": 1e400}',
    b'{"confidence": -1e400}',
    b'{"confidence": 1e308}',
    b'{"seq": 18446744073709551616}',
    b'{"seq": 18446744073709551615}',
    b'{"seq": 9223372036854775808}',
    b'{"seq": 123456789012345678901234567890}',
    b'{"x": 1.000000000000000000001}',
    b'{"s": "\\ud800"}',
    b'{"s": "a\\u0000b"}',
    b'{"s": "\xc3\xa9"}',
    b"\xef\xbb\xbf{}",
    b'{"a": 1, "a": 2}',
    b"  [1, 2]  ",
    b"[1, 2] x",
    b"[" * 100_000,
    b"[" * 500 + b"]" * 500,
    b'"just a string"',
    b"-0",
    b"0.1e-400",
]


@pytest.mark.parametrize("payload", PAYLOADS, ids=range(len(PAYLOADS)))
def test_fast_parser_agrees_with_the_strict_one(payload: bytes) -> None:
    def outcome(parse: Any) -> Any:
        try:
            return ("ok", json.dumps(parse(payload)))
        except PayloadRejected as rejected:
            return ("rejected", rejected.reason)

    assert outcome(parse_json) == outcome(parse_json_strictly)


def test_valid_answers_parse_to_the_same_document(messages: Messages) -> None:
    for doc in _answers(messages):
        payload = Messages.payload(doc)
        assert parse_json(payload) == parse_json_strictly(payload) == doc
