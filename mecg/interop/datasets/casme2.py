"""CAS(ME)^2 long videos: ``rawpic/sNN/NN_CODEname/img<N>.jpg`` and the code workbook (30 fps)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Unpack

from mecg.interop.datasets.base import Dataset, DatasetError, VideoFolder, subdirs
from mecg.interop.datasets.importer import ImportOptions, ImportReport, Layout, import_layout
from mecg.interop.datasets.sheets import AnnotationRow, row_from_cells
from mecg.interop.tables import cell as _cell
from mecg.interop.tables import find_header as _find_header
from mecg.interop.tables import norm as _norm
from mecg.interop.tables import read_sheets
from mecg.interop.tables import text as _text
from mecg.interop.tables import to_int as _int

#: Frame rate of the public release in Hz.
CASME2_FPS = 30.0
#: Video codes of CAS(ME)^2 by clip name, used only when the "naming rule2" sheet is absent.
CASME2_VIDEO_CODES = {
    "disgust1": "0101",
    "disgust2": "0102",
    "anger1": "0401",
    "anger2": "0402",
    "happy1": "0502",
    "happy2": "0503",
    "happy3": "0505",
    "happy4": "0507",
    "happy5": "0508",
}

_CASME2_HEADER = {
    "subject": ("subject", "participant", "subjectid", "sub", "pid"),
    "video": ("video", "videoname*", "clip*", "filename", "name", "expression", "videoid"),
    "onset": ("onset*",),
    "apex": ("apex*",),
    "offset": ("offset*",),
    "aus": ("aus", "au", "actionunit*"),
    "emotion": ("emotion", "estimatedemotion", "extimatedemotion", "emotioncategory", "valence"),
    "type": ("type", "expressiontype"),
}
#: Columns of the codes sheet, which ships without a header row.
_CASME2_POSITIONS = {"subject": 0, "video": 1, "onset": 2, "apex": 3, "offset": 4, "aus": 5, "emotion": 6, "type": 7}
_CASME2_SUBJECT_DIR = re.compile(r"^[sS]?(\d+)$")
_CASME2_VIDEO_DIR = re.compile(r"^(\d+)_(\d{4})")


def _casme2_looks_right(p: Path) -> bool:
    return any(_CASME2_SUBJECT_DIR.match(d.name) for d in subdirs(p))


def _casme2_videos(pics: Path, problems: list[str]) -> dict[tuple[int, str], VideoFolder]:
    """Video folders by (subject number, 4-digit video code).

    A folder's subject is the number before the underscore in its own name; the distributed
    ``rawpic/s19/23_0502funnyerrors`` therefore counts as subject 23 (a note says so).
    """
    out: dict[tuple[int, str], VideoFolder] = {}
    for sdir in subdirs(pics):
        ms = _CASME2_SUBJECT_DIR.match(sdir.name)
        if not ms:
            continue
        for vdir in subdirs(sdir):
            mv = _CASME2_VIDEO_DIR.match(vdir.name)
            if not mv:
                problems.append(f"{sdir.name}/{vdir.name}: not a video folder (expected NN_CODEname); ignored")
                continue
            subj, code = int(mv.group(1)), mv.group(2)
            if subj != int(ms.group(1)):
                problems.append(
                    f"{sdir.name}/{vdir.name}: lies in {sdir.name} but is named for subject {subj}; counted as s{subj}"
                )
            if (subj, code) in out:
                problems.append(f"{sdir.name}/{vdir.name}: a second folder for s{subj} video {code}; ignored")
                continue
            key = f"casme2_s{subj}_{code}"
            aliases = frozenset({key, vdir.name, f"s{subj}_{code}", f"{subj}_{code}"})
            out[(subj, code)] = VideoFolder(key, f"casme2-s{subj}", vdir, aliases)
    return out


def _casme2_naming(path: Path, sheets: dict[str, list[list[object]]]) -> tuple[dict[int, int], dict[str, str]]:
    """Participant number -> subject folder number, and clip name -> video code.

    From the workbook's "naming rule1"/"naming rule2" sheets (by name, else sheets 2 and 3),
    or, next to a CSV, from files named like ``naming_rule1.csv`` / ``naming_rule2.csv``.
    """
    names = list(sheets)
    rule1 = next((sheets[n] for n in names if "rule1" in _norm(n)), None)
    rule2 = next((sheets[n] for n in names if "rule2" in _norm(n)), None)
    if path.suffix.lower() != ".csv" and len(names) >= 3:
        rule1 = rule1 if rule1 is not None else sheets[names[1]]
        rule2 = rule2 if rule2 is not None else sheets[names[2]]
    if path.suffix.lower() == ".csv":
        for f in sorted(path.parent.glob("*.csv")):
            if rule1 is None and "rule1" in _norm(f.stem):
                rule1 = next(iter(read_sheets(f, DatasetError).values()))
            if rule2 is None and "rule2" in _norm(f.stem):
                rule2 = next(iter(read_sheets(f, DatasetError).values()))
    subjects: dict[int, int] = {}
    for row in rule1 or []:
        folder = next((m for c in row if (m := re.fullmatch(r"[sS](\d+)", _text(c)))), None)
        ids = [v for c in row if (v := _int(c)) is not None]
        if folder and ids:
            subjects[ids[-1]] = int(folder.group(1))
    codes: dict[str, str] = {}
    for row in rule2 or []:
        code, name = _text(_cell(row, 0)), _text(_cell(row, 1))
        if name.isdigit() and not code.isdigit():
            code, name = name, code
        if code.isdigit() and name:
            codes[name.lower()] = code.zfill(4)
    return subjects, codes


def _casme2_rows(path: Path, videos: dict[tuple[int, str], VideoFolder], problems: list[str]) -> list[AnnotationRow]:
    sheets = read_sheets(path, DatasetError)
    subjects, codes = _casme2_naming(path, sheets)
    codes = {**CASME2_VIDEO_CODES, **codes}
    names = list(sheets)
    main = next((n for n in names if "code" in _norm(n)), names[0])
    rows = sheets[main]
    found = _find_header(rows, _CASME2_HEADER)
    start, cols = (found[0] + 1, found[1]) if found else (0, _CASME2_POSITIONS)
    if "subject" not in cols or "video" not in cols:
        raise DatasetError(f"{path}: the header row names no subject/participant or video column")
    out: list[AnnotationRow] = []
    for r in range(start, len(rows)):
        row = rows[r]
        where = f"{path.name}, sheet {main!r}, row {r + 1}"
        subj_text, clip = _text(_cell(row, cols["subject"])), _text(_cell(row, cols["video"]))
        onset = _int(_cell(row, cols["onset"]))
        if not subj_text and not clip:
            continue  # blank row
        if onset is None and _int(_cell(row, cols["offset"])) is None:
            problems.append(f"{where}: not an annotation row (no onset/offset number); ignored")
            continue
        m = re.fullmatch(r"[sS](\d+)", subj_text)
        if m:
            subj = int(m.group(1))
        elif (pid := _int(subj_text)) is not None and pid in subjects:
            subj = subjects[pid]
        elif not subjects:
            raise DatasetError(
                f"{path}: participant numbers need the 'naming rule1' sheet (participant -> sNN folder); "
                "use the whole workbook, or export that sheet as naming_rule1.csv next to the CSV"
            )
        else:
            problems.append(f"{where}: participant {subj_text!r} is not in the 'naming rule1' sheet; skipped")
            continue
        name = clip.split("_")[0].lower()
        code = codes.get(name) or (name if re.fullmatch(r"\d{4}", name) else None)
        label = f"s{subj} {clip}"
        if code is None:
            problems.append(f"{where} ({label}): clip name {name!r} is not in the 'naming rule2' sheet; skipped")
            continue
        video = videos.get((subj, code))
        key = video.key if video else f"casme2_s{subj}_{code}"
        out.append(row_from_cells(where, key, f"{label} -> video {subj}_{code}", onset, row, cols))
    if not out:
        raise DatasetError(f"{path}: no annotation rows found; is this the CAS(ME)^2 code sheet?")
    return out


#: The CAS(ME)^2 layout as :func:`mecg.interop.datasets.importer.import_layout` reads it.
CASME2 = Layout(
    dataset=Dataset.CASME2,
    title="CAS(ME)^2",
    fps=CASME2_FPS,
    images_dir="rawpic",
    layout="rawpic/sNN/NN_CODEname/img<N>.jpg",
    manifest="import_casme2.json",
    looks_right=_casme2_looks_right,
    find_videos=_casme2_videos,
    annotation_patterns=(r"code_?final.*\.(xlsx|csv|xls)$", r"casfecode.*\.csv$", r"cas.*me.*\.xlsx$"),
    annotation_what="CAS(ME)^2code_final(Updated).xlsx or CAS(ME)^2code_final.xlsx (or a .csv export of its sheets)",
    read_rows=_casme2_rows,
)


def import_casme2(
    root: str | os.PathLike, out_dir: str | os.PathLike, **options: Unpack[ImportOptions]
) -> ImportReport:
    """Write one session per CAS(ME)^2 long video (``rawpic/sNN/NN_CODEname``) into ``out_dir``.

    Parameters
    ----------
    root
        The folder the dataset was unpacked into (holding ``rawpic`` and the code workbook), or
        the ``rawpic`` folder itself.
    annotations
        The code workbook or its CSV export; found in ``root`` when omitted.
    images
        Another folder of ``sNN/NN_CODE...`` image folders (e.g. face-cropped long videos),
        absolute or relative to ``root``; default ``rawpic``.
    max_frames
        Keep only the first N frames of each video (annotations ending later are skipped).
    resize
        ``(width, height)`` in pixels to resize every frame to.
    videos
        Only these videos: ``s15_0101``, ``15_0101``, the folder name or the session name.
    color
        ``auto`` (grey when the images are; the default), ``grey`` or ``rgb``.
    missing_offset
        An uncoded offset (0) becomes ``apex + (apex - onset)`` (``mirror``, the default) or the apex (``apex``).
    strict
        Raise when an annotation row names a video that is not in the image folder.
    overwrite
        Replace session files that exist.
    workers
        Threads decoding images (default 2).
    progress
        Called as ``progress(session_name, frames_done, frames_total)`` after each chunk.

    Sessions are named ``casme2_s15_0101.h5`` (subject id ``casme2-s15``); a JSON manifest
    ``import_casme2.json`` lists them and every annotation row that was skipped or changed.
    """
    return import_layout(CASME2, root, out_dir, **options)
