"""Mastery in the central store: the scored answers tracing learns from, replaying a student's
answers through the models, the online update on each ingested answer, and the batch refit.

Tracing uses the latest revision of each (student, exam, question) that is scored, on questions
tagged with skills; an answer on a question with several skills is an answer on each of them.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import Insert, delete, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from central.ingest import parse_rfc3339
from central.models import AnswerEvent
from central.tracing import TracingError
from central.tracing.bkt import BktModel
from central.tracing.catalogue import item_skills
from central.tracing.data import encode
from central.tracing.logistic import LogisticModel
from central.tracing.models import ItemSkill, Mastery, MasteryStep, ModelVersion, StudentTraceRow
from central.tracing.online import StudentTrace, Tracer
from ext.bkt_ref import PARAMS

logger = logging.getLogger(__name__)

# The logistic model is fitted only from this many tracing answers on; BKT always is.
MIN_LOGISTIC_ANSWERS = 200


@dataclass(frozen=True)
class TracedAnswer:
    student_id: str
    exam_id: str
    question_id: str
    event_id: str
    created_at: datetime
    correct: bool


def scored_answers(session: Session, student_id: str | None = None) -> list[TracedAnswer]:
    """Latest revisions that are scored, of students known by id, in the order they were written."""
    rank = (
        func.row_number()
        .over(
            partition_by=(AnswerEvent.student_id, AnswerEvent.exam_id, AnswerEvent.question_id),
            order_by=(
                AnswerEvent.revision.desc(),
                AnswerEvent.created_at.desc(),
                AnswerEvent.event_id.desc(),
            ),
        )
        .label("rank")
    )
    latest = select(AnswerEvent.event_id, rank).where(AnswerEvent.student_id.is_not(None))
    if student_id is not None:
        latest = latest.where(AnswerEvent.student_id == student_id)
    ranked = latest.subquery()
    rows = session.execute(
        select(
            AnswerEvent.student_id,
            AnswerEvent.exam_id,
            AnswerEvent.question_id,
            AnswerEvent.event_id,
            AnswerEvent.created_at,
            AnswerEvent.correct,
        )
        .join(ranked, ranked.c.event_id == AnswerEvent.event_id)
        .where(
            ranked.c.rank == 1,
            AnswerEvent.status == "scored",
            AnswerEvent.correct.is_not(None),
        )
        .order_by(AnswerEvent.student_id, AnswerEvent.created_at, AnswerEvent.event_id)
    )
    return [TracedAnswer(*row) for row in rows]


def all_item_skills(session: Session) -> dict[tuple[str, str], list[str]]:
    tags: dict[tuple[str, str], list[str]] = defaultdict(list)
    for exam_id, question_id, skill_id in session.execute(
        select(ItemSkill.exam_id, ItemSkill.question_id, ItemSkill.skill_id).order_by(
            ItemSkill.exam_id, ItemSkill.question_id, ItemSkill.skill_id
        )
    ):
        tags[exam_id, question_id].append(skill_id)
    return dict(tags)


def latest_version(session: Session) -> ModelVersion | None:
    return session.scalars(
        select(ModelVersion).order_by(ModelVersion.version.desc()).limit(1)
    ).first()


def tracer_of(version: ModelVersion | None) -> Tracer:
    """The models of a stored version; before any refit, BKT with the generic skill everywhere."""
    if version is None:
        return Tracer(BktModel([], np.empty((0, len(PARAMS)))))
    logistic = LogisticModel.from_json(version.logistic) if version.logistic else None
    return Tracer(BktModel.from_json(version.bkt), logistic)


@dataclass
class _Replayed:
    trace: StudentTrace
    steps: list[dict[str, Any]]
    counts: dict[str, list[int]]  # skill -> [answers, correct]
    last_answer_at: datetime | None


def _apply(
    tracer: Tracer,
    replayed: _Replayed,
    answer: TracedAnswer,
    skills: Iterable[str],
    version: int | None,
) -> None:
    for skill in skills:
        seen = tracer.observe(replayed.trace, skill, answer.correct)
        replayed.steps.append(
            {
                "student_id": answer.student_id,
                "skill_id": skill,
                "event_id": answer.event_id,
                "exam_id": answer.exam_id,
                "question_id": answer.question_id,
                "answered_at": answer.created_at,
                "correct": answer.correct,
                "predicted": seen.predicted_logistic
                if seen.predicted_logistic is not None
                else seen.predicted_bkt,
                "mastery_before": seen.mastery_before,
                "mastery_after": seen.mastery_after,
                "model_version": version,
            }
        )
        count = replayed.counts.setdefault(skill, [0, 0])
        count[0] += 1
        count[1] += int(answer.correct)
    if replayed.last_answer_at is None or answer.created_at > replayed.last_answer_at:
        replayed.last_answer_at = answer.created_at


def _write_student(
    session: Session, student_id: str, replayed: _Replayed, version: int | None, now: datetime
) -> None:
    """Replace everything stored about the student's mastery with `replayed`."""
    session.execute(delete(MasteryStep).where(MasteryStep.student_id == student_id))
    session.execute(delete(Mastery).where(Mastery.student_id == student_id))
    if replayed.steps:
        session.execute(insert(MasteryStep), replayed.steps)
    rows = [
        {
            "student_id": student_id,
            "skill_id": skill,
            "mastery": replayed.trace.mastery[skill],
            "answers": answers,
            "correct": correct,
            "updated_at": now,
        }
        for skill, (answers, correct) in replayed.counts.items()
    ]
    if rows:
        session.execute(insert(Mastery), rows)
    row = session.get(StudentTraceRow, student_id)
    if row is None:
        row = StudentTraceRow(student_id=student_id)
        session.add(row)
    row.trace = replayed.trace.to_json()
    row.model_version = version
    row.last_answer_at = replayed.last_answer_at
    row.updated_at = now


