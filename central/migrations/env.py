"""Alembic environment for the central store: every table registered on central.models.Base.

Run through central.migrate (the `classink central migrate` command), which passes the
database URL, or an open connection, in the Alembic config's attributes.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from central.db import make_engine
from central.migrate import all_models_metadata

config = context.config
target_metadata = all_models_metadata()


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        # SQLite cannot ALTER most things in place; batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(config.attributes["database_url"])
    try:
        with engine.connect() as connection:
            _run(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported: give a database URL")
run_online()
