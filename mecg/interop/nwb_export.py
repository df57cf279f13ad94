"""A session file out to NWB (Neurodata Without Borders) with pynwb.

What goes where (see docs/interop.md for the table):

- each signal stream -> ``(n_samples, n_channels)`` ``TimeSeries`` in ``acquisition``: its voltage
  channels as one series in volts (``ECG`` for the ECG stream, else the stream key; the stored samples
  unchanged, e.g. float32 in mV, with NWB's ``conversion`` factor to volts), its other channels
  (``TRIG``, ``STROBE``, units such as ``bool``, or none) as one series ``<name>_aux`` (``<name>`` when
  the stream has no voltage channel), and a ``DynamicTable`` ``<name>_channels`` naming each channel's
  label, type, unit, series and column. Not ``ElectricalSeries``: pynwb writes its electrodes table as
  an ``ElectrodesTable`` (NWB 2.8), which older readers cannot open;
- each video stream -> an ``ImageSeries``: by default the frames are written losslessly (FFV1 in
  Matroska) to ``<OUT stem>_<stream>.mkv`` beside the NWB file, referenced by a relative
  ``external_file``; with ``video_in_file`` they are stored in the NWB file itself (one gzip chunk
  per frame);
- each markers stream -> an ``AnnotationSeries`` ``acquisition/<stream>`` (the marker texts with their
  timestamps): core NWB since 2.0, so every 2.x reader opens it (``EventsTable``, its NWB 2.9
  successor, is unknown to readers before 2.9);
- the ME/MaE annotations -> a ``TimeIntervals`` table ``expressions`` with the frame columns,
  ``apex_time``, ``type``, ``aus`` and ``emotion``;
- ``subject_id`` -> ``Subject`` (species ``Homo sapiens`` unless told otherwise).

**Times.** NWB times are seconds from ``session_start_time``: the session's ``start_time``, moved back to
the earliest sample when a device stamped samples before the recorder started, so no time is negative. With
a ``/sync`` result (``mecg sync``) the ECG and the video are on the **ECG clock** (sample ``k`` at
``t0 + k / rate``, frames at ``t0 + frame_time_ecg_s``), ``t0`` being the ECG's first sample on the
recorder clock. Without it every stream is on the **recorder's LSL clock**: raw timestamps
corrected with the stream's clock offsets (robust line per clock segment, as ``mecg sync --mode
lsl``), minus the recorder's clock at the start (``start_time_lsl``); regular signals are then
dejittered, and video frame times are a robust line through (frame index counting dropped frames,
time), so they always increase. Markers are always on the recorder clock.
"""

from __future__ import annotations

import datetime as _dt
import errno
import gc
import hashlib
import io as _io
import math
import os
import signal
import sys
import threading
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mecg.errors import MecgError
from mecg.interop.output_files import check_output, temp_beside
from mecg.session import Session, Stream, StreamKind, open_session
from mecg.session.ecg_channel import ecg_columns
from mecg.sync.clocks import correct_timestamps, dejitter, fit_clock_offsets, frame_indices, huber_line
from mecg.sync.lookup import Timeline

#: Voltage units as sessions and LSL headers spell them, and their factor to volts.
VOLT_UNITS = {
    "v": 1.0,
    "volt": 1.0,
    "volts": 1.0,
    "mv": 1e-3,
    "millivolt": 1e-3,
    "millivolts": 1e-3,
    "uv": 1e-6,
    "µv": 1e-6,
    "μv": 1e-6,
    "microvolt": 1e-6,
    "microvolts": 1e-6,
    "nv": 1e-9,
    "nanovolts": 1e-9,
}
SEXES = ("M", "F", "O", "U")
#: Frames read from the session per step while writing video.
FRAMES_PER_READ = 128


class NwbExportError(MecgError):
    """A session cannot be exported to NWB as asked; the message says why and what to do."""


@dataclass
class NwbExportReport:
    """What :func:`export_nwb` wrote. Times in s."""

    out: str
    identifier: str
    clock: str
    objects: list[str] = field(default_factory=list)
    video_files: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        """Plain JSON-able dict."""
        return dict(self.__dict__)


