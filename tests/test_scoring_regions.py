"""Reading every kind of answer region, and the defined outcome of every kind of bad input.

Handwriting comes from held-out writers only (hardware_sim.handwriting), placed into the boxes of
protocol_specs/examples/all-kinds.exam.json in page millimetres, as the gateway sees it.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from classink.shared_data import REPO_ROOT
from gateway.scoring.bubbles import coverage
from gateway.scoring.read import Reading, read_region
from gateway.scoring.recognizer import Recognizer
from gateway.scoring.score import score
from gateway.scoring.segment import characters
from gateway.templates import load_template
from hardware_sim.handwriting import held_out_pool
from hardware_sim.pen import place_in_box

TEMPLATE = load_template(REPO_ROOT / "protocol_specs/examples/all-kinds.exam.json")
REGIONS = {r.question_id: r for r in TEMPLATE.pages[0].regions}


@pytest.fixture(scope="module")
def recognizer() -> Recognizer:
    return Recognizer.load()


def samples(kind: str, value: str) -> list:
    pool = held_out_pool()[kind]
    return [s for writer in sorted(pool) for s in pool[writer].get(value, [])]


def confident(recognizer: Recognizer, field: str, value: str, n: int) -> list[list[np.ndarray]]:
    """n held-out writings of `value` that the single-character model alone reads right with
    confidence, each 8 mm tall at the origin: so that a test of splitting tests splitting."""
    out = []
    for s in samples(field, value):
        strokes = [p[:, :2] for p in place_in_box(s, (0, 0, 100, 8 / 0.65), random.Random(0))]
        p = recognizer.predict(field, strokes)
        if p.label == value and p.confidence > 0.9:
            lo = np.concatenate(strokes).min(axis=0)
            out.append([st - lo for st in strokes])
        if len(out) == n:
            return out
    raise AssertionError(f"not {n} confident writings of {value}")


def side_by_side(
    *chars: list[np.ndarray], at: tuple[float, float] = (0.0, 0.0), gap: float = 3.0
) -> list[np.ndarray]:
    """Characters written left to right, `gap` mm apart, the first at `at`."""
    out, x = [], at[0]
    for c in chars:
        out += [s + [x, at[1]] for s in c]
        x += float(np.concatenate(c)[:, 0].max()) + gap
    return out


def zigzag(x0: float, y0: float, w: float, h: float, passes: int) -> np.ndarray:
    xs = np.linspace(x0, x0 + w, passes * 2 + 1)
    ys = np.where(np.arange(len(xs)) % 2 == 0, y0, y0 + h)
    return np.stack([xs, ys], axis=1)


def read(recognizer: Recognizer, question_id: str, strokes: list[np.ndarray]) -> Reading:
    return read_region(recognizer, REGIONS[question_id], strokes)


def test_digits_choices_and_marks_are_read(recognizer):
    rng = random.Random(3)
    digits = [(s, "7") for s in samples("digit", "7")[::7][:20]]  # many writers, not one's 20
    letters = [(s, c) for c in "ABCD" for s in samples("choice", c)]
    marks = [(s, m) for m in ("tick", "cross") for s in samples("mark", m)[::5][:10]]
    for question_id, writings in (("q1", digits), ("q3", letters), ("q5", marks)):
        box = REGIONS[question_id].box_mm
        right = sum(
            read(recognizer, question_id, place_in_box(s, box, rng)).label == value
            for s, value in writings
        )
        assert right >= 0.8 * len(writings) and len(writings) >= 20, (question_id, right)


def test_a_number_is_split_into_digits_and_its_confidence_is_the_product(recognizer):
    fours, twos = confident(recognizer, "digit", "4", 5), confident(recognizer, "digit", "2", 5)
    for four, two in zip(fours, twos, strict=True):
        strokes = side_by_side(four, two, at=(115, 70))
        assert [len(c) for c in characters(strokes)] == [len(four), len(two)]
        reading = read(recognizer, "q2", strokes)
        expected = (
            recognizer.predict("digit", four).confidence
            * recognizer.predict("digit", two).confidence
        )
        assert reading.label == "42" and reading.outcome == "read"
        assert reading.confidence == pytest.approx(expected)
        assert score(REGIONS["q2"], reading, 0.6).points_awarded == 2
    one = confident(recognizer, "digit", "1", 1)[0]
    too_long = read(recognizer, "q2", side_by_side(fours[0], twos[0], one, twos[1], at=(112, 70)))
    assert (too_long.outcome, too_long.reason) == ("review", "too_many_digits")
    # Two digits written into each other: one character, cut in two (gateway.scoring.split).
    joined = side_by_side(fours[0], twos[0], at=(115, 70), gap=-2.0)
    assert len(characters(joined)) == 1
    merged = read(recognizer, "q2", joined)
    assert (merged.label, merged.outcome) == ("42", "read")
    # With no room left for another digit, the too-wide character is not cut: review.
    full = side_by_side(one, one, at=(112, 70)) + side_by_side(
        fours[0], twos[0], at=(130, 70), gap=-2.0
    )
    crowded = read(recognizer, "q2", full)
    assert (crowded.outcome, crowded.reason) == ("review", "run_together")


def test_several_choices_are_read_in_order_and_a_repeat_is_reviewed(recognizer):
    a, c = confident(recognizer, "choice", "A", 1)[0], confident(recognizer, "choice", "C", 1)[0]
    reading = read(recognizer, "q4", side_by_side(c, a, at=(122, 122)))
    assert (reading.label, reading.outcome) == ("AC", "read")
    assert score(REGIONS["q4"], reading, 0.6).correct is True
    twice = read(recognizer, "q4", side_by_side(a, a, at=(122, 122)))
    assert (twice.outcome, twice.reason) == ("review", "repeated_choice")


def test_two_answers_in_a_single_answer_box_go_to_review(recognizer):
    a, b = confident(recognizer, "choice", "A", 1)[0], confident(recognizer, "choice", "B", 1)[0]
    x, y, w, h = REGIONS["q3"].box_mm
    small = [[s * 0.8 for s in a], [s * 0.8 for s in b]]
    reading = read(recognizer, "q3", side_by_side(*small, at=(x + 1, y + 4), gap=2.0))
    assert (reading.outcome, reading.reason, reading.label) == ("review", "two_answers", "AB")
    verdict = score(REGIONS["q3"], reading, 0.0)
    assert (verdict.status, verdict.correct, verdict.points_awarded) == ("review", None, None)


def test_a_touch_of_the_pen_is_blank_and_scores_nothing(recognizer):
    dot = [np.array([[155.0, 50.0], [155.3, 50.2]])]
    reading = read(recognizer, "q1", dot)
    assert (reading.label, reading.outcome) == ("blank", "blank")
    verdict = score(REGIONS["q1"], reading, 0.6)
    assert (verdict.status, verdict.correct, verdict.points_awarded) == ("scored", False, 0.0)


def test_a_scribble_goes_to_review(recognizer):
    for question_id in ("q1", "q2", "q3", "q5"):
        x, y, w, h = REGIONS[question_id].box_mm
        reading = read(recognizer, question_id, [zigzag(x + 2, y + 2, w - 4, h - 4, 12)])
        assert (reading.outcome, reading.reason) == ("review", "scribble")


def test_bubbles_are_read_by_ink_coverage():
    region = REGIONS["q6"]
    options = region.options_mm
    fill_c = [zigzag(146, 171.5, 6, 7, 14)]  # hatching across bubble C
    assert coverage(fill_c, options["C"]) > 0.6 and coverage(fill_c, options["A"]) == 0.0
    reading = read_region(None, region, fill_c)  # no model needed for bubbles
    assert (reading.label, reading.outcome) == ("C", "read") and reading.confidence > 0.9
    assert score(region, reading, 0.6).correct is True
    both = read_region(None, region, fill_c + [zigzag(122, 171.5, 6, 7, 14)])
    assert (both.outcome, both.reason, both.label) == ("review", "two_answers", "AC")
    # A tick through a bubble is neither filled nor empty: a person looks.
    tick = [np.array([[134.0, 175.0], [136.0, 178.0], [140.5, 171.5]])]
    unsure = read_region(None, region, tick)
    assert (unsure.outcome, unsure.reason) == ("review", "unclear_bubble")
    assert score(region, unsure, 0.0).status == "review"
    # Ink beside the bubbles, none touched: blank.
    stray = read_region(None, region, [np.array([[166.0, 172.0], [169.0, 178.0]])])
    assert stray.outcome == "blank" and score(region, stray, 0.6).points_awarded == 0.0


def test_a_student_id_is_read_not_scored_and_must_have_its_digits(recognizer):
    digits = [confident(recognizer, "digit", d, 1)[0] for d in "3071"]
    reading = read(recognizer, "sid", side_by_side(*digits, at=(22, 17)))
    assert (reading.label, reading.outcome) == ("3071", "read")
    verdict = score(REGIONS["sid"], reading, 0.6)
    assert (verdict.status, verdict.correct, verdict.points_awarded) == ("scored", None, None)
    short = read(recognizer, "sid", side_by_side(*digits[:3], at=(22, 17)))
    assert (short.outcome, short.reason) == ("review", "wrong_digit_count")


def test_a_free_response_is_kept_for_a_human_marker(recognizer):
    x, y, _, _ = REGIONS["q7"].box_mm
    words = [zigzag(x + 5, y + 5, 40, 6, 3), zigzag(x + 50, y + 5, 30, 6, 2)]
    reading = read(recognizer, "q7", words)
    assert (reading.label, reading.outcome, reading.reason) == ("free", "review", "free_response")
    assert score(REGIONS["q7"], reading, 0.0).status == "review"


def test_below_the_threshold_a_reading_is_reviewed_with_the_reason():
    verdict = score(REGIONS["q1"], Reading("7", 0.55), 0.6)
    assert (verdict.status, verdict.review_reason) == ("review", "low_confidence")
    verdict = score(REGIONS["q1"], Reading("3", 0.95), 0.6)
    assert (verdict.status, verdict.correct, verdict.points_awarded) == ("scored", False, 0.0)


class _Scripted:
    """A recognizer that reads the whole group as "7" and any part of it as "1", with set
    confidences: it isolates the reader's rule from what a model happens to say."""

    def __init__(self, whole: float, part: float, whole_points: int) -> None:
        self.whole, self.part, self.whole_points = whole, part, whole_points

    def predict(self, field, strokes):
        from gateway.scoring.recognizer import Prediction

        points = sum(len(s) for s in strokes)
        if points == self.whole_points:
            return Prediction("7", self.whole)
        return Prediction("1", self.part)


@pytest.mark.parametrize(
    ("part", "width", "expected"),
    [
        (0.97, 10.0, ("review", "maybe_two_digits")),  # cut reads 0.94 against 0.95: doubt
        (0.80, 10.0, ("read", None)),  # cut reads 0.64: the whole reading stands
        (0.97, 6.0, ("read", None)),  # too narrow for two digits side by side
    ],
)
def test_a_digit_that_reads_almost_as_well_as_two_goes_to_review(part, width, expected):
    # One character 8 mm high (its strokes touch): two stems joined at the top by a bar.
    left = np.column_stack([np.full(40, 0.0), np.linspace(0, 8, 40)])
    bar = np.column_stack([np.linspace(0, width, 40), np.full(40, 0.0)])
    right = np.column_stack([np.full(40, width), np.linspace(0, 8, 40)])
    x, y, _, _ = REGIONS["q2"].box_mm
    strokes = [s + [x + 2, y + 3] for s in (left, bar, right)]
    assert len(characters(strokes)) == 1
    reading = read_region(_Scripted(0.95, part, 120), REGIONS["q2"], strokes)
    assert reading.label == "7"
    assert (reading.outcome, reading.reason) == expected
