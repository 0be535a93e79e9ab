"""`python -m bench.classroom --pens 60 --rate 120 --seconds 60`: a gateway under a class's load.

Mosquitto, central and the gateway run as their own processes, the simulated pens (pseudo-terminals)
in this one. The exam is the sample one, its page repeated until the writing lasts `--seconds`.
Measured while the pens write (the gateway's start-up excluded):

* dots_per_s: dots the pens streamed, per second;
* gateway_cpu_percent: the gateway process's CPU time over wall time, in % of one core;
* gateway_rss_mb: the gateway's peak resident memory (VmHWM);
* latency_ms_p50/p99: from the moment an answer is closed to the answer stored at central. The
  gateway cannot know an answer is finished before the student's next stroke in another box ends,
  or before the idle time (answer_idle_s) passes after its last stroke with no ink at all: a stroke
  begun before the idle time ran out keeps the box open until its pen-up (gateway/answers.py), so
  then that pen-up closes the answer, else the idle deadline does. The raw figure from the
  answer's own last pen-up is printed too (pen_up_to_stored_ms_*), and how many answers each way
  closed (closed_by_next_stroke, closed_by_idle);
* stages_ms: where the latency goes, p50 and p99 per stage, from the gateway's stage trace
  (gateway/stage_trace.py): close → final (the gateway notices), final → committed (scored,
  in the outbox), committed → published (handed to MQTT), published → acked (the broker's
  PUBACK), published → stored (central's received_at: its batch's arrival, just before commit);
* lost, duplicated: central's export compared with the ground truth (central/truth_check.py).

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from bench.live_classroom import LiveClassroom
from hardware_sim import pen as sim_pen
from hardware_sim.classroom import Classroom
from hardware_sim.cli import SAMPLE_EXAM

IDLE_S = 2.5  # the gateway's answer_idle_s default (gateway/settings.py)
TARGETS = {"gateway_cpu_percent": 10.0, "gateway_rss_mb": 150.0, "latency_ms_p99": 250.0}


def long_exam(seconds: float, pens: int, seed: int, folder: Path) -> Path:
    """The sample exam with its page repeated (pages 1..k, question ids p<k>-q<n>) until the
    slowest pen writes for at least `seconds`."""
    one = Classroom(SAMPLE_EXAM, pens, seed)
    one.stop()
    copies = max(1, math.ceil(seconds / one.duration_s))
    template = json.loads(SAMPLE_EXAM.read_text())
    pages = []
    for k in range(copies):
        for page in template["pages"]:
            copy = json.loads(json.dumps(page))
            copy["address"]["page"] = page["address"]["page"] + k * len(template["pages"])
            for region in copy["regions"]:
                region["question_id"] = f"p{k + 1}-{region['question_id']}"
            pages.append(copy)
    template["template_id"] = f"{template['template_id']}-x{copies}"
    template["pages"] = pages
    path = folder / "exam.json"
    path.write_text(json.dumps(template))
    return path


def cpu_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc status")


@dataclass
class Timed:
    """One streamed answer's times (time.time() seconds)."""

    closed: float  # when the gateway could know the answer was finished
    last_up: float  # the answer's own last pen-up
    stored: float  # central's received_at
    event_id: str
    by_idle: bool


def timed_answers(run: LiveClassroom, stored: list[dict]) -> list[Timed]:
    """Every answer written in real time and stored at central, with when it closed."""
    at = {
        (r["student_id"], r["question_id"]): (
            datetime.fromisoformat(r["stored_at"].replace("Z", "+00:00")).timestamp(),
            r["event_id"],
        )
        for r in stored
        if r["revision"] == 1
    }
    out: list[Timed] = []
    by_student: dict[str, list] = {}
    for a in run.classroom.answers:
        by_student.setdefault(a.student_id, []).append(a)
    for pen in run.classroom.pens:
        answers = by_student[run.classroom.roster[pen.pen_id]]
        i = 0
        for answer in answers:
            strokes = pen.written[i : i + answer.strokes]
            i += answer.strokes
            last_up = strokes[-1].up_wall if strokes else None
            found = at.get((answer.student_id, answer.question_id))
            if last_up is None or found is None:
                continue  # not streamed (offline) or not stored: counted as lost elsewhere
            nxt = pen.written[i] if i < len(pen.written) else None
            idle_at = last_up + IDLE_S
            if nxt is not None and nxt.down_wall is not None and nxt.down_wall < idle_at:
                closed, by_idle = nxt.up_wall or idle_at, False
            else:
                closed, by_idle = idle_at, True
            out.append(Timed(closed, last_up, found[0], found[1], by_idle))
    return out


