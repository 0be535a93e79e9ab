"""A classroom on real processes that faults can be done to: Mosquitto, central and the gateway each
in their own process (killed with SIGKILL, stopped, restarted), the pens in this one.

Used by the fault tests (tests/test_faults.py), `python -m bench.reliability` and
`python -m bench.classroom`. Every run ends the same way: central's export compared with the
pens' ground truth (central/truth_check.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.exc import OperationalError

from central.truth_check import TruthReport, compare_truth
from classink.demo import spawn, stop_process
from classink.mosquitto import Mosquitto, free_port, wait_for_port
from hardware_sim.classroom import Classroom
from hardware_sim.cli import SAMPLE_EXAM

SITE_ID, GATEWAY_ID = "fault-school", "room-7"
GATEWAY_RUNNING = b"templates, outbox depth"  # gateway/daemon.py's start-up line
STALL_S = 30.0  # no new answer at central for this long, once past the timeout: give up


def kill9(proc: subprocess.Popen | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.kill()  # SIGKILL: no clean-up code of the process runs
        proc.wait()


@dataclass
class LiveClassroom:
    work: Path
    pens: int = 10
    seed: int = 7
    template: Path = SAMPLE_EXAM
    lattice_share: float = 0.0  # lattice-camera pens store nothing offline (hardware_sim/pen.py)
    outbox_dir: Path | None = None  # where the gateway's outbox lives (a small tmpfs, say)
    uplink_port: int | None = None  # the gateway's broker port, when something sits in between
    stage_trace: bool = False  # the gateway writes each answer's stage times (stage_trace.jsonl)
    central_restarts: int = field(default=0, init=False)
    gateway_starts: int = field(default=0, init=False)
    _gateway_log_from: int = field(default=0, init=False)  # where the latest start's log begins

    def __post_init__(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        self.exam_id = json.loads(Path(self.template).read_text())["template_id"]
        self.database_url = f"sqlite:///{self.work / 'central.db'}"
        self.classroom = Classroom(
            self.template, self.pens, self.seed, lattice_share=self.lattice_share
        )
        (self.work / "broker").mkdir(exist_ok=True)
        # A fixed folder and port, so that a restarted broker finds its persisted sessions.
        self.broker = Mosquitto(workdir=self.work / "broker")
        self.central: subprocess.Popen | None = None
        self.gateway: subprocess.Popen | None = None
        self.http_port = free_port()
        self.truth_path = self.work / "truth.jsonl"

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> LiveClassroom:
        self.broker.start()
        self.classroom.write_roster(self.work / "roster.json")
        self.classroom.write_ground_truth(self.truth_path)
        self.start_central()
        wait_for_port(self.http_port, 60, self.central)
        outbox = (self.outbox_dir or self.work) / "outbox.db"
        config = {
            "site_id": SITE_ID,
            "gateway_id": GATEWAY_ID,
            "mqtt_port": self.uplink_port or self.broker.port,
            "outbox_path": str(outbox),
            "templates": [str(Path(self.template).resolve())],
            "roster": str(self.work / "roster.json"),
            "serial_ports": self.classroom.devices,
        }
        if self.stage_trace:
            config["stage_trace"] = str(self.work / "stage_trace.jsonl")
        (self.work / "gateway.json").write_text(json.dumps(config, indent=2))
        self.start_gateway()
        self.classroom.start()
        return self

    def close(self) -> None:
        self.classroom.stop()
        stop_process(self.gateway)
        stop_process(self.central)
        self.broker.stop()

    def __enter__(self) -> LiveClassroom:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the processes --------------------------------------------------------------------------

    def start_gateway(self) -> None:
        self.gateway_starts += 1
        log = self.work / "gateway.log"
        self._gateway_log_from = log.stat().st_size if log.exists() else 0
        self.gateway = spawn(
            ["gateway", "run", "--config", str(self.work / "gateway.json")],
            self.work / "gateway.log",
        )

    def wait_gateway_running(self, timeout: float = 30.0) -> bool:
        """Until the latest gateway start has opened its outbox and is about to read pens."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.work / "gateway.log", "rb") as log:
                log.seek(self._gateway_log_from)
                if GATEWAY_RUNNING in log.read():
                    return True
            time.sleep(0.05)
        return False

    def kill_gateway(self) -> None:
        kill9(self.gateway)

    def start_central(self) -> None:
        self.central = spawn(
            [
                "central",
                "serve",
                "--database-url",
                self.database_url,
                "--mqtt-port",
                str(self.broker.port),
                "--http-port",
                str(self.http_port),
                "--client-id",
                f"classink-central-faults-{os.getpid()}",
            ],
            self.work / "central.log",
        )

    def kill_central(self) -> None:
        kill9(self.central)

    def restart_central(self) -> None:
        self.central_restarts += 1
        self.start_central()
        wait_for_port(self.http_port, 60, self.central)

    def stop_broker(self) -> None:
        self.broker.stop()

    def start_broker(self) -> None:
        self.broker.start()

    # -- the outcome ----------------------------------------------------------------------------

    @property
    def truth(self) -> list[dict]:
        return [json.loads(line) for line in self.truth_path.read_text().splitlines()]

    def exported(self) -> list[dict]:
        from central.db import make_engine
        from central.export import exported_rows

        engine = make_engine(self.database_url)
        try:
            return list(exported_rows(engine, self.exam_id))
        except OperationalError:  # central has not created its tables yet
            return []
        finally:
            engine.dispose()

    def wait_written(self, timeout: float) -> bool:
        return self.classroom.wait_written(timeout)

    def wait_stored(self, timeout: float, patience: float = STALL_S) -> TruthReport:
        """Until every written answer is at central; then the gateway is stopped cleanly, which
        drains its outbox, and the export is compared once more.

        The deadline follows the drain rather than the clock alone: it is `timeout` from now, or
        `patience` after central last stored something new if that is later, so a loaded machine
        that is still catching up is waited for and a stuck run is not (never past 4 x timeout)."""
        truth = self.truth
        started = time.monotonic()
        progress_at, seen = started, -1
        while True:
            stored = self.exported()
            report = compare_truth(truth, stored)
            now = time.monotonic()
            if len(stored) != seen:
                progress_at, seen = now, len(stored)
            deadline = min(max(started + timeout, progress_at + patience), started + 4 * timeout)
            if report.lost == 0 or now > deadline:
                break
            for name, proc in (("gateway", self.gateway), ("central", self.central)):
                if proc is not None and proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode}; see {name}.log")
            time.sleep(0.5)
        stop_process(self.gateway)
        time.sleep(1.0)
        self.write_export()
        return compare_truth(truth, self.exported())

    def write_export(self) -> Path:
        path = self.work / "export.jsonl"
        with open(path, "w") as f:
            for row in self.exported():
                f.write(json.dumps(row) + "\n")
        return path

    def gateway_log(self) -> str:
        return (self.work / "gateway.log").read_text(errors="replace")
