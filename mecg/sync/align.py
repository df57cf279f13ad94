"""Put every video frame on the ECG clock, in one of three modes, with a verdict on the result.

The ECG clock is the amplifier's sample clock: sample ``k`` of the first ECG segment is at
``k / nominal_rate`` s; later segments (after a gap, lost samples or a clock reset) run on their
own sample clocks placed as :mod:`mecg.sync.segments` explains. The camera clock of a camera
segment is its frame clock: frame ``i`` (counting dropped frames, see
:func:`mecg.sync.clocks.frame_indices`) starts its exposure ``i / nominal_fps`` s after the
segment's first frame.

* ``strobe``: the camera's exposure output is recorded on an amplifier channel, so every frame's
  exposure start is seen on the ECG clock; trigger pulses say which strobe edge is which frame.
* ``pulses``: the trigger box lights an LED in view and drives an amplifier input at the same
  time; LED edges (points or, between exposures, intervals) are matched to the digital edges.
* ``lsl``: software clocks only (LSL clock offsets and dejittered timestamps). It cannot see the
  devices' latencies, so it is off by their difference (tens of ms).

Both hardware modes fit all segments at once (:func:`mecg.sync.joint.fit_joint`): one line
slope, one offset per camera segment, one correction per ECG segment, so the camera carries the
ECG clock across an ECG gap. Frames that fall in an ECG gap, and camera segments that no
trigger pulse reached, get NaN and are counted; no time is extrapolated into them. Every result
carries a verdict (:mod:`mecg.sync.verdict`). ``auto`` picks the best mode the recording supports
and says why.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypedDict, Unpack

import numpy as np

from mecg.session import Session, Stream, StreamKind
from mecg.session.ecg_channel import ecg_stream
from mecg.sync.clocks import huber_line
from mecg.sync.joint import JointFit, Observations, feasible_range_s, fit_joint
from mecg.sync.match import best_offset, match_pulses, pair_pulses
from mecg.sync.pulses import (
    LedRoi,
    SyncError,
    falling_edges,
    led_candidates,
    led_edge_intervals,
    led_levels,
    led_onsets,
    led_signal,
    led_signals,
    level_noise,
    rising_edges,
)
from mecg.sync.segments import EcgClock, StreamTimebase, ecg_clock_from_lsl, robust_frame_line, stream_timebase
from mecg.sync.verdict import Judgement, Verdict, VerdictRules, judge


class SyncMode(StrEnum):
    """How frames are put on the ECG clock (values as in ``mecg sync --mode`` and /sync's ``mode``)."""

    AUTO = "auto"
    STROBE = "strobe"
    PULSES = "pulses"
    LSL = "lsl"


#: The modes :func:`synchronize` accepts.
MODES: tuple[str, ...] = tuple(SyncMode)
#: Per-frame method codes stored in /sync/frame_method ("none": not aligned).
METHOD_CODES = {"none": 0, "strobe": 1, "pulses": 2, "lsl": 3}
#: Frames read per chunk while scanning the video for the LED.
CHUNK_FRAMES = 256
#: Length of video (s) searched for the LED before the whole video is scanned.
LED_SEARCH_S = 60.0


@dataclass(frozen=True)
class SyncParams:
    """Thresholds of the alignment (times in s). Verdict thresholds are in ``rules``.

    ``pulse_tol_s``: how far a camera pulse may sit from an amplifier pulse at the proposed offset
    (plus ``pulse_drift_ppm`` of the distance, plus the pulse's own interval); ``refit_tol_s``:
    tolerance around the fitted line when pulses are paired again; ``strobe_tol_periods``: how
    far (in frame periods) a strobe edge may sit from where the pulse fit puts the frame;
    ``min_pulses``: matched pulses needed at all; ``min_segment_pulses``: per camera segment;
    ``video_gap_s``: a camera timestamp step longer than this starts a new camera segment;
    ``fit_scale_s``: where the robust loss turns linear; ``min_strobe_share``: below this share
    (0-1) of frames with a strobe edge, a camera segment is aligned by pulses instead;
    ``strobe_margin_samples``: frames within this many ECG samples of the recording's ends are not
    expected to have a strobe edge; ``led_match_tol_s`` / ``led_match_tol_periods``: while the LED
    is searched, a candidate's flash matches a trigger pulse within the larger of this time and
    this many frame periods; ``led_search_s``: video searched for the LED before the whole video;
    ``line_scale_s``: where the robust loss of the reported offset/drift line of LSL-aligned frames
    turns linear; ``uncertainty_max_obs``: observations (evenly spaced) the uncertainty bound uses at
    most (fewer only widen it).
    """

    pulse_tol_s: float = 0.015
    pulse_drift_ppm: float = 300.0
    refit_tol_s: float = 0.003
    strobe_tol_periods: float = 0.3
    min_pulses: int = 3
    min_segment_pulses: int = 2
    video_gap_s: float = 0.5
    fit_scale_s: float = 0.0005
    min_strobe_share: float = 0.5
    strobe_margin_samples: float = 2.0
    led_match_tol_s: float = 0.015
    led_match_tol_periods: float = 0.6
    led_search_s: float = LED_SEARCH_S
    line_scale_s: float = 0.002
    uncertainty_max_obs: int = 4000
    rules: VerdictRules = field(default_factory=VerdictRules)


@dataclass
class SyncResult:
    """The alignment of one session. Times in s unless the name says ms.

    ``frame_time_ecg_s`` is NaN for frames that were not aligned (ECG gap, camera segment without
    pulses). ``frame_method`` holds a :data:`METHOD_CODES` value per frame; ``ecg_clock`` the ECG
    segments' placement; ``verdict`` and ``reasons`` how sure the result is.
    """

    mode: SyncMode
    frame_time_ecg_s: np.ndarray
    offset_ms: float
    drift_ppm: float
    pulses_video: int
    pulses_ecg: int
    pulses_matched: int
    residual_rms_ms: float | None
    residual_max_ms: float | None
    video_stream: str
    ecg_stream: str
    exposure_s: float | None = None
    ecg_column: int = 0
    ecg_channel: str = ""
    led_roi: LedRoi | None = None
    strobe_edges: int = 0
    warnings: list[str] = field(default_factory=list)
    matched_camera_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    matched_ecg_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    residuals_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    midpoint_residuals_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    interval_halfwidth_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    verdict: Verdict = "ok"
    reasons: list[str] = field(default_factory=list)
    uncertainty_ms: float | None = None
    frame_method: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.uint8))
    frames_in_ecg_gap: int = 0
    ecg_clock: EcgClock | None = None
    video_segments: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    video_timebase: dict = field(default_factory=dict)
    ecg_timebase: dict = field(default_factory=dict)

    def frame_sample_position(self) -> np.ndarray:
        """Where each frame's exposure start falls among the recorded ECG samples (fractional index; NaN if not)."""
        clock = self.ecg_clock
        if clock is None:
            return np.full(self.frame_time_ecg_s.shape, np.nan)
        return clock.sample_at(self.frame_time_ecg_s)

    @property
    def frames_aligned(self) -> int:
        return int(np.isfinite(self.frame_time_ecg_s).sum())

    def report(self) -> dict:
        """The JSON report: verdict, reasons, mode, offset_ms, drift_ppm, pulses, residuals, segments, warnings."""

        def r(v: float | None, nd: int = 4) -> float | None:
            return None if v is None or v != v else round(float(v), nd)

        methods = {k: int(np.sum(self.frame_method == c)) for k, c in METHOD_CODES.items()}
        return {
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "mode": str(self.mode),
            "offset_ms": r(self.offset_ms),
            "drift_ppm": r(self.drift_ppm, 3),
            "uncertainty_ms": r(self.uncertainty_ms),
            "pulses_matched": self.pulses_matched,
            "residual_rms_ms": r(self.residual_rms_ms),
            "residual_max_ms": r(self.residual_max_ms),
            "pulses_video": self.pulses_video,
            "pulses_ecg": self.pulses_ecg,
            "strobe_edges": self.strobe_edges,
            "exposure_ms": None if self.exposure_s is None else round(self.exposure_s * 1e3, 4),
            "led_roi": None
            if self.led_roi is None
            else [self.led_roi.x, self.led_roi.y, self.led_roi.w, self.led_roi.h],
            "video_stream": self.video_stream,
            "ecg_stream": self.ecg_stream,
            "ecg_column": self.ecg_column,
            "ecg_channel": self.ecg_channel,
            "frames": int(self.frame_time_ecg_s.size),
            "frames_aligned": self.frames_aligned,
            "frames_in_ecg_gap": self.frames_in_ecg_gap,
            "frames_by_method": methods,
            "video": dict(self.video_timebase),
            "ecg": dict(self.ecg_timebase),
            "warnings": list(self.warnings),
        }


