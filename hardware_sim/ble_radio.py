"""A simulated Bluetooth LE radio: Bumble's virtual controllers on one in-process link.

The gateway's side is a Bumble device acting as central, reached through bleak: `BumbleRadio`
hands out bleak backend classes (a scanner and a client) bound to that central, so that
firmware_bridge/ble.py runs unchanged — `BleakScanner(..., backend=radio.scanner_backend)`,
`BleakClient(..., backend=radio.client_backend)` — exactly as it runs on BlueZ. Only the radio is
simulated: advertising, connections, ATT/GATT, MTU exchange and notifications are Bumble's real
host and controller code.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from typing import Any

from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakError
from bleak.uuids import normalize_uuid_str
from bumble.controller import Controller
from bumble.core import UUID, AdvertisingData
from bumble.device import Advertisement, Connection, Device, Peer
from bumble.hci import Address
from bumble.host import Host
from bumble.link import LocalLink
from bumble.transport.common import AsyncPipeSink

GATEWAY_MTU = 247  # what a Raspberry Pi's controller offers
_UUID_LISTS = (
    AdvertisingData.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
    AdvertisingData.INCOMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
    AdvertisingData.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
    AdvertisingData.INCOMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
)


def bleak_uuid(uuid: UUID) -> str:
    """Bumble's UUID as bleak spells it: 128-bit, lower case."""
    return normalize_uuid_str(uuid.to_hex_str("-"))


class BumbleRadio:
    """One virtual link, the gateway's central device on it, and room for simulated pens."""

    def __init__(self) -> None:
        self.link = LocalLink()
        self._numbers = itertools.count(1)
        self.central = self.device("F0:00:00:00:00:00")
        self.scanner_backend = type("BumbleScanner", (_BumbleScanner,), {"radio": self})
        self.client_backend = type("BumbleClient", (_BumbleClient,), {"radio": self})

    def device(self, address: str) -> Device:
        controller = Controller(f"C{next(self._numbers)}", link=self.link, public_address=address)
        return Device(address=Address(address), host=Host(controller, AsyncPipeSink(controller)))

    async def start(self) -> None:
        await self.central.power_on()


class _BumbleScanner(BaseBleakScanner):
    radio: BumbleRadio

    def __init__(self, detection_callback, service_uuids, scanning_mode="active", **_: Any):
        super().__init__(detection_callback, service_uuids)

    async def start(self) -> None:
        self.seen_devices = {}
        self.radio.central.on(Device.EVENT_ADVERTISEMENT, self._on_advertisement)
        await self.radio.central.start_scanning(filter_duplicates=False)

    async def stop(self) -> None:
        self.radio.central.remove_listener(Device.EVENT_ADVERTISEMENT, self._on_advertisement)
        with contextlib.suppress(Exception):
            await self.radio.central.stop_scanning()

    def _on_advertisement(self, advertisement: Advertisement) -> None:
        data = advertisement.data
        uuids = [
            bleak_uuid(u)
            for kind in _UUID_LISTS
            for found in data.get_all(kind)
            for u in (found if isinstance(found, list) else [found])
        ]
        if not self.is_allowed_uuid(uuids):
            return
        name = data.get(AdvertisingData.COMPLETE_LOCAL_NAME)
        name = name if isinstance(name, str) else None
        adv = AdvertisementData(
            local_name=name,
            manufacturer_data={},
            service_data={},
            service_uuids=uuids,
            tx_power=None,
            rssi=advertisement.rssi,
            platform_data=(advertisement,),
        )
        address = str(advertisement.address).split("/")[0]
        device = self.create_or_update_device(address, address, name, advertisement, adv)
        self.call_detection_callbacks(device, adv)


class _BumbleClient(BaseBleakClient):
    radio: BumbleRadio

    def __init__(self, address_or_ble_device: BLEDevice | str, **kwargs: Any) -> None:
        super().__init__(
            address_or_ble_device,
            disconnected_callback=kwargs.get("disconnected_callback"),
            timeout=kwargs.get("timeout", 10.0),
        )
        self._connection: Connection | None = None
        self._peer: Peer | None = None
        self._proxies: dict[int, Any] = {}

    @property
    def mtu_size(self) -> int:
        return self._connection.att_mtu if self._connection is not None else 23

    @property
    def is_connected(self) -> bool:
        return self._connection is not None

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        try:
            connection = await asyncio.wait_for(
                self.radio.central.connect(Address(self.address)), self._timeout
            )
        except Exception as exc:  # Bumble raises its own HCI and core errors
            raise BleakError(f"connect to {self.address}: {exc}") from exc
        self._connection = connection
        connection.on(Connection.EVENT_DISCONNECTION, self._on_disconnection)
        self._peer = peer = Peer(connection)
        await peer.request_mtu(GATEWAY_MTU)
        await peer.discover_services()
        services = BleakGATTServiceCollection()
        for service_proxy in peer.services:
            await peer.discover_characteristics(service=service_proxy)
            service = BleakGATTService(
                service_proxy, service_proxy.handle, bleak_uuid(service_proxy.uuid)
            )
            services.add_service(service)
            for char_proxy in service_proxy.characteristics:
                char = BleakGATTCharacteristic(
                    char_proxy,
                    char_proxy.handle,
                    bleak_uuid(char_proxy.uuid),
                    _properties(char_proxy.properties),
                    lambda: self.mtu_size - 3,
                    service,
                )
                services.add_characteristic(char)
                self._proxies[char_proxy.handle] = char_proxy
        self.services = services

    def _on_disconnection(self, _reason: int) -> None:
        self._connection = self._peer = None
        if self._disconnected_callback is not None:
            self._disconnected_callback()

    async def disconnect(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.disconnect()

    async def write_gatt_char(
        self, characteristic: BleakGATTCharacteristic, data: Any, response: bool
    ) -> None:
        if self._peer is None:
            raise BleakError("not connected")
        await self._peer.write_value(
            self._proxies[characteristic.handle], bytes(data), with_response=response
        )

    async def start_notify(
        self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **_: Any
    ) -> None:
        if self._peer is None:
            raise BleakError("not connected")
        await self._peer.subscribe(
            self._proxies[characteristic.handle], lambda value: callback(bytearray(value))
        )

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        if self._peer is not None:
            await self._peer.unsubscribe(self._proxies[characteristic.handle])

    # classink never reads, pairs or uses descriptors: the pen protocol is writes and notifies.
    async def pair(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("pens are not paired")

    async def unpair(self) -> None:
        raise NotImplementedError("pens are not paired")

    async def read_gatt_char(self, characteristic: BleakGATTCharacteristic, **_: Any) -> bytearray:
        raise NotImplementedError("the pen protocol has no reads")

    async def read_gatt_descriptor(self, descriptor: Any, **_: Any) -> bytearray:
        raise NotImplementedError("the pen protocol has no reads")

    async def write_gatt_descriptor(self, descriptor: Any, data: Any) -> None:
        raise NotImplementedError("subscriptions go through start_notify")


def _properties(flags: int) -> list:
    names = {0x02: "read", 0x04: "write-without-response", 0x08: "write", 0x10: "notify"}
    names |= {0x20: "indicate"}
    return [name for bit, name in names.items() if flags & bit]
