"""USB serial transport: pens on serial devices (USB dongles, charging cradles, or a simulator's
pseudo-terminals).

One thread watches every pen's port with a selector, which is what a Raspberry Pi can afford for a
whole class; each port carries its own sans-I/O PenSession. A port that fails is closed (its open
stroke is closed by the protocol core) and reopened later, so a pen pulled out and plugged back in
comes back without restarting the gateway. A pen that goes out of a dongle's range leaves the port
open but silent: its session notices and offers the handshake until the pen answers again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import serial

from firmware_bridge.events import Event
from firmware_bridge.session import PenSession, SessionTimes, no_password

log = logging.getLogger(__name__)

READ_SIZE = 65536
# Sessions' timers count in seconds: checking them every round (33 a second, 60 pens) was a tenth
# of the gateway's time for nothing; this often is enough (or a quarter of the shortest timer).
TICK_S = 0.1
REOPEN_AFTER_S = 2.0


@dataclass
class SerialPenLink:
    device: str
    app_version: str
    password_for: Callable[[str], str | None] = no_password
    times: SessionTimes = field(default_factory=SessionTimes)
    baudrate: int = 115200
    port: serial.Serial | None = None
    failed_at: float = 0.0

    def __post_init__(self) -> None:
        self.session = self._new_session()

    def _new_session(self) -> PenSession:
        return PenSession(self.app_version, self.password_for, self.times)

    def open(self, now: float) -> None:
        self.port = serial.Serial(self.device, self.baudrate, timeout=0, write_timeout=1)
        self.session = self._new_session()
        self.session.connect(now)
        self.flush()

    def read(self, now: float) -> list[Event]:
        assert self.port is not None
        # The selector said the port is readable; pyserial's read() would select again and build
        # timeout objects, which at 60 pens and 50 rounds a second is most of the gateway's time.
        try:
            data = os.read(self.port.fileno(), READ_SIZE)
        except BlockingIOError:
            data = b""
        else:
            if not data:  # readable yet empty: the device went away (as pyserial reports it)
                raise serial.SerialException("readable, but no data: the device went away")
        events = self.session.receive_data(data, now) if data else []
        self.flush()
        return events

    def tick(self, now: float) -> list[Event]:
        events = self.session.tick(now)
        self.flush()
        return events

    def batch_durable(self, batch_id: int) -> None:
        self.session.batch_durable(batch_id)
        self.flush()

    def flush(self) -> None:
        out = self.session.data_to_send()
        if out and self.port is not None:
            self.port.write(out)

    def close(self) -> list[Event]:
        if self.port is not None:
            with contextlib.suppress(serial.SerialException):
                self.port.close()
            self.port = None
        return self.session.close()


class SerialHub:
    """All serial pens of one gateway, polled from the caller's thread."""

    def __init__(
        self,
        devices: list[str],
        app_version: str,
        password_for: Callable[[str], str | None] = no_password,
        times: SessionTimes | None = None,
    ) -> None:
        self.links = [
            SerialPenLink(d, app_version, password_for, times or SessionTimes()) for d in devices
        ]
        self._by_device = {link.device: link for link in self.links}
        self._selector = selectors.DefaultSelector()
        t = times or SessionTimes()
        self._tick_every = min(TICK_S, t.retry_s / 4, t.silence_s / 4, t.lost_s / 4, t.stall_s / 4)
        self._ticked_at = -float("inf")

    def poll(self, timeout: float) -> list[tuple[SerialPenLink, list[Event]]]:
        out: list[tuple[SerialPenLink, list[Event]]] = []
        self._reopen(out)
        if self._selector.get_map():
            for key, _ in self._selector.select(timeout):
                link: SerialPenLink = key.data
                self._guarded(link, link.read, out)
        else:
            time.sleep(timeout)
        now = time.monotonic()
        if now - self._ticked_at >= self._tick_every:
            self._ticked_at = now
            for link in self.links:
                if link.port is not None:
                    self._guarded(link, link.tick, out)
        return out

    def batch_durable(self, device: str, batch_id: int) -> None:
        link = self._by_device.get(device)
        if link is not None and link.port is not None:
            with contextlib.suppress(serial.SerialException, OSError):
                link.batch_durable(batch_id)

    def close(self) -> list[tuple[SerialPenLink, list[Event]]]:
        return [(link, self._drop(link)) for link in self.links if link.port is not None]

    def _guarded(
        self,
        link: SerialPenLink,
        step: Callable[[float], list[Event]],
        out: list[tuple[SerialPenLink, list[Event]]],
    ) -> None:
        try:
            events = step(time.monotonic())
        except (serial.SerialException, OSError) as exc:
            log.warning("pen port %s failed (%s); will reopen", link.device, exc)
            out.append((link, self._drop(link)))
            return
        if events:
            out.append((link, events))

    def _reopen(self, out: list[tuple[SerialPenLink, list[Event]]]) -> None:
        now = time.monotonic()
        for link in self.links:
            if link.port is not None or now - link.failed_at < REOPEN_AFTER_S:
                continue
            try:
                link.open(now)
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
