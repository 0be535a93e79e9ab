"""bench.scoring measures what the gateway does: a page of held-out handwriting, all answered."""

from __future__ import annotations

import random

from bench import scoring
from gateway.scoring.recognizer import Recognizer


def test_bench_page_has_forty_boxes_and_every_one_is_answered():
    template = scoring.page_template()
    page = template.pages[0]
    assert len(page.regions) == 40
    strokes = scoring.written_page(template, random.Random(1))
    # Every stroke of the placed handwriting lands in a box; none is lost to `outside_regions`.
    assert all(page.locate_ink(s.points[:, :2]) is not None for s in strokes)
    assert scoring.score_page(template, strokes, Recognizer.load()) == 40
