"""Booklets: the dots in the printed PDF decode to the right student's page and millimetres.

The dots are recovered from the PDF itself, two independent ways: by interpreting the page's
content streams (forms, text matrices, the Type 3 glyph procedures) with pypdf, and by rendering
small areas with pdfium and finding each dot's ink. Neither looks at how the PDF was made.
"""

from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pypdfium2 as pdfium
import pytest
from PIL import Image
from pypdf import PdfReader
from pypdf.generic import ContentStream

from central.sheets import SheetsError
from central.sheets.booklet import plan_booklets
from central.sheets.students import Student
from classink.cli import main
from classink.lattice_pages import PITCH_MM, PageAddress, locate
from ext import lattice
from gateway.templates import load_template

SAMPLE = Path(__file__).resolve().parents[1] / "protocol_specs/examples/grade3-maths.exam.json"
STUDENTS = [("s-001", "Amina Diallo"), ("s-002", "Zoë Ramírez"), ("s-003", "Tendai Moyo")]
PT_PER_MM = 72 / 25.4
DISPLACEMENT_MM = PITCH_MM / 6


@dataclass
class Printed:
    pdf: Path
    manifest: dict
    preview: Path
    seconds: float


@pytest.fixture(scope="module")
def printed(tmp_path_factory: pytest.TempPathFactory) -> Printed:
    folder = tmp_path_factory.mktemp("booklets")
    students = folder / "class.csv"
    with students.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("student_id", "name"), *STUDENTS])
    pdf, preview = folder / "booklet.pdf", folder / "page.png"
    started = time.perf_counter()
    code = main(
        ["sheets", "print", "--template", str(SAMPLE), "--students", str(students)]
        + ["--out", str(pdf), "--first-note", "2000", "--preview", str(preview)]
    )
    seconds = time.perf_counter() - started
    assert code == 0
    manifest = json.loads((folder / "booklet.manifest.json").read_text("utf-8"))
    return Printed(pdf, manifest, preview, seconds)


# --- reading the dots back out of the PDF's content streams ---------------------------------


def _matrix(values: list) -> np.ndarray:
    a, b, c, d, e, f = (float(v) for v in values)
    return np.array([[a, b, 0.0], [c, d, 0.0], [e, f, 1.0]])


def _translate(tx: float, ty: float) -> np.ndarray:
    return _matrix([1, 0, 0, 1, tx, ty])


def _apply(points: np.ndarray, m: np.ndarray) -> np.ndarray:
    return np.c_[points, np.ones(len(points))] @ m[:, :2]


class Type3Glyphs:
    """Each glyph's ink: centre and diameter in glyph space, from its procedure's path."""

    def __init__(self, font, reader: PdfReader) -> None:
        self.font_matrix = _matrix(font["/FontMatrix"])
        first = int(font["/FirstChar"])
        self.widths = {first + k: float(w) for k, w in enumerate(font["/Widths"])}
        names: dict[int, str] = {}
        code = 0
        for item in font["/Encoding"]["/Differences"]:
            if isinstance(item, int):
                code = int(item)
            else:
                names[code] = str(item)[1:]
                code += 1
        self.centre: dict[int, np.ndarray] = {}
        self.diameter: dict[int, float] = {}
        for code, name in names.items():
            proc = font["/CharProcs"]["/" + name].get_object()
            points = []
            for operands, operator in ContentStream(proc, reader).operations:
                if operator in (b"m", b"l", b"c"):
                    points += [
                        (float(operands[k]), float(operands[k + 1]))
                        for k in range(0, len(operands), 2)
                    ]
            ink = np.array(points)
            low, high = ink.min(axis=0), ink.max(axis=0)
            self.centre[code] = (low + high) / 2
            self.diameter[code] = float(high[0] - low[0])


def _text_bytes(operand) -> bytes:
    return bytes(operand) if isinstance(operand, bytes) else operand.original_bytes


