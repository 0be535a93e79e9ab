"""BLE transport: every pen in the room on one asyncio loop, through bleak.

Pens are found by the service they advertise (Neo 0x19F1, or the newer 128-bit service) or, for
pens that advertise no service, by name. They are connected one at a time — BlueZ refuses a second
connection attempt while one is pending — then each pen runs on its own task: subscribe to the
notify characteristic first (a pen answers at once, and an answer sent before the subscription is
lost), then the pen's sans-I/O PenSession drives the conversation; its bytes go out in writes no
larger than the negotiated MTU allows. A pen that drops is closed (its open stroke closed by the
protocol core) and tried again after a growing pause.

The same code runs against BlueZ on a Raspberry Pi and against the simulated radio in the tests:
bleak takes the scanner and client backend classes as arguments.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bleak import BleakClient, BleakScanner
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner
from bleak.exc import BleakError

from firmware_bridge.events import Event
from firmware_bridge.session import PenSession, SessionTimes, no_password


def uuid16(short: int) -> str:
    return f"0000{short:04x}-0000-1000-8000-00805f9b34fb"


@dataclass(frozen=True)
class GattSet:
    """A pen's service and its two characteristics: gateway → pen writes, pen → gateway notifies."""

    service: str
    write: str
    notify: str


NEO_GATT = GattSet(uuid16(0x19F1), uuid16(0x2BA0), uuid16(0x2BA1))
NEW_GATT = GattSet(
    "4f99f138-9d53-5bfa-9e50-b147491afe68",
    "8bc8cc7d-88ca-56b0-af9a-9bf514d0d61a",
    "64cd86b1-2256-5aeb-9f04-2caf6c60ae57",
)
GATT_SETS = (NEO_GATT, NEW_GATT)
PEN_NAMES = ("NWP-", "Neosmartpen", "classink-pen")  # for pens that advertise no service
ATT_HEADER = 3  # bytes of each ATT write that are not payload

log = logging.getLogger(__name__)

Deliver = Callable[[str, list[Event]], None]


def is_pen(advertisement: AdvertisementData, names: tuple[str, ...] = PEN_NAMES) -> bool:
    uuids = {u.lower() for u in advertisement.service_uuids}
    if any(g.service in uuids for g in GATT_SETS):
        return True
    name = advertisement.local_name or ""
    return any(name.startswith(prefix) for prefix in names)


def link_name(address: str) -> str:
    return f"ble:{address.lower()}"


@dataclass(frozen=True)
class Backoff:
    first_s: float = 1.0
    factor: float = 2.0
    most_s: float = 30.0

    def after(self, failures: int) -> float:
        return min(self.most_s, self.first_s * self.factor ** max(0, failures - 1))


