"""Mosquitto's password file and ACL, written from the fleet table.

Each gateway logs in as `gw.{site}.{gateway}` (ids are `[a-z0-9-]`, so the dots cannot be
ambiguous) and the ACL grants that user exactly its own topics: publish on its own `answers`,
`status` and `heartbeat`, read its own `config`. Per-user rules rather than a `%u` pattern,
because the topic carries site and gateway as two levels and a username is one. Central's own
user reads every gateway's telemetry and publishes configuration. Mosquitto re-reads both files on
SIGHUP; they are replaced atomically so that it never reads half a file.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

PBKDF2_ITERATIONS = 101  # what mosquitto_passwd 2.0 writes for its `$7$` hashes
SALT_BYTES = 12
GATEWAY_PUBLISHES = ("answers", "status", "heartbeat")
GATEWAY_READS = ("config",)
TOPIC_ROOT = "classink/v1"


def gateway_username(site_id: str, gateway_id: str) -> str:
    return f"gw.{site_id}.{gateway_id}"


def new_password() -> str:
    return secrets.token_urlsafe(24)


def mosquitto_hash(password: str, salt: bytes | None = None) -> str:
    """A password hash in mosquitto's `$7$` format (PBKDF2-HMAC-SHA512)."""
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PBKDF2_ITERATIONS)
    return (
        f"$7${PBKDF2_ITERATIONS}${base64.b64encode(salt).decode()}"
        f"${base64.b64encode(digest).decode()}"
    )


def check_mosquitto_hash(password: str, hashed: str) -> bool:
    _, kind, iterations, salt, digest = hashed.split("$")
    if kind != "7":
        raise ValueError(f"unsupported mosquitto hash kind ${kind}$")
    mine = hashlib.pbkdf2_hmac("sha512", password.encode(), base64.b64decode(salt), int(iterations))
    return secrets.compare_digest(base64.b64encode(mine).decode(), digest)


@dataclass(frozen=True)
class BrokerUser:
    username: str
    password_hash: str
    site_id: str | None = None  # None: central
    gateway_id: str | None = None


def acl_text(users: Iterable[BrokerUser]) -> str:
    lines = ["# written by classink central (central/fleet/broker_auth.py); edits are lost", ""]
    for user in users:
        lines.append(f"user {user.username}")
        if user.site_id is None:
            for kind in GATEWAY_PUBLISHES:
                lines.append(f"topic read {TOPIC_ROOT}/+/+/{kind}")
            lines.append(f"topic readwrite {TOPIC_ROOT}/+/+/config")
        else:
            prefix = f"{TOPIC_ROOT}/{user.site_id}/{user.gateway_id}"
            lines += [f"topic write {prefix}/{kind}" for kind in GATEWAY_PUBLISHES]
            lines += [f"topic read {prefix}/{kind}" for kind in GATEWAY_READS]
        lines.append("")
    return "\n".join(lines)


def password_text(users: Iterable[BrokerUser]) -> str:
    return "".join(f"{u.username}:{u.password_hash}\n" for u in users)


def _replace(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    tmp.chmod(0o600)
    tmp.replace(path)


def write_broker_files(users: list[BrokerUser], password_file: Path, acl_file: Path) -> None:
    _replace(password_file, password_text(users))
    _replace(acl_file, acl_text(users))
