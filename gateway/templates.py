"""Exam templates (protocol_specs/exam-template.md): loading, validation, and locating strokes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

ANSWERS = {
    "digit": {str(d) for d in range(10)},
    "choice": {"A", "B", "C", "D"},
    "mark": {"tick", "cross"},
}
REGION_MARGIN_MM = 3.0


class TemplateError(ValueError):
    """A template file that cannot be used; the message lists every problem."""


class Address(BaseModel):
    section: int = Field(ge=0, le=255)
    owner: int = Field(ge=0, le=2**24 - 1)
    note: int = Field(ge=0, le=2**32 - 1)
    page: int = Field(ge=0, le=2**32 - 1)

    def __str__(self) -> str:
        return f"{self.section}.{self.owner}.{self.note}.{self.page}"


class Region(BaseModel):
    question_id: str = Field(min_length=1, max_length=128)
    kind: Literal["digit", "choice", "mark"]
    box_mm: tuple[float, float, float, float]
    answer: str
    points: float = Field(ge=0)
    prompt: str = ""

    @field_validator("box_mm")
    @classmethod
    def _positive_size(
        cls, box: tuple[float, float, float, float]
    ) -> tuple[float, float, float, float]:
        if box[2] <= 0 or box[3] <= 0:
            raise ValueError("width and height must be positive")
        return box

    @model_validator(mode="after")
    def _answer_fits_kind(self) -> Region:
        if self.answer not in ANSWERS[self.kind]:
            allowed = ", ".join(sorted(ANSWERS[self.kind]))
            raise ValueError(
                f"answer {self.answer!r} is not a {self.kind} answer (one of {allowed})"
            )
        return self

    def grown_contains(self, x: float, y: float, margin: float = REGION_MARGIN_MM) -> bool:
        bx, by, bw, bh = self.box_mm
        return bx - margin <= x <= bx + bw + margin and by - margin <= y <= by + bh + margin

    def centre_distance2(self, x: float, y: float) -> float:
        bx, by, bw, bh = self.box_mm
        return (x - bx - bw / 2) ** 2 + (y - by - bh / 2) ** 2


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
        for i, a in enumerate(self.regions):
            for b in self.regions[i + 1 :]:
                ax, ay, aw, ah = a.box_mm
                bx, by, bw, bh = b.box_mm
                if ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah:
                    raise ValueError(f"boxes of {a.question_id} and {b.question_id} overlap")
        return self

    def locate_ink(self, xy: np.ndarray) -> Region | None:
        """The region whose grown box holds most of a stroke's points (k, 2) in mm, or None.

        A stroke that crosses a box border belongs to the box holding most of its ink; ties go to
        the box whose centre is nearest the stroke's centroid. A stroke with less than half of
        its ink in any grown box (working out, a line across the page) belongs to none.
        """
        lo, hi = self._grown_boxes
        # Only boxes the stroke's bounding box reaches can hold any of its points: usually one.
        near = np.flatnonzero(
            (lo <= xy.max(axis=0)).all(axis=1) & (hi >= xy.min(axis=0)).all(axis=1)
        )
        if len(near) == 0:
            return None
        inside = (xy[None] >= lo[near, None]) & (xy[None] <= hi[near, None])
        ink = inside.all(axis=2).sum(axis=1)
        best = int(ink.max())
        if best == 0 or 2 * best < len(xy):
            return None
        cx, cy = xy.mean(axis=0)
        tied = [self.regions[i] for i, n in zip(near, ink, strict=True) if n == best]
        return min(tied, key=lambda r: r.centre_distance2(float(cx), float(cy)))

    @cached_property
    def _grown_boxes(self) -> tuple[np.ndarray, np.ndarray]:
        """Every region's box grown by the margin, as (lo, hi) corner arrays (regions, 2)."""
        boxes = np.array([r.box_mm for r in self.regions], dtype=np.float64).reshape(-1, 4)
        return boxes[:, :2] - REGION_MARGIN_MM, boxes[:, :2] + boxes[:, 2:] + REGION_MARGIN_MM


class ExamTemplate(BaseModel):
    schema_: Literal["classink.exam-template.v1"] = Field(alias="schema")
    template_id: str = Field(min_length=1, max_length=128)
    title: str
    pages: list[Page] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_ids(self) -> ExamTemplate:
        seen: set[str] = set()
        for page in self.pages:
            for r in page.regions:
                if r.question_id in seen:
                    raise ValueError(f"question_id {r.question_id} appears twice")
                seen.add(r.question_id)
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
