"""Ground truth against what central stored: which written answers were lost or stored twice.

An answer is (student, exam, question). The truth file (`classink sim classroom --truth`) has one
line per time a student wrote in a box; the export (`classink central export-answers`) one line per
stored event. For each answer:

* lost: written more often than stored (a box written once and stored never);
* duplicated: stored more often than it can have been sent. Two events with the same revision, or
  with the same ink (strokes digest), are the same answer stored twice under two event ids; and an
  answer never has more events than times it was written.
* unexpected: stored answers nobody wrote (a wrong student or question, say).

Where the truth says how many strokes the student made in a box, answers whose latest event carries
another number are counted too (`ink_mismatch`): not lost, but not the ink as written either.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

AnswerKey = tuple[str, str, str]  # student, exam, question


@dataclass
class TruthReport:
    written: int
    stored_events: int
    lost: int
    duplicated: int
    unexpected: int
    ink_mismatch: int = 0
    lost_answers: list[AnswerKey] = field(default_factory=list)
    duplicated_answers: list[AnswerKey] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.duplicated == 0 and self.unexpected == 0

    def summary(self) -> dict[str, Any]:
        out = asdict(self)
        out["lost_answers"] = [list(k) for k in self.lost_answers[:20]]
        out["duplicated_answers"] = [list(k) for k in self.duplicated_answers[:20]]
        return out


def truth_key(row: dict[str, Any]) -> AnswerKey:
    return (row["student_id"], row["exam_id"], row["question_id"])


def compare_truth(truth: Iterable[dict[str, Any]], stored: Iterable[dict[str, Any]]) -> TruthReport:
    truth_rows = list(truth)
    written = Counter(truth_key(t) for t in truth_rows)
    events: dict[AnswerKey, list[dict[str, Any]]] = defaultdict(list)
    for row in stored:
        events[truth_key(row)].append(row)
    lost_answers, duplicated_answers = [], []
    lost = duplicated = unexpected = ink_mismatch = 0
    strokes = {truth_key(t): t["strokes"] for t in truth_rows if t.get("strokes")}
    for key, times in written.items():
        mine = events.get(key, [])
        missing = max(0, times - len(mine))
        if missing:
            lost += missing
            lost_answers.append(key)
        distinct = min(
            times,
            len({e["revision"] for e in mine}),
            len({e.get("strokes_digest") for e in mine}),
        )
        extra = len(mine) - distinct if mine else 0
        if extra:
            duplicated += extra
            duplicated_answers.append(key)
        if mine and key in strokes and times == 1:
            latest = max(mine, key=lambda e: e["revision"])
            ink_mismatch += latest.get("strokes", strokes[key]) != strokes[key]
    for key, mine in events.items():
        if key not in written:
            unexpected += len(mine)
    return TruthReport(
        written=sum(written.values()),
        stored_events=sum(len(v) for v in events.values()),
        lost=lost,
        duplicated=duplicated,
        unexpected=unexpected,
        ink_mismatch=ink_mismatch,
        lost_answers=sorted(lost_answers),
        duplicated_answers=sorted(duplicated_answers),
    )


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not JSON: {exc}") from exc
    return rows


def compare_files(truth_path: Path, export_path: Path, exam_id: str | None = None) -> TruthReport:
    truth = read_jsonl(truth_path)
    stored = read_jsonl(export_path)
    for path, rows in ((truth_path, truth), (export_path, stored)):
        for number, row in enumerate(rows, 1):
            missing = {"student_id", "exam_id", "question_id"} - row.keys()
            if missing:
                raise ValueError(f"{path}: line {number} lacks {', '.join(sorted(missing))}")
    if exam_id is not None:
        truth = [t for t in truth if t["exam_id"] == exam_id]
        stored = [s for s in stored if s["exam_id"] == exam_id]
    return compare_truth(truth, stored)
