"""Coder sheets: one video's coded expressions as a CSV or XLSX table, into coder sets and back out.

A sheet has one header row (up to :data:`~mecg.interop.tables.HEADER_SEARCH_ROWS` title rows above
it are skipped) and one row per expression; or, as CAS(ME)^2 ships its codes, no header at all and
the columns participant, clip, onset, apex, offset, AUs, emotion, type (docs/annotate.md has every
column name read and every rule). Nothing here writes a session: :func:`read_coder_sheet` parses
and checks a sheet against the video's frame count and rate, and
:func:`import_coder_sheet` stores the result through :mod:`mecg.session.coders` in one atomic
update, so a sheet with any error writes nothing.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from mecg.interop.output_files import check_output, temp_beside
from mecg.interop.tables import (
    HEADER_SEARCH_ROWS,
    Sheet,
    SheetError,
    aus,
    cell,
    column_letter,
    expression_type,
    norm,
    read_table,
    text,
    to_float,
)
from mecg.session import Annotation, Session, SessionError, StreamKind
from mecg.session.coders import (
    RECORDING,
    check_coder_id,
    coder_ids,
    me_rule,
    video_fps,
    write_coder_sets,
)

#: How a bare ``onset`` / ``apex`` / ``offset`` column is read; ``auto`` = frames, checked for seconds.
Units = Literal["auto", "frames", "s", "ms"]
UNITS: tuple[str, ...] = ("auto", "frames", "s", "ms")
#: The three time fields of a row.
FIELDS = ("onset", "apex", "offset")
#: Frame numbers are taken for times in seconds (and refused) when there are at least this many rows,
#: every number would fit as a time within the video, and as frames every expression would be shorter
#: than this (s); no real expression is (MEs last about 0.2-0.5 s).
SECONDS_LOOK_MIN_ROWS = 2
SECONDS_LOOK_MAX_LENGTH_S = 0.1


class CoderSheetError(SheetError):
    """A coder sheet cannot be imported as it is; the message names the row and the fix."""


def _time_aliases() -> dict[str, tuple[str, str]]:
    """Normalized header name -> (field, unit); unit ``bare`` takes ``--units``."""
    out: dict[str, tuple[str, str]] = {}
    for f in FIELDS:
        out[f] = (f, "bare")
        for suf in ("frame", "frames", "frameno", "framenumber", "fr", "f", "index", "idx"):
            out[f + suf] = (f, "frames")
        for suf in ("s", "sec", "secs", "second", "seconds", "time", "times", "timesec", "timeseconds", "t"):
            out[f + suf] = (f, "s")
        for suf in ("ms", "msec", "millisecond", "milliseconds", "timems"):
            out[f + suf] = (f, "ms")
    out.update({"startframe": ("onset", "frames"), "endframe": ("offset", "frames")})
    return out


TIME_COLUMNS = _time_aliases()
#: Other columns read: normalized header name -> field.
VALUE_COLUMNS = {
    **dict.fromkeys(("type", "expressiontype", "metype", "class"), "type"),
    **dict.fromkeys(("aus", "au", "actionunit", "actionunits", "facs", "facscode"), "aus"),
    **dict.fromkeys(("emotion", "estimatedemotion", "extimatedemotion", "emotioncategory", "emotionlabel"), "emotion"),
    **dict.fromkeys(("coder", "coderid", "rater", "annotator"), "coder"),
}
#: Columns accepted and not used (they identify the video or describe the row).
IGNORED_COLUMNS = frozenset(
    (
        "subject",
        "subjectid",
        "participant",
        "sub",
        "video",
        "videoname",
        "filename",
        "file",
        "clip",
        "session",
        "inducementcode",
        "duration",
        "durationframes",
        "durations",
        "durationms",
        "notes",
        "note",
        "comment",
        "comments",
        "selfreportedemotion",
        "id",
        "index",
        "no",
        "number",
        "row",
    )
)
#: Column positions of a CAS(ME)^2-style sheet without a header row.
CASME2_POSITIONS = {"onset": 2, "apex": 3, "offset": 4, "aus": 5, "emotion": 6, "type": 7}


@dataclass
class CoderSheet:
    """A parsed, checked sheet: each coder's annotations (0-based frames) and what was decided on the way."""

    path: Path
    sheet: str
    layout: Literal["header", "casme2"]
    sets: dict[str, list[Annotation]]
    units: dict[str, str]  #: the unit each of onset/apex/offset was read in ("frames", "s", "ms", "none")
    notes: list[str] = field(default_factory=list)  #: remarks, one line each (apex taken as the middle, ...)

    @property
    def count(self) -> int:
        return sum(len(v) for v in self.sets.values())


