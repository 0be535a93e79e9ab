"""Answer recognition on one core: accuracy on unseen writers, time per character and per page.

python -m bench.scoring  prints a few lines and, last, one JSON object with the numbers.

- `<field>_accuracy`: the shipped models on the held-out writers of the sets the terms let us train
  on (pendigits test file, UJIpenchars v1, $1, $N), the figure report.json calls `eval`;
  `<field>_accuracy_unipen` on UNIPEN, a larger and harder population of writers and devices that
  no model has seen. `*_n` are the sample counts behind each figure.
- `ms_per_char`: one `Recognizer.predict` call (features + model) on a held-out digit, the way the
  gateway calls it, averaged over every held-out pendigits digit.
- `ms_per_page`: a 40-question page (16 digits, 16 choices, 8 ticks or crosses written by held-out
  writers into their boxes, in mm): every stroke located in its box, gathered into answers,
  read (`gateway.scoring.read`: blank, scribble and two-answer checks, then the recogniser) and
  scored, as `gateway.pipeline` does before the outbox. Median of many pages.
- Both times are CPU time of the scoring thread, which is what one core spends and does not grow
  when other programs share the machine; `ms_per_char_wall` and `ms_per_page_wall` are the wall
  times beside them, and `load_average` the 1-minute load when they were taken.
- `number_accuracy`: 2- and 3-digit numbers, each written by one held-out pendigits writer with
  the digits apart by 0.15-0.5 of their height, read by a `number` region (split into digits,
  each recognised); `number_review_share` is the share sent to review (confidence below the
  gateway's configured `review_below` or a splitting check), `number_accuracy_of_scored` the
  accuracy of the rest. `touching_number_*`: the same with the digits touching or overlapping
  (-0.2 to +0.05 of their height apart), which `gateway.scoring.split` has to cut apart.
- `choice_accuracy_unipen_all`: UNIPEN A-D of every writer (no model trains on UNIPEN, so all
  are unseen; `choice_accuracy_unipen` keeps to the writers `is_eval_writer` holds out, as the
  other figures do). `choice_accuracy_unipen*_letters` leave out the `choice_not_a_letter_*`
  samples that are a single straight stroke (UNIPEN holds such fragments labelled as letters),
  which the reader sends to review as `not_a_letter` instead of reading them.
- `choice_accuracy_uji_cv`: the A-D training recipe cross-validated over all UJIpenchars writers
  (`gateway.scoring.train.writer_cross_validation`, 4 folds by writer, each fold's model never saw
  its test writers), a figure about the method over all 11 writers of the one allowed set with
  real capitals, beside UNIPEN's.
- `choice_accuracy_lowercase`, `choice_accuracy_lowercase_uji_cv`: lowercase a-d, which a choice
  box reads as A-D, on UJI's held-out writers and in the same cross-validation; they are kept out
  of the A-D figures above, which are about capitals as the targets are.
- `<field>_ece`, `<field>_review_share`: expected calibration error (10 equal-width confidence
  bins) of the confidence on the held-out writers of the allowed sets (`_unipen` on UNIPEN), and
  the share of answers whose confidence is below the gateway's configured `review_below`, which
  are sent to review instead of being scored; `number_ece` for the product confidence of numbers.

The process is pinned to one CPU and numpy's BLAS to one thread before numpy is imported: the
target machine is a Raspberry-Pi-class CPU, where one core is what scoring gets.
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

import json  # noqa: E402
import random  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from classink.shared_data import is_eval_writer, read_jsonl  # noqa: E402
from gateway.answers import AnswerAssembler  # noqa: E402
from gateway.scoring.features import as_strokes  # noqa: E402
from gateway.scoring.read import read_region  # noqa: E402
from gateway.scoring.recognizer import Recognizer  # noqa: E402
from gateway.scoring.score import score  # noqa: E402
from gateway.scoring.segment import straight_line  # noqa: E402
from gateway.scoring.touching import side_by_side  # noqa: E402
from gateway.scoring.train import ECE_BINS, SPECS, Source, writer_cross_validation  # noqa: E402
from gateway.settings import GatewaySettings  # noqa: E402
from gateway.strokes import Stroke  # noqa: E402
from gateway.templates import ExamTemplate, Region  # noqa: E402
from hardware_sim.handwriting import Sample, held_out_pool  # noqa: E402
from hardware_sim.pen import place_in_box  # noqa: E402

PAGES = 60
NUMBERS = 1000
PAGE_KINDS = ["digit"] * 16 + ["choice"] * 16 + ["mark"] * 8
REVIEW_BELOW = float(GatewaySettings.model_fields["review_below"].default)
UJI_FOLDS = 4


def samples(
    file: str, labels: dict[str, str], every_writer: bool = False
) -> tuple[list[list[np.ndarray]], list[str]]:
    """A file's answers with the given labels, of its held-out writers (or of every writer)."""
    answers, truth = [], []
    for row in read_jsonl(f"handwriting/{file}"):
        if row["label"] in labels and (every_writer or is_eval_writer(row["set"], row["writer"])):
            answers.append(as_strokes(row["strokes"]))
            truth.append(labels[row["label"]])
    return answers, truth


