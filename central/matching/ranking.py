"""Ranking one request against every teacher, with the reasons behind each place.

Hard filters first (subject, language, grade, an available hour in the window, a free place), then
a score: expected learning gain from the profiles, an optimism bonus for uncertain teachers (bounded
by `max_bonus`, so new teachers get seen without swamping proven ones), a small weight on ratings,
all discounted by how loaded the teacher already is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel

from central.matching.catalog import Catalog, popcount64
from central.matching.config import MatchingRules
from central.matching.profiles import BAND_NAMES, TeacherProfiles
from central.matching.requests import CompiledRequest
from central.matching.teachers import TeacherTable


class SkillFit(BaseModel):
    skill: str
    stated_level: float
    effectiveness: float
    effectiveness_sd: float
    sessions: int


class SimilarStudents(BaseModel):
    band: str
    sessions: int
    mean_gain: float | None
    adjustment: float


class Availability(BaseModel):
    hours_in_window: int
    window_hours: int


class Load(BaseModel):
    current: int
    capacity: int


class Reasons(BaseModel):
    skill_fit: list[SkillFit]
    similar_students: SimilarStudents
    availability: Availability
    load: Load
    exploration_bonus: float
    new_teacher: bool
    good_rating_share: float
    ratings: int
    summary: list[str]


class RankedTeacher(BaseModel):
    teacher_id: str
    score: float
    expected_gain: float
    expected_gain_sd: float
    reasons: Reasons


@dataclass
class Matcher:
    """Everything ranking and assignment read: the catalog, teachers, profiles and rules."""

    catalog: Catalog
    teachers: TeacherTable
    profiles: TeacherProfiles
    rules: MatchingRules

    def feasible(
        self, request: CompiledRequest, load: np.ndarray, capacity: np.ndarray | None = None
    ) -> np.ndarray:
        t = self.teachers
        ok = (t.subjects & np.uint64(request.subjects)) == np.uint64(request.subjects)
        ok &= (t.languages & np.uint64(request.languages)) != 0
        ok &= ((t.grades >> np.uint64(request.grade)) & np.uint64(1)) != 0
        ok &= t.available_in(request.window)
        ok &= load < (self.capacity_now() if capacity is None else capacity)
        return ok

    def capacity_now(self) -> np.ndarray:
        """Capacity per teacher, with probation bounding what unproven teachers take at once."""
        explore = self.rules.exploration
        on_probation = self.profiles.sessions < explore.probation_sessions
        return np.where(
            on_probation,
            np.minimum(self.teachers.capacity, explore.probation_capacity),
            self.teachers.capacity,
        )

    def bonus(self, sd: np.ndarray) -> np.ndarray:
        explore = self.rules.exploration
        if explore.method == "none":
            return np.zeros_like(sd)
        return np.minimum(explore.ucb_c * sd, explore.max_bonus)

    def scores(
        self, request: CompiledRequest, teachers: np.ndarray, load: np.ndarray, capacity: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(score, expected gain, sd, bonus) for the given teacher rows."""
        gain, sd = self.profiles.expected_gain(request.skills, request.mastery, teachers)
        bonus = self.bonus(sd)
        rating = self.rules.ranking.rating_weight * (self.profiles.rating_share(teachers) - 0.5)
        busy = load[teachers] / np.maximum(capacity[teachers], 1)
        score = (gain + bonus + rating) * (1.0 - self.rules.ranking.load_penalty * busy)
        return score, gain, sd, bonus

    def rank(
        self, request: CompiledRequest, load: np.ndarray | None = None, top_k: int | None = None
    ) -> list[RankedTeacher]:
        load = np.zeros(len(self.teachers), dtype=np.int32) if load is None else load
        k = top_k or self.rules.ranking.top_k
        capacity = self.capacity_now()
        rows = np.flatnonzero(self.feasible(request, load, capacity))
        if rows.size == 0:
            return []
        score, gain, sd, bonus = self.scores(request, rows, load, capacity)
        best = np.argpartition(-score, k)[:k] if rows.size > k else np.arange(rows.size)
        best = best[np.argsort(-score[best], kind="stable")]
        return [
            self._ranked(request, int(rows[i]), float(score[i]), float(gain[i]), float(sd[i]),
                         float(bonus[i]), int(load[rows[i]]), int(capacity[rows[i]]))
            for i in best
        ]  # fmt: skip

    def _ranked(
        self,
        request: CompiledRequest,
        row: int,
        score: float,
        gain: float,
        sd: float,
        bonus: float,
        load: int,
        capacity: int,
    ) -> RankedTeacher:
        p = self.profiles
        snap = p.snapshot()
        fits = [
            SkillFit(
                skill=self.catalog.skills.names[skill],
                stated_level=round(float(self.teachers.stated[row, skill]), 3),
                effectiveness=round(float(snap.mean[skill, row]), 4),
                effectiveness_sd=round(float(np.sqrt(snap.var[skill, row])), 4),
                sessions=int(p.skill_sessions[row, skill]),
            )
            for skill in request.skills
        ]
        band = request.band
        band_sessions = int(p.band_n[row, band])
        mean_gain = p.band_gain[row, band] / band_sessions if band_sessions else None
        in_window = int(popcount64(self.teachers.availability[row] & request.window).sum())
        window = int(popcount64(request.window).sum())
        new = bool(p.sessions[row] < self.rules.exploration.probation_sessions)
        summary = [
            "skill fit: "
            + ", ".join(f"{f.skill} {f.effectiveness:.2f}±{f.effectiveness_sd:.2f}" for f in fits),
            f"{band_sessions} past sessions with {BAND_NAMES[band]} students"
            + (f", mean gain {mean_gain:.3f}" if mean_gain is not None else ""),
            f"available {in_window} of {window} hours in the window",
            f"load {load} of {capacity}",
        ]
        if new:
            summary.append(f"new teacher ({int(p.sessions[row])} sessions): exploration bonus")
        return RankedTeacher(
            teacher_id=self.teachers.ids[row],
            score=round(score, 5),
            expected_gain=round(gain, 5),
            expected_gain_sd=round(sd, 5),
            reasons=Reasons(
                skill_fit=fits,
                similar_students=SimilarStudents(
                    band=BAND_NAMES[band],
                    sessions=band_sessions,
                    mean_gain=None if mean_gain is None else round(float(mean_gain), 4),
                    adjustment=round(float(snap.band[band, row]), 4),
                ),
                availability=Availability(hours_in_window=in_window, window_hours=window),
                load=Load(current=load, capacity=capacity),
                exploration_bonus=round(bonus, 4),
                new_teacher=new,
                good_rating_share=round(float(p.rating_share(row)), 3),
                ratings=int(p.rating_n[row]),
                summary=summary,
            ),
        )