def volts_per_unit(unit: str) -> float | None:
    """Factor from ``unit`` (``mV``, ``uV``, ``V``, ...) to volts, or None if it is not a voltage."""
    return VOLT_UNITS.get(unit.strip().lower().replace(" ", ""))


def _identifier(s: Session) -> str:
    """A UUID derived from what the session holds, so the same session always gives the same identifier."""
    h = hashlib.sha256()
    for k in ("subject_id", "start_time", "start_time_lsl", "software_version", "notes"):
        h.update(f"{k}={s.attr(k)!r};".encode())
    for key, st in sorted(s.streams.items()):
        ts = st.group["timestamps"]
        n = st.sample_count
        edge = np.array([ts[0], ts[n - 1]]).tobytes() if n else b""
        h.update(f"{key}:{st.info.source_id}:{n}:".encode() + edge)
    h.update(f"ann={len(s.annotations)};sync={s.sync_group.attrs.get('created_time', '')}".encode())
    return str(uuid.UUID(bytes=h.digest()[:16], version=5))


def _recorder_times(st: Stream) -> np.ndarray:
    """Raw timestamps on the recorder's clock (clock offsets fitted per segment, resets handled)."""
    return correct_timestamps(st.timestamps, fit_clock_offsets(st.clock_offsets))


def _regular(t: np.ndarray) -> float | None:
    """The rate (Hz) if ``t`` is regular to 1 ns (NWB then wants starting_time + rate), else None."""
    if t.size < 3:
        return None
    d = np.round(np.diff(t), 9)
    return float(1.0 / d[0]) if d[0] > 0 and np.all(d == d[0]) else None


def _video_frames(st: Stream, progress: Callable[[int, int], None] | None = None) -> Iterator[np.ndarray]:
    for a in range(0, st.sample_count, FRAMES_PER_READ):
        yield from st.frames(a, min(a + FRAMES_PER_READ, st.sample_count))
        if progress:
            progress(min(a + FRAMES_PER_READ, st.sample_count), st.sample_count)


def _write_mkv(st: Stream, path: Path, fps: float, progress: Callable[[int, int], None] | None = None) -> None:
    """All frames of ``st`` into a lossless FFV1 Matroska file (grey or colour as stored)."""
    import cv2

    h, w = st.info.frame_shape[:2]
    colour = len(st.info.frame_shape) == 3
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), max(fps, 1.0), (w, h), colour)
    if not vw.isOpened():
        raise NwbExportError(f"OpenCV cannot write FFV1 video to {path}; use --video-in-file instead")
    try:
        for fr in _video_frames(st, progress):
            vw.write(cv2.cvtColor(fr, cv2.COLOR_RGB2BGR) if colour else fr)
    finally:
        vw.release()


def _subject(s: Session, subject_id: str | None, species: str, sex: str, age: str | None):
    from pynwb.file import Subject

    if sex not in SEXES:
        raise NwbExportError(f"sex must be one of {', '.join(SEXES)} (U: unknown), got {sex!r}")
    sid = s.subject_id if subject_id is None else subject_id
    if "/" in sid:
        raise NwbExportError(f"subject id {sid!r} contains '/', which NWB does not allow; pass --subject")
    kw = {"age": age} if age else {}
    return Subject(
        subject_id=sid or "unknown",
        species=species,
        sex=sex,
        description="pseudonymous participant of a mecg recording (face video + ECG)",
        **kw,
    )


def _times_for(st: Stream, s: Session, origin: float, ecg_clock: tuple[Stream, float] | None) -> tuple[np.ndarray, str]:
    """NWB times (s) of a stream's samples and which clock they are on."""
    if ecg_clock is not None:
        ecg, t0 = ecg_clock
        if st.key == ecg.key:  # each ECG segment on its own sample clock, placed by mecg sync
            return t0 + Timeline(s, allow_failed=True).ecg_time_s, "ECG clock"
        if st.info.kind == "video" and st.key == s.sync_group.attrs.get("video_stream", ""):
            return t0 + _fill_unaligned(s.sync_group["frame_time_ecg_s"][()]), "ECG clock (mecg sync)"
    t = _recorder_times(st)
    rate = st.info.nominal_srate_hz
    if st.info.kind == "signal" and rate > 0:
        t = dejitter(t, rate)
    elif st.info.kind == "video" and rate > 0 and t.size >= 3:
        # a camera drops frames: a robust line through (frame index counting the drops, time), as mecg sync does
        idx = frame_indices(st.timestamps, rate).astype(np.float64)
        a, b = huber_line(idx, t, 0.25 / rate)
        t = a + b * idx
    return t - origin, "recorder LSL clock"


