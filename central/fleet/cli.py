"""`classink fleet …`: provision gateways and look at the fleet from central's database."""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    fleet = subparsers.add_parser(
        "fleet", help="gateway identities and health, from central's database"
    )
    commands = fleet.add_subparsers(dest="fleet_command", required=True, metavar="SUBCOMMAND")
    provision = commands.add_parser(
        "provision",
        help="issue a one-time claim token for a gateway (`classink gateway claim` spends it)",
    )
    provision.add_argument("--site", required=True, help="the gateway's site id")
    provision.add_argument("--gateway", required=True, help="the gateway's id")
    provision.set_defaults(handler=_provision)
    status = commands.add_parser("status", help="every gateway's health and open alerts, as JSON")
    status.set_defaults(handler=_status)
    broker = commands.add_parser(
        "broker-files",
        help="write Mosquitto's password file and ACL from the fleet (CLASSINK_FLEET_MOSQUITTO_*) "
        "and signal the broker to re-read them",
    )
    broker.set_defaults(handler=_broker_files)
    for command in (provision, status, broker):
        command.add_argument(
            "--database-url", help="SQLAlchemy URL (default: CLASSINK_DATABASE_URL)"
        )


def _fleet(args: argparse.Namespace):  # -> tuple[Fleet, Engine]
    from central.db import make_session_factory
    from central.fleet.service import Fleet
    from central.fleet.settings import FleetSettings
    from central.migrate import migrated_engine
    from central.settings import CentralSettings

    engine = migrated_engine(args.database_url or CentralSettings().database_url)
    settings = FleetSettings()
    fleet = Fleet(
        make_session_factory(engine), settings.broker_auth(), settings.low_battery_percent
    )
    return fleet, engine


def _provision(args: argparse.Namespace) -> int:
    from central.fleet.api import is_id

    for value in (args.site, args.gateway):
        if not is_id(value):
            print(f"{value!r} is not an id: lower-case letters, digits, '-'", file=sys.stderr)
            return 2
    fleet, engine = _fleet(args)
    try:
        token = fleet.provision(args.site, args.gateway)
    finally:
        engine.dispose()
    print(token)
    return 0


def _status(args: argparse.Namespace) -> int:
    from central.fleet.api import AlertView, GatewayView

    fleet, engine = _fleet(args)
    try:
        out = {
            "gateways": [GatewayView.of(g).model_dump(mode="json") for g in fleet.gateways()],
            "alerts": [AlertView.of(a).model_dump(mode="json") for a in fleet.alerts()],
        }
    finally:
        engine.dispose()
    print(json.dumps(out, indent=2))
    return 0


def _broker_files(args: argparse.Namespace) -> int:
    from central.fleet.settings import FleetSettings

    if FleetSettings().broker_auth() is None:
        print(
            "set CLASSINK_FLEET_MOSQUITTO_PASSWORD_FILE and _ACL_FILE (and _PID_FILE to signal "
            "the broker), and CLASSINK_FLEET_MQTT_USERNAME/_PASSWORD for central's own login",
            file=sys.stderr,
        )
        return 2
    fleet, engine = _fleet(args)
    try:
        fleet.sync_broker_auth()
    finally:
        engine.dispose()
    return 0
