"""A private PostgreSQL server: initdb into a temporary folder, start on a free port, stop, remove.

The tests and `python -m bench.ingest` need a real PostgreSQL that nothing else on the machine is
using. PostgreSQL refuses to run as root, so when we are root the server runs as `postgres`.
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
from psycopg import sql
from sqlalchemy.engine import make_url

from classink.mosquitto import free_port

INSTALL_HINT = "install postgresql (Debian/Ubuntu: sudo apt-get install postgresql)"


class PostgresNotInstalled(RuntimeError):
    pass


def find_pg_bin() -> Path | None:
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    # Debian keeps the server binaries out of PATH, one folder per major version.
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3])
    )
    return Path(found[-1]).parent if found else None


def _run(command: list[str], as_postgres: bool) -> None:
    prefix = ["runuser", "-u", "postgres", "--"] if as_postgres else []
    result = subprocess.run(prefix + command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")


@contextmanager
def postgres_server(database: str = "classink", *, durable: bool = False) -> Iterator[str]:
    """Yields a SQLAlchemy URL of an empty `database` on a private server.

    Without `durable`, fsync and synchronous commit are off: right for tests, whose data is thrown
    away, wrong for measuring what a production server can commit.
    """
    pg_bin = find_pg_bin()
    if pg_bin is None:
        raise PostgresNotInstalled(INSTALL_HINT)
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
        options = f"-p {port} -h 127.0.0.1 -k {sockets}"
        if not durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
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
