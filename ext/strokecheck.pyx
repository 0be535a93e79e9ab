# cython: language_level=3
"""Strokes checker: the fast twin of ext/strokecheck_ref.py (read that for the rules and verdicts).

Central receives thousands of answers a second, each with a few hundred pen-point numbers in its
strokes. Checking them in one pass over the payload's bytes, instead of parsing them into Python
lists for the schema validator, is most of what central saves per answer. The scan needs no
Python objects; it lets other threads run while it reads a span large enough to be worth the
hand-over of the GIL.
"""

from libc.string cimport memchr, memcmp

# Verdicts and messages are the reference's; STROKES_SCHEMA, the rules implemented, is re-exported.
from ext.strokecheck_ref import INVALID, LOCATE_MESSAGES, STROKES_SCHEMA, UNDECIDED, VALID, message

# Above this many bytes (hundreds of strokes), the scan releases the GIL; an ordinary answer's
# few kB take less time to check than handing the GIL over and back would.
DEF NOGIL_BYTES = 65536
DEF MAX_DIGITS = 19

# The problem codes of ext/strokecheck_ref.py.
cdef enum:
    SYNTAX = 1
    STROKES_NOT_ARRAY = 2
    STROKES_EMPTY = 3
    STROKE_NOT_OBJECT = 4
    UNEXPECTED_PROPERTY = 5
    NO_T0 = 6
    NO_POINTS = 7
    T0_NOT_INTEGER = 8
    OFFLINE_NOT_BOOLEAN = 9
    POINTS_NOT_ARRAY = 10
    POINTS_EMPTY = 11
    POINT_NOT_ARRAY = 12
    POINT_SIZE = 13
    NOT_A_NUMBER = 14
    ESCAPED_NAME = 20
    REPEATED_NAME = 21
    NUMBER_FORM = 22
    T0_FORM = 23

cdef enum:
    RUNNING = 0
    STOP_INVALID = 1
    STOP_UNDECIDED = 2
    T0 = 1
    OFFLINE = 2
    POINTS = 4


cdef struct Scan:
    const unsigned char *text
    Py_ssize_t pos, end
    Py_ssize_t i, j, k, n
    int problem
    Py_ssize_t wi, wj, wk, wn, wat  # where the problem was found
    int stopped


cdef inline int peek(Scan *s) noexcept nogil:
    return s.text[s.pos] if s.pos < s.end else -1


cdef inline int take(Scan *s) noexcept nogil:
    cdef int byte = peek(s)
    s.pos += 1
    return byte


cdef inline bint is_space(int byte) noexcept nogil:
    return byte == 32 or byte == 9 or byte == 13 or byte == 10


cdef inline bint is_digit(int byte) noexcept nogil:
    return 48 <= byte <= 57


cdef inline void whitespace(Scan *s) noexcept nogil:
    while s.pos < s.end and is_space(s.text[s.pos]):
        s.pos += 1


cdef inline Py_ssize_t digits(Scan *s) noexcept nogil:
    cdef Py_ssize_t began = s.pos
    while s.pos < s.end and is_digit(s.text[s.pos]):
        s.pos += 1
    return s.pos - began


cdef inline void broken(Scan *s, int code) noexcept nogil:
    if s.problem == 0:
        s.problem = code
        s.wi, s.wj, s.wk, s.wn, s.wat = s.i, s.j, s.k, s.n, s.pos


cdef inline bint stop(Scan *s, int how, int code) noexcept nogil:
    s.problem = code
    s.wi, s.wj, s.wk, s.wn, s.wat = s.i, s.j, s.k, 0, s.pos
    s.stopped = how
    return True


cdef inline bint syntax(Scan *s) noexcept nogil:
    return stop(s, STOP_INVALID, SYNTAX)


cdef bint skip_string(Scan *s) noexcept nogil:
    s.pos += 1
    while s.pos < s.end and s.text[s.pos] != 34:
        s.pos += 2 if s.text[s.pos] == 92 else 1
    if s.pos >= s.end:
        return syntax(s)
    s.pos += 1
    return False


cdef bint skip_value(Scan *s) noexcept nogil:
    cdef int byte = peek(s)
    cdef Py_ssize_t depth = 0, began
    if byte == 34:
        return skip_string(s)
    if byte == 91 or byte == 123:
        while True:
            byte = peek(s)
            if byte == -1:
                return syntax(s)
            if byte == 34:
                if skip_string(s):
                    return True
                continue
            s.pos += 1
            if byte == 91 or byte == 123:
                depth += 1
            elif byte == 93 or byte == 125:
                depth -= 1
                if depth == 0:
                    return False
    began = s.pos
    while s.pos < s.end:
        byte = s.text[s.pos]
        if is_space(byte) or byte == 44 or byte == 93 or byte == 125:
            break
        s.pos += 1
    if s.pos == began:
        return syntax(s)
    return False


