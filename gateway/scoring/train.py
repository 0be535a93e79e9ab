"""Train the answer recognisers and measure them on writers that training never saw.

    python -m gateway.scoring.train [--out DIR] [--data DIR]      (or: classink scoring train)

For each field (digit, choice, mark) this
1. reads the training writers' samples (those for which `is_eval_writer` is False) from the shared
   data sets the terms allow training on: pendigits (train file), UJIpenchars v1, $1 and $N;
   choice also learns UJI's lowercase a-d as A-D, because students write them in choice boxes
   (before, a "d" was read as A with confidence 1.0) and because its cross-validation then holds
   mistakes to fit the temperature on (with capitals alone every out-of-fold answer was right);
2. adds randomly distorted copies of them (seeded), because some classes have only a few dozen
   real samples, and for capitals A-D, of which the allowed sets hold 16 per letter, synthetic
   writings from `gateway.scoring.synthetic` in every ordinary way of writing them, and for
   digits, pairs of one writer's digits written into each other (`touching_pairs`), learnt as a
   class of their own that is never an answer (`recognizer.NOT_ONE_CHARACTER`);
3. fits a logistic regression (digit, mark) or a one-hidden-layer perceptron (choice: 128 ReLU
   units, chosen over logistic regression by the out-of-fold log-loss of step 4) on standardised
   features (scikit-learn, training only) and exports it as numpy arrays;
4. calibrates its confidence with one temperature fitted on out-of-fold predictions of a grouped
   cross-validation over the training writers (each writer's samples stay in one fold; synthetic
   samples belong to no writer and are in the training part of every fold);
5. evaluates the exported model on the held-out writers only, including UNIPEN, which is used for
   evaluation and never for training (its terms); lowercase a-d are reported apart from A-D.
Everything is seeded and the folds depend only on writer ids, so the figures are reproducible.
It takes about 70 s of CPU (about 2 minutes on this shared 2-core machine), most of it the
perceptron's five folds. `writer_cross_validation` (used by bench.scoring, not by training)
cross-validates a field's recipe over every writer of one allowed set.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from scipy.optimize import minimize_scalar

from classink.shared_data import is_eval_writer, read_jsonl
from gateway.scoring.cli import add_train_arguments
from gateway.scoring.features import as_strokes, features
from gateway.scoring.recognizer import (
    FIELDS,
    MODELS_DIR,
    NOT_ONE_CHARACTER,
    FieldModel,
    Recognizer,
    softmax,
)
from gateway.scoring.synthetic import letters
from gateway.scoring.touching import side_by_side

SEED = 20250101
FOLDS = 5
REVIEW_THRESHOLD = 0.6
ECE_BINS = 10
# The temperature may soften or sharpen the model, but only within reason: when the out-of-fold
# predictions are all right (tick vs cross is), the likelihood keeps rewarding sharper
# probabilities, which would claim more certainty than a few hundred samples can show.
TEMPERATURE_BOUNDS = (0.5, 5.0)
LATENCY_SAMPLES = 300
# Gaps, in digit heights from one digit's bounding box to the next, of the touching pairs the
# digit model learns as NOT_ONE_CHARACTER: from overlapping by a quarter to a tenth apart. Pairs
# that close mostly overlap or come within segment.TOUCH (0.15 of the height, ink to ink), so the
# reader groups them as one character (83 % of such pairs of 8 mm pendigits digits); pairs it
# keeps apart never reach the model together.
TOUCHING_GAP = (-0.25, 0.1)

DIGITS = {d: d for d in "0123456789"}
LETTERS = {c: c for c in "ABCD"}
# A student who answers "b" means B: lowercase a-d in a choice box are read as A-D.
LOWERCASE = {c.lower(): c for c in "ABCD"}


@dataclass(frozen=True)
class Source:
    """One shared file, which of its labels a field uses, and what they mean for that field."""

    file: str
    labels: dict[str, str]
    # UNIPEN is evaluation-only and reported apart: it is a different population of writers and
    # devices, the best available stand-in for unseen classrooms.
    extra: bool = False
    # Another written form of the field's answers (lowercase a-d for A-D), reported apart under
    # this name so that the field's own figure keeps meaning what the targets mean.
    form: str = ""

    @property
    def name(self) -> str:
        stem = self.file.removesuffix(".jsonl.gz")
        return f"{stem}_{self.form}" if self.form else stem

    @property
    def pooled(self) -> bool:
        """Part of the field's main held-out figure, rather than reported apart."""
        return not self.extra and not self.form


