"""The matching library over central's database: one in-memory model per app, kept in step.

Teachers and outcomes live in the database; the Matcher (arrays and profiles) is rebuilt from them
when the set of teachers changes and updated in place when an outcome arrives, so a ranking never
reads the database beyond the current loads.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from central.matching.assignment import assign
from central.matching.catalog import Catalog, hours_mask, window_hours
from central.matching.config import MatchingRules, load_rules
from central.matching.models import MatchingOutcome, MatchingRequest, MatchingTeacher
from central.matching.profiles import Outcome, TeacherProfiles
from central.matching.ranking import Matcher, RankedTeacher
from central.matching.requests import TutoringRequest, compile_request
from central.matching.teachers import TeacherSpec, TeacherTable

logger = logging.getLogger(__name__)

RULES_ENV = "CLASSINK_MATCHING_RULES"


class MatchingError(ValueError):
    """A request the matching service cannot act on, with a message for the caller."""


@dataclass
class BatchResult:
    request_id: str
    teacher_id: str | None
    expected_gain: float | None


class MatchingService:
    def __init__(self, rules: MatchingRules | None = None) -> None:
        self.rules = rules or load_rules(os.environ.get(RULES_ENV))
        self._lock = threading.Lock()
        self._matcher: Matcher | None = None
        self._rows: dict[str, int] = {}
        self.rejected_outcomes = 0

    def invalidate(self) -> None:
        with self._lock:
            self._matcher = None

    def matcher(self, db: Session) -> Matcher:
        with self._lock:
            if self._matcher is None:
                self._matcher = self._build(db)
            return self._matcher

    def _build(self, db: Session) -> Matcher:
        specs = [TeacherSpec.model_validate(t.spec) for t in db.scalars(select(MatchingTeacher))]
        catalog = Catalog()
        table = TeacherTable.build(catalog, specs)
        profiles = TeacherProfiles(table.stated, catalog.skill_subject, self.rules.prior)
        self._rows = {teacher_id: row for row, teacher_id in enumerate(table.ids)}
        history = [
            outcome
            for o in db.scalars(select(MatchingOutcome).order_by(MatchingOutcome.id))
            if (outcome := self._outcome(catalog, o)) is not None
        ]
        self.rejected_outcomes = profiles.observe(history)
        if self.rejected_outcomes:
            logger.warning("%d stored outcomes could not be learned from", self.rejected_outcomes)
        return Matcher(catalog, table, profiles, self.rules)

    def _outcome(self, catalog: Catalog, o: MatchingOutcome) -> Outcome | None:
        row = self._rows.get(o.teacher_id)
        skills = [catalog.skills.get(s) for s in o.skills]
        if row is None or any(s is None for s in skills):
            return None  # the teacher is gone or no longer states the skill
        return Outcome(row, skills, o.mastery_before, o.mastery_after, o.rating)  # type: ignore[arg-type]

    def loads(self, db: Session, matcher: Matcher) -> np.ndarray:
        """Sessions assigned and not yet finished, per teacher row."""
        load = np.zeros(len(matcher.teachers), dtype=np.int64)
        counts = db.execute(
            select(MatchingRequest.teacher_id, func.count())
            .where(MatchingRequest.status == "assigned")
            .group_by(MatchingRequest.teacher_id)
        )
        for teacher_id, count in counts:
            row = self._rows.get(teacher_id)
            if row is not None:
                load[row] = count
        return load

    def rank(self, db: Session, request: TutoringRequest, top_k: int | None) -> list[RankedTeacher]:
        matcher = self.matcher(db)
        try:
            compiled = compile_request(request, matcher.catalog, self.rules)
        except KeyError as error:
            raise MatchingError(str(error.args[0])) from error
        return matcher.rank(compiled, self.loads(db, matcher), top_k)

    def assign_open(
        self, db: Session, slot: tuple[int, int], request_ids: Sequence[str] | None
    ) -> list[BatchResult]:
        """Assign the open requests whose window meets the slot; the rest of them wait on."""
        matcher = self.matcher(db)
        slot_mask = hours_mask(window_hours(*slot))
        query = select(MatchingRequest).where(MatchingRequest.status == "open")
        if request_ids is not None:
            query = query.where(MatchingRequest.request_id.in_(list(request_ids)))
        rows = list(db.scalars(query.order_by(MatchingRequest.created_at)))
        batch, compiled = [], []
        for row in rows:
            request = TutoringRequest.model_validate(row.body)
            request = request.model_copy(update={"waited_slots": row.waited_slots})
            try:
                c = compile_request(request, matcher.catalog, self.rules)
            except KeyError:
                continue  # no teacher states a requested skill: it stays open
            window = c.window & slot_mask
            if not window.any():
                continue
            batch.append(row)
            compiled.append(replace(c, window=window))
        if not batch:
            return []
        result = assign(matcher, compiled, self.loads(db, matcher))
        now = datetime.now(UTC)
        out = []
        for row, teacher, gain in zip(batch, result.teacher, result.expected_gain, strict=True):
            if teacher >= 0:
                row.status = "assigned"
                row.teacher_id = matcher.teachers.ids[int(teacher)]
                row.expected_gain = float(gain)
                row.assigned_at = now
            else:
                row.waited_slots += 1
            out.append(BatchResult(row.request_id, row.teacher_id, row.expected_gain))
        return out

    def record_outcome(self, db: Session, outcome: MatchingOutcome) -> bool:
        """Learns from a stored outcome at once; False if the model cannot use it (logged)."""
        matcher = self.matcher(db)
        learned = self._outcome(matcher.catalog, outcome)
        with self._lock:
            rejected = learned is None or matcher.profiles.observe([learned]) > 0
        if rejected:
            logger.warning("outcome for teacher %s not learned from", outcome.teacher_id)
        return not rejected
