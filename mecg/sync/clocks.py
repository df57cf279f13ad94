"""LSL clock correction and dejittering, the way LabRecorder + pyxdf treat a recording.

1. **Clock offsets**: each stream holds measurements ``[local_time, offset]`` taken every few
   seconds (``offset`` is what to add to the sender's timestamps to get the recorder's clock).
   They are split into segments at clock resets (a jump of the offset larger than
   ``reset_jump_s``) and each segment gets a robust (Huber) line ``offset = a + b * t``.
2. **Dejitter**: a regular-rate stream's timestamps are replaced by a least-squares line over
   sample index, segment by segment (segments split at gaps longer than ``gap_s``). Streams
   that declare they can drop samples (cameras) are left alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares


@dataclass(frozen=True)
class ClockSegment:
    """One clock segment: ``offset(t) = intercept_s + slope * t`` for local times in ``[t0_s, t1_s]``."""

    t0_s: float
    t1_s: float
    intercept_s: float
    slope: float

    def offset(self, t_s: np.ndarray | float) -> np.ndarray:
        """The fitted offset (s) at local time ``t_s``."""
        return self.intercept_s + self.slope * np.asarray(t_s, dtype=np.float64)


def huber_line(x: np.ndarray, y: np.ndarray, scale: float) -> tuple[float, float]:
    """Robust line ``y = a + b x`` (Huber loss with transition at ``scale``); returns ``(a, b)``."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.size == 1:
        return float(y[0]), 0.0
    x0 = float(np.mean(x))
    b0, a0 = np.polyfit(x - x0, y, 1)
    res = least_squares(lambda p: p[0] + p[1] * (x - x0) - y, [a0, b0], loss="huber", f_scale=scale)
    a, b = res.x
    return float(a - b * x0), float(b)


def fit_clock_offsets(offsets: np.ndarray, reset_jump_s: float = 0.005, scale_s: float = 0.0005) -> list[ClockSegment]:
    """Fit offset and drift per clock segment from ``(m, 2)`` measurements ``[local_time, offset]``.

    A reset is declared where consecutive offsets differ by more than ``reset_jump_s`` (5 ms;
    LSL's offset measurements scatter by tens of microseconds on one host, about a millisecond
    over a busy network). With no measurement the offset is taken as 0.
    """
    m = np.asarray(offsets, dtype=np.float64).reshape(-1, 2)
    m = m[np.all(np.isfinite(m), axis=1)]
    if m.shape[0] == 0:
        return [ClockSegment(-np.inf, np.inf, 0.0, 0.0)]
    m = m[np.argsort(m[:, 0], kind="stable")]
    cuts = np.flatnonzero(np.abs(np.diff(m[:, 1])) > reset_jump_s) + 1
    segs = []
    for part in np.split(m, cuts):
        a, b = huber_line(part[:, 0], part[:, 1], scale_s)
        segs.append(ClockSegment(float(part[0, 0]), float(part[-1, 0]), a, b))
    return segs


def correct_timestamps(ts: np.ndarray, segments: list[ClockSegment]) -> np.ndarray:
    """Sender timestamps (s) -> recorder clock (s), assigning samples to clock segments.

    Samples are in the order they were recorded. Between two segments the sender's clock jumped
    by minus the change of offset, so the samples' timestamps jump by about that much too: the
    cut is put at that jump among the samples recorded between the two segments' measurements.
    If no such jump is found (a gap in the stream hides it), the cut goes where the corrected
    time passes the midpoint between the measurements.
    """
    t = np.asarray(ts, dtype=np.float64)
    out = np.empty_like(t)
    start = 0
    for k, seg in enumerate(segments):
        stop = t.size
        if k + 1 < len(segments):
            nxt = segments[k + 1]
            corrected = t[start:] + seg.offset(t[start:])
            lo = start + int(np.searchsorted(corrected, seg.t1_s - 1.0))
            hi = start + int(np.searchsorted(corrected, nxt.t0_s + 1.0))
            jump = -(nxt.offset(nxt.t0_s) - seg.offset(seg.t1_s))
            d = np.diff(t[lo : min(hi + 1, t.size)])
            if d.size and np.min(np.abs(d - jump)) < 0.25 * abs(jump):
                stop = lo + int(np.argmin(np.abs(d - jump))) + 1
            else:
                boundary = 0.5 * (seg.t1_s + nxt.t0_s)
                past = np.flatnonzero(corrected >= boundary)
                stop = start + (int(past[0]) if past.size else corrected.size)
        out[start:stop] = t[start:stop] + seg.offset(t[start:stop])
        start = stop
    return out


def dejitter(ts: np.ndarray, nominal_srate_hz: float, gap_s: float | None = None) -> np.ndarray:
    """Least-squares line over sample index per gap-free segment (regular-rate streams only).

    A gap is a step longer than ``gap_s`` (default: 5 sample periods, at least 50 ms); a step
    backwards (a clock reset left in the data) also splits.
    """
    t = np.asarray(ts, dtype=np.float64)
    if t.size < 3 or nominal_srate_hz <= 0:
        return t.copy()
    gap = gap_s if gap_s is not None else max(5.0 / nominal_srate_hz, 0.05)
    d = np.diff(t)
    cuts = np.flatnonzero(np.abs(d) > gap) + 1
    out = np.empty_like(t)
    for idx in np.split(np.arange(t.size), cuts):
        if idx.size < 3:
            out[idx] = t[idx]
            continue
        k = idx - idx[0]
        b, a = np.polyfit(k.astype(np.float64), t[idx], 1)
        out[idx] = a + b * k
    return out


def frame_indices(
    ts: np.ndarray, nominal_srate_hz: float, window: int = 31, max_rate_error: float = 0.002
) -> np.ndarray:
    """Device frame index of each recorded frame, counting frames that were dropped.

    Timestamps jitter by a good part of a frame period, so one step cannot tell a drop from
    jitter. Each frame is instead placed against a reference: the median, over the previous
    ``window`` frames, of ``t_j - p * index_j`` (the clock origin plus the typical delay). A frame's
    index is ``round((t_i - reference) / p)``; a frame that came unusually late and so collides
    with its successor is moved back by a backward pass (timestamps are exposure plus a
    non-negative delay, so frames come late, never early). The period ``p`` starts at the nominal
    one and is refitted on the indices (twice), within ``max_rate_error`` of nominal (cameras
    run within a few hundred ppm of their setting).
    """
    t = np.asarray(ts, dtype=np.float64)
    n = t.size
    if n < 3:
        return np.arange(n, dtype=np.int64)
    nominal = 1.0 / nominal_srate_hz
    p = nominal
    idx = np.arange(n, dtype=np.int64)
    for _ in range(2):
        idx = np.zeros(n, dtype=np.int64)
        ring = np.empty(window)
        ring[0] = t[0]
        filled = 1
        for i in range(1, n):
            ref = float(np.median(ring[: min(filled, window)]))
            idx[i] = round((t[i] - ref) / p)
            ring[filled % window] = t[i] - idx[i] * p
            filled += 1
        for i in range(n - 2, -1, -1):  # a late frame must not take its successor's index
            if idx[i] >= idx[i + 1]:
                idx[i] = idx[i + 1] - 1
        ramp = np.arange(n, dtype=np.int64)
        idx = np.maximum.accumulate(idx - ramp) + ramp  # strictly increasing whatever happened
        idx -= idx[0]
        _, slope = huber_line(idx.astype(np.float64), t, 0.25 * p)
        p = float(np.clip(slope, nominal * (1 - max_rate_error), nominal * (1 + max_rate_error)))
    return idx
