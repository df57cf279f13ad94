"""A LabRecorder XDF recording into a session file, as ``mecg record`` would have written it.

The file is read with pyxdf **without** clock synchronisation or dejittering, so each stream's
timestamps stay the raw LSL timestamps of the sender. Its ClockOffset chunks become the session's
``clock_offsets`` rows ``[recorder time (s), offset (s)]``: LabRecorder writes ``CollectionTime`` on
the *sender's* clock (the recorder's ``local_clock()`` minus the offset), so the recorder time is
``CollectionTime + OffsetValue``. ``mecg sync`` then fits them (robust line per clock segment,
resets detected as pyxdf detects them) exactly as for a live recording, and the corrected times
agree with ``pyxdf.load_xdf(..., synchronize_clocks=True, dejitter_timestamps=False)``. The clock
offsets a StreamFooter lists are ignored, as pyxdf ignores them.

Streams map onto the session's kinds as the recorder maps LSL streams
(:func:`mecg.acquire.stream_metadata.session_stream_info`):

- raw video -> a video stream (uint8 frames): type ``VideoRaw`` with the XDF meta-data
  convention's ``desc/encoding`` (``width``, ``height``, ``color_format`` GRAY or RGB, ``codec``
  RAW) and ``int8`` samples, or mecg's older type ``Video`` with ``desc/width``, ``height``,
  ``channels`` (:mod:`mecg.session.lsl_video`). A video stream a session cannot hold as frames
  (another colour format, a codec, other sample types) is kept as a signal, with a warning;
- a one-channel stream of frame numbers (type ``Video``/``VideoFrameIndex``/``FrameIndex``, or a
  video file named in its ``desc``) plus that video file (``--video``) -> a video stream whose
  frames are decoded with OpenCV and whose timestamps are the frame-number samples' timestamps;
- ``string`` streams -> markers; every other numeric stream -> a signal with the channel labels,
  units and types of ``desc/channels``.

The session is written to a temporary file beside the output and renamed at the end, so a failed
import never leaves a half-written file under the output name. Samples are passed from pyxdf to
the writer chunk by chunk (pyxdf's ``on_chunk``), so memory does not grow with the video.
"""

from __future__ import annotations

import datetime as _dt
import io
import logging
import math
import os
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path, PureWindowsPath

import numpy as np

from mecg.interop.output_files import check_output, temp_beside
from mecg.interop.xdf_scan import (
    XdfError,
    XdfScan,
    XdfStreamScan,
    XdfTruncatedError,
    decompress_xdf,
    is_compressed_xdf,
    scan_xdf,
)
from mecg.session import SessionError, SessionWriter, StreamInfo, StreamKind, open_session
from mecg.session.amend import amend_root_attrs
from mecg.session.ecg_channel import ecg_columns
from mecg.session.format import CHANNEL_FORMATS
from mecg.session.lsl_video import is_video_type, video_layout
from mecg.sync.clocks import correct_timestamps, fit_clock_offsets

#: Stream types (lower case) of a one-channel stream that counts the frames of a video file.
FRAME_INDEX_TYPES = ("video", "videoframeindex", "frameindex", "videoframes", "videoframe", "framenumber")
#: ``desc`` elements that may name the video file of a frame-index stream.
VIDEO_FILE_TAGS = ("video_file", "videofile", "video_filename", "video_path", "filename", "file_name", "file")
#: Frames decoded from a video file per append.
FRAMES_PER_APPEND = 64


class _Role(StrEnum):
    """What an XDF stream becomes: a session stream of that kind, a video from its file, or nothing."""

    SIGNAL = "signal"
    VIDEO = "video"
    MARKERS = "markers"
    FRAME_INDEX = "frame_index"  # frame numbers of a video file beside the XDF: the video from the file
    SKIP = "skip"


@dataclass
class _Plan:
    """How one XDF stream goes into the session."""

    scan: XdfStreamScan
    info: StreamInfo | None  # None: skipped
    role: _Role
    reason: str = ""
    video_path: Path | None = None
    index_base: int = 0
    key: str = ""
    samples: int = 0
    first_ts: float = math.nan
    last_ts: float = math.nan
    offsets: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    frame_numbers: list[np.ndarray] = field(default_factory=list)
    frame_stamps: list[np.ndarray] = field(default_factory=list)
    first_frame: np.ndarray | None = None  # frame-index streams: the video file's first frame, read when opened


