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
    claim = gw_sub.add_parser(
        "claim", help="exchange a one-time claim token at central for this gateway's login"
    )
    claim.add_argument("--central", required=True, help="central's address, http(s)://host:port")
    claim.add_argument("--token", required=True, help="the claim token central issued")
    claim.add_argument("--out", type=Path, required=True, help="credentials file to write")
    claim.set_defaults(handler=_claim)


def _run(args: argparse.Namespace) -> int:
    from gateway import daemon
    from gateway.settings import load_settings

    settings = load_settings(args.config)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    daemon.run(settings, stop)
    return 0


def _claim(args: argparse.Namespace) -> int:
    from gateway.identity import IdentityError, claim, save_credentials

    try:
        credentials = claim(args.central, args.token)
    except IdentityError as exc:
        print(f"claim failed: {exc}")
        return 1
    save_credentials(credentials, args.out)
    print(
        f"gateway {credentials.site_id}/{credentials.gateway_id} claimed; credentials in "
        f'{args.out}: set "mqtt_credentials" to it in the gateway configuration'
    )
    return 0
