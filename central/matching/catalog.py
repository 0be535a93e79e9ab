"""Vocabularies (skills, subjects, languages) and hour-of-week masks, as small integers and bits.

Ranking 11,000 teachers in a few milliseconds means every attribute a request filters on must be a
number in a numpy array: sets become bit masks and a weekly timetable becomes 168 bits.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

HOURS_PER_WEEK = 168
MASK_WORDS = 3  # 168 hour bits in three uint64 words
MAX_SET_MEMBERS = 64  # languages and subjects each fit one uint64 mask
MAX_GRADE = 63


def subject_of(skill: str) -> str:
    """Skill ids are `subject.skill` (e.g. `maths.fractions`); a bare id is its own subject."""
    return skill.split(".", 1)[0]


@dataclass
class Vocabulary:
    """Names to dense indices, growing as new names appear, at most `limit` of them."""

    limit: int | None = None
    names: list[str] = field(default_factory=list)
    _index: dict[str, int] = field(default_factory=dict)

    def add(self, name: str) -> int:
        found = self._index.get(name)
        if found is not None:
            return found
        if not name or not name.strip():
            raise ValueError("empty name in a vocabulary")
        if self.limit is not None and len(self.names) >= self.limit:
            raise ValueError(f"more than {self.limit} distinct values: cannot add {name!r}")
        self._index[name] = len(self.names)
        self.names.append(name)
        return self._index[name]

    def get(self, name: str) -> int | None:
        return self._index.get(name)

    def __len__(self) -> int:
        return len(self.names)


@dataclass
class Catalog:
    """Every skill, subject and language the teachers and requests talk about."""

    skills: Vocabulary = field(default_factory=Vocabulary)
    subjects: Vocabulary = field(default_factory=lambda: Vocabulary(limit=MAX_SET_MEMBERS))
    languages: Vocabulary = field(default_factory=lambda: Vocabulary(limit=MAX_SET_MEMBERS))
    skill_subject: list[int] = field(default_factory=list)

    def add_skill(self, skill: str) -> int:
        index = self.skills.add(skill)
        if index == len(self.skill_subject):
            self.skill_subject.append(self.subjects.add(subject_of(skill)))
        return index

    def skill_index(self, skill: str) -> int:
        index = self.skills.get(skill)
        if index is None:
            raise KeyError(f"unknown skill {skill!r}: no teacher states it")
        return index

    def subject_mask(self, subjects: Iterable[str]) -> int:
        return set_mask(self.subjects.add(s) for s in subjects)

    def language_mask(self, languages: Iterable[str]) -> int:
        return set_mask(self.languages.add(lang) for lang in languages)

    def known_language_mask(self, languages: Iterable[str]) -> int:
        """For requests: a language no teacher speaks matches nobody rather than growing the set."""
        return set_mask(i for lang in languages if (i := self.languages.get(lang)) is not None)


def set_mask(indices: Iterable[int]) -> int:
    mask = 0
    for index in indices:
        mask |= 1 << index
    return mask


def grade_mask(grades: Iterable[int]) -> int:
    mask = 0
    for grade in grades:
        if not 0 <= grade <= MAX_GRADE:
            raise ValueError(f"grade {grade} outside 0..{MAX_GRADE}")
        mask |= 1 << grade
    return mask


def hours_mask(hours: Iterable[int]) -> np.ndarray:
    """Hours of the week (0 = Monday 00:00) as three uint64 words."""
    words = [0] * MASK_WORDS
    for hour in hours:
        if not 0 <= hour < HOURS_PER_WEEK:
            raise ValueError(f"hour of week {hour} outside 0..{HOURS_PER_WEEK - 1}")
        words[hour // 64] |= 1 << (hour % 64)
    return np.array(words, dtype=np.uint64)


def window_hours(start_hour: int, end_hour: int) -> list[int]:
    """The hours in [start, end) of the week; a window past Sunday midnight wraps to Monday."""
    if not (0 <= start_hour < HOURS_PER_WEEK and 0 < end_hour <= 2 * HOURS_PER_WEEK):
        raise ValueError(f"time window {start_hour}..{end_hour} is not within one week")
    if end_hour <= start_hour:
        raise ValueError(f"time window {start_hour}..{end_hour} ends before it starts")
    return [h % HOURS_PER_WEEK for h in range(start_hour, min(end_hour, start_hour + 168))]


def weekly_hours(blocks: Sequence[tuple[int, int, int]]) -> list[int]:
    """(day 0-6, start hour, end hour) blocks of a weekly timetable as hours of the week."""
    hours: list[int] = []
    for day, start, end in blocks:
        if not (0 <= day < 7 and 0 <= start < end <= 24):
            raise ValueError(
                f"availability block {(day, start, end)} is not (day 0-6, 0 <= start < end <= 24)"
            )
        hours.extend(day * 24 + h for h in range(start, end))
    return hours


def popcount64(words: np.ndarray) -> np.ndarray:
    """Set bits per uint64 (numpy 2 has bitwise_count; the fallback keeps numpy 1.26 working)."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(words).astype(np.int32)
    bits = np.unpackbits(words.view(np.uint8).reshape(*words.shape, 8), axis=-1)
    return bits.sum(axis=-1).astype(np.int32)
