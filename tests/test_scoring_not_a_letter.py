"""A straight line where a letter A-D is expected goes to review; real letters never do."""

from __future__ import annotations

import numpy as np

from classink.shared_data import read_jsonl
from gateway.scoring.read import read_region
from gateway.scoring.recognizer import Recognizer
from gateway.scoring.segment import straight_line
from gateway.scoring.synthetic import letters
from gateway.templates import Region


def region(kind: str) -> Region:
    return Region.model_validate(
        {"question_id": "q", "kind": kind, "box_mm": [0, 0, 40, 20], "answer": "A", "points": 1}
    )


def test_a_line_in_a_letter_box_is_reviewed_not_read():
    recognizer = Recognizer.load()
    stem = np.array([[5.0, 2.0], [5.3, 8.0], [5.5, 14.0]])
    for kind in ("choice", "choices"):
        reading = read_region(recognizer, region(kind), [stem])
        assert (reading.outcome, reading.reason) == ("review", "not_a_letter")
    # The same line in a digit box is a 1, read as usual.
    digit = Region.model_validate(
        {"question_id": "d", "kind": "digit", "box_mm": [0, 0, 20, 20], "answer": "1", "points": 1}
    )
    assert read_region(recognizer, digit, [stem]).outcome == "read"


def test_a_line_read_as_a_letter_is_given_no_more_than_chance():
    # `classink recognize --field choice` must answer with some letter; its confidence says the
    # line tells nothing about which (before, the model's own: up to 0.96 on UNIPEN's fragments).
    recognizer = Recognizer.load()
    for stem in (
        np.array([[5.0, 2.0], [5.3, 8.0], [5.5, 14.0]]),
        np.array([[0.0, 0.0], [30.0, 1.0]]),
        np.array([[0.0, 0.0], [10.0, 10.0], [20.0, 20.0]]),
    ):
        assert recognizer.predict("choice", [stem]).confidence <= 0.25
        # A digit box reads the same strokes as some digit (a 1, a 7), with the model's own
        # confidence.
        assert recognizer.predict("digit", [stem]).confidence > 0.25


def test_no_real_or_synthetic_capital_is_a_line():
    rows = [r for r in read_jsonl("handwriting/ujipenchars_v1.jsonl.gz") if r["label"] in "ABCD"]
    assert len(rows) == 88
    for row in rows:
        assert not straight_line([np.asarray(s, dtype=float)[:, :2] for s in row["strokes"]])
    answers, _ = letters(("A", "B", "C", "D"), 200, np.random.default_rng(3))
    assert not any(straight_line(a) for a in answers)


def test_straight_line_needs_one_nearly_straight_stroke():
    assert straight_line([np.array([[0.0, 0.0], [1.0, 0.1], [2.0, 0.0]])])
    assert not straight_line([np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 0.0]])])
    assert not straight_line([np.array([[0.0, 0.0], [1.0, 0.0]]), np.array([[0.0, 1.0], [1, 1]])])
    assert not straight_line([np.array([[0.0, 0.0]])])