def pdf_dots(reader: PdfReader, page_index: int) -> tuple[np.ndarray, np.ndarray]:
    """(centres in page points, y up; diameters in points) of every Type 3 glyph painted on the
    page, following q/Q/cm, Form XObjects (Matrix) and the text matrices of Td/Tm/Tj."""
    page = reader.pages[page_index]
    centres: list[np.ndarray] = []
    diameters: list[np.ndarray] = []
    fonts: dict[int, Type3Glyphs] = {}

    def run(content, resources, ctm: np.ndarray) -> None:
        stack: list[np.ndarray] = []
        tm = tlm = np.eye(3)
        glyphs: Type3Glyphs | None = None
        size = 1.0
        for operands, operator in content.operations:
            if operator == b"q":
                stack.append(ctm)
            elif operator == b"Q":
                ctm = stack.pop()
            elif operator == b"cm":
                ctm = _matrix(operands) @ ctm
            elif operator == b"Do":
                xobject = resources["/XObject"][operands[0]].get_object()
                if xobject["/Subtype"] == "/Form":
                    inner = _matrix(xobject.get("/Matrix", [1, 0, 0, 1, 0, 0])) @ ctm
                    run(ContentStream(xobject, reader), xobject["/Resources"], inner)
            elif operator == b"BT":
                tm = tlm = np.eye(3)
            elif operator == b"Tf":
                font = resources["/Font"][operands[0]].get_object()
                size = float(operands[1])
                glyphs = None
                if font["/Subtype"] == "/Type3":
                    key = id(font)
                    glyphs = fonts.setdefault(key, Type3Glyphs(font, reader))
            elif operator in (b"Tc", b"Tw", b"Ts", b"Tr"):
                assert float(operands[0]) == 0, f"{operator} {operands} is not interpreted here"
            elif operator == b"Tz":
                assert float(operands[0]) == 100
            elif operator == b"Td":
                tlm = _translate(float(operands[0]), float(operands[1])) @ tlm
                tm = tlm
            elif operator == b"Tm":
                tm = tlm = _matrix(operands)
            elif operator == b"Tj" and glyphs is not None:
                codes = np.frombuffer(_text_bytes(operands[0]), dtype=np.uint8)
                scale = glyphs.font_matrix[0, 0] * size
                advance = np.array([glyphs.widths[c] * scale for c in codes.tolist()])
                origin_x = np.concatenate([[0.0], np.cumsum(advance)[:-1]])
                ink = np.array([glyphs.centre[c] for c in codes.tolist()])
                text_space = _apply(ink, glyphs.font_matrix) * size + np.c_[origin_x, 0 * origin_x]
                centres.append(_apply(text_space, tm @ ctm))
                sizes = np.array([glyphs.diameter[c] for c in codes.tolist()])
                diameters.append(sizes * glyphs.font_matrix[0, 0] * size * (tm @ ctm)[0, 0])
                tm = _translate(float(advance.sum()), 0) @ tm

    run(page.get_contents(), page["/Resources"], np.eye(3))
    return np.concatenate(centres), np.concatenate(diameters)


