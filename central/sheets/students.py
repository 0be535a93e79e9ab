"""The class list a booklet run prints for: a CSV file with the header `student_id,name`."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from central.sheets import SheetsError

COLUMNS = ("student_id", "name")


@dataclass(frozen=True)
class Student:
    student_id: str
    name: str


def read_students(path: Path) -> list[Student]:
    """Every student of the file in order; SheetsError naming the file and row otherwise.

    Further columns are allowed and ignored, so a school's own export can be used as it is.
    """
    try:
        # utf-8-sig: spreadsheet programs often start a UTF-8 CSV with a byte-order mark.
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise SheetsError(f"students file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as error:
        raise SheetsError(
            f"cannot read students file {path}: {error}; save it as UTF-8 CSV"
        ) from error
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip() for h in reader.fieldnames or []]
    if not set(COLUMNS) <= set(header):
        raise SheetsError(
            f"{path}: the first line must be the header `student_id,name` "
            f"(found {','.join(header) or 'nothing'})"
        )
    reader.fieldnames = header
    students: list[Student] = []
    first_row: dict[str, int] = {}
    try:
        for row in reader:
            line = reader.line_num
            if None in row:
                raise SheetsError(f"{path}, line {line}: more fields than the header names")
            student_id = (row["student_id"] or "").strip()
            name = (row["name"] or "").strip()
            if not student_id:
                if not name and not any((v or "").strip() for v in row.values()):
                    continue  # a blank line
                raise SheetsError(f"{path}, line {line}: student_id is missing (name {name!r})")
            if student_id in first_row:
                raise SheetsError(
                    f"{path}, line {line}: student_id {student_id!r} already appears on line "
                    f"{first_row[student_id]}; every student needs their own id"
                )
            first_row[student_id] = line
            students.append(Student(student_id, name))
    except csv.Error as error:
        raise SheetsError(f"{path}, line {reader.line_num}: not valid CSV: {error}") from error
    if not students:
        raise SheetsError(f"{path} lists no students: add one line `student_id,name` per student")
    return students