def held_out(file: str, labels: dict[str, str]) -> tuple[list[list[np.ndarray]], list[str]]:
    return samples(file, labels)


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray) -> float:
    bins = np.minimum((confidence * ECE_BINS).astype(int), ECE_BINS - 1)
    return float(
        sum(
            abs(correct[bins == b].mean() - confidence[bins == b].mean()) * (bins == b).mean()
            for b in range(ECE_BINS)
            if (bins == b).any()
        )
    )


def calibration(name: str, confidence: list[float], correct: list[bool]) -> dict[str, float]:
    conf, right = np.array(confidence), np.array(correct, dtype=bool)
    return {
        name.replace("accuracy", "ece"): round(expected_calibration_error(conf, right), 4),
        name.replace("accuracy", "review_share"): round(float((conf < REVIEW_BELOW).mean()), 4),
    }


def accuracy(recognizer: Recognizer) -> dict[str, float | int]:
    out: dict[str, float | int] = {}
    for field, spec in SPECS.items():
        groups: dict[str, list[Source]] = {}
        for src in spec.eval:
            suffix = "_unipen" if src.extra else f"_{src.form}" if src.form else ""
            groups.setdefault(suffix, []).append(src)
        for suffix, sources in groups.items():
            confidence: list[float] = []
            correct: list[bool] = []
            for src in sources:
                answers, truth = held_out(src.file, src.labels)
                for a, t in zip(answers, truth, strict=True):
                    prediction = recognizer.predict(field, a)
                    confidence.append(prediction.confidence)
                    correct.append(prediction.label == t)
            if correct:
                name = f"{field}_accuracy{suffix}"
                out[name] = round(float(np.mean(correct)), 4)
                out[name.replace("accuracy", "n")] = len(correct)
                out.update(calibration(name, confidence, correct))
    (unipen,) = [src for src in SPECS["choice"].eval if src.extra]
    for every_writer, suffix in ((False, "unipen"), (True, "unipen_all")):
        answers, truth = samples(unipen.file, unipen.labels, every_writer=every_writer)
        right = np.array(
            [
                recognizer.predict("choice", a).label == t
                for a, t in zip(answers, truth, strict=True)
            ]
        )
        line = np.array([straight_line(a) for a in answers])
        if every_writer:
            out["choice_accuracy_unipen_all"] = round(float(right.mean()), 4)
            out["choice_n_unipen_all"] = len(right)
        # A straight line is no letter: the reader sends it to review (`not_a_letter`).
        out[f"choice_accuracy_{suffix}_letters"] = round(float(right[~line].mean()), 4)
        out[f"choice_not_a_letter_{suffix}"] = int(line.sum())
    return out


def uji_cross_validation() -> dict[str, float | int]:
    uji = next(src for src in SPECS["choice"].train if src.pooled)
    result = writer_cross_validation("choice", uji.file, UJI_FOLDS)
    return {
        "choice_accuracy_uji_cv": result["accuracy"],
        "choice_n_uji_cv": result["n"],
        "choice_writers_uji_cv": result["writers"],
        "choice_accuracy_lowercase_uji_cv": result["lowercase"]["accuracy"],
        "choice_n_lowercase_uji_cv": result["lowercase"]["n"],
    }


def ms_per_char(recognizer: Recognizer) -> tuple[float, float]:
    """CPU and wall milliseconds per call, averaged over every held-out pendigits digit."""
    answers, _ = held_out(SPECS["digit"].eval[0].file, SPECS["digit"].eval[0].labels)
    for a in answers[:50]:
        recognizer.predict("digit", a)
    cpu, wall = time.thread_time(), time.perf_counter()
    for a in answers:
        recognizer.predict("digit", a)
    n = len(answers)
    return (time.thread_time() - cpu) * 1e3 / n, (time.perf_counter() - wall) * 1e3 / n


