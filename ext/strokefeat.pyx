"""Cython kernel of the shape features of handwriting: arc-length resampling and the bilinear
direction and orientation grids.

shape_features returns what ext/strokefeat_ref.py's function of the same name returns (to
rounding: the grids sum the same terms in another order); the reference states the features, this
module only makes them fast. `starts` is the reference's boolean array viewed as uint8.
"""

from libc.math cimport atan2, floor, hypot, sqrt, M_PI

import numpy as np


def shape_features(const double[:, ::1] points, const unsigned char[::1] starts, int trajectory,
                   int dense, int grid, int directions, int orientations):
    cdef Py_ssize_t n = points.shape[0]
    if n < 1 or points.shape[1] != 2 or starts.shape[0] != n:
        raise ValueError(f"points must be (n >= 1, 2) with one start flag each, got "
                         f"{points.shape[0]} x {points.shape[1]} and {starts.shape[0]} flags")
    if trajectory < 1 or dense < 1 or grid < 2 or directions < 1 or orientations < 1:
        raise ValueError("trajectory, dense, directions, orientations >= 1 and grid >= 2")
    cdef Py_ssize_t m = trajectory + dense
    cdef Py_ssize_t cells = grid * grid * (directions + orientations)
    out_array = np.zeros(2 * trajectory + cells)
    work_array = np.zeros(2 * n + 4 * m)
    cdef double[::1] out = out_array
    cdef double[::1] work = work_array
    with nogil:
        _shape(points, starts, trajectory, dense, grid, directions, orientations, out, work)
    return out_array


cdef inline double _fraction(Py_ssize_t k, Py_ssize_t num) noexcept nogil:
    # As np.linspace(0, 1, num)[k]: k * step, with the last value exactly 1.
    if num == 1:
        return 0.0
    if k == num - 1:
        return 1.0
    return k * (1.0 / (num - 1))


cdef inline double _clip(double x, double lo, double hi) noexcept nogil:
    return lo if x < lo else (hi if x > hi else x)


cdef void _shape(const double[:, ::1] points, const unsigned char[::1] starts, int trajectory,
                 int dense, int grid, int directions, int orientations, double[::1] out,
                 double[::1] work) noexcept nogil:
    cdef Py_ssize_t n = points.shape[0]
    cdef Py_ssize_t m = trajectory + dense
    # work: cumulative length (n), segment length (n), then resampled x, y, dx, dy (m each).
    cdef Py_ssize_t CUM = 0, LEN = n, RX = 2 * n, RY = 2 * n + m, DX = 2 * n + 2 * m
    cdef Py_ssize_t DY = 2 * n + 3 * m
    cdef Py_ssize_t i, k, lo, hi, mid, idx
    cdef double total = 0.0, seg_len, t, f, frac, sx, sy
    work[CUM] = 0.0
    for i in range(n - 1):
        seg_len = hypot(points[i + 1, 0] - points[i, 0], points[i + 1, 1] - points[i, 1])
        if starts[i + 1]:
            seg_len = 0.0
        work[LEN + i] = seg_len
        total += seg_len
        work[CUM + i + 1] = total
    for k in range(m):
        f = _fraction(k, trajectory) if k < trajectory else _fraction(k - trajectory, dense)
        if n == 1:
            work[RX + k] = points[0, 0]
            work[RY + k] = points[0, 1]
            continue
        t = f * work[CUM + n - 1]
        # searchsorted(cum, t, side="right") - 1, clipped to a segment.
        lo = 0
        hi = n
        while lo < hi:
            mid = (lo + hi) // 2
            if work[CUM + mid] <= t:
                lo = mid + 1
            else:
                hi = mid
        idx = lo - 1
        if idx < 0:
            idx = 0
        if idx > n - 2:
            idx = n - 2
        seg_len = work[LEN + idx]
        sx = points[idx + 1, 0] - points[idx, 0]
        sy = points[idx + 1, 1] - points[idx, 1]
        if seg_len > 0:
            frac = _clip((t - work[CUM + idx]) / seg_len, 0.0, 1.0)
            work[DX + k] = sx / seg_len
            work[DY + k] = sy / seg_len
        else:
            frac = _clip(t - work[CUM + idx], 0.0, 1.0)
        work[RX + k] = points[idx, 0] + sx * frac
        work[RY + k] = points[idx, 1] + sy * frac
    for k in range(trajectory):
        out[2 * k] = work[RX + k]
        out[2 * k + 1] = work[RY + k]
    _grids(work, RX + trajectory, RY + trajectory, DX + trajectory, DY + trajectory, dense, grid,
           directions, orientations, out, 2 * trajectory)


cdef void _grids(double[::1] work, Py_ssize_t rx, Py_ssize_t ry, Py_ssize_t dx, Py_ssize_t dy,
                 Py_ssize_t count, int grid, int directions, int orientations, double[::1] out,
                 Py_ssize_t base) noexcept nogil:
    cdef Py_ssize_t k, c, g, cell, a0, a1, bins, offset, moving = 0
    cdef Py_ssize_t u0, v0, cu, cv
    cdef double u, v, fu, fv, w, inv, theta, angle, a0f, fa, period, top = grid - 1 - 1e-9
    cdef Py_ssize_t total = grid * grid * (directions + orientations)
    for k in range(count):
        if work[dx + k] != 0 or work[dy + k] != 0:
            moving += 1
    inv = 1.0 / (moving if moving > 1 else 1)
    for k in range(count):
        if work[dx + k] == 0 and work[dy + k] == 0:
            continue
        u = _clip((work[rx + k] + 0.5) * (grid - 1), 0.0, top)
        v = _clip((work[ry + k] + 0.5) * (grid - 1), 0.0, top)
        u0 = <Py_ssize_t>floor(u)
        v0 = <Py_ssize_t>floor(v)
        fu = u - u0
        fv = v - v0
        theta = atan2(work[dy + k], work[dx + k])
        for c in range(4):
            cu = u0 + (c & 1)
            cv = v0 + (c >> 1)
            if cu > grid - 1:
                cu = grid - 1
            if cv > grid - 1:
                cv = grid - 1
            cell = cv * grid + cu
            w = ((fu if c & 1 else 1 - fu) * (fv if c >> 1 else 1 - fv)) * inv
            for g in range(2):
                if g == 0:
                    bins, period, offset = directions, 2 * M_PI, 0
                else:
                    bins, period, offset = orientations, M_PI, grid * grid * directions
                angle = theta * (bins / period)
                a0f = floor(angle)
                fa = angle - a0f
                a0 = (<Py_ssize_t>a0f) % bins
                if a0 < 0:
                    a0 += bins
                a1 = (a0 + 1) % bins
                out[base + offset + cell * bins + a0] += w * (1 - fa)
                out[base + offset + cell * bins + a1] += w * fa
    for k in range(total):
        out[base + k] = sqrt(out[base + k])
