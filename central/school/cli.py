"""`classink central export-xapi` and `classink central roster-import`, beside `token`."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

from central.auth.cli import register as register_tokens
from central.auth.cli_audit import add_actor_argument


def register(central_commands: argparse._SubParsersAction) -> None:
    register_tokens(central_commands)
    export = central_commands.add_parser(
        "export-xapi", help="write answers (and markers' decisions) as xAPI statements, one a line"
    )
    export.add_argument("--database-url", help="SQLAlchemy URL (default: CLASSINK_DATABASE_URL)")
    export.add_argument("--exam", help="only this exam id")
    export.add_argument(
        "--home-page",
        default="https://classink.example",
        help="the account homePage and activity id prefix (central's public address)",
    )
    export.add_argument(
        "--pseudonymise", action="store_true", help="learners as keyed pseudonyms (for research)"
    )
    export.add_argument("--out", type=Path, help="file to write (default: standard output)")
    add_actor_argument(export)  # the read is audit-logged (central/auth/cli_audit.py)
    export.set_defaults(handler=export_xapi_command)
    roster = central_commands.add_parser(
        "roster-import", help="import a OneRoster 1.2 CSV zip (orgs, users, classes, enrollments)"
    )
    roster.add_argument("zip", type=Path)
    roster.add_argument("--database-url", help="SQLAlchemy URL (default: CLASSINK_DATABASE_URL)")
    add_actor_argument(roster)
    roster.set_defaults(handler=roster_import_command)


def _engine(url: str | None):
    from central.db import make_session_factory
    from central.migrate import migrated_engine
    from central.settings import CentralSettings

    engine = migrated_engine(url or CentralSettings().database_url)
    return engine, make_session_factory(engine)


def export_xapi_command(args: argparse.Namespace) -> int:
    from central.auth.cli_audit import AuditUnavailable, cli_actor, record_cli_read
    from central.auth.tokens import pseudonym, server_secret
    from central.school.xapi import statements

    engine, sessions = _engine(args.database_url)
    try:
        if args.pseudonymise:
            key = server_secret(sessions, "pseudonym")

            def names(learner: str) -> str:
                return pseudonym(key, learner)
        else:

            def names(learner: str) -> str:
                return learner

        with sessions() as session, contextlib.ExitStack() as stack:
            out = (
                sys.stdout
                if args.out is None
                else stack.enter_context(open(args.out, "w", encoding="utf-8"))
            )
            count = 0
            home = args.home_page.rstrip("/")
            for statement in statements(session, home, names, args.exam):
                out.write(json.dumps(statement, separators=(",", ":")) + "\n")
                count += 1
        record_cli_read(
            sessions, cli_actor(args.actor), "central export-xapi", "xapi_statements", count,
            exam=args.exam, pseudonymised="yes" if args.pseudonymise else "no",
            out=str(args.out) if args.out else None,
        )  # fmt: skip
    except AuditUnavailable as error:
        print(f"export-xapi: {error}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    print(f"exported {count} xAPI statements", file=sys.stderr)
    return 0


def roster_import_command(args: argparse.Namespace) -> int:
    from central.auth.cli_audit import AuditUnavailable, cli_actor, record_cli_read
    from central.roster.oneroster import RosterError, import_oneroster

    try:
        data = args.zip.read_bytes()
    except OSError as error:
        print(f"roster-import: {error}", file=sys.stderr)
        return 2
    engine, sessions = _engine(args.database_url)
    try:
        with sessions.begin() as session:
            summary = import_oneroster(session, data)
        # A change of personal data rather than a read, logged the same way.
        record_cli_read(
            sessions, cli_actor(args.actor), "central roster-import", "roster_users", summary.users,
            classes=str(summary.classes), enrollments=str(summary.enrollments), zip=str(args.zip),
        )  # fmt: skip
    except RosterError as error:
        for line in error.errors:
            print(f"roster-import: {line}", file=sys.stderr)
        return 2
    except AuditUnavailable as error:
        print(f"roster-import: {error}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    print(json.dumps(summary.__dict__))
    return 0