@dataclass
class XdfImportReport:
    """What :func:`import_xdf` did: one row per stream (imported or skipped), warnings, completeness."""

    source: str
    out: str
    complete: bool
    intact_bytes: int
    size_bytes: int
    streams: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        """Plain JSON-able dict."""
        return dict(self.__dict__)


# -- stream headers -----------------------------------------------------------------------------
def _text(el: ET.Element | None, tag: str) -> str:
    if el is None:
        return ""
    child = el.find(tag)
    return (child.text or "").strip() if child is not None else ""


def _int(text: str) -> int:
    try:
        return int(float(text))
    except ValueError:
        return 0


def _channels(desc: ET.Element | None, n: int) -> tuple[list[str], list[str], list[str]]:
    labels, units, types = [], [], []
    chans = desc.find("channels") if desc is not None else None
    for ch in chans.findall("channel") if chans is not None else []:
        if len(labels) == n:
            break
        labels.append(_text(ch, "label") or f"ch{len(labels) + 1}")
        units.append(_text(ch, "unit"))
        types.append(_text(ch, "type"))
    for i in range(len(labels), n):
        labels.append(f"ch{i + 1}")
        units.append("")
        types.append("")
    return labels, units, types


def _video_file_in(desc: ET.Element | None) -> str:
    if desc is None:
        return ""
    for el in desc.iter():
        if el.tag.lower() in VIDEO_FILE_TAGS and (el.text or "").strip():
            return el.text.strip()
    return ""


def _find_video(named: str, xdf: Path) -> Path | None:
    """The video file a header names: as given, beside the XDF file, or by its base name beside the XDF file."""
    p = Path(named)
    base = PureWindowsPath(named).name if "\\" in named else p.name  # recorded on Windows, read here
    for cand in (p if p.is_absolute() else xdf.parent / p, xdf.parent / base):
        if cand.is_file():
            return cand
    return None


def _counts_frames(fmt: str, n: int, typ: str, desc: ET.Element | None) -> bool:
    """A one-channel stream of frame numbers: numeric with a frame-index type, or naming a video file in ``desc``."""
    return n == 1 and ((fmt != "string" and typ.lower() in FRAME_INDEX_TYPES) or bool(_video_file_in(desc)))


def _plan(s: XdfStreamScan, xdf: Path, video: dict[str, str]) -> _Plan:
    """Decide how stream ``s`` is stored (kind and StreamInfo), from its header XML."""
    el = ET.fromstring(s.header_xml)
    name, typ = _text(el, "name") or f"stream{s.stream_id}", _text(el, "type")
    n, fmt = _int(_text(el, "channel_count")), _text(el, "channel_format")
    srate = float(_text(el, "nominal_srate") or 0.0)
    desc = el.find("desc")
    common = {
        "name": name,
        "type": typ,
        "source_id": _text(el, "source_id"),
        "hostname": _text(el, "hostname"),
        "nominal_srate_hz": srate if math.isfinite(srate) and srate > 0 else 0.0,
        "lsl_header": s.header_xml,
    }
    declared = _text(desc, "can_drop_samples").lower()
    if fmt not in CHANNEL_FORMATS or n < 1:
        return _Plan(s, None, _Role.SKIP, f"channel format {fmt!r} with {n} channels cannot be stored in a session")
    layout = video_layout(typ, fmt, n, desc)
    if layout is not None and layout.storable:
        info = StreamInfo(
            kind=StreamKind.VIDEO, frame_shape=layout.frame_shape, can_drop_samples=declared != "false", **common
        )
        return _Plan(s, info, _Role.VIDEO)
    given = video.get(name) or video.get(str(s.stream_id)) or ""
    named = _video_file_in(desc)
    if (n == 1 and given) or _counts_frames(fmt, n, typ, desc):
        if given:
            path = Path(given)
            if not path.is_file():
                raise XdfError(f"video file {path} (given for stream {name!r}) does not exist")
        elif named:
            path = _find_video(named, xdf)
            if path is None:
                raise XdfError(
                    f"stream {name!r} counts the frames of video file {named!r}, which is neither there nor beside "
                    f"{xdf.name}: pass --video PATH (or --video {name}=PATH)"
                )
        else:
            raise XdfError(
                f"stream {name!r} (type {typ}) holds frame numbers but its header names no video file: "
                f"pass --video PATH (or --video {name}=PATH), or leave it out with --streams"
            )
        base = 1 if _text(desc, "frame_index_base") == "1" else 0
        return _Plan(s, None, _Role.FRAME_INDEX, video_path=path, index_base=base)
    if fmt == "string":
        return _Plan(
            s, StreamInfo(kind=StreamKind.MARKERS, can_drop_samples=declared == "true", **common), _Role.MARKERS
        )
    labels, units, types = _channels(desc, n)
    info = StreamInfo(
        kind=StreamKind.SIGNAL,
        channel_format=fmt,
        channel_labels=labels,
        channel_units=units,
        channel_types=[t or typ for t in types],
        can_drop_samples=declared == "true",
        **common,
    )
    if layout is not None:  # a video type whose frames a session cannot hold: its samples are kept, as a signal
        return _Plan(s, info, _Role.SIGNAL, f"{typ} stream kept as a signal, pixels as channels: {layout.problem}")
    return _Plan(s, info, _Role.SIGNAL)