def bits_from_centres(x_mm: np.ndarray, y_mm: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(rows, columns, 2) bits of dots given by their centres in mm from the page's top-left
    (y down): each dot's grid point is the nearest pitch multiple, its bits its displacement."""
    i, j = np.rint(x_mm / PITCH_MM).astype(int), np.rint(y_mm / PITCH_MM).astype(int)
    dx, dy = x_mm - i * PITCH_MM, y_mm - j * PITCH_MM
    along_x = np.abs(dx) > np.abs(dy)
    major, minor = (
        np.where(along_x, np.abs(dx), np.abs(dy)),
        np.where(along_x, np.abs(dy), np.abs(dx)),
    )
    assert np.all(np.abs(major - DISPLACEMENT_MM) < 0.2 * DISPLACEMENT_MM), "displacement ≠ pitch/6"
    assert np.all(minor < 0.2 * DISPLACEMENT_MM), "dot displaced diagonally"
    x_bit = np.where(along_x, dx < 0, dy > 0)  # west (1, 0) or south (1, 1)
    y_bit = np.where(along_x, dx > 0, dy > 0)  # east (0, 1) or south (1, 1)
    grid = np.full((*shape, 2), 255, dtype=np.uint8)
    assert i.min() >= 0 and j.min() >= 0 and i.max() < shape[1] and j.max() < shape[0]
    grid[j, i, 0], grid[j, i, 1] = x_bit, y_bit
    seen = np.zeros(shape, dtype=int)
    np.add.at(seen, (j, i), 1)
    assert np.all(seen == 1), "every grid point must carry exactly one dot"
    return grid


def decode_at(grid: np.ndarray, corners: list[tuple[int, int]]) -> list[tuple]:
    """(u, v, x, y) decoded from the 6 × 6 windows whose top-left dots are `corners` (i, j)."""
    windows = np.stack([grid[j : j + 6, i : i + 6] for i, j in corners])
    positions = lattice.decode_positions(windows)
    sections = lattice.decode_sections(windows, positions)
    return [(*s, *p) for s, p in zip(sections.tolist(), positions.tolist(), strict=True)]


def owner_of(manifest: dict, u: int, v: int, x: int, y: int) -> tuple[dict, dict]:
    """The manifest's student and page whose lattice area holds this decoded position."""
    hits = [
        (student, page)
        for student in manifest["students"]
        for page in student["pages"]
        if (a := page["lattice"])["u"] == u
        and a["v"] == v
        and a["x0"] <= x < a["x0"] + a["width"]
        and a["y0"] <= y < a["y0"] + a["height"]
    ]
    assert len(hits) == 1
    return hits[0]


# --- the "done when" test ---------------------------------------------------------------------


def test_printed_dots_decode_to_each_students_page(printed: Printed) -> None:
    reader = PdfReader(printed.pdf)
    assert len(reader.pages) == len(STUDENTS)
    rng = np.random.default_rng(5)
    for (student_id, name), entry in zip(STUDENTS, printed.manifest["students"], strict=True):
        assert (entry["student_id"], entry["name"]) == (student_id, name)
        (page,) = entry["pages"]
        area = page["lattice"]
        width_mm, height_mm = page["size_mm"]
        centres, diameters = pdf_dots(reader, page["pdf_page"] - 1)
        assert np.allclose(diameters / PT_PER_MM, 0.1, atol=0.005)  # true size, 0.1 mm dots
        x_mm = centres[:, 0] / PT_PER_MM
        y_mm = height_mm - centres[:, 1] / PT_PER_MM
        grid = bits_from_centres(x_mm, y_mm, (area["height"], area["width"]))
        # Windows at the corners, the centre, in an answer box and anywhere.
        corners = [(0, 0), (area["width"] - 6, area["height"] - 6), (350, 495), (520, 160)]
        corners += [
            (int(i), int(j))
            for i, j in zip(
                rng.integers(0, area["width"] - 5, 8),
                rng.integers(0, area["height"] - 5, 8),
                strict=True,
            )
        ]
        for (i, j), (u, v, x, y) in zip(corners, decode_at(grid, corners), strict=True):
            found, found_x_mm, found_y_mm = locate(u, v, x, y)
            student, manifest_page = owner_of(printed.manifest, u, v, x, y)
            assert student["student_id"] == student_id
            assert str(found) == manifest_page["address"] == page["address"]
            assert abs(found_x_mm - i * PITCH_MM) < PITCH_MM / 2
            assert abs(found_y_mm - j * PITCH_MM) < PITCH_MM / 2
        assert found == PageAddress(3, 27, entry["note"], 1)
        # And the page carries exactly the pattern of its lattice area, every dot of it.
        expected = lattice.encode(
            area["height"], area["width"], area["x0"], area["y0"], (area["u"], area["v"])
        )
        assert np.array_equal(grid, expected)
        assert width_mm * PT_PER_MM == pytest.approx(float(reader.pages[0].mediabox.width))


def rendered_bits(pdf: Path, page_index: int, i0: int, j0: int, size_mm: tuple) -> np.ndarray:
    """The bits of the 6 × 6 dots from (i0, j0), read off pixels pdfium renders at 1200 dpi."""
    dpi = 1200
    px_per_mm = dpi / 25.4
    width_mm, height_mm = size_mm
    xa, ya = i0 * PITCH_MM - PITCH_MM, j0 * PITCH_MM - PITCH_MM
    xb, yb = xa + 8 * PITCH_MM, ya + 8 * PITCH_MM
    document = pdfium.PdfDocument(pdf)
    crop = tuple(d * PT_PER_MM for d in (xa, height_mm - yb, width_mm - xb, ya))
    image = document[page_index].render(scale=dpi / 72, crop=crop).to_numpy()
    document.close()
    # Only carbon black counts: it renders dark in every channel, while the layout's K-free blue
    # stays bright in its blue one (about 170 of 255, where the dots are about 35).
    ink = np.clip(150.0 - image[..., :3].max(axis=2), 0, None)
    bits = np.zeros((6, 6, 2), dtype=np.uint8)
    reach = int(PITCH_MM * px_per_mm * 0.42)
    for r in range(6):
        for c in range(6):
            cx = ((i0 + c) * PITCH_MM - xa) * px_per_mm - 0.5
            cy = ((j0 + r) * PITCH_MM - ya) * px_per_mm - 0.5
            x0, y0 = round(cx) - reach, round(cy) - reach
            patch = ink[y0 : y0 + 2 * reach + 1, x0 : x0 + 2 * reach + 1]
            assert patch.sum() > 0, f"no dot near grid point {(i0 + c, j0 + r)}"
            ys, xs = np.mgrid[y0 : y0 + patch.shape[0], x0 : x0 + patch.shape[1]]
            dx = (xs * patch).sum() / patch.sum() - cx
            dy = (ys * patch).sum() / patch.sum() - cy
            # pdfium caches the glyph's bitmap and places it on whole pixels: up to ~1 px off.
            shift = DISPLACEMENT_MM * px_per_mm
            assert 0.4 * shift < max(abs(dx), abs(dy)) < 1.6 * shift
            if abs(dx) > abs(dy):
                bits[r, c] = (1, 0) if dx < 0 else (0, 1)
            else:
                bits[r, c] = (0, 0) if dy < 0 else (1, 1)
    return bits


def test_rendered_pages_show_the_same_dots(printed: Printed) -> None:
    """What a viewer or printer draws: in a box, on its outline and under a prompt."""
    for entry in printed.manifest["students"]:
        (page,) = entry["pages"]
        for i0, j0 in [(520, 160), (500, 133), (45, 135)]:
            bits = rendered_bits(printed.pdf, page["pdf_page"] - 1, i0, j0, page["size_mm"])
            (u, v, x, y) = decode_at(bits, [(0, 0)])[0]
            found, x_mm, y_mm = locate(u, v, x, y)
            assert owner_of(printed.manifest, u, v, x, y)[0]["student_id"] == entry["student_id"]
            assert str(found) == page["address"]
            assert (x_mm, y_mm) == (pytest.approx(i0 * PITCH_MM), pytest.approx(j0 * PITCH_MM))


def test_pattern_is_carbon_and_layout_is_not(printed: Printed) -> None:
    """Dots only in pure K; everything else CMYK with K = 0 (no RGB or grey colours at all)."""
    reader = PdfReader(printed.pdf)
    page = reader.pages[0]
    colours = []

    def collect(content, resources) -> None:
        for operands, operator in content.operations:
            if operator in (b"k", b"K"):
                colours.append(tuple(float(o) for o in operands))
            assert operator not in (b"rg", b"RG", b"g", b"G", b"sc", b"scn", b"cs", b"CS")
            if operator == b"Do":
                form = resources["/XObject"][operands[0]].get_object()
                collect(ContentStream(form, reader), form["/Resources"])

    collect(page.get_contents(), page["/Resources"])
    carbon = [c for c in colours if c[3] != 0]
    assert carbon == [(0, 0, 0, 1)]  # set once, in the dot layer
    assert len(colours) > len(carbon)


def test_manifest_and_speed(printed: Printed) -> None:
    manifest = printed.manifest
    assert manifest["schema"] == "classink.booklet-manifest.v1"
    assert manifest["template_id"] == "grade3-maths-autumn"
    assert manifest["pdf"] == printed.pdf.name
    notes = [s["note"] for s in manifest["students"]]
    assert notes == [2000, 2001, 2002]
    area = manifest["students"][1]["pages"][0]["lattice"]
    assert area == {"u": 3, "v": 27, "x0": 2001 * 1024, "y0": 1024, "width": 700, "height": 990}
    size = printed.pdf.stat().st_size
    print(f"3 pages + 600 dpi preview in {printed.seconds:.1f} s; {size / 3 / 1e3:.0f} KB per page")
    assert size < 3 * 400_000
    assert printed.seconds < 20


def test_preview_is_the_first_page_at_600_dpi(printed: Printed) -> None:
    document = pdfium.PdfDocument(printed.pdf)
    width_pt, height_pt = document[0].get_size()
    document.close()
    with Image.open(printed.preview) as image:
        assert image.format == "PNG"
        assert image.size == (math.ceil(width_pt * 600 / 72), math.ceil(height_pt * 600 / 72))
        assert image.size == (4961, 7016)  # A4


# --- clear errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        ("id,name\n1,Ann\n", "header `student_id,name`"),
        ("student_id,name\n", "lists no students"),
        ("student_id,name\ns1,Ann\ns1,Bob\n", "'s1' already appears on line 2"),
        ("student_id,name\ns1,Ann\n,Bob\n", "line 3: student_id is missing"),
        (b"student_id,name\n\xff\xfe,x\n", "save it as UTF-8"),
        ("student_id,name\ns1,\u674e\u4f1f\n", "--font"),
    ],
)
def test_bad_students_file_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture, content: str | bytes | None, message: str
) -> None:
    students = tmp_path / "class.csv"
    if isinstance(content, bytes):
        students.write_bytes(content)
    elif content is not None:
        students.write_text(content, encoding="utf-8")
    out = tmp_path / "booklet.pdf"
    code = main(
        ["sheets", "print", "--template", str(SAMPLE), "--students", str(students)]
        + ["--out", str(out)]
    )
    assert code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_addresses_beyond_the_lattice_are_refused(tmp_path: Path) -> None:
    template = load_template(SAMPLE)
    students = [Student("a", "A"), Student("b", "B")]
    with pytest.raises(SheetsError, match="note and page must be 0..401185"):
        plan_booklets(template, students, first_note=401185)
    raw = json.loads(SAMPLE.read_text())
    raw["pages"][0]["address"]["owner"] = 100
    wide = tmp_path / "wide.exam.json"
    wide.write_text(json.dumps(raw))
    with pytest.raises(SheetsError, match="section and owner"):
        plan_booklets(load_template(wide), students)
