"""Parsing and schema validation of the MQTT payloads central ingests, fast enough for thousands
of answers a second on one core.

The reference is jsonschema with the contract's own rules (RFC 3339 date-times that fit in UTC,
ECMA-262 `$`); its messages are what dead letters record. It takes about a millisecond for an
answer with a few hundred pen points, so the verdict comes first from jsonschema-rs compiled from
the same schema file (about 15 µs): a payload it accepts, and whose date-times pass the same
Python check the reference uses, is valid; anything else goes through the reference for its
readable reason. tests/test_ingest_payloads.py checks that both paths give the same verdicts.

JSON is parsed by orjson and, whenever orjson refuses a payload or the payload holds a number
orjson would read differently (integers beyond 64 bits become floats there), by the standard
library with the contract's rules, so the verdict never depends on which parser ran.

An answer's strokes, most of its bytes, are not parsed at all when StrokesFastPath can help:
ext/strokecheck checks them in place against the schema's strokes rules, and only the rest of the
answer is parsed and validated, against the schema with strokes allowed to be anything. Whatever
that path cannot accept goes through the full one above, which also gives every rejection its
reason; tests/test_ingest_strokes_fast_path.py checks that both paths give the same verdicts.
"""

from __future__ import annotations

import copy
import json
import logging
import math
from pathlib import Path
from typing import Any

import jsonschema_rs
import orjson
from ext.strokecheck import STROKES_SCHEMA, VALID, find_strokes
from jsonschema.exceptions import best_match

from classink.schemas import SCHEMAS_DIR, parse_rfc3339, reference_validator

logger = logging.getLogger(__name__)

SCHEMA_FILES = {"answers": "answer-event.v1.json", "status": "status.v1.json"}
# 20 digits in a row may be an integer beyond 64 bits, which orjson turns into a float. Found by
# mapping every digit to "0" and everything else to " ": a regex took ~100 µs an answer.
_DIGITS_AS_ZEROS = bytes(ord("0") if chr(b).isdigit() and b < 128 else ord(" ") for b in range(256))
_LONG_DIGITS = b"0" * 20


class PayloadRejected(Exception):
    """The payload breaks the contract; `reason` says how, for the dead letter."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _count_formats(node: Any) -> int:
    if isinstance(node, dict):
        own = isinstance(node.get("format"), str)
        return own + sum(_count_formats(value) for value in node.values())
    if isinstance(node, list):
        return sum(_count_formats(value) for value in node)
    return 0


def _date_time_fields(schema: dict[str, Any]) -> tuple[str, ...]:
    """Top-level properties with format date-time. The fast path checks formats only there, so a
    schema with a format anywhere else is refused rather than half checked."""
    top = tuple(
        name
        for name, spec in schema.get("properties", {}).items()
        if isinstance(spec, dict) and spec.get("format") == "date-time"
    )
    if _count_formats(schema) != len(top):
        raise ValueError("only top-level date-time formats are supported by the fast validator")
    return top


class PayloadValidator:
    """Validates one kind of message: `problem(doc)` is None or the reference's reason."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.reference = reference_validator(schema)
        self._compiled = jsonschema_rs.validator_for(schema, validate_formats=False)
        self._date_times = _date_time_fields(schema)

    def problem(self, doc: Any) -> str | None:
        if self._fast_accepts(doc):
            return None
        return self.reference_problem(doc)

    def reference_problem(self, doc: Any) -> str | None:
        error = best_match(self.reference.iter_errors(doc))
        return None if error is None else f"{error.json_path}: {error.message}"

    def _fast_accepts(self, doc: Any) -> bool:
        try:
            if not self._compiled.is_valid(doc):
                return False
        except (ValueError, OverflowError, TypeError):  # e.g. a lone surrogate in a string
            return False
        for name in self._date_times:
            value = doc.get(name)
            if isinstance(value, str):
                try:
                    parse_rfc3339(value)
                except ValueError:
                    return False
        return True