@dataclass
class _Pen:
    device: BLEDevice
    failures: int = 0
    retry_at: float = 0.0
    task: asyncio.Task | None = None
    session: PenSession | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class BleHub:
    """Finds, connects and serves pens; hands every pen's events to `deliver(link, events)`."""

    def __init__(
        self,
        app_version: str,
        deliver: Deliver,
        password_for: Callable[[str], str | None] = no_password,
        accept: Callable[[str], bool] = lambda _address: True,
        times: SessionTimes | None = None,
        backoff: Backoff | None = None,
        scanner_backend: type[BaseBleakScanner] | None = None,
        client_backend: type[BaseBleakClient] | None = None,
        connect_timeout_s: float = 10.0,
        disconnect_timeout_s: float = 5.0,
        tick_s: float = 0.05,
    ) -> None:
        self.app_version = app_version
        self.deliver = deliver
        self.password_for = password_for
        self.accept = accept
        self.times = times or SessionTimes()
        self.backoff = backoff or Backoff()
        self.scanner_backend = scanner_backend
        self.client_backend = client_backend
        self.connect_timeout_s = connect_timeout_s
        self.disconnect_timeout_s = disconnect_timeout_s
        self.tick_s = tick_s
        self.pens: dict[str, _Pen] = {}
        self.connected: set[str] = set()
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._stopping = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        scanner = BleakScanner(self._on_advertisement, backend=self.scanner_backend)
        await scanner.start()
        connector = asyncio.create_task(self._connect_one_at_a_time())
        try:
            await stop.wait()
        finally:
            # The pen tasks also end on this flag: on Python 3.11 a cancel that arrives as
            # asyncio.wait_for times out can be lost, and a task that missed it served its pen
            # forever, so stopping the hub hung.
            self._stopping.set()
            await scanner.stop()
            connector.cancel()
            pen_tasks = [p.task for p in self.pens.values() if p.task is not None]
            for task in pen_tasks:
                task.cancel()
            await asyncio.gather(connector, *pen_tasks, return_exceptions=True)

    def batch_durable(self, link: str, batch_id: int) -> None:
        """From the pipeline: the batch is durable; the pen may delete it (on the loop's thread)."""
        for address, pen in self.pens.items():
            if link_name(address) == link and pen.session is not None:
                pen.session.batch_durable(batch_id)
                pen.wake.set()

    # -- discovery and connection ----------------------------------------------------------------

    def _on_advertisement(self, device: BLEDevice, advertisement: AdvertisementData) -> None:
        address = device.address.lower()
        if not is_pen(advertisement) or not self.accept(address):
            return
        pen = self.pens.get(address)
        if pen is None:
            self.pens[address] = pen = _Pen(device)
        else:
            pen.device = device
        if pen.task is None and time.monotonic() >= pen.retry_at:
            pen.retry_at = float("inf")  # queued: not again until this attempt is over
            self._queue.put_nowait(address)

    async def _connect_one_at_a_time(self) -> None:
        while not self._stopping.is_set():
            address = await self._queue.get()
            pen = self.pens[address]
            client = BleakClient(
                pen.device,
                disconnected_callback=lambda _client, p=pen: p.wake.set(),
                timeout=self.connect_timeout_s,
                backend=self.client_backend,
            )
            try:
                await client.connect()
            except (BleakError, TimeoutError, OSError) as exc:
                self._failed(address, pen, f"connect: {exc}")
                continue
            pen.task = asyncio.create_task(self._serve(address, pen, client))

    def _failed(self, address: str, pen: _Pen, why: str) -> None:
        pen.failures += 1
        pause = self.backoff.after(pen.failures)
        pen.retry_at = time.monotonic() + pause
        log.warning("pen %s: %s; trying again in %.1f s", address, why, pause)

    # -- one pen ---------------------------------------------------------------------------------

    async def _serve(self, address: str, pen: _Pen, client: BleakClient) -> None:
        link = link_name(address)
        session = pen.session = PenSession(self.app_version, self.password_for, self.times)
        try:
            gatt = _gatt_of(client)
            write_char = client.services.get_characteristic(gatt.write)
            inbox: asyncio.Queue[bytes] = asyncio.Queue()

            def on_notify(_char: BleakGATTCharacteristic, data: bytearray) -> None:
                inbox.put_nowait(bytes(data))
                pen.wake.set()

            await client.start_notify(gatt.notify, on_notify)
            self.connected.add(address)
            pen.failures = 0
            session.connect(time.monotonic())
            while client.is_connected and not self._stopping.is_set():
                await self._send(client, write_char, session.data_to_send())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(pen.wake.wait(), self.tick_s)
                pen.wake.clear()
                now = time.monotonic()
                events: list[Event] = []
                while not inbox.empty():
                    events += session.receive_data(inbox.get_nowait(), now)
                events += session.tick(now)
                if events:
                    self.deliver(link, events)
            if not self._stopping.is_set():
                self._failed(address, pen, "disconnected")
        except (BleakError, TimeoutError, OSError) as exc:
            self._failed(address, pen, str(exc))
        finally:
            self.connected.discard(address)
            closing = session.close()
            if closing:
                self.deliver(link, closing)
            pen.task = pen.session = None
            # A disconnect waits for the controller's confirmation, which never comes when the
            # link died on both sides at once: bounded, so stopping the hub cannot hang on it.
            with contextlib.suppress(BleakError, TimeoutError, OSError):
                await asyncio.wait_for(client.disconnect(), self.disconnect_timeout_s)

    @staticmethod
    async def _send(client: BleakClient, char: BleakGATTCharacteristic, data: bytes) -> None:
        # Frames may be split anywhere: the pen reassembles them from the byte stream.
        size = max(20, client.mtu_size - ATT_HEADER)
        for start in range(0, len(data), size):
            await client.write_gatt_char(char, data[start : start + size], response=False)


def _gatt_of(client: BleakClient) -> GattSet:
    found = {s.uuid.lower() for s in client.services}
    for gatt in GATT_SETS:
        if gatt.service in found:
            return gatt
    raise BleakError(f"no pen service among {sorted(found)}")


class BleThread:
    """A BleHub on its own thread and loop, for the gateway's synchronous main loop: events are
    collected for `take_events`, and durable batches are handed over thread-safely."""

    def __init__(self, app_version: str, password_for: Callable[[str], str | None]) -> None:
        self._events: queue.SimpleQueue[tuple[str, list[Event]]] = queue.SimpleQueue()
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        self.hub = BleHub(app_version, lambda link, ev: self._events.put((link, ev)), password_for)
        self._thread = threading.Thread(target=self._run, name="ble", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self.hub.run(self._stop))
        except (BleakError, OSError) as exc:  # no adapter or no BlueZ: serial pens still work
            log.error("BLE unavailable: %s", exc)

    def take_events(self) -> list[tuple[str, list[Event]]]:
        out = []
        while not self._events.empty():
            out.append(self._events.get())
        return out

    def batch_durable(self, link: str, batch_id: int) -> None:
        self._loop.call_soon_threadsafe(self.hub.batch_durable, link, batch_id)

    def stop(self) -> list[tuple[str, list[Event]]]:
        """Stop, closing every pen's link; returns what the closing produced."""
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout=10)
        return self.take_events()
