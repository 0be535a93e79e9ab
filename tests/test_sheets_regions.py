"""Every region kind is drawn on the printed page where the template puts it.

`classink sheets print` writes the every-kind sample template; the page is rendered with pdfium
and the layout ink (blue, K = 0; the dot pattern is black) is looked for at the template's
millimetres: bubbles as circles (ink on the inscribed ellipse, none at the corners of the option's
box) with their names inside, score boxes with the caption "score" and the scored question's
points as the maximum, found in the PDF's text at those places.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pypdfium2 as pdfium
import pytest

from central.sheets.pattern import FIRST_CODE, GLYPHS
from classink.cli import main
from gateway.templates import Region, load_template

TEMPLATE = Path(__file__).resolve().parents[1] / "protocol_specs/examples/all-kinds.exam.json"
DPI = 200
PX_PER_MM = DPI / 25.4
PT_PER_MM = 72 / 25.4


class RenderedPage:
    def __init__(self, pdf: Path) -> None:
        document = pdfium.PdfDocument(pdf)
        page = document[0]
        self.height_pt = page.get_height()
        image = np.asarray(page.render(scale=DPI / 72).to_pil().convert("RGB")).astype(int)
        r, g, b = image[..., 0], image[..., 1], image[..., 2]
        # Layout ink is process blue; the carbon dots are grey to black, the paper white.
        self.blue = (b - r > 60) & (b - g > 30)
        textpage = page.get_textpage()
        self._textpage = textpage
        self._document = document

    def ink_near(self, x_mm: float, y_mm: float, radius_mm: float = 0.35) -> bool:
        x, y, r = x_mm * PX_PER_MM, y_mm * PX_PER_MM, max(radius_mm * PX_PER_MM, 1.0)
        patch = self.blue[int(y - r) : int(y + r) + 1, int(x - r) : int(x + r) + 1]
        return bool(patch.any())

    def text_in(self, x: float, y: float, w: float, h: float) -> str:
        """The PDF text inside a box given in template millimetres (y down), without spaces and
        without the dot pattern, whose glyphs are the four character codes from
        pattern.FIRST_CODE (so this page's labels must not use those digits)."""
        text = self._textpage.get_text_bounded(
            left=x * PT_PER_MM,
            bottom=self.height_pt - (y + h) * PT_PER_MM,
            right=(x + w) * PT_PER_MM,
            top=self.height_pt - y * PT_PER_MM,
        )
        dots = {chr(FIRST_CODE + k) for k in range(len(GLYPHS))}
        return "".join(ch for ch in text if ch not in dots and not ch.isspace())


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> RenderedPage:
    folder = tmp_path_factory.mktemp("regions")
    students = folder / "class.csv"
    with students.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("student_id", "name"), ("s-001", "Amina Diallo")])
    pdf = folder / "booklet.pdf"
    assert (
        main(
            ["sheets", "print", "--template", str(TEMPLATE), "--students", str(students)]
            + ["--out", str(pdf)]
        )
        == 0
    )
    return RenderedPage(pdf)


def regions(kind: str) -> list[Region]:
    found = [r for p in load_template(TEMPLATE).pages for r in p.regions if r.kind == kind]
    assert found, f"the sample template has no {kind} region"
    return found


def test_every_region_box_is_drawn(page: RenderedPage) -> None:
    for region in (r for p in load_template(TEMPLATE).pages for r in p.regions):
        x, y, w, h = region.box_mm
        for px, py in ((x + w / 2, y), (x + w / 2, y + h), (x, y + h / 2), (x + w, y + h / 2)):
            assert page.ink_near(px, py), (region.question_id, px, py)


def test_bubbles_are_circles_with_their_names(page: RenderedPage) -> None:
    for region in regions("bubble"):
        for name, (x, y, w, h) in (region.options_mm or {}).items():
            cx, cy = x + w / 2, y + h / 2
            on_circle = [
                page.ink_near(cx + w / 2 * math.cos(a), cy + h / 2 * math.sin(a))
                for a in np.linspace(0, 2 * math.pi, 16, endpoint=False)
            ]
            assert all(on_circle), (region.question_id, name, on_circle)
            # A circle, not a square: the corners of the option's box stay empty.
            inset = 0.6
            corners = [(x + inset, y + inset), (x + w - inset, y + h - inset)]
            assert not any(page.ink_near(px, py, 0.2) for px, py in corners), name
            assert page.text_in(x, y, w, h) == name


def test_score_boxes_have_a_caption_and_their_maximum(page: RenderedPage) -> None:
    template = load_template(TEMPLATE)
    for region in regions("score"):
        x, y, w, h = region.box_mm
        scored = template.question(region.scores or "")
        assert scored is not None and scored.points is not None
        assert "score" in page.text_in(x, y, w, h / 3)
        assert page.text_in(x + w / 2, y + h / 2, w / 2, h / 2) == f"/{scored.points:g}"


def test_choices_get_their_letters_beside_the_box(page: RenderedPage) -> None:
    for region in regions("choices"):
        x, y, w, h = region.box_mm
        beside = page.text_in(x + w, y, 8, h) + page.text_in(x, y + h, w, 6)
        assert all(letter in beside for letter in "ABCD"), beside
