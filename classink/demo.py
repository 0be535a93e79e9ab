"""`classink demo`: one classroom end to end on this machine.

A private Mosquitto, the central service, one gateway and a classroom of simulated pens writing real
handwriting into a sample exam. The demo waits until every answer is stored at central, compares the
stored rows with what the pens wrote, prints the results, and stops everything it started.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from classink.mosquitto import Mosquitto, free_port, wait_for_port
from classink.shared_data import REPO_ROOT

SAMPLE_EXAM = REPO_ROOT / "protocol_specs" / "examples" / "grade3-maths.exam.json"
SITE_ID, GATEWAY_ID = "demo-school", "room-101"


def register(sub: argparse._SubParsersAction) -> None:
    demo = sub.add_parser("demo", help="run one simulated classroom end to end")
    demo.add_argument("--pens", type=int, default=30, help="simulated students, one pen each")
    demo.add_argument("--template", type=Path, default=SAMPLE_EXAM, help="exam template JSON")
    demo.add_argument("--time-scale", type=float, default=1.0, help=">1 makes pens write faster")
    demo.add_argument(
        "--noise", type=float, default=0.0, help="share of pen events preceded by line noise"
    )
    demo.add_argument(
        "--lattice-share", type=float, default=0.5, help="share of lattice-camera pens (0..1)"
    )
    demo.add_argument(
        "--misread", type=float, default=0.02, help="share of camera frames with a misread dot"
    )
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument(
        "--workdir", type=Path, help="keep logs and databases here instead of a temp folder"
    )
    demo.add_argument(
        "--keep-serving", action="store_true", help="leave the results page up; Ctrl-C ends"
    )
    demo.set_defaults(handler=_run)


@dataclass
class Tally:
    written: int
    received: int
    lost: int
    duplicated: int
    unexpected: int

    @property
    def last_line(self) -> str:
        return (
            f"demo: answers written={self.written} received={self.received} "
            f"lost={self.lost} duplicated={self.duplicated}"
        )


def answer_key(row: dict) -> tuple[str, str, str]:
    return (row["student_id"], row["exam_id"], row["question_id"])


def compare(truth: list[dict], stored: list[dict]) -> Tally:
    """Row by row: every written answer must be stored exactly once."""
    written = {answer_key(t) for t in truth}
    events = Counter(answer_key(s) for s in stored)
    received = sum(1 for k in written if events[k] > 0)
    duplicated = sum(n - 1 for k, n in events.items() if k in written and n > 1)
    unexpected = sum(n for k, n in events.items() if k not in written)
    return Tally(len(written), received, len(written) - received, duplicated, unexpected)


def stored_events(database_url: str, exam_id: str) -> list[dict]:
    from sqlalchemy import create_engine, select
    from sqlalchemy.exc import OperationalError, ProgrammingError

    from central.models import AnswerEvent

    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(AnswerEvent.__table__).where(AnswerEvent.exam_id == exam_id))
            return [dict(r) for r in rows.mappings()]
    except (OperationalError, ProgrammingError):  # central has not created its tables yet
        return []
    finally:
        engine.dispose()


def spawn(args: list[str], log_path: Path) -> subprocess.Popen:
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "classink.cli", "-v", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def stop_process(proc: subprocess.Popen | None, timeout: float = 20.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class ServiceDied(RuntimeError):
    """A process the demo started ended on its own."""


class ClassroomRun:
    """Broker, central, gateway and a simulated classroom, started together in `work`."""

    def __init__(
        self,
        work: Path,
        template: Path,
        pens: int,
        seed: int,
        time_scale: float,
        noise: float,
        **classroom,
    ) -> None:
        from hardware_sim.classroom import Classroom

        self.work = work
        self.template = template
        self.exam_id = json.loads(Path(template).read_text())["template_id"]
        self.database_url = f"sqlite:///{work / 'central.db'}"
        self.http_port = free_port()
        self.classroom = Classroom(template, pens, seed, time_scale, noise, **classroom)
        self.broker = Mosquitto()
        self.central: subprocess.Popen | None = None
        self.gateway: subprocess.Popen | None = None

    @property
    def truth(self) -> list[dict]:
        return [json.loads(line) for line in (self.work / "truth.jsonl").read_text().splitlines()]

    @contextlib.contextmanager
    def running(self) -> Iterator[ClassroomRun]:
        try:
            self.broker.start()
            self.classroom.write_roster(self.work / "roster.json")
            self.classroom.write_ground_truth(self.work / "truth.jsonl")
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
                    f"classink-central-demo-{os.getpid()}",
                ],
                self.work / "central.log",
            )
            wait_for_port(self.http_port, 60, self.central)
            config = {
                "site_id": SITE_ID,
                "gateway_id": GATEWAY_ID,
                "mqtt_port": self.broker.port,
                "outbox_path": str(self.work / "outbox.db"),
                "templates": [str(Path(self.template).resolve())],
                "roster": str(self.work / "roster.json"),
                "serial_ports": self.classroom.devices,
            }
            (self.work / "gateway.json").write_text(json.dumps(config, indent=2))
            self.gateway = spawn(
                ["gateway", "run", "--config", str(self.work / "gateway.json")],
                self.work / "gateway.log",
            )
            self.classroom.start()
            yield self
        finally:
            self.classroom.stop()
            stop_process(self.gateway)
            stop_process(self.central)
            self.broker.stop()

    def wait_stored(self, on_progress=None) -> Tally:
        """Poll central's database until every written answer is there or time is up."""
        truth = self.truth
        deadline = time.monotonic() + self.classroom.duration_s + 60.0
        while True:
            tally = compare(truth, stored_events(self.database_url, self.exam_id))
            if on_progress:
                on_progress(tally)
            if tally.received == tally.written or time.monotonic() > deadline:
                break
            for name, proc in (("gateway", self.gateway), ("central", self.central)):
                if proc.poll() is not None:
                    log = (self.work / f"{name}.log").read_text(errors="replace").splitlines()
                    tail = "\n".join(log[-15:])
                    raise ServiceDied(
                        f"{name} exited with code {proc.returncode}; end of {name}.log:\n{tail}"
                    )
            time.sleep(0.5)
        # Stopping the gateway drains its outbox; only then is a duplicate count final.
        stop_process(self.gateway)
        time.sleep(1.0)
        return compare(truth, stored_events(self.database_url, self.exam_id))


