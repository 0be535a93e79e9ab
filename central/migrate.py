"""Schema migrations of the central store with Alembic (central/migrations/).

`upgrade(url)` brings a database to the newest schema: an empty one gets every table, an older one
the changes since. The migrations cover every table registered on central.models.Base, found by
importing each `models` module under the central package, so that a new room's tables cannot be
forgotten (tests/test_migrations.py fails until the migration is regenerated).
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Connection, Engine, MetaData, inspect, text

import central
from central.db import make_engine
from central.models import Base
from classink import CommandError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


class UnmigratedSchema(CommandError):
    pass


def all_models_metadata() -> MetaData:
    """Base.metadata with every central room's tables registered on it."""
    for module in pkgutil.walk_packages(central.__path__, "central."):
        if module.name.rsplit(".", 1)[-1] == "models":
            importlib.import_module(module.name)
    return Base.metadata


def alembic_config(database_url: str | None = None, connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["database_url"] = database_url
    config.attributes["connection"] = connection
    return config


def schema_differences(connection: Connection) -> list[Any]:
    """What the database lacks or has beyond the models, as Alembic's autogenerate sees it."""
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return compare_metadata(context, all_models_metadata())


# Tables that migrations after a revision create. A database made by `create_all` before those
# migrations existed lacks exactly these, and is adopted at that revision, then upgraded.
TABLES_ADDED_AFTER: dict[str, frozenset[str]] = {"0001": frozenset({"fleet_sites"})}
# One key for every central process, so that concurrent upgrades of one database run in turn.
ADVISORY_LOCK_KEY = 0x636C_696E_6B00  # "clink\0"


def migrated_engine(database_url: str) -> Engine:
    """An engine on the database brought to the newest schema: how every central command opens
    its database, so that the schema always has its migration history (never create_all)."""
    upgrade(database_url)
    return make_engine(database_url)


def upgrade(database_url: str, revision: str = "head") -> None:
    """Migrates the database to `revision`. A database made before the migrations existed (by
    `create_all`) is adopted at the newest revision it matches, and refused with the differences
    otherwise, rather than migrated from a guess. On PostgreSQL a session advisory lock makes
    several workers starting at once upgrade one after another: the later ones find it done."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as lock:
            postgres = lock.dialect.name == "postgresql"
            if postgres:
                lock.execute(text("SELECT pg_advisory_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
                lock.commit()
            try:
                _adopt_and_upgrade(engine, database_url, revision)
            finally:
                if postgres:
                    lock.execute(
                        text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_LOCK_KEY}
                    )
                    lock.commit()
    finally:
        engine.dispose()


def _adopt_and_upgrade(engine: Engine, database_url: str, revision: str) -> None:
    config = alembic_config(database_url)
    with engine.connect() as connection:
        tables = set(inspect(connection).get_table_names())
        if tables and "alembic_version" not in tables:
            command.stamp(config, _matching_revision(schema_differences(connection)))
    command.upgrade(config, revision)


def _matching_revision(differences: list[Any]) -> str:
    if not differences:
        return "head"
    missing = {diff[1].name for diff in differences if diff[0] == "add_table"}
    only_missing_tables = all(
        diff[0] == "add_table" or (diff[0] == "add_index" and diff[1].table.name in missing)
        for diff in differences
    )
    if only_missing_tables:
        for earlier, added in TABLES_ADDED_AFTER.items():
            if missing == added:
                return earlier
    shown = "; ".join(_describe(diff) for diff in differences[:5])
    more = f" (and {len(differences) - 5} more)" if len(differences) > 5 else ""
    raise UnmigratedSchema(
        "the database has tables but no migration history, and differs from the models: "
        f"{shown}{more}. Point --database-url at an empty database or one classink made."
    )


def _describe(diff: Any) -> str:
    """One schema difference from alembic's compare_metadata, in a few words."""
    if isinstance(diff, list):  # column modifications come as a list of tuples
        diff = diff[0]
    kind, subject = diff[0], diff[1] if len(diff) > 1 else None
    name = getattr(subject, "name", None)
    table = getattr(getattr(subject, "table", None), "name", None)
    if kind in ("add_table", "remove_table"):
        return f"{'missing' if kind == 'add_table' else 'unexpected'} table {name}"
    if kind in ("add_column", "remove_column"):
        where, column = diff[2], diff[3].name
        return f"{'missing' if kind == 'add_column' else 'unexpected'} column {where}.{column}"
    where = f"{table}." if table else ""
    return f"{kind.replace('_', ' ')} {where}{name or diff[2:]}"
