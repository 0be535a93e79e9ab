"""Answer sequences for knowledge tracing: the `user_id,skill_id,correct` CSV files, as arrays.

A file holds each user's answers in the order they were given; users may be interleaved (rows are
regrouped stably by user). Skills and users are mapped to dense indices so that the models can
work on numpy arrays.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from central.tracing import TracingError

COLUMNS = ("user_id", "skill_id", "correct")


@dataclass(frozen=True)
class Answers:
    """Rows grouped by user, each user's rows in answer order.

    `skills` index `skill_names`. The first `known_skills` names are the vocabulary given to
    `encode` (a fitted model's skills); names after them are skills that vocabulary does not know.
    `user_starts[u]:user_starts[u + 1]` are user u's rows.
    """

    users: np.ndarray  # int32, user index per row, non-decreasing
    skills: np.ndarray  # int32
    correct: np.ndarray  # int8, 0 or 1
    user_names: list[str]
    skill_names: list[str]
    known_skills: int

    @property
    def size(self) -> int:
        return int(self.correct.shape[0])

    @property
    def user_starts(self) -> np.ndarray:
        return np.searchsorted(self.users, np.arange(len(self.user_names) + 1)).astype(np.int64)

    @property
    def unknown_skill_rows(self) -> int:
        return int(np.count_nonzero(self.skills >= self.known_skills))


def _open_text(path: Path) -> io.TextIOBase:
    try:
        if path.suffix == ".gz":
            return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
        return open(path, encoding="utf-8-sig", newline="")  # noqa: SIM115 - returned to caller
    except FileNotFoundError:
        raise TracingError(f"{path}: no such file") from None
    except OSError as error:
        raise TracingError(f"{path}: cannot open: {error}") from error


def read_rows(path: Path) -> list[tuple[str, str, int]]:
    """(user_id, skill_id, correct) per data row; else TracingError naming the file and line."""
    path = Path(path)
    rows: list[tuple[str, str, int]] = []
    try:
        with _open_text(path) as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                raise TracingError(
                    f"{path}: the file is empty (expected the header "
                    f"{','.join(COLUMNS)} and at least one answer)"
                )
            names = [name.strip() for name in header]
            missing = [column for column in COLUMNS if column not in names]
            if missing:
                raise TracingError(
                    f"{path}: missing column(s) {', '.join(missing)} "
                    f"(header is {','.join(names) or 'empty'}; expected {','.join(COLUMNS)})"
                )
            at = [names.index(column) for column in COLUMNS]
            width = len(names)
            for row in reader:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                line = reader.line_num
                if len(row) != width:
                    raise TracingError(
                        f"{path}, line {line}: {len(row)} fields where the header has {width}"
                    )
                user, skill, correct = (row[i].strip() for i in at)
                if not user or not skill:
                    raise TracingError(f"{path}, line {line}: user_id and skill_id must be set")
                if correct not in ("0", "1"):
                    raise TracingError(
                        f"{path}, line {line}: correct must be 0 or 1, not {correct!r}"
                    )
                rows.append((user, skill, int(correct)))
    except (UnicodeDecodeError, gzip.BadGzipFile, EOFError, csv.Error) as error:
        raise TracingError(f"{path}: unreadable as UTF-8 CSV: {error}") from error
    if not rows:
        raise TracingError(f"{path}: no answers after the header")
    return rows


def encode(
    rows: Sequence[tuple[str, str, int]], skill_names: Sequence[str] | None = None
) -> Answers:
    """Arrays for `rows`; with `skill_names` (a model's vocabulary) other skills are unknown."""
    user_index: dict[str, int] = {}
    users = np.fromiter(
        (user_index.setdefault(user, len(user_index)) for user, _, _ in rows),
        dtype=np.int32,
        count=len(rows),
    )
    skill_index = {name: i for i, name in enumerate(skill_names or ())}
    known = len(skill_index)
    skills = np.fromiter(
        (skill_index.setdefault(skill, len(skill_index)) for _, skill, _ in rows),
        dtype=np.int32,
        count=len(rows),
    )
    correct = np.fromiter((c for _, _, c in rows), dtype=np.int8, count=len(rows))
    order = np.argsort(users, kind="stable")
    return Answers(
        users[order],
        skills[order],
        correct[order],
        list(user_index),
        list(skill_index),
        known if skill_names is not None else len(skill_index),
    )


def read_answers(path: Path, skill_names: Sequence[str] | None = None) -> Answers:
    return encode(read_rows(path), skill_names)


def shared_users(train: Iterable[str], test: Iterable[str]) -> list[str]:
    """Users found in both files (the evaluation refuses them: it would test on trained data)."""
    return sorted(set(train) & set(test))
