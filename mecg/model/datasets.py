"""Public dataset adapters: CAS(ME)^2 and SAMM Long Videos, as distributed, into video-only sessions.

Each long video becomes one session file with one video stream (``FaceCamera``) and its coded
expressions in ``/annotations``, so ``mecg spot`` and ``mecg eval`` run on them unchanged. The
datasets carry **no device timestamps and no ECG**: a frame's timestamp is
``(image number - first image number) / fps`` seconds (30 fps for CAS(ME)^2, 200 fps for SAMM-LV),
so a gap in the image numbering stays a gap in time.

Layouts read (docs/datasets.md has the full mapping rules)::

    CAS(ME)^2   ROOT/rawpic/s15/15_0101disgustingteeth/img1.jpg ...    (30 fps)
                ROOT/CAS(ME)^2code_final(Updated).xlsx or CAS(ME)^2code_final.xlsx: sheet 1 the
                codes (no header: participant, clip e.g. anger1_1, onset, apex, offset, AUs,
                emotion, type, self-reported emotion), sheet "naming rule1" participant -> s15,
                sheet "naming rule2" video code 0401 -> clip name anger1
    SAMM-LV     ROOT/SAMM_longvideos/006_1/006_1_0001.jpg ...          (200 fps)
                ROOT/SAMM_LongVideos_V*_Release.xlsx: a few title rows, then a header row with
                Subject, Filename (006_1_2), Inducement Code, Onset, Apex, Offset, Duration, Type
                (Micro - 1/2 | Macro), Action Units, Notes

Frame numbers in the spreadsheets are image numbers (1-based, as in the file names); they become
0-based indices counted from the first image present. ``.csv`` exports of the sheets are read too.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from mecg.errors import MecgError
from mecg.interop.tables import HEADER_SEARCH_ROWS, read_sheets
from mecg.interop.tables import aus as _aus
from mecg.interop.tables import cell as _cell
from mecg.interop.tables import expression_type as _expression_type
from mecg.interop.tables import find_header as _find_header
from mecg.interop.tables import norm as _norm
from mecg.interop.tables import text as _text
from mecg.interop.tables import to_int as _int
from mecg.session import Annotation, SessionWriter, StreamInfo

#: Dataset names accepted by :func:`import_dataset` and ``mecg import-dataset``.
DATASETS = ("casme2", "samm-lv")
#: Frame rates of the public releases in Hz.
CASME2_FPS = 30.0
SAMM_LV_FPS = 200.0
#: Image file types read from a video folder.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
#: Rules for an annotation without offset: ``mirror`` = apex + (apex - onset), ``apex`` = the apex.
OFFSET_RULES = ("mirror", "apex")
COLOR_MODES = ("auto", "grey", "rgb")
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
#: Bytes of decoded frames held in memory at once while a video is copied.
CHUNK_BYTES = 64 * 2**20


class DatasetError(MecgError):
    """A dataset folder or annotation file cannot be read as the named public dataset."""


# -- tables ------------------------------------------------------------------------------------


# -- images ------------------------------------------------------------------------------------

_TRAILING_NUMBER = re.compile(r"(\d+)$")


@dataclass
class VideoFolder:
    """One long video as a folder of numbered images.

    ``numbers`` are the image numbers parsed from the file names (sorted, unique); index ``i``
    of the session's video stream is image ``numbers[i]``.
    """

    key: str  #: session name (file stem), e.g. ``casme2_s15_0101``
    subject_id: str  #: pseudonymous subject id stored in the session, e.g. ``casme2-s15``
    folder: Path
    aliases: frozenset[str] = frozenset()  #: names ``--videos`` accepts for this video
    files: list[Path] = field(default_factory=list)
    numbers: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def scan(self) -> None:
        """List the numbered images of the folder (sorted by number)."""
        found: dict[int, Path] = {}
        for p in self.folder.iterdir():
            if p.suffix.lower() not in IMAGE_SUFFIXES or not p.is_file():
                continue
            m = _TRAILING_NUMBER.search(p.stem)
            if not m:
                continue
            n = int(m.group(1))
            if n in found:
                raise DatasetError(f"{self.folder}: images {found[n].name} and {p.name} both carry number {n}")
            found[n] = p
        order = sorted(found)
        self.numbers = np.array(order, dtype=np.int64)
        self.files = [found[n] for n in order]


def _subdirs(p: Path) -> list[Path]:
    return sorted((c for c in p.iterdir() if c.is_dir()), key=lambda c: c.name)


def _resolve_images(root: Path, images: str | os.PathLike | None, default: str, looks_right) -> Path:
    """The folder holding the video folders: ``images`` if given, else ``root/default``, else ``root``."""
    if images is not None:
        p = Path(images)
        p = p if p.is_absolute() else root / p
        if not p.is_dir():
            raise DatasetError(f"image folder {p} does not exist")
        return p
    p = root / default
    if p.is_dir():
        nested = p / default  # some mirrors unpack rawpic.zip into rawpic/rawpic
        if not looks_right(p) and nested.is_dir() and looks_right(nested):
            return nested
        return p
    if looks_right(root):
        return root
    return p  # does not exist; the caller reports the layout it expected


# -- annotation rows ---------------------------------------------------------------------------


@dataclass
class _Row:
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


@dataclass
class ImportReport:
    """What an import wrote and every annotation row it could not use as given."""

    dataset: str
    fps: float
    sessions: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  #: rows skipped or changed, one line each
    missing_videos: list[str] = field(default_factory=list)  #: rows naming a video that is not there

    def as_dict(self) -> dict:
        return {
            "dataset": self.dataset,
            "fps": self.fps,
            "sessions": self.sessions,
            "problems": self.problems,
            "missing_videos": self.missing_videos,
        }


def _map_row(row: _Row, video: VideoFolder, offset_rule: str, problems: list[str]) -> Annotation | None:
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
        offset = apex + (apex - row.onset) if offset_rule == "mirror" else apex
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


# -- CAS(ME)^2 ---------------------------------------------------------------------------------

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
    return any(_CASME2_SUBJECT_DIR.match(d.name) for d in _subdirs(p))


def _casme2_videos(pics: Path, problems: list[str]) -> dict[tuple[int, str], VideoFolder]:
    """Video folders by (subject number, 4-digit video code).

    A folder's subject is the number before the underscore in its own name; the distributed
    ``rawpic/s19/23_0502funnyerrors`` therefore counts as subject 23 (a note says so).
    """
    out: dict[tuple[int, str], VideoFolder] = {}
    for sdir in _subdirs(pics):
        ms = _CASME2_SUBJECT_DIR.match(sdir.name)
        if not ms:
            continue
        for vdir in _subdirs(sdir):
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


def _find_annotation_file(dirs: Iterable[Path], patterns: Sequence[str], what: str) -> Path:
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


def _casme2_rows(path: Path, videos: dict[tuple[int, str], VideoFolder], problems: list[str]) -> list[_Row]:
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
    out: list[_Row] = []
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
        out.append(
            _Row(
                where,
                video.key if video else f"casme2_s{subj}_{code}",
                f"{label} -> video {subj}_{code}",
                onset,
                _int(_cell(row, cols["apex"])) if "apex" in cols else None,
                _int(_cell(row, cols["offset"])),
                _text(_cell(row, cols["type"])) if "type" in cols else "",
                _aus(_text(_cell(row, cols["aus"]))) if "aus" in cols else "",
                _text(_cell(row, cols["emotion"])) if "emotion" in cols else "",
            )
        )
    if not out:
        raise DatasetError(f"{path}: no annotation rows found; is this the CAS(ME)^2 code sheet?")
    return out


# -- SAMM Long Videos --------------------------------------------------------------------------

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
    return any(_SAMM_VIDEO_DIR.match(d.name) for d in _subdirs(p))


def _samm_videos(pics: Path, problems: list[str]) -> dict[str, VideoFolder]:
    out: dict[str, VideoFolder] = {}
    for vdir in _subdirs(pics):
        m = _SAMM_VIDEO_DIR.match(vdir.name)
        if not m:
            problems.append(f"{vdir.name}: not a video folder (expected SSS_V, e.g. 006_1); ignored")
            continue
        key = f"sammlv_{vdir.name}"
        out[vdir.name] = VideoFolder(key, f"sammlv-{m.group(1)}", vdir, frozenset({key, vdir.name}))
    return out


def _samm_rows(path: Path, videos: dict[str, VideoFolder], problems: list[str]) -> list[_Row]:
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
    out: list[_Row] = []
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
        out.append(
            _Row(
                where,
                video.key if video else f"sammlv_{vid}",
                f"{fname or vid} -> video {vid}",
                onset,
                _int(_cell(row, cols.get("apex"))),
                _int(_cell(row, cols["offset"])),
                _text(_cell(row, cols.get("type"))),
                _aus(_text(_cell(row, cols.get("aus")))),
                _text(_cell(row, cols.get("emotion"))),
            )
        )
    if not out:
        raise DatasetError(f"{path}: no annotation rows below the header row")
    return out


# -- writing -----------------------------------------------------------------------------------


def _frame_reader(video: VideoFolder, mode: str, size: tuple[int, int] | None) -> Callable[[Path], np.ndarray]:
    """A function reading one image as uint8 grey ``(h, w)`` or RGB ``(h, w, 3)``, resized to ``size`` (w, h)."""

    def read(p: Path) -> np.ndarray:
        img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        if img is None:
            raise DatasetError(f"cannot read image {p} (missing, damaged or not an image)")
        if img.dtype != np.uint8:
            raise DatasetError(f"{p}: {img.dtype} pixels; only 8-bit images are supported")
        if img.ndim == 3 and img.shape[2] == 4:
            img = img[:, :, :3]
        if img.ndim == 3 and img.shape[2] == 1:
            img = img[:, :, 0]
        if mode == "grey" and img.ndim == 3:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        elif mode == "rgb":
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB if img.ndim == 2 else cv2.COLOR_BGR2RGB)
        if size is not None and (img.shape[1], img.shape[0]) != size:
            img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
        return img

    return read


def _colour_mode(first: Path, color: str) -> str:
    """``grey`` or ``rgb`` for a video: ``auto`` is grey when the first image has one channel or equal ones."""
    if color != "auto":
        return color
    img = cv2.imread(str(first), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DatasetError(f"cannot read image {first} (missing, damaged or not an image)")
    if img.ndim == 2 or img.shape[2] == 1:
        return "grey"
    b, g, r = (img[::4, ::4, i].astype(np.int16) for i in range(3))
    return "grey" if max(np.abs(b - g).max(), np.abs(g - r).max()) <= 2 else "rgb"


def _write_session(
    video: VideoFolder,
    annotations: list[Annotation],
    path: Path,
    fps: float,
    notes: str,
    *,
    n_frames: int,
    color: str,
    size: tuple[int, int] | None,
    overwrite: bool,
    workers: int,
    progress: Callable[[str, int, int], None] | None,
) -> str:
    """Copy the first ``n_frames`` images of ``video`` into a session at ``path``; returns the colour mode."""
    mode = _colour_mode(video.files[0], color)
    read = _frame_reader(video, mode, size)
    first = read(video.files[0])
    shape = first.shape
    stamps = (video.numbers[:n_frames] - video.numbers[0]) / fps
    chunk = int(max(1, min(256, CHUNK_BYTES // max(1, first.nbytes))))
    info = StreamInfo(
        name="FaceCamera",
        type="Video",
        kind="video",
        source_id=f"{video.key}:{video.folder.name}",
        nominal_srate_hz=fps,
        frame_shape=shape,
        can_drop_samples=False,
    )
    writer = SessionWriter(path, video.subject_id, notes, overwrite=overwrite, start_time_lsl=0.0)
    try:
        key = writer.add_stream(info)
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            for i in range(0, n_frames, chunk):
                j = min(i + chunk, n_frames)
                frames = list(pool.map(read, video.files[i:j]))
                for p, fr in zip(video.files[i:j], frames):
                    if fr.shape != shape:
                        raise DatasetError(
                            f"{p}: image of shape {fr.shape} in a video of {shape} frames; pass --resize WxH"
                        )
                writer.append(key, np.stack(frames), stamps[i:j])
                if progress:
                    progress(video.key, j, n_frames)
        writer.set_annotations(annotations, key)
    except BaseException:
        writer.abort()
        path.unlink(missing_ok=True)
        raise
    writer.close()
    return mode


def _select(videos: list[VideoFolder], wanted: Sequence[str] | None) -> list[VideoFolder]:
    if not wanted:
        return videos
    tokens = [t.strip() for w in wanted for t in str(w).split(",") if t.strip()]
    chosen = [v for v in videos if v.aliases & set(tokens)]
    unknown = [t for t in tokens if not any(t in v.aliases for v in videos)]
    if unknown:
        have = ", ".join(v.key for v in videos[:8]) + (" ..." if len(videos) > 8 else "")
        raise DatasetError(f"no video named {', '.join(unknown)}; videos are: {have or 'none'}")
    return chosen


def _import(
    dataset: str,
    root: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    annotations: str | os.PathLike | None,
    images: str | os.PathLike | None,
    max_frames: int | None,
    resize: tuple[int, int] | None,
    videos: Sequence[str] | None,
    color: str,
    missing_offset: str,
    strict: bool,
    overwrite: bool,
    workers: int,
    progress: Callable[[str, int, int], None] | None,
) -> ImportReport:
    if dataset not in DATASETS:
        raise DatasetError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    if color not in COLOR_MODES:
        raise DatasetError(f"color must be one of {', '.join(COLOR_MODES)}, got {color!r}")
    if missing_offset not in OFFSET_RULES:
        raise DatasetError(f"missing_offset must be one of {', '.join(OFFSET_RULES)}, got {missing_offset!r}")
    if max_frames is not None and max_frames < 1:
        raise DatasetError(f"max_frames must be >= 1, got {max_frames}")
    if resize is not None and (len(resize) != 2 or min(resize) < 1):
        raise DatasetError(f"resize must be (width, height) in pixels, got {resize!r}")
    root_p = Path(root)
    if not root_p.exists():
        raise DatasetError(f"dataset folder {root_p} does not exist")
    if not root_p.is_dir():
        raise DatasetError(f"{root_p} is not a folder; give the folder the dataset was unpacked into")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise DatasetError(f"{out} exists and is not a folder; choose a folder for the sessions")

    problems: list[str] = []
    casme = dataset == "casme2"
    fps = CASME2_FPS if casme else SAMM_LV_FPS
    if casme:
        pics = _resolve_images(root_p, images, "rawpic", _casme2_looks_right)
        layout = "rawpic/sNN/NN_CODEname/img<N>.jpg"
    else:
        pics = _resolve_images(root_p, images, "SAMM_longvideos", _samm_looks_right)
        layout = "SAMM_longvideos/SSS_V/SSS_V_<NNNN>.jpg"
    if not pics.is_dir():
        raise DatasetError(f"unknown layout: {root_p} holds no {pics.name} folder; expected {layout}")
    found = _casme2_videos(pics, problems) if casme else _samm_videos(pics, problems)
    if not found:
        raise DatasetError(f"unknown layout: {pics} holds no video folders; expected {layout}")

    if annotations is not None:
        ann = Path(annotations)
        if not ann.is_file():
            raise DatasetError(f"annotation file {ann} does not exist")
    else:
        dirs = list(dict.fromkeys([root_p, pics.parent, pics]))
        if casme:
            ann = _find_annotation_file(
                dirs,
                [r"code_?final.*\.(xlsx|csv|xls)$", r"casfecode.*\.csv$", r"cas.*me.*\.xlsx$"],
                "CAS(ME)^2code_final(Updated).xlsx or CAS(ME)^2code_final.xlsx (or a .csv export of its sheets)",
            )
        else:
            ann = _find_annotation_file(
                dirs,
                [r"samm_?long_?videos.*\.(xlsx|csv|xls)$", r"samm.*\.(xlsx|csv)$"],
                "SAMM_LongVideos_V3_Release.xlsx (or V1/V2, or a .csv export)",
            )
    rows = _casme2_rows(ann, found, problems) if casme else _samm_rows(ann, found, problems)

    selected = _select(sorted(found.values(), key=lambda v: v.key), videos)
    all_keys = {v.key for v in found.values()}
    report = ImportReport(dataset, fps)
    report.missing_videos = [
        f"{r.where} ({r.label}): no such video folder in {pics}" for r in rows if r.video not in all_keys
    ]
    if strict and report.missing_videos:
        raise DatasetError(
            f"{len(report.missing_videos)} annotation row(s) name videos that are not in {pics}, e.g. "
            f"{report.missing_videos[0]}"
        )

    plans = []
    for v in selected:
        v.scan()
        if not len(v.numbers):
            problems.append(f"{v.folder}: no numbered images; no session written")
            continue
        n = len(v.numbers) if max_frames is None else min(max_frames, len(v.numbers))
        anns = []
        for r in rows:
            if r.video != v.key:
                continue
            a = _map_row(r, v, missing_offset, problems)
            if a is not None and a.offset_frame >= n:
                problems.append(f"{r.where} ({r.label}): skipped, ends after the {n} frames kept (--max-frames)")
                a = None
            if a is not None:
                anns.append(a)
        if len(v.numbers) > 1 and int(v.numbers[-1] - v.numbers[0]) + 1 != len(v.numbers):
            problems.append(f"{v.folder}: image numbers have gaps; timestamps keep them")
        plans.append((v, anns, n, out / f"{v.key}.h5"))
    if not plans:
        raise DatasetError(f"no video with images to import in {pics}")
    if not overwrite:
        for *_, p in plans:
            if p.exists():
                raise DatasetError(f"{p} already exists; pass --overwrite or choose another folder")
    out.mkdir(parents=True, exist_ok=True)
    name = "CAS(ME)^2" if casme else "SAMM Long Videos"
    for v, anns, n, p in plans:
        rel = v.folder.relative_to(pics.parent) if v.folder.is_relative_to(pics.parent) else v.folder
        notes = (
            f"{name} video {rel} imported by mecg import-dataset from {ann.name}. No device timestamps and "
            f"no ECG: frame time = (image number - {int(v.numbers[0])}) / {fps:g} fps."
        )
        mode = _write_session(
            v,
            anns,
            p,
            fps,
            notes,
            n_frames=n,
            color=color,
            size=resize,
            overwrite=overwrite,
            workers=workers,
            progress=progress,
        )
        report.sessions.append(
            {
                "file": p.name,
                "video": str(rel),
                "frames": n,
                "first_image_number": int(v.numbers[0]),
                "pixel_format": "mono8" if mode == "grey" else "rgb8",
                "n_me": sum(a.type == "ME" for a in anns),
                "n_mae": sum(a.type == "MaE" for a in anns),
            }
        )
    report.problems = problems
    mpath = out / f"import_{'casme2' if casme else 'sammlv'}.json"
    try:  # an earlier import into the same folder (other --videos) keeps its sessions listed
        earlier = json.loads(mpath.read_text())["sessions"] if mpath.exists() else []
    except (ValueError, KeyError, TypeError):
        earlier = []
    fresh = {s["file"] for s in report.sessions}
    manifest = {
        **report.as_dict(),
        "sessions": sorted(
            [s for s in earlier if isinstance(s, dict) and s.get("file") not in fresh] + report.sessions,
            key=lambda s: s["file"],
        ),
        "annotation_file": ann.name,
        "options": {
            "max_frames": max_frames,
            "resize": list(resize) if resize else None,
            "videos": list(videos) if videos else None,
            "color": color,
            "missing_offset": missing_offset,
        },
        "timestamps": "no device timestamps: t = (image number - first image number) / fps",
        "ecg": "none",
    }
    mpath.write_text(json.dumps(manifest, indent=2) + "\n")
    return report


def import_casme2(
    root: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    annotations: str | os.PathLike | None = None,
    images: str | os.PathLike | None = None,
    max_frames: int | None = None,
    resize: tuple[int, int] | None = None,
    videos: Sequence[str] | None = None,
    color: str = "auto",
    missing_offset: str = "mirror",
    strict: bool = False,
    overwrite: bool = False,
    workers: int = 2,
    progress: Callable[[str, int, int], None] | None = None,
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
        ``auto`` (grey when the images are), ``grey`` or ``rgb``.
    missing_offset
        An uncoded offset (0) becomes ``apex + (apex - onset)`` (``mirror``) or the apex (``apex``).
    strict
        Raise when an annotation row names a video that is not in the image folder.
    overwrite
        Replace session files that exist.
    workers
        Threads decoding images.
    progress
        Called as ``progress(session_name, frames_done, frames_total)`` after each chunk.

    Sessions are named ``casme2_s15_0101.h5`` (subject id ``casme2-s15``); a JSON manifest
    ``import_casme2.json`` lists them and every annotation row that was skipped or changed.
    """
    return _import(
        "casme2",
        root,
        out_dir,
        annotations=annotations,
        images=images,
        max_frames=max_frames,
        resize=resize,
        videos=videos,
        color=color,
        missing_offset=missing_offset,
        strict=strict,
        overwrite=overwrite,
        workers=workers,
        progress=progress,
    )