cdef bint number(Scan *s) noexcept nogil:
    cdef int byte = peek(s)
    cdef Py_ssize_t count
    if byte != 45 and not is_digit(byte):
        broken(s, NOT_A_NUMBER)
        return skip_value(s)
    if byte == 45:
        s.pos += 1
    if peek(s) == 48:
        s.pos += 1
        count = 1
    else:
        count = digits(s)
        if count == 0:
            return syntax(s)
    if count > MAX_DIGITS:
        return stop(s, STOP_UNDECIDED, NUMBER_FORM)
    if peek(s) == 46:
        s.pos += 1
        count = digits(s)
        if count == 0:
            return syntax(s)
        if count > MAX_DIGITS:
            return stop(s, STOP_UNDECIDED, NUMBER_FORM)
    byte = peek(s)
    if byte == 101 or byte == 69:
        return stop(s, STOP_UNDECIDED, NUMBER_FORM)
    return False


cdef bint point(Scan *s) noexcept nogil:
    cdef int byte
    if peek(s) != 91:
        broken(s, POINT_NOT_ARRAY)
        return skip_value(s)
    s.pos += 1
    whitespace(s)
    s.k = 0
    if peek(s) == 93:
        s.pos += 1
    else:
        while True:
            if number(s):
                return True
            s.k += 1
            whitespace(s)
            byte = take(s)
            if byte == 93:
                break
            if byte != 44:
                s.pos -= 1
                return syntax(s)
            whitespace(s)
    if s.k != 4:
        s.n = s.k
        broken(s, POINT_SIZE)
        s.n = 0
    s.k = 0
    return False


cdef bint points(Scan *s) noexcept nogil:
    cdef int byte
    if peek(s) != 91:
        broken(s, POINTS_NOT_ARRAY)
        return skip_value(s)
    s.pos += 1
    whitespace(s)
    if peek(s) == 93:
        s.pos += 1
        broken(s, POINTS_EMPTY)
        return False
    s.j = 0
    while True:
        if point(s):
            return True
        whitespace(s)
        byte = take(s)
        if byte == 93:
            break
        if byte != 44:
            s.pos -= 1
            return syntax(s)
        whitespace(s)
        s.j += 1
    s.j = 0
    return False


cdef bint t0_ms(Scan *s) noexcept nogil:
    cdef int byte = peek(s)
    cdef Py_ssize_t count
    if byte == 45:
        return stop(s, STOP_UNDECIDED, T0_FORM)
    if not is_digit(byte):
        broken(s, T0_NOT_INTEGER)
        return skip_value(s)
    if byte == 48:
        s.pos += 1
        count = 1
    else:
        count = digits(s)
    byte = peek(s)
    if count > MAX_DIGITS or byte == 46 or byte == 101 or byte == 69:
        return stop(s, STOP_UNDECIDED, T0_FORM)
    return False


cdef bint offline(Scan *s) noexcept nogil:
    if s.end - s.pos >= 4 and memcmp(s.text + s.pos, b"true", 4) == 0:
        s.pos += 4
        return False
    if s.end - s.pos >= 5 and memcmp(s.text + s.pos, b"false", 5) == 0:
        s.pos += 5
        return False
    broken(s, OFFLINE_NOT_BOOLEAN)
    return skip_value(s)


cdef inline int name_bit(const unsigned char *name, Py_ssize_t size) noexcept nogil:
    if size == 5 and memcmp(name, b"t0_ms", 5) == 0:
        return T0
    if size == 7 and memcmp(name, b"offline", 7) == 0:
        return OFFLINE
    if size == 6 and memcmp(name, b"points", 6) == 0:
        return POINTS
    return 0


cdef bint stroke(Scan *s) noexcept nogil:
    cdef int seen = 0, bit, byte
    cdef Py_ssize_t began
    if peek(s) != 123:
        broken(s, STROKE_NOT_OBJECT)
        return skip_value(s)
    s.pos += 1
    whitespace(s)
    if peek(s) == 125:
        s.pos += 1
    else:
        while True:
            if peek(s) != 34:
                return syntax(s)
            began = s.pos + 1
            if skip_string(s):
                return True
            if memchr(s.text + began, 92, s.pos - 1 - began) != NULL:
                return stop(s, STOP_UNDECIDED, ESCAPED_NAME)
            bit = name_bit(s.text + began, s.pos - 1 - began)
            whitespace(s)
            if take(s) != 58:
                s.pos -= 1
                return syntax(s)
            whitespace(s)
            if bit & seen:
                return stop(s, STOP_UNDECIDED, REPEATED_NAME)
            seen |= bit
            if bit == T0:
                if t0_ms(s):
                    return True
            elif bit == OFFLINE:
                if offline(s):
                    return True
            elif bit == POINTS:
                if points(s):
                    return True
            else:
                broken(s, UNEXPECTED_PROPERTY)
                if skip_value(s):
                    return True
            whitespace(s)
            byte = take(s)
            if byte == 125:
                break
            if byte != 44:
                s.pos -= 1
                return syntax(s)
            whitespace(s)
    if not seen & T0:
        broken(s, NO_T0)
    if not seen & POINTS:
        broken(s, NO_POINTS)
    return False


cdef bint strokes(Scan *s) noexcept nogil:
    whitespace(s)
    if value(s):
        return True
    whitespace(s)
    if s.pos != s.end:
        return syntax(s)
    return False


