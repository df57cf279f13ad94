"""The recorder engine: LSL streams into one crash-safe session file, as LabRecorder does into XDF.

Shared by ``mecg record`` and the lab app. :meth:`Recorder.start` checks the output, finds the
wanted streams (:class:`~mecg.acquire.stream_metadata.StreamQuery`), opens an inlet per stream
(``recover=True``: a stream that vanishes and comes back with the same source_id continues in
the same inlet) and creates the :class:`~mecg.session.SessionWriter`. Then, per stream:

- a **pull thread** polls ``pull_chunk(timeout=0.0)`` (numeric streams into a reused numpy
  buffer) and appends each chunk with its raw LSL timestamps; the writer flushes every 0.5 s, so
  a hard crash loses at most about that plus one poll;
- a **clock thread** measures ``inlet.time_correction()`` at once and then every 5 s and stores
  ``[local_clock(), offset]`` rows (``clock_offsets``), as LabRecorder does.

A housekeeping thread adds streams that appear late, picks up restarted ones, watches the free
disk space and turns write errors into a clean stop.

**Losses** are counted from the timestamps of regular-rate streams. mecg's drivers stamp each
sample from the device's own clock (ECG) or frame schedule (camera), so the timestamps are the
sample counter: a step of k sample periods means k - 1 samples missing. A step of more than 1.5
periods is ``dropped`` samples; one of more than ``gap_s`` (a stream that stalled, an outage the
buffers did not ride out, a device restart) is a **gap**, kept with its start, length and missing
samples; a stream still silent when recording stops ends in a gap up to the stop time.
``missing`` is everything: dropped samples plus the samples in gaps. The gap table and the totals
go into each stream's group of the session (``gaps``, ``missing_samples``, ``dropped_samples``).

**Restarts**: an inlet opened with ``recover=True`` finds its stream again by itself when an outlet
with the same source_id comes back, but liblsl takes 1-2 s and more for that. The housekeeping
thread therefore watches the resolver: when a stream it records appears with a new outlet (a new
LSL uid) while the stream is silent, it opens an inlet on the new outlet and the pull thread
switches to it (draining the old inlet first, then dropping from the new inlet the samples the old one
already delivered from it: LSL's recovery may have put the old inlet on the new outlet first).

:meth:`Recorder.stop` drains the inlets and closes the file (``complete`` true); after a failure it
closes it without marking it complete.

**Monitor mode** (``RecorderConfig.path=None``): the same streams, inlets, status and health,
but nothing is written (a lab app watches the devices this way before it records). With
``RecorderConfig.live.preview`` each stream also keeps a :class:`~mecg.acquire.preview.StreamPreview`
(newest frame downsampled, last seconds of signal, last markers) for a live display, so the
display needs no inlet of its own. With ``RecorderConfig.live.analysis`` (a
:class:`~mecg.acquire.live_analysis.LiveAnalysis`, e.g. live spotting) every stored chunk is also
handed to an analysis thread through a bounded queue (work is skipped, never recording, when it is
behind); its events go into the session as a markers stream while the file is open, and it finishes
before the file is closed.

The settings are in :mod:`mecg.acquire.recorder_config`; each stream's threads and counters are a
:class:`~mecg.acquire.stream_task.StreamTask`, which reaches the recorder only through a
:class:`~mecg.acquire.stream_task.TaskHost` (append, clock offsets, events, failure, stop).
"""

from __future__ import annotations

import collections
import errno
import json
import math
import os
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pylsl
from pylsl.util import LostError as LslLostError
from pylsl.util import TimeoutError as LslTimeoutError

from mecg.acquire.buffers import DEFAULT_BUFFER_S, BufferTooLargeError, buffer_seconds
from mecg.acquire.errors import AcquireError
from mecg.acquire.live_analysis import EVENTS_TYPE, LiveEvent
from mecg.acquire.live_heart_rate import ready as hr_ready
from mecg.acquire.preview import StreamPreview
from mecg.acquire.recorder_config import (
    BufferSettings,
    LiveSettings,
    OutputSettings,
    RecorderConfig,
    StreamSelection,
    TimingSettings,
)
from mecg.acquire.states import RecorderState, StreamKind, StreamState
from mecg.acquire.stream_metadata import (
    StreamQuery,
    describe_queries,
    is_video_type,
    matches_any,
    session_stream_info,
    stream_identity,
)
from mecg.acquire.stream_task import StreamStatus, StreamTask, TaskHost
from mecg.session import SessionError, SessionWriter, StreamInfo
from mecg.session.ecg_channel import EcgChannelError, pick_ecg
from mecg.session.format import stream_key

