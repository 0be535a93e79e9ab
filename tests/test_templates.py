"""Exam templates: the sample validates, and broken templates are refused with clear reasons."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from classink.shared_data import REPO_ROOT
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


ALL_KINDS = REPO_ROOT / "protocol_specs/examples/all-kinds.exam.json"


@pytest.fixture
def all_kinds() -> dict:
    return json.loads(ALL_KINDS.read_text())


def region(doc: dict, question_id: str) -> dict:
    return next(r for r in doc["pages"][0]["regions"] if r["question_id"] == question_id)


def test_every_kind_loads_and_keys_are_normalised(all_kinds):
    region(all_kinds, "q4")["answer"] = "CA"  # a key may list its letters in any order
    t = load_template(write_tmp(all_kinds))
    kinds = {r.question_id: r.kind for r in t.pages[0].regions}
    assert sorted(set(kinds.values())) == sorted(
        ["student_id", "digit", "number", "choice", "choices", "mark", "bubble", "free", "score"]
    )
    assert t.question("q4").answer == "AC"
    assert t.question("s7").scores == "q7" and t.question("sid").points is None


def test_a_teacher_mark_beside_an_answer_goes_to_that_answer(all_kinds):
    page = load_template(ALL_KINDS).pages[0]
    q1 = page.regions[1]
    x, y, w, h = q1.box_mm
    tick = np.array([[x + w + 3.5, y + 10], [x + w + 5, y + 13], [x + w + 7.5, y + 5]])
    assert page.locate_mark(tick) is q1
    assert page.locate_ink(tick) is None  # for a student's pen the same ink is outside every box
    score_box = page.regions[-1]
    sx, sy, _, _ = score_box.box_mm
    assert page.locate_mark(np.array([[sx + 5, sy + 5], [sx + 8, sy + 15]])) is score_box


@pytest.mark.parametrize(
    ("question_id", "change", "message"),
    [
        ("q2", {"answer": "4x2"}, "is not a number answer"),
        ("q2", {"answer": "4242"}, "more than digits=3"),
        ("q4", {"answer": "AA"}, "is not a choices answer"),
        ("q4", {"answer": "AE"}, "is not a choices answer"),
        ("q5", {"answer": "yes"}, "is not a mark answer"),
        ("q6", {"answer": "AC"}, "is not a bubble answer"),
        ("q6", {"options_mm": {"A": [121, 171, 8, 8]}}, "at least two options"),
        ("q6", {"options_mm": {"A": [121, 171, 8, 8], "B": [125, 171, 8, 8]}}, "overlap"),
        ("q6", {"options_mm": {"A": [121, 171, 8, 8], "B": [200, 171, 8, 8]}}, "outside"),
        ("q6", {"options_mm": {"AB": [121, 171, 8, 8], "C": [145, 171, 8, 8]}}, "one letter"),
        ("q1", {"options_mm": {"A": [151, 41, 8, 8]}}, "only for bubble"),
        ("sid", {"digits": None}, "needs `digits`"),
        ("sid", {"answer": "1234"}, "has no `answer`"),
        ("q1", {"digits": 2}, "only for number and student_id"),
        ("q3", {"answer": None}, "needs `answer`"),
        ("q3", {"points": None}, "needs `points`"),
        ("s7", {"scores": None}, "needs `scores`"),
        ("s7", {"scores": "q99"}, "not a question of this template"),
        ("s7", {"scores": "sid"}, "not a question of this template"),
        ("s7", {"points": 3}, "leave points out of score boxes"),
        ("q1", {"scores": "q7"}, "only for score boxes"),
        ("q1", {"kind": "essay"}, "kind"),
        ("q1", {"mark_box_mm": [205, 40, 8, 20]}, "mark box of q1"),
    ],
)
def test_broken_regions_are_refused_with_the_reason(all_kinds, question_id, change, message):
    r = region(all_kinds, question_id)
    for key, value in change.items():
        if value is None:
            r.pop(key, None)
        else:
            r[key] = value
    with pytest.raises(TemplateError, match=message):
        load_template(write_tmp(all_kinds))


def test_two_score_boxes_for_one_question_are_refused(all_kinds):
    regions = all_kinds["pages"][0]["regions"]
    regions.append(dict(region(all_kinds, "s7"), question_id="s7b", box_mm=[180, 240, 20, 20]))
    with pytest.raises(TemplateError, match="has two score boxes"):
        load_template(write_tmp(all_kinds))


def write_tmp(doc: dict):
    import tempfile
    from pathlib import Path

    folder = Path(tempfile.mkdtemp())
    return write(folder, doc)
