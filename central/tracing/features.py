"""Practice features of the logistic model, for a whole file at once and one answer at a time.

Every feature of an answer is computed from the same student's *earlier* answers only. Dense
features (DENSE, in this order) are shared by all skills; the model also has per-skill weights on
a skill indicator and on the skill's log success and failure counts (a "Best-LR" / PFA-style set).
`batch_features` (numpy, for fitting and evaluation) and `StudentState` (online) must agree; the
tests check that they do.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from central.tracing.data import Answers

DENSE = (
    "log_skill_successes",
    "log_skill_failures",
    "log_total_successes",
    "log_total_failures",
    "first_on_skill",
    "log_answers_since_skill",
    "last_on_skill_correct",
    "last_correct",
    "recent_rate_short",
    "recent_rate_long",
    "skill_rate",
    "total_rate",
)
SHORT_WINDOW = 5
LONG_WINDOW = 20
UNSEEN = 0.5  # the "last answer correct" features before there is a last answer


def _rate(successes: np.ndarray, answers: np.ndarray) -> np.ndarray:
    # Laplace-smoothed, so that a first answer starts from 1/2 rather than 0/0.
    return (successes + 1.0) / (answers + 2.0)


def _earlier_in_group(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the sum of `values` over earlier rows with the same key, and how many there were.

    Rows are in answer order within each key.
    """
    n = keys.shape[0]
    order = np.lexsort((np.arange(n), keys))
    sorted_keys = keys[order]
    sorted_values = values[order].astype(np.float64)
    before = np.cumsum(sorted_values) - sorted_values
    start = np.ones(n, dtype=bool)
    start[1:] = sorted_keys[1:] != sorted_keys[:-1]
    first = np.maximum.accumulate(np.where(start, np.arange(n), 0))
    sums = np.empty(n)
    counts = np.empty(n)
    sums[order] = before - before[first]
    counts[order] = np.arange(n) - first
    return sums, counts


def _previous_in_group(keys: np.ndarray, values: np.ndarray, missing: float) -> np.ndarray:
    """Per row: `values` at the previous row with the same key, or `missing`."""
    n = keys.shape[0]
    order = np.lexsort((np.arange(n), keys))
    sorted_keys = keys[order]
    same = np.zeros(n, dtype=bool)
    same[1:] = sorted_keys[1:] == sorted_keys[:-1]
    shifted = np.full(n, missing, dtype=np.float64)
    shifted[1:] = values[order][:-1]
    out = np.empty(n)
    out[order] = np.where(same, shifted, missing)
    return out


def batch_features(answers: Answers) -> np.ndarray:
    """The DENSE features of every answer, shape (answers.size, len(DENSE))."""
    n = answers.size
    users = answers.users.astype(np.int64)
    correct = answers.correct.astype(np.float64)
    pair = users * (len(answers.skill_names) + 1) + answers.skills
    skill_wins, skill_answers = _earlier_in_group(pair, correct)
    total_wins, position = _earlier_in_group(users, correct)
    previous_position = _previous_in_group(pair, position, -1.0)
    since = np.where(previous_position >= 0, position - previous_position, 0.0)
    last_on_skill = _previous_in_group(pair, correct, UNSEEN)
    last = _previous_in_group(users, correct, UNSEEN)
    running = np.concatenate([[0.0], np.cumsum(correct)])
    row = np.arange(n)
    user_start = row - position.astype(np.int64)

    def recent(window: int) -> np.ndarray:
        begin = np.maximum(row - window, user_start)
        return _rate(running[row] - running[begin], (row - begin).astype(np.float64))

    total_fails = position - total_wins
    return np.column_stack(
        [
            np.log1p(skill_wins),
            np.log1p(skill_answers - skill_wins),
            np.log1p(total_wins),
            np.log1p(total_fails),
            (skill_answers == 0).astype(np.float64),
            np.log1p(since),
            last_on_skill,
            last,
            recent(SHORT_WINDOW),
            recent(LONG_WINDOW),
            _rate(skill_wins, skill_answers),
            _rate(total_wins, position),
        ]
    )


@dataclass
class SkillPractice:
    successes: int = 0
    answers: int = 0
    last_position: int = -1
    last_correct: bool = False


@dataclass
class StudentState:
    """What the logistic model remembers of one student, updated answer by answer."""

    successes: int = 0
    answers: int = 0
    recent: deque[int] = field(default_factory=lambda: deque(maxlen=LONG_WINDOW))
    skills: dict[str, SkillPractice] = field(default_factory=dict)

    def features(self, skill: str) -> list[float]:
        """The DENSE features of a next answer on `skill` (plain floats: this runs per answer)."""
        practice = self.skills.get(skill) or SkillPractice()
        recent = self.recent
        window = len(recent)
        short = min(window, SHORT_WINDOW)
        short_successes = sum(recent[i] for i in range(window - short, window))
        seen = practice.answers > 0
        return [
            math.log1p(practice.successes),
            math.log1p(practice.answers - practice.successes),
            math.log1p(self.successes),
            math.log1p(self.answers - self.successes),
            0.0 if seen else 1.0,
            math.log1p(self.answers - practice.last_position) if seen else 0.0,
            float(practice.last_correct) if seen else UNSEEN,
            float(recent[-1]) if window else UNSEEN,
            (short_successes + 1.0) / (short + 2.0),
            (sum(recent) + 1.0) / (window + 2.0),
            (practice.successes + 1.0) / (practice.answers + 2.0),
            (self.successes + 1.0) / (self.answers + 2.0),
        ]

    def record(self, skill: str, correct: bool) -> None:
        practice = self.skills.setdefault(skill, SkillPractice())
        practice.successes += int(correct)
        practice.answers += 1
        practice.last_position = self.answers
        practice.last_correct = correct
        self.successes += int(correct)
        self.answers += 1
        self.recent.append(int(correct))

    def to_json(self) -> dict[str, Any]:
        return {
            "successes": self.successes,
            "answers": self.answers,
            "recent": list(self.recent),
            "skills": {
                name: [p.successes, p.answers, p.last_position, int(p.last_correct)]
                for name, p in self.skills.items()
            },
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> StudentState:
        state = cls(int(doc["successes"]), int(doc["answers"]))
        state.recent.extend(int(v) for v in doc["recent"])
        for name, (successes, answers, last_position, last_correct) in doc["skills"].items():
            state.skills[name] = SkillPractice(
                successes, answers, last_position, bool(last_correct)
            )
        return state
