"""Annotation spreadsheets -> annotations: finding the file, one row's image numbers -> frame indices."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mecg.interop.datasets.base import DatasetError, OffsetRule, VideoFolder
from mecg.interop.tables import aus as _aus
from mecg.interop.tables import cell as _cell
from mecg.interop.tables import expression_type as _expression_type
from mecg.interop.tables import text as _text
from mecg.interop.tables import to_int as _int
from mecg.session import Annotation


@dataclass
class AnnotationRow:
    """One coded expression as the spreadsheet gives it (image numbers, 1-based)."""

    where: str  #: ``file, sheet, row N`` for messages
    video: str  #: the video key it belongs to ("" when it could not be resolved)
    label: str  #: how the row names its video, for messages
    onset: int | None
    apex: int | None
    offset: int | None
    type_text: str
    aus: str
    emotion: str


def row_from_cells(
    where: str, video: str, label: str, onset: int | None, row: Sequence[object], cols: Mapping[str, int]
) -> AnnotationRow:
    """An :class:`AnnotationRow` with apex, offset, type, AUs and emotion read from ``row``.

    ``cols`` maps ``apex``/``offset``/``type``/``aus``/``emotion`` to column indices; an absent
    column reads as an empty cell (None for frame numbers, "" for text).
    """
    return AnnotationRow(
        where,
        video,
        label,
        onset,
        _int(_cell(row, cols.get("apex"))),
        _int(_cell(row, cols.get("offset"))),
        _text(_cell(row, cols.get("type"))),
        _aus(_text(_cell(row, cols.get("aus")))),
        _text(_cell(row, cols.get("emotion"))),
    )


def find_annotation_file(dirs: Iterable[Path], patterns: Sequence[str], what: str) -> Path:
    """The best annotation file in ``dirs``: the first pattern that matches, .xlsx before .csv."""
    files = [f for d in dirs if d.is_dir() for f in sorted(d.iterdir()) if f.is_file()]
    for pat in patterns:
        rx = re.compile(pat, re.IGNORECASE)
        hits = [f for f in files if rx.search(f.name)]
        for suffix in (".xlsx", ".csv", ".xls"):
            same = [f for f in hits if f.suffix.lower() == suffix]
            if same:
                # highest release first: "(Updated)" and V3 sort after the plain and V1 names
                return sorted(same, key=lambda f: (("updated" in f.name.lower()), f.name))[-1]
    searched = ", ".join(str(d) for d in dirs)
    raise DatasetError(f"no annotation file found in {searched}: expected {what}; pass --annotations FILE")


def map_row(
    row: AnnotationRow, video: VideoFolder, offset_rule: OffsetRule | str, problems: list[str]
) -> Annotation | None:
    """Image numbers -> 0-based indices of ``video``; None (with a problem line) if unusable.

    Missing apex or offset is 0, a negative number or an empty cell. Onset maps to the first
    image at or after it, offset to the last image at or before it (clamping to the video).
    """
    nums = video.numbers
    where = f"{row.where} ({row.label})"
    kind = _expression_type(row.type_text)
    if kind is None:
        problems.append(f"{where}: skipped, type {row.type_text!r} is neither micro nor macro")
        return None
    if row.onset is None or row.onset < 0:
        problems.append(f"{where}: skipped, no onset")
        return None
    apex = row.apex if row.apex is not None and row.apex > 0 else None
    offset = row.offset if row.offset is not None and row.offset > 0 else None
    if offset is None:
        if apex is None:
            problems.append(f"{where}: skipped, neither apex nor offset is coded")
            return None
        offset = apex + (apex - row.onset) if offset_rule == OffsetRule.MIRROR else apex
        problems.append(f"{where}: no offset; taken as {offset} ({offset_rule} rule)")
    on = int(np.searchsorted(nums, row.onset, side="left"))
    off = int(np.searchsorted(nums, offset, side="right")) - 1
    if on >= len(nums):
        problems.append(f"{where}: skipped, onset {row.onset} is after the last image ({nums[-1]})")
        return None
    if off < on:
        problems.append(f"{where}: skipped, offset {offset} is before onset {row.onset} or no image lies between")
        return None
    if row.onset < nums[0]:
        problems.append(f"{where}: onset {row.onset} is before the first image ({nums[0]}); clamped to it")
    if offset > nums[-1]:
        problems.append(f"{where}: offset {offset} is after the last image ({nums[-1]}); clamped to it")
    if apex is None:
        ap = (on + off) // 2
        problems.append(f"{where}: no apex; the middle frame is used")
    elif not row.onset <= apex <= offset:
        ap = (on + off) // 2
        problems.append(f"{where}: apex {apex} lies outside [{row.onset}, {offset}]; the middle frame is used")
    else:
        ap = min(max(int(np.searchsorted(nums, apex, side="left")), on), off)
    return Annotation(on, ap, off, kind, row.aus, row.emotion)
