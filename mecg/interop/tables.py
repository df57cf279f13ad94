"""Spreadsheet tables: ``.xlsx`` workbooks and ``.csv`` files as rows of cells, header rows, cell values.

Shared by the public dataset adapters (:mod:`mecg.interop.datasets`) and the coder sheets
(:mod:`mecg.interop.coder_sheets`). Cells come back as Python values (``str``, ``int``, ``float``,
``None``); CSV cells are strings. Header cells are compared after :func:`norm`: lowercase letters
and digits only, so ``"Onset Frame"``, ``"onset_frame"`` and ``"OnsetFrame"`` are one name.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mecg.errors import MecgError
from mecg.session.annotations import ExpressionType

#: Rows searched for a header row at the top of a sheet.
HEADER_SEARCH_ROWS = 40


class SheetError(MecgError):
    """A spreadsheet cannot be read or does not hold the table expected."""


@dataclass
class Sheet:
    """One sheet: its name, its rows of cells and its merged cell ranges.

    ``merged`` holds ``(first_row, first_col, last_row, last_col)``, 0-based and inclusive; it is
    filled only by :func:`read_table` (a CSV has none).
    """

    name: str
    rows: list[list[object]]
    merged: list[tuple[int, int, int, int]] = field(default_factory=list)


def norm(value: object) -> str:
    """A header cell reduced to lowercase letters and digits (``"Onset Frame"`` -> ``onsetframe``)."""
    return re.sub(r"[^a-z0-9]", "", str(value).lower()) if value is not None else ""


def cell(row: Sequence[object], i: int | None) -> object:
    """The cell ``i`` of ``row``, or None past its end (or when ``i`` is None)."""
    return row[i] if i is not None and i < len(row) else None


def text(value: object) -> str:
    """A cell as stripped text; whole floats lose their ``.0``; empty for None/NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def to_int(value: object) -> int | None:
    """A cell as an integer frame number, or None when empty or not a whole number."""
    t = text(value)
    if not t:
        return None
    try:
        f = float(t)
    except ValueError:
        return None
    return int(f) if math.isfinite(f) and f.is_integer() else None


def to_float(value: object) -> float | None:
    """A cell as a finite number, or None when empty; raises ``ValueError`` for text that is not one."""
    t = text(value)
    if not t:
        return None
    f = float(t)
    if not math.isfinite(f):
        raise ValueError(t)
    return f


def aus(value: str) -> str:
    """FACS units as ``AU4+AU9``: bare numbers get an ``AU`` prefix, anything else is kept."""
    parts = [p.strip() for p in re.split(r"[+,;]", value) if p.strip()]
    return "+".join(f"AU{p}" if p.isdigit() else p for p in parts)


def expression_type(value: str) -> ExpressionType | None:
    """``"ME"`` / ``"MaE"`` from a type cell (``ME``, ``MaE``, ``micro``, ``Macro``, ``Micro - 1/2``), else None."""
    t = value.strip().lower()
    if t in ("me", "micro", "microexpression"):
        return "ME"
    if t in ("mae", "macro", "macroexpression"):
        return "MaE"
    if "micro" in t:
        return "ME"
    if "macro" in t:
        return "MaE"
    return None


def _load_workbook(path: Path, error: type[MecgError], read_only: bool):
    try:
        import openpyxl
    except ImportError:  # pragma: no cover - openpyxl is a dependency
        raise error(f"reading {path.name} needs openpyxl (pip install openpyxl)") from None
    try:
        return openpyxl.load_workbook(path, read_only=read_only, data_only=True)
    except Exception as exc:  # openpyxl raises many types for a damaged file
        raise error(f"cannot read {path}: {exc}") from None


def _check_suffix(path: Path, error: type[MecgError]) -> str:
    suffix = path.suffix.lower()
    if suffix == ".xls":
        raise error(f"{path} is an old Excel .xls file; open it and save it as .xlsx (or export .csv)")
    if suffix not in (".xlsx", ".xlsm", ".csv"):
        raise error(f"{path} is not an .xlsx or .csv file")
    if not path.is_file():
        raise error(f"{path} does not exist or is not a file")
    return suffix


def _read_csv(path: Path, error: type[MecgError]) -> list[list[object]]:
    for enc in ("utf-8-sig", "gbk", "latin-1"):
        try:
            with path.open(newline="", encoding=enc) as fh:
                return [list(r) for r in csv.reader(fh)]
        except UnicodeDecodeError:
            continue
        except csv.Error as exc:
            raise error(f"{path} is not a readable CSV file ({exc})") from None
    raise error(f"{path} is not a text CSV file")  # pragma: no cover - latin-1 decodes any bytes


def read_sheets(path: Path, error: type[MecgError] = SheetError) -> dict[str, list[list[object]]]:
    """All sheets of an ``.xlsx`` (by sheet name) or the rows of one ``.csv`` (keyed by file stem).

    ``error`` is the exception type raised for an unreadable file (the caller's room's own).
    """
    if _check_suffix(path, error) == ".csv":
        return {path.stem: _read_csv(path, error)}
    wb = _load_workbook(path, error, read_only=True)
    try:
        return {ws.title: [list(r) for r in ws.iter_rows(values_only=True)] for ws in wb.worksheets}
    finally:
        wb.close()


def read_table(path: Path, error: type[MecgError] = SheetError) -> list[Sheet]:
    """Every sheet of an ``.xlsx`` with its merged cell ranges, or the one sheet of a ``.csv``.

    Loads the whole workbook (not streamed), which is fine for annotation sheets of a few
    thousand rows. Trailing empty rows are dropped.
    """
    if _check_suffix(path, error) == ".csv":
        sheets = [Sheet(path.stem, _read_csv(path, error))]
    else:
        wb = _load_workbook(path, error, read_only=False)
        try:
            sheets = []
            for ws in wb.worksheets:
                merged = [(r.min_row - 1, r.min_col - 1, r.max_row - 1, r.max_col - 1) for r in ws.merged_cells.ranges]
                sheets.append(Sheet(ws.title, [list(r) for r in ws.iter_rows(values_only=True)], merged))
        finally:
            wb.close()
    for s in sheets:
        while s.rows and not any(text(c) for c in s.rows[-1]):
            s.rows.pop()
    return sheets


def find_header(rows: list[list[object]], spec: dict[str, tuple[str, ...]]) -> tuple[int, dict[str, int]] | None:
    """The first row (within :data:`HEADER_SEARCH_ROWS`) naming onset and offset, and its column map.

    ``spec`` maps a field to the normalized header names it accepts; a name ending in ``*``
    matches as a prefix. The first matching column wins.
    """
    for r, row in enumerate(rows[:HEADER_SEARCH_ROWS]):
        cols: dict[str, int] = {}
        for c, value in enumerate(row):
            n = norm(value)
            if not n:
                continue
            for fld, names in spec.items():
                if fld in cols:
                    continue
                if any(n == x or (x.endswith("*") and n.startswith(x[:-1])) for x in names):
                    cols[fld] = c
                    break
        if "onset" in cols and "offset" in cols:
            return r, cols
    return None


def column_letter(col: int) -> str:
    """Spreadsheet column name of a 0-based column index (0 -> ``A``, 27 -> ``AB``)."""
    out = ""
    col += 1
    while col:
        col, rem = divmod(col - 1, 26)
        out = chr(65 + rem) + out
    return out
