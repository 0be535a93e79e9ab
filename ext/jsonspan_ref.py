"""Plain-Python reference of the JSON value locator (ext/jsonspan.pyx must agree with it).

value_span(text, key) -> (start, end) | None

`text` should be a JSON document that a parser has already accepted; if it is an object with the
member `key` at the top level, written without escapes, returns the byte span of that member's
value (the last one, as parsers keep the last of duplicate names), without surrounding
whitespace. Otherwise None, and the caller serialises the parsed value instead; bytes that are
not JSON give None or a meaningless span, never an error. Central stores an answer's strokes as
this slice of the payload rather than re-serialising the parsed strokes.
"""

_WHITESPACE = b" \t\r\n"
_QUOTE, _BACKSLASH, _COMMA = ord('"'), ord("\\"), ord(",")


def _skip_whitespace(text: bytes, pos: int) -> int:
    while pos < len(text) and text[pos] in _WHITESPACE:
        pos += 1
    return pos


def value_span(text: bytes, key: bytes) -> tuple[int, int] | None:
    size = len(text)
    pos = _skip_whitespace(text, 0)
    if pos >= size or text[pos] != ord("{"):
        return None
    depth = 0
    found: tuple[int, int] | None = None
    value_start = -1  # where the wanted member's value starts, while it is being read
    expect_key = False
    while pos < size:
        byte = text[pos]
        if byte == _QUOTE:
            start = pos = pos + 1
            while pos < size and text[pos] != _QUOTE:
                pos += 2 if text[pos] == _BACKSLASH else 1
            if pos >= size:
                return None  # an unterminated string
            string_end = pos
            pos += 1
            if depth == 1 and expect_key:
                expect_key = False
                pos = _skip_whitespace(text, pos)
                if text[start:string_end] == key:
                    value_start = _skip_whitespace(text, pos + 1)
                pos += 1
            continue
        if byte in b"{[":
            depth += 1
            if depth == 1:
                expect_key = True
        elif byte in b"}]":
            depth -= 1
        elif byte == _COMMA and depth == 1:
            expect_key = True
        if value_start >= 0 and (depth == 0 or (depth == 1 and byte == _COMMA)):
            end = pos
            while end > value_start and text[end - 1] in _WHITESPACE:
                end -= 1
            found = (value_start, end)
            value_start = -1
        if depth <= 0:
            return found
        pos += 1
    return None  # the object never closed
