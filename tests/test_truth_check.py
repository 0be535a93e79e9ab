"""The checkable interfaces: the simulator's ground truth, central's export, their comparison."""

from __future__ import annotations

import json
import subprocess
import sys

import central.auth.models  # noqa: F401  (the export writes an audit row)
from central.cli import compare_command, export_command
from central.truth_check import compare_truth, read_jsonl


def truth_row(student: str, question: str, exam: str = "exam-1") -> dict:
    return {
        "student_id": student,
        "exam_id": exam,
        "page_address": "1.2.3.4",
        "question_id": question,
        "intended": "7",
    }


def test_export_lists_every_stored_event_and_the_comparison_finds_none_lost(
    sqlite_store, messages, tmp_path
):
    for student, question in [("s1", "q1"), ("s1", "q2"), ("s2", "q1")]:
        event = messages.answer(student_id=student, question_id=question)
        sqlite_store.ingestor.handle(messages.topic(), messages.payload(event))
    # The same event delivered twice is stored once.
    again = messages.answer(student_id="s2", question_id="q2")
    for _ in range(2):
        sqlite_store.ingestor.handle(messages.topic(), messages.payload(again))
    out = tmp_path / "export.jsonl"
    args = type(
        "A", (), {"database_url": sqlite_store.url, "exam": None, "out": out, "actor": None}
    )
    assert export_command(args) == 0
    rows = read_jsonl(out)
    assert len(rows) == 4
    assert {"event_id", "student_id", "question_id", "revision", "label", "points_awarded"} <= set(
        rows[0]
    )
    truth = [truth_row(s, q) for s in ("s1", "s2") for q in ("q1", "q2")]
    report = compare_truth(truth, rows)
    assert (report.written, report.lost, report.duplicated, report.unexpected) == (4, 0, 0, 0)


def test_lost_duplicated_and_unexpected_answers_are_counted(messages):
    def stored(student, question, revision=1, digest="a"):
        return {
            "student_id": student,
            "exam_id": "exam-1",
            "question_id": question,
            "revision": revision,
            "strokes_digest": digest,
        }

    truth = [truth_row("s1", "q1"), truth_row("s1", "q2"), truth_row("s2", "q1")]
    export = [
        stored("s1", "q1"),
        stored("s1", "q1", digest="b"),  # same revision, other ink: still the answer twice
        stored("s2", "q1"),
        stored("s2", "q1", revision=2),  # same ink under a new revision: a replay
        stored("s9", "q1"),
    ]
    report = compare_truth(truth, export)
    assert report.lost == 1 and report.lost_answers == [("s1", "exam-1", "q2")]
    assert report.duplicated == 2
    assert report.unexpected == 1
    assert not report.ok


def test_compare_truth_command_exits_non_zero_on_a_loss(tmp_path, capsys):
    truth = tmp_path / "truth.jsonl"
    export = tmp_path / "export.jsonl"
    truth.write_text(json.dumps(truth_row("s1", "q1")) + "\n")
    export.write_text("")
    args = type("A", (), {"truth": truth, "export": export, "exam": None})
    assert compare_command(args) == 1
    assert json.loads(capsys.readouterr().out)["lost"] == 1
    export.write_text("{not json\n")
    assert compare_command(args) == 2


def test_sim_classroom_writes_its_truth_where_asked(tmp_path):
    truth = tmp_path / "elsewhere" / "truth.jsonl"
    truth.parent.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "classink.cli", "sim", "classroom", "--pens", "2"]
        + ["--out", str(tmp_path / "room"), "--truth", str(truth)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert "pens on" in proc.stdout.readline()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    rows = read_jsonl(truth)
    assert len(rows) == 2 * 12
    assert {"student_id", "exam_id", "page_address", "question_id", "intended"} <= set(rows[0])
