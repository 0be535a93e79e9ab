"""Tutoring requests, and the same request compiled to indices and bit masks for the numpy code."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from central.matching.catalog import MAX_GRADE, Catalog, hours_mask, subject_of, window_hours
from central.matching.config import MatchingRules
from central.matching.profiles import mastery_band
from central.matching.strokes import Stroke

DEFAULT_MASTERY = 0.5  # when competency tracking has no estimate for a requested skill yet


class TutoringRequest(BaseModel):
    """A student asks for help on some skills within a time window (hours of the week)."""

    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(min_length=1, max_length=128)
    student_id: str = Field(min_length=1, max_length=128)
    skills: list[str] = Field(min_length=1, max_length=8)
    # The student's mastery 0..1 on requested skills before the session, from competency tracking.
    mastery: dict[str, float] = Field(default_factory=dict)
    window_start_hour: int = Field(ge=0, lt=168)
    window_end_hour: int = Field(gt=0, le=336)
    grade: int = Field(ge=0, le=MAX_GRADE)
    languages: list[str] = Field(min_length=1)
    # Matched against the priority groups' `match`, e.g. {"rural": true}.
    attributes: dict[str, str | bool | int] = Field(default_factory=dict)
    waited_slots: int = Field(default=0, ge=0)
    # What the student is stuck on, for the teacher: text, a photo, or the strokes they wrote.
    # Stored with the request; ranking does not read them.
    question: str | None = Field(default=None, max_length=4000)
    photo_url: str | None = Field(default=None, max_length=2000)
    problem_strokes: list[Stroke] | None = Field(default=None, max_length=2000)

    @model_validator(mode="after")
    def _check(self) -> TutoringRequest:
        window_hours(self.window_start_hour, self.window_end_hour)
        for skill, value in self.mastery.items():
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"mastery of {skill!r} is {value}, not within 0..1")
        if len(set(self.skills)) != len(self.skills):
            raise ValueError("a skill is requested twice")
        return self


@dataclass(frozen=True)
class CompiledRequest:
    skills: tuple[int, ...]
    mastery: np.ndarray  # (len(skills),) float64
    subjects: int  # every subject the teacher must teach
    languages: int
    grade: int
    window: np.ndarray  # (3,) uint64
    band: int  # the student's mastery band over the requested skills
    serve_bonus: float
    gain_weight: float
    group: str | None


def compile_request(
    request: TutoringRequest, catalog: Catalog, rules: MatchingRules
) -> CompiledRequest:
    """Raises KeyError for a skill no teacher states: nobody could be matched on it."""
    skills = tuple(catalog.skill_index(skill) for skill in request.skills)
    mastery = np.array([request.mastery.get(s, DEFAULT_MASTERY) for s in request.skills])
    subjects = 0
    for skill in request.skills:
        index = catalog.subjects.get(subject_of(skill))
        if index is None:
            raise KeyError(f"unknown subject of skill {skill!r}")
        subjects |= 1 << index
    group = rules.group_of(request.attributes)
    bonus = rules.default_serve_bonus if group is None else group.serve_bonus
    return CompiledRequest(
        skills=skills,
        mastery=mastery,
        subjects=subjects,
        languages=catalog.known_language_mask(request.languages),
        grade=request.grade,
        window=hours_mask(window_hours(request.window_start_hour, request.window_end_hour)),
        band=int(mastery_band(float(mastery.mean()))),
        serve_bonus=bonus + rules.wait_bonus_per_slot * request.waited_slots,
        gain_weight=1.0 if group is None else group.gain_weight,
        group=None if group is None else group.name,
    )
