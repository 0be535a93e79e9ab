"""JSON Schema validators for the MQTT contract's payloads (protocol_specs/schemas/), shared by the
gateway and central so that both sides check a payload against the same file."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import FormatChecker
from jsonschema.exceptions import ValidationError, best_match
from jsonschema.protocols import Validator
from jsonschema.validators import extend, validator_for

SCHEMAS_DIR = Path(__file__).resolve().parents[1] / "protocol_specs" / "schemas"
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def parse_rfc3339(value: str) -> datetime:
    """An RFC 3339 timestamp (offset required) as an aware UTC datetime; ValueError otherwise."""
    if not _RFC3339.fullmatch(value):
        raise ValueError(f"{value!r} is not an RFC 3339 date-time")
    try:
        return datetime.fromisoformat(value.upper()).astimezone(UTC)
    except OverflowError as exc:  # e.g. 9999-12-31T23:59:59-01:00 is past year 9999 in UTC
        raise ValueError(f"{value!r} is out of range") from exc


# jsonschema only checks "date-time" when an optional package is installed; the contract must not
# depend on what happens to be installed, so the format is checked here.
_FORMATS = FormatChecker(formats=())


@_FORMATS.checks("date-time", raises=ValueError)
def _is_rfc3339(value: object) -> bool:
    if isinstance(value, str):
        parse_rfc3339(value)
    return True


def _ecma_pattern(
    validator: Validator, pattern: str, instance: Any, _schema: Any
) -> Iterator[ValidationError]:
    # JSON Schema patterns are ECMA-262 regexes, where a final `$` matches only at the very end;
    # Python's also matches before a trailing newline and would accept "gw-1\n" as an id.
    python_pattern = pattern[:-1] + r"\Z" if re.search(r"(?<!\\)\$$", pattern) else pattern
    if validator.is_type(instance, "string") and not re.search(python_pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def reference_validator(schema: dict[str, Any]) -> Validator:
    """jsonschema with the contract's rules: the verdict of record and the readable reasons."""
    cls = extend(validator_for(schema), validators={"pattern": _ecma_pattern})
    cls.check_schema(schema)
    return cls(schema, format_checker=_FORMATS)


@cache
def validator(filename: str) -> Validator:
    return reference_validator(json.loads((SCHEMAS_DIR / filename).read_text(encoding="utf-8")))


def first_problem(filename: str, document: Any) -> str | None:
    """The most relevant schema violation as `path: message`, or None when the document is valid."""
    error = best_match(validator(filename).iter_errors(document))
    if error is None:
        return None
    return f"{error.json_path}: {error.message}"[:300]
