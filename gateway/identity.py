"""A gateway's identity: a one-time claim token exchanged at central for its own broker login.

`classink gateway claim --central URL --token T --out FILE` runs once when a gateway is installed;
the credentials file it writes (mode 0600) is what `mqtt_credentials` in the gateway configuration
points at. The broker's ACL then lets this login publish only under the gateway's own topics and
read only its own configuration (central/fleet/broker_auth.py).
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path

from pydantic import BaseModel, ValidationError

CLAIM_PATH = "/api/fleet/claim"


class IdentityError(RuntimeError):
    """The claim failed or the credentials file is unusable; the message says what to do."""


class Credentials(BaseModel):
    site_id: str
    gateway_id: str
    mqtt_username: str
    mqtt_password: str


def claim(central_url: str, token: str, timeout_s: float = 30.0) -> Credentials:
    """POST the token to central; the token is spent whatever happens after a 200."""
    request = urllib.request.Request(
        central_url.rstrip("/") + CLAIM_PATH,
        data=json.dumps({"claim_token": token}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:300]
        raise IdentityError(f"central refused the claim ({exc.code}): {detail}") from exc
    except OSError as exc:
        raise IdentityError(f"cannot reach central at {central_url}: {exc}") from exc
    try:
        return Credentials.model_validate_json(body)
    except ValidationError as exc:
        raise IdentityError(f"central's answer is not a set of credentials: {exc}") from exc


def save_credentials(credentials: Credentials, path: Path) -> None:
    """Written whole or not at all, readable by this user only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(credentials.model_dump_json(indent=2))
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load_credentials(path: Path, site_id: str, gateway_id: str) -> Credentials:
    try:
        credentials = Credentials.model_validate_json(Path(path).read_bytes())
    except (OSError, ValidationError) as exc:
        raise IdentityError(f"{path}: not a usable credentials file: {exc}") from exc
    if (credentials.site_id, credentials.gateway_id) != (site_id, gateway_id):
        raise IdentityError(
            f"{path} holds the identity of {credentials.site_id}/{credentials.gateway_id}, "
            f"but this gateway is configured as {site_id}/{gateway_id}"
        )
    return credentials