def _type_key(stream_type: str) -> str:
    """A type for comparison: lower case, Video and VideoRaw (the XDF name) as one."""
    return "video" if is_video_type(stream_type) else stream_type.lower()


def _selected(s: XdfStreamScan, tokens: Sequence[str]) -> bool:
    el = ET.fromstring(s.header_xml)
    names = {_text(el, "name"), str(s.stream_id)}
    return bool(names & set(tokens)) or _type_key(_text(el, "type")) in {_type_key(t) for t in tokens}


def _pick_ecg(plans: list[_Plan], ecg: str | None, notes: list[str]) -> None:
    """Make sure ``mecg sync`` finds the ECG: ``ecg`` names the stream, else one signal with an ECG channel."""
    signals = [p for p in plans if p.role == _Role.SIGNAL]
    if ecg:
        chosen = [p for p in signals if p.info.name == ecg or str(p.scan.stream_id) == ecg]
        if not chosen:
            have = ", ".join(f"{p.info.name} ({p.info.type})" for p in signals) or "none"
            raise XdfError(f"--ecg {ecg}: no signal stream of that name or id; signal streams: {have}")
    elif any(p.info.type.upper() == "ECG" for p in signals):
        return
    else:
        chosen = [p for p in signals if ecg_columns(p.info)]  # the one rule: a channel labelled ECG/EKG
        if len(chosen) != 1:
            return
    p = chosen[0]
    if p.info.type.upper() != "ECG":
        notes.append(
            f"stream {p.info.name!r} (type {p.info.type}) is stored with type ECG so that mecg sync finds it; "
            "its LSL header keeps the original type"
        )
        p.info.type = "ECG"


# -- reading ------------------------------------------------------------------------------------
class _Prefix(io.RawIOBase):
    """The first ``limit`` bytes of a file, so pyxdf reads only the intact chunks of a cut file."""

    def __init__(self, path: Path, limit: int) -> None:
        self._f = open(path, "rb")
        self._limit = limit

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, b: bytearray) -> int:
        room = max(0, self._limit - self._f.tell())
        view = memoryview(b)[: min(len(b), room)]
        return self._f.readinto(view) if len(view) else 0

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence == 2:
            return self._f.seek(self._limit + offset)
        return self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()

    def close(self) -> None:
        self._f.close()
        super().close()


class _Abort(BaseException):
    """Carries an error out of pyxdf's on_chunk (pyxdf catches every Exception there and skips ahead)."""

    def __init__(self, exc: BaseException) -> None:
        super().__init__(str(exc))
        self.exc = exc


