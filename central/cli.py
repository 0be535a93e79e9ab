"""`classink central serve`: MQTT ingest and the results web app in one process."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path
from types import FrameType

from central.auth.cli_audit import add_actor_argument

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    central = subparsers.add_parser(
        "central", help="central service: MQTT ingest, storage and the results web app"
    )
    commands = central.add_subparsers(dest="central_command", required=True, metavar="SUBCOMMAND")
    serve = commands.add_parser(
        "serve",
        help="store answers arriving over MQTT and serve the results page",
        description="Options override the CLASSINK_* environment variables.",
    )
    serve.add_argument("--database-url", help="SQLAlchemy URL (default: a local SQLite file)")
    serve.add_argument("--mqtt-host", help="broker host (default 127.0.0.1)")
    serve.add_argument("--mqtt-port", type=int, help="broker port (default 1883)")
    serve.add_argument("--http-host", help="web app address (default 127.0.0.1)")
    serve.add_argument("--http-port", type=int, help="web app port (default 8000)")
    serve.add_argument(
        "--client-id",
        help="MQTT client id; keep it stable, the broker queues answers for it while central is "
        "down (default: classink-central-<hostname>)",
    )
    serve.set_defaults(handler=serve_command)
    export = commands.add_parser(
        "export-answers", help="write every stored answer event, one JSON object a line"
    )
    export.add_argument("--database-url", help="SQLAlchemy URL (default: CLASSINK_DATABASE_URL)")
    export.add_argument("--format", choices=["jsonl"], default="jsonl")
    export.add_argument("--exam", help="only this exam id")
    export.add_argument("--out", type=Path, help="file to write (default: standard output)")
    add_actor_argument(export)  # the read is audit-logged (central/auth/cli_audit.py)
    export.set_defaults(handler=export_command)
    check = commands.add_parser(
        "compare-truth",
        help="compare a classroom's ground truth with an export: lost and duplicated answers",
    )
    check.add_argument("--truth", type=Path, required=True, help="`classink sim … --truth` file")
    check.add_argument("--export", type=Path, required=True, help="`export-answers` output")
    check.add_argument("--exam", help="only this exam id")
    check.set_defaults(handler=compare_command)
    migrate = commands.add_parser(
        "migrate", help="create or upgrade the central database schema (Alembic migrations)"
    )
    migrate.add_argument("--database-url", help="SQLAlchemy URL (default: CLASSINK_DATABASE_URL)")
    migrate.add_argument("--revision", default="head", help="target revision (default: head)")
    migrate.set_defaults(handler=migrate_command)
    from central.school.cli import register as register_school

    register_school(commands)  # `classink central token|export-xapi|roster-import …`


class _Stop(Exception):
    """Raised from the signal handler to unwind out of uvicorn and into our clean-up."""


def _raise_stop(signum: int, _frame: FrameType | None) -> None:
    raise _Stop(signal.Signals(signum).name)


def serve_command(args: argparse.Namespace) -> int:
    import uvicorn
    from sqlalchemy.engine import make_url

    from central.api import create_app
    from central.db import make_engine, make_session_factory
    from central.fleet.runtime import start_fleet
    from central.ingest import Ingestor, MqttIngest
    from central.migrate import UnmigratedSchema, upgrade
    from central.settings import CentralSettings
    from central.tracing.mastery import attach as attach_mastery

    overrides = {
        name: getattr(args, name)
        for name in (
            "database_url",
            "mqtt_host",
            "mqtt_port",
            "http_host",
            "http_port",
            "client_id",
        )
        if getattr(args, name) is not None
    }
    settings = CentralSettings(**overrides)
    # Alembic, not create_all: the schema stays under migration history, and workers starting
    # together on PostgreSQL take turns (central/migrate.py).
    try:
        upgrade(settings.database_url)
    except UnmigratedSchema as exc:
        print(f"classink central serve: {exc}", file=sys.stderr)
        return 2
    # uvicorn handles SIGINT/SIGTERM while it runs, then restores these handlers and raises the
    # signal again; ours turns that (or a signal during start-up) into an orderly exit.
    previous = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    engine = make_engine(settings.database_url)
    ingest: MqttIngest | None = None
    fleet_monitor = None
    try:
        sessions = make_session_factory(engine)
        ingestor = Ingestor(sessions)
        attach_mastery(ingestor, sessions)  # every stored scored answer updates mastery
        ingest = MqttIngest(ingestor, settings).start()
        print(
            f"central: storing to {make_url(settings.database_url).render_as_string()}, "
            f"MQTT {settings.mqtt_host}:{settings.mqtt_port}, "
            f"dashboard at http://{settings.http_host}:{settings.http_port}/dashboard "
            "(sign in with a token from `classink central token create --role admin --user U`)",
            file=sys.stderr,
        )
        app = create_app(settings, engine=engine)
        fleet_monitor = start_fleet(app, settings)  # gateway identities, configs, health
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                host=settings.http_host,
                port=settings.http_port,
                log_level="info",
            )
        )
        server.run()
    except _Stop as stop:
        logger.info("stopping on %s", stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if ingest is not None:
            ingest.stop()
        if fleet_monitor is not None:
            fleet_monitor.stop()
        engine.dispose()
    return 0


def export_command(args: argparse.Namespace) -> int:
    from central.auth.cli_audit import (
        AuditUnavailable,
        cli_actor,
        record_cli_read,
        require_audit_log,
    )
    from central.db import make_engine, make_session_factory
    from central.export import exported_rows, write_jsonl
    from central.settings import CentralSettings

    url = args.database_url or CentralSettings().database_url
    engine = make_engine(url)
    try:
        require_audit_log(engine)
        if args.out is None:
            count = write_jsonl(exported_rows(engine, args.exam), sys.stdout)
        else:
            with open(args.out, "w", encoding="utf-8") as out:
                count = write_jsonl(exported_rows(engine, args.exam), out)
        record_cli_read(
            make_session_factory(engine), cli_actor(args.actor), "central export-answers",
            "answer_events", count, exam=args.exam, out=str(args.out) if args.out else None,
        )  # fmt: skip
    except AuditUnavailable as error:
        print(f"export-answers: {error}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    print(f"exported {count} answer events", file=sys.stderr)
    return 0


def migrate_command(args: argparse.Namespace) -> int:
    from sqlalchemy.engine import make_url

    from central.migrate import UnmigratedSchema, upgrade
    from central.settings import CentralSettings

    url = args.database_url or CentralSettings().database_url
    try:
        upgrade(url, args.revision)
    except UnmigratedSchema as exc:
        print(f"classink central migrate: {exc}", file=sys.stderr)
        return 2
    print(f"central schema at {args.revision} on {make_url(url).render_as_string()}")
    return 0


def compare_command(args: argparse.Namespace) -> int:
    import json

    from central.truth_check import compare_files

    try:
        report = compare_files(args.truth, args.export, args.exam)
    except (OSError, ValueError) as exc:
        print(f"compare-truth: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report.summary()))
    return 0 if report.ok else 1
