# cython: language_level=3
"""JSON value locator: the fast twin of ext/jsonspan_ref.py (read that for the rules).

One pass over an answer's payload (a few kB) finds its strokes, so that central stores that slice
instead of re-serialising thousands of parsed pen-point numbers.
"""


cdef inline bint _is_space(unsigned char byte):
    return byte == 32 or byte == 9 or byte == 13 or byte == 10


cdef inline Py_ssize_t _skip_whitespace(const unsigned char *text, Py_ssize_t size, Py_ssize_t pos):
    while pos < size and _is_space(text[pos]):
        pos += 1
    return pos


def value_span(const unsigned char[::1] data, bytes key):
    cdef Py_ssize_t size = data.shape[0]
    if size == 0:
        return None
    cdef const unsigned char *text = &data[0]
    cdef const unsigned char *wanted = key
    cdef Py_ssize_t key_len = len(key)
    cdef Py_ssize_t pos = _skip_whitespace(text, size, 0)
    cdef Py_ssize_t depth = 0, value_start = -1, start, string_end, end, i
    cdef Py_ssize_t found_start = -1, found_end = -1
    cdef bint expect_key = False, same
    cdef unsigned char byte
    if pos >= size or text[pos] != b'{':
        return None
    while pos < size:
        byte = text[pos]
        if byte == b'"':
            pos += 1
            start = pos
            while pos < size and text[pos] != b'"':
                pos += 2 if text[pos] == b'\\' else 1
            if pos >= size:
                return None
            string_end = pos
            pos += 1
            if depth == 1 and expect_key:
                expect_key = False
                pos = _skip_whitespace(text, size, pos)
                same = string_end - start == key_len
                i = 0
                while same and i < key_len:
                    same = text[start + i] == wanted[i]
                    i += 1
                if same:
                    value_start = _skip_whitespace(text, size, pos + 1)
                pos += 1
            continue
        if byte == b'{' or byte == b'[':
            depth += 1
            if depth == 1:
                expect_key = True
        elif byte == b'}' or byte == b']':
            depth -= 1
        elif byte == b',' and depth == 1:
            expect_key = True
        if value_start >= 0 and (depth == 0 or (depth == 1 and byte == b',')):
            end = pos
            while end > value_start and _is_space(text[end - 1]):
                end -= 1
            found_start, found_end = value_start, end
            value_start = -1
        if depth <= 0:
            return None if found_start < 0 else (found_start, found_end)
        pos += 1
    return None