def load_validators(schemas_dir: Path = SCHEMAS_DIR) -> dict[str, PayloadValidator]:
    return {
        kind: PayloadValidator(json.loads((schemas_dir / name).read_text(encoding="utf-8")))
        for kind, name in SCHEMA_FILES.items()
    }


def load_strokes_fast_path(schemas_dir: Path = SCHEMAS_DIR) -> StrokesFastPath:
    schema = (schemas_dir / SCHEMA_FILES["answers"]).read_text(encoding="utf-8")
    return StrokesFastPath(json.loads(schema))


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    # Infinity cannot be stored in a JSON column, and 1e400 would silently become it.
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text} is out of range")
    return value


def parse_json_strictly(payload: bytes) -> Any:
    """The standard library's parser with the contract's rules: the reference for parse_json."""
    try:
        return json.loads(
            payload.decode("utf-8"), parse_constant=_refuse_constant, parse_float=_finite_float
        )
    except (ValueError, RecursionError) as exc:
        raise PayloadRejected("invalid_json") from exc


def parse_json(payload: bytes) -> Any:
    if _LONG_DIGITS not in payload.translate(_DIGITS_AS_ZEROS):
        try:
            return orjson.loads(payload)
        except orjson.JSONDecodeError:
            pass  # the strict parser decides, so that both agree on every edge case
    return parse_json_strictly(payload)


class StrokesFastPath:
    """Accepts valid answers without parsing their strokes (see the module's doc).

    `accept(payload)` is the answer's fields without `strokes`, and the strokes' JSON text, if
    the payload is a valid answer; None means the full path must decide. It is never wrong in the
    other direction: a payload it accepts is one the full path accepts, with the same fields.
    """

    def __init__(self, schema: dict[str, Any]) -> None:
        self.enabled = _strokes_only_where_expected(schema)
        if not self.enabled:
            logger.warning(
                "the answer schema's strokes rules are not those ext/strokecheck implements: "
                "every answer takes the full (slower) validation path"
            )
            return
        envelope = copy.deepcopy(schema)
        envelope["properties"]["strokes"] = True
        self._envelope = PayloadValidator(envelope)

    def accept(self, payload: bytes) -> tuple[dict[str, Any], str] | None:
        if not self.enabled:
            return None
        verdict, start, end, _ = find_strokes(payload)
        if verdict != VALID:
            return None
        # The rest of the answer, with the strokes replaced by null: their schema is `true` there.
        envelope = payload[:start] + b"null" + payload[end:]
        # A `\u` escape could spell another member named strokes that parsers would keep instead
        # of the one checked; the null must be what the parser sees as strokes.
        if b"\\u" in envelope:
            return None
        try:
            doc = parse_json(envelope)
        except PayloadRejected:
            return None
        if not isinstance(doc, dict) or doc.get("strokes", False) is not None:
            return None
        if not self._envelope._fast_accepts(doc):
            return None
        del doc["strokes"]
        # VALID strokes are plain ASCII.
        return doc, payload[start:end].decode("ascii")


# Keywords that could apply rules to a member without naming it.
_INDIRECT_KEYWORDS = ("patternProperties", "propertyNames", "dependentSchemas", "unevaluated")


def _strokes_only_where_expected(schema: dict[str, Any]) -> bool:
    """True if the schema's only rules about strokes are STROKES_SCHEMA and that they are
    required, so that checking them apart from the rest is checking the whole."""
    properties = schema.get("properties")
    if not isinstance(properties, dict) or properties.get("strokes") != STROKES_SCHEMA:
        return False
    if "strokes" not in schema.get("required", []):
        return False
    rest = dict(schema, properties={k: v for k, v in properties.items() if k != "strokes"})
    rest["required"] = [name for name in schema["required"] if name != "strokes"]
    text = json.dumps(rest)
    return "strokes" not in text and not any(word in text for word in _INDIRECT_KEYWORDS)
