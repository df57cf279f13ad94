"""SAMM Long Videos: ``SAMM_longvideos/SSS_V/SSS_V_<NNNN>.jpg`` and the release spreadsheet (200 fps)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Unpack

from mecg.interop.datasets.base import Dataset, DatasetError, VideoFolder, subdirs
from mecg.interop.datasets.importer import ImportOptions, ImportReport, Layout, import_layout
from mecg.interop.datasets.sheets import AnnotationRow, row_from_cells
from mecg.interop.tables import HEADER_SEARCH_ROWS, read_sheets
from mecg.interop.tables import cell as _cell
from mecg.interop.tables import find_header as _find_header
from mecg.interop.tables import text as _text
from mecg.interop.tables import to_int as _int

#: Frame rate of the public release in Hz.
SAMM_LV_FPS = 200.0

_SAMM_HEADER = {
    "subject": ("subject",),
    "filename": ("filename", "file"),
    "inducement": ("inducementcode", "inducement*"),
    "onset": ("onset*",),
    "apex": ("apex*",),
    "offset": ("offset*",),
    "type": ("type", "expressiontype"),
    "aus": ("actionunit*", "aus", "au"),
    "emotion": ("emotion", "estimatedemotion"),
}
_SAMM_VIDEO_DIR = re.compile(r"^(\d+)_(\d+)$")


def _samm_looks_right(p: Path) -> bool:
    return any(_SAMM_VIDEO_DIR.match(d.name) for d in subdirs(p))


def _samm_videos(pics: Path, problems: list[str]) -> dict[str, VideoFolder]:
    out: dict[str, VideoFolder] = {}
    for vdir in subdirs(pics):
        m = _SAMM_VIDEO_DIR.match(vdir.name)
        if not m:
            problems.append(f"{vdir.name}: not a video folder (expected SSS_V, e.g. 006_1); ignored")
            continue
        key = f"sammlv_{vdir.name}"
        out[vdir.name] = VideoFolder(key, f"sammlv-{m.group(1)}", vdir, frozenset({key, vdir.name}))
    return out


def _samm_rows(path: Path, videos: dict[str, VideoFolder], problems: list[str]) -> list[AnnotationRow]:
    sheets = read_sheets(path, DatasetError)
    hit = next(((n, rows, f) for n, rows in sheets.items() if (f := _find_header(rows, _SAMM_HEADER))), None)
    if hit is None:
        raise DatasetError(
            f"{path}: no header row with Onset and Offset columns in the first {HEADER_SEARCH_ROWS} rows "
            "of any sheet; is this the SAMM Long Videos spreadsheet?"
        )
    sheet, rows, (hdr, cols) = hit
    if "filename" not in cols and not ("subject" in cols and "inducement" in cols):
        raise DatasetError(f"{path}: the header row names no Filename (or Subject and Inducement Code) column")
    out: list[AnnotationRow] = []
    for r in range(hdr + 1, len(rows)):
        row = rows[r]
        where = f"{path.name}, sheet {sheet!r}, row {r + 1}"
        fname = _text(_cell(row, cols.get("filename")))
        onset = _int(_cell(row, cols["onset"]))
        if not fname and onset is None:
            continue  # blank or trailing row
        parts = fname.split("_")
        if len(parts) >= 2 and parts[0].isdigit() and parts[1].isdigit():
            vid = f"{parts[0]}_{parts[1]}"
        else:
            subj, ind = _int(_cell(row, cols.get("subject"))), _int(_cell(row, cols.get("inducement")))
            if subj is None or ind is None:
                problems.append(f"{where}: cannot tell the video from Filename {fname!r}; skipped")
                continue
            vid = f"{subj:03d}_{ind}"
        # a folder named 6_1 would be unusual; match the subject number however it is padded
        if vid not in videos:
            s, v = vid.split("_")
            vid = next((k for k in videos if k.split("_") == [s.zfill(3), v] or k == f"{int(s)}_{v}"), vid)
        video = videos.get(vid)
        key = video.key if video else f"sammlv_{vid}"
        out.append(row_from_cells(where, key, f"{fname or vid} -> video {vid}", onset, row, cols))
    if not out:
        raise DatasetError(f"{path}: no annotation rows below the header row")
    return out


#: The SAMM Long Videos layout as :func:`mecg.interop.datasets.importer.import_layout` reads it.
SAMM_LV = Layout(
    dataset=Dataset.SAMM_LV,
    title="SAMM Long Videos",
    fps=SAMM_LV_FPS,
    images_dir="SAMM_longvideos",
    layout="SAMM_longvideos/SSS_V/SSS_V_<NNNN>.jpg",
    manifest="import_sammlv.json",
    looks_right=_samm_looks_right,
    find_videos=_samm_videos,
    annotation_patterns=(r"samm_?long_?videos.*\.(xlsx|csv|xls)$", r"samm.*\.(xlsx|csv)$"),
    annotation_what="SAMM_LongVideos_V3_Release.xlsx (or V1/V2, or a .csv export)",
    read_rows=_samm_rows,
)


def import_samm_lv(
    root: str | os.PathLike, out_dir: str | os.PathLike, **options: Unpack[ImportOptions]
) -> ImportReport:
    """Write one session per SAMM Long Videos video (``SAMM_longvideos/SSS_V``) into ``out_dir``.

    ``root`` holds ``SAMM_longvideos`` and ``SAMM_LongVideos_V*_Release.xlsx`` (or is the
    ``SAMM_longvideos`` folder itself); an uncoded apex or offset is ``-1`` there. Sessions are
    named ``sammlv_006_1.h5`` (subject id ``sammlv-006``); ``videos`` takes names like ``006_1``.
    The other parameters are those of :func:`import_casme2`; the manifest is ``import_sammlv.json``.
    """
    return import_layout(SAMM_LV, root, out_dir, **options)