__all__ = [
    "BufferSettings",
    "DiskFullError",
    "LiveSettings",
    "NoStreamError",
    "OutputExistsError",
    "OutputSettings",
    "Recorder",
    "RecorderConfig",
    "RecorderError",
    "RecorderState",
    "RecorderStatus",
    "StreamSelection",
    "StreamState",
    "StreamStatus",
    "TimingSettings",
    "check_output",
    "free_mb",
]

#: Bytes per channel value of each LSL channel format (strings: a typical marker).
_SAMPLE_BYTES = {
    pylsl.cf_float32: 4,
    pylsl.cf_double64: 8,
    pylsl.cf_string: 32,
    pylsl.cf_int32: 4,
    pylsl.cf_int16: 2,
    pylsl.cf_int8: 1,
    pylsl.cf_int64: 8,
}
#: Rows of a stream's gap table kept in the session (an HDF5 attribute holds 64 KiB; the counts cover all).
MAX_GAP_ROWS = 2000


class RecorderError(AcquireError):
    """Recording cannot start or had to stop; the message says why and what to do."""


class NoStreamError(RecorderError):
    """No wanted LSL stream was found in time."""


class OutputExistsError(RecorderError):
    """The output file exists and overwriting was not asked for."""


class DiskFullError(RecorderError):
    """The disk is (nearly) full."""


@dataclass
class RecorderStatus:
    """A snapshot of the whole recording: ``state`` is ``idle``, ``recording`` (``monitoring`` in monitor
    mode), ``stopped`` or ``failed``.

    ``cpu_s``: CPU time (s) of this whole process since recording started (drivers started in
    the same process included).
    """

    path: str
    state: str
    elapsed_s: float
    file_bytes: int
    free_mb: float
    streams: list[StreamStatus] = field(default_factory=list)
    heart_rate_bpm: float | None = None
    markers: int = 0
    complete: bool = False
    error: str = ""
    cpu_s: float = 0.0

    def as_dict(self) -> dict:
        """Plain JSON-able dict."""
        d = {
            k: getattr(self, k)
            for k in (
                "path",
                "state",
                "elapsed_s",
                "file_bytes",
                "free_mb",
                "heart_rate_bpm",
                "markers",
                "complete",
                "error",
                "cpu_s",
            )
        }
        d["streams"] = [dict(s.__dict__) for s in self.streams]
        for s in d["streams"]:
            s["latency_ms"] = list(s["latency_ms"])
            s["gap_table"] = [list(g) for g in s["gap_table"]]
            for k, v in s.items():
                if isinstance(v, float) and not math.isfinite(v):
                    s[k] = None
        return d


# -- output checks ------------------------------------------------------------------------------
def free_mb(folder: str | os.PathLike) -> float:
    """Free space (MB) on the file system holding ``folder``."""
    return shutil.disk_usage(folder).free / 1e6


def check_output(path: str | os.PathLike, overwrite: bool = False, min_free_mb: float = 0.0) -> Path:
    """Check that a session can be written to ``path``; raises :class:`RecorderError` subclasses."""
    p = Path(path)
    if p.suffix.lower() not in (".h5", ".hdf5"):
        raise RecorderError(f"{p}: a session file name should end in .h5")
    if p.is_dir():
        raise RecorderError(f"{p} is a folder; give a file name, or use --session-dir {p}")
    if p.exists() and not overwrite:
        raise OutputExistsError(f"{p} already exists; choose another name or pass --overwrite to replace it")
    if not p.parent.is_dir():
        raise RecorderError(f"folder {p.parent} does not exist; create it first")
    if not os.access(p.parent, os.W_OK):
        raise RecorderError(f"no permission to write in {p.parent}")
    free = free_mb(p.parent)
    if free < min_free_mb:
        raise DiskFullError(
            f"only {free:.0f} MB free on the disk of {p.parent} (at least {min_free_mb:.0f} MB "
            "needed): free some space or record to another disk"
        )
    return p


