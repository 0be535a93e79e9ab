"""`classink gateway …` subcommands."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    gw = sub.add_parser("gateway", help="run a classroom gateway")
    gw_sub = gw.add_subparsers(dest="gateway_command", required=True, metavar="ACTION")
    run = gw_sub.add_parser("run", help="read pens, score answers, publish to the broker")
    run.add_argument("--config", type=Path, help="gateway JSON config (see gateway/settings.py)")
    run.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from gateway import daemon
    from gateway.settings import load_settings

    settings = load_settings(args.config)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    daemon.run(settings, stop)
    return 0
