"""Command-line exports of personal data leave audit rows like the API's: who (the OS user or
`--as`), which command, what was read and how many rows; on SQLite and PostgreSQL."""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from conftest import Messages, Store
from fastapi.testclient import TestClient
from school_data import oneroster_files, zip_of
from sqlalchemy import select, text

from central.api import create_app
from central.auth.models import AuditEntry
from central.settings import CentralSettings
from classink.cli import main


def _stored(store: Store, messages: Messages, count: int) -> None:
    for n in range(count):
        event = messages.answer(student_id=f"s{n}", question_id="q1")
        assert store.ingestor.handle(messages.topic(), json.dumps(event).encode()).kind == "stored"


def _cli_rows(store: Store) -> list[AuditEntry]:
    with store.sessions() as session:
        return list(
            session.scalars(
                select(AuditEntry).where(AuditEntry.method == "CLI").order_by(AuditEntry.id)
            )
        )


def test_export_answers_is_audited_with_actor_and_count(
    store: Store, messages: Messages, tmp_path: Path
) -> None:
    _stored(store, messages, 3)
    out = tmp_path / "answers.jsonl"
    argv = ["central", "export-answers", "--database-url", store.url, "--out", str(out)]
    assert main([*argv, "--as", "ana.auditor"]) == 0
    assert main([*argv, "--exam", "exam-1"]) == 0
    assert len(out.read_text().splitlines()) == 3
    named, default = _cli_rows(store)
    assert (named.user_id, named.role, named.path) == (
        "ana.auditor", "cli", "classink central export-answers",
    )  # fmt: skip
    assert parse_qs(named.query) == {
        "read": ["answer_events"], "count": ["3"], "out": [str(out)],
    }  # fmt: skip
    assert default.user_id == getpass.getuser()
    assert parse_qs(default.query)["exam"] == ["exam-1"]
    # The rows are in the log the API serves to admins.
    app = create_app(CentralSettings(database_url=store.url), engine=store.engine)
    token = app.state.issue_token("admin", "head")
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as admin:
        log = admin.get("/api/auth/audit", params={"user_id": "ana.auditor"}).json()
    assert [(e["method"], e["path"]) for e in log] == [("CLI", "classink central export-answers")]


def test_xapi_roster_and_matching_exports_are_audited(
    store: Store, messages: Messages, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _stored(store, messages, 2)
    url = ["--database-url", store.url]
    xapi = ["central", "export-xapi", *url, "--pseudonymise", "--out", str(tmp_path / "x.jsonl")]
    assert main([*xapi, "--as", "res-1"]) == 0
    (tmp_path / "roster.zip").write_bytes(zip_of(oneroster_files()))
    assert (
        main(["central", "roster-import", str(tmp_path / "roster.zip"), *url, "--as", "adm"]) == 0
    )
    monkeypatch.setenv("CLASSINK_MATCHING_EXPORT_KEY", "k" * 24)
    matching = ["matching", "export", *url, "--out", str(tmp_path / "m.jsonl"), "--as", "res-2"]
    assert main(matching) == 0
    rows = {row.user_id: row for row in _cli_rows(store)}
    assert set(rows) == {"res-1", "adm", "res-2"}
    xapi_row = parse_qs(rows["res-1"].query)
    assert xapi_row["read"] == ["xapi_statements"] and xapi_row["pseudonymised"] == ["yes"]
    assert xapi_row["count"] == [str(len((tmp_path / "x.jsonl").read_text().splitlines()))]
    roster_row = parse_qs(rows["adm"].query)
    assert roster_row["read"] == ["roster_users"] and roster_row["count"] == ["11"]
    assert rows["res-2"].path == "classink matching export"
    assert parse_qs(rows["res-2"].query)["count"] == ["0"]


def test_an_export_without_an_audit_log_reads_nothing(
    store: Store, messages: Messages, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    _stored(store, messages, 1)
    with store.engine.begin() as connection:
        connection.execute(text("DROP TABLE auth_audit_log"))
    out = tmp_path / "answers.jsonl"
    argv = ["central", "export-answers", "--database-url", store.url, "--out", str(out)]
    assert main(argv) == 1
    assert "no audit log table" in capsys.readouterr().err
    assert not out.exists(), "nothing was exported without its audit row"