def _fill_unaligned(t: np.ndarray) -> np.ndarray:
    """Frame times with the NaN of frames mecg sync left unaligned (ECG gaps) interpolated over frame index.

    NWB needs a time for every frame; inside an ECG gap the camera's clock line runs on, which a
    linear interpolation between the aligned frames around it follows.
    """
    t = np.asarray(t, dtype=np.float64).copy()
    ok = np.isfinite(t)
    if ok.all() or ok.sum() < 2:
        return t
    i = np.arange(t.size)
    t[~ok] = np.interp(i[~ok], i[ok], t[ok], left=np.nan, right=np.nan)
    if not np.isfinite(t).all():  # before the first or after the last aligned frame: the neighbours' line
        slope, icpt = np.polyfit(i[ok], t[ok], 1)
        bad = ~np.isfinite(t)
        t[bad] = icpt + slope * i[bad]
    return t


def _series(name: str, data: object, times: np.ndarray, **kw: object):
    """A TimeSeries on regular times (starting_time + rate) when they are, else with timestamps."""
    from hdmf.backends.hdf5.h5_utils import H5DataIO
    from pynwb import TimeSeries

    data = H5DataIO(np.asarray(data), compression="gzip", compression_opts=4)
    rate = _regular(times)
    if rate is not None:
        return TimeSeries(name=name, data=data, starting_time=float(times[0]), rate=rate, **kw)
    return TimeSeries(name=name, data=data, timestamps=times, **kw)


def _unique(name: str, taken: set[str]) -> str:
    """``name``, or ``name_2``, ``name_3``, ... if an object of the file already has it; recorded in ``taken``."""
    out, k = name, 1
    while out in taken:
        k += 1
        out = f"{name}_{k}"
    taken.add(out)
    return out


def _signal_objects(
    st: Stream, clocked: tuple[np.ndarray, str], *, is_ecg: bool, ecg_unit: str | None, taken: set[str]
) -> list:
    """One signal stream as NWB objects: its samples as ``(n, channels)`` TimeSeries, and a table of its channels.

    The voltage channels make one series in volts (``ECG`` for the ECG stream, else the stream key): the
    stored samples with ``conversion`` to volts, or volts themselves when the units differ. The other
    channels make one series ``<name>_aux`` (``<name>`` when the stream has no voltage channel) in their
    common unit, ``n.a.`` when they have none or differ. ``<name>_channels`` (a DynamicTable) lists every
    channel: ``label``, ``type``, ``unit`` (as the session stores it), the ``series`` and ``column`` holding it.
    """
    from hdmf.common import DynamicTable

    times, clock = clocked
    info = st.info
    units = list(info.channel_units)
    if is_ecg and ecg_unit:  # the ECG channels (by type or label), else every channel of unknown unit
        ecg_ch = ecg_columns(info)  # the one rule: label or type ECG/EKG
        for i in ecg_ch or [i for i, u in enumerate(units) if volts_per_unit(u) is None and u != "bool"]:
            units[i] = ecg_unit
    volts = [i for i, u in enumerate(units) if volts_per_unit(u) is not None]
    if is_ecg and not volts:
        raise NwbExportError(
            f"ECG stream {st.key!r}: no channel has a voltage unit (units: {units}); pass --ecg-unit mV "
            "(or uV, V) to say what the samples are"
        )
    others = [i for i in range(len(units)) if i not in volts]
    base = "ECG" if is_ecg else st.key
    table_name = _unique(f"{base}_channels", taken)
    desc = f"{info.name} ({info.type}) from LSL source {info.source_id or '?'} on {info.hostname or '?'}; {clock}"
    data = st.data[()]
    out: list = []
    where: dict[int, tuple[str, int]] = {}  # channel -> (series, column)
    for name, cols in ((base, volts), (f"{base}_aux" if volts else base, others)):
        if not cols:
            continue
        name = _unique(name, taken)
        listed = ", ".join(
            f"{info.channel_labels[i]} ({info.channel_types[i] or 'no type'}, {units[i] or 'no unit'})" for i in cols
        )
        text = f"{desc}; columns: {listed} (see {table_name})"
        if cols is volts:
            factors = [volts_per_unit(units[i]) for i in cols]
            vdata, conversion = data[:, cols], factors[0]
            comments = f"stored as {info.channel_format} in {units[cols[0]]}; conversion gives volts"
            if len(set(factors)) > 1:  # mixed voltage units: store volts
                vdata, conversion = vdata.astype(np.float64) * np.array(factors), 1.0
                comments = "stored in volts (the channels' units differ)"
            kw = {"unit": "volts", "conversion": float(conversion), "comments": comments}
            out.append(_series(name, vdata, times, description=text, **kw))
        else:
            common = {units[i] for i in cols}
            unit = (common.pop() or "n.a.") if len(common) == 1 else "n.a."
            out.append(_series(name, data[:, cols], times, unit=unit, description=text))
        where.update({i: (name, j) for j, i in enumerate(cols)})
    table = DynamicTable(
        name=table_name,
        description=f"the channels of LSL stream {info.name} ({info.type}), one row each in the stream's order",
    )
    for col, doc in (
        ("label", "channel label, as the stream declares it"),
        ("type", "channel type (ECG, EXG, EEG, TRIG, ...), as the stream declares it; n.a. if none"),
        ("unit", "unit of the recorded samples (the series' unit and conversion give physical values); n.a.: none"),
        ("series", "name of the TimeSeries in acquisition that holds the channel"),
        ("column", "0-based column of the channel in that series' data"),
    ):
        table.add_column(col, doc)
    for i, label in enumerate(info.channel_labels):
        name, j = where[i]
        table.add_row(label=label, type=info.channel_types[i] or "n.a.", unit=units[i] or "n.a.", series=name, column=j)
    out.append(table)
    return out


