"""A throw-away PostgreSQL server for the tests: initdb into a temp folder, start, stop, remove.

PostgreSQL refuses to run as root, so when the tests run as root the server runs as `postgres`.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from classink.mosquitto import free_port

INSTALL_HINT = "install postgresql (Debian/Ubuntu: sudo apt-get install postgresql)"


def find_pg_bin() -> Path | None:
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    # Debian keeps the server binaries out of PATH, one folder per major version.
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3])
    )
    return Path(found[-1]).parent if found else None


def require_pg_bin() -> Path:
    pg_bin = find_pg_bin()
    if pg_bin is None:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required in CI but initdb was not found: {INSTALL_HINT}")
        pytest.skip(INSTALL_HINT)
    return pg_bin


def _run(command: list[str], as_postgres: bool) -> None:
    prefix = ["runuser", "-u", "postgres", "--"] if as_postgres else []
    result = subprocess.run(prefix + command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")


@contextmanager
def postgres_server(database: str = "classink") -> Iterator[str]:
    """Yields a SQLAlchemy URL of an empty `database` on a private server."""
    pg_bin = require_pg_bin()
    as_postgres = os.geteuid() == 0
    workdir = Path(tempfile.mkdtemp(prefix="classink-pg-"))
    data, sockets, log = workdir / "data", workdir / "sockets", workdir / "server.log"
    sockets.mkdir()
    if as_postgres:
        shutil.chown(workdir, "postgres")
        shutil.chown(sockets, "postgres")
    port = free_port()
    started = False
    try:
        _run(
            [str(pg_bin / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"]
            + ["-E", "UTF8", "--no-sync"],
            as_postgres,
        )
        # Durability settings are off: the data is thrown away, and this keeps the tests fast.
        options = (
            f"-p {port} -h 127.0.0.1 -k {sockets}"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        _run(
            [str(pg_bin / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w"]
            + ["start"],
            as_postgres,
        )
        started = True
        with psycopg.connect(
            host="127.0.0.1", port=port, user="postgres", dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/{database}"
    finally:
        if started:
            _run([str(pg_bin / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], as_postgres)
        shutil.rmtree(workdir, ignore_errors=True)


def create_database(server_url: str, name: str) -> str:
    """Creates `name` on the server of `server_url` and returns the URL of the new database."""
    url = make_url(server_url)
    with psycopg.connect(
        host=url.host, port=url.port, user=url.username, dbname=url.database, autocommit=True
    ) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return url.set(database=name).render_as_string(hide_password=False)