def page_template() -> ExamTemplate:
    answers = {"digit": "7", "choice": "B", "mark": "tick"}
    regions = [
        {
            "question_id": f"q{i + 1}",
            "kind": kind,
            "box_mm": [20 + 95 * (i % 2), 15 + 13 * (i // 2), 18, 11],
            "answer": answers[kind],
            "points": 1,
        }
        for i, kind in enumerate(PAGE_KINDS)
    ]
    return ExamTemplate.model_validate(
        {
            "schema": "classink.exam-template.v1",
            "template_id": "bench-page",
            "title": "40 questions",
            "pages": [
                {
                    "address": {"section": 3, "owner": 27, "note": 9, "page": 1},
                    "size_mm": [210, 297],
                    "regions": regions,
                }
            ],
        }
    )


def written_page(template: ExamTemplate, rng: random.Random) -> list[Stroke]:
    """One student's strokes on the page, in writing order, each as the pen reports it in mm."""
    pool = held_out_pool()
    page = template.pages[0]
    strokes = []
    for region in page.regions:
        writers = pool[region.kind]
        by_value = writers[rng.choice(sorted(writers))]
        sample: Sample = rng.choice(by_value[rng.choice(sorted(by_value))])
        for xy in place_in_box(sample, region.box_mm, rng):
            points = np.zeros((len(xy), 4))
            points[:, :2] = xy[:, :2]
            points[:, 2] = 8.0
            points[:, 3] = 400.0
            strokes.append(Stroke("bench-pen", str(page.address), 0, points))
    return strokes


def score_page(template: ExamTemplate, strokes: list[Stroke], recognizer: Recognizer) -> int:
    page = template.pages[0]
    assembler = AnswerAssembler()
    answers = []
    for s in strokes:
        region = page.locate_ink(s.points[:, :2])
        if region is not None:
            answers += assembler.add(s, template, region, 0.0)
    answers += assembler.flush()
    for answer in answers:
        reading = read_region(recognizer, answer.region, [s.points[:, :2] for s in answer.strokes])
        score(answer.region, reading, REVIEW_BELOW)
    return len(answers)


def ms_per_page(recognizer: Recognizer) -> tuple[float, float, int]:
    """Median CPU and wall milliseconds per page, and the fewest answers found on a page."""
    template = page_template()
    rng = random.Random(6)
    pages = [written_page(template, rng) for _ in range(PAGES)]
    cpu_times, wall_times, answered = [], [], []
    for strokes in pages:
        cpu, wall = time.thread_time(), time.perf_counter()
        answered.append(score_page(template, strokes, recognizer))
        cpu_times.append((time.thread_time() - cpu) * 1e3)
        wall_times.append((time.perf_counter() - wall) * 1e3)
    return float(np.median(cpu_times)), float(np.median(wall_times)), min(answered)


def number_accuracy(
    recognizer: Recognizer, gap: tuple[float, float] = (0.15, 0.5), prefix: str = "number"
) -> dict[str, float | int]:
    rng = random.Random(7)
    digits = held_out_pool()["digit"]
    writers = sorted(digits)
    region = Region.model_validate(
        {
            "question_id": "n",
            "kind": "number",
            "box_mm": [0, 0, 60, 20],
            "answer": "0",
            "points": 1,
            "digits": 3,
        }
    )
    right = reviewed = right_scored = 0
    confidence, correct = [], []
    for _ in range(NUMBERS):
        by_value = digits[rng.choice(writers)]
        value = "".join(rng.choice(sorted(by_value)) for _ in range(rng.choice((2, 3))))
        height = rng.uniform(6.0, 10.0)
        written, gaps = [], []
        for d in value:
            written.append(rng.choice(by_value[d]).strokes)
            gaps.append(rng.uniform(*gap))
        reading = read_region(recognizer, region, side_by_side(written, height, gaps))
        verdict = score(region.model_copy(update={"answer": value}), reading, REVIEW_BELOW)
        right += reading.label == value
        confidence.append(reading.confidence)
        correct.append(reading.label == value)
        if verdict.status == "review":
            reviewed += 1
        else:
            right_scored += bool(verdict.correct)
    return {
        f"{prefix}_accuracy": round(right / NUMBERS, 4),
        f"{prefix}_review_share": round(reviewed / NUMBERS, 4),
        f"{prefix}_accuracy_of_scored": round(right_scored / max(NUMBERS - reviewed, 1), 4),
        f"{prefix}_ece": round(
            expected_calibration_error(np.array(confidence), np.array(correct)), 4
        ),
        f"{prefix}_n": NUMBERS,
    }


def main() -> None:
    recognizer = Recognizer.load()
    figures = accuracy(recognizer)
    figures.update(number_accuracy(recognizer))
    figures.update(number_accuracy(recognizer, (-0.2, 0.05), "touching_number"))
    figures.update(uji_cross_validation())
    for name, value in figures.items():
        print(f"{name:>28}: {value}")
    load = os.getloadavg()[0]
    per_char, per_char_wall = ms_per_char(recognizer)
    per_page, per_page_wall, answers = ms_per_page(recognizer)
    print(f"{'ms_per_char':>28}: {per_char:.3f} CPU, {per_char_wall:.3f} wall")
    print(f"{'ms_per_page':>28}: {per_page:.2f} CPU, {per_page_wall:.2f} wall ({answers} answers)")
    print(f"{'load average':>28}: {load:.2f}")
    result = {
        **figures,
        "ms_per_char": round(per_char, 3),
        "ms_per_page": round(per_page, 2),
        "ms_per_char_wall": round(per_char_wall, 3),
        "ms_per_page_wall": round(per_page_wall, 2),
        "load_average": round(load, 2),
        "answers_per_page": answers,
        "review_below": REVIEW_BELOW,
        "cpu_cores": 1,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