def _channel(ecg: Stream, name: str) -> np.ndarray | None:
    """The amplifier channel labelled or typed ``name`` (case-insensitive), or None."""
    labels = [x.lower() for x in ecg.info.channel_labels]
    types = [x.lower() for x in ecg.info.channel_types]
    for seq in (labels, types):
        if name.lower() in seq:
            return ecg.data[:, seq.index(name.lower())]
    return None


def header_exposure_s(stream: Stream) -> float | None:
    """Exposure time (s) declared in a video stream's LSL header (``<exposure_s>``), if any."""
    m = re.search(r"<exposure_s>\s*([0-9.eE+-]+)\s*</exposure_s>", stream.info.lsl_header)
    if not m:
        return None
    try:
        v = float(m.group(1))
    except ValueError:
        return None
    return v if np.isfinite(v) and v > 0 else None


def _chunks(video: Stream, stop: int | None = None, rows: int | None = None) -> Iterator[np.ndarray]:
    """Frames ``[0, stop)`` in chunks, each frame's top ``rows`` rows only (None: all); inflated in one
    thread per core (the same frames, sooner)."""
    n = video.sample_count if stop is None else min(stop, video.sample_count)
    threads = os.cpu_count() or 1
    for a in range(0, n, CHUNK_FRAMES):
        yield video.frames(a, min(a + CHUNK_FRAMES, n), rows=rows, threads=threads)


def _rows_for(rois: list[LedRoi]) -> int:
    """Frame rows (from the top) that the LED regions ``rois`` reach: the rest need not be inflated."""
    return max(r.y + r.h for r in rois)


def estimate_exposure(levels: np.ndarray, fps: float) -> float:
    """Exposure (s) from the share of LED onsets that fall inside an exposure (partly lit first frame).

    Pulse edges fall uniformly over the frame period, so that share is exposure / period.
    """
    noise = level_noise(levels)
    first = np.flatnonzero((levels[:-1] <= noise) & (levels[1:] > noise)) + 1
    partial = float(np.mean(levels[first] < 1.0 - noise)) if first.size else 1.0
    return float(np.clip(partial, 0.1, 1.0)) / fps


# -- the two streams' time bases --------------------------------------------------------------
@dataclass
class _Bases:
    """Everything about the two streams' clocks that the modes share."""

    video: StreamTimebase
    ecg: StreamTimebase
    clock: EcgClock  # provisional (LSL-placed) ECG segments
    frame_seg: np.ndarray  # camera segment of each frame (-1: NaN timestamp)
    cam_t: np.ndarray  # camera clock (s) of each frame
    frame_lsl: np.ndarray  # recorder time (s) of each frame, from its segment's robust line
    unsure_frames: int = 0  # frames whose number :func:`_settle_open_frames` could not decide (cam_t NaN)


def _settle_open_frames(
    t: np.ndarray, idx: np.ndarray, a: float, p: float, window: int = 31
) -> tuple[np.ndarray, np.ndarray]:
    """Check the number of each camera-segment frame that its neighbours do not pin; returns ``(idx, unsure)``.

    :func:`mecg.sync.clocks.frame_indices` rounds a frame's timestamp against a reference; a frame
    that came late by over half a period is moved back only when it then collides with its
    successor. The last frame of a segment has no successor, and next to dropped frames a late
    frame takes a dropped frame's number, so such a frame can be silently numbered one period too
    high. Each frame with a missing number right before or after it (and the last one) is checked
    against its pinned neighbours (up to ``window`` on each side): each free number ``idx - 1``,
    ``idx``, ``idx + 1`` gives a residual from the segment's line ``t = a + p * idx`` (recorder time
    ``t`` and period ``p`` in s); the number whose residual lies nearest the neighbours' residual range
    is kept when every other lies over 3 times as far outside it (and over a tenth of its width).
    Otherwise the frame is ``unsure``: its delay and a period cannot be told apart.
    """
    idx = np.asarray(idx, dtype=np.int64).copy()
    n = idx.size
    unsure = np.zeros(n, dtype=bool)
    if n < 3:
        return idx, unsure
    r = t - (a + p * idx)
    hole = np.diff(idx) > 1
    open_ = np.append(hole, True) | np.insert(hole, 0, False)  # a hole after it (or the end), or before it
    pinned = ~open_ & np.isfinite(r)
    for i in np.flatnonzero(open_):
        lo_i, hi_i = max(0, i - window), min(n, i + window + 1)
        near = r[lo_i:hi_i][pinned[lo_i:hi_i]]
        if near.size < 5 or not np.isfinite(r[i]):
            continue
        lo, hi = float(near.min()), float(near.max())
        out: dict[int, float] = {}  # how far (s) each free number puts the frame outside its neighbours' range
        for k in (-1, 0, 1):
            cand = idx[i] + k
            if (i > 0 and cand <= idx[i - 1]) or (i + 1 < n and cand >= idx[i + 1]) or (i == 0 and k):
                continue
            out[k] = max(lo - (r[i] - k * p), (r[i] - k * p) - hi, 0.0)
        ranked = sorted(out, key=out.__getitem__)
        best = out[ranked[0]]
        second = out[ranked[1]] if len(ranked) > 1 else np.inf
        if second > max(3.0 * best, 0.1 * (hi - lo)):
            idx[i] += ranked[0]
        else:
            unsure[i] = True
    return idx, unsure


