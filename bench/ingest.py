"""Central ingest at scale: scored answers from simulated gateways, through Mosquitto, into
PostgreSQL.

python -m bench.ingest [--answers N] [--gateways G] [--publishers P] [--latency-rate R]

A private Mosquitto (classink/mosquitto.py) and a private PostgreSQL (classink/postgres.py, with
fsync and synchronous commit on, as in production) are started. Publisher processes play G
gateways and publish N scored answers at QoS 1 (each a digit answer with two strokes of 60 pen
points, about 3.6 kB of JSON), as fast as the broker takes them, as pre-encoded packets over a raw
socket (bench/raw_publisher.py), so that the load generator takes little of the cores; the
clock starts once every publisher has built its answers and connected. Central workers
run as separate processes, each an `MqttIngest` on the shared subscription, on a fresh database.
There are three runs: one worker while the gateways publish, two workers likewise, and one worker
draining a backlog that the broker queued while it was offline (central's own pace, without
publishers competing for the cores). A fourth run times latency with one worker at R answers/s
(15 s of answers), a pace it keeps up with.

Per run: answers_per_s is the answers stored divided by the time from the first publish to the
last commit; latency is from the publish (the answer's created_at) to the commit that stored it
(seen by an ingest observer, which central calls after the commit and before the broker's ack);
lost is answers published but not stored; duplicated is answers stored as new more than once.
Everything, publishers included, shares this machine's cores, and figures move with whatever else
the machine runs: the CPU each worker and its PostgreSQL backend spent per answer
(worker_cpu_us_per_answer, postgres_cpu_us_per_answer) and the load average at the start are
reported beside them.

The last line is one JSON object: answers_per_s (1 worker), answers_per_s_2_workers,
answers_per_s_backlog, p50_ms and p99_ms (1 worker at R answers/s; p99_ms_flat_out is the
flat-out run's, which mostly measures how long answers queued while central was behind), lost
and duplicated (all runs), and the settings.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import statistics
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from rich.console import Console
from sqlalchemy import func, select

from bench.raw_publisher import RawPublisher
from central.db import create_schema, make_engine, make_session_factory
from central.ingest import DEFAULT_MAX_BATCH, Ingestor, MqttIngest
from central.models import AnswerEvent
from central.payloads import parse_rfc3339
from central.settings import CentralSettings
from classink.mosquitto import Mosquitto
from classink.postgres import create_database, postgres_server

TARGET_ANSWERS_PER_S = 5000
SITE = "bench-site"
# Replaced by the time of publishing; same length as datetime.isoformat() with microseconds + Z.
_PLACEHOLDER = b"2000-01-01T00:00:00.000000Z"
console = Console(stderr=True)


@dataclass(frozen=True)
class Run:
    workers: int
    answers: int
    answers_per_s: float
    p50_ms: float
    p99_ms: float
    lost: int
    duplicated: int
    stored_by_worker: list[int]
    # CPU per stored answer, whatever else the machine ran: the worker process, and the
    # PostgreSQL backend(s) it wrote through.
    worker_cpu_us: float
    postgres_cpu_us: float


def _answer(gateway: str, seq: int, rng: random.Random) -> tuple[str, bytes]:
    event_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    doc = {
        "schema": "classink.answer.v1",
        "event_id": event_id,
        "site_id": SITE,
        "gateway_id": gateway,
        "seq": seq,
        "created_at": _PLACEHOLDER.decode(),
        "exam_id": "bench-exam",
        "page_address": "1.2.3.4",
        "pen_id": "00:1a:2b:3c:4d:5e",
        "student_id": f"s{rng.randrange(1000)}",
        "question_id": f"q{rng.randrange(1, 30)}",
        "kind": "digit",
        "revision": 1,
        "label": str(rng.randrange(10)),
        "confidence": round(rng.random(), 3),
        "status": "scored",
        "correct": rng.random() < 0.7,
        "points_awarded": 1,
        "points_possible": 1,
        "box_mm": [20.0, 30.0, 15.0, 10.0],
        "strokes": [
            {
                "t0_ms": 400 * stroke,
                "points": [
                    [round(rng.uniform(20, 35), 2), round(rng.uniform(30, 40), 2), 8 * i, 0.5]
                    for i in range(60)
                ],
            }
            for stroke in range(2)
        ],
    }
    return event_id, json.dumps(doc, separators=(",", ":")).encode()


def _publisher(
    port: int,
    gateways: list[str],
    per_gateway: int,
    rate: float,
    seed: int,
    built: Any,
    start: Any,
) -> None:
    rng = random.Random(seed)
    plan = [
        (f"classink/v1/{SITE}/{gateway}/answers", _answer(gateway, seq, rng)[1])
        for seq in range(1, per_gateway + 1)
        for gateway in gateways
    ]
    publisher = RawPublisher(port, f"bench-gateways-{seed}")
    built.set()
    start.wait()
    publisher.publish_all(_stamped(plan, rate))
    publisher.close()


def _stamped(plan: list[tuple[str, bytes]], rate: float) -> Iterator[tuple[str, bytes]]:
    """The plan's answers, each stamped with the time it is handed to the socket (at `rate`
    answers/s, or as fast as the broker takes them when rate is 0)."""
    began = time.monotonic()
    for n, (topic, payload) in enumerate(plan):
        if rate:
            ahead = began + n / rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
        stamp = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
        yield topic, payload.replace(_PLACEHOLDER, stamp.encode(), 1)


def _worker(
    port: int,
    database_url: str,
    client_id: str,
    backlog: bool,
    ready: Any,
    go: Any,
    stop: Any,
    results: Any,
) -> None:
    engine = make_engine(database_url)
    ingestor = Ingestor(make_session_factory(engine))
    committed: list[tuple[str, float, float]] = []  # event id, ms since publish, commit time

    def observe(doc: dict[str, Any]) -> None:
        now = datetime.now(UTC)
        latency_ms = (now - parse_rfc3339(doc["created_at"])).total_seconds() * 1000
        committed.append((doc["event_id"], latency_ms, now.timestamp()))

    ingestor.observers.append(observe)
    settings = CentralSettings(mqtt_host="127.0.0.1", mqtt_port=port, client_id=client_id)
    ingest = MqttIngest(ingestor, settings).start()
    if not ingest.wait_subscribed(30):
        raise RuntimeError(f"{client_id} did not subscribe")
    if backlog:  # offline while the gateways publish: the broker queues for our session
        ingest.stop()
    ready.set()
    go.wait()
    cpu_began = time.process_time()
    if backlog:
        ingest = MqttIngest(ingestor, settings).start()
    stop.wait()
    ingest.stop()
    cpu_s = time.process_time() - cpu_began
    with engine.connect() as connection:  # the pool's one connection: the one ingest used
        backend_pid = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
    # Read while the backend is alive: it exits once the engine lets go of its connection.
    backend_cpu_s = _process_cpu_s(backend_pid)
    engine.dispose()
    _end_session(port, client_id)
    results.put((client_id, committed, time.time(), cpu_s, backend_cpu_s))


def _json_line(figures: dict[str, Any]) -> str:
    # A figure that could not be measured (NaN) is written as null: NaN is not JSON.
    return json.dumps(
        {k: None if isinstance(v, float) and v != v else v for k, v in figures.items()}
    )


def _process_cpu_s(pid: int) -> float:
    """User + system CPU seconds a process on this machine has used (its PostgreSQL backend)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _end_session(port: int, client_id: str) -> None:
    # A clean start with no expiry, then leaving, ends the worker's persistent session: otherwise
    # the broker would keep sending it a share of the next run's answers.
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5
    )
    client.connect("127.0.0.1", port, clean_start=True)
    client.loop_start()
    client.disconnect()
    client.loop_stop()


