"""Central refuses requests without a valid token on every route, enforces roles, holds teachers
to their classes, keeps an audit log, and signs pages in with a cookie."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Messages, Store
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from school_data import School, school

from central.auth.policy import PUBLIC, allowed_roles
from central.auth.security import COOKIE
from classink.cli import main

ROLES = ("admin", "teacher", "marker", "researcher")


@pytest.fixture
def town(sqlite_store: Store, messages: Messages) -> Iterator[School]:
    with school(sqlite_store, messages) as made:
        yield made


def api_routes(routes: list) -> Iterator[tuple[str, str]]:
    """(method, path template) of every route, including those of included routers."""
    for route in routes:
        if isinstance(route, APIRoute):
            for method in sorted(route.methods):
                yield method, route.path
        elif hasattr(route, "effective_candidates"):  # FastAPI's lazily included routers
            for candidate in route.effective_candidates():
                if hasattr(candidate, "effective_candidates"):
                    yield from api_routes([candidate])
                else:
                    original = candidate.original_route
                    for method in sorted(getattr(original, "methods", ()) or ()):
                        yield method, candidate.path
        else:
            raise AssertionError(f"a route that is not an API route: {route!r}")


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


def test_every_route_refuses_a_missing_or_unknown_token(town: School) -> None:
    routes = sorted(set(api_routes(town.app.routes)))
    assert len(routes) > 50  # every router really was walked
    assert {r for r in routes if r in PUBLIC} == PUBLIC
    anonymous = TestClient(town.app)
    forged = TestClient(town.app, headers={"Authorization": "Bearer cit_" + "A" * 43})
    for method, path in routes:
        if (method, path) in PUBLIC:
            continue
        for client in (anonymous, forged):
            response = client.request(method, concrete(path))
            assert response.status_code == 401, (method, path, response.text)
            assert response.headers["www-authenticate"] == "Bearer"
    malformed = TestClient(town.app, headers={"Authorization": "Basic dXNlcjpwdw=="})
    assert malformed.get("/api/exams").status_code == 401


def test_every_role_outside_a_routes_rule_gets_403(town: School) -> None:
    clients = {role: town.client(role, f"{role}-1") for role in ROLES}
    for method, path in sorted(set(api_routes(town.app.routes))):
        if (method, path) in PUBLIC:
            continue
        for role in set(ROLES) - allowed_roles(method, path):
            response = clients[role].request(method, concrete(path))
            assert response.status_code == 403, (role, method, path, response.text)
            assert role in response.json()["detail"]
    # The rules themselves, where a mistake would matter most.
    assert clients["researcher"].get("/api/fleet/gateways").status_code == 403
    assert clients["researcher"].get("/api/students/s1/results").status_code == 403
    assert clients["marker"].post("/api/roster/import").status_code == 403
    assert clients["teacher"].get("/api/fleet/gateways").status_code == 403
    assert clients["researcher"].get("/api/exams/exam-1/results").status_code == 403
    assert clients["researcher"].get("/api/export/xapi").status_code == 200
    assert clients["admin"].get("/api/fleet/gateways").status_code == 200


def test_a_teacher_sees_only_their_classes(town: School) -> None:
    t1 = town.client("teacher", "t1")
    assert [c["class_id"] for c in t1.get("/api/roster/classes").json()] == ["c1"]
    assert t1.get("/api/auth/me").json() == {"user_id": "t1", "role": "teacher", "classes": ["c1"]}
    own = t1.get("/api/classes/c1/results", params={"exam_id": "exam-1"})
    assert own.status_code == 200
    assert [s["student_id"] for s in own.json()["students"]] == [f"s{i}" for i in range(1, 7)]
    assert t1.get("/api/classes/c2/results", params={"exam_id": "exam-1"}).status_code == 403
    # The unscoped exam routes answer a teacher too, with only their own students' rows
    # (tests/test_teacher_scope.py has the rest).
    exam = t1.get("/api/exams/exam-1/results")
    assert exam.status_code == 200
    assert [s["student_id"] for s in exam.json()["students"]] == [f"s{i}" for i in range(1, 7)]
    assert {i["student_id"] for i in t1.get("/api/review").json()} == {"s4"}
    assert t1.get("/api/students/s1/results").status_code == 200
    assert t1.get("/api/students/s7/results").status_code == 403
    assert t1.get("/api/tracing/students/s7/mastery").status_code == 403
    other = town.events["s7"]["q1"]
    assert t1.get(f"/api/review/{other}").status_code == 403
    decision = {"action": "accept"}
    assert t1.post(f"/api/review/{other}/decision", json=decision).status_code == 403
    assert t1.put("/api/pens/9c:7b:ef:00:00:99", json={"student_id": "s7"}).status_code == 403
    assert t1.put("/api/pens/9c:7b:ef:00:00:99", json={"student_id": "s2"}).status_code == 200
    # A token may add a class the roster does not (yet) list for the teacher.
    extra = town.client("teacher", "t1", ("c2",))
    assert extra.get("/api/students/s7/results").status_code == 200


def test_the_audit_log_records_who_did_what(town: School) -> None:
    marker = town.client("marker", "m-1")
    assert marker.get("/api/exams").status_code == 200
    assert TestClient(town.app).get("/api/exams?x=1").status_code == 401
    assert marker.get("/api/fleet/gateways").status_code == 403
    log = town.admin.get("/api/auth/audit", params={"limit": 10}).json()
    seen = [(e["method"], e["path"], e["user_id"], e["role"], e["status"]) for e in log]
    assert ("GET", "/api/exams", "m-1", "marker", 200) in seen
    assert ("GET", "/api/exams", None, None, 401) in seen
    assert ("GET", "/api/fleet/gateways", "m-1", "marker", 403) in seen
    assert ("POST", "/api/roster/import", "test-admin", "admin", 200) in [
        (e["method"], e["path"], e["user_id"], e["role"], e["status"])
        for e in town.admin.get("/api/auth/audit", params={"user_id": "test-admin"}).json()
    ]


def test_pages_sign_in_with_a_cookie_and_refuse_cross_site_writes(town: School) -> None:
    token = town.app.state.issue_token("marker", "m-2")
    browser = TestClient(town.app, base_url="http://central.test")
    assert browser.get("/review").status_code == 401
    refused = browser.post("/login", data={"token": "cit_nonsense", "next": "/review"})
    assert refused.status_code == 401 and "unknown" in refused.text
    signed_in = browser.post(
        "/login", data={"token": token, "next": "/review"}, follow_redirects=False
    )
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/review"
    cookie = signed_in.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert browser.cookies.get(COOKIE) == token
    assert browser.get("/review").status_code == 200
    event = town.events["s4"]["q4"]
    body = {"action": "correct", "label": "1", "points_awarded": 1}
    cross = browser.post(
        f"/api/review/{event}/decision", json=body, headers={"origin": "http://evil.test"}
    )
    assert cross.status_code == 403
    same = browser.post(
        f"/api/review/{event}/decision", json=body, headers={"origin": "http://central.test"}
    )
    assert same.status_code == 201
    # An open redirect is not possible through `next`.
    away = browser.post("/login", data={"token": token, "next": "//evil.test/"},
                        follow_redirects=False)  # fmt: skip
    assert away.headers["location"] == "/dashboard"


def test_token_command_issues_and_revokes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    url = f"sqlite:///{tmp_path / 'central.db'}"
    argv = ["central", "token", "create", "--role", "researcher", "--user", "r-1"]
    assert main([*argv, "--database-url", url]) == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith("cit_")
    from central.api import create_app
    from central.settings import CentralSettings

    app = create_app(CentralSettings(database_url=url))
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as client:
        assert client.get("/api/auth/me").json()["role"] == "researcher"
        assert token not in (tmp_path / "central.db").read_bytes().decode("latin-1")
        revoke = ["central", "token", "revoke", "--user", "r-1", "--database-url", url]
        assert main(revoke) == 0
        assert client.get("/api/auth/me").status_code == 401
    bad = ["central", "token", "create", "--role", "marker", "--user", "m", "--classes", "c1"]
    assert main([*bad, "--database-url", url]) == 2