@dataclass(frozen=True)
class FieldSpec:
    labels: tuple[str, ...]
    train: tuple[Source, ...]
    eval: tuple[Source, ...]
    # Distorted copies per training sample (at least 1); choice has 16 real samples per letter,
    # digit about 780 per digit.
    copies: int
    # Inverse L2 strength of the logistic regression (used when `hidden` is 0).
    c: float
    # Hidden ReLU units of a one-layer perceptron instead of the logistic regression, and its L2
    # strength; chosen on the writer-grouped folds of the training writers (log-loss), not UNIPEN.
    hidden: int = 0
    alpha: float = 0.1
    # Synthetic writings per label (gateway.scoring.synthetic), for letters only.
    synthetic_per_label: int = 0
    # Pairs of one training writer's digits written into each other, learnt as NOT_ONE_CHARACTER
    # (touching_pairs below); trialled on numbers of pendigits training writers kept out of
    # training: touching numbers read right 71.9 -> 84.7 %, stored wrong unreviewed 9.7 -> 3.1 %.
    touching_pairs: int = 0

    @property
    def learnt(self) -> tuple[str, ...]:
        """The model's classes: the labels, then NOT_ONE_CHARACTER if it learns touching pairs."""
        return self.labels + ((NOT_ONE_CHARACTER,) if self.touching_pairs else ())


SPECS: dict[str, FieldSpec] = {
    "digit": FieldSpec(
        labels=tuple(DIGITS),
        train=(
            Source("pendigits_train.jsonl.gz", DIGITS),
            Source("ujipenchars_v1.jsonl.gz", DIGITS),
        ),
        eval=(
            Source("pendigits_test.jsonl.gz", DIGITS),
            Source("ujipenchars_v1.jsonl.gz", DIGITS),
            Source("unipen_1a_digits.jsonl.gz", DIGITS, extra=True),
        ),
        copies=2,
        c=0.1,
        touching_pairs=4000,
    ),
    "choice": FieldSpec(
        labels=tuple(LETTERS),
        train=(
            Source("ujipenchars_v1.jsonl.gz", LETTERS),
            Source("ujipenchars_v1.jsonl.gz", LOWERCASE, form="lowercase"),
        ),
        eval=(
            Source("ujipenchars_v1.jsonl.gz", LETTERS),
            Source("ujipenchars_v1.jsonl.gz", LOWERCASE, form="lowercase"),
            Source("unipen_1b_upper.jsonl.gz", LETTERS, extra=True),
        ),
        copies=30,
        c=0.1,
        hidden=128,
        alpha=0.1,
        synthetic_per_label=1000,
    ),
    "mark": FieldSpec(
        labels=("tick", "cross"),
        train=(
            Source("dollar1_gestures.jsonl.gz", {"check": "tick", "x": "cross"}),
            Source("ndollar_mmg.jsonl.gz", {"X": "cross"}),
        ),
        eval=(
            Source("dollar1_gestures.jsonl.gz", {"check": "tick", "x": "cross"}),
            Source("ndollar_mmg.jsonl.gz", {"X": "cross"}),
        ),
        copies=3,
        c=0.1,
    ),
}


@dataclass(frozen=True)
class Sample:
    strokes: list[np.ndarray]
    label: str
    dataset: str
    writer: str

    @property
    def group(self) -> str:
        return f"{self.dataset}:{self.writer}"