def _is_disk_full(exc: BaseException) -> bool:
    if getattr(exc, "errno", None) in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        return True
    text = str(exc).lower()
    return any(s in text for s in ("no space left", "file too large", "disk quota", "errno = 28", "errno = 27"))


class _NullWriter:
    """Monitor mode's stand-in for the session writer: stream keys as the writer would give them, nothing stored."""

    def __init__(self) -> None:
        self._streams: dict[str, StreamInfo] = {}
        self._lock = threading.Lock()

    @property
    def streams(self) -> dict[str, StreamInfo]:
        return dict(self._streams)

    def add_stream(self, info: StreamInfo) -> str:
        with self._lock:
            key = stream_key(info.name, set(self._streams))
            self._streams[key] = info
            return key

    def append(self, key: str, data: object, timestamps: object) -> None:
        pass

    def append_clock_offsets(self, key: str, rows: object) -> None:
        pass

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass

    def freeze(self) -> None:
        pass


# -- the recorder -------------------------------------------------------------------------------
class Recorder:
    """Records LSL streams into one session file; :meth:`start`, then :meth:`stop` (or ``with``).

    Thread-safe to query (:meth:`status`, :meth:`events`) while recording. :attr:`failure` is set
    (and :meth:`wait` returns) when recording had to stop on its own (disk full, write error).
    """

    def __init__(self, config: RecorderConfig) -> None:
        self.config = config
        self.path = Path(config.path) if config.path is not None else None
        self.writer: SessionWriter | _NullWriter | None = None
        self.failure: RecorderError | None = None
        self.start_lsl = math.nan
        self._tasks: list[StreamTask] = []
        self._known: set[tuple[str, ...]] = set()
        self._announced: set[tuple[str, ...]] = set()
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._events: collections.deque[str] = collections.deque(maxlen=1000)
        self._resolver: pylsl.ContinuousResolver | None = None
        self._by_identity: dict[tuple[str, ...], StreamTask] = {}
        self._failed_uids: dict[str, float] = {}
        self._house: threading.Thread | None = None
        self._state = RecorderState.IDLE
        self._elapsed_final: float | None = None
        self._hr_cache: tuple[float, float | None] = (-math.inf, None)
        self._final: RecorderStatus | None = None
        self._closed = False
        self._cpu0 = 0.0
        self._cpu_final: float | None = None
        self._events_key: str | None = None  # the live analysis's events stream, once it has one
        self._events_lock = threading.Lock()
        #: What each stream task may do to this recorder.
        self._host = TaskHost(
            append=self._append,
            append_clock_offsets=self._append_clock_offsets,
            event=self._event,
            fail=self._fail,
            stop=self._stop,
        )

    def __enter__(self) -> Recorder:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def state(self) -> str:
        """``idle``, ``recording`` (``monitoring``), ``stopped`` or ``failed``, without building a status."""
        return self._state

    @property
    def monitoring(self) -> bool:
        """True in monitor mode (``path=None``): streams are watched, nothing is written."""
        return self.path is None

    def previews(self) -> dict[str, StreamPreview]:
        """The :class:`StreamPreview` of each stream by key (empty unless ``RecorderConfig.preview``)."""
        with self._lock:
            return {t.key: t.preview for t in self._tasks if t.preview is not None}

    @property
    def queries(self) -> tuple[StreamQuery, ...]:
        """Everything recorded: the wanted and the required streams."""
        return tuple(self.config.selection.queries) + tuple(self.config.selection.required)

    # -- starting -------------------------------------------------------------------------------
    def _resolve(self) -> list[pylsl.StreamInfo]:
        """Wait for the wanted streams (see :class:`RecorderConfig`); one info per stream identity."""
        cfg = self.config.selection
        self._resolver = pylsl.ContinuousResolver(forget_after=5.0)
        t_start = time.monotonic()
        t_ok: float | None = None
        while True:
            found: dict[tuple[str, ...], pylsl.StreamInfo] = {}
            for info in self._resolver.results():
                if matches_any(info, self.queries):
                    found.setdefault(stream_identity(info), info)
            missing = [q for q in cfg.required if not any(q.matches(i) for i in found.values())]
            now = time.monotonic()
            if found and not missing:
                t_ok = t_ok if t_ok is not None else now
                if now - t_ok >= (cfg.settle_s if cfg.queries else 0.0):  # only required ones: no need to wait
                    break
            if now - t_start >= cfg.wait_s:
                break
            time.sleep(0.05)
        if missing:
            raise NoStreamError(
                f"no LSL stream with {describe_queries(missing)} appeared within {cfg.wait_s:g} s: "
                "did its device start? (see the messages above) With many LSL programs on one computer, LSL's "
                "port range may be full: raise [ports] PortRange in the LSL config"
            )
        if not found:
            raise NoStreamError(
                f"no LSL stream with {describe_queries(self.queries)} found within {cfg.wait_s:g} s: "
                "start the device drivers (`mecg stream ...`) or use --simulate; `mecg devices` lists "
                "the streams this computer sees; on several computers check the LSL config"
            )
        return sorted(found.values(), key=lambda i: (i.type().lower(), i.name(), i.source_id(), i.hostname()))

    def inlet_buffer_s(self, info: pylsl.StreamInfo) -> int:
        """The inlet buffer (s; irregular streams: hundreds of samples) for ``info``: ``RecorderConfig.buffer_s``
        or the default (video 15 s within ``buffer_max_mb``, others 360 s); raises
        :class:`~mecg.acquire.buffers.BufferTooLargeError` for an explicit buffer over the cap."""
        video = is_video_type(info.type())  # VideoRaw (XDF) or Video (older mecg): frames are large
        return buffer_seconds(
            self.config.buffers.buffer_s,
            default_s=DEFAULT_BUFFER_S if video else 360.0,
            srate_hz=info.nominal_srate(),
            sample_bytes=info.channel_count() * _SAMPLE_BYTES.get(info.channel_format(), 8),
            max_mb=self.config.buffers.buffer_max_mb,
            what=f"{info.name()} ({info.type()}, {info.channel_count()} values at {info.nominal_srate():g} Hz)",
        )

    def _open(self, info: pylsl.StreamInfo, timeout_s: float) -> tuple[pylsl.StreamInlet, StreamInfo, int]:
        """An inlet on ``info``, the session description of its full header and the inlet's buffer (s)."""
        buflen = self.inlet_buffer_s(info)
        inlet = pylsl.StreamInlet(info, max_buflen=buflen, max_chunklen=0, recover=True)
        try:
            inlet.open_stream(timeout=timeout_s)
            full = inlet.info(timeout=timeout_s)
            return inlet, session_stream_info(full), buflen
        except BaseException:
            inlet.close_stream()
            raise

    def _add(
        self, inlet: pylsl.StreamInlet, found: pylsl.StreamInfo, info: StreamInfo, late: bool, buffer_s: int
    ) -> StreamTask:
        assert self.writer is not None
        key = self.writer.add_stream(info)
        cfg = self.config
        task = StreamTask(
            self._host,
            inlet,
            info,
            key,
            late,
            timing=cfg.timing,
            live=cfg.live,
            ecg_channel=cfg.output.ecg_channel,
            uid=found.uid(),
            buffer_s=buffer_s,
        )
        task.identity = stream_identity(found)
        with self._lock:
            self._tasks.append(task)
            self._by_identity[stream_identity(found)] = task
        task.start()
        return task

    def start(self) -> Recorder:
        """Check the output, find the streams, create the file and start recording.

        Raises :class:`OutputExistsError`, :class:`NoStreamError`, :class:`DiskFullError` or
        :class:`RecorderError`; on any error no session file is left behind.
        """
        cfg = self.config
        if self.path is not None:
            check_output(self.path, cfg.output.overwrite, cfg.output.min_free_mb)
        try:
            found = self._resolve()
        except BaseException:
            self._resolver = None
            raise
        opened: list[tuple[pylsl.StreamInlet, StreamInfo, pylsl.StreamInfo, int]] = []
        try:
            for info in found:
                try:
                    inlet, sinfo, buflen = self._open(info, timeout_s=max(2.0, cfg.selection.wait_s))
                except BufferTooLargeError:
                    raise
                except (LslTimeoutError, LslLostError, AcquireError) as exc:
                    self._event(f"{info.name()} ({info.type()}, source_id {info.source_id()!r}): cannot open: {exc}")
                    continue
                opened.append((inlet, sinfo, info, buflen))
            if not opened:
                raise NoStreamError("the streams found went away before recording could start; start them again")
            self._check_ecg_choice([sinfo for _, sinfo, *_ in opened])
            self.start_lsl = pylsl.local_clock()
            self._cpu0 = time.process_time()
            self.writer = (
                _NullWriter()
                if self.path is None
                else SessionWriter(
                    self.path,
                    cfg.output.subject_id,
                    cfg.output.notes,
                    overwrite=cfg.output.overwrite,
                    flush_interval_s=cfg.output.flush_interval_s,
                    video_codec=cfg.output.video_codec,
                    start_time_lsl=self.start_lsl,
                )
            )
            if cfg.output.ecg_channel and self.path is not None:
                self.writer.set_ecg_channel(cfg.output.ecg_channel)
            if cfg.live.analysis is not None:
                cfg.live.analysis.begin(self._store_live_events if self.path is not None else None)
        except SessionError as exc:
            for inlet, *_ in opened:
                inlet.close_stream()
            raise RecorderError(str(exc)) from None
        except BaseException:
            for inlet, *_ in opened:
                inlet.close_stream()
            raise
        try:
            for inlet, sinfo, info, buflen in opened:
                self._known.add(stream_identity(info))
                self._add(inlet, info, sinfo, late=False, buffer_s=buflen)
            self._state = RecorderState.MONITORING if self.path is None else RecorderState.RECORDING
            if not (cfg.selection.late_streams and cfg.selection.queries):
                # nothing can appear late (only the required streams are wanted, the drivers this process
                # started, which keep their outlets, and inlets recover by themselves): let the resolver go,
                # it holds several ports of LSL's small port range
                self._resolver = None
            self._house = threading.Thread(target=self._housekeeping, name="rec-house", daemon=True)
            self._house.start()
        except BaseException:
            self._stop.set()
            self._join()
            self._discard()
            raise
        return self

    def _check_ecg_choice(self, infos: list[StreamInfo]) -> None:
        """Refuse an ``ecg_channel`` that names no stream found (EcgChannelError); say when several carry ECG."""
        named = {}
        for info in infos:  # keyed as the writer will key them
            named[stream_key(info.name, set(named))] = info
        try:
            pick_ecg(named, self.config.output.ecg_channel)
        except EcgChannelError as exc:
            if self.config.output.ecg_channel:
                raise
            self._event(f"note: {exc} (or give it to `mecg sync` later)")

    def _discard(self) -> None:
        """Failed start: close the file unmarked and remove it (it holds nothing worth keeping)."""
        if self.writer is not None:
            self.writer.abort()
            if self.path is not None:
                self.path.unlink(missing_ok=True)
        self._state = RecorderState.FAILED

    # -- while recording ------------------------------------------------------------------------
    def _append(self, key: str, data: object, ts: np.ndarray) -> None:
        assert self.writer is not None
        self.writer.append(key, data, ts)

    def _append_clock_offsets(self, key: str, rows: list[list[float]]) -> None:
        assert self.writer is not None
        self.writer.append_clock_offsets(key, rows)

    def _store_live_events(self, events: list[LiveEvent]) -> None:
        """Live analysis events into the session being written: a markers stream of their own (analysis thread)."""
        writer = self.writer
        if not isinstance(writer, SessionWriter) or self._closed:
            return
        writer.append(self._live_events_key(writer), [e.text for e in events], np.array([e.time_s for e in events]))

    def _live_events_key(self, writer: SessionWriter) -> str:
        """The key of the live analysis's events stream, added to the session on first use."""
        with self._events_lock:
            return self._live_events_key_locked(writer)

    def _live_events_key_locked(self, writer: SessionWriter) -> str:
        if self._events_key is None:
            analysis = self.config.live.analysis
            name = analysis.events_name if analysis is not None else "mecg live analysis"
            info = StreamInfo(name=name, type=EVENTS_TYPE, kind="markers", source_id=f"mecg-live-{os.getpid()}")
            self._events_key = writer.add_stream(info)
        return self._events_key

    def _event(self, message: str) -> None:
        self._events.append(f"[{time.strftime('%H:%M:%S')}] {message}")

    def events(self) -> list[str]:
        """Messages since the last call (streams appearing, stalling, coming back; failures)."""
        out = []
        while self._events:
            try:
                out.append(self._events.popleft())
            except IndexError:
                break
        return out

    def _fail(self, exc: BaseException) -> None:
        """Stop recording because of ``exc`` (the first failure wins); the file is kept, unmarked."""
        with self._lock:
            if self.failure is None and not self._closed:
                elapsed = pylsl.local_clock() - self.start_lsl
                if isinstance(exc, RecorderError):
                    self.failure = exc
                elif _is_disk_full(exc):
                    if self.writer is not None:
                        self.writer.freeze()
                    self.failure = DiskFullError(
                        f"the disk is full: recording stopped after {elapsed:.1f} s; {self.path} keeps everything up "
                        "to its last flush (at most ~1 s earlier) and is marked incomplete. Free some space and record "
                        "again"
                    )
                else:
                    self.failure = RecorderError(
                        f"cannot write {self.path} ({type(exc).__name__}: {exc}): recording stopped after "
                        f"{elapsed:.1f} s; the file keeps what was written until then but is marked incomplete"
                    )
                self._event(str(self.failure))
        self._stop.set()

    def _housekeeping(self) -> None:
        cfg = self.config
        last_disk = last_late = 0.0
        while not self._stop.wait(min(0.5, cfg.selection.pickup_every_s)):
            resolver = self._resolver
            self._pick_up_restarts(resolver)
            self._store_losses()
            now = time.monotonic()
            if now - last_late < 0.5:
                continue
            last_late = now
            if now - last_disk >= 2.0 and self.path is not None:
                last_disk = now
                try:
                    free = free_mb(self.path.parent)
                except OSError:
                    free = math.inf
                reserve = cfg.output.min_free_mb
                if free < reserve:
                    self._fail(
                        DiskFullError(
                            f"only {free:.0f} MB left on the disk of {self.path} (reserve {reserve:.0f} MB): "
                            f"recording stopped after {pylsl.local_clock() - self.start_lsl:.1f} s; the file keeps "
                            "everything until then but is marked incomplete"
                        )
                    )
                    return
            if cfg.selection.late_streams and resolver is not None:
                self._add_late_streams(resolver)

    @staticmethod
    def _probe(identity: tuple[str, ...]) -> list[pylsl.StreamInfo]:
        """The outlets with this identity now: a one-shot query answered in milliseconds (the continuous
        resolver sees a new outlet 0.1-1 s late, sometimes much later)."""
        _, sid, name, typ, host = identity
        fields = {"source_id": sid, "name": name, "type": typ, "hostname": host}
        if any("'" in v for v in fields.values()):
            return []  # not expressible in the query: the continuous resolver finds it
        pred = " and ".join(f"{k}='{v}'" for k, v in fields.items())
        try:
            return list(pylsl.resolve_bypred(pred, 1, 0.1))
        except Exception:
            return []

    def _pick_up_restarts(self, resolver: pylsl.ContinuousResolver | None) -> None:
        """Switch a silent stream to a new outlet with its identity (a restarted device), see the module doc.

        A stream silent for ``need`` s is probed every ``pickup_every_s`` (markers every 0.5 s; every
        1 s once it has been silent 10 s); the continuous resolver's results are looked at too.
        """
        now = pylsl.local_clock()
        with self._lock:
            tasks = list(self._tasks)
        infos = list(resolver.results()) if resolver is not None else []
        for task in tasks:
            if self._stop.is_set() or task.state == StreamState.ERROR or task.identity[:1] != ("sid",):
                continue
            quiet, need = task.quiet_s(now), task.quiet_need_s
            # markers are silent most of the time: probe them less often (each probe is a multicast query)
            every = 1.0 if quiet >= 10.0 else self.config.selection.pickup_every_s if task.srate > 0 else 0.5
            if quiet >= need and now - task.last_probe >= every:
                task.last_probe = now
                infos += self._probe(task.identity)
        listed = {i.uid() for i in infos}
        for info in infos:
            uid = info.uid()
            with self._lock:
                task = self._by_identity.get(stream_identity(info))
            if task is None or uid == task.uid or self._stop.is_set() or task.state == StreamState.ERROR:
                continue
            if uid not in task.uids:  # a new outlet with this stream's identity: the device restarted
                task.uids.add(uid)
                task.restarts += 1
            if self._failed_uids.get(uid, -math.inf) > now - 5.0:
                continue
            if task.quiet_s(now) < task.quiet_need_s:
                if task.uid not in listed:  # its old outlet is gone and data flows: LSL's recovery got there first
                    task.uid = uid
                continue
            task.watch_pulls()
            try:
                inlet, _, _ = self._open(info, timeout_s=2.0)
            except (LslTimeoutError, LslLostError, AcquireError) as exc:
                self._failed_uids[uid] = now
                self._event(f"{info.name()} ({info.type()}) came back but cannot be opened yet: {exc}")
                continue
            task.offer_inlet(inlet, uid)

    def _store_losses(self, force: bool = False) -> None:
        """Write each stream's gap table and missing counts to the session when they changed."""
        with self._lock:
            tasks = list(self._tasks)
        writer = self.writer
        if not isinstance(writer, SessionWriter):
            return
        for t in tasks:
            loss = t.take_losses(force)
            if loss is None:
                continue
            try:
                writer.set_stream_attrs(
                    t.key,
                    {
                        "missing_samples": np.int64(loss.missing),
                        "dropped_samples": np.int64(loss.dropped),
                        "gap_count": np.int64(loss.gaps),
                        "gaps": loss.gap_rows[:MAX_GAP_ROWS],
                    },
                )
            except Exception as exc:
                if not self._stop.is_set():
                    self._fail(exc)
                return

    def _add_late_streams(self, resolver: pylsl.ContinuousResolver) -> None:
        for info in resolver.results():
            ident = stream_identity(info)
            if ident in self._known or not matches_any(info, self.queries) or self._stop.is_set():
                continue
            try:
                inlet, sinfo, buflen = self._open(info, timeout_s=2.0)
            except (LslTimeoutError, LslLostError, AcquireError) as exc:
                if ident not in self._announced:
                    self._announced.add(ident)
                    self._event(f"{info.name()} ({info.type()}) appeared but cannot be opened: {exc}")
                continue
            if self._stop.is_set():
                inlet.close_stream()
                return
            self._known.add(ident)
            try:
                task = self._add(inlet, info, sinfo, late=True, buffer_s=buflen)
            except Exception as exc:
                self._fail(exc)
                return
            self._event(
                f"{sinfo.name} ({sinfo.type}, source_id {sinfo.source_id!r}) appeared: recording it as {task.key}"
            )

    # -- stopping -------------------------------------------------------------------------------
    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until recording stops by itself (failure) or :meth:`stop` is called; True if it did."""
        return self._stop.wait(timeout_s)

    def _join(self) -> bool:
        if self._house is not None:
            self._house.join(5.0)
        with self._lock:
            tasks = list(self._tasks)
        return all([t.join(5.0) for t in tasks])

    def stop(self) -> RecorderStatus:
        """Drain the inlets and close the file: marked complete unless recording failed. Returns the final status.

        Idempotent. Does not raise for a failure; check :attr:`failure`.
        """
        with self._lock:
            if self._final is not None:
                return self._final
        self._stop.set()
        stop_lsl = pylsl.local_clock()
        self._elapsed_final = stop_lsl - self.start_lsl if self.writer is not None else 0.0
        self._cpu_final = time.process_time() - self._cpu0 if self.writer is not None else 0.0
        joined = self._join()
        for t in self._tasks:
            t.close_tail(stop_lsl)
        self._finish_live_analysis()
        complete = False
        if self.writer is not None and self.failure is None:
            self._store_losses(force=True)
        self._closed = True
        if self.writer is not None:
            try:
                if self.failure is None:
                    self.writer.close()
                    complete = self.path is not None  # monitor mode wrote no file
                else:
                    self.writer.abort()
            except Exception as exc:  # closing failed (disk full at the last flush): the file stays unmarked
                self.writer.abort()
                if self.failure is None:
                    self._closed = False
                    self._fail(exc)
                complete = False
        if joined:
            for t in self._tasks:
                t.close_inlets()

        self._resolver = None
        self._state = RecorderState.FAILED if self.failure is not None else RecorderState.STOPPED
        final = self.status()
        final.complete = complete
        with self._lock:
            self._final = final
        self._stopped.set()
        return final

    def _finish_live_analysis(self) -> None:
        """Let the live analysis catch up and store its last events and its summary before the file closes."""
        analysis = self.config.live.analysis
        if analysis is None or self.writer is None:
            return
        analysis.finish()
        if analysis.stats.error:
            self._event(analysis.stats.error)
        if isinstance(self.writer, SessionWriter) and self.failure is None:
            try:  # with no events the stream is still added: it says the analysis ran
                key = self._live_events_key(self.writer)
                self.writer.set_stream_attrs(key, {"live_analysis": json.dumps(analysis.summary())})
            except Exception as exc:
                self._event(f"cannot store the live analysis summary ({type(exc).__name__}: {exc})")

    # -- status ---------------------------------------------------------------------------------
    def elapsed_s(self) -> float:
        """Seconds recorded so far (LSL clock since the start; 0 before it); cheap, unlike :meth:`status`."""
        if self._elapsed_final is not None:
            return self._elapsed_final
        return pylsl.local_clock() - self.start_lsl if self.writer is not None else 0.0

    def status(self) -> RecorderStatus:
        """A snapshot for a live display (cheap; the heart rate is recomputed at most once a second)."""
        now = pylsl.local_clock()
        with self._lock:
            tasks = list(self._tasks)
        streams = [t.status(now) for t in tasks]
        t_hr, hr = self._hr_cache
        # while recording, not before NeuroKit2 is imported: the import takes seconds on a slow machine, and a
        # status call that waited for it stalled `mecg record --duration 6` into a 10-13 s recording; the final
        # status (after stop) waits for it, so the summary has the heart rate
        hr_tasks = [t for t in tasks if t.has_heart_rate]  # without ECG, NeuroKit2 is never imported
        if hr_tasks and now - t_hr >= 1.0 and (hr_ready() or self._elapsed_final is not None):
            hr = next((h for h in (t.heart_rate() for t in hr_tasks) if h is not None), None)
            self._hr_cache = (now, hr)
        try:
            size = self.path.stat().st_size if self.writer is not None and self.path is not None else 0
        except OSError:
            size = 0
        try:
            free = free_mb(self.path.parent) if self.path is not None else math.nan
        except OSError:
            free = math.nan
        elapsed = self.elapsed_s()
        return RecorderStatus(
            path=str(self.path) if self.path is not None else "",
            state=self._state,
            elapsed_s=float(elapsed),
            file_bytes=size,
            free_mb=free,
            streams=streams,
            heart_rate_bpm=hr,
            markers=sum(s.samples for s in streams if s.kind == StreamKind.MARKERS),
            error=str(self.failure) if self.failure else "",
            cpu_s=self._cpu_final if self._cpu_final is not None else time.process_time() - self._cpu0,
        )

    def bytes_per_s(self) -> float:
        """Expected file growth (bytes/s) at the nominal rates: video at its codec's typical ratio (deflate ~1.15:1),
        timestamps included."""
        from mecg.session.video_codec import TYPICAL_RATIO

        ratio = TYPICAL_RATIO.get(self.config.output.video_codec, 1.0)
        total = 0.0
        for info in self.writer.streams.values() if self.writer is not None else ():
            if info.kind == StreamKind.VIDEO:
                per = info.channel_count / ratio
            elif info.kind == StreamKind.MARKERS:
                per = 32.0
            else:
                per = info.channel_count * info.dtype.itemsize
            total += info.nominal_srate_hz * (per + 8.0)
        return total
