"""Knowledge tracing on the shared ASSISTments 2009 and Statics 2011 splits, every model.

python -m bench.tracing  prints one line per split and model and, last, one JSON object: per split
and model the test AUC, RMSE and fit seconds; the best model's AUC per split against the targets;
`update_us`, the cost of the online update central runs on every answer (BKT mastery and the
logistic model's prediction and practice state), per answer, on the test answers of ASSISTments;
and `ingest_ms`, how long central's ingest takes from message to updated mastery on SQLite (the
answer's commit, then the mastery update in its own transaction; both before the broker's ack),
median and 99th percentile, with `mastery_update_ms` the tracing part of it.

Everything runs on one core (BLAS threads are limited to one), as the targets are stated.
"""

import json
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from threadpoolctl import threadpool_limits

from central.db import create_schema, make_engine, make_session_factory
from central.ingest import Ingestor, OutcomeKind
from central.tracing.bkt import BktModel
from central.tracing.catalogue import import_catalogue
from central.tracing.evaluate import MODELS, evaluate_answers, load_split
from central.tracing.files import ItemTag, SkillSpec
from central.tracing.logistic import LogisticModel
from central.tracing.mastery import MasteryUpdater
from central.tracing.online import StudentTrace, Tracer
from classink.shared_data import data_dir

SPLITS = {"assist2009": 0.75, "statics2011": 0.81}  # the AUC targets for the best model
FIT_SECONDS_TARGET = 10.0
UPDATE_US_TARGET = 50.0
INGEST_ANSWERS = 300
INGEST_MS_TARGET = 1000.0  # "mastery within a second of ingest"


def update_cost_us(train_path, test_path) -> float:
    train, test = load_split(train_path, test_path)
    tracer = Tracer(BktModel.fit(train), LogisticModel.fit(train))
    skills = [test.skill_names[s] for s in test.skills]
    users = [test.user_names[u] for u in test.users]
    correct = test.correct.astype(bool).tolist()
    traces: dict[str, StudentTrace] = {}
    started = time.perf_counter()
    for user, skill, right in zip(users, skills, correct, strict=True):
        trace = traces.get(user)
        if trace is None:
            trace = traces[user] = StudentTrace()
        tracer.observe(trace, skill, right)
    return (time.perf_counter() - started) / len(correct) * 1e6


def _answer(seq: int, student: str, question: str, correct: bool, at: datetime) -> dict[str, Any]:
    return {
        "schema": "classink.answer.v1",
        "event_id": str(uuid.uuid4()),
        "site_id": "bench",
        "gateway_id": "gw-1",
        "seq": seq,
        "created_at": at.isoformat().replace("+00:00", "Z"),
        "exam_id": "bench-exam",
        "page_address": "1.2.3.4",
        "pen_id": "00:1a:2b:3c:4d:5e",
        "student_id": student,
        "question_id": question,
        "kind": "digit",
        "revision": 1,
        "label": "7" if correct else "1",
        "confidence": 0.97,
        "status": "scored",
        "correct": correct,
        "points_awarded": 1 if correct else 0,
        "points_possible": 1,
        "box_mm": [20.0, 30.0, 15.0, 10.0],
        "strokes": [{"t0_ms": 0, "points": [[22.0, 31.5, 0, 0.4], [27.5, 31.0, 40, 0.6]]}],
    }


def ingest_latency_ms() -> dict[str, float]:
    """Ingest of a class's answers on SQLite with the tracing observer, message by message."""
    with tempfile.TemporaryDirectory() as folder:
        engine = make_engine(f"sqlite:///{Path(folder) / 'central.db'}")
        create_schema(engine)
        sessions = make_session_factory(engine)
        with sessions.begin() as session:
            import_catalogue(
                session,
                skills=[SkillSpec(f"k{i}", f"Skill {i}") for i in range(10)],
                items=[ItemTag("bench-exam", f"q{i}", f"k{i % 10}") for i in range(INGEST_ANSWERS)]
                + [ItemTag("bench-exam", f"q{i}", f"k{(i + 3) % 10}") for i in range(0, 300, 4)],
            )
        ingestor = Ingestor(sessions)
        updater = MasteryUpdater(sessions)
        tracing_s: list[float] = []

        def timed(doc: dict[str, Any]) -> None:
            started = time.perf_counter()
            updater(doc)
            tracing_s.append(time.perf_counter() - started)

        ingestor.observers.append(timed)
        total_s = []
        at = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
        for seq in range(1, INGEST_ANSWERS + 1):
            at += timedelta(seconds=5)
            doc = _answer(seq, f"s{seq % 30}", f"q{seq - 1}", seq % 3 > 0, at)
            started = time.perf_counter()
            outcome = ingestor.handle("classink/v1/bench/gw-1/answers", json.dumps(doc).encode())
            total_s.append(time.perf_counter() - started)
            if outcome.kind != OutcomeKind.STORED:
                raise RuntimeError(f"bench answer not stored: {outcome}")
        engine.dispose()
    if updater.updates + updater.replays != INGEST_ANSWERS:
        raise RuntimeError("not every bench answer updated mastery")

    def summary(values: list[float]) -> dict[str, float]:
        ordered = sorted(values)
        return {
            "median": round(1000 * statistics.median(ordered), 2),
            "p99": round(1000 * ordered[int(0.99 * (len(ordered) - 1))], 2),
        }

    return {"ingest_ms": summary(total_s), "mastery_update_ms": summary(tracing_s)}


def main() -> None:
    folder = data_dir() / "knowledge_tracing"
    result: dict[str, object] = {}
    best: dict[str, dict[str, object]] = {}
    fits_ok = True
    with threadpool_limits(limits=1):
        for split, target in SPLITS.items():
            train, test = load_split(
                folder / f"{split}_train.csv.gz", folder / f"{split}_test.csv.gz"
            )
            per_model = {}
            for model in MODELS:
                evaluation = evaluate_answers(train, test, model)
                per_model[model] = {
                    "auc": round(evaluation.auc or 0.0, 4),
                    "rmse": round(evaluation.rmse, 4),
                    "fit_seconds": round(evaluation.fit_seconds, 2),
                }
                fits_ok &= evaluation.fit_seconds <= FIT_SECONDS_TARGET
                print(
                    f"{split:>12} {model:>9}: AUC {evaluation.auc:.4f}"
                    f"  RMSE {evaluation.rmse:.4f}  fit {evaluation.fit_seconds:.2f} s"
                    f"  predict {evaluation.predict_seconds:.2f} s",
                    flush=True,
                )
            result[split] = per_model
            name, figures = max(per_model.items(), key=lambda item: item[1]["auc"])
            best[split] = {"model": name, "auc": figures["auc"], "target": target}
        update_us = update_cost_us(
            folder / "assist2009_train.csv.gz", folder / "assist2009_test.csv.gz"
        )
    print(f"{'online update':>22}: {update_us:.1f} µs per answer")
    latency = ingest_latency_ms()
    print(
        f"{'ingest to mastery':>22}: median {latency['ingest_ms']['median']} ms, "
        f"p99 {latency['ingest_ms']['p99']} ms (tracing part: median "
        f"{latency['mastery_update_ms']['median']} ms) on SQLite"
    )
    result["best"] = best
    result["update_us"] = round(update_us, 2)
    result.update(latency)
    result["targets_met"] = {
        "auc": all(b["auc"] >= b["target"] for b in best.values()),
        "fit_seconds": fits_ok,
        "update_us": update_us <= UPDATE_US_TARGET,
        "mastery_within_1s": latency["ingest_ms"]["p99"] <= INGEST_MS_TARGET,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
