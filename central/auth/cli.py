"""`classink central token create|revoke`: the admin's way to hand out and withdraw access."""

from __future__ import annotations

import argparse
import sys

from central.auth.models import ROLES


def register(central_commands: argparse._SubParsersAction) -> None:
    """Adds `token` under `classink central`."""
    token = central_commands.add_parser("token", help="issue or revoke API and dashboard tokens")
    actions = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    create = actions.add_parser(
        "create", help="issue a token (printed once; central keeps only its SHA-256)"
    )
    create.add_argument("--role", choices=ROLES, required=True)
    create.add_argument(
        "--user", required=True, help="who the token is for (a roster id for teachers)"
    )
    create.add_argument(
        "--classes",
        nargs="*",
        default=[],
        help="teacher only: class sourcedIds besides those the roster says they teach",
    )
    create.add_argument("--database-url", help="SQLAlchemy URL (default: CLASSINK_DATABASE_URL)")
    create.set_defaults(handler=create_command)
    revoke = actions.add_parser("revoke", help="revoke every token of a user")
    revoke.add_argument("--user", required=True)
    revoke.add_argument("--database-url", help="SQLAlchemy URL (default: CLASSINK_DATABASE_URL)")
    revoke.set_defaults(handler=revoke_command)


def _sessions(url: str | None):
    from central.db import make_session_factory
    from central.migrate import migrated_engine
    from central.settings import CentralSettings

    engine = migrated_engine(url or CentralSettings().database_url)
    return engine, make_session_factory(engine)


def create_command(args: argparse.Namespace) -> int:
    from central.auth.tokens import TokenError, issue_token

    engine, sessions = _sessions(args.database_url)
    try:
        token = issue_token(sessions, args.role, args.user, args.classes)
    except TokenError as error:
        print(f"token create: {error}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    print(token)
    print(f"issued a {args.role} token for {args.user}; it is shown only now", file=sys.stderr)
    return 0


def revoke_command(args: argparse.Namespace) -> int:
    from central.auth.tokens import revoke_user

    engine, sessions = _sessions(args.database_url)
    try:
        count = revoke_user(sessions, args.user)
    finally:
        engine.dispose()
    print(f"revoked {count} token(s) of {args.user}", file=sys.stderr)
    return 0
