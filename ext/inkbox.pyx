# cython: language_level=3
"""Cython kernel of ext/inkbox_ref.py (read that for the rule): the box holding most of a stroke.

The gateway asks this for every stroke a pen writes; in numpy it cost about 0.3 ms of array
set-up per stroke, a third of scoring a page. Here it is one pass over boxes and points, without
the GIL, and returns the reference's index exactly.
"""


def most_ink_box(const double[:, ::1] lo, const double[:, ::1] hi, const double[:, :] xy):
    if lo.shape[0] != hi.shape[0] or lo.shape[1] != 2 or hi.shape[1] != 2 or xy.shape[1] < 2:
        raise ValueError("boxes must be (n, 2) corner arrays and the stroke (k, 2) points")
    cdef Py_ssize_t n = lo.shape[0], k = xy.shape[0], b, i, count
    cdef Py_ssize_t best = 0, chosen = -1
    cdef double cx = 0.0, cy = 0.0, dx, dy, d2, nearest = 0.0
    cdef double min_x, min_y, max_x, max_y, x, y
    if k == 0 or n == 0:
        return -1
    with nogil:
        min_x = max_x = xy[0, 0]
        min_y = max_y = xy[0, 1]
        for i in range(k):
            x = xy[i, 0]
            y = xy[i, 1]
            if x != x or y != y:
                chosen = -2  # NaN: no box, as the reference's NaN extent reaches none
                break
            cx += x
            cy += y
            min_x = min(min_x, x)
            max_x = max(max_x, x)
            min_y = min(min_y, y)
            max_y = max(max_y, y)
        cx /= k
        cy /= k
        for b in range(n if chosen != -2 else 0):
            if lo[b, 0] > max_x or lo[b, 1] > max_y or hi[b, 0] < min_x or hi[b, 1] < min_y:
                continue
            count = 0
            for i in range(k):
                x = xy[i, 0]
                y = xy[i, 1]
                if lo[b, 0] <= x <= hi[b, 0] and lo[b, 1] <= y <= hi[b, 1]:
                    count += 1
            if count == 0 or count < best:
                continue
            dx = (lo[b, 0] + hi[b, 0]) / 2 - cx
            dy = (lo[b, 1] + hi[b, 1]) / 2 - cy
            d2 = dx * dx + dy * dy
            if count > best or d2 < nearest:
                best, chosen, nearest = count, b, d2
    if best == 0 or 2 * best < k:
        return -1
    return chosen