def _known_list() -> str:
    return (
        "onset, apex, offset (frames unless --units says otherwise); onset_frame, apex_frame, offset_frame "
        "(also 'Onset Frame', OnsetFrame, onset_index); onset_s, apex_s, offset_s (also 'Onset (s)', onset_time, "
        "onset_sec); onset_ms, apex_ms, offset_ms; type (expression type); aus (AU, Action Units, FACS); emotion "
        "(Estimated Emotion); coder (rater, annotator); read and ignored: subject, participant, video, filename, "
        "clip, session, inducement code, duration*, notes, comment, self-reported emotion, id, index, no"
    )


@dataclass
class _Columns:
    time: dict[str, tuple[int, str]]  # field -> (column, unit)
    value: dict[str, int]  # field -> column


def _header_columns(where: str, row: list[object], width: int) -> _Columns:
    time: dict[str, tuple[int, str]] = {}
    value: dict[str, int] = {}
    for c in range(width):
        raw = text(cell(row, c))
        n = norm(raw)
        col = f"column {column_letter(c)}"
        if not n:
            continue  # an empty header over an empty column; one over values is caught by the caller
        if n in TIME_COLUMNS:
            f, unit = TIME_COLUMNS[n]
            if f in time:
                other = column_letter(time[f][0])
                raise CoderSheetError(
                    f"{where}: {col} {raw!r} gives the {f} a second time (column {other} already does); "
                    "keep one of them"
                )
            time[f] = (c, unit)
        elif n in VALUE_COLUMNS:
            f = VALUE_COLUMNS[n]
            if f in value:
                raise CoderSheetError(
                    f"{where}: {col} {raw!r} repeats the {f} column (column {column_letter(value[f])}); keep one"
                )
            value[f] = c
        elif n not in IGNORED_COLUMNS and not n.startswith("duration"):
            raise CoderSheetError(
                f"{where}: {col} {raw!r} is not a column mecg reads; rename or remove it. Known columns "
                f"(case, spaces and _ ignored): {_known_list()}"
            )
    for f in ("onset", "offset"):
        if f not in time:
            raise CoderSheetError(
                f"{where}: no {f} column; name one {f}, {f}_frame, {f}_s or {f}_ms (known columns: {_known_list()})"
            )
    return _Columns(time, value)


def _looks_casme2(row: list[object]) -> bool:
    """A headerless CAS(ME)^2 code row: columns 3 to 5 (onset, apex, offset) hold whole numbers."""
    try:
        vals = [to_float(cell(row, i)) for i in (2, 3, 4)]
    except ValueError:
        return False
    return vals[0] is not None and vals[2] is not None and all(v is None or v.is_integer() for v in vals)


def _find_table(path: Path, sheets: list[Sheet]) -> tuple[Sheet, int | None]:
    """The sheet to read and its header row (None: CAS(ME)^2 layout without header)."""
    nonempty = [s for s in sheets if any(text(c) for r in s.rows for c in r)]
    if not nonempty:
        raise CoderSheetError(f"{path.name} is empty: it holds no header row and no annotation rows")
    for s in nonempty:
        for r, row in enumerate(s.rows[:HEADER_SEARCH_ROWS]):
            names = {TIME_COLUMNS[n][0] for c in row if (n := norm(text(c))) in TIME_COLUMNS}
            if {"onset", "offset"} <= names:
                return s, r
    s = nonempty[0]
    first = next(r for r, row in enumerate(s.rows) if any(text(c) for c in row))
    if _looks_casme2(s.rows[first]):
        return s, None
    raise CoderSheetError(
        f"{path.name}: no header row naming onset and offset columns in the first {HEADER_SEARCH_ROWS} rows "
        f"(row {first + 1} reads {[text(c) for c in s.rows[first] if text(c)][:8]}); add a header row such as "
        "onset_frame, apex_frame, offset_frame, type, aus, emotion"
    )