class SharedFiles:
    """Reads each shared file once per run; rows are kept only for the labels some field uses."""

    def __init__(self) -> None:
        self._rows: dict[str, list[dict]] = {}

    def samples(self, source: Source, held_out: bool) -> list[Sample]:
        if source.file not in self._rows:
            wanted = {
                label
                for spec in SPECS.values()
                for s in spec.train + spec.eval
                if s.file == source.file
                for label in s.labels
            }
            self._rows[source.file] = [
                row for row in read_jsonl(f"handwriting/{source.file}") if row["label"] in wanted
            ]
        return [
            Sample(
                as_strokes(row["strokes"]), source.labels[row["label"]], row["set"], row["writer"]
            )
            for row in self._rows[source.file]
            if row["label"] in source.labels
            and is_eval_writer(row["set"], row["writer"]) == held_out
        ]


def augment(strokes: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """A plausible other writing of the same answer: small rotation, slant, stretch and jitter.

    Strokes of a multi-stroke answer also move a little relative to each other, as a crossbar
    does between writers.
    """
    points = np.concatenate(strokes)
    centre = (points.min(axis=0) + points.max(axis=0)) / 2
    size = max(float(np.ptp(points, axis=0).max()), 1e-9)
    angle = rng.uniform(-0.15, 0.15)
    slant = rng.uniform(-0.3, 0.3)
    stretch = np.exp(rng.uniform(-0.15, 0.15, size=2))
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    transform = rotation @ np.array([[1.0, slant], [0.0, 1.0]]) @ np.diag(stretch)
    out = []
    for stroke in strokes:
        shift = rng.normal(0.0, 0.03, size=2) * size if len(strokes) > 1 else 0.0
        jitter = rng.normal(0.0, 0.008, size=stroke.shape) * size
        out.append((stroke - centre) @ transform.T + shift + jitter)
    return out


def feature_matrix(answers: list[list[np.ndarray]]) -> np.ndarray:
    return np.array([features(strokes) for strokes in answers])


def fit_model(x: np.ndarray, y: np.ndarray, spec: FieldSpec) -> FieldModel:
    """The field's classifier on standardised features, exported as arrays (temperature 1)."""
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    # Constant features (a grid cell no stroke reaches) carry no information; avoid dividing by 0.
    scale[scale < 1e-9] = 1.0
    if spec.hidden:
        return fit_perceptron(x, y, spec, mean, scale)
    return fit_linear(x, y, spec.learnt, spec.c, mean, scale)


def fit_perceptron(
    x: np.ndarray, y: np.ndarray, spec: FieldSpec, mean: np.ndarray, scale: np.ndarray
) -> FieldModel:
    """One hidden ReLU layer (scikit-learn's MLPClassifier, seeded), exported as arrays."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    clf = MLPClassifier(
        hidden_layer_sizes=(spec.hidden,), alpha=spec.alpha, max_iter=300, random_state=SEED
    )
    with warnings.catch_warnings():
        # A fixed number of epochs is the stopping rule; not reaching sklearn's tolerance is fine.
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit((x - mean) / scale, y)
    hidden_weights, weights = clf.coefs_
    hidden_bias, bias = clf.intercepts_
    if len(spec.learnt) == 2:
        # A binary perceptron has one output score for class 1, as for the logistic regression.
        weights = np.concatenate([np.zeros_like(weights), weights], axis=1)
        bias = np.array([0.0, bias[0]])
    return FieldModel(spec.learnt, mean, scale, weights, bias, 1.0, hidden_weights, hidden_bias)


def fit_linear(
    x: np.ndarray,
    y: np.ndarray,
    labels: tuple[str, ...],
    c: float,
    mean: np.ndarray,
    scale: np.ndarray,
) -> FieldModel:
    """Logistic regression on standardised features, exported as arrays (temperature 1)."""
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=c, max_iter=5000)
    clf.fit((x - mean) / scale, y)
    if len(labels) == 2:
        # Binary logistic regression has one score for class 1; as two logits [0, z] the softmax
        # gives the same probabilities and inference stays one code path.
        weights = np.stack([np.zeros(x.shape[1]), clf.coef_[0]], axis=1)
        bias = np.array([0.0, clf.intercept_[0]])
    else:
        order = [list(clf.classes_).index(i) for i in range(len(labels))]
        weights = clf.coef_[order].T
        bias = clf.intercept_[order]
    return FieldModel(labels, mean, scale, weights, bias, temperature=1.0)


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature minimising the negative log-likelihood of out-of-fold predictions."""

    def nll(log_t: float) -> float:
        z = logits / np.exp(log_t)
        z = z - z.max(axis=1, keepdims=True)
        return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(y)), y]))

    lo, hi = np.log(TEMPERATURE_BOUNDS)
    result = minimize_scalar(nll, bounds=(lo, hi), method="bounded", options={"xatol": 1e-6})
    return float(np.exp(result.x))