def export_nwb(
    session_path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    overwrite: bool = False,
    video_in_file: bool = False,
    subject_id: str | None = None,
    species: str = "Homo sapiens",
    sex: str = "U",
    age: str | None = None,
    experimenter: str | None = None,
    institution: str | None = None,
    ecg_unit: str | None = None,
    log: Callable[[str], None] = lambda _m: None,
    progress: Callable[[int, int], None] | None = None,
) -> NwbExportReport:
    """Write the session at ``session_path`` as an NWB file ``out`` (see the module docstring).

    Parameters
    ----------
    overwrite
        Replace ``out`` (and its video files) if they exist.
    video_in_file
        Store video frames inside the NWB file (gzip, one chunk per frame) instead of a lossless
        ``.mkv`` file beside it.
    subject_id, species, sex, age
        The NWB ``Subject``: id (default: the session's), species (Latin binomial), sex
        (``M``/``F``/``O``/``U``), age (ISO 8601 duration, e.g. ``P27Y``).
    experimenter, institution
        Optional NWB file metadata.
    ecg_unit
        Unit of the ECG channels when the session does not say (``mV``, ``uV``, ``V``).
    log
        Receives progress lines.
    progress
        Called as ``progress(frames_written, frames)`` per video stream while its frames are written
        (inside the NWB file, that happens in the forked writer process).

    In a process with other Python threads (the lab app, a recorder) the whole export runs in a child
    of multiprocessing's fork server (``log`` and ``progress`` are still called here), so a failed
    write cannot leave this process's HDF5 in a state that crashes it later; a script that calls it
    then needs the usual ``if __name__ == "__main__":`` guard.

    Raises :class:`NwbExportError` (or :class:`~mecg.session.SessionError` for an unreadable session).
    """
    dst = Path(out)
    if dst.suffix.lower() != ".nwb":
        raise NwbExportError(f"{dst}: an NWB file name should end in .nwb")
    check_output(dst, overwrite, NwbExportError)
    if ecg_unit is not None and volts_per_unit(ecg_unit) is None:
        raise NwbExportError(f"--ecg-unit {ecg_unit!r} is not a voltage unit; use V, mV, uV or nV")
    opts = {
        "overwrite": overwrite,
        "video_in_file": video_in_file,
        "subject_id": subject_id,
        "species": species,
        "sex": sex,
        "age": age,
        "experimenter": experimenter,
        "institution": institution,
        "ecg_unit": ecg_unit,
    }
    if threading.active_count() > 1 and hasattr(os, "fork"):
        # A failed write (a full disk) leaves HDF5 in a state that crashes this process later, and a
        # process with other threads cannot fork its writer safely: the whole export runs in a child
        # of the single-threaded fork server instead.
        return _export_in_child(Path(session_path), dst, opts, log, progress)
    kw = {**opts, "log": log, "progress": progress}

    written: list[tuple[Path, Path]] = []  # (temporary, final) video files
    # A full disk shows up as OSError/RuntimeError from h5py or OpenCV, and as "Exception ignored" lines
    # when h5py frees the objects of the failed file: both become one clear error, and nothing is left.
    hook = sys.unraisablehook
    lost: list[BaseException] = []
    sys.unraisablehook = lambda u: lost.append(u.exc_value) if u.exc_value is not None else None
    try:
        return _export(session_path, dst, written, **kw)
    except (OSError, RuntimeError) as exc:
        full = (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or "No space" in str(exc)
        raise NwbExportError(
            f"cannot write {dst}: {'the disk is full' if full else exc}; nothing was written (the recording is "
            "untouched); free disk space or choose another folder, then export again"
        ) from None
    finally:
        sys.unraisablehook = hook
        for tmp, _ in written:  # renamed on success; left over only after a failure
            tmp.unlink(missing_ok=True)


def _export(
    session_path: str | os.PathLike, dst: Path, written: list[tuple[Path, Path]], **kw: object
) -> NwbExportReport:
    """The body of :func:`export_nwb`; each video file goes to a temporary name listed in ``written`` first,
    and is renamed to its final name only after the NWB file is complete."""
    from hdmf.backends.hdf5.h5_utils import H5DataIO
    from hdmf.data_utils import DataChunkIterator
    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.epoch import TimeIntervals
    from pynwb.image import ImageSeries
    from pynwb.misc import AnnotationSeries

    overwrite, video_in_file, ecg_unit, log = kw["overwrite"], kw["video_in_file"], kw["ecg_unit"], kw["log"]
    experimenter, institution = kw["experimenter"], kw["institution"]
    with open_session(session_path) as s:
        start = _dt.datetime.fromisoformat(str(s.attr("start_time")))
        if start.tzinfo is None:
            start = start.replace(tzinfo=_dt.UTC)
        ident = _identifier(s)
        report = NwbExportReport(str(dst), ident, "")
        if not kw["age"]:
            report.warnings.append(
                "no --age: NWB wants the subject's age (ISO 8601, e.g. P27Y, or a range such as P18Y/ for 'adult'); "
                "the NWB Inspector reports its absence as CRITICAL"
            )
        # -- clocks -------------------------------------------------------------------------
        # the ECG clock is that of the stream sync aligned to (found by mecg's one ECG rule: an EXG/EEG
        # stream's ECG channel too); without a sync, the one stream of type ECG names the ECG series
        ecgs = s.find_streams(type="ECG", kind=StreamKind.SIGNAL)
        synced_key = str(s.sync_group.attrs.get("ecg_stream", ""))
        ecg = s.streams[synced_key] if synced_key in s.streams else (ecgs[0] if len(ecgs) == 1 else None)
        origin = float(s.attr("start_time_lsl", float("nan")))
        if not math.isfinite(origin):
            firsts = [float(_recorder_times(st)[0]) for st in s.streams.values() if st.sample_count]
            origin = min(firsts) if firsts else 0.0
        synced = "frame_time_ecg_s" in s.sync_group and ecg is not None and ecg.info.nominal_srate_hz > 0
        ecg_clock = None
        if synced and str(s.sync_group.attrs.get("ecg_stream", "")) == ecg.key:
            t0 = float(dejitter(_recorder_times(ecg), ecg.info.nominal_srate_hz)[0]) - origin
            ecg_clock = (ecg, t0)
        report.clock = "ECG clock (mecg sync)" if ecg_clock else "recorder LSL clock (no /sync)"
        if ecg_clock is None:
            report.warnings.append(
                "no /sync result: times are the recorder's LSL clock (tens of ms between devices); "
                "run `mecg sync` first to put video and ECG on the ECG clock"
            )
        # NWB times must not start before session_start_time: move the reference back to the earliest
        # sample (devices stamp their first samples before the recorder's start), the same instant for all
        # (every stream's times computed once here: a video's without sync costs seconds per 100k frames)
        clocked = {
            st.key: _times_for(st, s, origin, ecg_clock if st.info.kind != "markers" else None)
            for st in s.streams.values()
            if st.sample_count
        }
        lead_s = min([0.0, *(float(t[0]) for t, _ in clocked.values())])
        clocked = {k: (t - lead_s, c) for k, (t, c) in clocked.items()}
        start += _dt.timedelta(seconds=lead_s)
        notes = s.notes.strip()
        nwb = NWBFile(
            session_description=notes or f"mecg session {Path(session_path).name}: face video and ECG",
            identifier=ident,
            session_start_time=start,
            session_id=Path(session_path).stem.replace("/", "_"),
            subject=_subject(s, kw["subject_id"], kw["species"], kw["sex"], kw["age"]),
            experiment_description="Face video and ECG recorded through Lab Streaming Layer and aligned with mecg",
            keywords=["ECG", "face video", "facial expression", "micro-expression"],
            source_script=f"mecg export-nwb (mecg {s.attr('software_version')})",
            source_script_file_name="mecg/interop/nwb_export.py",
            **({"experimenter": [experimenter]} if experimenter else {}),
            **({"institution": institution} if institution else {}),
        )
        # -- signals -----------------------------------------------------------------------
        names: set[str] = set()
        for st in s.streams.values():
            if st.info.kind != "signal" or st.sample_count == 0:
                continue
            is_ecg = ecg is not None and st.key == ecg.key
            for obj in _signal_objects(st, clocked[st.key], is_ecg=is_ecg, ecg_unit=ecg_unit, taken=names):
                nwb.add_acquisition(obj)
                report.objects.append(f"acquisition/{obj.name}")
        # -- video -------------------------------------------------------------------------
        for st in s.find_streams(kind=StreamKind.VIDEO):
            if st.sample_count == 0:
                continue
            times, clock = clocked[st.key]
            name = _unique(st.key, names)
            fps = st.info.nominal_srate_hz or (st.effective_srate_hz or 1.0)
            rate = _regular(times)
            timing = {"starting_time": float(times[0]), "rate": rate} if rate else {"timestamps": times}
            if not video_in_file:  # with a rate, pynwb must store an external file's frame count as num_samples,
                timing = {"timestamps": times}  # a recent field pynwb 2.x cannot read: each frame's time instead
            desc = f"{st.info.name} from LSL source {st.info.source_id or '?'}; frames (height, width[, RGB]); {clock}"
            if video_in_file:
                log(f"{st.key}: storing {st.sample_count} frames in the NWB file ...")
                data = H5DataIO(
                    DataChunkIterator(
                        _video_frames(st, kw["progress"]),
                        maxshape=(None, *st.info.frame_shape),
                        dtype=np.dtype(np.uint8),
                    ),
                    chunks=(1, *st.info.frame_shape),
                    compression="gzip",
                    compression_opts=4,
                )
                series = ImageSeries(
                    name=name,
                    data=data,
                    dimension=[st.info.frame_shape[1], st.info.frame_shape[0]],
                    unit="n.a.",
                    description=desc,
                    **timing,
                )
            else:
                mkv = dst.with_name(f"{dst.stem}_{st.key}.mkv")
                check_output(mkv, overwrite, NwbExportError)
                log(f"{st.key}: writing {st.sample_count} frames to {mkv.name} (FFV1, lossless) ...")
                tmp_mkv = temp_beside(mkv, ".part.mkv", NwbExportError)
                written.append((tmp_mkv, mkv))
                _write_mkv(st, tmp_mkv, fps, kw["progress"])
                report.video_files.append(str(mkv))
                series = ImageSeries(
                    name=name,
                    external_file=[mkv.name],
                    format="external",
                    starting_frame=[0],
                    dimension=[st.info.frame_shape[1], st.info.frame_shape[0]],
                    unit="n.a.",
                    description=f"{desc}; frames in {mkv.name} (FFV1, lossless)",
                    **timing,
                )
            nwb.add_acquisition(series)
            report.objects.append(f"acquisition/{name}")
        # -- markers and annotations -------------------------------------------------------
        for st in s.find_streams(kind=StreamKind.MARKERS):
            if st.sample_count == 0:
                continue
            t, _ = clocked[st.key]
            order = np.argsort(t, kind="stable")
            texts = st.markers()
            name = _unique(st.key, names)
            with warnings.catch_warnings():  # deprecated for NWB 2.9 writers in favour of EventsTable, which
                warnings.filterwarnings("ignore", "AnnotationSeries is deprecated")  # readers before 2.9 cannot open
                series = AnnotationSeries(
                    name=name,
                    data=[texts[i] for i in order],
                    timestamps=t[order],
                    description=f"LSL markers of {st.info.name} ({st.info.type}) from {st.info.source_id or '?'} on "
                    f"{st.info.hostname or '?'}: the marker text as sent, at its time on the recorder's LSL clock (raw "
                    "timestamp corrected with the stream's clock offsets)",
                )
            nwb.add_acquisition(series)
            report.objects.append(f"acquisition/{name}")
        ann = s.annotations
        if ann:
            vid = s.streams.get(s.annotated_stream)
            if vid is None or vid.key not in clocked:
                raise NwbExportError(
                    f"annotations refer to video stream {s.annotated_stream!r}, not in the session or without frames"
                )
            ft, _ = clocked[vid.key]
            table = TimeIntervals(
                name="expressions",
                description=f"coded facial expressions (ME: micro-, MaE: macro-expression) on the frames of "
                f"{vid.key}; start/stop = onset/offset frame times (inclusive frames)",
            )
            for col, d in (
                ("onset_frame", "0-based index of the onset frame"),
                ("apex_frame", "0-based index of the apex frame"),
                ("offset_frame", "0-based index of the offset frame (inclusive)"),
                ("apex_time", "time (s) of the apex frame"),
                ("type", "ME or MaE"),
                ("aus", "FACS action units, e.g. AU1+AU2"),
                ("emotion", "emotion label"),
            ):
                table.add_column(col, d)
            for a in ann:
                table.add_row(
                    start_time=float(ft[a.onset_frame]),
                    stop_time=float(ft[a.offset_frame]),
                    onset_frame=a.onset_frame,
                    apex_frame=a.apex_frame,
                    offset_frame=a.offset_frame,
                    apex_time=float(ft[a.apex_frame]),
                    type=a.type,
                    aus=a.aus or "n.a.",
                    emotion=a.emotion or "n.a.",
                )
            nwb.add_time_intervals(table)
            report.objects.append("intervals/expressions")
        # -- write (temporary file, then rename) ------------------------------------------
        tmp_nwb = temp_beside(dst, ".part.nwb", NwbExportError)
        try:
            _write_nwb(NWBHDF5IO, tmp_nwb, nwb)
            for tmp, final in written:  # the videos first: the new .nwb must never point at a missing file
                os.replace(tmp, final)
            os.replace(tmp_nwb, dst)
        finally:
            tmp_nwb.unlink(missing_ok=True)
    return report


def _child_export(conn: object, session_path: Path, dst: Path, opts: dict) -> None:
    """Fork-server child of :func:`_export_in_child`: export, sending log lines, progress and the outcome."""
    send = conn.send  # type: ignore[attr-defined]
    try:
        rep = export_nwb(
            session_path, dst, log=lambda m: send(("log", m)), progress=lambda a, b: send(("progress", a, b)), **opts
        )
        send(("done", rep))
    except BaseException as exc:  # every failure goes back to the caller, as the same error where it pickles
        try:
            send(("error", exc))
        except Exception:
            send(("error", NwbExportError(f"{type(exc).__name__}: {exc}")))


def _export_in_child(
    session_path: Path,
    dst: Path,
    opts: dict,
    log: Callable[[str], None],
    progress: Callable[[int, int], None] | None,
) -> NwbExportReport:
    """:func:`export_nwb` in a child of multiprocessing's fork server (single-threaded, so the child
    may fork its writer); ``log`` and ``progress`` are called here. A crashed child leaves no output."""
    import multiprocessing

    ctx = multiprocessing.get_context("forkserver")
    recv_end, send_end = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child_export, args=(send_end, session_path, dst, opts), daemon=True)
    before = _parts(dst)
    child.start()
    send_end.close()
    answered = False  # the child reported (and cleaned up after itself)
    try:
        while True:
            try:
                msg = recv_end.recv()
            except EOFError:
                break
            if msg[0] == "log":
                log(msg[1])
            elif msg[0] == "progress" and progress is not None:
                progress(msg[1], msg[2])
            elif msg[0] in ("done", "error"):
                answered = True
                if msg[0] == "error":
                    raise msg[1]
                return msg[1]
        child.join()
        code = child.exitcode
        how = f"signal {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit code {code}"
        raise NwbExportError(
            f"the NWB export process of {session_path} ended without a result ({how}); nothing was written "
            "(the recording is untouched); run `mecg export-nwb` from a terminal to see why"
        )
    finally:
        recv_end.close()
        if child.is_alive():
            child.terminate()
        child.join()
        if not answered:  # a crashed or interrupted child's temporary files
            for part in _parts(dst) - before:
                part.unlink(missing_ok=True)


