"""`central serve` brings the schema to head with Alembic, as `central migrate` does: serve
processes starting at once on one PostgreSQL take turns under an advisory lock and all come up;
a database made by an older `create_all` is adopted at the revision it matches and upgraded."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from pg import create_database
from sqlalchemy import MetaData, inspect, text
from test_migrations import differences_at

from central.db import make_engine
from central.migrate import ADVISORY_LOCK_KEY, all_models_metadata, upgrade
from classink.mosquitto import Mosquitto, free_port

HEAD = "0002"


def _versions(url: str) -> list[str]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return [
                row[0]
                for row in connection.execute(text("SELECT version_num FROM alembic_version"))
            ]
    finally:
        engine.dispose()


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def mosquitto() -> Iterator[Mosquitto]:
    """A broker of this module's own: the serve processes leave persistent `$share/central`
    sessions behind, which on the session's shared broker would take a share of later tests'
    answers."""
    with Mosquitto() as broker:
        yield broker


def test_two_serve_processes_starting_at_once_on_postgresql(
    postgres_url: str, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    url = create_database(postgres_url, f"classink_serve_{os.getpid()}")
    ports = [free_port(), free_port()]
    cli = [sys.executable, "-m", "classink.cli", "central"]
    logs = [open(tmp_path / f"serve-{n}.log", "w") for n in range(2)]  # noqa: SIM115
    serves = [
        subprocess.Popen(
            [
                *cli,
                "serve",
                "--database-url",
                url,
                "--mqtt-port",
                str(mosquitto.port),
                "--http-port",
                str(port),
                "--client-id",
                f"serve-migration-test-{n}-{os.getpid()}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        for n, (port, log) in enumerate(zip(ports, logs, strict=True))
    ]
    try:
        deadline = time.monotonic() + 90
        while not all(_healthy(port) for port in ports):
            for process, log in zip(serves, logs, strict=True):
                assert process.poll() is None, Path(log.name).read_text()[-3000:]
            assert time.monotonic() < deadline, "the serve processes did not come up"
            time.sleep(0.2)
    finally:
        for process in serves:
            process.send_signal(signal.SIGTERM)
        for process in serves:
            process.wait(timeout=30)
        for log in logs:
            log.close()
    assert _versions(url) == [HEAD]
    assert differences_at(url) == []


def test_the_upgrade_waits_for_the_advisory_lock(postgres_url: str) -> None:
    url = create_database(postgres_url, f"classink_lock_{os.getpid()}")
    holder = make_engine(url)
    done = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            upgrade(url)
        except BaseException as error:  # noqa: BLE001  (reported by the test below)
            errors.append(error)
        finally:
            done.set()

    try:
        with holder.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": ADVISORY_LOCK_KEY})
            connection.commit()
            worker = threading.Thread(target=run)
            worker.start()
            # Another worker holds the lock: this one must not touch the schema meanwhile.
            assert not done.wait(3)
            assert "alembic_version" not in inspect(connection).get_table_names()
            connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": ADVISORY_LOCK_KEY})
            connection.commit()
        assert done.wait(60) and not errors, errors
    finally:
        holder.dispose()
    assert _versions(url) == [HEAD]


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_create_all_database_from_before_the_sites_table_is_adopted(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
    else:
        url = create_database(
            request.getfixturevalue("postgres_url"), f"classink_old_{os.getpid()}"
        )
    # The schema as `create_all` made it before revision 0002: every table but fleet_sites.
    older = MetaData()
    for table in all_models_metadata().tables.values():
        if table.name != "fleet_sites":
            table.to_metadata(older)
    engine = make_engine(url)
    older.create_all(engine)
    engine.dispose()

    upgrade(url)

    assert _versions(url) == [HEAD]
    assert differences_at(url) == []