def read_trace(path: Path) -> dict[str, dict]:
    if not path.is_file():
        return {}
    return {row["event_id"]: row for row in map(json.loads, path.read_text().splitlines())}


def stage_figures(answers: list[Timed], trace: dict[str, dict]) -> dict[str, dict[str, float]]:
    """p50 and p99 of each stage, in ms, over the answers the gateway traced."""
    spans: dict[str, list[float]] = {
        "close_to_final": [],
        "final_to_committed": [],
        "committed_to_published": [],
        "published_to_acked": [],
        "published_to_stored": [],
    }
    for a in answers:
        t = trace.get(a.event_id)
        if t is None:
            continue
        spans["close_to_final"].append(t["final"] - a.closed)
        spans["final_to_committed"].append(t["committed"] - t["final"])
        spans["committed_to_published"].append(t["published"] - t["committed"])
        spans["published_to_acked"].append(t["acked"] - t["published"])
        spans["published_to_stored"].append(a.stored - t["published"])
    return {
        name: {
            "p50": pct([1000 * v for v in values], 50),
            "p99": pct([1000 * v for v in values], 99),
        }
        for name, values in spans.items()
    }


def pct(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 1) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pens", type=int, default=60)
    parser.add_argument("--rate", type=float, default=120.0, help="dots per second per pen")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the pens write")
    parser.add_argument(
        "--lattice-share", type=float, default=0.0, help="share of lattice-camera pens (0..1)"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", type=Path, help="keep logs and databases here")
    args = parser.parse_args()
    sim_pen.DOT_RATE_HZ = args.rate  # read when strokes are scripted and streamed
    with tempfile.TemporaryDirectory(prefix="classink-bench-") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        result = measure(work, args)
    for name, limit in TARGETS.items():
        result[f"{name}_target_met"] = result[name] <= limit
    print(json.dumps(result))


def measure(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    exam = long_exam(args.seconds, args.pens, args.seed, work)
    run = LiveClassroom(
        work,
        pens=args.pens,
        seed=args.seed,
        template=exam,
        lattice_share=args.lattice_share,
        stage_trace=True,
    )
    with run:
        pid = run.gateway.pid
        deadline = time.monotonic() + 60
        while not all(p.connected.is_set() for p in run.classroom.pens):
            if time.monotonic() > deadline:
                raise RuntimeError("pens did not connect to the gateway within 60 s")
            time.sleep(0.05)
        t0, cpu0 = time.monotonic(), cpu_seconds(pid)
        if not run.wait_written(timeout=run.classroom.duration_s + 60):
            raise RuntimeError("pens did not finish writing")
        t1, cpu1 = time.monotonic(), cpu_seconds(pid)
        rss = peak_rss_mb(pid)
        report = run.wait_stored(timeout=120)
        stored = run.exported()
    dots = sum(len(r.dots) for p in run.classroom.pens for r in p.written)
    answers = timed_answers(run, stored)
    closing = [1000 * (a.stored - a.closed) for a in answers]
    own = [1000 * (a.stored - a.last_up) for a in answers]
    stages = stage_figures(answers, read_trace(work / "stage_trace.jsonl"))

    return {
        "pens": args.pens,
        "rate": args.rate,
        "lattice_pens": sum(p.camera is not None for p in run.classroom.pens),
        "writing_s": round(t1 - t0, 1),
        "dots_per_s": round(dots / (t1 - t0), 1),
        "gateway_cpu_percent": round(100 * (sum(cpu1) - sum(cpu0)) / (t1 - t0), 1),
        "gateway_cpu_user_percent": round(100 * (cpu1[0] - cpu0[0]) / (t1 - t0), 1),
        "gateway_cpu_system_percent": round(100 * (cpu1[1] - cpu0[1]) / (t1 - t0), 1),
        "gateway_rss_mb": round(rss, 1),
        "latency_ms_p50": pct(closing, 50),
        "latency_ms_p99": pct(closing, 99),
        "pen_up_to_stored_ms_p50": pct(own, 50),
        "pen_up_to_stored_ms_p99": pct(own, 99),
        "closed_by_next_stroke": sum(not a.by_idle for a in answers),
        "closed_by_idle": sum(a.by_idle for a in answers),
        "stages_ms": stages,
        "answers": report.written,
        "lost": report.lost,
        "duplicated": report.duplicated,
        "unexpected": report.unexpected,
    }


if __name__ == "__main__":
    main()
