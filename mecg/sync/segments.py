"""Piecewise device time: streams cut into segments at gaps, lost samples and clock resets.

A device's samples are on one clock only while nothing is lost. A reconnect (the driver was
killed and restarted), a run of lost samples or a sender clock reset breaks the link between a
sample's index and its time, so every stream is cut into **segments** inside which it holds:

* ``reset``: the sender's clock jumped (its LSL clock offset changed, see
  :func:`mecg.sync.clocks.fit_clock_offsets`); found where the raw and the clock-corrected
  timestamps step differently.
* ``gap``: the corrected timestamps step by more than ``gap_s`` (or backwards).
* ``drop`` (regular-rate streams): fewer than ``gap_s`` but at least one sample lost; found where
  the timestamps' level against the sample index moves by more than ``drop_samples`` periods
  across a long step (the median before and after, so jitter alone does not cut).
* ``nan``: timestamps that are not numbers belong to no segment.

**The ECG clock across a gap.** Inside the first ECG segment the ECG clock is the amplifier's
sample clock, sample ``k`` at ``k / nominal_rate`` s. Every later segment keeps its own sample
clock and starts at ``t0_s``: first placed from the LSL timestamps (recorder time since the first
segment's start, scaled to the amplifier's rate), then, in the hardware modes, corrected by the
camera, whose clock runs on across the ECG gap (see :mod:`mecg.sync.joint`). Times inside a gap
belong to no sample; :meth:`EcgClock.sample_at` gives NaN there.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from mecg.sync.clocks import correct_timestamps, fit_clock_offsets, frame_indices, huber_line


class Cut(StrEnum):
    """What ended a segment (the reason for the cut before the next one)."""

    RESET = "reset"  #: the device clock jumped back or far ahead
    GAP = "gap"  #: no samples for longer than the gap threshold
    DROP = "drop"  #: samples lost inside a regular stream
    NAN = "nan"  #: a run of NaN timestamps follows
    END = "end"  #: the stream's last segment


#: The reasons, as strings.
CUT_REASONS: tuple[str, ...] = tuple(Cut)


@dataclass(frozen=True)
class Segment:
    """Samples ``[start, stop)`` of a stream that share one device clock.

    ``t0_lsl_s`` and ``period_lsl_s``: the segment's line in recorder time (first sample's
    clock-corrected time, and seconds per sample), fitted over the segment. ``cut`` says what
    ended it (one of :data:`CUT_REASONS`).
    """

    start: int
    stop: int
    t0_lsl_s: float
    period_lsl_s: float
    cut: Cut = Cut.END

    @property
    def n(self) -> int:
        return self.stop - self.start


@dataclass
class StreamTimebase:
    """A stream's segments with the clock-corrected (recorder-time) timestamps they came from."""

    segments: list[Segment]
    corrected_s: np.ndarray
    resets: int = 0
    gaps: int = 0
    drops: int = 0
    nan_timestamps: int = 0
    gap_total_s: float = 0.0
    samples_lost: int = 0
    frame_index: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def segment_of(self, index: np.ndarray) -> np.ndarray:
        """Segment number of each sample index (-1 for samples in no segment)."""
        idx = np.asarray(index)
        starts = np.array([s.start for s in self.segments], dtype=np.int64)
        stops = np.array([s.stop for s in self.segments], dtype=np.int64)
        if not self.segments:
            return np.full(idx.shape, -1, dtype=np.int64)
        j = np.searchsorted(starts, idx, side="right") - 1
        j = np.clip(j, 0, len(self.segments) - 1)
        inside = (idx >= starts[j]) & (idx < stops[j])
        return np.where(inside, j, -1)

    def summary(self) -> dict:
        """Counts for reports: segments, resets, gaps (and their total length), drops, NaN timestamps."""
        return {
            "segments": len(self.segments),
            "resets": self.resets,
            "gaps": self.gaps,
            "gap_total_s": round(self.gap_total_s, 4),
            "drops": self.drops,
            "samples_lost": self.samples_lost,
            "nan_timestamps": self.nan_timestamps,
        }