def calibration_metrics(p: np.ndarray, y: np.ndarray) -> dict:
    """Accuracy, expected calibration error, and what a confidence threshold for review does."""
    pred = p.argmax(axis=1)
    conf = p.max(axis=1)
    correct = pred == y
    bins = np.minimum((conf * ECE_BINS).astype(int), ECE_BINS - 1)
    ece = sum(
        abs(correct[bins == b].mean() - conf[bins == b].mean()) * (bins == b).mean()
        for b in range(ECE_BINS)
        if (bins == b).any()
    )
    auto = conf >= REVIEW_THRESHOLD
    return {
        "n": int(len(y)),
        "accuracy": round(float(correct.mean()), 4),
        "ece": round(float(ece), 4),
        "review": {
            "threshold": REVIEW_THRESHOLD,
            # Share of answers scored automatically, how often those are right, and how many of
            # all answers end up wrongly scored without a human looking.
            "coverage": round(float(auto.mean()), 4),
            "accuracy_of_accepted": round(float(correct[auto].mean()), 4) if auto.any() else None,
            "wrong_and_accepted": round(float((auto & ~correct).mean()), 4),
        },
    }


def writer_folds(groups: list[str]) -> dict[str, int]:
    """Assign whole writers to folds, in an order fixed by the seed and the writer ids alone."""
    unique = sorted(set(groups))
    np.random.default_rng(SEED).shuffle(unique)
    return {g: i % FOLDS for i, g in enumerate(unique)}


@dataclass(frozen=True)
class TrainingSet:
    """A field's real samples (`x`, `y`, and each one's writer fold) and the rows added to them:
    distorted copies of them, samples of other sets, synthetic writings and touching pairs.
    An added row's fold is that of the writer it was made from; -1 (other sets' and synthetic
    rows) is never held out."""

    x: np.ndarray
    y: np.ndarray
    fold: np.ndarray
    x_added: np.ndarray
    y_added: np.ndarray
    fold_added: np.ndarray

    def without_fold(self, k: int | None) -> tuple[np.ndarray, np.ndarray]:
        """Features and labels of every row whose writer is not in fold `k` (all rows for None)."""
        if k is None:
            return np.concatenate([self.x, self.x_added]), np.concatenate([self.y, self.y_added])
        real, added = self.fold != k, self.fold_added != k
        return (
            np.concatenate([self.x[real], self.x_added[added]]),
            np.concatenate([self.y[real], self.y_added[added]]),
        )