def _bases(video: Stream, ecg: Stream, params: SyncParams) -> _Bases:
    fps, fs = video.info.nominal_srate_hz, ecg.info.nominal_srate_hz
    vtb = stream_timebase(video.timestamps, video.clock_offsets, fps, regular=False, gap_s=params.video_gap_s)
    etb = stream_timebase(ecg.timestamps, ecg.clock_offsets, fs, regular=True)
    if not vtb.segments or not etb.segments:
        raise SyncError("the video or the ECG stream has no usable timestamps (all NaN); run `mecg validate --deep`")
    n = video.sample_count
    seg = vtb.segment_of(np.arange(n))
    cam_t = np.full(n, np.nan)
    frame_lsl = np.full(n, np.nan)
    unsure_total = 0
    for s in vtb.segments:
        t = vtb.corrected_s[s.start : s.stop]
        a, p = robust_frame_line(t, vtb.frame_index[s.start : s.stop], 1.0 / fps)
        idx, unsure = _settle_open_frames(t, vtb.frame_index[s.start : s.stop], a, p)
        vtb.frame_index[s.start : s.stop] = idx
        cam_t[s.start : s.stop] = np.where(unsure, np.nan, a + idx / fps)
        frame_lsl[s.start : s.stop] = np.where(unsure, np.nan, a + p * idx)
        unsure_total += int(unsure.sum())
    return _Bases(vtb, etb, ecg_clock_from_lsl(etb, fs), seg, cam_t, frame_lsl, unsure_total)


