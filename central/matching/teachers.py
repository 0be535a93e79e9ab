"""Teachers' stated side as numpy arrays: expertise, preferences, weekly availability, capacity."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from central.matching.catalog import (
    HOURS_PER_WEEK,
    MASK_WORDS,
    Catalog,
    grade_mask,
    hours_mask,
    weekly_hours,
)


class TeacherSpec(BaseModel):
    """What a teacher tells us: skills with a self-rated level 0..1, whom they teach, and when."""

    model_config = ConfigDict(extra="forbid")

    teacher_id: str = Field(min_length=1, max_length=128)
    skills: dict[str, float] = Field(min_length=1)
    grades: list[int] = Field(min_length=1)
    languages: list[str] = Field(min_length=1)
    # (day 0 = Monday .. 6, start hour, end hour) blocks, local district time.
    availability: list[tuple[int, int, int]] = Field(min_length=1)
    capacity: int = Field(default=1, ge=1, le=50)

    @field_validator("skills")
    @classmethod
    def _levels(cls, skills: dict[str, float]) -> dict[str, float]:
        for skill, level in skills.items():
            if not 0.0 <= level <= 1.0:
                raise ValueError(f"stated level of {skill!r} is {level}, not within 0..1")
        return skills

    @field_validator("availability")
    @classmethod
    def _blocks(cls, blocks: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
        weekly_hours(blocks)
        return blocks

    @field_validator("grades")
    @classmethod
    def _grades(cls, grades: list[int]) -> list[int]:
        grade_mask(grades)
        return grades


@dataclass
class TeacherTable:
    """Row i of every array is teacher `ids[i]`; masks are bit sets over the catalog."""

    ids: list[str]
    stated: np.ndarray  # (n, skills) float32 self-rated level, 0 where not stated
    subjects: np.ndarray  # (n,) uint64
    languages: np.ndarray  # (n,) uint64
    grades: np.ndarray  # (n,) uint64
    availability: np.ndarray  # (n, 3) uint64 hour-of-week bits
    capacity: np.ndarray  # (n,) int32 sessions at once

    def __post_init__(self) -> None:
        # One contiguous array per word: three ORed ANDs beat `.any(axis=1)` over (n, 3).
        self.availability_words = [np.ascontiguousarray(self.availability[:, w]) for w in range(3)]

    def available_in(
        self, window: np.ndarray, rows: np.ndarray | slice = slice(None)
    ) -> np.ndarray:
        a = self.availability_words
        hit = (a[0][rows] & window[0]) | (a[1][rows] & window[1]) | (a[2][rows] & window[2])
        return hit != 0

    @classmethod
    def build(cls, catalog: Catalog, specs: Sequence[TeacherSpec]) -> TeacherTable:
        ids = [spec.teacher_id for spec in specs]
        if len(set(ids)) != len(ids):
            raise ValueError("duplicate teacher ids")
        for spec in specs:
            for skill in spec.skills:
                catalog.add_skill(skill)
        n = len(specs)
        stated = np.zeros((n, len(catalog.skills)), dtype=np.float32)
        subjects = np.zeros(n, dtype=np.uint64)
        languages = np.zeros(n, dtype=np.uint64)
        grades = np.zeros(n, dtype=np.uint64)
        availability = np.zeros((n, MASK_WORDS), dtype=np.uint64)
        capacity = np.zeros(n, dtype=np.int32)
        for row, spec in enumerate(specs):
            columns = [catalog.skill_index(skill) for skill in spec.skills]
            stated[row, columns] = list(spec.skills.values())
            subjects[row] = catalog.subject_mask({s.split(".", 1)[0] for s in spec.skills})
            languages[row] = catalog.language_mask(spec.languages)
            grades[row] = grade_mask(spec.grades)
            availability[row] = hours_mask(weekly_hours(spec.availability))
            capacity[row] = spec.capacity
        return cls(ids, stated, subjects, languages, grades, availability, capacity)

    def __len__(self) -> int:
        return len(self.ids)

    def available_hours(self, row: int) -> list[int]:
        words = self.availability[row]
        return [h for h in range(HOURS_PER_WEEK) if int(words[h // 64]) >> (h % 64) & 1]