def replay_student(session: Session, student_id: str, tracer: Tracer, version: int | None) -> int:
    """Recompute one student's mastery from all their answers; the number of skill answers."""
    tags = all_item_skills(session)
    replayed = _Replayed(StudentTrace(), [], {}, None)
    for answer in scored_answers(session, student_id):
        _apply(
            tracer, replayed, answer, tags.get((answer.exam_id, answer.question_id), ()), version
        )
    _write_student(session, student_id, replayed, version, datetime.now(UTC))
    return len(replayed.steps)


def _insert_ignoring_conflicts(session: Session, **values: Any) -> Insert:
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(StudentTraceRow).values(**values).on_conflict_do_nothing()
    return sqlite.insert(StudentTraceRow).values(**values).on_conflict_do_nothing()


class MasteryUpdater:
    """The ingest observer: updates the student's mastery right after their answer is stored.

    Incremental when the answer simply comes next; a replay of the student's answers when it is a
    revision of an earlier answer, arrives out of order, or the model version changed since.
    """

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self._tracers: dict[int | None, Tracer] = {}
        self._lock = threading.Lock()
        self.updates = 0
        self.replays = 0

    def _tracer(self, version: ModelVersion | None) -> Tracer:
        key = None if version is None else version.version
        with self._lock:
            tracer = self._tracers.get(key)
            if tracer is None:
                tracer = self._tracers[key] = tracer_of(version)
        return tracer

    def __call__(self, doc: dict[str, Any]) -> None:
        student_id, correct = doc.get("student_id"), doc.get("correct")
        if student_id is None or correct is None or doc.get("status") != "scored":
            return
        answer = TracedAnswer(
            student_id,
            doc["exam_id"],
            doc["question_id"],
            doc["event_id"],
            parse_rfc3339(doc["created_at"]),
            bool(correct),
        )
        with self._sessions.begin() as session:
            skills = item_skills(session, answer.exam_id, answer.question_id)
            if not skills:
                return
            now = datetime.now(UTC)
            # Create, then lock the student's row: other central workers may trace them too.
            session.execute(
                _insert_ignoring_conflicts(
                    session,
                    student_id=student_id,
                    trace=StudentTrace().to_json(),
                    model_version=None,
                    last_answer_at=None,
                    updated_at=now,
                )
            )
            row = session.execute(
                select(StudentTraceRow)
                .where(StudentTraceRow.student_id == student_id)
                .with_for_update()
            ).scalar_one()
            version = latest_version(session)
            number = None if version is None else version.version
            tracer = self._tracer(version)
            if self._needs_replay(session, row, answer, number):
                replay_student(session, student_id, tracer, number)
                self.replays += 1
                return
            replayed = _Replayed(StudentTrace.from_json(row.trace), [], {}, row.last_answer_at)
            _apply(tracer, replayed, answer, skills, number)
            session.execute(insert(MasteryStep), replayed.steps)
            for skill in skills:
                mastery = session.get(Mastery, (student_id, skill))
                if mastery is None:
                    mastery = Mastery(student_id=student_id, skill_id=skill, answers=0, correct=0)
                    session.add(mastery)
                mastery.mastery = replayed.trace.mastery[skill]
                mastery.answers += 1
                mastery.correct += int(answer.correct)
                mastery.updated_at = now
            row.trace = replayed.trace.to_json()
            row.model_version = number
            row.last_answer_at = replayed.last_answer_at
            row.updated_at = now
            self.updates += 1

    @staticmethod
    def _needs_replay(
        session: Session, row: StudentTraceRow, answer: TracedAnswer, version: int | None
    ) -> bool:
        if row.last_answer_at is None:
            return False
        if row.model_version != version or answer.created_at < row.last_answer_at:
            return True
        other_revisions = session.scalar(
            select(func.count()).where(
                AnswerEvent.student_id == answer.student_id,
                AnswerEvent.exam_id == answer.exam_id,
                AnswerEvent.question_id == answer.question_id,
                AnswerEvent.event_id != answer.event_id,
            )
        )
        return bool(other_revisions)


