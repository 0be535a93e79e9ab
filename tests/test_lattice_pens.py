"""Lattice-camera pens: what the camera sees, decoded by the gateway into page and millimetres."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from classink.lattice_pages import PageAddress
from classink.shared_data import data_dir
from ext import lattice
from firmware_bridge.events import Dot, LatticeFrame, PaperInfo, PenDown, Rejected
from firmware_bridge.protocol import decode_stream
from gateway import lattice_frames
from gateway.strokes import PEN_UNIT_MM
from hardware_sim import pen_wire
from hardware_sim.lattice_camera import LatticeCamera, turn

PAGE = PageAddress(3, 27, 1001, 1)


def test_the_camera_turns_windows_as_the_independent_vectors_do():
    for line in (data_dir() / "lattice" / "vectors_public.jsonl").read_text().splitlines()[:100]:
        v = json.loads(line)
        upright = lattice.encode(8, 8, v["x"], v["y"], (v["u"], v["v"]))
        seen, _ = turn(upright, (3.5, 3.5), v["rot_ccw"])
        assert seen.reshape(-1).tolist() == v["rot8"]


@pytest.mark.parametrize("quarter_turns", [0, 1, 2, 3])
def test_turning_back_recovers_window_and_nib(quarter_turns):
    window = lattice.encode(8, 8, 123456, 654321, (3, 27))
    seen, nib = turn(window, (3.25, 3.75), quarter_turns)
    back, back_nib = lattice_frames.unturn(
        seen[None], np.array([quarter_turns]), np.array([nib], dtype=float)
    )
    assert (back[0] == window).all()
    assert back_nib[0].tolist() == pytest.approx([3.25, 3.75])


def frames_along(points_mm, camera: LatticeCamera) -> list[LatticeFrame]:
    data = pen_wire.pen_down(0, 1)
    for i, xy in enumerate(points_mm):
        data += camera.frame(i + 1, 8, 400, PAGE, np.array(xy))
    data += pen_wire.pen_up(len(points_mm) + 1, 2, len(points_mm))
    return [e for e in decode_stream(data) if isinstance(e, LatticeFrame)]


def test_clean_frames_decode_to_the_page_and_millimetres_in_every_orientation():
    rng = random.Random(1)
    points = [(rng.uniform(1, 200), rng.uniform(1, 290)) for _ in range(200)]
    for quarter_turns in range(4):
        frames = frames_along(points, LatticeCamera(quarter_turns, 0.0, rng))
        for (x, y), found in zip(points, lattice_frames.decode(frames), strict=True):
            assert found is not None
            address, x_mm, y_mm = found
            assert address == PAGE
            assert (x_mm, y_mm) == (pytest.approx(x, abs=0.01), pytest.approx(y, abs=0.01))


def test_one_misread_dot_per_frame_is_never_placed_wrongly():
    rng = random.Random(2)
    points = [(rng.uniform(1, 200), rng.uniform(1, 290)) for _ in range(1500)]
    camera = LatticeCamera(rng.randrange(4), 1.0, rng)
    decoded = lattice_frames.decode(frames_along(points, camera))
    placed = [(p, d) for p, d in zip(points, decoded, strict=True) if d is not None]
    for (x, y), (address, x_mm, y_mm) in placed:
        assert address == PAGE and abs(x_mm - x) < 0.01 and abs(y_mm - y) < 0.01
    # The kernel refuses the ~1.5% of windows that two positions explain equally well.
    assert len(placed) / len(points) > 0.97


def test_frames_become_the_events_a_coordinate_pen_sends():
    rng = random.Random(3)
    camera = LatticeCamera(2, 0.0, rng)
    frames = frames_along([(50.0, 60.0), (50.5, 60.2)], camera)
    garbled = LatticeFrame(bytes(16), 3.5, 3.5, 1, 8, 0, 0)  # an all-north window: no pattern
    other = frames_along([(120.0, 200.0)], LatticeCamera(1, 0.0, rng))
    # One poll round: three pens' reads, decoded in one batch and handed back read by read.
    events, untouched, elsewhere = lattice_frames.as_coordinate_events(
        [[frames[0], garbled, frames[1]], [PenDown(1000, 0, 0)], other]
    )
    assert [type(e) for e in events] == [PaperInfo, Dot, Rejected, Dot]
    assert events[0].address == str(PAGE)
    assert events[2].reason == "lattice_undecodable"
    assert events[3].x * PEN_UNIT_MM == pytest.approx(50.5, abs=0.01)
    assert untouched == [PenDown(1000, 0, 0)]
    assert [type(e) for e in elsewhere] == [PaperInfo, Dot]
    assert elsewhere[1].y * PEN_UNIT_MM == pytest.approx(200.0, abs=0.01)


def test_strokes_on_a_personal_booklet_belong_to_its_student(tmp_path):
    from gateway.outbox import Outbox
    from gateway.pipeline import Pipeline
    from gateway.scoring.recognizer import Recognizer
    from gateway.templates import BookletManifest, TemplateIndex, load_template
    from hardware_sim.classroom import Classroom
    from hardware_sim.cli import SAMPLE_EXAM

    template = load_template(SAMPLE_EXAM)
    booklet = PageAddress(3, 27, 1002, 1)  # the second student's copy of the exam's page 1
    manifest = BookletManifest.model_validate(
        {
            "schema": "classink.booklet-manifest.v1",
            "template_id": template.template_id,
            "students": [
                {
                    "student_id": "amina",
                    "pages": [{"address": str(booklet), "template_address": "3.27.1001.1"}],
                }
            ],
        }
    )
    room = Classroom(SAMPLE_EXAM, pens=1, seed=4)
    room.stop()
    camera = LatticeCamera(1, 0.01, random.Random(5))
    data, counter = pen_wire.version_response("lattice", "1", bytes(6)), 0
    for stroke in room.pens[0].strokes:
        data += pen_wire.pen_down(counter, 1)
        counter += 1
        for xy, dt, force in zip(stroke.xy_units, stroke.dt_ms, stroke.force, strict=True):
            data += camera.frame(counter, int(dt), int(force), booklet, xy * PEN_UNIT_MM)
            counter += 1
        data += pen_wire.pen_up(counter & 0xFF, 2, 1)
        counter += 1
    pipeline = Pipeline(
        site_id="s1",
        gateway_id="g1",
        templates=TemplateIndex([template], [manifest]),
        roster={"00:00:00:00:00:00": "whoever-holds-the-pen"},
        outbox=Outbox(tmp_path / "o.db"),
        recognizer=Recognizer.load(),
    )
    pipeline.on_pen_events("/dev/pen", decode_stream(data), now=0.0)
    pipeline.tick(now=100.0)
    events = [json.loads(r.payload) for r in pipeline.outbox.pending(0, 100)]
    assert [e["question_id"] for e in events] == [a.question_id for a in room.answers]
    assert {(e["student_id"], e["page_address"]) for e in events} == {("amina", str(booklet))}