def _stored(database_url: str) -> int:
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as session:
            return session.scalar(select(func.count()).select_from(AnswerEvent)) or 0
    finally:
        engine.dispose()


def run(
    port: int,
    server_url: str,
    workers: int,
    args: argparse.Namespace,
    run_number: int,
    backlog: bool = False,
    rate: float = 0.0,
    answers: int = 0,
) -> Run:
    ctx = mp.get_context("spawn")
    database_url = create_database(server_url, f"bench_ingest_{run_number}")
    pace = f", {rate:.0f} answers/s offered" if rate else ", flat out"
    console.print(f"[bold]{workers} central worker(s){', backlog' if backlog else pace}[/bold]")
    engine = make_engine(database_url)
    create_schema(engine)
    engine.dispose()
    go, stop, results = ctx.Event(), ctx.Event(), ctx.Queue()
    readies = [ctx.Event() for _ in range(workers)]
    procs = [
        ctx.Process(
            target=_worker,
            args=(
                port,
                database_url,
                f"bench-central-{run_number}-{n}",
                backlog,
                ready,
                go,
                stop,
                results,
            ),
        )
        for n, ready in enumerate(readies)
    ]
    for proc in procs:
        proc.start()
    for ready in readies:
        if not ready.wait(60):
            raise RuntimeError("a central worker did not start")

    gateway_names = [f"gw-{n}" for n in range(args.gateways)]
    per_gateway = (answers or args.answers) // args.gateways
    total = per_gateway * args.gateways
    start = ctx.Event()
    builts = [ctx.Event() for _ in range(args.publishers)]
    publishers = [
        ctx.Process(
            target=_publisher,
            args=(
                port,
                gateway_names[p :: args.publishers],
                per_gateway,
                rate / args.publishers,
                1000 * run_number + p,
                builts[p],
                start,
            ),
        )
        for p in range(args.publishers)
    ]
    for proc in publishers:
        proc.start()
    for built in builts:  # the publishers build their payloads and connect before the clock
        if not built.wait(300):
            raise RuntimeError("a publisher did not get ready")
    began = time.time()
    start.set()
    if backlog:
        for proc in publishers:
            proc.join()
        began = time.time()
    go.set()
    deadline = time.monotonic() + args.timeout
    stored = 0
    last_report = 0.0
    while time.monotonic() < deadline:
        stored = _stored(database_url)
        if stored >= total:
            break
        if time.monotonic() - last_report > 5:
            console.print(f"  {workers} worker(s): {stored}/{total} stored")
            last_report = time.monotonic()
        time.sleep(0.2)
    for proc in publishers:
        proc.join(30)
    stop.set()
    committed: list[tuple[str, float, float]] = []
    stored_by_worker = []
    worker_cpu_s = postgres_cpu_s = 0.0
    for _ in procs:
        _client_id, worker_committed, _, cpu_s, backend_cpu_s = results.get(timeout=60)
        worker_cpu_s += cpu_s
        postgres_cpu_s += backend_cpu_s
        committed.extend(worker_committed)
        stored_by_worker.append(len(worker_committed))
    for proc in procs:
        proc.join(30)
    latencies = sorted(latency for _, latency, _ in committed)
    last_commit = max((at for _, _, at in committed), default=time.time())
    elapsed = last_commit - began
    seen = Counter(event_id for event_id, _, _ in committed)
    return Run(
        workers=workers,
        answers=total,
        answers_per_s=round(len(seen) / elapsed, 1),
        p50_ms=round(statistics.median(latencies), 1) if latencies else float("nan"),
        p99_ms=round(latencies[int(0.99 * (len(latencies) - 1))], 1) if latencies else float("nan"),
        lost=total - stored,
        duplicated=sum(n - 1 for n in seen.values()),
        stored_by_worker=stored_by_worker,
        worker_cpu_us=round(worker_cpu_s / max(len(seen), 1) * 1e6, 1),
        postgres_cpu_us=round(postgres_cpu_s / max(len(seen), 1) * 1e6, 1),
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", type=int, default=40_000)
    parser.add_argument("--gateways", type=int, default=40)
    parser.add_argument("--publishers", type=int, default=2)
    parser.add_argument(
        "--latency-rate", type=float, default=800.0, help="answers/s offered when timing latency"
    )
    parser.add_argument("--timeout", type=float, default=180.0)
    args = parser.parse_args(argv)
    runs: list[Run] = []
    load_at_start = round(os.getloadavg()[0], 2)
    with (
        # Each publisher connection plays several gateways, and a gateway may have Mosquitto's
        # default of 20 messages in flight: the window is that many gateways' worth, as it would
        # be with one connection per gateway.
        Mosquitto(
            extra_config="max_queued_messages 0\n"
            f"max_inflight_messages {20 * -(-args.gateways // args.publishers)}\n"
        ) as broker,
        postgres_server("bench", durable=True) as server_url,
    ):
        plan = [(1, False, 0.0, 0), (2, False, 0.0, 0), (1, True, 0.0, 0)]
        # Flat out, answers queue while central is behind and latency only says how long the run
        # was; it is measured on its own at a pace one worker keeps up with.
        plan.append((1, False, args.latency_rate, int(args.latency_rate * 15)))
        for number, (workers, backlog, rate, answers) in enumerate(plan, 1):
            result = run(broker.port, server_url, workers, args, number, backlog, rate, answers)
            console.print(result)
            runs.append(result)
    one, two, drain, paced = runs
    print(
        _json_line(
            {
                "answers_per_s": one.answers_per_s,
                "answers_per_s_2_workers": two.answers_per_s,
                "p50_ms": paced.p50_ms,
                "p99_ms": paced.p99_ms,
                "latency_at_answers_per_s": args.latency_rate,
                "p99_ms_flat_out": one.p99_ms,
                "answers_per_s_backlog": drain.answers_per_s,
                "lost": one.lost + two.lost + drain.lost,
                "duplicated": one.duplicated + two.duplicated + drain.duplicated,
                "stored_by_worker_2_workers": two.stored_by_worker,
                "worker_cpu_us_per_answer": one.worker_cpu_us,
                "worker_cpu_us_per_answer_backlog": drain.worker_cpu_us,
                "postgres_cpu_us_per_answer": one.postgres_cpu_us,
                "load_average_1min_at_start": load_at_start,
                "target_answers_per_s": TARGET_ANSWERS_PER_S,
                "meets_target": one.answers_per_s >= TARGET_ANSWERS_PER_S
                and all(r.lost == r.duplicated == 0 for r in runs),
                "answers": one.answers,
                "gateways": args.gateways,
                "publishers": args.publishers,
                "max_batch": DEFAULT_MAX_BATCH,
                "cores": os.cpu_count(),
                "postgres": "fsync on, synchronous_commit on",
            }
        )
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
