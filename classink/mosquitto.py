"""Start and stop a private Mosquitto broker on a free loopback port.

The demo and the tests both need a real broker that nothing else on the machine is using, so each
run generates its own configuration in a temporary folder instead of relying on a system service.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

INSTALL_HINT = (
    "Mosquitto is not installed. On Debian, Ubuntu or Raspberry Pi OS run: "
    "sudo apt-get install mosquitto"
)


def find_mosquitto() -> str:
    found = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if os.access("/usr/sbin/mosquitto", os.X_OK) else None
    )
    if not found:
        raise RuntimeError(INSTALL_HINT)
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with code {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f}s")


@dataclass
class Mosquitto:
    """A broker process; use as a context manager or call start()/stop()."""

    port: int = 0
    extra_config: str = ""
    workdir: Path | None = None
    _proc: subprocess.Popen | None = field(default=None, init=False, repr=False)
    _tmp: tempfile.TemporaryDirectory | None = field(default=None, init=False, repr=False)

    def start(self, timeout: float = 10.0) -> Mosquitto:
        binary = find_mosquitto()
        if self.workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="classink-mosquitto-")
            self.workdir = Path(self._tmp.name)
        self.port = self.port or free_port()
        conf = self.workdir / "mosquitto.conf"
        # `user` keeps root from dropping to a `mosquitto` account that cannot write our folder.
        user_line = f"user {os.environ.get('USER') or 'root'}\n" if os.geteuid() == 0 else ""
        conf.write_text(
            f"{user_line}"
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {self.workdir}/\n"
            "max_queued_messages 100000\n"
            f"log_dest file {self.workdir}/mosquitto.log\n"
            f"{self.extra_config}"
        )
        self._proc = subprocess.Popen(
            [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            wait_for_port(self.port, timeout, self._proc)
        except Exception as exc:
            err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
            self.stop()
            raise RuntimeError(f"mosquitto did not start: {exc}\n{err}") from exc
        return self

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
            self.workdir = None

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
