"""Central's strokes fast path (central.payloads.StrokesFastPath) against the full path it
shortens: on every mutated answer both give the same verdict, reason, fields and stored strokes;
answers it cannot decide, and bad ones, still go through the full path and are dead-lettered."""

from __future__ import annotations

import copy
import json
import random
from typing import Any

import pytest
from conftest import Messages, Store
from hypothesis import given, settings
from hypothesis import strategies as st
from psycopg.postgres import types as pg_types
from sqlalchemy import select
from test_ingest_payloads import _answers, _mutations
from test_strokecheck_kernel import edit_bytes

from bench.ingest import _answer
from central.ingest import _ANSWER_COLUMNS, Ingestor, OutcomeKind, _binary_copy_types
from central.models import AnswerEvent, DeadLetter
from central.payloads import PayloadRejected, StrokesFastPath, load_validators, parse_rfc3339
from classink.schemas import SCHEMAS_DIR

SCHEMA = json.loads((SCHEMAS_DIR / "answer-event.v1.json").read_text(encoding="utf-8"))
EDIT_BYTES = b'0123456789-.eE[]{},:" \\ntfu\x00\xff'


def _ingestors() -> tuple[Ingestor, Ingestor]:
    fast, full = Ingestor(sessions=None), Ingestor(sessions=None)  # type: ignore[arg-type]
    full._strokes_fast_path.enabled = False
    return fast, full


FAST, FULL = _ingestors()


def _outcome(ingestor: Ingestor, topic: str, payload: bytes) -> Any:
    try:
        return ingestor._check(topic, payload)
    except PayloadRejected as rejected:
        return rejected.reason


def _agree(topic: str, payload: bytes) -> bool:
    """Asserts both paths agree; True if the fast path decided."""
    outcome = _outcome(FAST, topic, payload)
    assert outcome == _outcome(FULL, topic, payload), payload
    return FAST._strokes_fast_path.accept(payload) is not None


def _spaced(doc: Any) -> bytes:
    """Another way to write the same answer: spaced out, strokes first."""
    if isinstance(doc, dict) and "strokes" in doc:
        doc = {"strokes": doc["strokes"], **doc}
    return json.dumps(doc, indent=1, separators=(" ,", " : ")).encode()


def test_mutated_answers_get_the_same_verdict_either_way(messages: Messages) -> None:
    decided = checked = 0
    for base in _answers(messages):
        for doc in _mutations(base):
            for payload in (Messages.payload(doc), _spaced(doc)):
                decided += _agree(messages.topic(), payload)
                checked += 1
    assert checked > 8000
    assert decided > 1000  # the valid answers and those whose envelope alone breaks a rule


def test_every_valid_answer_takes_the_fast_path(messages: Messages) -> None:
    rng = random.Random(3)
    payloads = [Messages.payload(doc) for doc in _answers(messages)]
    payloads += [_answer("gw-1", seq, rng)[1] for seq in range(1, 30)]
    for payload in payloads:
        accepted = FAST._strokes_fast_path.accept(payload)
        assert accepted is not None
        doc, strokes_json = accepted
        full = json.loads(payload)
        assert json.loads(strokes_json) == full.pop("strokes")
        assert doc == full


def test_strokes_the_checker_leaves_undecided_still_pass(messages: Messages) -> None:
    doc = messages.answer()
    doc["strokes"][0]["t0_ms"] = 1.0  # an integer to JSON Schema, but not plain digits
    payload = Messages.payload(doc).replace(b"0.4]", b"4e-1]")
    assert FAST._strokes_fast_path.accept(payload) is None
    checked = FAST._check(messages.topic(), payload)
    assert json.loads(checked.strokes_json or "") == json.loads(payload)["strokes"]


@settings(max_examples=300, deadline=None)
@given(
    edits=st.lists(
        st.tuples(st.floats(0, 1), st.integers(0, 2), st.sampled_from(list(EDIT_BYTES))),
        min_size=1,
        max_size=3,
    ),
    seq=st.integers(1, 50),
)
def test_byte_edits_of_a_real_answer_get_the_same_verdict_either_way(
    edits: list[tuple[float, int, int]], seq: int
) -> None:
    text = bytearray(_answer("gw-1", seq, random.Random(seq))[1])
    text = text.replace(b"2000-01-01T00:00:00.000000Z", b"2025-03-04T09:15:30.250000Z")
    for where, edit, byte in edits:
        edit_bytes(text, int(where * len(text)), edit, byte)
    _agree("classink/v1/bench-site/gw-1/answers", bytes(text))


