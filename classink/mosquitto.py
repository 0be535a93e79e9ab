"""Start and stop a private Mosquitto broker on a free loopback port.

The demo and the tests both need a real broker that nothing else on the machine is using, so each
run generates its own configuration in a temporary folder instead of relying on a system service.
"""

from __future__ import annotations

import os
import shutil
import signal
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


@dataclass(frozen=True)
class TlsFiles:
    """PEM files for a TLS listener: the CA that signed the broker's certificate, and that one."""

    ca_cert: Path
    cert: Path
    key: Path


@dataclass
class Mosquitto:
    """A broker process; use as a context manager or call start()/stop().

    By default it lets anyone in, as a plain development broker. With `password_file` (and
    usually `acl_file`) it admits only known users, each to the topics the ACL grants; `tls` adds a
    TLS listener on `tls_port`. `reload()` makes it re-read the password and ACL files.
    `gateway_listener` adds the listener gateways use (`gateway_port`, TLS when `tls` is set) on
    which a client's id is its username (`use_username_as_clientid`), so that one gateway's login
    cannot take over another gateway's client id and session; central, which connects several
    clients under one login, stays on the other listeners.
    """

    port: int = 0
    extra_config: str = ""
    workdir: Path | None = None
    password_file: Path | None = None
    acl_file: Path | None = None
    tls: TlsFiles | None = None
    tls_port: int = 0
    gateway_listener: bool = False
    gateway_port: int = 0
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
            f"{self._tls_listener()}"
            f"{self._gateway_listener()}"
            f"{self._auth_config()}"
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
            if self.tls is not None:
                wait_for_port(self.tls_port, timeout, self._proc)
            if self.gateway_listener:
                wait_for_port(self.gateway_port, timeout, self._proc)
        except Exception as exc:
            err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
            self.stop()
            raise RuntimeError(f"mosquitto did not start: {exc}\n{err}") from exc
        return self

    def _tls_listener(self) -> str:
        if self.tls is None:
            return ""
        self.tls_port = self.tls_port or free_port()
        return (
            f"listener {self.tls_port} 127.0.0.1\n"
            f"cafile {self.tls.ca_cert}\n"
            f"certfile {self.tls.cert}\n"
            f"keyfile {self.tls.key}\n"
            "tls_version tlsv1.2\n"
        )

    def _gateway_listener(self) -> str:
        if not self.gateway_listener:
            return ""
        self.gateway_port = self.gateway_port or free_port()
        tls = (
            f"cafile {self.tls.ca_cert}\ncertfile {self.tls.cert}\nkeyfile {self.tls.key}\n"
            "tls_version tlsv1.2\n"
            if self.tls is not None
            else ""
        )
        return f"listener {self.gateway_port} 127.0.0.1\n{tls}use_username_as_clientid true\n"

    def _auth_config(self) -> str:
        if self.password_file is None:
            return "allow_anonymous true\n"
        acl = f"acl_file {self.acl_file}\n" if self.acl_file is not None else ""
        return f"allow_anonymous false\npassword_file {self.password_file}\n{acl}"

    def reload(self) -> None:
        """Mosquitto re-reads its password and ACL files on SIGHUP; connected clients stay."""
        if self._proc is None or self._proc.poll() is not None:
            raise RuntimeError("mosquitto is not running")
        self._proc.send_signal(signal.SIGHUP)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

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
