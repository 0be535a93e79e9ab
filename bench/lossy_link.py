"""A bad network between the gateway and its broker, on loopback: a TCP proxy that delays every
chunk it forwards and cuts every connection now and then.

TCP does not lose bytes inside a connection, so loss shows up to MQTT as what it does on a real
school network: stalls and dropped connections (after which the client reconnects, resumes its
session, and re-sends what was not acknowledged). tc netem would drop packets instead and let TCP
retransmit, which the proxy's delays stand in for.
"""

from __future__ import annotations

import contextlib
import random
import socket
import threading
import time
from dataclasses import dataclass, field


@dataclass
class LinkStats:
    connections: int = 0
    cuts: int = 0
    bytes_forwarded: int = 0


@dataclass
class LossyLink:
    upstream_port: int
    delay_s: tuple[float, float] = (0.005, 0.08)  # per forwarded chunk
    cut_every_s: tuple[float, float] = (2.0, 6.0)  # between cuts of every open connection
    seed: int = 1
    port: int = 0
    stats: LinkStats = field(default_factory=LinkStats)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._stop = threading.Event()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", self.port))
        self._server.listen(16)
        self._server.settimeout(0.2)
        self.port = self._server.getsockname()[1]
        self._threads = [
            threading.Thread(target=self._accept, daemon=True),
            threading.Thread(target=self._cutter, daemon=True),
        ]

    def start(self) -> LossyLink:
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.cut_all()
        self._server.close()
        for t in self._threads:
            t.join(timeout=2)

    def cut_all(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        if conns:
            self.stats.cuts += 1

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except (TimeoutError, OSError):
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=2)
            except OSError:
                client.close()  # the broker is down: so is the link
                continue
            self.stats.connections += 1
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        rng = random.Random(self._rng.getrandbits(32))
        try:
            while not self._stop.is_set():
                data = src.recv(65536)
                if not data:
                    break
                time.sleep(rng.uniform(*self.delay_s))
                dst.sendall(data)
                self.stats.bytes_forwarded += len(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def _cutter(self) -> None:
        while not self._stop.wait(self._rng.uniform(*self.cut_every_s)):
            self.cut_all()