def import_samm_lv(
    root: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    annotations: str | os.PathLike | None = None,
    images: str | os.PathLike | None = None,
    max_frames: int | None = None,
    resize: tuple[int, int] | None = None,
    videos: Sequence[str] | None = None,
    color: str = "auto",
    missing_offset: str = "mirror",
    strict: bool = False,
    overwrite: bool = False,
    workers: int = 2,
    progress: Callable[[str, int, int], None] | None = None,
) -> ImportReport:
    """Write one session per SAMM Long Videos video (``SAMM_longvideos/SSS_V``) into ``out_dir``.

    ``root`` holds ``SAMM_longvideos`` and ``SAMM_LongVideos_V*_Release.xlsx`` (or is the
    ``SAMM_longvideos`` folder itself); an uncoded apex or offset is ``-1`` there. Sessions are
    named ``sammlv_006_1.h5`` (subject id ``sammlv-006``); ``videos`` takes names like ``006_1``.
    The other parameters are those of :func:`import_casme2`; the manifest is ``import_sammlv.json``.
    """
    return _import(
        "samm-lv",
        root,
        out_dir,
        annotations=annotations,
        images=images,
        max_frames=max_frames,
        resize=resize,
        videos=videos,
        color=color,
        missing_offset=missing_offset,
        strict=strict,
        overwrite=overwrite,
        workers=workers,
        progress=progress,
    )


def import_dataset(dataset: str, root: str | os.PathLike, out_dir: str | os.PathLike, **kw) -> ImportReport:
    """:func:`import_casme2` or :func:`import_samm_lv` by name (one of :data:`DATASETS`)."""
    if dataset == "casme2":
        return import_casme2(root, out_dir, **kw)
    if dataset == "samm-lv":
        return import_samm_lv(root, out_dir, **kw)
    raise DatasetError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
