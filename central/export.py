"""`classink central export-answers`: every stored answer event, one JSON object a line.

The export is the checkable side of delivery: compared with a classroom's ground truth
(`central/truth_check.py`) it shows whether any written answer was lost or stored twice. Each line
carries the event's identity (event id, gateway, seq), the answer (student, exam, question,
revision), what was recognised and scored, a digest of its strokes (two events with the same
digest carry the same ink), and when central stored it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any, TextIO

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from central.models import AnswerEvent

EXPORT_FIELDS = (
    "event_id",
    "site_id",
    "gateway_id",
    "seq",
    "student_id",
    "pen_id",
    "exam_id",
    "page_address",
    "question_id",
    "revision",
    "label",
    "confidence",
    "status",
    "correct",
    "points_awarded",
    "points_possible",
)


def strokes_digest(strokes: list[Any]) -> str:
    """The same ink gives the same digest, whichever event carried it."""
    canonical = json.dumps(strokes, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(canonical).hexdigest()[:16]


def exported_rows(engine: Engine, exam_id: str | None = None) -> Iterator[dict[str, Any]]:
    query = select(AnswerEvent).order_by(
        AnswerEvent.site_id, AnswerEvent.gateway_id, AnswerEvent.seq
    )
    if exam_id is not None:
        query = query.where(AnswerEvent.exam_id == exam_id)
    with Session(engine) as session:
        for row in session.scalars(query.execution_options(yield_per=1000)):
            yield as_export(row)


def as_export(row: AnswerEvent) -> dict[str, Any]:
    out = {name: getattr(row, name) for name in EXPORT_FIELDS}
    out["strokes"] = len(row.strokes)
    out["strokes_digest"] = strokes_digest(row.strokes)
    out["created_at"] = _rfc3339(row.created_at)
    out["stored_at"] = _rfc3339(row.received_at)
    return out


def write_jsonl(rows: Iterator[dict[str, Any]], out: TextIO) -> int:
    count = 0
    for row in rows:
        out.write(json.dumps(row, separators=(",", ":")) + "\n")
        count += 1
    return count


def _rfc3339(value) -> str:
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")