def training_set(
    spec: FieldSpec,
    samples: list[Sample],
    fold_of: dict[str, int],
    rng: np.random.Generator,
    log: Callable[[str], None],
    fixed: Sequence[Sample] = (),
) -> TrainingSet:
    """What `spec`'s recipe trains on, given its real `samples` dealt into folds by `fold_of`
    (writer group -> fold); `fixed` samples (of other sets) train every fold and test none."""
    index = {label: i for i, label in enumerate(spec.labels)}
    x = feature_matrix([s.strokes for s in samples])
    y = np.array([index[s.label] for s in samples])
    fold = np.array([fold_of[s.group] for s in samples])
    xs = [feature_matrix([augment(s.strokes, rng) for s in samples]) for _ in range(spec.copies)]
    ys, folds = [np.tile(y, spec.copies)], [np.tile(fold, spec.copies)]
    log(f"{len(samples) * spec.copies} distorted copies added")
    if fixed:
        xs.append(feature_matrix([s.strokes for s in fixed]))
        ys.append(np.array([index[s.label] for s in fixed]))
        folds.append(np.full(len(fixed), -1))
    if spec.synthetic_per_label:
        answers, labels = letters(spec.labels, spec.synthetic_per_label, rng)
        xs.append(feature_matrix([augment(a, rng) for a in answers]))
        ys.append(np.array([index[label] for label in labels]))
        folds.append(np.full(len(answers), -1))
        log(f"{len(answers)} synthetic writings added")
    if spec.touching_pairs:
        pairs, pair_folds = touching_pairs(samples, spec.touching_pairs, rng, fold_of)
        xs.append(feature_matrix(pairs))
        ys.append(np.full(len(pairs), len(spec.labels)))
        folds.append(pair_folds)
        log(f"{len(pairs)} touching pairs added as {NOT_ONE_CHARACTER}")
    return TrainingSet(x, y, fold, np.concatenate(xs), np.concatenate(ys), np.concatenate(folds))


def train_field(field: str, files: SharedFiles, out: Path, log: Callable[[str], None]) -> dict:
    """Fit, calibrate and save one field's model; returns its training figures."""
    spec = SPECS[field]
    train = [s for src in spec.train for s in files.samples(src, held_out=False)]
    log(f"{field}: {len(train)} training samples from {len({s.group for s in train})} writers")
    rng = np.random.default_rng([SEED, FIELDS.index(field)])
    data = training_set(
        spec, train, writer_folds([s.group for s in train]), rng, lambda m: log(f"{field}: {m}")
    )

    oof = np.zeros((len(train), len(spec.learnt)))
    for k in range(FOLDS):
        model = fit_model(*data.without_fold(k), spec)
        oof[data.fold == k] = model.logits(data.x[data.fold == k])
        log(f"{field}: fold {k + 1}/{FOLDS} done")
    temperature = fit_temperature(oof, data.y)
    log(f"{field}: temperature {temperature:.3f}")

    final = fit_model(*data.without_fold(None), spec)
    replace(final, temperature=temperature).save(out / f"{field}.npz")

    writers: dict[str, set[str]] = {}
    for s in train:
        writers.setdefault(s.dataset, set()).add(s.writer)
    return {
        "labels": list(spec.labels),
        "train_sets": [src.name for src in spec.train],
        "train_samples": len(train),
        "train_writer_count": sum(len(w) for w in writers.values()),
        "train_writers": {dataset: sorted(w) for dataset, w in writers.items()},
        "augmented_copies_per_sample": spec.copies,
        "synthetic_per_label": spec.synthetic_per_label,
        "touching_pairs": spec.touching_pairs,
        "model": (
            {"kind": "perceptron", "hidden_units": spec.hidden, "alpha": spec.alpha}
            if spec.hidden
            else {"kind": "logistic_regression", "c": spec.c}
        ),
        "temperature": round(temperature, 4),
        "cross_validation": {
            "folds": FOLDS,
            "before_temperature": calibration_metrics(softmax(oof)[:, : len(spec.labels)], data.y),
            "after_temperature": calibration_metrics(
                softmax(oof / temperature)[:, : len(spec.labels)], data.y
            ),
        },
    }


