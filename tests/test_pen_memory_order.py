"""The simulated pen keeps its offline memory in writing order when the gateway goes away
(pen-wire.md §3.8), even at a stroke's last dot."""

from __future__ import annotations

import contextlib
import os

from hardware_sim.classroom import Classroom
from hardware_sim.cli import SAMPLE_EXAM
from hardware_sim.pen import SimPen


def test_a_gateway_gone_at_a_strokes_last_dot_leaves_the_memory_in_writing_order():
    room = Classroom(SAMPLE_EXAM, pens=1, seed=5)
    room.stop()
    earlier, stroke = room.pens[0].strokes[:2]
    pen = SimPen(bytes.fromhex("9c7bef0000aa"), time_scale=50.0)
    pen.firmware.handshaken = pen.firmware.online = True  # streaming to a gateway
    last_dot = len(stroke.xy_units)
    calls = 0

    def sleep_until(deadline: float) -> bool:
        nonlocal calls
        calls += 1
        with contextlib.suppress(BlockingIOError):
            os.read(pen._slave, 65536)  # the gateway reads what the pen streams
        if calls == len(earlier.xy_units) + last_dot:
            # A restarted gateway's hello arrives during the last dot: the pen finds it gone.
            pen.firmware.online = False
            pen._gateway_gone(lose_link=False)
        return True

    os.set_blocking(pen._slave, False)
    pen._sleep_until = sleep_until
    try:
        pen._send_stroke(earlier, 1_000)
        pen._send_stroke(stroke, 2_000)
        memory = [s for strokes in pen.firmware.stored.values() for s in strokes]
        # The earlier stroke (streamed, kept) first, then the one under way, nothing left over.
        assert [s.start_ms for s in memory] == sorted(s.start_ms for s in memory)
        assert len(memory) == 2 and pen._kept == []
    finally:
        pen.stop()
