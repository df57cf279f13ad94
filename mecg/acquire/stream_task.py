"""One recorded stream: its inlet, pull thread, clock-offset thread, loss accounting and status.

A :class:`StreamTask` knows nothing of the :class:`~mecg.acquire.recorder.Recorder` that owns it:
it reaches the outside only through :class:`TaskHost` (append data and clock offsets, report an
event, report a failure that stops the recording, the shared stop event) and is told its settings
(:class:`~mecg.acquire.recorder_config.TimingSettings`, :class:`~mecg.acquire.recorder_config.LiveSettings`,
the ECG choice). Losses are counted from the timestamps of regular-rate streams (see
:mod:`mecg.acquire.recorder`).
"""

from __future__ import annotations

import collections
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pylsl
from pylsl.util import LostError as LslLostError
from pylsl.util import TimeoutError as LslTimeoutError

from mecg.acquire.live_analysis import LiveAnalysis
from mecg.acquire.live_heart_rate import heart_rate_bpm
from mecg.acquire.preview import StreamPreview
from mecg.acquire.recorder_config import LiveSettings, TimingSettings
from mecg.acquire.states import StreamKind, StreamState
from mecg.session import StreamInfo
from mecg.session.ecg_channel import stream_ecg_column


@dataclass(frozen=True)
class TaskHost:
    """What a :class:`StreamTask` may do to its owner (callbacks, all thread-safe).

    ``append(key, data, timestamps)``: store pulled samples; ``append_clock_offsets(key, rows)``: store
    ``[local_clock, offset]`` rows; ``event(message)``: a message for the user; ``fail(exc)``: an error
    that stops the recording (the owner sets ``stop``); ``stop``: set when every task should end.
    """

    append: Callable[[str, object, np.ndarray], None]
    append_clock_offsets: Callable[[str, list[list[float]]], None]
    event: Callable[[str], None]
    fail: Callable[[BaseException], None]
    stop: threading.Event


@dataclass(frozen=True)
class LossCounts:
    """A stream's losses as the session stores them: gap rows ``(start_s, duration_s, missing)``, counts."""

    gap_rows: np.ndarray
    dropped: int
    missing: int
    gaps: int


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


