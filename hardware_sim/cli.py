"""`classink sim …`: run simulated pens for a gateway started separately."""

from __future__ import annotations

import argparse
import json
import signal
import threading
from pathlib import Path

from classink.shared_data import REPO_ROOT

SAMPLE_EXAM = REPO_ROOT / "protocol_specs" / "examples" / "grade3-maths.exam.json"


def register(sub: argparse._SubParsersAction) -> None:
    sim = sub.add_parser("sim", help="simulated pens and classrooms")
    sim_sub = sim.add_subparsers(dest="sim_command", required=True, metavar="ACTION")
    room = sim_sub.add_parser("classroom", help="N pens on pseudo-terminals sitting one exam")
    room.add_argument("--pens", type=int, default=30)
    room.add_argument("--template", type=Path, default=SAMPLE_EXAM)
    room.add_argument("--seed", type=int, default=7)
    room.add_argument(
        "--time-scale", type=float, default=1.0, help=">1 writes faster than real time"
    )
    room.add_argument(
        "--noise", type=float, default=0.0, help="share of events preceded by line noise"
    )
    room.add_argument(
        "--out", type=Path, required=True, help="folder for ports.json, roster.json, truth.jsonl"
    )
    room.add_argument(
        "--truth",
        type=Path,
        help="ground truth, one JSON line per written answer (default: OUT/truth.jsonl)",
    )
    room.set_defaults(handler=_classroom)


def _classroom(args: argparse.Namespace) -> int:
    from hardware_sim.classroom import Classroom

    args.out.mkdir(parents=True, exist_ok=True)
    room = Classroom(args.template, args.pens, args.seed, args.time_scale, args.noise)
    room.write_roster(args.out / "roster.json")
    room.write_ground_truth(args.truth or args.out / "truth.jsonl")
    (args.out / "ports.json").write_text(json.dumps(room.devices, indent=2))
    print(f"{len(room.pens)} pens on {room.devices[0]} … {room.devices[-1]}; files in {args.out}")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with room:
        while not stop.wait(0.5):
            if all(p.done.is_set() for p in room.pens):
                print("every pen has finished writing; Ctrl-C to disconnect them")
                stop.wait()
    return 0