def _check_merged(where: str, sheet: Sheet, top: int) -> None:
    """Refuse merged cells in the header row, the row just above it (a two-row header) or the rows below."""
    for r0, c0, r1, c1 in sheet.merged:
        if r1 >= top - 1:
            rng = f"{column_letter(c0)}{r0 + 1}:{column_letter(c1)}{r1 + 1}"
            what = "the header" if r0 <= top else "the table"
            raise CoderSheetError(
                f"{where}: {what} has merged cells ({rng}); unmerge them so that each column has its own name "
                "and each row its own values (Excel: Home > Merge & Center > Unmerge Cells)"
            )


def read_coder_sheet(
    path: str | os.PathLike,
    *,
    n_frames: int,
    fps: float,
    coder: str | None = None,
    units: Units = "auto",
    first_frame: int | None = None,
    apex_mid: bool = False,
    allow_empty: bool = False,
) -> CoderSheet:
    """Parse and check a coder sheet against a video of ``n_frames`` frames at ``fps`` Hz.

    Parameters
    ----------
    path
        ``.csv`` or ``.xlsx`` file.
    n_frames, fps
        The video's frame count and frame rate (Hz); a time t (s) becomes frame ``floor(t * fps + 0.5)``.
    coder
        Whose annotations these are. Required when the sheet has no coder column; with one, only
        that coder's rows are read (without it every coder of the column is read).
    units
        How bare ``onset``/``apex``/``offset`` columns are read: ``auto`` (frames, refused when they
        look like seconds), ``frames``, ``s`` or ``ms``. Named columns (``onset_s``) keep their unit.
    first_frame
        The frame number the sheet gives the video's first frame: 0 (default) or 1 (image numbers,
        the default for a CAS(ME)^2 sheet without header). Times in seconds are not shifted.
    apex_mid
        Take a missing apex as the middle frame ``(onset + offset) // 2`` instead of refusing.
    allow_empty
        Accept a header without rows (a coder who found no expression).

    Raises
    ------
    CoderSheetError
        For any problem, naming the row (as the spreadsheet numbers it) and the fix.
    """
    p = Path(path)
    if units not in UNITS:
        raise CoderSheetError(f"units must be one of {', '.join(UNITS)}, got {units!r}")
    if coder is not None:
        try:
            check_coder_id(coder)
        except SessionError as exc:
            raise CoderSheetError(str(exc)) from None
        if coder == RECORDING:
            raise CoderSheetError(f"coder id {RECORDING!r} is the recording's own set; choose another --coder")
    if not (n_frames > 0 and fps > 0):
        raise CoderSheetError(f"the video has {n_frames} frames at {fps} fps; there is nothing to annotate")
    sheet, hdr = _find_table(p, read_table(p, CoderSheetError))
    where = f"{p.name}" + (f", sheet {sheet.name!r}" if p.suffix.lower() != ".csv" else "")
    layout: Literal["header", "casme2"] = "header" if hdr is not None else "casme2"
    first_data = hdr + 1 if hdr is not None else 0
    _check_merged(where, sheet, hdr if hdr is not None else 0)
    width = max((len(r) for r in sheet.rows[first_data - 1 if hdr is not None else 0 :]), default=0)
    if hdr is not None:
        cols = _header_columns(f"{where}, header row {hdr + 1}", sheet.rows[hdr], width)
        for c in range(width):
            if not norm(text(cell(sheet.rows[hdr], c))):
                r = next((r for r in range(first_data, len(sheet.rows)) if text(cell(sheet.rows[r], c))), None)
                if r is not None:
                    raise CoderSheetError(
                        f"{where}: column {column_letter(c)} has no name in header row {hdr + 1} but holds "
                        f"{text(cell(sheet.rows[r], c))!r} in row {r + 1}; name it or remove it"
                    )
    else:
        cols = _Columns(
            {f: (CASME2_POSITIONS[f], "frames") for f in FIELDS},
            {k: v for k, v in CASME2_POSITIONS.items() if k not in FIELDS},
        )
        first_frame = 1 if first_frame is None else first_frame
    first_frame = 0 if first_frame is None else first_frame
    if first_frame not in (0, 1):
        raise CoderSheetError(f"--first-frame must be 0 or 1, got {first_frame}")
    bare = "frames" if units in ("auto", "frames") else units
    col_units = {f: (bare if u == "bare" else u) for f, (_, u) in cols.time.items()}
    if "apex" not in cols.time and not apex_mid:
        raise CoderSheetError(
            f"{where}: the sheet has no apex column; add one (apex_frame or apex_s), or pass --apex-mid to take "
            "each expression's middle frame (onset + offset) // 2 as its apex"
        )
    if "coder" not in cols.value and coder is None:
        raise CoderSheetError(f"{where}: the sheet has no coder column; say whose annotations these are: --coder ID")

    notes: list[str] = []
    found: dict[str, list[tuple[int, Annotation]]] = {}
    frame_values: list[float] = []  # every value read from a frames column, for the seconds check
    last = n_frames - 1
    for r in range(first_data, len(sheet.rows)):
        row = sheet.rows[r]
        if not any(text(c) for c in row):
            continue  # blank row
        at = f"{where}, row {r + 1}"
        who = coder
        if "coder" in cols.value:
            who = text(cell(row, cols.value["coder"]))
            if not who:
                raise CoderSheetError(f"{at}: the coder cell is empty; fill it in (every row needs its coder)")
            try:
                check_coder_id(who)
            except SessionError as exc:
                raise CoderSheetError(f"{at}: {exc}") from None
            if coder is not None and who != coder:
                continue
            if who == RECORDING:
                raise CoderSheetError(
                    f"{at}: coder id {RECORDING!r} is reserved for the recording's own set; rename the coder, "
                    "or import another coder's rows with --coder ID"
                )
        frames: dict[str, int | None] = {}
        for f, (c, _) in cols.time.items():
            raw = cell(row, c)
            unit = col_units[f]
            try:
                v = to_float(raw)
            except ValueError:
                raise CoderSheetError(
                    f"{at}: {f} {text(raw)!r} is not a number; give the {f} as a frame number or a time"
                ) from None
            if v is None or (layout == "casme2" and f != "onset" and v == 0):
                frames[f] = None  # CAS(ME)^2 codes an unknown apex/offset as 0
                continue
            if unit == "frames":
                if not v.is_integer():
                    raise CoderSheetError(
                        f"{at}: {f} {text(raw)} is not a whole frame number; if the column holds times in "
                        f"seconds name it {f}_s (or pass --units s for a bare {f!r} column)"
                    )
                frame_values.append(v)
                fr = int(v) - first_frame
            else:
                t_s = v / 1000.0 if unit == "ms" else v
                fr = math.floor(t_s * fps + 0.5)  # nearest frame, halves up
            if fr < 0:
                raise CoderSheetError(
                    f"{at}: {f} {text(raw)} lies before the video's first frame"
                    + (" (frames are counted from 1 here: --first-frame 1)" if first_frame else "")
                )
            if fr > last:
                if unit != "frames":
                    hint = f"; if the values are frame numbers name the column {f}_frame"
                    shown = f"{text(raw)} {unit} (frame {fr})"
                    end = f"{last}"
                else:
                    shown, end = text(raw), f"{last + first_frame}"
                    hint = (
                        "; if the sheet counts frames from 1 pass --first-frame 1"
                        if first_frame == 0 and fr == last + 1
                        else "; check that the sheet belongs to this video (and --first-frame)"
                    )
                raise CoderSheetError(
                    f"{at}: {f} {shown} is after the video's last frame ({end}; {n_frames} frames = "
                    f"{n_frames / fps:.3f} s at {fps:g} fps){hint}"
                )
            frames[f] = fr
        onset, offset = frames["onset"], frames["offset"]
        if onset is None or offset is None:
            miss = "onset" if onset is None else "offset"
            raise CoderSheetError(f"{at}: no {miss}; every row needs an onset and an offset")
        apex = frames.get("apex")
        if apex is None:
            if not apex_mid:
                raise CoderSheetError(
                    f"{at}: no apex; fill it in, or pass --apex-mid to take the middle frame (onset + offset) // 2"
                )
            apex = (onset + offset) // 2
            notes.append(f"{at}: no apex; the middle frame {apex} is used (--apex-mid)")
        if not onset <= apex <= offset:
            raise CoderSheetError(
                f"{at}: frames must satisfy onset <= apex <= offset, got onset {onset}, apex {apex}, offset "
                f"{offset} (0-based); correct the row"
            )
        rule = me_rule(onset, apex, offset, fps)
        kind = rule
        if "type" in cols.value and (tt := text(cell(row, cols.value["type"]))):
            given = expression_type(tt)
            if given is None:
                raise CoderSheetError(
                    f"{at}: type {tt!r} is neither ME (micro) nor MaE (macro); correct it, or leave it empty to "
                    "apply the ME rule"
                )
            if given != rule:
                notes.append(f"{at}: type {given} as given; the ME rule at {fps:g} fps would say {rule}")
            kind = given
        a = Annotation(
            onset,
            apex,
            offset,
            kind,
            aus(text(cell(row, cols.value["aus"]))) if "aus" in cols.value else "",
            text(cell(row, cols.value["emotion"])) if "emotion" in cols.value else "",
        )
        assert who is not None
        found.setdefault(who, []).append((r + 1, a))

    if coder is not None and not found and "coder" in cols.value:
        raise CoderSheetError(f"{where}: no row of coder {coder!r} (the coder column names others)")
    if not found and not allow_empty:
        raise CoderSheetError(
            f"{where} has a header but no annotation rows; if the coder found no expression pass --allow-empty"
        )
    for who, rows in found.items():
        seen: dict[tuple[int, int], int] = {}
        for n, a in rows:
            key = (a.onset_frame, a.offset_frame)
            if key in seen:
                raise CoderSheetError(
                    f"{where}: rows {seen[key]} and {n} code the same interval [{a.onset_frame}, {a.offset_frame}] "
                    f"for coder {who!r}; remove one"
                )
            seen[key] = n
    all_rows = [a for rows in found.values() for _, a in rows]
    if units == "auto" and frame_values and len(all_rows) >= SECONDS_LOOK_MIN_ROWS:
        top = max(frame_values)
        longest = max(a.offset_frame - a.onset_frame for a in all_rows)
        duration_s = n_frames / fps
        if top <= duration_s and longest / fps < SECONDS_LOOK_MAX_LENGTH_S:
            raise CoderSheetError(
                f"{where}: the frame numbers look like times in seconds: every one is at most {top:g} (the video "
                f"lasts {duration_s:.1f} s, {n_frames} frames at {fps:g} fps) and as frames every expression would "
                f"last under {SECONDS_LOOK_MAX_LENGTH_S * 1000:.0f} ms (longest {longest} frames). Name the columns "
                "onset_s, apex_s, offset_s (or pass --units s); if they really are frame numbers pass --units frames"
            )
    sets = {c: sorted((a for _, a in rows), key=lambda a: (a.onset_frame, a.offset_frame)) for c, rows in found.items()}
    if coder is not None and not sets:
        sets = {coder: []}
    units_read = {f: col_units.get(f, "none") for f in FIELDS}
    return CoderSheet(p, sheet.name, layout, sets, units_read, notes)


