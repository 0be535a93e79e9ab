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
from sqlalchemy import Connection, MetaData, inspect

import central
from central.db import make_engine
from central.models import Base

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


class UnmigratedSchema(RuntimeError):
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


def upgrade(database_url: str, revision: str = "head") -> None:
    """Migrates the database to `revision`. A database made before the migrations existed (by
    `create_all`, as `central serve` does) is adopted when it already matches the models, and
    refused with the differences otherwise, rather than migrated from a guess."""
    config = alembic_config(database_url)
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            tables = set(inspect(connection).get_table_names())
            if tables and "alembic_version" not in tables:
                differences = schema_differences(connection)
                if differences:
                    raise UnmigratedSchema(
                        "the database has tables but no migration history, and differs from the "
                        f"models: {differences[:5]}"
                    )
                command.stamp(config, "head")
    finally:
        engine.dispose()
    command.upgrade(config, revision)