cdef bint value(Scan *s) noexcept nogil:
    cdef int byte
    if peek(s) != 91:
        broken(s, STROKES_NOT_ARRAY)
        if skip_value(s):
            return True
    else:
        s.pos += 1
        whitespace(s)
        if peek(s) == 93:
            s.pos += 1
            broken(s, STROKES_EMPTY)
        else:
            while True:
                if stroke(s):
                    return True
                whitespace(s)
                byte = take(s)
                if byte == 93:
                    break
                if byte != 44:
                    s.pos -= 1
                    return syntax(s)
                whitespace(s)
                s.i += 1
    return False


cdef inline void start_scan(Scan *s, const unsigned char *text, Py_ssize_t start, Py_ssize_t end) noexcept nogil:
    s.text = text
    s.pos, s.end = start, end
    s.i = s.j = s.k = s.n = 0
    s.problem = 0
    s.wi = s.wj = s.wk = s.wn = s.wat = 0
    s.stopped = RUNNING


cdef object verdict_of(Scan *s):
    if s.stopped == STOP_UNDECIDED:
        return UNDECIDED, message(s.problem, s.wi, s.wj, s.wk, s.wn, s.wat)
    if s.stopped == STOP_INVALID or s.problem:
        return INVALID, message(s.problem, s.wi, s.wj, s.wk, s.wn, s.wat)
    return VALID, None


# bytes rather than any buffer: acquiring a typed memoryview cost more than a check's scan.
def check_strokes(bytes text not None, Py_ssize_t start, Py_ssize_t end):
    """(verdict, message) for the strokes at text[start:end], as ext/strokecheck_ref.py says."""
    cdef Py_ssize_t size = len(text)
    cdef Scan s
    if not 0 <= start <= end <= size:
        raise ValueError(f"span {start}:{end} is outside the {size} bytes given")
    start_scan(&s, <const unsigned char *>text, start, end)
    if end - start >= NOGIL_BYTES:
        with nogil:
            strokes(&s)
    else:
        strokes(&s)
    return verdict_of(&s)


cdef enum:
    # Why find_strokes leaves an answer to the parser: the codes of ext/strokecheck_ref.py.
    NOT_AN_OBJECT = 1
    UNTERMINATED = 2
    ESCAPED_MEMBER = 3
    TWO_STROKES = 4
    NO_COLON = 5
    NO_STROKES = 6


cdef int locate(Scan *s, Py_ssize_t *found_start, Py_ssize_t *found_end) noexcept nogil:
    """find_strokes' top-level pass: 0 when s found the strokes (VALID unless s says otherwise),
    else why they were not found. The strokes' own verdict is in s."""
    cdef const unsigned char *text = s.text
    cdef Py_ssize_t size = s.end, pos = 0, depth = 0, began, name_end
    cdef bint expect_name = False
    cdef unsigned char byte
    found_start[0] = found_end[0] = -1
    while pos < size and is_space(text[pos]):
        pos += 1
    if pos >= size or text[pos] != 123:
        return NOT_AN_OBJECT
    while pos < size:
        byte = text[pos]
        if byte == 34:
            pos += 1
            began = pos
            while pos < size and text[pos] != 34:
                pos += 2 if text[pos] == 92 else 1
            if pos >= size:
                return UNTERMINATED
            name_end = pos
            pos += 1
            if depth == 1 and expect_name:
                expect_name = False
                if memchr(text + began, 92, name_end - began) != NULL:
                    return ESCAPED_MEMBER
                if name_end - began == 7 and memcmp(text + began, b"strokes", 7) == 0:
                    if found_start[0] >= 0:
                        return TWO_STROKES
                    while pos < size and is_space(text[pos]):
                        pos += 1
                    if pos >= size or text[pos] != 58:
                        return NO_COLON
                    pos += 1
                    while pos < size and is_space(text[pos]):
                        pos += 1
                    s.pos = pos
                    if value(s) or s.problem:
                        return 0
                    found_start[0], found_end[0] = pos, s.pos
                    pos = s.pos
            continue
        if byte == 123 or byte == 91:
            depth += 1
            if depth == 1:
                expect_name = True
        elif byte == 125 or byte == 93:
            depth -= 1
        elif byte == 44 and depth == 1:
            expect_name = True
        if depth <= 0:
            return 0 if found_start[0] >= 0 else NO_STROKES
        pos += 1
    return UNTERMINATED


def find_strokes(bytes text not None):
    """(verdict, start, end, message) for the strokes of the answer `text`, located and checked
    in one pass, as ext/strokecheck_ref.py says."""
    cdef Py_ssize_t size = len(text), start, end
    cdef Scan s
    cdef int missing
    start_scan(&s, <const unsigned char *>text, 0, size)
    if size >= NOGIL_BYTES:
        with nogil:
            missing = locate(&s, &start, &end)
    else:
        missing = locate(&s, &start, &end)
    if missing:
        return UNDECIDED, -1, -1, LOCATE_MESSAGES[missing]
    verdict, problem = verdict_of(&s)
    if verdict != VALID:
        return verdict, -1, -1, problem
    return VALID, start, end, None