def import_coder_sheet(
    session: Session,
    path: str | os.PathLike,
    *,
    coder: str | None = None,
    video_stream: str | None = None,
    reference: bool = False,
    replace: bool = False,
    units: Units = "auto",
    first_frame: int | None = None,
    apex_mid: bool = False,
    allow_empty: bool = False,
) -> CoderSheet:
    """Read a coder sheet (:func:`read_coder_sheet`) and store each coder's set in one atomic update.

    ``video_stream`` defaults to the session's only video stream. An existing coder set is refused
    unless ``replace``. ``reference`` makes the (single) imported coder the reference set. On any
    error nothing is written. The session must be open with ``writable=True``.
    """
    videos = [k for k, s in session.streams.items() if s.info.kind == StreamKind.VIDEO]
    if video_stream is None:
        if len(videos) != 1:
            raise CoderSheetError(
                f"{session.path.name} has {len(videos)} video streams ({', '.join(videos) or 'none'}); "
                "choose one with --video KEY"
            )
        video_stream = videos[0]
    elif video_stream not in videos:
        raise CoderSheetError(
            f"{session.path.name}: {video_stream!r} is not a video stream "
            f"(video streams: {', '.join(videos) or 'none'})"
        )
    fps = video_fps(session, video_stream)
    n = session.streams[video_stream].sample_count
    parsed = read_coder_sheet(
        path,
        n_frames=n,
        fps=fps,
        coder=coder,
        units=units,
        first_frame=first_frame,
        apex_mid=apex_mid,
        allow_empty=allow_empty,
    )
    existing = set(coder_ids(session))
    clash = sorted(set(parsed.sets) & existing)
    if clash and not replace:
        raise CoderSheetError(
            f"{session.path.name} already holds coder {', '.join(clash)}'s annotations; pass --replace to replace "
            "them, or import under another --coder"
        )
    if reference and len(parsed.sets) != 1:
        raise CoderSheetError(
            f"--reference: the sheet holds {len(parsed.sets)} coders ({', '.join(parsed.sets)}); "
            "import one with --coder ID, or set the reference afterwards"
        )
    write_coder_sets(
        session,
        parsed.sets,
        video_stream,
        source=Path(path).name,
        reference=next(iter(parsed.sets)) if reference else None,
    )
    return parsed


