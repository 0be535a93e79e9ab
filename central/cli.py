"""`classink central serve`: MQTT ingest and the results web app in one process."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from types import FrameType

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


class _Stop(Exception):
    """Raised from the signal handler to unwind out of uvicorn and into our clean-up."""


def _raise_stop(signum: int, _frame: FrameType | None) -> None:
    raise _Stop(signal.Signals(signum).name)


def serve_command(args: argparse.Namespace) -> int:
    import uvicorn
    from sqlalchemy.engine import make_url

    from central.api import create_app
    from central.db import create_schema, make_engine, make_session_factory
    from central.ingest import Ingestor, MqttIngest
    from central.settings import CentralSettings

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
    # uvicorn handles SIGINT/SIGTERM while it runs, then restores these handlers and raises the
    # signal again; ours turns that (or a signal during start-up) into an orderly exit.
    previous = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    engine = make_engine(settings.database_url)
    ingest: MqttIngest | None = None
    try:
        create_schema(engine)
        ingest = MqttIngest(Ingestor(make_session_factory(engine)), settings).start()
        print(
            f"central: storing to {make_url(settings.database_url).render_as_string()}, "
            f"MQTT {settings.mqtt_host}:{settings.mqtt_port}, "
            f"results at http://{settings.http_host}:{settings.http_port}/",
            file=sys.stderr,
        )
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(settings, engine=engine),
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
        engine.dispose()
    return 0