def _cut_points(raw: np.ndarray, corrected: np.ndarray, gap_s: float) -> list[tuple[int, Cut]]:
    """Indices ``i`` where a new segment starts at sample ``i``, with the reason (reset, gap, nan)."""
    cuts: dict[int, Cut] = {}
    bad = ~np.isfinite(raw) | ~np.isfinite(corrected)
    d_raw, d_cor = np.diff(raw), np.diff(corrected)
    with np.errstate(invalid="ignore"):
        # a step the clock correction changed: a reset, unless the offset's own drift (< 1000 ppm of the
        # step, e.g. across a long gap between two hosts) explains the change
        reset = np.abs(d_raw - d_cor) > 1e-3 + 1e-3 * np.abs(d_cor)
        gap = (d_cor > gap_s) | (d_cor < -gap_s)
    for i in np.flatnonzero(gap & ~reset) + 1:
        cuts[int(i)] = Cut.GAP
    for i in np.flatnonzero(reset) + 1:
        cuts[int(i)] = Cut.RESET
    for i in np.flatnonzero(bad):
        cuts[int(i)] = Cut.NAN
        if i + 1 < raw.size:
            cuts.setdefault(int(i) + 1, Cut.NAN)
    return sorted(cuts.items())


def _line(t: np.ndarray) -> tuple[float, float]:
    """Least-squares line over sample index: (time of the first sample, period)."""
    if t.size == 1:
        return float(t[0]), float("nan")
    k = np.arange(t.size, dtype=np.float64)
    b, a = np.polyfit(k, t, 1)
    return float(a), float(b)


