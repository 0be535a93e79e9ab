"""The exam layout of one printed page: heading, prompts and answer boxes, in non-carbon ink.

The pen camera sees in the infrared, where carbon black (K) absorbs and cyan, magenta and yellow
inks do not; so everything here is drawn in CMYK with K = 0 and only the dot pattern uses K.
Positions follow the template: millimetres from the page's top-left corner, y down the page.

Every region kind of protocol_specs/exam-template.md is drawn as its box and question id; besides:
`choice` and `choices` get the letters A-D beside the box, `mark` a tick / cross hint, `bubble`
one circle per option (the ellipse inscribed in the option's box, which is what the reader
measures) with the option's name inside in light ink (the question id then goes left of the
box, clear of the first bubble), and `score` the caption "score" at its top
and "/ N" (the scored question's points) at its bottom right, for the teacher.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from reportlab.lib.colors import CMYKColor
from reportlab.lib.units import mm
from reportlab.lib.utils import simpleSplit
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFError, TTFont
from reportlab.pdfgen.canvas import Canvas

from central.sheets import SheetsError
from gateway.templates import Page, Region

INK = CMYKColor(1, 0.7, 0, 0)  # dark process blue
HINT_INK = CMYKColor(0.55, 0.35, 0, 0)
MARGIN_MM = 12.0
BOX_LINE_MM = 0.35
PROMPT_GAP_MM = 4.0
PROMPT_SIZES = (11.0, 10.0, 9.0, 8.0, 7.0)  # points, largest that fits
NARROWEST_PROMPT_MM = 25.0
HINT_SIZE = 8.0
LABEL_SIZE = 6.0
CHOICES = "ABCD"
MARK_HINT = "\u2713 / \u2717"  # ✓ / ✗: reportlab draws them from ZapfDingbats
BUBBLE_LINE_MM = 0.3
SCORE_CAPTION = "score"


@dataclass(frozen=True)
class Typeface:
    """The fonts of the layout: the standard Helvetica, or one TrueType file for scripts that
    Helvetica lacks (names and prompts in Chinese, for instance)."""

    regular: str = "Helvetica"
    bold: str = "Helvetica-Bold"

    @classmethod
    def from_file(cls, path: Path) -> Typeface:
        name = f"classink-{path.stem}"
        try:
            pdfmetrics.registerFont(TTFont(name, str(path)))
        except (OSError, TTFError) as error:
            raise SheetsError(
                f"cannot use font {path}: {error}; pass a TrueType (.ttf) file"
            ) from error
        return cls(name, name)

    def missing(self, text: str) -> str:
        """The characters of `text` this typeface cannot print, in order, once each."""
        font = pdfmetrics.getFont(self.regular)
        if isinstance(font, TTFont):
            covered = font.face.charToGlyph
            bad = [ch for ch in text if ord(ch) not in covered and not ch.isspace()]
        else:
            encodings = [f.encName for f in (font, *font.substitutionFonts)]
            bad = [ch for ch in text if not any(_encodes(ch, e) for e in encodings)]
        return "".join(dict.fromkeys(bad))


def _mm(points: float) -> float:
    return points / mm


def _encodes(ch: str, encoding: str) -> bool:
    try:
        ch.encode(encoding)
    except UnicodeEncodeError:
        return False
    return True


@dataclass(frozen=True)
class Heading:
    title: str
    student_name: str
    student_id: str
    address: str
    page_number: int
    page_count: int
    template_id: str


class _Page:
    """Drawing in template millimetres on a reportlab canvas (points, y up)."""

    def __init__(self, canvas: Canvas, size_mm: tuple[float, float], face: Typeface) -> None:
        self.c = canvas
        self.width, self.height = size_mm
        self.face = face

    def text(
        self,
        x: float,
        baseline: float,
        text: str,
        size: float,
        bold: bool = False,
        align: str = "left",
    ) -> None:
        font = self.face.bold if bold else self.face.regular
        self.c.setFont(font, size)
        draw = {
            "left": self.c.drawString,
            "right": self.c.drawRightString,
            "centre": self.c.drawCentredString,
        }[align]
        draw(x * mm, (self.height - baseline) * mm, text)

    def text_width(self, text: str, size: float) -> float:
        return pdfmetrics.stringWidth(text, self.face.regular, size) / mm

    def box(self, x: float, y: float, w: float, h: float) -> None:
        self.c.rect(x * mm, (self.height - y - h) * mm, w * mm, h * mm, stroke=1, fill=0)

    def ellipse(self, x: float, y: float, w: float, h: float) -> None:
        """The ellipse inscribed in the box with top-left (x, y) and size w x h."""
        top = self.height - y
        self.c.ellipse(x * mm, (top - h) * mm, (x + w) * mm, top * mm, stroke=1, fill=0)


def draw_layout(
    canvas: Canvas,
    page: Page,
    heading: Heading,
    face: Typeface,
    points: dict[str, float] | None = None,
) -> None:
    """Draw the page's heading, prompts and answer boxes in layout ink; `points` gives each
    question's points (the whole template's), printed as the maximum in its score box."""
    p = _Page(canvas, page.size_mm, face)
    canvas.saveState()
    canvas.setFillColor(INK)
    canvas.setStrokeColor(INK)
    canvas.setLineWidth(BOX_LINE_MM * mm)
    p.text(MARGIN_MM, 14, heading.title, 14, bold=True)
    p.text(MARGIN_MM, 22, f"Name: {heading.student_name}    Student ID: {heading.student_id}", 11)
    p.text(
        MARGIN_MM,
        p.height - 6,
        f"{heading.template_id} · page {heading.page_number} of {heading.page_count} · "
        f"{heading.address}",
        7,
    )
    rows = _rows(page.regions)
    for k, row in enumerate(rows):
        next_top = rows[k + 1][0].box_mm[1] if k + 1 < len(rows) else p.height - 10
        _draw_prompts(p, row, next_top)
        for region in row:
            _draw_region(p, region, row, points or {})
    canvas.restoreState()


def _rows(regions: list[Region]) -> list[list[Region]]:
    """Regions grouped into rows of vertically overlapping boxes, top to bottom, left to right."""
    rows: list[list[Region]] = []
    bottom = float("-inf")
    for region in sorted(regions, key=lambda r: (r.box_mm[1], r.box_mm[0])):
        x, y, w, h = region.box_mm
        if rows and y < bottom:
            rows[-1].append(region)
            bottom = max(bottom, y + h)
        else:
            rows.append([region])
            bottom = y + h
    return [sorted(row, key=lambda r: r.box_mm[0]) for row in rows]


def _draw_prompts(p: _Page, row: list[Region], next_top: float) -> None:
    """The row's prompts, each after its question id in bold, in the space left of the row's
    first box; below the row, across the page, when a box leaves no room on its left."""
    top = min(r.box_mm[1] for r in row)
    bottom = max(r.box_mm[1] + r.box_mm[3] for r in row)
    left = MARGIN_MM
    right = row[0].box_mm[0] - PROMPT_GAP_MM
    if right - left < NARROWEST_PROMPT_MM:
        top, right = bottom + 1.5, p.width - MARGIN_MM
    available = max(next_top - top - 1.0, 0.0)
    for size in PROMPT_SIZES:
        indent = max(
            _mm(pdfmetrics.stringWidth(f"{r.question_id}  ", p.face.bold, size)) for r in row
        )
        wrapped = [
            simpleSplit(r.prompt, p.face.regular, size, (right - left - indent) * mm) for r in row
        ]
        leading = _mm(size * 1.25)
        lines = sum(max(len(w), 1) for w in wrapped) + (len(wrapped) - 1) * 0.4
        if lines * leading <= available:
            break
    baseline = top + _mm(size) * 0.8
    for region, block in zip(row, wrapped, strict=True):
        p.text(left, baseline, region.question_id, size, bold=True)
        for line in block or [""]:
            p.text(left + indent, baseline, line, size)
            baseline += leading
        baseline += 0.4 * leading


def _draw_region(p: _Page, region: Region, row: list[Region], points: dict[str, float]) -> None:
    x, y, w, h = region.box_mm
    p.box(x, y, w, h)
    label_baseline = y + 0.8 + _mm(LABEL_SIZE) * 0.75
    if region.kind == "bubble":
        # Inside, the id would sit on the first bubble: it goes in the gap left of the box.
        p.text(x - 0.6, label_baseline, region.question_id, LABEL_SIZE, bold=True, align="right")
    else:
        p.text(x + 0.8, label_baseline, region.question_id, LABEL_SIZE, bold=True)
    neighbours = [r.box_mm[0] for r in row if r.box_mm[0] > x]
    room = min(neighbours, default=p.width - MARGIN_MM / 2) - (x + w)
    p.c.setFillColor(HINT_INK)
    if region.kind in ("choice", "choices"):
        if room >= 5.0:
            for k, letter in enumerate(CHOICES):
                baseline = y + h * (k + 0.5) / len(CHOICES) + _mm(HINT_SIZE) * 0.35
                p.text(x + w + 1.5, baseline, letter, HINT_SIZE, bold=True)
        else:
            p.text(
                x + w / 2, y + h + 3.2, "   ".join(CHOICES), HINT_SIZE, bold=True, align="centre"
            )
    elif region.kind == "mark":
        hint_width = p.text_width(MARK_HINT, HINT_SIZE)
        if room >= hint_width + 3.0:
            p.text(x + w + 1.5, y + h / 2 + _mm(HINT_SIZE) * 0.35, MARK_HINT, HINT_SIZE)
        else:
            p.text(x + w / 2, y + h + 3.2, MARK_HINT, HINT_SIZE, align="centre")
    elif region.kind == "bubble":
        _draw_bubbles(p, region)
    elif region.kind == "score":
        _draw_score_box(p, region, points)
    p.c.setFillColor(INK)


def _draw_bubbles(p: _Page, region: Region) -> None:
    p.c.setLineWidth(BUBBLE_LINE_MM * mm)
    for name, (bx, by, bw, bh) in (region.options_mm or {}).items():
        p.c.setStrokeColor(INK)
        p.ellipse(bx, by, bw, bh)
        size = min(HINT_SIZE, _mm_to_points(min(bw, bh)) * 0.6)
        p.text(bx + bw / 2, by + bh / 2 + _mm(size) * 0.35, name, size, bold=True, align="centre")
    p.c.setLineWidth(BOX_LINE_MM * mm)


def _draw_score_box(p: _Page, region: Region, points: dict[str, float]) -> None:
    x, y, w, h = region.box_mm
    p.text(x + w / 2, y + 0.8 + _mm(LABEL_SIZE) * 0.75, SCORE_CAPTION, LABEL_SIZE, align="centre")
    maximum = region.points if region.points is not None else points.get(region.scores or "")
    if maximum is not None:
        p.text(x + w - 0.8, y + h - 1.0, f"/ {maximum:g}", HINT_SIZE, bold=True, align="right")


def _mm_to_points(length_mm: float) -> float:
    return length_mm * mm
