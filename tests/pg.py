"""The tests' throw-away PostgreSQL (classink/postgres.py), skipped when PostgreSQL is not
installed, except in CI where it must be."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from classink.postgres import INSTALL_HINT, create_database, find_pg_bin
from classink.postgres import postgres_server as _postgres_server

__all__ = ["create_database", "postgres_server"]


@contextmanager
def postgres_server(database: str = "classink") -> Iterator[str]:
    """Yields a SQLAlchemy URL of an empty `database` on a private server."""
    if find_pg_bin() is None:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required in CI but initdb was not found: {INSTALL_HINT}")
        pytest.skip(INSTALL_HINT)
    with _postgres_server(database) as url:
        yield url
