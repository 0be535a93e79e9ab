"""Exam templates: the sample validates, and broken templates are refused with clear reasons."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from gateway.templates import TemplateError, TemplateIndex, load_template
from hardware_sim.cli import SAMPLE_EXAM


def write(tmp_path, doc) -> str:
    p = tmp_path / "t.json"
    p.write_text(json.dumps(doc))
    return p


@pytest.fixture
def sample() -> dict:
    return json.loads(SAMPLE_EXAM.read_text())


def test_sample_exam_loads_and_locates_boxes(sample):
    t = load_template(SAMPLE_EXAM)
    page = t.pages[0]
    q1 = page.regions[0]
    x, y, w, h = q1.box_mm
    assert page.locate_ink(np.array([[x + w / 2, y + h / 2]])) is q1
    assert page.locate_ink(np.array([[x - 2, y + 1]])) is q1  # written over the line: 3 mm margin
    assert page.locate_ink(np.array([[5.0, 5.0]])) is None


def test_a_stroke_belongs_to_the_box_holding_most_of_its_ink(sample):
    page = load_template(SAMPLE_EXAM).pages[0]
    q1 = page.regions[0]
    x, y, w, h = q1.box_mm
    # Crossing the right border: 6 of its 10 points in q1's grown box -> q1.
    crossing = np.stack([np.linspace(x + 2, x + w + 14, 10), np.full(10, y + h / 2)], axis=1)
    assert page.locate_ink(crossing) is q1
    # Its centroid lies outside every box, yet half of its ink is in q1: still q1.
    assert page.locate_ink(crossing + [6.0, 0.0]) is q1
    # Mostly outside every box (working out beside the question): belongs to none.
    beside = np.stack([np.linspace(x + 1, x - 40, 10), np.full(10, y + h / 2)], axis=1)
    assert page.locate_ink(beside) is None


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["pages"][0]["regions"][0].update(answer="12"), "is not a digit answer"),
        (lambda d: d["pages"][0]["regions"][6].update(answer="E"), "is not a choice answer"),
        (
            lambda d: d["pages"][0]["regions"][1].update(
                box_mm=d["pages"][0]["regions"][0]["box_mm"]
            ),
            "overlap",
        ),
        (
            lambda d: d["pages"][0]["regions"][0].update(box_mm=[200, 10, 20, 20]),
            "outside the page",
        ),
        (lambda d: d["pages"][0]["regions"][1].update(question_id="q1"), "appears twice"),
        (lambda d: d.update(schema="v0"), "schema"),
        (lambda d: d["pages"][0]["address"].update(section=300), "section"),
    ],
)
def test_broken_templates_are_refused_with_the_reason(tmp_path, sample, mutate, message):
    doc = copy.deepcopy(sample)
    mutate(doc)
    with pytest.raises(TemplateError, match=message):
        load_template(write(tmp_path, doc))


def test_not_json_is_a_clear_error(tmp_path):
    p = tmp_path / "t.json"
    p.write_text("{nope")
    with pytest.raises(TemplateError, match="cannot read template"):
        load_template(p)


def test_one_page_in_two_templates_is_refused(sample):
    a = load_template(SAMPLE_EXAM)
    b = a.model_copy(update={"template_id": "other"})
    with pytest.raises(TemplateError, match="is in both"):
        TemplateIndex([a, b])
