"""Audit rows for command-line reads of personal data, in the same log as the API's requests.

An export from the command line reads as much as any API call, so it is recorded the same way:
`method` is CLI, `path` the command, `query` what was read and how many rows, `user_id` the
operating-system user (or the name given with `--as`), `role` cli and `status` 0.
"""

from __future__ import annotations

import argparse
import getpass
import os
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import urlencode

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session, sessionmaker

CLI_METHOD = "CLI"
CLI_ROLE = "cli"


class AuditUnavailable(RuntimeError):
    """The audit row could not be written: the caller must say so and fail."""


def add_actor_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--as",
        dest="actor",
        metavar="NAME",
        help="who is reading, for the audit log (default: the operating-system user)",
    )


def cli_actor(name: str | None) -> str:
    if name:
        return name[:128]
    try:
        return getpass.getuser()[:128]
    except (KeyError, OSError):
        # A container user with no passwd entry and no LOGNAME: the uid still tells who.
        return f"uid:{os.getuid()}"


def require_audit_log(engine: Engine) -> None:
    """Checked before an export reads anything, so that no data leaves without its audit row."""
    from sqlalchemy import inspect

    from central.auth.models import AuditEntry

    if not inspect(engine).has_table(AuditEntry.__tablename__):
        raise AuditUnavailable(
            "the database has no audit log table: run `classink central migrate` first"
        )


def record_cli_read(
    sessions: sessionmaker[Session],
    actor: str,
    command: str,
    what: str,
    count: int,
    **filters: str | None,
) -> None:
    """One audit row; raises AuditUnavailable when the row cannot be stored."""
    # Imported here so that building the command line does not load SQLAlchemy.
    from sqlalchemy.exc import SQLAlchemyError

    from central.auth.models import AuditEntry

    query = {"read": what, "count": str(count)}
    query.update({name: value for name, value in filters.items() if value is not None})
    try:
        with sessions.begin() as session:
            session.add(
                AuditEntry(
                    at=datetime.now(UTC),
                    method=CLI_METHOD,
                    path=f"classink {command}",
                    query=urlencode(query)[:2000],
                    user_id=actor,
                    role=CLI_ROLE,
                    status=0,
                )
            )
    except SQLAlchemyError as error:
        raise AuditUnavailable(f"could not write the audit log entry: {error}") from error