def _edges(b: _Bases, channel: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Rising edges of an amplifier channel inside ECG segments: provisional ECG time (s) and segment."""
    if channel is None:
        return np.zeros(0), np.zeros(0, dtype=np.int64)
    k = rising_edges(channel)
    s = b.ecg.segment_of(k)
    ok = (s >= 0) & (s == b.ecg.segment_of(k - 1))
    k, s = k[ok], s[ok]
    return b.clock.time_of(k - 0.5), s


def _falls_after(b: _Bases, channel: np.ndarray | None, rise_t: np.ndarray, rise_seg: np.ndarray) -> np.ndarray:
    """The falling edge (provisional ECG time, s) of each trigger pulse, NaN where it is not in the rise's segment."""
    out = np.full(rise_t.size, np.nan)
    if channel is None or rise_t.size == 0:
        return out
    k = falling_edges(channel)
    s = b.ecg.segment_of(k)
    ok = (s >= 0) & (s == b.ecg.segment_of(k - 1))
    ft, fs_ = b.clock.time_of(k[ok] - 0.5), s[ok]
    nxt = np.r_[rise_t[1:], np.inf]
    j = np.searchsorted(ft, rise_t)
    has = j < ft.size
    jj = np.minimum(j, max(ft.size - 1, 0))
    if ft.size:
        good = has & (fs_[jj] == rise_seg) & (ft[jj] < nxt)
        out[good] = ft[jj[good]]
    return out


def _recorder_to_ecg(t_lsl: np.ndarray, b: _Bases, fs: float) -> np.ndarray:
    """Recorder-clock times -> ECG clock through each ECG segment's LSL line.

    A time after a segment's end (and before the next one's start) stays on that segment's line,
    so the caller can tell, on the ECG clock, which times fall in a gap.
    """
    t = np.asarray(t_lsl, dtype=np.float64)
    out = np.full(t.shape, np.nan)
    segs = b.ecg.segments
    for j, s in enumerate(segs):
        lo = -np.inf if j == 0 else s.t0_lsl_s - 0.5 * s.period_lsl_s
        hi = segs[j + 1].t0_lsl_s - 0.5 * segs[j + 1].period_lsl_s if j + 1 < len(segs) else np.inf
        m = (t >= lo) & (t < hi)
        out[m] = b.clock.t0_s[j] + (t[m] - s.t0_lsl_s) / (s.period_lsl_s * fs)
    return out


# -- pulses -------------------------------------------------------------------------------------
@dataclass
class _CameraPulses:
    """LED pulses on the camera clock (s): rise interval, camera segment, fall interval (NaN: not seen)."""

    lo: np.ndarray
    hi: np.ndarray
    seg: np.ndarray
    fall_lo: np.ndarray
    fall_hi: np.ndarray

    @classmethod
    def empty(cls) -> _CameraPulses:
        z = np.zeros(0)
        return cls(z, z, np.zeros(0, dtype=np.int64), z, z)


def _pick_led(
    video: Stream, cam_t: np.ndarray, trig_s: np.ndarray, exposure_s: float | None, params: SyncParams
) -> tuple[LedRoi | None, str]:
    """The LED candidate whose flashes best match the amplifier's trigger pulses, or (None, reason)."""
    n_search = int(params.led_search_s * video.info.nominal_srate_hz)
    fps = video.info.nominal_srate_hz
    tol_s = max(params.led_match_tol_s, params.led_match_tol_periods / fps)
    tried = 0
    for stop in (n_search, None):  # the first minute, then the whole video
        best: tuple[int, LedRoi | None] = (0, None)
        cands = [roi for roi, _ in led_candidates(_chunks(video, stop))]
        tried += len(cands)
        signals = led_signals(_chunks(video, stop, _rows_for(cands)), cands) if cands else []
        for roi, sig in zip(cands, signals):
            try:
                levels, _, _ = led_levels(sig)
                t = cam_t[: levels.size]
                ok = np.isfinite(t)
                onsets = led_onsets(
                    levels[ok], t[ok], exposure_s or estimate_exposure(levels, fps), level_noise(levels)
                )
                n = match_pulses(onsets, trig_s, tol_s=tol_s).x.size
            except SyncError:
                continue
            if n > best[0]:
                best = (n, roi)
        if best[1] is not None:
            return best[1], ""
        if stop is None or stop >= video.sample_count:
            break
    if not tried:
        return None, "no flashing LED found in the video (pass --led-roi x,y,w,h if it is there)"
    return None, (
        f"none of the {tried} flashing regions of the video matches the amplifier's trigger pulses "
        "(is the LED in view? pass --led-roi x,y,w,h to point at it)"
    )


def _camera_pulses(levels: np.ndarray, b: _Bases, exposure_s: float) -> _CameraPulses:
    """LED edge intervals on the camera clock, each with its camera segment (pulses at a segment start dropped)."""
    noise = level_noise(levels)
    ed = led_edge_intervals(levels, b.cam_t[: levels.size], exposure_s, noise)
    seg = b.frame_seg[ed.frame]
    ok = (seg >= 0) & (seg == b.frame_seg[ed.frame - 1]) & np.isfinite(ed.rise_lo) & np.isfinite(ed.rise_hi)
    last = np.clip(ed.last, 0, b.frame_seg.size - 2)
    fall_ok = (ed.last >= 0) & (b.frame_seg[last] == seg) & (b.frame_seg[last + 1] == seg)
    fall_ok &= np.isfinite(ed.fall_lo) & np.isfinite(ed.fall_hi)  # a frame beside it with no camera time (unsure)
    flo = np.where(fall_ok, ed.fall_lo, np.nan)
    fhi = np.where(fall_ok, ed.fall_hi, np.nan)
    return _CameraPulses(ed.rise_lo[ok], ed.rise_hi[ok], seg[ok], flo[ok], fhi[ok])


def _pulse_observations(
    cam: _CameraPulses, i: np.ndarray, ecg_t: np.ndarray, ecg_fall: np.ndarray, ecg_seg: np.ndarray, fs: float
) -> Observations:
    """Observations of paired pulses ``(i, j)``: both edges where both devices saw them."""
    i, j = i
    h = 0.5 / fs
    rises = Observations(cam.seg[i], ecg_seg[j], cam.lo[i], cam.hi[i], ecg_t[j] - h, ecg_t[j] + h)
    f = np.isfinite(cam.fall_lo[i]) & np.isfinite(cam.fall_hi[i]) & np.isfinite(ecg_fall[j])
    i, j = i[f], j[f]
    falls = Observations(cam.seg[i], ecg_seg[j], cam.fall_lo[i], cam.fall_hi[i], ecg_fall[j] - h, ecg_fall[j] + h)
    return Observations.concat([rises, falls])


def _pulse_fit(
    cam: _CameraPulses, ecg_t: np.ndarray, ecg_fall: np.ndarray, ecg_seg: np.ndarray, fs: float, params: SyncParams
) -> tuple[JointFit | None, int, str]:
    """Match camera and amplifier pulses and fit all segments jointly; (fit, pulses paired, '') or (None, 0, why)."""
    order = np.argsort(ecg_t)
    ecg_t, ecg_fall, ecg_seg = ecg_t[order], ecg_fall[order], ecg_seg[order]
    mid = 0.5 * (cam.lo + cam.hi)
    half = 0.5 * (cam.hi - cam.lo)
    tol = params.pulse_tol_s + (float(half.max()) if half.size else 0.0)
    order_c = np.argsort(mid)
    mid_s = mid[order_c]
    try:
        off, anchor = best_offset(
            mid_s, ecg_t, tol_s=tol, max_drift_ppm=params.pulse_drift_ppm, min_matches=params.min_pulses
        )
    except SyncError as e:
        return None, 0, str(e)
    i, j = pair_pulses(mid_s, ecg_t, off, anchor, tol_s=tol, max_drift_ppm=params.pulse_drift_ppm)
    i = order_c[i]
    half_sample = 0.5 / fs
    fit: JointFit | None = None
    paired = 0
    for _ in range(3):
        keep = np.isin(cam.seg[i], _segments_with(cam.seg[i], params.min_segment_pulses))
        i, j = i[keep], j[keep]
        if i.size < params.min_pulses:
            return (
                None,
                0,
                (
                    f"only {i.size} LED pulses pair with trigger pulses in camera segments with at least "
                    f"{params.min_segment_pulses} pulses (need {params.min_pulses})"
                ),
            )
        paired = int(i.size)
        obs = _pulse_observations(cam, (i, j), ecg_t, ecg_fall, ecg_seg, fs)
        fit = fit_joint(
            obs,
            scale_s=params.fit_scale_s,
            slope_guess=fit.slope if fit else 1.0,
            max_drift_ppm=params.rules.max_drift_ppm,
        )
        # pair again around the fitted line: each camera pulse with the amplifier pulse it predicts
        ii, jj = [], []
        ecg_true = ecg_t + np.array([fit.corrections.get(int(s), 0.0) for s in ecg_seg])
        for k in range(cam.lo.size):
            v = int(cam.seg[k])
            if v not in fit.intercepts:
                continue
            lo, hi = fit.predict(v, cam.lo[k]), fit.predict(v, cam.hi[k])
            d = np.maximum(np.maximum(lo - ecg_true, ecg_true - hi), 0.0)
            m = int(np.argmin(d))
            if d[m] <= params.refit_tol_s + half_sample:
                ii.append(k)
                jj.append(m)
        ii_a, jj_a = np.asarray(ii, dtype=np.int64), np.asarray(jj, dtype=np.int64)
        _, first = np.unique(jj_a, return_index=True)
        i, j = ii_a[np.sort(first)], jj_a[np.sort(first)]
    assert fit is not None
    return fit, paired, ""


def _segments_with(seg: np.ndarray, least: int) -> np.ndarray:
    """Camera segments that hold at least ``least`` of the given pulses."""
    v, counts = np.unique(seg, return_counts=True)
    return v[counts >= least]


def _strobe_fit(
    b: _Bases,
    strobe_t: np.ndarray,
    strobe_seg: np.ndarray,
    guide: JointFit | None,
    fps: float,
    fs: float,
    params: SyncParams,
) -> tuple[JointFit | None, dict[int, float], str]:
    """Number the strobe edges by the pulse fit and fit all segments on them; (fit, share per camera segment, why)."""
    if guide is None:
        return None, {}, "strobe edges need trigger pulses to number them"
    order = np.argsort(strobe_t)
    st, ss = strobe_t[order], strobe_seg[order]
    st_true = st + np.array([guide.corrections.get(int(s), 0.0) for s in ss])
    parts, shares = [], {}
    clock = _corrected_clock(b.clock, guide)
    for v, seg in enumerate(b.video.segments):
        if v not in guide.intercepts:
            continue
        fr = np.arange(seg.start, seg.stop)
        fr = fr[np.isfinite(b.cam_t[fr])]
        pred = guide.predict(v, b.cam_t[fr])
        pos = clock.sample_at(pred)
        end = clock.first[-1] + clock.count[-1]
        margin = params.strobe_margin_samples
        expected = np.isfinite(pos) & (pos > margin) & (pos < end - margin)
        if not expected.any() or st_true.size < 2:
            continue
        j = np.clip(np.searchsorted(st_true, pred), 1, st_true.size - 1)
        j = np.where(np.abs(st_true[j - 1] - pred) < np.abs(st_true[j] - pred), j - 1, j)
        ok = (np.abs(st_true[j] - pred) < params.strobe_tol_periods / fps) & expected
        shares[v] = float(ok.sum() / expected.sum())
        if shares[v] < params.min_strobe_share:
            continue
        t = b.cam_t[fr[ok]]
        parts.append(Observations(np.full(t.size, v), ss[j[ok]], t, t, st[j[ok]] - 0.5 / fs, st[j[ok]] + 0.5 / fs))
    obs = Observations.concat(parts)
    if len(obs) < 2:
        return None, shares, "no camera segment has its frames' strobe edges where the pulses put them"
    fit = fit_joint(obs, scale_s=params.fit_scale_s, slope_guess=guide.slope, max_drift_ppm=params.rules.max_drift_ppm)
    return fit, shares, ""


def _corrected_clock(clock: EcgClock, fit: JointFit | None) -> EcgClock:
    """The ECG segments' placement after the fit's corrections."""
    if fit is None:
        return clock
    t0 = clock.t0_s + np.array([fit.corrections.get(s, 0.0) for s in range(clock.segments)])
    return EcgClock(clock.srate_hz, clock.first.copy(), clock.count.copy(), t0)


# -- the modes ------------------------------------------------------------------------------------
def _lsl_times(b: _Bases, fs: float) -> np.ndarray:
    return _recorder_to_ecg(b.frame_lsl, b, fs)


def _line_of(cam_t: np.ndarray, times: np.ndarray, scale_s: float) -> tuple[float, float]:
    """(offset s, drift ppm) of a robust line (loss linear beyond ``scale_s``) through the aligned frames."""
    ok = np.isfinite(times) & np.isfinite(cam_t)
    if ok.sum() < 2:
        return float("nan"), float("nan")
    x0 = float(cam_t[ok][0])
    _, s = huber_line(cam_t[ok] - x0, times[ok], scale_s)
    return float(times[ok][0]), (s - 1.0) * 1e6


def _video(session: Session, name: str = "") -> Stream:
    """The video stream to align: the one named (key or name), else the only one; errors name the candidates."""
    videos = session.find_streams(kind=StreamKind.VIDEO)
    have = ", ".join(f"{v.key} ({v.info.frame_shape[1]}x{v.info.frame_shape[0]})" for v in videos) or "none"
    chosen = [v for v in videos if name in (v.key, v.info.name)] if name else videos
    if len(chosen) == 1:
        return chosen[0]
    if name:
        raise SyncError(f"{session.path}: no video stream {name!r}; video streams: {have}")
    if not videos:
        raise SyncError(f"{session.path}: no video stream; nothing to align")
    raise SyncError(f"{session.path}: several video streams ({have}); choose one with --video NAME")


class SyncOptions(TypedDict, total=False):
    """The keyword arguments :func:`synchronize` and every ``sync_*`` mode take (defaults in brackets)."""

    led_roi: LedRoi | None  #: the trigger LED's region [None: found in the video]
    exposure_s: float | None  #: camera exposure (s) [None: from the video header, else estimated]
    params: SyncParams | None  #: every threshold [None: ``SyncParams()``]
    log: Callable[[str], None]  #: receives progress lines [discarded]
    ecg_channel: str  #: ``[STREAM:]LABEL|INDEX`` of the ECG ["": the stored choice, else automatic]
    video_stream: str  #: key or name of the video ["": the only one]


def synchronize(session: Session, mode: SyncMode | str = SyncMode.AUTO, **options: Unpack[SyncOptions]) -> SyncResult:
    """Align the session's video to its ECG in ``mode`` (see the module docstring for the modes).

    Calls :func:`sync_auto`, :func:`sync_strobe`, :func:`sync_pulses` or :func:`sync_lsl`, which
    take the same keyword arguments:

    ``led_roi`` overrides LED detection; ``exposure_s`` overrides the exposure in the video
    header (otherwise estimated from the share of pulse onsets that fall inside an exposure, with
    a warning). ``params`` holds every threshold. ``log`` receives progress lines. ``ecg_channel``
    (``[STREAM:]LABEL|INDEX``) chooses the ECG over the recording's stored choice and the automatic
    rule (:mod:`mecg.session.ecg_channel`: an ECG stream, or an EXG/EEG stream's ECG channel);
    ``video_stream`` (key or name) the video when the session has several. Raises
    :class:`SyncError` when the requested mode is impossible; a doubtful or failed alignment is
    returned with its verdict and reasons instead.
    """
    if mode not in MODES:
        raise SyncError(f"unknown sync mode {mode!r}; choose one of {', '.join(MODES)}")
    return _BY_MODE[SyncMode(mode)](session, **options)


def sync_strobe(session: Session, **options: Unpack[SyncOptions]) -> SyncResult:
    """Strobe mode: frames at their exposure edges on the STROBE channel, numbered by the trigger pulses.

    Camera segments without enough strobe edges (below ``params.min_strobe_share``) are placed by
    the pulse fit. Raises :class:`SyncError` without a STROBE channel or when neither fit works.
    Arguments as in :func:`synchronize`.
    """
    run = _begin(session, **options)
    inp, params, pulses = run.inp, run.params, run.pulse_stage()
    if inp.strobe_t.size < 2:
        raise SyncError(
            f"strobe mode needs the camera's exposure output on an amplifier channel named STROBE; found "
            f"{inp.strobe_t.size} edges for {inp.video.sample_count} frames"
        )
    strobe_fit, share, problem = run.strobe_fit(pulses)
    if strobe_fit is None:
        raise SyncError(f"cannot align with the strobe: {problem or pulses.problem}")
    return _result(inp, pulses, _hardware_placement(inp, strobe_fit, pulses.fit), share, params, fallback=False)


def sync_pulses(session: Session, **options: Unpack[SyncOptions]) -> SyncResult:
    """Pulses mode: the trigger LED's edges in the video matched to the TRIG channel's edges.

    Raises :class:`SyncError` when no LED is found or too few pulses pair. Arguments as in
    :func:`synchronize`.
    """
    run = _begin(session, **options)
    inp, params, pulses = run.inp, run.params, run.pulse_stage()
    if pulses.fit is None:
        raise SyncError(f"cannot align with trigger pulses: {pulses.problem}")
    return _result(inp, pulses, _hardware_placement(inp, None, pulses.fit), {}, params, fallback=False)


def sync_lsl(session: Session, **options: Unpack[SyncOptions]) -> SyncResult:
    """LSL mode: software clocks only (tens of ms off by the devices' latencies; always warned).

    ``led_roi`` and ``log`` are accepted for a uniform call and not used. Arguments as in
    :func:`synchronize`.
    """
    run = _begin(session, **options)
    inp = run.inp
    return _result(
        inp, _PulseStage(inp.exposure_s, run.led_roi), _lsl_placement(inp, None), {}, run.params, fallback=False
    )


def sync_auto(session: Session, **options: Unpack[SyncOptions]) -> SyncResult:
    """The best mode the recording supports: strobe, else pulses, else LSL clocks (with the reason).

    Never raises for a missing channel or LED; the fallback and its cause are in the warnings and
    the verdict. Arguments as in :func:`synchronize`.
    """
    run = _begin(session, **options)
    inp, params, pulses = run.inp, run.params, run.pulse_stage()
    strobe_fit: JointFit | None = None
    share: dict[int, float] = {}
    if inp.strobe_t.size >= 2:
        strobe_fit, share, _ = run.strobe_fit(pulses)
    if strobe_fit is not None or pulses.fit is not None:
        return _result(inp, pulses, _hardware_placement(inp, strobe_fit, pulses.fit), share, params, fallback=False)
    fallback = bool(inp.trig_t.size >= params.min_pulses)
    return _result(inp, pulses, _lsl_placement(inp, pulses.problem), share, params, fallback=fallback)


_BY_MODE: dict[SyncMode, Callable[..., SyncResult]] = {
    SyncMode.AUTO: sync_auto,
    SyncMode.STROBE: sync_strobe,
    SyncMode.PULSES: sync_pulses,
    SyncMode.LSL: sync_lsl,
}


# -- what the modes share -------------------------------------------------------------------------
@dataclass
class _Inputs:
    """The two streams, their time bases and the trigger and strobe edges on the provisional ECG clock."""

    video: Stream
    ecg: Stream
    ecg_column: int
    ecg_label: str
    fps: float  # nominal frame rate (Hz)
    fs: float  # nominal ECG rate (Hz)
    b: _Bases
    warnings: list[str]
    trig: np.ndarray | None  # the TRIG channel
    trig_t: np.ndarray  # its rising edges (s) ...
    trig_seg: np.ndarray  # ... and their ECG segments
    strobe_t: np.ndarray  # the STROBE channel's rising edges (s) ...
    strobe_seg: np.ndarray  # ... and their ECG segments
    exposure_s: float | None  # given, else from the video header


@dataclass
class _PulseStage:
    """The trigger-pulse analysis: the camera's LED pulses and the joint pulse fit (or why there is none)."""

    exposure_s: float | None
    roi: LedRoi | None = None
    cam: _CameraPulses = field(default_factory=lambda: _CameraPulses.empty())
    trig_fall: np.ndarray = field(default_factory=lambda: np.zeros(0))  # per trigger rise: its fall, NaN unknown
    fit: JointFit | None = None
    paired: int = 0
    problem: str = ""


@dataclass
class _Placement:
    """Every frame's time on the ECG clock and how it was found."""

    mode: SyncMode  # the mode that placed the frames (strobe, pulses or lsl)
    times: np.ndarray  # ECG-clock time (s) per frame; NaN: not aligned
    method: np.ndarray  # METHOD_CODES value per frame
    vsegs: np.ndarray  # per camera segment: start, stop, method code, pulses matched
    used: JointFit | None  # the fit that placed most frames (None for LSL)
    clock: EcgClock  # the ECG segments' placement


@dataclass
class _Run:
    """One alignment's inputs and options, as every mode starts it."""

    inp: _Inputs
    params: SyncParams
    led_roi: LedRoi | None
    log: Callable[[str], None]

    def pulse_stage(self) -> _PulseStage:
        """The trigger-pulse analysis (:func:`_pulse_stage`) with this run's LED and log."""
        return _pulse_stage(self.inp, self.led_roi, self.params, self.log)

    def strobe_fit(self, pulses: _PulseStage) -> tuple[JointFit | None, dict[int, float], str]:
        """The STROBE edges fitted to the frames (:func:`_strobe_fit`), numbered by ``pulses``' fit."""
        inp = self.inp
        return _strobe_fit(inp.b, inp.strobe_t, inp.strobe_seg, pulses.fit, inp.fps, inp.fs, self.params)


def _begin(
    session: Session,
    *,
    led_roi: LedRoi | None = None,
    exposure_s: float | None = None,
    params: SyncParams | None = None,
    log: Callable[[str], None] = lambda _m: None,
    ecg_channel: str = "",
    video_stream: str = "",
) -> _Run:
    """Read the session's streams and edges for a ``sync_*`` mode; the defaults of :class:`SyncOptions` are here."""
    params = params or SyncParams()
    return _Run(_inputs(session, params, ecg_channel, video_stream, exposure_s), params, led_roi, log)


def _inputs(
    session: Session, params: SyncParams, ecg_channel: str, video_stream: str, exposure_s: float | None
) -> _Inputs:
    video = _video(session, video_stream)
    ecg, ecg_ch = ecg_stream(session, ecg_channel)
    if video.sample_count < 2 or ecg.sample_count < 2:
        raise SyncError(f"{session.path}: the video or the ECG stream is (nearly) empty; nothing to align")
    fps, fs = video.info.nominal_srate_hz, ecg.info.nominal_srate_hz
    if not (np.isfinite(fps) and np.isfinite(fs) and fps > 0 and fs > 0):
        raise SyncError(f"{session.path}: the video and ECG streams must declare their nominal rates")
    b = _bases(video, ecg, params)
    warnings: list[str] = []
    for what, tb in (("video", b.video), ("ECG", b.ecg)):
        s = tb.summary()
        if s["segments"] > 1 or s["nan_timestamps"]:
            warnings.append(
                f"{what}: {s['segments']} segments ({s['gaps']} gaps, {s['gap_total_s']:.2f} s; {s['resets']} clock "
                f"resets; {s['drops']} runs of lost samples; {s['nan_timestamps']} NaN timestamps)"
            )
    if b.unsure_frames:
        warnings.append(
            f"video: {b.unsure_frames} frames next to dropped frames or at the end of a camera segment came so late "
            "that their frame number is unsure (one period either way): their time is NaN"
        )
    trig = _channel(ecg, "TRIG")
    trig_t, trig_seg = _edges(b, trig)
    strobe_t, strobe_seg = _edges(b, _channel(ecg, "STROBE"))
    exp = exposure_s if exposure_s is not None else header_exposure_s(video)
    return _Inputs(
        video, ecg, ecg_ch.column, ecg_ch.label, fps, fs, b, warnings, trig, trig_t, trig_seg, strobe_t, strobe_seg, exp
    )


def _pulse_stage(inp: _Inputs, led_roi: LedRoi | None, params: SyncParams, log: Callable[[str], None]) -> _PulseStage:
    """Find the LED (unless given), read its pulses and fit them to the TRIG channel's pulses."""
    out = _PulseStage(inp.exposure_s, led_roi)
    if not inp.trig_t.size:
        out.problem = (
            f"the ECG stream has no TRIG channel with pulses (channels: {', '.join(inp.ecg.info.channel_labels)})"
        )
        return out
    video = inp.video
    if out.roi is None:
        log("looking for the trigger LED in the video ...")
        out.roi, out.problem = _pick_led(video, inp.b.cam_t, np.sort(inp.trig_t), out.exposure_s, params)
    if out.roi is None:
        return out
    roi = out.roi
    log(f"LED at x={roi.x} y={roi.y} {roi.w}x{roi.h}; reading its brightness in {video.sample_count} frames ...")
    levels, _, _ = led_levels(led_signal(_chunks(video, rows=_rows_for([roi])), roi))
    if out.exposure_s is None:
        out.exposure_s = estimate_exposure(levels, inp.fps)
        inp.warnings.append(
            f"camera exposure unknown (not in the stream header); estimated {out.exposure_s * 1e3:.2f} ms from the "
            "LED onsets: pass --exposure-ms for a sure result"
        )
    out.cam = _camera_pulses(levels, inp.b, out.exposure_s)
    out.trig_fall = trig_fall = _falls_after(inp.b, inp.trig, inp.trig_t, inp.trig_seg)
    out.fit, out.paired, out.problem = _pulse_fit(out.cam, inp.trig_t, trig_fall, inp.trig_seg, inp.fs, params)
    return out


def _hardware_placement(inp: _Inputs, strobe_fit: JointFit | None, pulse_fit: JointFit | None) -> _Placement:
    """Frames of each camera segment by the strobe fit where it reaches, else by the pulse fit."""
    b = inp.b
    n = inp.video.sample_count
    times = np.full(n, np.nan)
    method = np.zeros(n, dtype=np.uint8)
    vsegs = np.zeros((len(b.video.segments), 4))
    used = strobe_fit if strobe_fit is not None else pulse_fit
    assert used is not None
    for v, seg in enumerate(b.video.segments):
        sl = slice(seg.start, seg.stop)
        if strobe_fit is not None and v in strobe_fit.intercepts:
            times[sl], method[sl] = strobe_fit.predict(v, b.cam_t[sl]), METHOD_CODES[SyncMode.STROBE]
        elif pulse_fit is not None and v in pulse_fit.intercepts:
            times[sl], method[sl] = pulse_fit.predict(v, b.cam_t[sl]), METHOD_CODES[SyncMode.PULSES]
        vsegs[v] = [seg.start, seg.stop, method[seg.start], pulse_fit.per_segment_count.get(v, 0) if pulse_fit else 0]
    if strobe_fit is not None and pulse_fit is not None:
        merged = dict(pulse_fit.corrections)
        merged.update(strobe_fit.corrections)
        clock = _corrected_clock(b.clock, JointFit(1.0, {}, merged, np.zeros(0), np.zeros(0), Observations.empty()))
    else:
        clock = _corrected_clock(b.clock, used)
    mode = SyncMode.STROBE if strobe_fit is not None else SyncMode.PULSES
    return _Placement(mode, times, method, vsegs, used, clock)


def _lsl_placement(inp: _Inputs, fallback_reason: str | None) -> _Placement:
    """Frames by LSL clocks; ``fallback_reason``: why ``auto`` found no hardware alignment (None: asked for)."""
    b = inp.b
    if fallback_reason is not None:
        inp.warnings.append(f"no hardware alignment ({fallback_reason}); fell back to LSL clocks")
    inp.warnings.append(
        "LSL-only alignment cannot see device latencies: expect errors of tens of ms, "
        "too coarse for 0.5 s ME windows at 150 fps"
    )
    times = _lsl_times(b, inp.fs)
    method = np.zeros(inp.video.sample_count, dtype=np.uint8)
    method[np.isfinite(times)] = METHOD_CODES[SyncMode.LSL]
    vsegs = np.zeros((len(b.video.segments), 4))
    for v, seg in enumerate(b.video.segments):
        vsegs[v] = [seg.start, seg.stop, METHOD_CODES[SyncMode.LSL], 0]
    return _Placement(SyncMode.LSL, times, method, vsegs, None, b.clock)


def _result(
    inp: _Inputs,
    pulses: _PulseStage,
    p: _Placement,
    strobe_share: dict[int, float],
    params: SyncParams,
    *,
    fallback: bool,
) -> SyncResult:
    """Drop frames in ECG gaps, measure offset, drift and uncertainty, judge, and build the result.

    ``fallback``: ``auto`` fell back to LSL clocks although the TRIG channel had enough pulses.
    """
    b, used, pulse_fit = inp.b, p.used, pulses.fit
    times, method, vsegs = p.times, p.method, p.vsegs
    n = inp.video.sample_count
    warnings = inp.warnings
    # frames whose time falls between two ECG segments: no ECG there, and no time either
    gap = p.clock.in_gap(times)
    times[gap] = np.nan
    method[gap | np.isnan(times)] = METHOD_CODES["none"]  # and frames with no time (an unsure frame number)
    if used is not None:  # offset: the ECG time at the first aligned camera segment's first frame
        first_v = min(used.intercepts)
        offset_s, drift = float(used.predict(first_v, b.cam_t[b.video.segments[first_v].start])), used.drift_ppm
    else:
        offset_s, drift = _line_of(b.cam_t, times, params.line_scale_s)

    max_obs = params.uncertainty_max_obs
    uncertainty = _uncertainty(used, b, params.rules.max_drift_ppm, max_obs=max_obs) if used is not None else None
    by_pulses = {v for v in range(len(b.video.segments)) if vsegs[v, 2] == METHOD_CODES[SyncMode.PULSES]}
    if p.mode == SyncMode.STROBE and pulse_fit is not None and by_pulses:  # camera segments the strobe did not reach
        other = _uncertainty(pulse_fit, b, params.rules.max_drift_ppm, by_pulses, max_obs=max_obs)
        uncertainty = float("nan") if np.isnan(other) or np.isnan(uncertainty) else max(uncertainty, other)
    hardware = p.mode != SyncMode.LSL
    unaligned = []
    if hardware:
        for v, seg in enumerate(b.video.segments):
            if method[seg.start : seg.stop].max(initial=0) == 0 and not gap[seg.start : seg.stop].all():
                unaligned.append(
                    f"camera segment {v} (frames {seg.start}-{seg.stop - 1}) has too few trigger pulses: not aligned"
                )
    explained = None
    if pulse_fit is not None:
        explained = (
            pulses.paired,
            _expected_pulses(pulses.cam, inp.trig_t, pulses.trig_fall, inp.trig_seg, pulse_fit, b, pulses.exposure_s),
        )
    j: Judgement = judge(
        hardware=hardware,
        fps=inp.fps,
        drift_ppm=drift,
        frames_total=n,
        frames_aligned=int(np.isfinite(times).sum()),
        frames_in_ecg_gap=int(gap.sum()),
        residual_max_ms=used.max_s * 1e3 if used else None,
        uncertainty_ms=uncertainty,
        pulses_explained=explained,
        unaligned_segments=unaligned,
        strobe_shares=[(f"camera segment {v}", s) for v, s in strobe_share.items()]
        if p.mode == SyncMode.STROBE
        else [],
        fallback_with_pulses=fallback,
        rules=params.rules,
    )
    if gap.any():
        warnings.append(f"{int(gap.sum())} frames fall in ECG gaps: no ECG there, their time is NaN")
    res = SyncResult(
        mode=p.mode,
        frame_time_ecg_s=times,
        offset_ms=offset_s * 1e3,
        drift_ppm=float(drift),
        pulses_video=int(pulses.cam.lo.size),
        pulses_ecg=int(inp.trig_t.size),
        pulses_matched=pulses.paired,
        residual_rms_ms=used.rms_s * 1e3 if used else None,
        residual_max_ms=used.max_s * 1e3 if used else None,
        video_stream=inp.video.key,
        ecg_stream=inp.ecg.key,
        exposure_s=pulses.exposure_s,
        ecg_column=inp.ecg_column,
        ecg_channel=inp.ecg_label,
        led_roi=pulses.roi,
        strobe_edges=int(inp.strobe_t.size),
        warnings=warnings,
        verdict=j.verdict,
        reasons=j.reasons,
        uncertainty_ms=uncertainty,
        frame_method=method,
        frames_in_ecg_gap=int(gap.sum()),
        ecg_clock=p.clock,
        video_segments=vsegs,
        video_timebase=b.video.summary(),
        ecg_timebase=b.ecg.summary(),
    )
    if pulse_fit is not None:
        o = pulse_fit.observations
        res.matched_camera_s = 0.5 * (o.cam_lo + o.cam_hi)
        res.matched_ecg_s = 0.5 * (o.ecg_lo + o.ecg_hi) + np.array(
            [pulse_fit.corrections.get(int(s), 0.0) for s in o.ecg_seg]
        )
        res.residuals_s = pulse_fit.residuals_s
        res.midpoint_residuals_s = pulse_fit.midpoint_residuals_s
        res.interval_halfwidth_s = pulse_fit.slope * 0.5 * (o.cam_hi - o.cam_lo) + 0.5 * (o.ecg_hi - o.ecg_lo)
    return res


def _expected_pulses(
    cam: _CameraPulses,
    trig_t: np.ndarray,
    trig_fall: np.ndarray,
    trig_seg: np.ndarray,
    fit: JointFit,
    b: _Bases,
    exposure_s: float | None,
) -> int:
    """Pulses both devices should have seen: the fewer of camera and amplifier pulses inside the aligned span.

    An amplifier pulse (rise to fall, ECG time) that no recorded frame's exposure overlaps was invisible to
    the camera (frames it skipped at the source: a loaded camera once skipped 9 frames over a 40 ms pulse)
    and is not expected; one whose fall is unknown is.
    """
    segs = set(fit.intercepts)
    in_cam = np.isin(cam.seg, list(segs))
    if not in_cam.any():
        return 0
    corr = np.array([fit.corrections.get(int(s), 0.0) for s in trig_seg])
    true_t, fall = trig_t + corr, trig_fall + corr
    in_span = np.zeros(true_t.size, dtype=bool)
    starts = []  # ECG time of every recorded exposure's start (an unsure frame has no camera time)
    for v in segs:
        x = b.cam_t[b.video.segments[v].start : b.video.segments[v].stop]
        e = fit.predict(v, x[np.isfinite(x)])
        if e.size:  # the first and last frame with a camera time
            in_span |= (true_t >= e[0]) & (true_t <= e[-1])
            starts.append(e)
    seen = np.ones(true_t.size, dtype=bool)
    if starts:  # seen: the last exposure starting before the fall ends after the rise (an unknown fall: expected)
        t0 = np.sort(np.concatenate(starts))
        j = np.searchsorted(t0, fall) - 1
        seen = ~np.isfinite(fall) | ((j >= 0) & (t0[np.maximum(j, 0)] + (exposure_s or 0.0) > true_t))
    return int(min(in_cam.sum(), (in_span & seen).sum()))


def _uncertainty(
    fit: JointFit, b: _Bases, max_drift_ppm: float, segments: set[int] | None = None, *, max_obs: int = 4000
) -> float:
    """How sure the fitted frame times are (ms): how far from the fit's answer any clock line consistent
    with the observations puts the first and last frame of each (camera segment, ECG segment)
    stretch among the ECG samples, plus the slack the observations needed to be consistent (see
    :func:`mecg.sync.joint.feasible_range_s`). NaN when no clock line meets the observations."""
    clock = _corrected_clock(b.clock, fit)
    at: list[tuple[int, int, float]] = []
    for v in fit.intercepts:
        if segments is not None and v not in segments:
            continue
        seg = b.video.segments[v]
        x = b.cam_t[seg.start : seg.stop]
        x = x[np.isfinite(x)]
        s = clock.segment_at(fit.predict(v, x))
        for k in np.unique(s):
            xs = x[s == k]
            at += [(v, int(k), float(xs[0])), (v, int(k), float(xs[-1]))]
    obs = fit.observations
    if len(obs) > max_obs:  # an hour of strobe edges: fewer constraints only widen the bound (stays honest)
        obs = obs.take(np.unique(np.linspace(0, len(obs) - 1, max_obs).round().astype(np.int64)))
    bound, slack = feasible_range_s(obs, at, fit, max_drift_ppm=max_drift_ppm)
    return (bound + slack) * 1e3


def write_result(session: Session, res: SyncResult) -> None:
    """Store ``res`` in the session's /sync group (beside the recording; see the session API)."""
    rep = res.report()
    flat = {k: v for k, v in rep.items() if not isinstance(v, dict | list) and k != "led_roi"}
    attrs = {k: (np.nan if v is None else v) for k, v in flat.items()}
    attrs["warnings"] = "\n".join(res.warnings)
    attrs["reasons"] = "\n".join(res.reasons)
    attrs["led_roi"] = np.array(rep["led_roi"] or [-1, -1, -1, -1], dtype=np.int64)
    attrs["created_time"] = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    attrs["clock"] = (
        "ECG clock: sample k of ECG segment s at t0_s[s] + (k - first_sample[s]) / nominal_srate_hz seconds "
        "(see ecg_segments); NaN frame times: not aligned"
    )
    import json

    attrs["timebase_json"] = json.dumps(
        {"video": rep["video"], "ecg": rep["ecg"], "frames_by_method": rep["frames_by_method"]}
    )
    clock = res.ecg_clock
    arrays = {
        "frame_time_ecg_s": res.frame_time_ecg_s,
        "frame_method": res.frame_method.astype(np.uint8),
        "ecg_segments": clock.table() if clock is not None else np.zeros((0, 3)),
        "video_segments": np.asarray(res.video_segments, dtype=np.float64).reshape(-1, 4),
        "matched_pulses_s": np.column_stack([res.matched_camera_s, res.matched_ecg_s])
        if res.matched_camera_s.size
        else np.zeros((0, 2)),
        "residuals_s": res.residuals_s,
    }
    session.write_group("sync", attrs, arrays)