def touching_pairs(
    train: list[Sample], n: int, rng: np.random.Generator, folds: dict[str, int]
) -> tuple[list[list[np.ndarray]], np.ndarray]:
    """`n` pairs of digits written into each other, each by one training writer, and the fold of
    that writer (so a cross-validation fold never learns pairs made of its test writers' digits)."""
    by_writer: dict[str, dict[str, list[Sample]]] = {}
    for s in train:
        by_writer.setdefault(s.group, {}).setdefault(s.label, []).append(s)
    writers = sorted(by_writer)
    pairs, fold = [], []
    for _ in range(n):
        writer = writers[rng.integers(len(writers))]
        digits = by_writer[writer]
        labels = sorted(digits)
        chosen = []
        for _ in range(2):
            samples = digits[labels[rng.integers(len(labels))]]
            chosen.append(samples[rng.integers(len(samples))].strokes)
        pairs.append(side_by_side(chosen, 1.0, [rng.uniform(*TOUCHING_GAP), 0.0]))
        fold.append(folds[writer])
    return pairs, np.array(fold)


def writer_cross_validation(
    field: str, file: str, folds: int, files: SharedFiles | None = None
) -> dict:
    """Accuracy of the field's training recipe on every writer of one allowed set, each writer
    predicted by a model trained without any of its samples.

    The writers of `file` (held-out ones included) are dealt into `folds` groups; each group's real
    samples are predicted by a model fitted by `train_field`'s recipe (`training_set`) on the other
    writers of that file, plus the field's other training sets' training writers. This is a figure
    about the method, over more writers than the few held out of the shipped model; the shipped
    model itself is `train_field`'s. The figures are those of the field's own labels as written
    (capitals A-D); another written form in the same file that the field trains on (lowercase
    a-d) is reported apart, under the form's name.
    """
    spec = SPECS[field]
    files = files or SharedFiles()
    sources = [s for s in spec.train if s.file == file]
    per_source = [
        files.samples(src, held_out=False) + files.samples(src, held_out=True) for src in sources
    ]
    pool = [s for samples in per_source for s in samples]
    source_of = np.concatenate([np.full(len(ss), k) for k, ss in enumerate(per_source)])
    others = [
        s for src in spec.train if src.file != file for s in files.samples(src, held_out=False)
    ]
    writers = sorted({s.group for s in pool})
    order = np.random.default_rng(SEED).permutation(len(writers))
    fold_of = {writers[w]: k % folds for k, w in enumerate(order)}
    rng = np.random.default_rng([SEED, FIELDS.index(field), folds])
    data = training_set(spec, pool, fold_of, rng, lambda _: None, fixed=others)
    p = np.zeros((len(pool), len(spec.labels)))
    for k in range(folds):
        held = data.fold == k
        p[held] = fit_model(*data.without_fold(k), spec).answer_probabilities(data.x[held])
    out = {"writers": len(writers), "folds": folds}
    for k, src in enumerate(sources):
        figures = calibration_metrics(p[source_of == k], data.y[source_of == k])
        if src.form:
            out[src.form] = figures
        else:
            out.update(figures)
    return out


def evaluate_field(field: str, files: SharedFiles, out: Path, log: Callable[[str], None]) -> dict:
    """Figures of the saved model (as shipped, float32) on held-out writers only."""
    spec = SPECS[field]
    index = {label: i for i, label in enumerate(spec.labels)}
    model = FieldModel.load(out / f"{field}.npz")
    per_set: dict[str, dict] = {}
    writers: dict[str, list[str]] = {}
    primary_p, primary_y = [], []
    for src in spec.eval:
        samples = files.samples(src, held_out=True)
        y = np.array([index[s.label] for s in samples])
        p = model.answer_probabilities(feature_matrix([s.strokes for s in samples]))
        writers[src.name] = sorted({s.writer for s in samples})
        per_set[src.name] = {
            **calibration_metrics(p, y),
            "writers": len(writers[src.name]),
            "extra": src.extra,
            "form": src.form,
        }
        if src.pooled:
            primary_p.append(p)
            primary_y.append(y)
        log(f"{field}: {src.name}: accuracy {per_set[src.name]['accuracy']} on {len(y)} samples")
    return {
        # Pooled over the held-out writers of the sets the terms let us train on; UNIPEN and other
        # written forms apart.
        "eval": calibration_metrics(np.concatenate(primary_p), np.concatenate(primary_y)),
        "eval_sets": per_set,
        "eval_writers": writers,
    }