def _parts(dst: Path) -> set[Path]:
    """Temporary files an export to ``dst`` makes beside it (see :func:`temp_beside`)."""
    return {*dst.parent.glob(f".{dst.stem}.*.part.nwb"), *dst.parent.glob(f".{dst.stem}_*.part.mkv")}


def _write_nwb(io_class: type, path: Path, nwb: object) -> None:
    """Write ``nwb`` to ``path`` (a temporary name the caller removes on failure).

    HDF5 left with a half-written file after a failed write (a full disk) crashes a later file
    operation of the same process, and touching that file again crashes at once. So where it is
    safe (POSIX, no other Python thread) the file is written in a forked child, which exits without
    the parent's cleanup; a failure there is raised here as ``OSError`` (with its errno) or
    ``RuntimeError``, and this process's HDF5 never saw the file. Elsewhere (no ``fork``) it is
    written here; with other threads alive :func:`export_nwb` already runs in a fork-server child.
    """
    if not hasattr(os, "fork") or threading.active_count() > 1:
        with io_class(str(path), "w") as nwb_io:
            nwb_io.write(nwb)
        return
    sys.stdout.flush()
    sys.stderr.flush()
    # Garbage waiting for the cycle collector is destroyed here, not in the child: an LSL inlet or
    # outlet left by earlier work, destroyed in a forked child (whose liblsl threads do not exist),
    # crashes it. The child collects nothing.
    gc.collect()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: write, report, exit without running the parent's cleanup
        gc.disable()
        os.close(read_end)
        code = 0
        sys.stderr = _io.StringIO()  # h5py's "Exception ignored" lines of a failed file stay here
        try:
            with io_class(str(path), "w") as nwb_io:
                nwb_io.write(nwb)
        except BaseException as exc:
            code = 3
            os.write(write_end, f"{getattr(exc, 'errno', None) or 0}|{type(exc).__name__}: {exc}".encode()[:8000])
        os._exit(code)
    os.close(write_end)
    chunks = []
    while chunk := os.read(read_end, 65536):
        chunks.append(chunk)
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
        return
    if os.WIFSIGNALED(status):
        raise RuntimeError(f"the NWB writer crashed ({signal.Signals(os.WTERMSIG(status)).name})")
    code, _, message = b"".join(chunks).decode(errors="replace").partition("|")
    if code.isdigit() and int(code):
        raise OSError(int(code), message)
    raise RuntimeError(message or "the NWB writer failed")


def inspect_nwb(path: str | os.PathLike) -> list[tuple[str, str, str, str]]:
    """NWB Inspector messages for ``path`` as ``(importance, check, object path, message)``; needs nwbinspector."""
    try:
        from nwbinspector import inspect_nwbfile
    except ImportError as exc:
        raise NwbExportError("the NWB Inspector is not installed: pip install nwbinspector") from exc
    return [
        (m.importance.name, m.check_function_name, m.location or "/", m.message)
        for m in inspect_nwbfile(nwbfile_path=str(path))
        if m is not None
    ]
