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
    from scipy.optimize import least_squares  # here, not at the top: `mecg info` and the recorder start without SciPy

    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.size == 1:
        return float(y[0]), 0.0
    x0 = float(np.mean(x))
    b0, a0 = np.polyfit(x - x0, y, 1)
    res = least_squares(lambda p: p[0] + p[1] * (x - x0) - y, [a0, b0], loss="huber", f_scale=scale)
    a, b = res.x
    return float(a - b * x0), float(b)


def fit_clock_offsets(
    offsets: np.ndarray,
    reset_jump_s: float = 0.005,
    scale_s: float = 0.0005,
    *,
    reset_time_stds: float = 5.0,
    reset_time_s: float = 5.0,
    reset_offset_stds: float = 10.0,
    reset_offset_s: float = 1.0,
    level_window: int = 3,
) -> list[ClockSegment]:
    """Fit offset and drift per clock segment from ``(m, 2)`` measurements ``[recorder_time, offset]`` (s).

    Column 0 is the recorder's LSL clock when the offset was measured (docs/session-format.md), so the
    sender's clock then read ``recorder_time - offset`` (what LabRecorder writes as an XDF
    CollectionTime). Each segment's line is fitted over that sender time, ``offset = a + b * t_sender``
    (a robust Huber line, transition ``scale_s``), and so applies to the sender's timestamps exactly as
    pyxdf's ``_clock_sync`` applies it; the segment's ``t0_s``/``t1_s`` are the recorder times of its
    first and last measurement. With no measurement the offset is taken as 0.

    A clock reset of the sender starts a new segment between two consecutive measurements where

    - pyxdf's ``_detect_clock_resets`` (load_xdf's default thresholds) fires: the sender times step
      backwards, or both the step of the sender times and the step of the offsets are outliers,
      more than ``reset_time_stds`` (5) median absolute deviations and ``reset_time_s`` (5 s) from
      the median step for the times, ``reset_offset_stds`` (10) MADs and ``reset_offset_s`` (1 s)
      for the offsets (a rebooted sender: its clock restarts near 0); or
    - the offset moves to a new level by more than ``reset_jump_s`` (5 ms): the step itself and the
      medians of the ``level_window`` (3) measurements after and up to it both differ by that much, so
      a single outlying measurement is no reset. This catches resets pyxdf's thresholds let through
      (a sender restarted with a clock less than 1 s from the old one); LSL's offsets scatter by tens
      of microseconds on one host, about a millisecond over a busy network.
    """
    m = np.asarray(offsets, dtype=np.float64).reshape(-1, 2)
    m = m[np.all(np.isfinite(m), axis=1)]
    if m.shape[0] == 0:
        return [ClockSegment(-np.inf, np.inf, 0.0, 0.0)]
    m = m[np.argsort(m[:, 0], kind="stable")]
    value = m[:, 1]
    sender = m[:, 0] - value
    cut = np.zeros(m.shape[0] - 1, dtype=bool)
    if m.shape[0] > 1:
        d_time, d_value = np.diff(sender), np.diff(value)

        def outlier(step: np.ndarray, stds: float, limit_s: float) -> np.ndarray:
            shift = step - np.median(step)
            mad = np.median(np.abs(shift)) + np.finfo(np.float64).eps
            return (np.abs(shift) / mad > stds) & (np.abs(shift) > limit_s)

        cut = (d_time < 0) | (
            outlier(d_time, reset_time_stds, reset_time_s) & outlier(d_value, reset_offset_stds, reset_offset_s)
        )
        for i in np.flatnonzero(np.abs(d_value) > reset_jump_s):
            before = np.median(value[max(0, i + 1 - level_window) : i + 1])
            after = np.median(value[i + 1 : i + 1 + level_window])
            cut[i] |= abs(after - before) > reset_jump_s
    segs = []
    for idx in np.split(np.arange(m.shape[0]), np.flatnonzero(cut) + 1):
        a, b = huber_line(sender[idx], value[idx], scale_s)
        segs.append(ClockSegment(float(m[idx[0], 0]), float(m[idx[-1], 0]), a, b))
    return segs


def correct_timestamps(
    ts: np.ndarray, segments: list[ClockSegment], *, jump_tolerance: float = 0.25, margin_s: float = 1.0
) -> np.ndarray:
    """Sender timestamps (s) -> recorder clock (s): ``ts + offset(ts)`` with the line of each sample's clock segment.

    Samples are in the order they were recorded; at a reset the sender's clock jumps (back, after a
    reboot), so ``ts`` need not increase. The recorder's clock runs on, so the raw timestamps jump by
    ``J = offset_before - offset_after`` (the lines at the measurements either side): the samples are
    cut at the step of ``ts`` closest to ``J`` plus the stream's usual step, if it is within
    ``jump_tolerance * |J|`` and its samples' recorder times (old line before, new line after) lie
    within ``margin_s`` of the two measurements. If no step fits (a gap in the stream hides it), the
    cut is pyxdf's: the first sample whose timestamp is nearer the next segment's first measurement
    than this segment's last one (both on the sender's clock).
    """
    t = np.asarray(ts, dtype=np.float64)
    out = np.empty_like(t)
    start = 0
    for k, seg in enumerate(segments):
        stop = t.size
        if k + 1 < len(segments) and start < t.size:
            nxt = segments[k + 1]
            # the sender's clock at the two measurements: sender + offset(sender) = recorder time
            s1 = (seg.t1_s - seg.intercept_s) / (1.0 + seg.slope)
            s2 = (nxt.t0_s - nxt.intercept_s) / (1.0 + nxt.slope)
            jump = float(seg.offset(s1) - nxt.offset(s2))
            rest = t[start:]
            step = np.diff(rest)
            cut = -1
            if step.size:
                usual = float(np.median(step[step > 0])) if np.any(step > 0) else 0.0
                inside = (rest[:-1] + seg.offset(rest[:-1]) <= nxt.t0_s + margin_s) & (
                    rest[1:] + nxt.offset(rest[1:]) >= seg.t1_s - margin_s
                )
                miss = np.where(inside, np.abs(step - usual - jump), np.inf)
                i = int(np.argmin(miss))
                if miss[i] < jump_tolerance * abs(jump):
                    cut = i + 1
            if cut < 0:
                nearer_next = np.abs(rest - s1) >= np.abs(rest - s2)
                cut = int(np.argmax(nearer_next)) if nearer_next.any() else rest.size
            stop = start + cut
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
    index is ``round((t_i - reference) / p)``; passes after the first seed that median with the
    first window's frames, so a late first frame does not shift the start. A frame that came
    unusually late and so collides with its successor is moved back by a backward pass (timestamps are exposure plus a
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
    prev: np.ndarray | None = None
    for _ in range(3):
        idx = np.zeros(n, dtype=np.int64)
        ring = np.empty(window)
        if prev is None:  # first pass: the first frame is the only reference it has
            ring[0] = t[0]
            filled, first = 1, 1
        else:  # later passes: the first frames are placed against the median of the first window
            k = min(window, n)
            ring[:k] = t[:k] - prev[:k] * p
            filled, first = k, 0
        for i in range(first, n):
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
        prev = idx
    return idx