def measure_latency(out: Path, files: SharedFiles) -> dict:
    """Milliseconds per single-answer `predict` call (features + model), as the gateway calls it."""
    recognizer = Recognizer.read(out)
    samples = files.samples(SPECS["digit"].eval[0], held_out=True)[:LATENCY_SAMPLES]
    times = []
    for s in samples:
        start = time.perf_counter()
        recognizer.predict("digit", s.strokes)
        times.append((time.perf_counter() - start) * 1e3)
    return {
        "median_ms": round(float(np.median(times)), 3),
        "p99_ms": round(float(np.percentile(times, 99)), 3),
        "samples": len(times),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
    }


def train(
    out: Path = MODELS_DIR,
    command: str = "classink scoring train",
    log: Callable[[str], None] | None = None,
) -> dict:
    """Train every field into `out` and write `report.json`; returns the report."""
    started = time.perf_counter()
    log = log or (
        lambda message: print(
            f"[{time.perf_counter() - started:5.1f} s] {message}", file=sys.stderr, flush=True
        )
    )
    out.mkdir(parents=True, exist_ok=True)
    files = SharedFiles()
    import sklearn
    from threadpoolctl import threadpool_limits

    fields = {}
    # One BLAS thread: faster for these small matrices than threads competing for 2 cores, and
    # the floating-point sums then do not depend on how many cores the machine has.
    with threadpool_limits(limits=1):
        for field in FIELDS:
            fields[field] = {
                **train_field(field, files, out, log),
                **evaluate_field(field, files, out, log),
            }

    report = {
        "command": command,
        "seed": SEED,
        "terms": "trained on pendigits (train file), UJIpenchars v1, $1 and $N only; "
        "UNIPEN is evaluation-only; train and eval writers split by classink.shared_data",
        "versions": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "scikit-learn": sklearn.__version__,
        },
        "fields": fields,
        "latency": measure_latency(out, files),
        "training_seconds": round(time.perf_counter() - started, 1),
    }
    (out / "report.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    log(f"wrote models and report.json to {out} in {report['training_seconds']} s")
    return report


def summary_line(report: dict) -> str:
    """The per-field writer-independent figures, as one JSON object."""
    return json.dumps(
        {
            field: {
                "accuracy": r["eval"]["accuracy"],
                "ece": r["eval"]["ece"],
                "n": r["eval"]["n"],
                f"coverage_at_{REVIEW_THRESHOLD}": r["eval"]["review"]["coverage"],
                "accuracy_of_accepted": r["eval"]["review"]["accuracy_of_accepted"],
                **{
                    f"{name}_accuracy": m["accuracy"]
                    for name, m in r["eval_sets"].items()
                    if m["extra"] or m["form"]
                },
            }
            for field, r in report["fields"].items()
        }
    )


def run(args: argparse.Namespace) -> int:
    if args.data is not None:
        # The one documented way to point classink.shared_data elsewhere, for this process.
        os.environ["CLASSINK_SHARED_DATA"] = str(args.data)
    command = "classink scoring train"
    if args.out is not None:
        command += f" --out {args.out}"
    if args.data is not None:
        command += f" --data {args.data}"
    report = train(args.out or MODELS_DIR, command)
    print(summary_line(report), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway.scoring.train", description=__doc__)
    add_train_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
