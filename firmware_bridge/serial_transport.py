"""USB serial transport: pens on serial devices (USB dongles, or a simulator's pseudo-terminals).

One thread watches every pen's port with a selector, which is what a Raspberry Pi can afford for a
whole class; each port feeds its own sans-I/O PenConnection. A port that fails is closed (its open
stroke is closed by the protocol core) and reopened later, so a pen pulled out and plugged back in
comes back without restarting the gateway.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import time
from dataclasses import dataclass, field

import serial

from firmware_bridge.events import Event
from firmware_bridge.protocol import PenConnection, version_request

log = logging.getLogger(__name__)

READ_SIZE = 65536
REOPEN_AFTER_S = 2.0


@dataclass
class SerialPenLink:
    device: str
    app_version: str
    baudrate: int = 115200
    port: serial.Serial | None = None
    connection: PenConnection = field(default_factory=PenConnection)
    failed_at: float = 0.0

    def open(self) -> None:
        self.port = serial.Serial(self.device, self.baudrate, timeout=0, write_timeout=1)
        self.connection = PenConnection()
        self.port.write(version_request(self.app_version))

    def read(self) -> list[Event]:
        assert self.port is not None
        # With timeout=0 pyserial returns at once with whatever the driver holds.
        data = self.port.read(READ_SIZE)
        return self.connection.receive_data(data) if data else []

    def close(self) -> list[Event]:
        if self.port is not None:
            with contextlib.suppress(serial.SerialException):
                self.port.close()
            self.port = None
        return self.connection.close()


class SerialHub:
    """All serial pens of one gateway, polled from the caller's thread."""

    def __init__(self, devices: list[str], app_version: str) -> None:
        self.links = [SerialPenLink(d, app_version) for d in devices]
        self._selector = selectors.DefaultSelector()

    def poll(self, timeout: float) -> list[tuple[SerialPenLink, list[Event]]]:
        out: list[tuple[SerialPenLink, list[Event]]] = []
        self._reopen(out)
        if not self._selector.get_map():
            time.sleep(timeout)
            return out
        for key, _ in self._selector.select(timeout):
            link: SerialPenLink = key.data
            try:
                events = link.read()
            except (serial.SerialException, OSError) as exc:
                log.warning("pen port %s failed (%s); will reopen", link.device, exc)
                out.append((link, self._drop(link)))
                continue
            if events:
                out.append((link, events))
        return out

    def close(self) -> list[tuple[SerialPenLink, list[Event]]]:
        return [(link, self._drop(link)) for link in self.links if link.port is not None]

    def _reopen(self, out: list[tuple[SerialPenLink, list[Event]]]) -> None:
        now = time.monotonic()
        for link in self.links:
            if link.port is not None or now - link.failed_at < REOPEN_AFTER_S:
                continue
            try:
                link.open()
            except (serial.SerialException, OSError) as exc:
                link.failed_at = now
                log.warning("cannot open pen port %s: %s", link.device, exc)
                continue
            self._selector.register(link.port.fileno(), selectors.EVENT_READ, link)
            log.info("pen port %s open", link.device)

    def _drop(self, link: SerialPenLink) -> list[Event]:
        if link.port is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(link.port.fileno())
        link.failed_at = time.monotonic()
        return link.close()
