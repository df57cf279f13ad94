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
switches to it (draining the old inlet first, dropping samples the two delivered twice).

:meth:`Recorder.stop` drains the inlets and closes the file (``complete`` true); after a failure it
closes it without marking it complete.

**Monitor mode** (``RecorderConfig.path=None``): the same streams, inlets, status and health,
but nothing is written (a lab app watches the devices this way before it records). With
``RecorderConfig.preview`` each stream also keeps a :class:`~mecg.acquire.preview.StreamPreview`
(newest frame downsampled, last seconds of signal, last markers) for a live display, so the
display needs no inlet of its own.
"""

from __future__ import annotations

import collections
import errno
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

from mecg.acquire.buffers import DEFAULT_BUFFER_MAX_MB, DEFAULT_BUFFER_S, BufferTooLargeError, buffer_seconds
from mecg.acquire.errors import AcquireError
from mecg.acquire.live_heart_rate import heart_rate_bpm
from mecg.acquire.preview import StreamPreview
from mecg.acquire.stream_metadata import (
    DEFAULT_TYPES,
    StreamQuery,
    describe_queries,
    is_video_type,
    matches_any,
    session_stream_info,
    stream_identity,
)
from mecg.session import SessionError, SessionWriter, StreamInfo
from mecg.session.ecg_channel import EcgChannelError, pick_ecg, stream_ecg_column
from mecg.session.format import stream_key

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
class RecorderConfig:
    """What to record and how. Times in s, sizes in MB.

    ``queries``: a stream is recorded if any query matches it (default: every ECG, Video and
    Markers stream). ``required``: each must match a stream before recording starts (e.g. the
    drivers this process started), else :class:`NoStreamError`. ``wait_s``: how long to look
    for streams; ``settle_s``: once the required ones are there, how long to keep looking for
    more. ``late_streams``: record matching streams that appear later. ``buffer_s``: what each
    inlet may hold while the recorder is behind (s; ``None``: 15 s for video, capped so that the
    buffer stays under ``buffer_max_mb`` MB, and 360 s for signals and markers); an explicit
    buffer over the cap is refused (:class:`~mecg.acquire.buffers.BufferTooLargeError`). ``gap_s``:
    a timestamp step longer than this is a gap (stream lost and back), shorter ones count dropped
    samples. ``pickup_every_s``: how often the resolver is checked for restarted streams (s).
    ``min_free_mb``: stop (file kept, not marked complete) when the disk has less free.
    ``hr_window_s``: ECG seconds used for the live heart rate. ``ecg_channel``: the explicit ECG
    choice ``[STREAM:]LABEL|INDEX`` (:mod:`mecg.session.ecg_channel`), checked against the streams
    found, stored in the file and used for the live heart rate. ``path=None``: monitor mode
    (everything but the file). ``preview``: keep a :class:`StreamPreview` per stream
    (``preview_signal_s`` seconds of signal, frames copied at most ``preview_frame_hz`` times a second).
    """

    path: str | os.PathLike | None
    subject_id: str = ""
    notes: str = ""
    overwrite: bool = False
    queries: tuple[StreamQuery, ...] = (StreamQuery(types=DEFAULT_TYPES),)
    required: tuple[StreamQuery, ...] = ()
    wait_s: float = 5.0
    settle_s: float = 1.0
    late_streams: bool = True
    clock_offset_every_s: float = 5.0
    flush_interval_s: float = 0.5
    buffer_s: float | None = None
    buffer_max_mb: float = DEFAULT_BUFFER_MAX_MB
    gap_s: float = 0.5
    pickup_every_s: float = 0.1
    min_free_mb: float = 200.0
    hr_window_s: float = 8.0
    ecg_channel: str = ""
    poll_s: float = 0.02
    video_poll_s: float = 0.004
    preview: bool = False
    preview_signal_s: float = 10.0
    preview_frame_hz: float = 30.0


@dataclass
class StreamStatus:
    """A snapshot of one recorded stream. Times in s on the LSL clock unless named otherwise.

    ``state``: ``ok``, ``waiting`` (no sample yet), ``stalled`` (no sample for a while), ``lost``
    (the stream is gone for good: it had no source_id) or ``error``. ``rate_hz``: samples per
    second over the last 2 s. ``dropped``: samples missing in short timestamp steps (regular-rate
    streams); ``gaps`` / ``gap_s``: steps longer than ``RecorderConfig.gap_s`` and their total
    length; ``missing``: every sample missing, dropped ones and those in gaps (after :meth:`Recorder.stop`
    also a stall that lasted to the end); ``gap_table``: one ``(start_s, duration_s, missing)`` row per
    gap, ``start_s`` the last timestamp before it (sender clock); ``restarts``: new outlets of the
    stream picked up; ``buffer_s``: the inlet's buffer (s). ``latency_ms``: median, 95th percentile
    and maximum of (append time - sample time) of the oldest sample of each chunk pulled (the worst
    of the chunk), in ms.
    """

    key: str
    name: str
    type: str
    kind: str
    source_id: str
    hostname: str
    nominal_srate_hz: float
    samples: int
    rate_hz: float
    dropped: int
    gaps: int
    gap_s: float
    first_ts: float
    last_ts: float
    clock_offsets: int
    offset_ms: float
    latency_ms: tuple[float, float, float]
    state: str
    late: bool
    error: str = ""
    missing: int = 0
    gap_table: list[tuple[float, float, int]] = field(default_factory=list)
    restarts: int = 0
    buffer_s: float = math.nan


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


# -- one stream ---------------------------------------------------------------------------------
class _StreamTask:
    """One stream: its inlet, the pull thread, the clock-offset thread and their counters."""

    def __init__(
        self,
        rec: Recorder,
        inlet: pylsl.StreamInlet,
        info: StreamInfo,
        key: str,
        late: bool,
        uid: str = "",
        buffer_s: float = math.nan,
    ) -> None:
        self.rec, self.inlet, self.info, self.key, self.late = rec, inlet, info, key, late
        self.buffer_s = buffer_s
        #: LSL uids of the outlets this stream has had (a restarted device publishes a new one); ``restarts``
        #: counts the new ones; ``uid``: the outlet the inlet was opened on or switched to.
        self.uids = {uid} if uid else set()
        self.uid = uid
        self.restarts = 0
        self.identity: tuple[str, ...] = ()
        self.last_probe = -math.inf
        self._offered: tuple[pylsl.StreamInlet, str] | None = None  # a new outlet's inlet, for the pull thread
        self._watch_pulls = False  # set while a new inlet is opened and handed over
        self._pulled_since_offer = False
        self._retired: list[pylsl.StreamInlet] = []  # old inlets: closed, kept alive until the end
        self._dedupe_after: float | None = None
        self.t_open = pylsl.local_clock()
        cfg = rec.config
        self.srate = float(info.nominal_srate_hz)
        self.max_samples = 16 if info.kind == "video" else max(256, math.ceil(self.srate))
        self.poll_s = cfg.video_poll_s if info.kind == "video" else cfg.poll_s
        self.stall_s = max(1.0, 20.0 / self.srate) if self.srate > 0 else math.inf
        if info.kind == "markers":
            self.buf = None
        else:
            self.buf = np.empty(
                (self.max_samples, info.channel_count), dtype=np.int8 if info.kind == "video" else info.dtype
            )
        self.samples = self.dropped = self.gaps = self.n_offsets = 0
        self.gap_s = 0.0
        self.gap_missing = 0
        self.gap_rows: list[tuple[float, float, int]] = []
        self.loss_changed = True  # stored (zeros) soon after the stream is added, then whenever it changes
        self.first_ts = self.last_ts = math.nan
        self.last_arrival = math.nan
        self.offset_s = 0.0
        self.state = "waiting"
        self.error = ""
        self._lock = threading.Lock()
        self._latency: collections.deque[float] = collections.deque(maxlen=50_000)
        self._rate: collections.deque[tuple[float, int]] = collections.deque()
        self._hr_buf: np.ndarray | None = None
        hr_ch = stream_ecg_column(info, cfg.ecg_channel, key) if info.kind == "signal" and self.srate > 0 else None
        if hr_ch is not None:  # an ECG stream, or an EXG/EEG stream with an ECG channel
            self._hr_buf = np.zeros(max(1, round(cfg.hr_window_s * self.srate)))
            self._hr_filled = 0
            self._hr_ch = hr_ch
        self.preview = (
            StreamPreview(info, signal_s=cfg.preview_signal_s, frame_hz=cfg.preview_frame_hz) if cfg.preview else None
        )
        self._pull_thread = threading.Thread(target=self._pull_loop, name=f"rec-{key}", daemon=True)
        self._clock_thread = threading.Thread(target=self._clock_loop, name=f"rec-clock-{key}", daemon=True)

    def start(self) -> None:
        self._pull_thread.start()
        self._clock_thread.start()

    def join(self, timeout_s: float) -> bool:
        """Wait for both threads; True if they ended."""
        end = time.monotonic() + timeout_s
        for t in (self._pull_thread, self._clock_thread):
            t.join(max(0.0, end - time.monotonic()))
        return not (self._pull_thread.is_alive() or self._clock_thread.is_alive())

    # -- pulling --------------------------------------------------------------------------------
    def _pull_once(self) -> int:
        if self.buf is None:
            samples, ts = self.inlet.pull_chunk(timeout=0.0, max_samples=self.max_samples, as_numpy=False)
            if not ts:
                return 0
            data = [s[0] if len(s) == 1 else "\t".join(s) for s in samples]
            ts = np.asarray(ts, dtype=np.float64)
        else:
            data, ts = self.inlet.pull_chunk(
                timeout=0.0, max_samples=self.max_samples, dest_obj=self.buf, as_numpy=True
            )
            if len(ts) == 0:
                return 0
        n = len(ts)
        if self._watch_pulls:
            self._pulled_since_offer = True
        if self._dedupe_after is not None:  # after a switch: what the old inlet already delivered
            keep = ts > self._dedupe_after
            if not keep.all():
                data = [d for d, k in zip(data, keep) if k] if self.buf is None else data[keep]
                ts = ts[keep]
            if len(ts) == 0:
                return n
            self._dedupe_after = None
        now = pylsl.local_clock()
        self.rec._append(self.key, data, ts)
        self._account(data, ts, now)
        if self.preview is not None:
            try:
                self.preview.push(data, ts)
            except Exception as exc:  # a display aid must never stop a recording
                self.preview = None
                self.rec._event(f"{self.key}: live preview turned off ({type(exc).__name__}: {exc})")
        return n

    def watch_pulls(self) -> None:
        """Note from now on whether the current inlet delivers (called before a new inlet is opened)."""
        if not self._watch_pulls:
            self._pulled_since_offer = False
            self._watch_pulls = True

    def offer_inlet(self, inlet: pylsl.StreamInlet, uid: str) -> None:
        """Hand over an inlet on a new outlet of this stream (a restarted device); the pull thread switches to it."""
        with self._lock:
            self.uid = uid
            old, self._offered = self._offered, (inlet, uid)
        if old is not None:
            old[0].close_stream()
            self._retired.append(old[0])

    def _switch_inlet(self) -> None:
        """Drain the old inlet, close it and pull from the offered one (pull thread only)."""
        offered = self._offered
        if offered is None:
            return
        for _ in range(1000):  # what the old inlet still holds (it may have recovered by itself meanwhile)
            if self._pull_once() == 0:
                break
        with self._lock:
            if self._offered is not offered:  # replaced meanwhile (and closed): take the newer one next time
                return
            self._offered = None
        # the old inlet delivered while the new one was opened: it may have recovered onto the same new
        # outlet, so both may hold the same samples
        overlap, self._watch_pulls = self._pulled_since_offer, False
        old, self.inlet = self.inlet, offered[0]
        old.close_stream()
        self._retired.append(old)
        self._dedupe_after = self.last_ts if overlap and not math.isnan(self.last_ts) else None
        self.rec._event(f"{self.info.name} ({self.key}): picked up its restarted outlet")

    def quiet_s(self, now: float) -> float:
        """Seconds since the last sample arrived (since the inlet opened, when none has)."""
        last = self.last_arrival
        return now - (self.t_open if math.isnan(last) else last)

    def _add_gap(self, start_ts: float, duration_s: float, missing: int) -> None:
        """One gap row (caller holds the lock)."""
        self.gaps += 1
        self.gap_s += duration_s
        self.gap_missing += missing
        self.gap_rows.append((start_ts, duration_s, missing))
        self.loss_changed = True

    def close_tail(self, stop_lsl: float) -> None:
        """At stop: a regular stream silent for more than a gap up to ``stop_lsl`` (recorder clock) ends in a gap."""
        if not self.srate > 0 or self.state == "error":
            return
        with self._lock:
            off = self.offset_s
            start = (self.t_open - off) if math.isnan(self.last_ts) else self.last_ts
            tail = (stop_lsl - off) - start
            if tail > max(self.rec.config.gap_s, 1.5 / self.srate):
                self._add_gap(start, tail, math.floor(tail * self.srate))

    def _account(self, data: object, ts: np.ndarray, now: float) -> None:
        n = len(ts)
        prev = self.last_ts
        back_after = 0.0
        with self._lock:
            if self.srate > 0:
                steps = np.diff(ts, prepend=ts[0] if math.isnan(prev) else prev)
                period = 1.0 / self.srate
                gap = steps > max(self.rec.config.gap_s, 1.5 * period)
                if gap.any():
                    for i in np.flatnonzero(gap):
                        before = prev if i == 0 else float(ts[i - 1])
                        step = float(steps[i])
                        self._add_gap(before, step, max(0, int(np.rint(step * self.srate)) - 1))
                    back_after = float(steps[gap].max())
                short = (steps > 1.5 * period) & ~gap
                if short.any():
                    self.dropped += int(np.maximum(np.rint(steps[short] * self.srate) - 1, 0).sum())
                    self.loss_changed = True
            if math.isnan(self.first_ts):
                self.first_ts = float(ts[0])
            self.last_ts = float(ts[-1])
            self.samples += n
            self.last_arrival = now
            self._latency.append(now - (float(ts[0]) + self.offset_s))  # the chunk's oldest sample: its worst
            self._rate.append((now, self.samples))
            while len(self._rate) > 2 and now - self._rate[0][0] > 2.0:
                self._rate.popleft()
            was = self.state
            self.state = "ok"
        if self._hr_buf is not None:
            x = np.asarray(data)[:, self._hr_ch].astype(np.float64)
            m = self._hr_buf.size
            x = x[-m:]
            self._hr_buf = np.roll(self._hr_buf, -x.size)
            self._hr_buf[-x.size :] = x
            self._hr_filled = min(m, self._hr_filled + x.size)
        if back_after:
            self.rec._event(
                f"{self.info.name} ({self.key}): gap of {back_after:.2f} s in the timestamps, recording goes on"
            )
        elif was == "stalled":
            self.rec._event(f"{self.info.name} ({self.key}): data again")

    def _check_stall(self) -> None:
        now = pylsl.local_clock()
        if self.state == "ok" and now - self.last_arrival > self.stall_s:
            self.state = "stalled"
            self.rec._event(
                f"{self.info.name} ({self.key}): no data for {now - self.last_arrival:.1f} s "
                "(device stopped or stream lost?); waiting for it to come back"
            )

    def _pull_loop(self) -> None:
        stop = self.rec._stop
        try:
            while not stop.is_set():
                if self._offered is not None:
                    self._switch_inlet()
                if self._pull_once() < self.max_samples:
                    self._check_stall()
                    stop.wait(self.poll_s)
            for _ in range(1000):  # drain what arrived before the stop
                if self._pull_once() == 0:
                    break
        except LslLostError:
            self.state = "lost"
            self.rec._event(f"{self.info.name} ({self.key}): stream lost for good (it has no source_id to recover)")
        except Exception as exc:  # a write error: the recorder stops and keeps the file
            self.state, self.error = "error", str(exc)
            self.rec._fail(exc)

    # -- clock offsets --------------------------------------------------------------------------
    def _clock_loop(self) -> None:
        stop = self.rec._stop
        every = self.rec.config.clock_offset_every_s
        while not stop.is_set():
            try:
                offset = self.inlet.time_correction(timeout=2.0)
                t = pylsl.local_clock()
                if stop.is_set():
                    break
                self.rec.writer.append_clock_offsets(self.key, [[t, offset]])
                with self._lock:
                    self.offset_s, self.n_offsets = float(offset), self.n_offsets + 1
            except LslTimeoutError:
                pass  # stream away: try again next time
            except LslLostError:
                return
            except Exception as exc:
                if not stop.is_set():
                    self.rec._fail(exc)
                return
            stop.wait(every)

    # -- status ---------------------------------------------------------------------------------
    def heart_rate(self) -> float | None:
        if self._hr_buf is None or self._hr_filled < 3 * self.srate:
            return None
        buf = self._hr_buf  # replaced, never written in place after the roll: safe to read
        return heart_rate_bpm(buf[-self._hr_filled :], self.srate)

    def status(self, now: float) -> StreamStatus:
        with self._lock:
            (t0, n0), (t1, n1) = (self._rate[0], self._rate[-1]) if self._rate else ((0.0, 0), (0.0, 0))
            rate = (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0
            if self._rate and now - t1 > 2.0:
                rate = 0.0
            lat = np.asarray(self._latency) * 1e3 if self._latency else np.full(1, math.nan)
            state = self.state
            if state == "ok" and now - self.last_arrival > self.stall_s:
                state = "stalled"
            i = self.info
            return StreamStatus(
                key=self.key,
                name=i.name,
                type=i.type,
                kind=i.kind,
                source_id=i.source_id,
                hostname=i.hostname,
                nominal_srate_hz=self.srate,
                samples=self.samples,
                rate_hz=rate,
                dropped=self.dropped,
                gaps=self.gaps,
                gap_s=self.gap_s,
                missing=self.dropped + self.gap_missing,
                gap_table=list(self.gap_rows),
                restarts=self.restarts,
                buffer_s=self.buffer_s,
                first_ts=self.first_ts,
                last_ts=self.last_ts,
                clock_offsets=self.n_offsets,
                offset_ms=self.offset_s * 1e3,
                latency_ms=(float(np.median(lat)), float(np.percentile(lat, 95)), float(lat.max())),
                state=state,
                late=self.late,
                error=self.error,
            )


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
        self._tasks: list[_StreamTask] = []
        self._known: set[tuple[str, ...]] = set()
        self._announced: set[tuple[str, ...]] = set()
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._events: collections.deque[str] = collections.deque(maxlen=1000)
        self._resolver: pylsl.ContinuousResolver | None = None
        self._by_identity: dict[tuple[str, ...], _StreamTask] = {}
        self._failed_uids: dict[str, float] = {}
        self._house: threading.Thread | None = None
        self._state = "idle"
        self._elapsed_final: float | None = None
        self._hr_cache: tuple[float, float | None] = (-math.inf, None)
        self._final: RecorderStatus | None = None
        self._closed = False
        self._cpu0 = 0.0
        self._cpu_final: float | None = None

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
        return tuple(self.config.queries) + tuple(self.config.required)

    # -- starting -------------------------------------------------------------------------------
    def _resolve(self) -> list[pylsl.StreamInfo]:
        """Wait for the wanted streams (see :class:`RecorderConfig`); one info per stream identity."""
        cfg = self.config
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
            self.config.buffer_s,
            default_s=DEFAULT_BUFFER_S if video else 360.0,
            srate_hz=info.nominal_srate(),
            sample_bytes=info.channel_count() * _SAMPLE_BYTES.get(info.channel_format(), 8),
            max_mb=self.config.buffer_max_mb,
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
    ) -> _StreamTask:
        assert self.writer is not None
        key = self.writer.add_stream(info)
        task = _StreamTask(self, inlet, info, key, late, uid=found.uid(), buffer_s=buffer_s)
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
            check_output(self.path, cfg.overwrite, cfg.min_free_mb)
        try:
            found = self._resolve()
        except BaseException:
            self._resolver = None
            raise
        opened: list[tuple[pylsl.StreamInlet, StreamInfo, pylsl.StreamInfo, int]] = []
        try:
            for info in found:
                try:
                    inlet, sinfo, buflen = self._open(info, timeout_s=max(2.0, cfg.wait_s))
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
                    cfg.subject_id,
                    cfg.notes,
                    overwrite=cfg.overwrite,
                    flush_interval_s=cfg.flush_interval_s,
                    start_time_lsl=self.start_lsl,
                )
            )
            if cfg.ecg_channel and self.path is not None:
                self.writer.set_ecg_channel(cfg.ecg_channel)
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
            self._state = "monitoring" if self.path is None else "recording"
            if not (cfg.late_streams and cfg.queries):
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
            pick_ecg(named, self.config.ecg_channel)
        except EcgChannelError as exc:
            if self.config.ecg_channel:
                raise
            self._event(f"note: {exc} (or give it to `mecg sync` later)")

    def _discard(self) -> None:
        """Failed start: close the file unmarked and remove it (it holds nothing worth keeping)."""
        if self.writer is not None:
            self.writer.abort()
            if self.path is not None:
                self.path.unlink(missing_ok=True)
        self._state = "failed"

    # -- while recording ------------------------------------------------------------------------
    def _append(self, key: str, data: object, ts: np.ndarray) -> None:
        assert self.writer is not None
        self.writer.append(key, data, ts)

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
        while not self._stop.wait(min(0.5, cfg.pickup_every_s)):
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
                if free < cfg.min_free_mb:
                    self._fail(
                        DiskFullError(
                            f"only {free:.0f} MB left on the disk of {self.path} (reserve {cfg.min_free_mb:.0f} MB): "
                            f"recording stopped after {pylsl.local_clock() - self.start_lsl:.1f} s; the file keeps "
                            "everything until then but is marked incomplete"
                        )
                    )
                    return
            if cfg.late_streams and resolver is not None:
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
            if self._stop.is_set() or task.state == "error" or task.identity[:1] != ("sid",):
                continue
            quiet = task.quiet_s(now)
            need = max(0.25, 3.0 / task.srate) if task.srate > 0 else 0.25
            # markers are silent most of the time: probe them less often (each probe is a multicast query)
            every = 1.0 if quiet >= 10.0 else self.config.pickup_every_s if task.srate > 0 else 0.5
            if quiet >= need and now - task.last_probe >= every:
                task.last_probe = now
                infos += self._probe(task.identity)
        listed = {i.uid() for i in infos}
        for info in infos:
            uid = info.uid()
            with self._lock:
                task = self._by_identity.get(stream_identity(info))
            if task is None or uid == task.uid or self._stop.is_set() or task.state == "error":
                continue
            if uid not in task.uids:  # a new outlet with this stream's identity: the device restarted
                task.uids.add(uid)
                task.restarts += 1
            if self._failed_uids.get(uid, -math.inf) > now - 5.0:
                continue
            need = max(0.25, 3.0 / task.srate) if task.srate > 0 else 0.25
            if task.quiet_s(now) < need:
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
            if not (t.loss_changed or force) or not t.srate > 0:
                continue
            with t._lock:
                t.loss_changed = False
                rows = np.array(t.gap_rows, dtype=np.float64).reshape(-1, 3)
                dropped, missing, gaps = t.dropped, t.dropped + t.gap_missing, t.gaps
            try:
                writer.set_stream_attrs(
                    t.key,
                    {
                        "missing_samples": np.int64(missing),
                        "dropped_samples": np.int64(dropped),
                        "gap_count": np.int64(gaps),
                        "gaps": rows[:MAX_GAP_ROWS],
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
                t.inlet.close_stream()
                for old in t._retired:
                    old.close_stream()
        self._resolver = None
        self._state = "failed" if self.failure is not None else "stopped"
        final = self.status()
        final.complete = complete
        with self._lock:
            self._final = final
        self._stopped.set()
        return final

    # -- status ---------------------------------------------------------------------------------
    def status(self) -> RecorderStatus:
        """A snapshot for a live display (cheap; the heart rate is recomputed at most once a second)."""
        now = pylsl.local_clock()
        with self._lock:
            tasks = list(self._tasks)
        streams = [t.status(now) for t in tasks]
        t_hr, hr = self._hr_cache
        if now - t_hr >= 1.0:
            hr = next((h for h in (t.heart_rate() for t in tasks if t._hr_buf is not None) if h is not None), None)
            self._hr_cache = (now, hr)
        try:
            size = self.path.stat().st_size if self.writer is not None and self.path is not None else 0
        except OSError:
            size = 0
        try:
            free = free_mb(self.path.parent) if self.path is not None else math.nan
        except OSError:
            free = math.nan
        elapsed = (
            self._elapsed_final
            if self._elapsed_final is not None
            else (now - self.start_lsl if self.writer is not None else 0.0)
        )
        return RecorderStatus(
            path=str(self.path) if self.path is not None else "",
            state=self._state,
            elapsed_s=float(elapsed),
            file_bytes=size,
            free_mb=free,
            streams=streams,
            heart_rate_bpm=hr,
            markers=sum(s.samples for s in streams if s.kind == "markers"),
            error=str(self.failure) if self.failure else "",
            cpu_s=self._cpu_final if self._cpu_final is not None else time.process_time() - self._cpu0,
        )

    def bytes_per_s(self) -> float:
        """Expected file growth (bytes/s) at the nominal rates: video at ~1.15:1 deflate, timestamps included."""
        total = 0.0
        for info in self.writer.streams.values() if self.writer is not None else ():
            if info.kind == "video":
                per = info.channel_count / 1.15
            elif info.kind == "markers":
                per = 32.0
            else:
                per = info.channel_count * info.dtype.itemsize
            total += info.nominal_srate_hz * (per + 8.0)
        return total
