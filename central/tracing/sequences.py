"""Answers regrouped into sequences: one student's answers on one skill, in answer order."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from central.tracing.data import Answers


@dataclass(frozen=True)
class Sequences:
    """Rows of `correct` reordered by (user, skill); `order[i]` is the Answers row of row i."""

    correct: np.ndarray  # int8, C-contiguous
    starts: np.ndarray  # int64, len(skill) + 1
    skill: np.ndarray  # int32, the skill of each sequence
    order: np.ndarray  # int64


def by_user_and_skill(answers: Answers) -> Sequences:
    rows = np.arange(answers.size)
    # lexsort sorts by the last key first; row number last keeps each user's answer order.
    order = np.lexsort((rows, answers.skills, answers.users))
    users = answers.users[order]
    skills = answers.skills[order]
    new = np.ones(answers.size, dtype=bool)
    new[1:] = (users[1:] != users[:-1]) | (skills[1:] != skills[:-1])
    first = np.flatnonzero(new)
    return Sequences(
        correct=np.ascontiguousarray(answers.correct[order], dtype=np.int8),
        starts=np.append(first, answers.size).astype(np.int64),
        skill=np.ascontiguousarray(skills[first], dtype=np.int32),
        order=order.astype(np.int64),
    )
