"""Real handwriting for simulated students, drawn only from held-out writers.

Each simulated student writes like one real person: digits from one pendigits test writer, letters
from one held-out UJIpenchars writer, ticks and crosses from one held-out gesture writer. None of
these writers is in the recogniser's training set (classink.shared_data.is_eval_writer).
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from classink.shared_data import is_eval_writer, read_jsonl

CHOICE_LABELS = ("A", "B", "C", "D")


@dataclass(frozen=True)
class Sample:
    dataset: str
    writer: str
    label: str
    strokes: tuple[np.ndarray, ...]  # each (k, 2) or (k, 3) with t_ms; y grows downward

    @property
    def has_time(self) -> bool:
        return all(s.shape[1] >= 3 for s in self.strokes)


# kind -> (file, labels wanted, how a source label maps to an answer value)
SOURCES: dict[str, list[tuple[str, dict[str, str]]]] = {
    "digit": [("pendigits_test.jsonl.gz", {str(d): str(d) for d in range(10)})],
    "choice": [("ujipenchars_v1.jsonl.gz", {c: c for c in CHOICE_LABELS})],
    "mark": [
        ("dollar1_gestures.jsonl.gz", {"check": "tick", "x": "cross"}),
        ("ndollar_mmg.jsonl.gz", {"X": "cross"}),
    ],
}


@lru_cache(maxsize=1)
def held_out_pool() -> dict[str, dict[str, dict[str, list[Sample]]]]:
    """kind -> writer key -> value -> samples, for held-out writers only."""
    pool: dict[str, dict[str, dict[str, list[Sample]]]] = {}
    for kind, sources in SOURCES.items():
        by_writer: dict[str, dict[str, list[Sample]]] = defaultdict(lambda: defaultdict(list))
        for filename, labels in sources:
            for row in read_jsonl(f"handwriting/{filename}"):
                value = labels.get(row["label"])
                if value is None or not is_eval_writer(row["set"], row["writer"]):
                    continue
                strokes = tuple(np.asarray(s, dtype=np.float64)[:, :3] for s in row["strokes"] if s)
                if strokes:
                    key = f"{row['set']}:{row['writer']}"
                    by_writer[key][value].append(Sample(row["set"], row["writer"], value, strokes))
        pool[kind] = {w: dict(v) for w, v in by_writer.items()}
    return pool


class Handwriting:
    """One simulated student's hand: a fixed real writer per answer kind."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._writer = {
            kind: rng.choice(sorted(writers)) for kind, writers in held_out_pool().items()
        }

    def sample(self, kind: str, value: str) -> Sample:
        pool = held_out_pool()[kind]
        samples = pool[self._writer[kind]].get(value)
        if not samples:
            # This writer never wrote this value (e.g. a $1 writer has no two-stroke X): borrow
            # another held-out writer's, so the answer still comes from real, unseen handwriting.
            samples = [s for w in sorted(pool) for s in pool[w].get(value, [])]
        return self._rng.choice(samples)