def test_an_escaped_member_name_cannot_swap_the_strokes(messages: Messages) -> None:
    """Parsers keep the last of two members named strokes, however each name is written: the
    strokes checked and the strokes stored must both be that one."""
    doc = messages.answer()
    good = json.dumps(doc.pop("strokes")).encode()
    head = Messages.payload(doc)[:-1]
    payload = head + b', "strokes": ' + good + b', "str\\u006fkes": [1]}'
    assert FAST._strokes_fast_path.accept(payload) is None
    reason = _outcome(FAST, messages.topic(), payload)
    assert isinstance(reason, str) and reason.startswith("schema: $.strokes[0]")
    payload = head + b', "strokes": [1], "str\\u006fkes": ' + good + b"}"
    checked = FAST._check(messages.topic(), payload)
    assert json.loads(checked.strokes_json or "") == json.loads(good)


@pytest.mark.parametrize(
    "change",
    [
        lambda schema: schema["properties"]["strokes"].update(minItems=2),
        lambda schema: schema.update(patternProperties={"^st": {"maxItems": 1}}),
        lambda schema: schema["allOf"].append({"properties": {"strokes": {"maxItems": 1}}}),
        lambda schema: schema["required"].remove("strokes"),
    ],
)
def test_a_schema_with_other_strokes_rules_turns_the_fast_path_off(
    change: Any, messages: Messages
) -> None:
    schema = copy.deepcopy(SCHEMA)
    change(schema)
    fast_path = StrokesFastPath(schema)
    assert not fast_path.enabled
    assert fast_path.accept(Messages.payload(messages.answer())) is None
    assert StrokesFastPath(copy.deepcopy(SCHEMA)).enabled


def test_stored_either_way_and_bad_strokes_dead_lettered(store: Store, messages: Messages) -> None:
    fast = messages.answer()
    undecided = messages.answer()
    undecided["strokes"][1]["t0_ms"] = 300.0
    undecided["strokes"][1]["points"][0][2] = 10**29  # beyond 64 bits: kept exact
    bad = messages.answer()
    bad["strokes"][1]["points"][0] = [1, 2, 3]
    seen: list[dict[str, Any]] = []
    store.ingestor.observers.append(seen.append)
    batch = [(messages.topic(), Messages.payload(doc)) for doc in (fast, undecided, bad)]
    outcomes = store.ingestor.handle_batch(batch)
    reference = load_validators()["answers"].reference_problem(bad)
    assert [o.kind for o in outcomes] == [
        OutcomeKind.STORED,
        OutcomeKind.STORED,
        OutcomeKind.REJECTED,
    ]
    assert outcomes[2].reason == f"schema: {reference}"
    with store.sessions() as session:
        stored = {row.event_id: row.strokes for row in session.scalars(select(AnswerEvent))}
        letters = list(session.scalars(select(DeadLetter)))
    assert stored == {
        fast["event_id"]: fast["strokes"],
        undecided["event_id"]: undecided["strokes"],
    }
    assert [(letter.reason, letter.payload) for letter in letters] == [
        (outcomes[2].reason, batch[2][1].decode())
    ]
    without_strokes = [
        {k: v for k, v in doc.items() if k != "strokes"} for doc in (fast, undecided)
    ]
    assert seen == without_strokes


def test_postgresql_copies_answers_in_binary(postgres_store: Store) -> None:
    with postgres_store.engine.connect() as connection:
        driver = connection.connection.driver_connection
        with driver.cursor() as cursor:  # type: ignore[union-attr]
            types = _binary_copy_types(cursor, {})
    assert types is not None
    written_as = dict(zip(_ANSWER_COLUMNS, types, strict=True))
    assert written_as["strokes"] == written_as["box_mm"] == pg_types["text"].oid
    assert written_as["created_at"] == pg_types["timestamptz"].oid
    assert written_as["seq"] == pg_types["int8"].oid


def test_values_binary_copy_cannot_write_go_as_text_as_before(
    postgres_store: Store, messages: Messages
) -> None:
    """JSON Schema's integers include 5.0, which binary COPY cannot write as a bigint: the batch
    is copied as text instead, where PostgreSQL refuses it as it always did, and the rest is
    stored with every value as sent."""
    odd = messages.answer(seq=5.0)
    fine = messages.answer(points_awarded=0.5, student_id=None, marker_id="t-1", kind="score")
    outcomes = postgres_store.ingestor.handle_batch(
        [(messages.topic(), Messages.payload(doc)) for doc in (odd, fine)]
    )
    assert [o.kind for o in outcomes] == [OutcomeKind.REJECTED, OutcomeKind.STORED]
    assert outcomes[0].reason == 'unstorable: invalid input syntax for type bigint: "5.0"'
    with postgres_store.sessions() as session:
        row = session.scalars(select(AnswerEvent)).one()
    for column in _ANSWER_COLUMNS:
        if column == "created_at":
            assert row.created_at == parse_rfc3339(fine["created_at"])
        elif column != "received_at":
            assert getattr(row, column) == fine.get(column), column
