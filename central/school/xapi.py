"""Answers as xAPI 1.0.3 statements, for a school's learning record store.

Each statement's id is a UUIDv5 of the answer's event id (a marker's decision: of the decision's
id), so sending the same answers again gives the same ids, which an LRS treats as the same
statements. Researchers get the learner as a keyed pseudonym instead of the student id.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Iterator
from datetime import datetime
from typing import Any
from urllib.parse import quote

from sqlalchemy import select
from sqlalchemy.orm import Session

from central.models import AnswerEvent
from central.school.models import AnswerDecision

# Fixed forever: changing it would change every statement id already sent.
STATEMENT_NAMESPACE = uuid.UUID("5d6c2f0e-8f43-5b1e-9a57-6c1a55c1a0e7")
XAPI_VERSION = "1.0.3"
ANSWERED = {"id": "http://adlnet.gov/expapi/verbs/answered", "display": {"en-US": "answered"}}
SCORED = {"id": "http://adlnet.gov/expapi/verbs/scored", "display": {"en-US": "scored"}}
INTERACTION = "http://adlnet.gov/expapi/activities/cmi.interaction"
ASSESSMENT = "http://adlnet.gov/expapi/activities/assessment"
INTERACTION_TYPES = {"choice": "choice", "digit": "numeric", "mark": "true-false"}
EXTENSION = "https://classink.example/xapi/extensions/"


def statement_id(event_id: str) -> str:
    return str(uuid.uuid5(STATEMENT_NAMESPACE, event_id))


def _time(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _actor(home: str, learner: str) -> dict[str, Any]:
    return {"objectType": "Agent", "account": {"homePage": home, "name": learner}}


def _activity(home: str, exam_id: str, question_id: str, kind: str) -> dict[str, Any]:
    definition: dict[str, Any] = {
        "type": INTERACTION,
        "name": {"en-US": f"{exam_id} {question_id}"},
        "interactionType": INTERACTION_TYPES.get(kind, "other"),
    }
    return {
        "objectType": "Activity",
        "id": f"{home}/exams/{quote(exam_id, safe='')}/questions/{quote(question_id, safe='')}",
        "definition": definition,
    }


def _context(home: str, exam_id: str, event: AnswerEvent, key: str) -> dict[str, Any]:
    return {
        "contextActivities": {
            "parent": [
                {
                    "objectType": "Activity",
                    "id": f"{home}/exams/{quote(exam_id, safe='')}",
                    "definition": {"type": ASSESSMENT, "name": {"en-US": exam_id}},
                }
            ]
        },
        "extensions": {
            EXTENSION + "event-id": key,
            EXTENSION + "revision": event.revision,
            EXTENSION + "site": event.site_id,
            EXTENSION + "gateway": event.gateway_id,
        },
    }


def _score(awarded: float | None, possible: float) -> dict[str, Any] | None:
    if awarded is None:
        return None
    score: dict[str, Any] = {"raw": awarded, "min": 0, "max": possible}
    if possible > 0:
        score["scaled"] = max(0.0, min(1.0, awarded / possible))
    return score


def answer_statement(home: str, event: AnswerEvent, learner: str) -> dict[str, Any]:
    result: dict[str, Any] = {
        "response": event.label,
        "extensions": {
            EXTENSION + "confidence": event.confidence,
            EXTENSION + "status": event.status,
        },
    }
    if event.correct is not None:
        result["success"] = event.correct
    score = _score(event.points_awarded, event.points_possible)
    if score is not None:
        result["score"] = score
    return {
        "id": statement_id(event.event_id),
        "version": XAPI_VERSION,
        "actor": _actor(home, learner),
        "verb": ANSWERED,
        "object": _activity(home, event.exam_id, event.question_id, event.kind),
        "result": result,
        "context": _context(home, event.exam_id, event, event.event_id),
        "timestamp": _time(event.created_at),
    }


def decision_statement(
    home: str, event: AnswerEvent, decision: AnswerDecision, learner: str, marker: str
) -> dict[str, Any]:
    key = f"decision:{decision.id}"
    context = _context(home, event.exam_id, event, event.event_id)
    context["instructor"] = _actor(home, marker)
    context["statement"] = {"objectType": "StatementRef", "id": statement_id(event.event_id)}
    return {
        "id": statement_id(key),
        "version": XAPI_VERSION,
        "actor": _actor(home, learner),
        "verb": SCORED,
        "object": _activity(home, event.exam_id, event.question_id, event.kind),
        "result": {
            "response": decision.label,
            "success": decision.correct,
            "score": _score(decision.points_awarded, event.points_possible),
        },
        "context": context,
        "timestamp": _time(decision.decided_at),
    }


def statements(
    session: Session,
    home: str,
    learner_of: Callable[[str], str],
    exam_id: str | None = None,
    offset: int = 0,
    limit: int | None = None,
    students: Collection[str] | None = None,
) -> Iterator[dict[str, Any]]:
    """Answers in (site, gateway, seq) order, each followed by the decisions made on it.
    `learner_of` maps a student id (or 'pen <id>' for an unrostered pen) to the actor's name;
    `students` limits the export to their answers (unrostered pens left out)."""
    if students is not None and not students:
        return
    query = select(AnswerEvent).order_by(
        AnswerEvent.site_id, AnswerEvent.gateway_id, AnswerEvent.seq, AnswerEvent.event_id
    )
    if exam_id is not None:
        query = query.where(AnswerEvent.exam_id == exam_id)
    if students is not None:
        query = query.where(AnswerEvent.student_id.in_(sorted(students)))
    query = query.offset(offset)
    if limit is not None:
        query = query.limit(limit)
    events = list(session.scalars(query))
    decisions: dict[str, list[AnswerDecision]] = {}
    ids = [e.event_id for e in events]
    for start in range(0, len(ids), 500):
        for row in session.scalars(
            select(AnswerDecision)
            .where(AnswerDecision.event_id.in_(ids[start : start + 500]))
            .order_by(AnswerDecision.decided_at, AnswerDecision.id)
        ):
            decisions.setdefault(row.event_id, []).append(row)
    for event in events:
        learner = learner_of(event.student_id or f"pen {event.pen_id}")
        yield answer_statement(home, event, learner)
        for decision in decisions.get(event.event_id, []):
            yield decision_statement(
                home, event, decision, learner, learner_of(f"marker {decision.decided_by}")
            )