class _LogCatcher(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _start_time(scan: XdfScan) -> str:
    """Wall clock of the recording start (ISO 8601 UTC, ms): the FileHeader's ``datetime``, else the file's mtime."""
    text = _text(ET.fromstring(scan.file_header_xml), "datetime") if scan.file_header_xml else ""
    t = None
    if text:
        try:
            t = _dt.datetime.fromisoformat(text)
        except ValueError:
            t = None
    if t is None:
        t = _dt.datetime.fromtimestamp(scan.path.stat().st_mtime, _dt.UTC)
    elif t.tzinfo is None:
        t = t.replace(tzinfo=_dt.UTC)
    return t.astimezone(_dt.UTC).isoformat(timespec="milliseconds")


def _check_output(out: Path, overwrite: bool) -> None:
    if out.suffix.lower() not in (".h5", ".hdf5"):
        raise XdfError(f"{out}: a session file name should end in .h5")
    check_output(out, overwrite, XdfError)


def import_xdf(
    path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    subject_id: str = "",
    notes: str = "",
    overwrite: bool = False,
    partial: bool = False,
    streams: Sequence[str] | None = None,
    video: str | dict[str, str] | None = None,
    ecg: str | None = None,
    log: Callable[[str], None] = lambda _m: None,
    progress: Callable[[int, int], None] | None = None,
) -> XdfImportReport:
    """Import the XDF recording ``path`` (``.xdf``; gzip-compressed: ``.xdfz``, ``.xdf.gz``) into a new session ``out``.

    A compressed file is inflated to a hidden temporary file beside ``out`` first (deleted
    afterwards); a cut or damaged compressed file counts as a cut XDF file (``partial``).

    Parameters
    ----------
    subject_id, notes
        Stored in the session (the notes also say which file it was imported from).
    overwrite
        Replace ``out`` if it exists (only once the import succeeded).
    partial
        Import the intact chunks of a cut or damaged file (LabRecorder killed) instead of refusing;
        the session is then marked incomplete.
    streams
        Only these streams (names, types or XDF stream ids); default: every stream a session can hold.
    video
        The video file of a frame-index stream: one path (when there is one such stream) or
        ``{stream name or id: path}``; default: the file named in the stream's header.
    ecg
        Name or id of the signal stream to store with type ``ECG`` (default: the ``ECG`` stream, or
        the one signal stream with an ECG channel).
    log
        Receives progress lines.
    progress
        Called as ``progress(chunks_read, chunks_in_file)`` while the samples are read.

    Raises :class:`~mecg.interop.xdf_scan.XdfError` (truncated: :class:`XdfTruncatedError`).
    """
    src, dst = Path(path), Path(out)
    _check_output(dst, overwrite)
    opts = {"subject_id": subject_id, "notes": notes, "overwrite": overwrite, "partial": partial}
    opts.update(streams=streams, video=video, ecg=ecg, log=log, progress=progress)
    if not is_compressed_xdf(src):
        return _import(src, src, dst, "", **opts)
    if not src.is_file():
        raise XdfError(f"{src} does not exist" if not src.exists() else f"{src} is not a file")
    raw = temp_beside(dst, ".xdf", XdfError)
    try:
        log(f"inflating {src.name} ...")
        problem = decompress_xdf(src, raw)
        return _import(src, raw, dst, problem, **opts)
    finally:
        raw.unlink(missing_ok=True)


def _import(
    src: Path,
    raw: Path,
    dst: Path,
    gz_problem: str,
    *,
    subject_id: str,
    notes: str,
    overwrite: bool,
    partial: bool,
    streams: Sequence[str] | None,
    video: str | dict[str, str] | None,
    ecg: str | None,
    log: Callable[[str], None],
    progress: Callable[[int, int], None] | None = None,
) -> XdfImportReport:
    """:func:`import_xdf` of the uncompressed XDF file ``raw`` (``src`` itself, or ``src`` inflated)."""
    scan = scan_xdf(raw)
    scan.path = src  # messages and the start-time fallback (mtime) name the user's file
    if gz_problem and not scan.problem:  # inflated up to a damage that happens to fall between chunks
        scan.problem = gz_problem
    if scan.truncated and not partial:
        pct = 100.0 * scan.intact_bytes / max(1, scan.size)
        raise XdfTruncatedError(
            f"{src} is {scan.problem} (file size {scan.size} bytes). The {scan.intact_bytes} bytes before it "
            f"({pct:.1f} %, {scan.chunks} chunks) are intact: was LabRecorder stopped before it finished writing? "
            "Pass --partial to import the intact part (the session is marked incomplete)",
            scan.intact_bytes,
        )
    if not scan.streams:
        raise XdfError(
            f"{src} holds no stream (no StreamHeader chunk)" + (f"; it is {scan.problem}" if scan.problem else "")
        )
    if isinstance(video, str):
        candidates = []
        for s in scan.streams.values():
            el = ET.fromstring(s.header_xml)
            fmt, n = _text(el, "channel_format"), _int(_text(el, "channel_count"))
            if fmt in CHANNEL_FORMATS and _counts_frames(fmt, n, _text(el, "type"), el.find("desc")):
                candidates.append(_text(el, "name"))
        if len(candidates) != 1:
            raise XdfError(
                f"--video {video}: {len(candidates)} streams of frame numbers ({', '.join(candidates) or 'none'}); "
                "name the stream: --video STREAM=PATH"
            )
        video = {candidates[0]: video}
    video = dict(video or {})
    ids = {str(s.stream_id): ET.fromstring(s.header_xml).findtext("name") or "" for s in scan.streams.values()}
    typo = [k for k in video if k not in ids and k not in ids.values()]
    if typo:
        have = ", ".join(f"{n} (id {i})" for i, n in ids.items())
        raise XdfError(f"--video {', '.join(typo)}=...: no such stream in {src}; streams: {have}")
    tokens = [t.strip() for t in streams or () if t.strip()]
    if tokens:
        unknown = [t for t in tokens if not any(_selected(s, [t]) for s in scan.streams.values())]
        if unknown:
            have = ", ".join(
                f"{ET.fromstring(s.header_xml).findtext('name')} (id {s.stream_id})" for s in scan.streams.values()
            )
            raise XdfError(f"no stream named, typed or numbered {', '.join(unknown)} in {src}; streams: {have}")
    plans = []
    for s in scan.streams.values():
        if tokens and not _selected(s, tokens):
            plans.append(_Plan(s, None, _Role.SKIP, "not selected (--streams)"))
            continue
        plans.append(_plan(s, src, video))
        if tokens and plans[-1].role == _Role.SKIP:
            raise XdfError(f"stream {s.stream_id} of {src} cannot be imported: {plans[-1].reason}")
    warnings: list[str] = []
    for p in plans:
        el = ET.fromstring(p.scan.header_xml)
        if p.role == _Role.SKIP and not p.reason.startswith("not selected"):
            warnings.append(f"stream {el.findtext('name')!r} (id {p.scan.stream_id}) left out: {p.reason}")
        elif p.role != _Role.SKIP and p.reason:
            warnings.append(f"stream {el.findtext('name')!r} (id {p.scan.stream_id}): {p.reason}")
    _pick_ecg(plans, ecg, warnings)
    wanted = [p for p in plans if p.role != _Role.SKIP]
    if not wanted:
        raise XdfError(f"nothing to import from {src}: no stream can be stored in a session")
    if scan.truncated:
        warnings.append(f"{src.name} is {scan.problem}; imported the {scan.intact_bytes} intact bytes before it")
    missing = [sid for sid in scan.missing_footers if any(p.scan.stream_id == sid for p in wanted)]
    if missing and not scan.truncated:
        warnings.append(
            f"no StreamFooter for stream(s) {', '.join(map(str, missing))}: LabRecorder did not stop cleanly; "
            "every chunk written is imported and the session is marked incomplete"
        )

    start = _start_time(scan)
    provenance = f"imported from {src.name} by mecg import-xdf"
    tmp = temp_beside(dst, ".part.h5", XdfError)
    writer = None
    try:
        writer = SessionWriter(
            tmp,
            subject_id,
            f"{notes}\n{provenance}" if notes else provenance,
            overwrite=True,
            flush_interval_s=3600.0,
            fixed_time=start,
        )
        caps = {}
        for p in wanted:
            if p.role == _Role.FRAME_INDEX:
                caps[p.scan.stream_id] = _open_video(p)
            p.key = writer.add_stream(p.info)
        pyxdf_errors = _read_samples(src, raw, scan, wanted, writer, log, progress)
        if pyxdf_errors:
            text = "; ".join(dict.fromkeys(pyxdf_errors))
            if not partial:
                raise XdfTruncatedError(
                    f"{src} has damaged Samples chunks whose samples pyxdf had to skip ({text}); pass --partial to "
                    "import everything else (the session is marked incomplete)",
                    scan.intact_bytes,
                )
            warnings.append(f"damaged Samples chunks skipped by pyxdf: {text}")
        for p in wanted:
            if p.role == _Role.FRAME_INDEX:
                _append_video(p, caps.pop(p.scan.stream_id), writer, warnings, log)
            if p.offsets.shape[0]:
                writer.append_clock_offsets(p.key, p.offsets)
        writer.close()
        complete = not (scan.truncated or missing or pyxdf_errors)
        _finish(tmp, wanted, start, complete)
        os.replace(tmp, dst)
    except _Abort as a:
        _discard(writer, tmp)
        raise (a.exc if isinstance(a.exc, XdfError) else XdfError(f"cannot import {src}: {a.exc}")) from None
    except SessionError as exc:
        _discard(writer, tmp)
        raise XdfError(f"cannot write {dst}: {exc}") from None
    except BaseException:
        _discard(writer, tmp)
        raise
    report = XdfImportReport(str(src), str(dst), complete, scan.intact_bytes, scan.size, warnings=warnings)
    for p in plans:
        el = ET.fromstring(p.scan.header_xml)
        row = {
            "stream_id": p.scan.stream_id,
            "name": el.findtext("name") or "",
            "type": p.info.type if p.info else el.findtext("type") or "",
            "imported_as": p.key if p.role != _Role.SKIP else "",
            "kind": str(p.info.kind) if p.info else ("video (from file)" if p.role == _Role.FRAME_INDEX else ""),
            "nominal_srate_hz": p.info.nominal_srate_hz if p.info else float(el.findtext("nominal_srate") or 0),
            "samples": p.samples,
            "clock_offsets": int(p.offsets.shape[0]),
            "clock_resets": len(fit_clock_offsets(p.offsets)) - 1,  # segments as `mecg sync` cuts them
            "first_timestamp": None if math.isnan(p.first_ts) else p.first_ts,
            "last_timestamp": None if math.isnan(p.last_ts) else p.last_ts,
            "skipped": p.reason if p.role == _Role.SKIP else "",
        }
        if p.role == _Role.FRAME_INDEX:
            row["video_file"] = str(p.video_path)
        report.streams.append(row)
    return report


def _discard(writer: SessionWriter | None, tmp: Path) -> None:
    if writer is not None:
        writer.abort()
    tmp.unlink(missing_ok=True)


def _read_samples(
    src: Path,
    raw: Path,
    scan: XdfScan,
    wanted: list[_Plan],
    writer: SessionWriter,
    log: Callable[[str], None],
    progress: Callable[[int, int], None] | None = None,
) -> list[str]:
    """Stream every Samples chunk of the wanted streams into the writer; returns the errors pyxdf logged."""
    import pyxdf

    by_id = {p.scan.stream_id: p for p in wanted}
    done = [0]

    def on_chunk(values, stamps, info, sid):
        try:
            p = by_id[sid]
            ts = np.asarray(stamps, dtype=np.float64)
            n = ts.size
            if n:
                if p.role == _Role.FRAME_INDEX:
                    p.frame_numbers.append(_frame_numbers(values, p))
                    p.frame_stamps.append(ts.copy())
                elif p.role == _Role.MARKERS:
                    writer.append(p.key, [v[0] if len(v) == 1 else "\t".join(v) for v in values], ts)
                else:
                    writer.append(p.key, values, ts)
                if math.isnan(p.first_ts):
                    p.first_ts = float(ts[0])
                p.last_ts = float(ts[-1])
                p.samples += n
                done[0] += 1
                if done[0] % 200 == 0:
                    log(f"{done[0]} chunks read ...")
                if progress:
                    progress(done[0], max(done[0], scan.chunks))
            # fresh empty arrays: a [:0] view would keep every chunk's samples alive inside pyxdf
            empty = [] if isinstance(values, list) else np.empty((0, *values.shape[1:]), values.dtype)
            return empty, np.empty(0), info
        except Exception as exc:
            raise _Abort(exc) from exc

    logger = logging.getLogger("pyxdf.pyxdf")
    catcher = _LogCatcher()
    logger.addHandler(catcher)
    propagate, logger.propagate = logger.propagate, False
    try:
        src_file = io.BufferedReader(_Prefix(raw, scan.intact_bytes), buffer_size=1 << 20)
        result, _ = pyxdf.load_xdf(
            src_file,
            select_streams=sorted(by_id),
            on_chunk=on_chunk,
            synchronize_clocks=False,
            dejitter_timestamps=False,
        )
    except _Abort:
        raise
    except Exception as exc:  # pyxdf met something the scan did not (it raises plain Exceptions)
        raise XdfError(f"pyxdf cannot read {src}: {type(exc).__name__}: {exc}") from None
    finally:
        logger.removeHandler(catcher)
        logger.propagate = propagate
    for s in result:
        p = by_id.get(int(s["info"]["stream_id"]))
        if p is None:
            continue
        p.offsets = _recorder_offsets(s["clock_times"], s["clock_values"])
    return catcher.messages


def _recorder_offsets(collection_times: Sequence[float], values: Sequence[float]) -> np.ndarray:
    """ClockOffset chunks -> session ``clock_offsets`` rows ``[recorder time, offset]`` (s).

    LabRecorder measures ``offset = inlet.time_correction()`` and ``now = local_clock()`` (the
    recorder's clock) and writes ``CollectionTime = now - offset``, the sender's clock at that
    moment (App-LabRecorder, ``XDFWriter::write_stream_offset``); pyxdf fits and cuts on it as such.
    The session stores the recorder's clock, ``CollectionTime + offset``, as ``mecg record`` does.
    """
    t = np.asarray(collection_times, dtype=np.float64).reshape(-1)
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    return np.column_stack([t + v, v]).reshape(-1, 2)


def _frame_numbers(values: object, p: _Plan) -> np.ndarray:
    name = (p.info and p.info.name) or p.scan.stream_id
    try:
        arr = np.asarray([v[0] if isinstance(v, list) else v for v in values], dtype=np.float64).reshape(-1)
    except ValueError:
        raise XdfError(f"stream {name}: a sample is not a frame number ({str(values)[:80]})") from None
    if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
        raise XdfError(f"stream {name}: frame numbers must be whole numbers")
    return arr.astype(np.int64) - p.index_base


# -- video files --------------------------------------------------------------------------------
def _open_video(p: _Plan):
    """Open ``p.video_path``, read its first frame for the geometry and set ``p.info``; returns the capture."""
    import cv2

    cap = cv2.VideoCapture(str(p.video_path))
    ok, frame = cap.read() if cap.isOpened() else (False, None)
    if not ok or frame is None:
        cap.release()
        raise XdfError(f"cannot read video file {p.video_path} (missing, damaged, or a codec OpenCV cannot decode)")
    grey = frame.ndim == 2 or (
        np.array_equal(frame[..., 0], frame[..., 1]) and np.array_equal(frame[..., 1], frame[..., 2])
    )
    shape = frame.shape[:2] if grey else (*frame.shape[:2], 3)
    el = ET.fromstring(p.scan.header_xml)
    srate = float(el.findtext("nominal_srate") or 0.0)
    fps = srate if srate > 0 else float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    p.info = StreamInfo(
        name=el.findtext("name") or f"stream{p.scan.stream_id}",
        type="Video",
        kind=StreamKind.VIDEO,
        source_id=el.findtext("source_id") or "",
        hostname=el.findtext("hostname") or "",
        nominal_srate_hz=fps if math.isfinite(fps) and fps > 0 else 0.0,
        frame_shape=shape,
        can_drop_samples=True,
        lsl_header=p.scan.header_xml,
    )
    p.first_frame = frame
    return cap


def _append_video(p: _Plan, cap, writer: SessionWriter, warnings: list[str], log: Callable[[str], None]) -> None:
    """Decode the video file and append frame ``k`` with the timestamp of the sample that counted ``k``."""
    import cv2

    numbers = np.concatenate(p.frame_numbers) if p.frame_numbers else np.zeros(0, np.int64)
    stamps = np.concatenate(p.frame_stamps) if p.frame_stamps else np.zeros(0)
    name = p.info.name
    if numbers.size and (numbers[0] < 0 or np.any(np.diff(numbers) <= 0)):
        bad = int(np.flatnonzero(np.diff(numbers) <= 0)[0] + 1) if numbers[0] >= 0 else 0
        cap.release()
        raise XdfError(
            f"stream {name!r}: frame numbers must start at 0 or later and increase; sample {bad} is "
            f"{numbers[bad] + p.index_base} after {numbers[bad - 1] + p.index_base if bad else 'the start'}"
        )
    shape = p.info.frame_shape
    frame, p.first_frame = p.first_frame, None
    k = 0  # index of `frame` in the file
    j = 0  # next frame-number sample
    batch, batch_ts, unused = [], [], 0
    try:
        while j < numbers.size and frame is not None:
            if k == numbers[j]:
                if len(shape) == 2:
                    img = (
                        frame
                        if frame.ndim == 2
                        else (
                            frame[..., 0]
                            if np.array_equal(frame[..., 0], frame[..., 2])
                            else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
                        )
                    )
                else:
                    img = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                if img.shape != shape:
                    raise XdfError(f"video file {p.video_path}: frame {k} is {img.shape}, the first was {shape}")
                batch.append(img)
                batch_ts.append(stamps[j])
                j += 1
                if len(batch) == FRAMES_PER_APPEND:
                    writer.append(p.key, np.stack(batch), batch_ts)
                    batch, batch_ts = [], []
                    if j % (FRAMES_PER_APPEND * 50) == 0:
                        log(f"{name}: {j}/{numbers.size} frames decoded")
            else:
                unused += 1
            ok, frame = cap.read()
            frame = frame if ok else None
            k += 1
        if batch:
            writer.append(p.key, np.stack(batch), batch_ts)
        while frame is not None:  # frames after the last number: counted, not stored
            unused += 1
            ok, frame = cap.read()
            frame = frame if ok else None
    finally:
        cap.release()
    p.samples = j
    p.first_ts = float(stamps[0]) if j else math.nan
    p.last_ts = float(stamps[j - 1]) if j else math.nan
    if j < numbers.size:
        warnings.append(
            f"stream {name!r}: video file {p.video_path.name} ends at frame {k - 1 + p.index_base}; the last "
            f"{numbers.size - j} frame numbers point past its end and were left out"
        )
    if unused:
        warnings.append(
            f"stream {name!r}: {unused} frames of {p.video_path.name} have no frame-number sample in the XDF "
            "(recorded before or after LabRecorder ran, or while it was not recording) and were left out"
        )


def _finish(tmp: Path, wanted: list[_Plan], start_iso: str, complete: bool) -> None:
    """Root attributes only the whole recording knows: recorder LSL time at the start, end time, completeness.

    The recorded span is the earliest to the latest sample on the recorder's clock (each stream's
    timestamps corrected as ``mecg sync`` corrects them, clock resets included).
    """
    t0, t1 = math.inf, -math.inf
    first_offset_time = math.inf
    with open_session(tmp) as s:
        for p in wanted:
            if p.offsets.shape[0]:
                first_offset_time = min(first_offset_time, float(p.offsets[:, 0].min()))
            if p.samples:
                t = correct_timestamps(s.streams[p.key].timestamps, fit_clock_offsets(p.offsets))
                t0, t1 = min(t0, float(t.min())), max(t1, float(t.max()))
    attrs: dict[str, float | str | bool] = {}
    if math.isfinite(first_offset_time):
        attrs["start_time_lsl"] = first_offset_time
    if math.isfinite(t0) and t1 >= t0:
        end = _dt.datetime.fromisoformat(start_iso) + _dt.timedelta(seconds=t1 - t0)
        attrs["end_time"] = end.isoformat(timespec="milliseconds")
    attrs["complete"] = bool(complete)
    amend_root_attrs(tmp, attrs)
