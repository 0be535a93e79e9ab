"""A small school for the central security, roster, results and dashboard tests: a OneRoster zip
with two classes and the answers their students wrote, stored through the real ingest."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from conftest import Messages, Store, admin_headers
from fastapi import FastAPI
from fastapi.testclient import TestClient

from central.api import create_app
from central.ingest import OutcomeKind
from central.settings import CentralSettings

CLASS_1 = [f"s{i}" for i in range(1, 7)]
CLASS_2 = ["s7", "s8", "s9"]
# Points per student on q1..q4: q4 is answered well by the strong students only.
SCORES = {
    "s1": [1, 1, 1, 1],
    "s2": [1, 1, 1, 1],
    "s3": [1, 1, 0, 1],
    "s4": [1, 0, 1, 0],
    "s5": [1, 0, 0, 0],
    "s6": [0, 1, 0, 0],
    "s7": [1, 1, 1, 1],
    "s8": [0, 0, 0, 0],
    "s9": [1, 0, 1, 0],
}


def csv_text(header: list[str], rows: list[list[str]]) -> str:
    return "\n".join(",".join(row) for row in [header, *rows]) + "\n"


def oneroster_files() -> dict[str, str]:
    users = [["t1", "active", "t1", "Ana", "Teacher"], ["t2", "active", "t2", "Ben", "Teacher"]]
    users += [[s, "active", s, f"Student{s}", "Pupil"] for s in CLASS_1 + CLASS_2]
    enrol = [["e-t1", "active", "c1", "sch-1", "t1", "teacher"]]
    enrol += [["e-t2", "active", "c2", "sch-1", "t2", "teacher"]]
    enrol += [[f"e-{s}", "active", "c1", "sch-1", s, "student"] for s in CLASS_1]
    enrol += [[f"e-{s}", "active", "c2", "sch-1", s, "student"] for s in CLASS_2]
    return {
        "manifest.csv": csv_text(["propertyName", "value"], [["oneroster.version", "1.2"]]),
        "orgs.csv": csv_text(
            [
                "sourcedId",
                "status",
                "dateLastModified",
                "name",
                "type",
                "identifier",
                "parentSourcedId",
            ],
            [
                ["dist-1", "active", "", "District", "district", "", ""],
                ["sch-1", "active", "", "Hill School", "school", "", "dist-1"],
            ],
        ),  # fmt: skip
        "users.csv": csv_text(
            ["sourcedId", "status", "username", "givenName", "familyName"], users
        ),
        "classes.csv": csv_text(
            ["sourcedId", "status", "title", "classCode", "schoolSourcedId"],
            [
                ["c1", "active", "Grade 3 A", "3A", "sch-1"],
                ["c2", "active", "Grade 3 B", "3B", "sch-1"],
            ],
        ),  # fmt: skip
        "enrollments.csv": csv_text(
            ["sourcedId", "status", "classSourcedId", "schoolSourcedId", "userSourcedId", "role"],
            enrol,
        ),
    }


def zip_of(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def store_answers(store: Store, messages: Messages) -> dict[str, dict[str, str]]:
    """Every student's answers to exam-1, plus one review answer (s4 q4 rewritten); returns the
    event ids by student and question."""
    ids: dict[str, dict[str, str]] = {}
    for n, (student, points) in enumerate(SCORES.items()):
        pen = f"9c:7b:ef:00:00:{n + 1:02x}"
        for q, got in enumerate(points, start=1):
            event = messages.answer(
                student_id=student, pen_id=pen, question_id=f"q{q}", label=str(got),
                correct=bool(got), points_awarded=got,
            )  # fmt: skip
            ids.setdefault(student, {})[f"q{q}"] = event["event_id"]
            outcome = store.ingestor.handle(messages.topic(), json.dumps(event).encode())
            assert outcome.kind == OutcomeKind.STORED, outcome
    review = messages.answer(
        student_id="s4", pen_id="9c:7b:ef:00:00:04", question_id="q4", revision=2,
        status="review", label="?", confidence=0.31, review_reason="low_confidence",
    )  # fmt: skip
    ids["s4"]["q4"] = review["event_id"]
    assert store.ingestor.handle(messages.topic(), json.dumps(review).encode()).kind == (
        OutcomeKind.STORED
    )
    return ids


@dataclass
class School:
    app: FastAPI
    admin: TestClient
    events: dict[str, dict[str, str]]

    def client(self, role: str, user: str, classes: tuple[str, ...] = ()) -> TestClient:
        token = self.app.state.issue_token(role, user, classes)
        return TestClient(self.app, headers={"Authorization": f"Bearer {token}"})


@contextmanager
def school(store: Store, messages: Messages) -> Iterator[School]:
    app = create_app(CentralSettings(database_url=store.url), engine=store.engine)
    with TestClient(app, headers=admin_headers(app)) as admin:
        imported = admin.post(
            "/api/roster/import",
            content=zip_of(oneroster_files()),
            headers={"content-type": "application/zip"},
        )
        assert imported.status_code == 200, imported.text
        yield School(app, admin, store_answers(store, messages))
