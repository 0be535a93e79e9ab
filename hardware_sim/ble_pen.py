"""A simulated pen with a Bluetooth LE radio: the pen of hardware_sim/pen.py behind a Bumble GATT
peripheral on the simulated radio of hardware_sim/ble_radio.py.

The pen advertises the Neo service (0x19F1), the newer 128-bit service, or only its name, as
real pens do; the gateway writes requests to the write characteristic and gets the pen's bytes as
notifications of at most MTU - 3 bytes. The pen's life (its script, firmware, offline memory,
faults) runs on its own thread as for a pen on a serial port; only the link differs: a cut
(`cut_rate`) drops the connection and the gateway connects again, and a frame the link faults
drop (`faults.drop_rate`) is a notification that never arrives — every real-time frame fits in
one notification.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bumble.core import UUID, AdvertisingData
from bumble.device import Connection, Device
from bumble.gatt import Characteristic, CharacteristicValue, Service

from firmware_bridge.ble import NEO_GATT, NEW_GATT, GattSet
from hardware_sim.ble_radio import BumbleRadio
from hardware_sim.link_faults import Sent
from hardware_sim.pen import SimPen

_LINK_LOST = None  # put in the pen's inbox by the radio when the connection ends
DRAIN_S = 1.0  # at most this long for the radio to send what it holds before a cut
DETACH_TIMEOUT_S = 2.0  # for Bumble's disconnect, which waits unboundedly for its event
# The radio's queue: notifications with the record of their fate, and link steps in their turn.
_Outgoing = tuple[bytes, Sent | None] | Callable[[], Awaitable[None]]


@dataclass
class BlePen(SimPen):
    """`advertise`: "neo" (0x19F1), "new" (128-bit service) or "name" (no service, name only)."""

    advertise: str = "neo"
    supervises_link = False  # the radio reports a lost connection itself

    def _open_link(self) -> None:
        self.device = ":".join(f"{b:02X}" for b in self.mac)  # the address the gateway sees
        self._inbox: queue.Queue[bytes | None] = queue.Queue()
        self._radio: BumbleRadio | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._outbox: asyncio.Queue[_Outgoing] | None = None
        self._connection: Connection | None = None

    async def attach(self, radio: BumbleRadio) -> None:
        """Power the radio up on the running loop and start advertising."""
        self._radio, self._loop = radio, asyncio.get_running_loop()
        self._outbox = asyncio.Queue()
        gatt = NEW_GATT if self.advertise == "new" else NEO_GATT
        self._bumble = radio.device(self.device)
        self._notify = Characteristic(
            UUID(gatt.notify), Characteristic.NOTIFY, Characteristic.READABLE, b""
        )
        write = Characteristic(
            UUID(gatt.write),
            Characteristic.WRITE_WITHOUT_RESPONSE | Characteristic.WRITE,
            Characteristic.WRITEABLE,
            CharacteristicValue(write=lambda _connection, value: self._inbox.put(bytes(value))),
        )
        self._bumble.add_service(Service(UUID(gatt.service), [write, self._notify]))
        self._bumble.advertising_data = _advertising_data(self.advertise, gatt)
        self._bumble.on(Device.EVENT_CONNECTION, self._on_connection)
        await self._bumble.power_on()
        await self._bumble.start_advertising(auto_restart=True)
        self._sender = asyncio.create_task(self._send_notifications())

    async def detach(self) -> None:
        self._sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._sender
        if self._connection is not None:
            # The event never comes when the gateway dropped the link at the same moment.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._connection.disconnect(), DETACH_TIMEOUT_S)

    def _on_connection(self, connection: Connection) -> None:
        self._connection = connection
        connection.on(Connection.EVENT_DISCONNECTION, lambda _reason: self._on_disconnection())

    def _on_disconnection(self) -> None:
        self._connection = None
        self._inbox.put(_LINK_LOST)

    # -- the link, seen from the pen's thread -------------------------------------------------

    def _close_link(self) -> None:
        """The radio is released by `detach`, on the radio's loop."""

    def _read(self, timeout: float) -> bytes | None:
        try:
            data = self._inbox.get(timeout=timeout)
        except queue.Empty:
            return b""
        if data is _LINK_LOST:
            self.firmware.link_lost()
            return b""
        return data

    def _write(self, data: bytes, sent: Sent | None = None) -> bool:
        """Queued for the radio, which decides `sent.delivered` when the notification goes out."""
        if data and self._loop is not None and not self._stop.is_set():
            self._loop.call_soon_threadsafe(self._outbox.put_nowait, (data, sent))
            return True
        if sent is not None:
            sent.delivered = False
        return False

    def _left_range(self) -> None:
        self._in_turn(self._go_quiet)

    def _came_back(self) -> None:
        self._on_loop(self._bumble.start_advertising(auto_restart=True))

    def _cut_link(self) -> None:
        self._in_turn(self._drop_link)

    def _powered_off(self) -> None:
        self._in_turn(self._go_quiet)

    def _in_turn(self, step: Callable[[], Awaitable[None]]) -> None:
        """Run `step` on the radio after the notifications the pen has written so far."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._outbox.put_nowait, step)

    def _on_loop(self, coro) -> None:
        if self._loop is not None:
            asyncio.run_coroutine_threadsafe(coro, self._loop)

    # -- on the radio's loop -------------------------------------------------------------------

    async def _go_quiet(self) -> None:
        await self._bumble.stop_advertising()
        await self._drop_link()

    async def _drop_link(self) -> None:
        connection = self._connection
        if connection is None:
            return
        # What the pen's radio already holds goes out first, so that the record says exactly
        # which notifications arrived: the loss falls on what the pen writes after the cut.
        queue = self._bumble.host.le_acl_packet_queue
        deadline = asyncio.get_running_loop().time() + DRAIN_S
        while queue is not None and queue.pending and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.001)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(connection.disconnect(), DETACH_TIMEOUT_S)

    async def _send_notifications(self) -> None:
        """One sender, so notifications leave in the order the pen wrote its bytes."""
        assert self._outbox is not None
        while True:
            item = await self._outbox.get()
            if callable(item):
                await item()
                continue
            data, sent = item
            delivered = await self._notify_all(data)
            if sent is not None:
                sent.delivered = delivered

    async def _notify_all(self, data: bytes) -> bool:
        connection = self._connection
        if connection is None:
            return False  # nobody connected: the bytes are lost, as on a real radio
        size = connection.att_mtu - 3
        try:
            for start in range(0, len(data), size):
                await self._bumble.notify_subscriber(
                    connection, self._notify, data[start : start + size]
                )
        except Exception:  # Bumble's own errors: the connection went away meanwhile
            return False
        return True


def _advertising_data(advertise: str, gatt: GattSet) -> bytes:
    name = b"NWP-F121" if advertise == "name" else b"classink-pen"
    structures = [
        (AdvertisingData.FLAGS, bytes((0x06,))),
        (AdvertisingData.COMPLETE_LOCAL_NAME, name),
    ]
    if advertise == "neo":
        short = UUID.from_16_bits(int(gatt.service[4:8], 16))
        structures.append(
            (AdvertisingData.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS, bytes(short))
        )
    elif advertise == "new":
        structures.append(
            (
                AdvertisingData.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
                UUID(gatt.service).to_bytes(force_128=True),
            )
        )
    return bytes(AdvertisingData(structures))
