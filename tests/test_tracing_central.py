"""Tracing inside central: importing the skill graph, mastery updated on every ingested answer (on
SQLite and PostgreSQL), revisions, refits with versioned parameters, and what is ignored."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import Messages, Publisher, Store
from sqlalchemy import func, select

from central.ingest import MqttIngest, OutcomeKind
from central.models import AnswerEvent
from central.settings import CentralSettings
from central.tracing import TracingError
from central.tracing.catalogue import find_cycle
from central.tracing.mastery import MasteryUpdater, attach, refit
from central.tracing.models import (
    ItemSkill,
    Mastery,
    MasteryStep,
    ModelVersion,
    Prerequisite,
    Resource,
    Skill,
)
from classink.cli import main

SKILLS = """skill_id,name,description
count,Counting to 20,Counts objects and says the number words in order
add,Addition within 20,
sub,Subtraction within 20,
place,Place value,Tens and ones
add2,Two-digit addition,With and without carrying
"""
PREREQUISITES = """skill_id,requires
add,count
sub,add
add2,add
add2,place
"""
TAGS = [("q1", "count"), ("q2", "add"), ("q3", "sub"), ("q4", "place"), ("q5", "add2"),
        ("q5", "place")]  # fmt: skip
# The same questions come back in weekly practice sheets.
EXAMS = [f"exam-{week}" for week in range(1, 7)]
ITEMS = "exam_id,question_id,skill_id\n" + "".join(
    f"{exam},{question},{skill}\n" for exam in EXAMS for question, skill in TAGS
)
RESOURCES = {
    "resources": [
        {"resource_id": "ml-count", "title": "Counting songs", "kind": "micro-lecture",
         "minutes": 3, "skills": ["count"]},
        {"resource_id": "ml-add", "title": "Adding by counting on", "kind": "micro-lecture",
         "url": "https://lessons.example/add", "minutes": 4, "skills": ["add"]},
        {"resource_id": "ps-add", "title": "Addition practice, 10 questions", "kind": "practice",
         "skills": ["add"]},
        {"resource_id": "ml-sub", "title": "Taking away", "kind": "micro-lecture", "minutes": 5,
         "skills": ["sub"]},
        {"resource_id": "ml-place", "title": "Tens and ones with sticks", "kind": "micro-lecture",
         "minutes": 6, "skills": ["place"]},
        {"resource_id": "ps-add2", "title": "Two-digit sums", "kind": "practice",
         "skills": ["add2", "place"]},
    ]
}  # fmt: skip


def write_catalogue(folder: Path) -> dict[str, Path]:
    paths = {
        "skills": folder / "skills.csv",
        "prerequisites": folder / "prerequisites.csv",
        "items": folder / "items.csv",
        "resources": folder / "resources.json",
    }
    paths["skills"].write_text(SKILLS)
    paths["prerequisites"].write_text(PREREQUISITES)
    paths["items"].write_text(ITEMS)
    paths["resources"].write_text(json.dumps(RESOURCES))
    return paths


def import_catalogue(url: str, folder: Path) -> None:
    paths = write_catalogue(folder)
    args = [f"--{name}={path}" for name, path in paths.items()]
    assert main(["tracing", "import", "--database-url", url, *args]) == 0


@dataclass
class Class:
    store: Store
    messages: Messages
    updater: MasteryUpdater
    clock: datetime

    def answer(
        self, student: str | None, question: str, correct: bool, week: int = 1, **fields: object
    ) -> str:
        self.clock += timedelta(seconds=30)
        fields.setdefault("exam_id", f"exam-{week}")
        if fields.get("status") != "review":
            fields.update(correct=correct, points_awarded=1 if correct else 0)
        event = self.messages.answer(
            student_id=student,
            question_id=question,
            created_at=self.clock.isoformat().replace("+00:00", "Z"),
            **fields,
        )
        outcome = self.store.ingestor.handle(self.messages.topic(), self.messages.payload(event))
        assert outcome.kind == OutcomeKind.STORED
        return event["event_id"]

    def store_directly(self, answers: Iterable[tuple[str, str, bool, int]]) -> None:
        """Answer events written straight to the table, as if ingested without tracing."""
        with self.store.sessions.begin() as session:
            for student, question, correct, week in answers:
                self.clock += timedelta(seconds=30)
                event = self.messages.answer(
                    student_id=student,
                    question_id=question,
                    exam_id=f"exam-{week}",
                    correct=correct,
                    points_awarded=int(correct),
                )
                event.update(created_at=self.clock, received_at=self.clock)
                session.add(AnswerEvent(**event))

    def mastery(self, student: str) -> dict[str, tuple[float, int, int]]:
        with self.store.sessions() as session:
            rows = session.scalars(select(Mastery).where(Mastery.student_id == student))
            return {r.skill_id: (r.mastery, r.answers, r.correct) for r in rows}


@pytest.fixture
def school(store: Store, messages: Messages, tmp_path: Path) -> Iterator[Class]:
    import_catalogue(store.url, tmp_path)
    updater = attach(store.ingestor, store.sessions)
    yield Class(store, messages, updater, datetime(2026, 11, 2, 8, 0, tzinfo=UTC))


def test_import_builds_the_graph(school: Class) -> None:
    with school.store.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Skill)) == 5
        edges = set(session.execute(select(Prerequisite.skill_id, Prerequisite.requires_id)))
        assert ("add2", "place") in edges and len(edges) == 4
        assert session.scalar(select(func.count()).select_from(ItemSkill)) == 6 * len(EXAMS)
        resource = session.get(Resource, "ps-add2")
        assert resource is not None and resource.skills == ["add2", "place"]


def test_every_scored_answer_updates_mastery_at_once(school: Class) -> None:
    for week in range(1, 5):
        school.answer("s1", "q2", True, week)
    school.answer("s2", "q2", False, 1)
    school.answer("s2", "q2", False, 2)
    s1, s2 = school.mastery("s1"), school.mastery("s2")
    assert s1["add"][1:] == (4, 4) and s2["add"][1:] == (2, 0)
    assert s1["add"][0] > 0.9 > 0.2 > s2["add"][0]
    # An item with two skills is an answer on each.
    school.answer("s1", "q5", True)
    assert set(school.mastery("s1")) == {"add", "add2", "place"}
    with school.store.sessions() as session:
        steps = session.scalars(
            select(MasteryStep)
            .where(MasteryStep.student_id == "s1", MasteryStep.skill_id == "add")
            .order_by(MasteryStep.id)
        ).all()
    assert [s.correct for s in steps] == [True] * 4
    assert all(a.mastery_after == b.mastery_before for a, b in zip(steps, steps[1:], strict=False))
    assert school.updater.updates == 7 and school.updater.replays == 0


def test_ignored_answers_do_not_touch_mastery(school: Class) -> None:
    school.answer("s1", "q99", True)  # not tagged
    school.answer("s1", "q1", True, status="review")  # not scored yet
    school.answer(None, "q1", True, pen_id="aa:bb:cc:dd:ee:01")  # pen without a student
    school.answer("s1", "q1", True, exam_id="another-exam")  # tags are per exam
    assert school.mastery("s1") == {}


def test_a_revision_replaces_the_earlier_answer(school: Class) -> None:
    school.answer("s1", "q2", False, revision=1)
    school.answer("s1", "q3", True)
    school.answer("s1", "q2", True, revision=2)  # a marker corrected the reading
    assert school.updater.replays == 1
    assert school.mastery("s1")["add"][1:] == (1, 1)
    with school.store.sessions() as session:
        history = session.scalars(
            select(MasteryStep.correct)
            .where(MasteryStep.student_id == "s1")
            .order_by(MasteryStep.id)
        ).all()
    assert history == [True, True]


def test_refit_stores_versions_and_recomputes_mastery(school: Class, tmp_path: Path) -> None:
    # s1 answers through the ingest; the others are stored directly, which is quicker.
    for i in range(12):
        school.answer("s1", f"q{1 + i % 5}", (1 + i) % 3 != 0, 1 + i // 5)
    school.store_directly(
        (f"s{student}", f"q{1 + i % 5}", (student + i) % 3 != 0, 1 + i // 5)
        for student in range(20)
        if student != 1
        for i in range(12)
    )
    before = school.mastery("s1")
    assert main(["tracing", "refit", "--database-url", school.store.url]) == 0
    assert main(["tracing", "refit", "--database-url", school.store.url]) == 0
    with school.store.sessions() as session:
        versions = session.scalars(select(ModelVersion).order_by(ModelVersion.version)).all()
        assert [v.version for v in versions] == [1, 2]
        assert set(versions[-1].bkt["skills"]) == {"count", "add", "sub", "place", "add2"}
        # 12 answers each, two of them on the question with two skills.
        assert versions[-1].students == 20 and versions[-1].answers == 20 * 14
        assert versions[-1].logistic is not None
        assert all(v == 2 for v in session.scalars(select(MasteryStep.model_version).distinct()))
    after = school.mastery("s1")
    assert set(after) == set(before)
    assert {k: v[1:] for k, v in after.items()} == {k: v[1:] for k, v in before.items()}
    assert after != before  # fitted parameters, not the generic ones
    # The next answer goes on from the refitted state, with the new version's parameters.
    school.answer("s1", "q2", True, week=4)
    with school.store.sessions() as session:
        last = session.scalars(select(MasteryStep).order_by(MasteryStep.id.desc()).limit(1)).one()
    assert last.model_version == 2 and school.updater.replays == 0


def test_refit_without_answers_says_why(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tracing", "refit", "--database-url", store.url]) == 2
    assert "nothing to fit" in capsys.readouterr().err


def test_a_failing_update_keeps_the_answer(school: Class) -> None:
    def broken(_doc: object) -> None:
        raise RuntimeError("boom")

    school.store.ingestor.observers.insert(0, broken)
    school.answer("s1", "q1", True)
    with school.store.sessions() as session:
        assert session.scalar(select(func.count()).select_from(AnswerEvent)) == 1
    assert school.mastery("s1")["count"][1] == 1


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("prerequisites.csv", "skill_id,requires\nadd,count\nsub,add\ncount,sub\n", "circle"),
        ("prerequisites.csv", "skill_id,requires\nadd,algebra\n", "unknown skill(s): algebra"),
        ("prerequisites.csv", "skill_id,requires\nadd,add\n", "cannot require itself"),
        ("items.csv", "exam_id,question_id\ne,q\n", "missing column(s) skill_id"),
        ("items.csv", "exam_id,question_id,skill_id\ne,q,nope\n", "unknown skill(s): nope"),
        ("resources.json", '[{"resource_id": "r", "title": "T", "kind": "film", '
         '"skills": ["add"]}]', "kind must be one of"),
        ("resources.json", '{"resources": [{"resource_id": "r", "title": "T"', "not valid JSON"),
        ("skills.csv", "skill_id,name\na,A\na,B\n", "listed twice"),
    ],
)  # fmt: skip
def test_bad_catalogue_files_are_refused_and_change_nothing(
    sqlite_store: Store,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    content: str,
    message: str,
) -> None:
    import_catalogue(sqlite_store.url, tmp_path)
    bad = tmp_path / "bad" / name
    bad.parent.mkdir()
    bad.write_text(content)
    option = f"--{name.split('.')[0]}={bad}"
    assert main(["tracing", "import", "--database-url", sqlite_store.url, option]) == 2
    assert message in capsys.readouterr().err
    with sqlite_store.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Prerequisite)) == 4
        assert session.scalar(select(func.count()).select_from(ItemSkill)) == 6 * len(EXAMS)


def test_find_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_mastery_follows_answers_arriving_over_mqtt(
    sqlite_store: Store,
    messages: Messages,
    publisher: Publisher,
    central_settings: CentralSettings,
    tmp_path: Path,
) -> None:
    import_catalogue(sqlite_store.url, tmp_path)
    attach(sqlite_store.ingestor, sqlite_store.sessions)
    ingest = MqttIngest(sqlite_store.ingestor, central_settings).start()
    try:
        assert ingest.wait_subscribed(10)
        publisher.publish(messages.topic(), messages.payload(messages.answer(question_id="q1")))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with sqlite_store.sessions() as session:
                if session.get(Mastery, ("s1", "count")) is not None:
                    break
            time.sleep(0.02)
    finally:
        ingest.stop()
    with sqlite_store.sessions() as session:
        row = session.get(Mastery, ("s1", "count"))
    assert row is not None and row.answers == 1


def test_unknown_student_graph_is_an_error_free_empty_result(school: Class) -> None:
    assert school.mastery("nobody") == {}
    with pytest.raises(TracingError):
        refit(school.store.sessions)
