"""Cython kernel of ext/strokejson_ref.py: a stroke's points as the JSON text of `points`.

Every answer carries its strokes' points, thousands a second in a classroom: formatting them in C
(then embedded with orjson.Fragment) replaces building and encoding a Python list per point.
Returns the reference's bytes exactly.
"""

from libc.math cimport fabs, isfinite
from libc.stdio cimport snprintf
from libc.stdlib cimport free, malloc

# Per point at most: "[" + 2 * (sign, 20 digits, ".dd") + 2 * 20-digit integers + 3 "," + "],".
DEF POINT_MAX = 128
DEF LIMIT = 1e15  # keeps every number within its digits above


cdef Py_ssize_t _mm(char* out, double value) noexcept nogil:
    cdef int n = snprintf(out, 40, "%.2f", value)
    # "12.30" -> "12.3", "12.00" -> "12.0": as Python prints the rounded float.
    if out[n - 1] == b"0":
        n -= 1
        if out[n - 1] == b"0":
            n -= 1
            out[n] = b"0"
            n += 1
    return n


def points_json(const double[:, ::1] points):
    cdef Py_ssize_t k = points.shape[0], i, j, at = 0
    if points.shape[1] != 4:
        raise ValueError(f"points must be (k, 4), got shape ({k}, {points.shape[1]})")
    for i in range(k):
        for j in range(4):
            if not isfinite(points[i, j]) or fabs(points[i, j]) >= LIMIT:
                raise ValueError(f"a point out of range (finite, below 1e15): {list(points[i])}")
    cdef char* buf = <char*> malloc(k * POINT_MAX + 2)
    if buf == NULL:
        raise MemoryError()
    try:
        with nogil:
            buf[at] = b"["
            at += 1
            for i in range(k):
                if i:
                    buf[at] = b","
                    at += 1
                buf[at] = b"["
                at += 1
                at += _mm(buf + at, points[i, 0])
                buf[at] = b","
                at += 1
                at += _mm(buf + at, points[i, 1])
                at += snprintf(buf + at, 48, ",%lld,%lld]",
                               <long long> points[i, 2], <long long> points[i, 3])
            buf[at] = b"]"
            at += 1
        return buf[:at]
    finally:
        free(buf)
