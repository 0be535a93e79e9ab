"""`classink matching ...`: check a rules file, run the market simulator, export sessions."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from central.auth.cli_audit import add_actor_argument

KEY_ENV = "CLASSINK_MATCHING_EXPORT_KEY"


def register(subparsers: argparse._SubParsersAction) -> None:
    matching = subparsers.add_parser(
        "matching", help="tutoring: matching rules, market simulator, research export"
    )
    commands = matching.add_subparsers(dest="matching_command", required=True, metavar="ACTION")

    rules = commands.add_parser("rules", help="validate a rules file and print it in full")
    rules.add_argument(
        "path", type=Path, nargs="?", help="a .toml or .json file (default: shipped)"
    )
    rules.set_defaults(handler=_rules)

    simulate = commands.add_parser(
        "simulate", help="compare matching policies in the simulated market (JSON last line)"
    )
    simulate.add_argument("--rules", type=Path, help="rules file (default: the shipped one)")
    simulate.add_argument("--teachers", type=int, default=300)
    simulate.add_argument("--students", type=int, default=3000)
    simulate.add_argument("--sessions", type=int, default=10_000)
    simulate.add_argument("--seed", type=int, default=1)
    simulate.set_defaults(handler=_simulate)

    export = commands.add_parser(
        "export",
        help="recorded sessions as pseudonymised JSON lines",
        description=f"Identifiers are replaced by keyed hashes; the key is read from ${KEY_ENV} "
        "(16+ characters) and must be kept secret to keep the export pseudonymous.",
    )
    export.add_argument("--database-url", help="SQLAlchemy URL (default: CLASSINK_DATABASE_URL)")
    export.add_argument("--out", type=Path, required=True, help="the .jsonl file to write")
    add_actor_argument(export)  # the read is audit-logged (central/auth/cli_audit.py)
    export.set_defaults(handler=_export)


def _rules(args: argparse.Namespace) -> int:
    from central.matching.config import load_rules

    try:
        rules = load_rules(args.path)
    except (OSError, ValueError) as error:
        print(f"matching rules: {error}", file=sys.stderr)
        return 2
    print(json.dumps(rules.model_dump(), indent=2))
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from central.matching.config import load_rules
    from hardware_sim.market import MarketConfig, run_policies

    config = MarketConfig(
        teachers=args.teachers, students=args.students, sessions=args.sessions, seed=args.seed
    )
    results = run_policies(config, load_rules(args.rules))
    summary = {p: round(r.mean_gain_until(config.sessions), 5) for p, r in results.items()}
    for policy, gain in summary.items():
        print(f"{policy:>8}: mean gain per session {gain:.4f}", file=sys.stderr)
    print(json.dumps({"mean_gain": summary}))
    return 0


def _export(args: argparse.Namespace) -> int:
    from central.auth.cli_audit import (
        AuditUnavailable,
        cli_actor,
        record_cli_read,
        require_audit_log,
    )
    from central.db import make_engine, make_session_factory
    from central.matching.sessions import export_sessions
    from central.settings import CentralSettings

    key = os.environ.get(KEY_ENV, "")
    if len(key) < 16:
        print(f"matching export: set {KEY_ENV} to a secret of 16+ characters", file=sys.stderr)
        return 2
    url = args.database_url or CentralSettings().database_url
    engine = make_engine(url)
    count = 0
    try:
        require_audit_log(engine)
        with make_session_factory(engine)() as db, args.out.open("w", encoding="utf-8") as out:
            for line in export_sessions(db, key.encode()):
                out.write(line + "\n")
                count += 1
        record_cli_read(
            make_session_factory(engine), cli_actor(args.actor), "matching export",
            "tutoring_sessions", count, out=str(args.out),
        )  # fmt: skip
    except AuditUnavailable as error:
        print(f"matching export: {error}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    print(f"matching export: {count} sessions to {args.out}", file=sys.stderr)
    return 0