# -- one stream ---------------------------------------------------------------------------------
class StreamTask:
    """One stream: its inlet, the pull thread, the clock-offset thread and their counters.

    ``host``: how it reaches its owner; ``timing``/``live``: the owner's settings; ``ecg_channel``: the
    explicit ECG choice (``""``: the stream's own rule) for the live heart rate; ``late``: appeared after
    recording started; ``uid``: the LSL uid of the outlet ``inlet`` was opened on; ``buffer_s``: the inlet's buffer.
    ``live.analysis`` (a :class:`~mecg.acquire.live_analysis.LiveAnalysis`) gets each stored chunk and each
    clock offset; it only queues them (or counts them as skipped), so it never delays the pull thread much.
    """

    def __init__(
        self,
        host: TaskHost,
        inlet: pylsl.StreamInlet,
        info: StreamInfo,
        key: str,
        late: bool,
        *,
        timing: TimingSettings,
        live: LiveSettings,
        ecg_channel: str = "",
        uid: str = "",
        buffer_s: float = math.nan,
    ) -> None:
        self.host, self.inlet, self.info, self.key, self.late = host, inlet, info, key, late
        self.timing = timing
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
        #: After a switch: ``(lo, hi)``, timestamps the old inlet already delivered from what may be the new outlet
        self._dedupe: tuple[float, float] | None = None
        #: First timestamp the current inlet delivered after it was quiet for ``quiet_need_s`` (NaN: never)
        self._resume_ts = math.nan
        self.t_open = pylsl.local_clock()
        self.srate = float(info.nominal_srate_hz)
        #: Silence (s, by arrival) after which a stream is probed for a restarted outlet
        self.quiet_need_s = max(0.25, 3.0 / self.srate) if self.srate > 0 else 0.25
        self.max_samples = 16 if info.kind == StreamKind.VIDEO else max(256, math.ceil(self.srate))
        self.poll_s = timing.video_poll_s if info.kind == StreamKind.VIDEO else timing.poll_s
        self.stall_s = max(1.0, 20.0 / self.srate) if self.srate > 0 else math.inf
        if info.kind == StreamKind.MARKERS:
            self.buf = None
        else:
            self.buf = np.empty(
                (self.max_samples, info.channel_count), dtype=np.int8 if info.kind == StreamKind.VIDEO else info.dtype
            )
        self.samples = self.dropped = self.gaps = self.n_offsets = 0
        self.gap_s = 0.0
        self.gap_missing = 0
        self.gap_rows: list[tuple[float, float, int]] = []
        self.loss_changed = True  # stored (zeros) soon after the stream is added, then whenever it changes
        self.first_ts = self.last_ts = math.nan
        self.last_arrival = math.nan
        self.offset_s = 0.0
        self.state = StreamState.WAITING
        self.error = ""
        self._lock = threading.Lock()
        self._latency: collections.deque[float] = collections.deque(maxlen=50_000)
        self._rate: collections.deque[tuple[float, int]] = collections.deque()
        self._hr_buf: np.ndarray | None = None
        hr_ch = stream_ecg_column(info, ecg_channel, key) if info.kind == StreamKind.SIGNAL and self.srate > 0 else None
        if hr_ch is not None:  # an ECG stream, or an EXG/EEG stream with an ECG channel
            self._hr_buf = np.zeros(max(1, round(live.hr_window_s * self.srate)))
            self._hr_filled = 0
            self._hr_ch = hr_ch
        self.analysis: LiveAnalysis | None = live.analysis
        if self.analysis is not None:
            self.analysis.add_stream(key, info)
        self.preview = (
            StreamPreview(info, signal_s=live.preview_signal_s, frame_hz=live.preview_frame_hz)
            if live.preview
            else None
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
        if self._dedupe is not None:  # after a switch: what the old inlet already delivered
            lo, hi = self._dedupe
            keep = (ts < lo) | (ts > hi)
            if not keep.all():
                data = [d for d, k in zip(data, keep) if k] if self.buf is None else data[keep]
                ts = ts[keep]
            if len(ts) == 0:
                return n
            if ts[-1] > hi:
                self._dedupe = None
        now = pylsl.local_clock()
        if not math.isnan(self.last_arrival) and now - self.last_arrival >= self.quiet_need_s:
            self._resume_ts = float(ts[0])  # data again after a silence: perhaps LSL's recovery, on a new outlet
        self.host.append(self.key, data, ts)
        self._account(data, ts, now)
        if self.analysis is not None:
            try:
                self.analysis.push(self.key, data, ts)
            except Exception as exc:  # analysis must never stop a recording
                self.analysis = None
                self.host.event(f"{self.key}: live analysis turned off ({type(exc).__name__}: {exc})")
        if self.preview is not None:
            try:
                self.preview.push(data, ts)
            except Exception as exc:  # a display aid must never stop a recording
                self.preview = None
                self.host.event(f"{self.key}: live preview turned off ({type(exc).__name__}: {exc})")
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
        # The old inlet may have recovered onto the new outlet by itself (LSL's recovery), so both inlets may
        # hold the same samples: those the old one delivered since it came back after a silence, or (delivered
        # while the new one was opened) anything up to its last. A new inlet has been seen to deliver the last
        # 7 samples the recovered old one had delivered.
        overlap, self._watch_pulls = self._pulled_since_offer, False
        old, self.inlet = self.inlet, offered[0]
        old.close_stream()
        self._retired.append(old)
        lo = -math.inf if overlap else self._resume_ts
        self._dedupe = None if math.isnan(lo) or math.isnan(self.last_ts) else (lo, self.last_ts)
        self._resume_ts = math.nan
        self.host.event(f"{self.info.name} ({self.key}): picked up its restarted outlet")

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
        if not self.srate > 0 or self.state == StreamState.ERROR:
            return
        with self._lock:
            off = self.offset_s
            start = (self.t_open - off) if math.isnan(self.last_ts) else self.last_ts
            tail = (stop_lsl - off) - start
            if tail > max(self.timing.gap_s, 1.5 / self.srate):
                self._add_gap(start, tail, math.floor(tail * self.srate))

    def _account(self, data: object, ts: np.ndarray, now: float) -> None:
        n = len(ts)
        prev = self.last_ts
        back_after = 0.0
        with self._lock:
            if self.srate > 0:
                steps = np.diff(ts, prepend=ts[0] if math.isnan(prev) else prev)
                period = 1.0 / self.srate
                gap = steps > max(self.timing.gap_s, 1.5 * period)
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
            self.state = StreamState.OK
        if self._hr_buf is not None:
            x = np.asarray(data)[:, self._hr_ch].astype(np.float64)
            m = self._hr_buf.size
            x = x[-m:]
            self._hr_buf = np.roll(self._hr_buf, -x.size)
            self._hr_buf[-x.size :] = x
            self._hr_filled = min(m, self._hr_filled + x.size)
        if back_after:
            self.host.event(
                f"{self.info.name} ({self.key}): gap of {back_after:.2f} s in the timestamps, recording goes on"
            )
        elif was == StreamState.STALLED:
            self.host.event(f"{self.info.name} ({self.key}): data again")

    def _check_stall(self) -> None:
        now = pylsl.local_clock()
        if self.state == StreamState.OK and now - self.last_arrival > self.stall_s:
            self.state = StreamState.STALLED
            self.host.event(
                f"{self.info.name} ({self.key}): no data for {now - self.last_arrival:.1f} s "
                "(device stopped or stream lost?); waiting for it to come back"
            )

    def _pull_loop(self) -> None:
        stop = self.host.stop
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
            self.state = StreamState.LOST
            self.host.event(f"{self.info.name} ({self.key}): stream lost for good (it has no source_id to recover)")
        except Exception as exc:  # a write error: the recorder stops and keeps the file
            self.state, self.error = StreamState.ERROR, str(exc)
            self.host.fail(exc)

    # -- clock offsets --------------------------------------------------------------------------
    def _clock_loop(self) -> None:
        stop = self.host.stop
        every = self.timing.clock_offset_every_s
        while not stop.is_set():
            try:
                offset = self.inlet.time_correction(timeout=2.0)
                t = pylsl.local_clock()
                if stop.is_set():
                    break
                self.host.append_clock_offsets(self.key, [[t, offset]])
                with self._lock:
                    self.offset_s, self.n_offsets = float(offset), self.n_offsets + 1
                if self.analysis is not None:
                    self.analysis.clock_offset(self.key, offset)
            except LslTimeoutError:
                pass  # stream away: try again next time
            except LslLostError:
                return
            except Exception as exc:
                if not stop.is_set():
                    self.host.fail(exc)
                return
            stop.wait(every)

    # -- for the owner ----------------------------------------------------------------------------
    def take_losses(self, force: bool = False) -> LossCounts | None:
        """The losses to store if they changed since the last call (or ``force``); None otherwise or when
        the stream has no regular rate (nothing to count)."""
        if not (self.loss_changed or force) or not self.srate > 0:
            return None
        with self._lock:
            self.loss_changed = False
            rows = np.array(self.gap_rows, dtype=np.float64).reshape(-1, 3)
            return LossCounts(rows, self.dropped, self.dropped + self.gap_missing, self.gaps)

    def close_inlets(self) -> None:
        """Close the inlet and every one it replaced (after both threads ended)."""
        self.inlet.close_stream()
        for old in self._retired:
            old.close_stream()

    # -- status ---------------------------------------------------------------------------------
    @property
    def has_heart_rate(self) -> bool:
        """Whether this stream carries the ECG channel the live heart rate is computed from."""
        return self._hr_buf is not None

    def heart_rate(self) -> float | None:
        """The live heart rate (beats/min) over the last ``hr_window_s``; None without ECG or enough of it."""
        if self._hr_buf is None or self._hr_filled < 3 * self.srate:
            return None
        buf = self._hr_buf  # replaced, never written in place after the roll: safe to read
        return heart_rate_bpm(buf[-self._hr_filled :], self.srate)

    def status(self, now: float) -> StreamStatus:
        """A snapshot of the stream at ``now`` (LSL clock, s)."""
        with self._lock:
            (t0, n0), (t1, n1) = (self._rate[0], self._rate[-1]) if self._rate else ((0.0, 0), (0.0, 0))
            rate = (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0
            if self._rate and now - t1 > 2.0:
                rate = 0.0
            lat = np.asarray(self._latency) * 1e3 if self._latency else np.full(1, math.nan)
            state = self.state
            if state == StreamState.OK and now - self.last_arrival > self.stall_s:
                state = StreamState.STALLED
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
