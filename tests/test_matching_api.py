"""Tutoring API on SQLite and PostgreSQL: teachers, ranked requests, batch assignment, outcomes,
recorded sessions with audio, and the pseudonymised export."""

from __future__ import annotations

import io
import json
import struct
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import admin_headers
from fastapi.testclient import TestClient

from central.api import create_app
from central.db import create_schema, make_engine
from central.settings import CentralSettings
from classink.cli import main

MONDAY_EVENING = [[0, 17, 20]]


def teacher(teacher_id: str, **overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "teacher_id": teacher_id,
        "skills": {"maths.fractions": 0.6, "maths.decimals": 0.4},
        "grades": [3, 4, 5],
        "languages": ["zh"],
        "availability": MONDAY_EVENING,
        "capacity": 1,
    }
    body.update(overrides)
    return body


def tutoring_request(request_id: str, **overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "request_id": request_id,
        "student_id": f"student-{request_id}",
        "skills": ["maths.fractions"],
        "mastery": {"maths.fractions": 0.3},
        "window_start_hour": 17,
        "window_end_hour": 19,
        "grade": 4,
        "languages": ["zh"],
        "question": "Why is 1/3 bigger than 1/4?",
    }
    body.update(overrides)
    return body


def wav_bytes(seconds: float = 3.0, rate: int = 8000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(struct.pack("<h", 0) * int(seconds * rate))
    return buffer.getvalue()


@pytest.fixture
def client(database_url: str) -> Iterator[TestClient]:
    engine = make_engine(database_url)
    create_schema(engine)
    engine.dispose()
    app = create_app(CentralSettings(database_url=database_url))
    with TestClient(app, headers=admin_headers(app)) as test_client:
        yield test_client


def test_teachers_requests_assignment_and_outcomes(client: TestClient) -> None:
    for teacher_id in ("t-a", "t-b"):
        assert (
            client.put(f"/api/matching/teachers/{teacher_id}", json=teacher(teacher_id)).status_code
            == 200
        )
    other = teacher("t-en", languages=["en"])
    assert client.put("/api/matching/teachers/t-en", json=other).status_code == 200
    mismatch = client.put("/api/matching/teachers/t-x", json=teacher("t-y"))
    assert mismatch.status_code == 422

    response = client.post("/api/matching/requests", json=tutoring_request("r1"))
    assert response.status_code == 201, response.text
    ranking = response.json()
    assert ranking["status"] == "open"
    assert {t["teacher_id"] for t in ranking["teachers"]} == {"t-a", "t-b"}  # t-en: language
    reasons = ranking["teachers"][0]["reasons"]
    assert set(reasons) >= {"skill_fit", "similar_students", "availability", "load", "summary"}
    assert reasons["availability"] == {"hours_in_window": 2, "window_hours": 2}
    assert client.post("/api/matching/requests", json=tutoring_request("r1")).status_code == 409
    unknown = client.post(
        "/api/matching/requests", json=tutoring_request("r9", skills=["art.clay"])
    )
    assert unknown.status_code == 422
    assert "unknown skill" in unknown.json()["detail"]

    # Three requests, two places: the rural student is among those served.
    client.post("/api/matching/requests", json=tutoring_request("r2"))
    client.post("/api/matching/requests", json=tutoring_request("r3", attributes={"rural": True}))
    batch = client.post(
        "/api/matching/assignments", json={"slot_start_hour": 17, "slot_end_hour": 18}
    ).json()
    assert batch["considered"] == 3 and batch["assigned"] == 2
    by_request = {a["request_id"]: a["teacher_id"] for a in batch["assignments"]}
    assert by_request["r3"] is not None
    assigned = [t for t in by_request.values() if t is not None]
    assert sorted(assigned) == ["t-a", "t-b"]  # capacity 1 each: never two on one teacher
    waiting = next(r for r, t in by_request.items() if t is None)

    # Both teachers are full: the waiting request finds nobody, another batch assigns nothing.
    assert client.get(f"/api/matching/requests/{waiting}").json()["teachers"] == []
    again = client.post(
        "/api/matching/assignments", json={"slot_start_hour": 17, "slot_end_hour": 18}
    ).json()
    assert again["assigned"] == 0

    served = next(r for r, t in by_request.items() if t is not None)
    outcome = {
        "request_id": served,
        "session_id": "session-1",
        "mastery_before": {"maths.fractions": 0.3},
        "mastery_after": {"maths.fractions": 0.65},
        "rating": 5,
    }
    response = client.post("/api/matching/outcomes", json=outcome)
    assert response.status_code == 201 and response.json() == {"learned": True}
    assert client.post("/api/matching/outcomes", json=outcome).status_code == 409
    profile = client.get(f"/api/matching/teachers/{by_request[served]}").json()
    assert profile["sessions"] == 1
    # A place is free again: the waiting request now finds its teacher.
    freed = client.get(f"/api/matching/requests/{waiting}").json()["teachers"]
    assert [t["teacher_id"] for t in freed] == [by_request[served]]

    bad = dict(outcome, request_id=waiting, mastery_after={"maths.decimals": 0.5})
    assert client.post("/api/matching/outcomes", json=bad).status_code == 422
    assert client.get("/api/matching/teachers/nobody").status_code == 404


def _session(session_id: str = "session-1", **overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "session_id": session_id,
        "teacher_id": "Teacher Wang",
        "student_id": "Li Ming",
        "started_at": "2026-12-03T17:00:00Z",
        "strokes": [
            {"t0_ms": 200, "points": [[10, 10, 0, 0.5], [30, 10, 100, 0.6], [30, 30, 100, 0.6]]},
            {"t0_ms": 1500, "points": [[40, 10, 0, 0.5], [60, 30, 200, 0.7]]},
        ],
        "audio_offset_ms": 0,
    }
    body.update(overrides)
    return body


def test_sessions_audio_replay_page_and_export(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert client.post("/api/matching/sessions", json=_session()).status_code == 201
    assert client.post("/api/matching/sessions", json=_session()).status_code == 409
    bad_point = _session("s2", strokes=[{"t0_ms": 0, "points": [[1, 2, -5, 0.5]]}])
    assert client.post("/api/matching/sessions", json=bad_point).status_code == 422
    naive = _session("s3", started_at="2026-12-03T17:00:00")
    assert client.post("/api/matching/sessions", json=naive).status_code == 422

    audio = wav_bytes()
    put = client.put(
        "/api/matching/sessions/session-1/audio",
        content=audio,
        headers={"content-type": "audio/wav"},
    )
    assert put.status_code == 204
    refused = client.put(
        "/api/matching/sessions/session-1/audio",
        content=b"x",
        headers={"content-type": "text/plain"},
    )
    assert refused.status_code == 415
    whole = client.get("/api/matching/sessions/session-1/audio")
    assert whole.content == audio and whole.headers["accept-ranges"] == "bytes"
    part = client.get("/api/matching/sessions/session-1/audio", headers={"range": "bytes=4-11"})
    assert part.status_code == 206 and part.content == audio[4:12]
    assert part.headers["content-range"] == f"bytes 4-11/{len(audio)}"

    page = client.get("/matching/sessions/session-1")
    assert page.status_code == 200
    html = page.text
    assert html.count('class="stroke"') == 2
    assert 'src="/api/matching/sessions/session-1/audio"' in html
    assert client.get("/matching/sessions/nope").status_code == 404

    monkeypatch.delenv("CLASSINK_MATCHING_EXPORT_KEY", raising=False)
    assert client.get("/api/matching/export/sessions.jsonl").status_code == 503
    monkeypatch.setenv("CLASSINK_MATCHING_EXPORT_KEY", "k" * 32)
    export = client.get("/api/matching/export/sessions.jsonl")
    assert export.status_code == 200
    lines = [json.loads(line) for line in export.text.splitlines()]
    assert len(lines) == 1
    text = export.text
    assert "Wang" not in text and "Li Ming" not in text and "session-1" not in text
    line = lines[0]
    assert line["date"] == "2026-12-03" and line["has_audio"] is True
    assert line["duration_ms"] == 1700
    assert line["strokes"][1]["points"][1] == [60, 30, 200, 0.7]
    monkeypatch.setenv("CLASSINK_MATCHING_EXPORT_KEY", "another key, 16+")
    assert (
        json.loads(client.get("/api/matching/export/sessions.jsonl").text)["teacher"]
        != line["teacher"]
    )


def test_export_command_writes_pseudonymised_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'central.db'}"
    engine = make_engine(url)
    create_schema(engine)
    engine.dispose()
    app = create_app(CentralSettings(database_url=url))
    with TestClient(app, headers=admin_headers(app)) as client:
        assert client.post("/api/matching/sessions", json=_session()).status_code == 201
    out = tmp_path / "sessions.jsonl"
    monkeypatch.delenv("CLASSINK_MATCHING_EXPORT_KEY", raising=False)
    assert main(["matching", "export", "--database-url", url, "--out", str(out)]) == 2
    monkeypatch.setenv("CLASSINK_MATCHING_EXPORT_KEY", "a secret of 16+ chars")
    assert main(["matching", "export", "--database-url", url, "--out", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0])["student"].startswith("s-") and "Li Ming" not in lines[0]