def _drops(t: np.ndarray, period: float, drop_samples: float, window: int) -> list[int]:
    """Positions inside a gap-free run where samples were lost (the level against index moves)."""
    if t.size < 2 * window + 2:
        return []
    steps = np.diff(t)
    cand = np.flatnonzero(steps > (1.0 + drop_samples) * period) + 1
    if cand.size == 0:
        return []
    level = t - period * np.arange(t.size)
    moved = np.zeros(cand.size, dtype=bool)
    # whole windows on both sides: medians of many candidates at once (jittered 1 kHz timestamps
    # give ~1e5 candidates a minute; one np.median call each cost seconds); same values as below
    full = np.flatnonzero((cand >= window) & (cand + window <= t.size))
    offsets = np.arange(window)
    for block in np.array_split(full, max(1, full.size // 4096)) if full.size else []:
        c = cand[block][:, None]
        before, after = np.median(level[c - window + offsets], axis=1), np.median(level[c + offsets], axis=1)
        moved[block] = after - before > drop_samples * period
    for k in np.setdiff1d(np.arange(cand.size), full):  # near the ends: shorter windows
        i = cand[k]
        before = level[max(0, i - window) : i]
        after = level[i : i + window]
        moved[k] = before.size >= 8 and after.size >= 8 and np.median(after) - np.median(before) > drop_samples * period
    return [int(i) for i in cand[moved]]


def stream_timebase(
    timestamps: np.ndarray,
    clock_offsets: np.ndarray,
    nominal_srate_hz: float,
    *,
    gap_s: float | None = None,
    regular: bool = True,
    drop_samples: float = 0.6,
    drop_window: int = 64,
    number_frames: bool = True,
) -> StreamTimebase:
    """Cut a stream into segments (see the module docstring) and fit each one's recorder-time line.

    Parameters
    ----------
    timestamps, clock_offsets
        The stream's raw LSL timestamps (s) and its ``[local_time_s, offset_s]`` measurements.
    nominal_srate_hz
        Declared rate (Hz).
    gap_s
        A corrected-time step longer than this (s) is a gap. Default: 5 periods, at least 50 ms,
        for a regular stream; 0.5 s (the recorder's own rule) for a stream that may drop samples.
    regular
        True for streams that never skip a sample on their own (amplifiers): lost samples
        shorter than a gap cut too. False for cameras (they skip frames; see
        :func:`mecg.sync.clocks.frame_indices`), whose ``frame_index`` is then filled per segment.
    drop_samples, drop_window
        A level move of more than ``drop_samples`` periods between the medians of
        ``drop_window`` samples before and after a long step is a drop.
    number_frames
        Fill ``frame_index`` for a stream that may drop samples (costs a pass over the frames;
        a summary such as ``mecg info`` does without).
    """
    raw = np.asarray(timestamps, dtype=np.float64).reshape(-1)
    n = raw.size
    period = 1.0 / nominal_srate_hz if nominal_srate_hz > 0 else 0.0
    if gap_s is None:
        gap_s = max(5.0 * period, 0.05) if regular else max(0.5, 10.0 * period)
    finite = np.isfinite(raw)
    corrected = np.full(n, np.nan)
    if finite.any():
        corrected[finite] = correct_timestamps(raw[finite], fit_clock_offsets(clock_offsets))
    tb = StreamTimebase([], corrected, nan_timestamps=int((~finite).sum()))
    if n == 0:
        return tb
    cuts = _cut_points(raw, corrected, gap_s)
    bounds = [0] + [i for i, _ in cuts] + [n]
    reasons = [r for _, r in cuts] + [Cut.END]
    runs: list[tuple[int, int, Cut]] = []
    for a, b, why in zip(bounds[:-1], bounds[1:], reasons):
        if b <= a:
            continue
        if not np.isfinite(corrected[a]):  # a run of NaN timestamps: no segment
            continue
        inner = _drops(corrected[a:b], period, drop_samples, drop_window) if regular and period else []
        edges = [a] + [a + i for i in inner] + [b]
        for j, (x, y) in enumerate(itertools.pairwise(edges)):
            runs.append((x, y, Cut.DROP if j + 1 < len(edges) - 1 else why))
    for x, y, why in runs:
        t = corrected[x:y]
        if regular or not period:
            t0, p = _line(t)
        else:
            t0, p = float(t[0]), period
        tb.segments.append(Segment(x, y, t0, p if np.isfinite(p) else period, why))
    for prev, nxt in zip(tb.segments[:-1], tb.segments[1:]):
        if prev.cut == Cut.RESET:
            tb.resets += 1
        elif prev.cut in (Cut.GAP, Cut.DROP):
            tb.gaps += prev.cut == Cut.GAP
            tb.drops += prev.cut == Cut.DROP
            missing = nxt.t0_lsl_s - (prev.t0_lsl_s + prev.n * prev.period_lsl_s)
            tb.gap_total_s += max(missing, 0.0)
            if period:
                tb.samples_lost += max(round(missing / period), 0)
    if not regular and period and number_frames:
        idx = np.zeros(n, dtype=np.int64)
        for seg in tb.segments:
            idx[seg.start : seg.stop] = frame_indices(corrected[seg.start : seg.stop], nominal_srate_hz)
        tb.frame_index = idx
    return tb


@dataclass
class EcgClock:
    """The ECG clock over a stream with segments: sample ``k`` of segment ``s`` is at ``t0_s[s] + (k - first[s]) / fs``.

    ``first``, ``count``: each segment's first sample and length; ``t0_s``: its start on the ECG
    clock (s). One segment starting at 0 is the plain sample clock ``k / fs``.
    """

    srate_hz: float
    first: np.ndarray
    count: np.ndarray
    t0_s: np.ndarray

    @classmethod
    def plain(cls, n_samples: int, srate_hz: float) -> EcgClock:
        """One segment: the sample clock of a stream without gaps."""
        return cls(srate_hz, np.array([0]), np.array([n_samples]), np.array([0.0]))

    @classmethod
    def from_table(cls, table: np.ndarray, srate_hz: float) -> EcgClock:
        """From a stored ``(S, 3)`` table ``[first_sample, n_samples, t0_s]``."""
        t = np.asarray(table, dtype=np.float64).reshape(-1, 3)
        return cls(srate_hz, t[:, 0].astype(np.int64), t[:, 1].astype(np.int64), t[:, 2].copy())

    def table(self) -> np.ndarray:
        """``(S, 3)`` float64 ``[first_sample, n_samples, t0_s]`` (what /sync stores)."""
        return np.column_stack([self.first, self.count, self.t0_s]).astype(np.float64)

    @property
    def segments(self) -> int:
        return int(self.first.size)

    def time_of(self, k: np.ndarray | float) -> np.ndarray:
        """ECG-clock time (s) of (fractional) sample indices ``k``; NaN for samples in no segment."""
        k = np.asarray(k, dtype=np.float64)
        s = np.clip(np.searchsorted(self.first, np.floor(k), side="right") - 1, 0, self.first.size - 1)
        inside = (k >= self.first[s] - 0.5) & (k < self.first[s] + self.count[s] + 0.5)
        return np.where(inside, self.t0_s[s] + (k - self.first[s]) / self.srate_hz, np.nan)

    def sample_at(self, t_s: np.ndarray | float, *, clip: bool = False) -> np.ndarray:
        """Fractional sample index at ECG-clock times ``t_s``; NaN inside a gap.

        Before the first and after the last segment the outer segments' clocks run on (those
        samples do not exist; ``clip`` limits the result to ``[0, n]``).
        """
        t = np.asarray(t_s, dtype=np.float64)
        s = np.clip(np.searchsorted(self.t0_s, t, side="right") - 1, 0, self.first.size - 1)
        pos = self.first[s] + (t - self.t0_s[s]) * self.srate_hz
        end = self.first[s] + self.count[s]
        last = s == self.first.size - 1
        in_gap = (pos > end + 0.5) & ~last
        out = np.where(in_gap, np.nan, pos)
        if clip:
            out = np.clip(out, 0, self.first[-1] + self.count[-1])
        return out

    def segment_at(self, t_s: np.ndarray) -> np.ndarray:
        """The segment each ECG-clock time belongs to: the last one starting at or before it (0 before the first)."""
        t = np.asarray(t_s, dtype=np.float64)
        return np.clip(np.searchsorted(self.t0_s, t, side="right") - 1, 0, self.first.size - 1)

    def in_gap(self, t_s: np.ndarray) -> np.ndarray:
        """True for ECG-clock times between two segments (no ECG sample exists there)."""
        t = np.asarray(t_s, dtype=np.float64)
        inside_range = (t >= self.t0_s[0]) & (t <= self.t0_s[-1] + self.count[-1] / self.srate_hz)
        with np.errstate(invalid="ignore"):
            return inside_range & np.isnan(self.sample_at(t))

    def sample_times(self, n: int) -> np.ndarray:
        """ECG-clock time (s) of every recorded sample ``0 .. n-1`` (NaN outside the segments)."""
        return self.time_of(np.arange(n, dtype=np.float64))


def ecg_clock_from_lsl(tb: StreamTimebase, srate_hz: float) -> EcgClock:
    """Place each ECG segment on the ECG clock from its LSL line (see the module docstring).

    The amplifier's rate against the recorder's clock comes from the longest segment; segment
    starts are the recorder time since the first segment's start, scaled by it.
    """
    segs = tb.segments
    if not segs:
        return EcgClock.plain(0, srate_hz)
    ref = max(segs, key=lambda s: s.n)
    period = ref.period_lsl_s if ref.n > 2 and np.isfinite(ref.period_lsl_s) else 1.0 / srate_hz
    scale = 1.0 / (period * srate_hz)  # ECG-clock seconds per recorder second
    first = np.array([s.start for s in segs], dtype=np.int64)
    count = np.array([s.n for s in segs], dtype=np.int64)
    t0 = np.array([(s.t0_lsl_s - segs[0].t0_lsl_s) * scale for s in segs])
    t0[0] = 0.0
    return EcgClock(srate_hz, first, count, t0)


def robust_frame_line(t: np.ndarray, idx: np.ndarray, period_s: float) -> tuple[float, float]:
    """Recorder time of frame index 0 and seconds per frame, from a video segment's timestamps (robust)."""
    if t.size < 3:
        return float(t[0] - idx[0] * period_s), period_s
    a, b = huber_line(idx.astype(np.float64), t, 0.25 * period_s)
    return a, b