def write_coder_sheet(
    path: str | os.PathLike,
    sets: dict[str, list[Annotation]],
    fps: float,
    *,
    units: Literal["frames", "s"] = "frames",
    coder_column: bool | None = None,
    overwrite: bool = False,
) -> Path:
    """Write coder sets as a sheet :func:`read_coder_sheet` reads back: ``.csv`` or ``.xlsx``, atomically.

    Columns: ``onset_frame, apex_frame, offset_frame`` (0-based) or ``onset_s, apex_s, offset_s``
    (``frame / fps``, 6 decimals), then ``type, aus, emotion``, and ``coder`` when more than one set
    is written (or ``coder_column``).
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in (".csv", ".xlsx"):
        raise CoderSheetError(f"{p}: give a file name ending in .csv or .xlsx")
    check_output(p, overwrite, CoderSheetError)
    with_coder = len(sets) > 1 if coder_column is None else coder_column
    names = [f"{f}_frame" if units == "frames" else f"{f}_s" for f in FIELDS]
    header = [*names, "type", "aus", "emotion", *(["coder"] if with_coder else [])]
    rows: list[list[object]] = []
    for who, anns in sets.items():
        for a in anns:
            fr = (a.onset_frame, a.apex_frame, a.offset_frame)
            times: list[object] = list(fr) if units == "frames" else [round(x / fps, 6) for x in fr]
            rows.append([*times, a.type, a.aus, a.emotion, *([who] if with_coder else [])])
    tmp = temp_beside(p, suffix, CoderSheetError)
    try:
        if suffix == ".csv":
            with tmp.open("w", newline="", encoding="utf-8") as fh:
                w = csv.writer(fh)
                w.writerow(header)
                w.writerows(rows)
        else:
            import openpyxl

            wb = openpyxl.Workbook()
            ws = wb.active
            ws.title = "annotations"
            ws.append(header)
            for r in rows:
                ws.append(r)
            wb.save(tmp)
        os.replace(tmp, p)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise CoderSheetError(f"cannot write {p}: {exc.strerror or exc}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return p