def _run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console()
    with tempfile.TemporaryDirectory(prefix="classink-demo-") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        run = ClassroomRun(
            work,
            args.template,
            args.pens,
            args.seed,
            args.time_scale,
            args.noise,
            lattice_share=args.lattice_share,
            misread_rate=args.misread,
        )
        lattice_pens = sum(p.camera is not None for p in run.classroom.pens)
        console.print(
            f"[bold]classink demo[/]: {args.pens} pens ({lattice_pens} reading the dot pattern "
            f"with their camera) sit exam {run.exam_id!r}; files in {work}"
        )
        with run.running():
            console.print(f"broker   mosquitto on 127.0.0.1:{run.broker.port}")
            console.print(f"central  http://127.0.0.1:{run.http_port}/  (log: central.log)")
            console.print(
                f"gateway  {SITE_ID}/{GATEWAY_ID} reading {args.pens} pens on pseudo-terminals "
                "(log: gateway.log)"
            )
            columns = (
                TextColumn("answers stored at central"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
            )
            with Progress(*columns, console=console) as progress:
                task = progress.add_task("stored", total=len(run.classroom.answers))
                try:
                    tally = run.wait_stored(lambda t: progress.update(task, completed=t.received))
                except ServiceDied as exc:
                    console.print(f"[red]{exc}[/]")
                    tally = compare(run.truth, stored_events(run.database_url, run.exam_id))
            print_results(console, run.truth, stored_events(run.database_url, run.exam_id), tally)
            if args.keep_serving:
                # Every page needs a token: a sign-in link (the token after '#' stays local).
                token = _admin_token(run.database_url)
                console.print(
                    f"results page: http://127.0.0.1:{run.http_port}/login?next=/exams/"
                    f"{run.exam_id}#token={token}  (Ctrl-C to stop)"
                )
                with contextlib.suppress(KeyboardInterrupt):
                    while run.central.poll() is None:
                        time.sleep(1)
    print(tally.last_line)
    return 0 if tally.lost == 0 and tally.duplicated == 0 else 1


def _admin_token(database_url: str) -> str:
    from central.auth.tokens import issue_token
    from central.db import make_engine, make_session_factory

    engine = make_engine(database_url)
    try:
        return issue_token(make_session_factory(engine), "admin", "demo")
    finally:
        engine.dispose()


def print_results(console, truth: list[dict], stored: list[dict], tally: Tally) -> None:
    from rich.table import Table

    latest: dict[tuple, dict] = {}
    for s in stored:
        k = answer_key(s)
        if k not in latest or s["revision"] > latest[k]["revision"]:
            latest[k] = s
    intended = {answer_key(t): t for t in truth}
    table = Table(title="Results stored at central")
    table.add_column("student")
    for col in ("answers", "score", "for review", "read as written"):
        table.add_column(col, justify="right")
    read_right = judged = judged_right = 0
    for student in sorted({t["student_id"] for t in truth}):
        mine = [(v, intended[k]) for k, v in latest.items() if k[0] == student and k in intended]
        agree = sum(v["label"] == t["intended"] for v, t in mine)
        read_right += agree
        for v, t in mine:
            if v["status"] == "scored":
                judged += 1
                judged_right += v["correct"] == (t["intended"] == t["key"])
        table.add_row(
            student,
            str(len(mine)),
            f"{sum(v['points_awarded'] or 0 for v, _ in mine):g}"
            f"/{sum(v['points_possible'] for v, _ in mine):g}",
            str(sum(v["status"] == "review" for v, _ in mine)),
            f"{agree}/{len(mine)}",
        )
    console.print(table)
    n = max(1, len(latest))
    reviews = sum(v["status"] == "review" for v in latest.values())
    console.print(
        f"Recognition, on writers the recogniser never saw: {read_right}/{len(latest)} "
        "answers read as "
        f"written ({100 * read_right / n:.1f}%); {reviews} sent to a person for review; "
        f"{judged_right}/{judged} automatic marks agree with what the student meant."
    )
    if tally.unexpected:
        console.print(f"[yellow]{tally.unexpected} stored events match no written answer[/]")
