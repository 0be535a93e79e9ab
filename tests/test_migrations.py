"""The Alembic migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from central.db import create_schema, make_engine
from central.migrate import UnmigratedSchema, all_models_metadata, schema_differences, upgrade


def differences_at(url: str) -> list:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return schema_differences(connection)
    finally:
        engine.dispose()


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_migrated_schema_equals_the_models(database_url: str) -> None:
    upgrade(database_url)

    assert differences_at(database_url) == []
    assert _tables(database_url) == set(all_models_metadata().tables) | {"alembic_version"}


def test_upgrading_twice_changes_nothing(database_url: str) -> None:
    upgrade(database_url)
    upgrade(database_url)
    assert differences_at(database_url) == []


def test_an_empty_database_differs_from_the_models(tmp_path: Path) -> None:
    # The comparison above can fail: without the migration every table is missing.
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    missing = {diff[1].name for diff in differences_at(url) if diff[0] == "add_table"}
    assert missing == set(all_models_metadata().tables)


def test_a_database_made_by_create_all_is_adopted(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    create_schema(engine)
    engine.dispose()

    upgrade(url)

    assert "alembic_version" in _tables(url)
    assert differences_at(url) == []


def test_a_database_unlike_the_models_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'odd.db'}"
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE answer_events (event_id TEXT PRIMARY KEY)"))
    engine.dispose()

    with pytest.raises(UnmigratedSchema, match="differs from the models"):
        upgrade(url)


def test_migrate_command(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    result = subprocess.run(
        [sys.executable, "-m", "classink.cli", "central", "migrate", "--database-url", url],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert differences_at(url) == []


def test_every_command_that_opens_the_store_migrates_it(tmp_path: Path) -> None:
    """Commands other than `migrate` and `serve` used to create tables without a migration
    history; now a new database they open is at head, and a foreign one is refused in one line."""
    url = f"sqlite:///{tmp_path / 'new.db'}"
    run = subprocess.run(
        [sys.executable, "-m", "classink.cli", "central", "token", "create", "--role", "admin",
         "--user", "a", "--database-url", url],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "alembic_version" in _tables(url)
    assert differences_at(url) == []

    foreign = tmp_path / "foreign.db"
    engine = make_engine(f"sqlite:///{foreign}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE answer_events (x INTEGER)"))
    engine.dispose()
    run = subprocess.run(
        [sys.executable, "-m", "classink.cli", "central", "token", "create", "--role", "admin",
         "--user", "a", "--database-url", f"sqlite:///{foreign}"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert run.returncode == 2
    assert "no migration history" in run.stderr and "Traceback" not in run.stderr
