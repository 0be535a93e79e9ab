"""The pen registry: which student (and booklet) each pen currently belongs to, and its password.

One JSON file per classroom, the roster the gateway already reads, in either form:

    {"pens": {"9c:7b:ef:00:00:01": "stu-001"}}
    {"pens": {"9c:7b:ef:00:00:01": {"student": "stu-001", "booklet": "b-17", "password": "4821"}}}

Pens are keyed by address (the MAC, lower case, colon separated, as PenInfo.pen_id prints it), so
a pen handed to another student is one line changed, and the gateway never has to guess.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PenEntry:
    student: str
    booklet: str | None = None
    password: str | None = None


def normalise_address(address: str) -> str:
    """'9C-7B-EF-00-00-01', '9c7bef000001' and '9C:7B:EF:00:00:01' are the same pen."""
    digits = "".join(c for c in address.lower() if c in "0123456789abcdef")
    if len(digits) != 12:
        raise ValueError(f"{address!r} is not a pen address")
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


class PenRegistry:
    def __init__(self, entries: dict[str, PenEntry] | None = None) -> None:
        self._entries = {normalise_address(k): v for k, v in (entries or {}).items()}

    @classmethod
    def load(cls, path: Path | None) -> PenRegistry:
        if path is None:
            return cls()
        try:
            pens = json.loads(Path(path).read_text())["pens"]
            return cls({str(k): _entry(v) for k, v in pens.items()})
        except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                f'{path}: a roster is JSON {{"pens": {{address: student or '
                f'{{"student", "booklet", "password"}}}}}}: {exc}'
            ) from exc

    def __contains__(self, address: str) -> bool:
        return normalise_address(address) in self._entries

    def entry(self, address: str) -> PenEntry | None:
        return self._entries.get(normalise_address(address))

    def password_for(self, address: str) -> str | None:
        found = self.entry(address)
        return found.password if found else None

    def assign(self, address: str, entry: PenEntry) -> None:
        self._entries[normalise_address(address)] = entry

    def roster(self) -> dict[str, str]:
        """pen id -> student id, as the pipeline labels answers."""
        return {k: v.student for k, v in self._entries.items()}


def _entry(value: object) -> PenEntry:
    if isinstance(value, str):
        return PenEntry(value)
    if isinstance(value, dict):
        return PenEntry(str(value["student"]), value.get("booklet"), value.get("password"))
    raise TypeError(f"{value!r} is neither a student id nor an object")
