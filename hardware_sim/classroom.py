"""A classroom of simulated pens sitting one paper exam, and the truth of what they wrote."""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from hardware_sim.handwriting import CHOICE_LABELS, Handwriting
from hardware_sim.lattice_camera import LatticeCamera
from hardware_sim.pen import PageAddress, ScriptedStroke, SimPen, script_answer

VALUES = {
    "digit": [str(d) for d in range(10)],
    "choice": list(CHOICE_LABELS),
    "mark": ["tick", "cross"],
}
MAC_PREFIX = bytes.fromhex("9c7bef")  # a fixed prefix so simulated pens are recognisable in logs


@dataclass(frozen=True)
class WrittenAnswer:
    """Ground truth: what one student meant to write in one box."""

    student_id: str
    pen_id: str
    exam_id: str
    page_address: str
    question_id: str
    kind: str
    intended: str
    key: str
    source: str  # dataset:writer of the real handwriting used
    strokes: int = 0  # how many strokes the student makes in the box


def student_id(i: int) -> str:
    return f"stu-{i + 1:03d}"


class Classroom:
    """N students, one pen each, all writing the same exam at once."""

    def __init__(
        self,
        template_path: Path,
        pens: int,
        seed: int = 7,
        time_scale: float = 1.0,
        noise_rate: float = 0.0,
        stray_page: PageAddress | None = None,
        lattice_share: float = 0.0,
        misread_rate: float = 0.0,
    ) -> None:
        """`lattice_share` of the pens are lattice-camera pens (pen-wire.md §3.3), each held at
        its own quarter turn, misreading a dot in `misread_rate` of their camera frames."""
        self.template = json.loads(Path(template_path).read_text())
        self.answers: list[WrittenAnswer] = []
        self.pens: list[SimPen] = []
        self.roster: dict[str, str] = {}
        master = random.Random(seed)
        for i in range(pens):
            rng = random.Random(master.getrandbits(64))
            mac = MAC_PREFIX + i.to_bytes(3, "big")
            pen = SimPen(
                mac=mac, time_scale=time_scale, noise_rate=noise_rate, seed=rng.getrandbits(32)
            )
            if int((i + 1) * lattice_share) > int(i * lattice_share):
                pen.camera = LatticeCamera(rng.randrange(4), misread_rate, rng)
            pen.strokes = self._sit_exam(student_id(i), pen.pen_id, rng, stray_page)
            self.roster[pen.pen_id] = student_id(i)
            self.pens.append(pen)

    def _sit_exam(
        self, student: str, pen_id: str, rng: random.Random, stray_page: PageAddress | None
    ) -> list[ScriptedStroke]:
        hand = Handwriting(rng)
        ability = rng.uniform(0.55, 0.95)
        strokes: list[ScriptedStroke] = []
        now = rng.uniform(0.5, 3.0)  # students do not all start at the same instant
        for page in self.template["pages"]:
            address = PageAddress(**page["address"])
            for region in page["regions"]:
                kind, key = region["kind"], region["answer"]
                intended = (
                    key
                    if rng.random() < ability
                    else rng.choice([v for v in VALUES[kind] if v != key])
                )
                sample = hand.sample(kind, intended)
                answer_strokes, now = script_answer(
                    sample, tuple(region["box_mm"]), address, now, rng
                )
                strokes += answer_strokes
                self.answers.append(
                    WrittenAnswer(
                        student,
                        pen_id,
                        self.template["template_id"],
                        str(address),
                        region["question_id"],
                        kind,
                        intended,
                        key,
                        f"{sample.dataset}:{sample.writer}",
                        len(answer_strokes),
                    )
                )
                now += rng.uniform(0.8, 2.0)  # reading the next question
        if stray_page is not None:
            # A doodle on a page no template knows (a worksheet from another class, say).
            doodle = hand.sample("mark", "cross")
            extra, now = script_answer(doodle, (20.0, 20.0, 30.0, 30.0), stray_page, now, rng)
            strokes += extra
        return strokes

    @property
    def devices(self) -> list[str]:
        return [p.device for p in self.pens]

    @property
    def duration_s(self) -> float:
        """Wall time the slowest pen needs once connected."""
        longest = max(p.strokes[-1].start_s + len(p.strokes[-1].dt_ms) / 120.0 for p in self.pens)
        return longest / self.pens[0].time_scale

    def start(self) -> None:
        for pen in self.pens:
            pen.start()

    def wait_written(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        return all(p.done.wait(max(0.0, deadline - time.monotonic())) for p in self.pens)

    def stop(self) -> None:
        for pen in self.pens:
            pen.stop()

    def write_ground_truth(self, path: Path) -> None:
        with open(path, "w") as f:
            for a in self.answers:
                f.write(json.dumps(asdict(a)) + "\n")

    def write_roster(self, path: Path) -> None:
        Path(path).write_text(json.dumps({"pens": self.roster}, indent=2))

    def __enter__(self) -> Classroom:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
