"""Exam templates (protocol_specs/exam-template.md): loading, validation, and locating strokes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from ext import inkbox

DIGITS = tuple("0123456789")
LETTERS = ("A", "B", "C", "D")
# Kinds a student writes, whose answer is read and scored against the key.
KEYED_KINDS = ("digit", "number", "choice", "choices", "mark", "bubble")
# Kinds read but not scored automatically: whose paper it is, and strokes for a human marker.
UNKEYED_KINDS = ("student_id", "free")
# The one kind only a teacher's pen writes in (marking mode).
TEACHER_KINDS = ("score",)
Kind = Literal[
    "digit", "number", "choice", "choices", "mark", "bubble", "student_id", "free", "score"
]
REGION_MARGIN_MM = 3.0
# Where a teacher's tick or cross beside an answer is looked for when the template does not say:
# a strip this wide along the right-hand side of the answer box.
MARK_STRIP_MM = 8.0
MAX_NUMBER_DIGITS = 12

Box = tuple[float, float, float, float]


class TemplateError(ValueError):
    """A template file that cannot be used; the message lists every problem."""


class Address(BaseModel):
    section: int = Field(ge=0, le=255)
    owner: int = Field(ge=0, le=2**24 - 1)
    note: int = Field(ge=0, le=2**32 - 1)
    page: int = Field(ge=0, le=2**32 - 1)

    def __str__(self) -> str:
        return f"{self.section}.{self.owner}.{self.note}.{self.page}"


def _check_box(box: Box) -> Box:
    if box[2] <= 0 or box[3] <= 0:
        raise ValueError("width and height must be positive")
    return box


def _inside(inner: Box, outer: Box) -> bool:
    return (
        inner[0] >= outer[0]
        and inner[1] >= outer[1]
        and inner[0] + inner[2] <= outer[0] + outer[2]
        and inner[1] + inner[3] <= outer[1] + outer[3]
    )


def _overlap(a: Box, b: Box) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


class Region(BaseModel):
    """One answer box; see protocol_specs/exam-template.md for what each kind holds."""

    question_id: str = Field(min_length=1, max_length=128)
    kind: Kind
    box_mm: Box
    # The key: required for KEYED_KINDS, optional (shown to markers) for free, absent otherwise.
    answer: str | None = None
    # Required for keyed kinds and free; a score box awards up to its question's points, and a
    # student id is worth none.
    points: float | None = Field(None, ge=0)
    prompt: str = ""
    # number: at most this many digits; student_id: exactly this many.
    digits: int | None = Field(None, ge=1, le=MAX_NUMBER_DIGITS)
    # bubble: one box per option (a single character), the printed circle inscribed in it.
    options_mm: dict[str, Box] | None = None
    # bubble: several options may be filled (the answer then lists them all).
    multiple: bool = False
    # score: the question_id of the question a teacher scores in this box.
    scores: str | None = None
    # Where a teacher ticks or crosses this answer; default: the strip right of the box.
    mark_box_mm: Box | None = None

    @field_validator("box_mm", "mark_box_mm")
    @classmethod
    def _positive_size(cls, box: Box | None) -> Box | None:
        return box if box is None else _check_box(box)

    @model_validator(mode="after")
    def _fields_fit_kind(self) -> Region:
        kind = self.kind
        if kind == "score":
            if not self.scores:
                raise ValueError("a score box needs `scores`: the question_id it scores")
        elif self.scores is not None:
            raise ValueError(f"`scores` is only for score boxes, not {kind}")
        if (kind in KEYED_KINDS or kind == "free") and self.points is None:
            raise ValueError(f"a {kind} region needs `points`")
        if kind in ("number", "student_id"):
            if kind == "student_id" and self.digits is None:
                raise ValueError("a student_id region needs `digits`: how many the id has")
        elif self.digits is not None:
            raise ValueError(f"`digits` is only for number and student_id regions, not {kind}")
        if kind == "bubble":
            self._check_bubbles()
        elif self.options_mm is not None or self.multiple:
            raise ValueError(f"`options_mm` and `multiple` are only for bubble regions, not {kind}")
        if kind in KEYED_KINDS:
            if self.answer is None:
                raise ValueError(f"a {kind} region needs `answer`, its key")
            self.answer = self._normalised_answer(self.answer)
        elif kind in ("student_id", "score") and self.answer is not None:
            raise ValueError(f"a {kind} region has no `answer`")
        return self

    def _check_bubbles(self) -> None:
        options = self.options_mm or {}
        if len(options) < 2:
            raise ValueError("a bubble region needs `options_mm` with at least two options")
        for name, box in options.items():
            if len(name) != 1 or not name.isalnum():
                raise ValueError(f"bubble option {name!r} must be one letter or digit")
            _check_box(box)
            if not _inside(box, self.box_mm):
                raise ValueError(f"bubble {name} {box} lies outside the region box {self.box_mm}")
        names = list(options)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                if _overlap(options[a], options[b]):
                    raise ValueError(f"bubbles {a} and {b} overlap")

    def _normalised_answer(self, answer: str) -> str:
        """The key in the form labels take, or a ValueError saying what this kind accepts."""
        kind = self.kind
        if kind == "digit" and answer in DIGITS:
            return answer
        if kind == "number" and answer.isascii() and answer.isdigit():
            if self.digits is not None and len(answer) > self.digits:
                raise ValueError(f"answer {answer!r} has more than digits={self.digits} digits")
            return answer
        if kind == "choice" and answer in LETTERS:
            return answer
        if kind == "mark" and answer in ("tick", "cross"):
            return answer
        if kind in ("choices", "bubble"):
            allowed = LETTERS if kind == "choices" else tuple(self.options_mm or {})
            letters = list(answer)
            if (
                letters
                and all(c in allowed for c in letters)
                and len(set(letters)) == len(letters)
                and (kind == "choices" or self.multiple or len(letters) == 1)
            ):
                # One spelling per set: the order of the options, as labels are written.
                return "".join(c for c in allowed if c in letters)
        if kind == "free":
            return answer
        raise ValueError(f"answer {answer!r} is not a {kind} answer ({_ANSWER_RULES[kind]})")

    def grown_contains(self, x: float, y: float, margin: float = REGION_MARGIN_MM) -> bool:
        bx, by, bw, bh = self.box_mm
        return bx - margin <= x <= bx + bw + margin and by - margin <= y <= by + bh + margin

    def centre_distance2(self, x: float, y: float) -> float:
        bx, by, bw, bh = self.box_mm
        return (x - bx - bw / 2) ** 2 + (y - by - bh / 2) ** 2

    @property
    def teacher_mark_box(self) -> Box:
        bx, by, bw, bh = self.box_mm
        return self.mark_box_mm or (bx + bw, by, MARK_STRIP_MM, bh)


_ANSWER_RULES = {
    "digit": "one of 0-9",
    "number": "digits 0-9 only",
    "choice": "one of A, B, C, D",
    "choices": "one or more of A, B, C, D, each at most once",
    "mark": "tick or cross",
    "bubble": "option names of options_mm, several only if multiple is true",
    "free": "any text",
}


class Page(BaseModel):
    address: Address
    size_mm: tuple[float, float]
    regions: list[Region]

    @model_validator(mode="after")
    def _boxes_on_page_and_apart(self) -> Page:
        w, h = self.size_mm
        for r in self.regions:
            x, y, bw, bh = r.box_mm
            if x < 0 or y < 0 or x + bw > w or y + bh > h:
                raise ValueError(
                    f"box of {r.question_id} {r.box_mm} lies outside the page {self.size_mm}"
                )
            if r.mark_box_mm is not None and not _inside(r.mark_box_mm, (0, 0, w, h)):
                raise ValueError(
                    f"mark box of {r.question_id} {r.mark_box_mm} lies outside the page "
                    f"{self.size_mm}"
                )
        for i, a in enumerate(self.regions):
            for b in self.regions[i + 1 :]:
                if _overlap(a.box_mm, b.box_mm):
                    raise ValueError(f"boxes of {a.question_id} and {b.question_id} overlap")
        return self

    def locate_ink(self, xy: np.ndarray) -> Region | None:
        """The region whose grown box holds most of a stroke's points (k, 2) in mm, or None.

        A stroke that crosses a box border belongs to the box holding most of its ink; ties go to
        the box whose centre is nearest the stroke's centroid. A stroke with less than half of
        its ink in any grown box (working out, a line across the page) belongs to none.
        """
        return self._locate(self._student_targets, xy)

    def locate_mark(self, xy: np.ndarray) -> Region | None:
        """For a teacher's stroke: the region it marks, by the same most-ink rule.

        A teacher marks a question by writing on its answer box or in its mark box (default: the
        strip right of the answer box), and scores it by writing in its score box; a score box
        is returned as itself. Student id boxes are not marked.
        """
        return self._locate(self._teacher_targets, xy)

    def _locate(self, targets: _Targets, xy: np.ndarray) -> Region | None:
        box = inkbox.most_ink_box(targets.lo, targets.hi, np.asarray(xy, dtype=np.float64))
        return None if box < 0 else self.regions[int(targets.owner[box])]

    @cached_property
    def _student_targets(self) -> _Targets:
        return _Targets.of([(i, r.box_mm) for i, r in enumerate(self.regions)])

    @cached_property
    def _teacher_targets(self) -> _Targets:
        boxes: list[tuple[int, Box]] = []
        for i, r in enumerate(self.regions):
            if r.kind == "score":
                boxes.append((i, r.box_mm))
            elif r.kind != "student_id":
                boxes += [(i, r.box_mm), (i, r.teacher_mark_box)]
        return _Targets.of(boxes)


@dataclass(frozen=True)
class _Targets:
    """Boxes grown by the margin as (lo, hi) corner arrays (n, 2), and the region of each."""

    lo: np.ndarray
    hi: np.ndarray
    owner: np.ndarray

    @classmethod
    def of(cls, boxes: list[tuple[int, Box]]) -> _Targets:
        arr = np.array([b for _, b in boxes], dtype=np.float64).reshape(-1, 4)
        return cls(
            arr[:, :2] - REGION_MARGIN_MM,
            arr[:, :2] + arr[:, 2:] + REGION_MARGIN_MM,
            np.array([i for i, _ in boxes], dtype=np.intp),
        )


class ExamTemplate(BaseModel):
    schema_: Literal["classink.exam-template.v1"] = Field(alias="schema")
    template_id: str = Field(min_length=1, max_length=128)
    title: str
    pages: list[Page] = Field(min_length=1)

    def question(self, question_id: str) -> Region | None:
        return self._questions.get(question_id)

    @cached_property
    def _questions(self) -> dict[str, Region]:
        return {r.question_id: r for page in self.pages for r in page.regions}

    @model_validator(mode="after")
    def _unique_ids(self) -> ExamTemplate:
        seen: set[str] = set()
        for page in self.pages:
            for r in page.regions:
                if r.question_id in seen:
                    raise ValueError(f"question_id {r.question_id} appears twice")
                seen.add(r.question_id)
        regions = {r.question_id: r for page in self.pages for r in page.regions}
        scored: set[str] = set()
        for r in regions.values():
            if r.kind != "score":
                continue
            target = regions.get(r.scores or "")
            if target is None or target.kind in ("score", "student_id"):
                raise ValueError(
                    f"score box {r.question_id} scores {r.scores!r}, which is not a question "
                    "of this template that can be scored"
                )
            if r.scores in scored:
                raise ValueError(f"question {r.scores} has two score boxes")
            scored.add(r.scores or "")
            if r.points is not None and r.points != target.points:
                raise ValueError(
                    f"score box {r.question_id} has points {r.points:g} but {r.scores} is "
                    f"worth {target.points:g}: leave points out of score boxes"
                )
        addresses = [str(p.address) for p in self.pages]
        if len(set(addresses)) != len(addresses):
            raise ValueError("a page address appears twice")
        return self


def load_template(path: Path) -> ExamTemplate:
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise TemplateError(f"{path}: cannot read template: {exc}") from exc
    try:
        return ExamTemplate.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'/'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors()
        )
        raise TemplateError(f"{path}: invalid exam template: {problems}") from exc


class BookletPage(BaseModel):
    address: str
    template_address: str


class BookletStudent(BaseModel):
    student_id: str = Field(min_length=1, max_length=128)
    pages: list[BookletPage]


class BookletManifest(BaseModel):
    """The part of a booklet manifest (protocol_specs/lattice.md §4) a gateway needs."""

    schema_: Literal["classink.booklet-manifest.v1"] = Field(alias="schema")
    template_id: str
    students: list[BookletStudent]


@dataclass(frozen=True)
class PageUse:
    """What a printed page is: a template page, and whose booklet it belongs to if known."""

    template: ExamTemplate
    page: Page
    student_id: str | None = None


class TemplateIndex:
    """Every loaded template's pages, and every printed booklet page, by page address."""

    def __init__(self, templates: list[ExamTemplate], booklets: list[BookletManifest] = ()) -> None:
        self.templates = templates
        self._pages: dict[str, PageUse] = {}
        for t in templates:
            for page in t.pages:
                key = str(page.address)
                if key in self._pages:
                    other = self._pages[key].template.template_id
                    raise TemplateError(f"page {key} is in both {other} and {t.template_id}")
                self._pages[key] = PageUse(t, page)
        for manifest in booklets:
            self._add_booklets(manifest)

    @classmethod
    def from_files(cls, paths: list[Path], booklets: list[Path] = ()) -> TemplateIndex:
        return cls([load_template(p) for p in paths], [load_booklets(p) for p in booklets])

    def page(self, address: str) -> PageUse | None:
        return self._pages.get(address)

    def _add_booklets(self, manifest: BookletManifest) -> None:
        """Each printed page is a template page, so strokes on it use that page's boxes and
        belong to that student, whichever pen wrote them."""
        template = next((t for t in self.templates if t.template_id == manifest.template_id), None)
        if template is None:
            raise TemplateError(f"booklets of {manifest.template_id!r} need that template loaded")
        pages = {str(p.address): p for p in template.pages}
        for student in manifest.students:
            for printed in student.pages:
                page = pages.get(printed.template_address)
                if page is None:
                    raise TemplateError(
                        f"booklet page {printed.address} refers to {printed.template_address}, "
                        f"which is not a page of {template.template_id}"
                    )
                known = self._pages.get(printed.address)
                # The first booklet may be printed at the template's own address; any other
                # reuse of an address would make two students' answers indistinguishable.
                if known is not None and (known.student_id or known.page is not page):
                    raise TemplateError(f"booklet page {printed.address} is printed twice")
                self._pages[printed.address] = PageUse(template, page, student.student_id)


def load_booklets(path: Path) -> BookletManifest:
    try:
        return BookletManifest.model_validate_json(Path(path).read_text())
    except (OSError, ValidationError) as exc:
        raise TemplateError(f"{path}: not a usable booklet manifest: {exc}") from exc