def attach(ingestor: Any, sessions: sessionmaker[Session]) -> MasteryUpdater:
    """Make `ingestor` (central.ingest.Ingestor) update mastery on every stored scored answer."""
    updater = MasteryUpdater(sessions)
    ingestor.observers.append(updater)
    return updater


@dataclass(frozen=True)
class RefitSummary:
    version: int
    answers: int
    students: int
    skills: int
    bkt_iterations: int
    logistic: bool
    seconds: float


def refit(
    sessions: sessionmaker[Session], progress: Callable[[int, int], None] | None = None
) -> RefitSummary:
    """Fit both models on every traced answer, store them as a new version, replay every student.

    `progress(done, total)` is called as students are replayed.
    """
    started = datetime.now(UTC)
    with sessions.begin() as session:
        answers = scored_answers(session)
        tags = all_item_skills(session)
    rows = [
        (a.student_id, skill, int(a.correct))
        for a in answers
        for skill in tags.get((a.exam_id, a.question_id), ())
    ]
    if not rows:
        raise TracingError(
            "nothing to fit: no scored answers of known students on questions tagged with skills "
            "(import item tags with `classink tracing import --items`)"
        )
    data = encode(rows)
    bkt = BktModel.fit(data)
    logistic = None
    note = ""
    if data.size >= MIN_LOGISTIC_ANSWERS and 0 < int(data.correct.sum()) < data.size:
        logistic = LogisticModel.fit(data)
    else:
        note = (
            f"logistic model not fitted: needs {MIN_LOGISTIC_ANSWERS} answers, both right and wrong"
        )
    with sessions.begin() as session:
        version = ModelVersion(
            created_at=started,
            answers=data.size,
            students=len(data.user_names),
            bkt=bkt.to_json(),
            logistic=None if logistic is None else logistic.to_json(),
            note=note,
        )
        session.add(version)
        session.flush()
        number = version.version
        tracer = tracer_of(version)
        students = sorted(session.scalars(select(StudentTraceRow.student_id)))
        students = sorted(set(students) | set(data.user_names))
        by_student: dict[str, list[TracedAnswer]] = defaultdict(list)
        for answer in answers:
            by_student[answer.student_id].append(answer)
        now = datetime.now(UTC)
        for done, student_id in enumerate(students, 1):
            replayed = _Replayed(StudentTrace(), [], {}, None)
            for answer in by_student.get(student_id, ()):
                skills = tags.get((answer.exam_id, answer.question_id), ())
                _apply(tracer, replayed, answer, skills, number)
            _write_student(session, student_id, replayed, number, now)
            if progress is not None:
                progress(done, len(students))
    return RefitSummary(
        version=number,
        answers=data.size,
        students=len(data.user_names),
        skills=len(data.skill_names),
        bkt_iterations=bkt.iterations,
        logistic=logistic is not None,
        seconds=(datetime.now(UTC) - started).total_seconds(),
    )
