"""`python -m bench.reliability`: a classroom through every fault of issue 5, with real processes.

Each scenario runs a fresh classroom (bench/live_classroom.py) and ends by comparing central's
export with the pens' ground truth. The fault tests (tests/test_faults.py) run the same scenarios
shorter; this script runs them at full length (a 60 s broker outage) and prints one JSON object per
scenario, the last line holding them all.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.live_classroom import LiveClassroom
from bench.lossy_link import LossyLink
from classink.mosquitto import free_port

DRAIN_S = 120.0  # after the last pen stops: time for every answer to reach central


def gateway_kills(run: LiveClassroom, kills: int, seed: int, up_s=(0.5, 3.0)) -> dict[str, Any]:
    """SIGKILL the gateway `kills` times and restart it at once each time. Every other kill comes
    `up_s` after the start (often still starting up on a loaded machine); the others that long
    after the gateway is running (replaying, mid-answer, publishing), so that those moments are
    hit however slowly a loaded machine starts the gateway."""
    rng = random.Random(seed)
    for i in range(kills):
        if i % 2 and not run.wait_gateway_running():
            raise RuntimeError("the gateway did not start within 30 s; see its log")
        time.sleep(rng.uniform(*up_s))
        run.kill_gateway()
        run.start_gateway()
    return {"gateway_kills": kills, "kill_seed": seed}


def broker_outage(run: LiveClassroom, outage_s: float, after_s: float) -> dict[str, Any]:
    time.sleep(after_s)
    run.stop_broker()
    time.sleep(outage_s)
    run.start_broker()
    return {"broker_outage_s": outage_s}


def central_kills(run: LiveClassroom, kills: int, every_s: float) -> dict[str, Any]:
    """SIGKILL central while answers stream in (between its commit and its acknowledgement, or in
    the middle of a transaction), restart it with the same client id."""
    for _ in range(kills):
        time.sleep(every_s)
        run.kill_central()
        time.sleep(0.5)
        run.restart_central()
    return {"central_kills": kills}


def can_mount_tmpfs() -> bool:
    """Whether small_tmpfs can work here: it needs root and a kernel that lets us mount."""
    if os.geteuid() != 0:
        return False
    with tempfile.TemporaryDirectory(prefix="classink-tmpfs-probe") as probe:
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", probe], capture_output=True
        )
        if mounted.returncode != 0:
            return False
        subprocess.run(["umount", probe], check=False, capture_output=True)
    return True


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` at `path` (root only): a disk that really fills up."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        check=True,
        capture_output=True,
    )
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


def fill_disk(folder: Path) -> Path:
    """Write a file until the filesystem refuses another byte; return it."""
    filler = folder / "filler"
    block = b"\0" * 65536
    with open(filler, "wb", buffering=0) as f:
        while True:
            try:
                f.write(block)
            except OSError:
                break
        while True:  # the last few bytes too
            try:
                f.write(b"\0" * 512)
            except OSError:
                break
    return filler


def full_disk(run: LiveClassroom, folder: Path, after_s: float, hold_s: float) -> dict[str, Any]:
    time.sleep(after_s)
    filler = fill_disk(folder)
    time.sleep(hold_s)
    failing = "GATEWAY STORAGE FAILING" in run.gateway_log()
    filler.unlink()
    return {"disk_full_s": hold_s, "gateway_said_so": failing}


def run_scenario(
    name: str, run: LiveClassroom, fault: Callable[[LiveClassroom], dict[str, Any]]
) -> dict[str, Any]:
    started = time.monotonic()
    with run:
        figures = fault(run)
        if not run.wait_written(timeout=run.classroom.duration_s + 120):
            figures["pens_unfinished"] = True
        report = run.wait_stored(timeout=DRAIN_S)
    figures.update(
        scenario=name,
        written=report.written,
        stored_events=report.stored_events,
        lost=report.lost,
        duplicated=report.duplicated,
        unexpected=report.unexpected,
        ink_mismatch=report.ink_mismatch,
        seconds=round(time.monotonic() - started, 1),
        pens_reoffered_strokes=sum(p.strokes_reoffered for p in run.classroom.pens),
        gateway_starts=run.gateway_starts,
    )
    if not report.ok:
        figures["report"] = report.summary()
    return figures


def lossy_link(run: LiveClassroom, seed: int) -> LossyLink:
    """Put a LossyLink between the (not yet started) run's gateway and its broker."""
    run.broker.port = free_port()
    link = LossyLink(run.broker.port, seed=seed).start()
    run.uplink_port = link.port
    return link


def scenarios(args: argparse.Namespace, root: Path) -> dict[str, Callable[[], dict[str, Any]]]:
    def room(name: str, **options: Any) -> LiveClassroom:
        return LiveClassroom(root / name, pens=args.pens, seed=args.seed, **options)

    def kills() -> dict[str, Any]:
        return run_scenario(
            "gateway_kill9", room("kills"), lambda r: gateway_kills(r, args.kills, args.seed)
        )

    def outage() -> dict[str, Any]:
        return run_scenario(
            "broker_outage", room("outage"), lambda r: broker_outage(r, args.outage_s, 8.0)
        )

    def central() -> dict[str, Any]:
        return run_scenario(
            "central_kill9", room("central"), lambda r: central_kills(r, kills=3, every_s=6.0)
        )

    def lossy() -> dict[str, Any]:
        run = room("lossy")
        link = lossy_link(run, args.seed)
        try:
            figures = run_scenario("lossy_link", run, lambda r: {})
        finally:
            link.stop()
        figures.update(link_cuts=link.stats.cuts, link_connections=link.stats.connections)
        figures["delay_ms"] = [round(1000 * d) for d in link.delay_s]
        return figures

    def disk() -> dict[str, Any]:
        with small_tmpfs(root / "outbox-fs", args.disk_size) as fs:
            return run_scenario(
                "outbox_disk_full",
                room("disk", outbox_dir=fs),
                lambda r: full_disk(r, fs, after_s=8.0, hold_s=args.disk_full_s),
            )

    return {"kills": kills, "outage": outage, "central": central, "lossy": lossy, "disk": disk}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pens", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--kills", type=int, default=20, help="gateway SIGKILLs in one run")
    parser.add_argument("--outage-s", type=float, default=60.0, help="broker outage, seconds")
    parser.add_argument("--disk-size", default="6m", help="tmpfs size for the outbox")
    parser.add_argument("--disk-full-s", type=float, default=10.0)
    parser.add_argument(
        "--only", nargs="*", default=None, help="kills outage central lossy disk (default: all)"
    )
    parser.add_argument("--workdir", type=Path, help="keep logs here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="classink-reliability-") as tmp:
        root = args.workdir or Path(tmp)
        chosen = scenarios(args, root)
        results = []
        for name in args.only or list(chosen):
            if name == "disk" and os.geteuid() != 0:
                results.append({"scenario": "outbox_disk_full", "skipped": "needs root (mount)"})
                continue
            figures = chosen[name]()
            print(json.dumps(figures), flush=True)
            results.append(figures)
    ok = all(r.get("lost", 0) == 0 and r.get("duplicated", 0) == 0 for r in results)
    print(json.dumps({"scenarios": results, "lost_0_duplicated_0": ok}))


if __name__ == "__main__":
    main()
