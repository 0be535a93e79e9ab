"""The JSON value locator (ext.jsonspan) against its Python reference and a real JSON parser:
the span it finds must parse to exactly the value the parser kept for that top-level key."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from conftest import Messages, Store
from hypothesis import given, settings
from hypothesis import strategies as st

from central.ingest import OutcomeKind
from central.models import AnswerEvent
from ext import jsonspan, jsonspan_ref

LOCATORS = [
    pytest.param(jsonspan.value_span, id="cython"),
    pytest.param(jsonspan_ref.value_span, id="ref"),
]
Locate = Callable[[bytes, bytes], tuple[int, int] | None]


def located(locate: Locate, text: bytes, key: bytes = b"strokes") -> Any:
    span = locate(text, key)
    return None if span is None else text[span[0] : span[1]]


@pytest.mark.parametrize("locate", LOCATORS)
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b'{"a":1,"strokes":[[1,2],{"b":"]}"}],"c":3}', b'[[1,2],{"b":"]}"}]'),
        (b' { "strokes" : [ 1 ] , "x" : "\\"strokes\\":2" } ', b"[ 1 ]"),
        (b'{"x":{"strokes":[9]},"strokes":null}', b"null"),
        (b'{"strokes":1,"strokes":[2]}', b"[2]"),  # parsers keep the last duplicate
        (b'{"s\\u0074rokes":[1]}', None),  # an escaped name is left to the parser
        (b'{"x":"strokes","y":["strokes",1]}', None),
        (b'{"x":{"strokes":[9]}}', None),  # not at the top level
        (b'["strokes",{"strokes":1}]', None),
        (b"", None),
        (b'{"strokes":[1', None),  # not JSON: no span
        (b'{"strokes":"unterminated', None),
    ],
)
def test_finds_the_top_level_value_only(
    locate: Locate, text: bytes, expected: bytes | None
) -> None:
    assert located(locate, text) == expected


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.sampled_from('ab"\\,:{}[] \u00e9\u2028strokes')),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(["strokes", "a", 'x"', "s\\"]), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(
    st.dictionaries(st.sampled_from(["strokes", "a", "b", 'str"okes']), json_values, max_size=5),
    st.sampled_from([(",", ":"), (", ", ": "), (" ,\n", " :\t")]),
)
def test_the_span_parses_to_the_value_a_parser_keeps(
    doc: dict[str, Any], separators: tuple[str, str]
) -> None:
    text = json.dumps(doc, separators=separators, ensure_ascii=False).encode()
    span = jsonspan_ref.value_span(text, b"strokes")
    assert jsonspan.value_span(text, b"strokes") == span
    if "strokes" in doc:
        assert span is not None
        assert json.loads(text[span[0] : span[1]]) == doc["strokes"]
    else:
        assert span is None


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=80) | st.text(alphabet='{}[]",:\\ strokes1').map(str.encode))
def test_kernel_and_reference_agree_on_any_bytes(text: bytes) -> None:
    assert jsonspan.value_span(text, b"strokes") == jsonspan_ref.value_span(text, b"strokes")


@pytest.mark.parametrize(
    "strokes_key",
    [
        pytest.param('"strokes"', id="as-written"),
        pytest.param('"str\\u006fkes"', id="escaped-name-serialised-instead"),
    ],
)
def test_stored_strokes_are_the_payloads_strokes(
    store: Store, messages: Messages, strokes_key: str
) -> None:
    answer = messages.answer()
    answer["strokes"][0]["points"].append([1e-7, 12345678.25, 9, 1])
    body = json.dumps({k: v for k, v in answer.items() if k != "strokes"}, indent=1)
    strokes = json.dumps(answer["strokes"], indent=2)
    payload = (body[:-1] + f", {strokes_key} :\n {strokes} \n}}").encode()
    assert json.loads(payload) == answer
    assert store.ingestor.handle(messages.topic(), payload).kind == OutcomeKind.STORED
    with store.sessions() as session:
        stored = session.get(AnswerEvent, answer["event_id"])
        assert stored is not None and stored.strokes == answer["strokes"]
