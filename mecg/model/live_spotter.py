"""Live spotting: the baseline or CMCL-Net (with the CCF) on the streams while they are recorded.

:class:`LiveSpotter` is fed the video frames and the ECG as they arrive (by
:class:`mecg.acquire.live_analysis.LiveAnalysis` beside a recorder, or by :func:`replay_live` from a
recorded file) and returns spotted candidates as soon as they are decided, each with the heart-rate
slope the filter saw. Everything it decides is a function of the samples alone (their values and
timestamps, not when they arrived or in which chunks), so replaying a recorded file gives exactly
what was spotted while it was recorded, unless analysis work was skipped under load (counted) or the
ECG stalled for longer than ``ecg_wait_s``.

**Causal variants** of the offline spotters (:mod:`mecg.model.baseline`, :mod:`mecg.model.spotter`),
which use whole-session statistics:

* front end: the same code (:mod:`mecg.model.frontend`) run frame by frame in one piece; the face is
  found in the first ``probe_s`` of video (offline: frames spread over the whole video);
* baseline: the blink test's median eye motion is over the frames so far (updated each second);
  the threshold ``mean + p (max - mean)`` is over the smoothed curve so far, up to ``k`` frames after
  the peak (none before ``warmup_s`` of video: peaks of the warm-up are decided when it ends); a
  peak is a local maximum not beaten by another one within ``k`` frames (as ``find_peaks(distance=k)``);
  an ME inside a macro-expression is dropped only when that MaE was decided first;
* CMCL-Net: the flow features are scaled by their median over the first ``warmup_s`` (offline: the
  session's); the ECG inputs of a window see the ECG up to ``window_lookahead_s`` after its centre
  (the band-pass runs on that stretch; later samples repeat the last one, as offline at the end of
  a recording), and the HR curve, mean HR and HRV the R-peaks found so far; the threshold is the
  checkpoint's, a fixed number;
* CCF: R-peaks are found every ``ecg_step_s`` on the last ``ecg_window_s`` of ECG (NeuroKit2, as
  offline) and kept once ``ecg_margin_s`` old; a candidate is decided when the ECG has reached
  ``ecg_lookahead_s`` after its apex: its HRS is the largest HR slope within 0.25 s of the apex on
  the HR curve of the peaks found by then, the trial mean HRS is the mean over those peaks (the
  running mean). With fewer than ``min_beats`` beats the candidate is kept, marked ``ccf="warm-up"``.

All times are on the recorder's LSL clock: each stream's timestamps plus its first measured clock offset.

Candidates come out in the order they are decided, not strictly in apex order: an MaE's peak test
looks further ahead than an ME's, so an ME whose apex is a little later than a nearby MaE's can be
decided first (on synthetic 12 s trials, one pair per trial, 0.03-0.1 s apart, whatever the chunk
size). The stored markers keep that order, each stamped with its candidate's apex time, so their
timestamps can step back by that much; readers that need time order sort them (the NWB export does).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from mecg.errors import MecgError
from mecg.model.baseline import BaselineParams
from mecg.model.evaluate import evaluate
from mecg.model.face import REFERENCE_ROI, ROI_NAMES, FaceLayout, FaceNotFoundError, find_layout
from mecg.model.frontend import FrontEndParams, _Cropper, _flow_fn, _roi_features, default_k
from mecg.model.heart_rate import LIVE_PEAK_MARGIN_S, EcgError, hr_curve, r_peaks
from mecg.model.spots import Spot
from mecg.session import StreamInfo, StreamKind, open_session
from mecg.session.ecg_channel import stream_ecg_column
from mecg.session.live_events import EVENTS_TYPE, LiveEvent

if TYPE_CHECKING:
    from mecg.model.checkpoint import Checkpoint

CcfState = Literal["applied", "off", "no ECG", "warm-up"]


@dataclass(frozen=True)
class LiveSpotParams:
    """How to spot live (times in s).

    ``method``: ``"baseline"`` or ``"cmclnet"`` (then ``checkpoint`` is needed); ``p``: the baseline's
    threshold fraction; ``ccf_eta``: the CCF factor (None: HRS reported, nothing rejected);
    ``warmup_s``: video before the running statistics are used; ``probe_s``: video in which the face
    is looked for; ``ecg_lookahead_s``: ECG after an apex waited for (the CCF's HR slope there);
    ``window_lookahead_s``: ECG after a CMCL-Net window's centre waited for before it is scored (None:
    ``ecg_lookahead_s``; offline a window sees 2 s, and a candidate's decision waits for this plus the
    score curve's peak distance, so it sets CMCL-Net's latency);
    ``ecg_wait_s``: how far the video may run ahead of a stalled ECG before candidates are decided
    without it; ``ecg_window_s`` / ``ecg_step_s`` / ``ecg_margin_s``: the R-peak search; ``min_beats``:
    beats needed before the CCF rejects anything; ``face_box``: ``(x, y, w, h)`` px instead of detection.
    """

    method: Literal["baseline", "cmclnet"] = "baseline"
    p: float = 0.55
    ccf_eta: float | None = None
    warmup_s: float = 5.0
    probe_s: float = 1.0
    ecg_lookahead_s: float = 1.5
    window_lookahead_s: float | None = None
    ecg_wait_s: float = 3.0
    ecg_window_s: float = 4.0
    ecg_step_s: float = 0.25
    ecg_margin_s: float = LIVE_PEAK_MARGIN_S
    min_beats: int = 8
    face_box: tuple[int, int, int, int] | None = None


@dataclass(frozen=True)
class LiveCandidate:
    """One live-spotted candidate: the spot and what the CCF saw.

    ``apex_time_s`` / ``offset_time_s``: its apex and offset frames on the recorder's LSL clock (s);
    ``hrs_apex_bpm_per_s``: HR slope at the apex (None without ECG); ``mean_hrs_bpm_per_s``: the
    trial mean HRS so far; ``eta``: the CCF factor (None: no filter); ``ccf``: ``"applied"``,
    ``"off"`` (no eta), ``"no ECG"`` or ``"warm-up"`` (too few beats yet); ``method``; ``in_warmup``:
    its apex lies in the first ``warmup_s`` of video, so it was decided when the warm-up ended.
    """

    spot: Spot
    apex_time_s: float
    offset_time_s: float
    hrs_apex_bpm_per_s: float | None
    mean_hrs_bpm_per_s: float | None
    eta: float | None
    ccf: CcfState
    method: str
    in_warmup: bool = False

    def to_json(self) -> str:
        """The marker text stored in the session's events stream (one JSON object)."""
        s = self.spot
        return json.dumps(
            {
                "event": "spotted_candidate",
                "type": s.type,
                "onset": s.onset_frame,
                "apex": s.apex_frame,
                "offset": s.offset_frame,
                "score": round(float(s.score), 6),
                "kept_by_ccf": bool(s.kept_by_ccf),
                "hrs_apex_bpm_per_s": self.hrs_apex_bpm_per_s,
                "mean_hrs_bpm_per_s": self.mean_hrs_bpm_per_s,
                "eta": self.eta,
                "ccf": self.ccf,
                "method": self.method,
                "apex_time_s": self.apex_time_s,
                "offset_time_s": self.offset_time_s,
                "in_warmup": self.in_warmup,
            }
        )

    @classmethod
    def from_json(cls, text: str, session: str) -> LiveCandidate:
        """Read a marker written by :meth:`to_json` (``session``: the recording's name)."""
        d = json.loads(text)
        spot = Spot(
            session,
            int(d["onset"]),
            int(d["apex"]),
            int(d["offset"]),
            float(d["score"]),
            d["type"],
            bool(d["kept_by_ccf"]),
            d["hrs_apex_bpm_per_s"],
        )
        return cls(
            spot,
            float(d["apex_time_s"]),
            float(d["offset_time_s"]),
            d["hrs_apex_bpm_per_s"],
            d["mean_hrs_bpm_per_s"],
            d["eta"],
            d["ccf"],
            d["method"],
            bool(d.get("in_warmup", False)),
        )

    def describe(self, start_lsl: float, produced_lsl: float | None = None) -> str:
        """One line for people: when (s since ``start_lsl``), frames, score, the HRS the filter saw and its
        verdict, and (with ``produced_lsl``) how long after its offset it was shown."""
        s = self.spot
        hrs, mean = self.hrs_apex_bpm_per_s, self.mean_hrs_bpm_per_s
        heart = "no HRS" if hrs is None else f"HRS {hrs:.2f} bpm/s" + ("" if mean is None else f" (mean {mean:.2f})")
        if self.ccf == "applied" and s.type == "ME":
            verdict = ("kept" if s.kept_by_ccf else "rejected by the CCF") + f" (eta {self.eta:g})"
        else:
            verdict = {"off": "no filter", "no ECG": "no ECG", "warm-up": "CCF warming up"}.get(self.ccf, self.ccf)
        text = (
            f"{s.type} at {self.apex_time_s - start_lsl:.2f} s (frames {s.onset_frame}-{s.offset_frame}, "
            f"score {s.score:.3g}), {heart}, {verdict}"
        )
        if produced_lsl is not None and math.isfinite(self.offset_time_s):
            text += f"; {produced_lsl - self.offset_time_s:.2f} s after its offset"
        return text + (" (warm-up)" if self.in_warmup else "")

    def same_as(self, other: LiveCandidate, tol: float = 1e-6) -> bool:
        """Same frames, type, decision and (within ``tol``) score and HRS."""
        a, b = self.spot, other.spot
        if (a.onset_frame, a.apex_frame, a.offset_frame, a.type, a.kept_by_ccf) != (
            b.onset_frame,
            b.apex_frame,
            b.offset_frame,
            b.type,
            b.kept_by_ccf,
        ):
            return False
        if abs(a.score - b.score) > tol * max(1.0, abs(a.score)):
            return False
        h1, h2 = self.hrs_apex_bpm_per_s, other.hrs_apex_bpm_per_s
        return (h1 is None) == (h2 is None) and (h1 is None or abs(h1 - h2) <= tol * max(1.0, abs(h1)))


class _Grow:
    """A growing array of rows (amortised appends)."""

    def __init__(self, shape: tuple[int, ...], dtype: type | np.dtype) -> None:
        self.a = np.zeros((1024, *shape), dtype=dtype)
        self.n = 0

    def append(self, row: object) -> None:
        if self.n == len(self.a):
            self.a = np.concatenate([self.a, np.zeros_like(self.a)])
        self.a[self.n] = row
        self.n += 1

    def extend(self, rows: np.ndarray) -> None:
        while self.n + len(rows) > len(self.a):
            self.a = np.concatenate([self.a, np.zeros_like(self.a)])
        self.a[self.n : self.n + len(rows)] = rows
        self.n += len(rows)

    @property
    def v(self) -> np.ndarray:
        return self.a[: self.n]


# -- the front end, frame by frame ------------------------------------------------------------------
class LiveFrontEnd:
    """The front end (:mod:`mecg.model.frontend`) fed one frame at a time.

    ``roi`` grows by one row per frame once its partner ``k`` frames later has arrived (skipped or
    missing frames give zero rows, as the last ``k`` frames of a video do); ``crops`` keeps the last
    ``crop_keep`` frames' flow crops (ring, index ``i % crop_keep``).
    """

    def __init__(self, params: FrontEndParams, fps: float, probe_s: float = 1.0, crop_keep: int = 0) -> None:
        self.params, self.fps = params, fps
        self.k = params.k_frames
        self.flow = _flow_fn(params.method)
        self.layout: FaceLayout | None = FaceLayout.from_face_box(*params.face_box) if params.face_box else None
        self.cropper: _Cropper | None = None
        self.boxes: np.ndarray | None = None
        self.probe_n = max(1, round(probe_s * fps))
        self.waiting: list[tuple[int, np.ndarray | None]] = []
        self.ring: dict[int, np.ndarray] = {}
        self.roi = _Grow((len(ROI_NAMES), 4), np.float32)
        self.crop_keep = crop_keep
        shape = (crop_keep, len(ROI_NAMES), 2, params.patch, params.patch)
        self.crops = np.zeros(shape, dtype=np.float16) if crop_keep else None
        self.seen = 0  # frames pushed (skipped ones included)
        self.notices: list[str] = []

    def push(self, frame: np.ndarray | None) -> None:
        """The next frame (grey or RGB uint8), or None for a frame that was not handed over."""
        i = self.seen
        self.seen += 1
        if self.cropper is None:
            self.waiting.append((i, frame))
            if self.layout is not None or len(self.waiting) >= self.probe_n:
                self._find_face()
            return
        self._process(i, frame)

    def _find_face(self, final: bool = False) -> None:
        if self.layout is None:
            probes = [f for _, f in self.waiting if f is not None]
            if probes:
                picks = np.linspace(0, len(probes) - 1, min(5, len(probes))).round().astype(int)
                try:
                    self.layout = find_layout([probes[j] for j in picks])
                except FaceNotFoundError:
                    self.layout = None
            if self.layout is None:  # no face yet: these frames get zero features; look again in the next ones
                if not self.notices:
                    self.notices.append(f"no face found in the first {len(self.waiting)} frames; still looking")
                for _ in self.waiting:
                    self._zero_row()
                self.waiting = []
                return
        first = next((f for _, f in self.waiting if f is not None), None)
        if first is None and not final:
            return
        p = self.params
        self.cropper = _Cropper(self.layout, p.crop_size, p.compensate, alpha=min(1.0, 1.0 / (0.3 * self.fps)))
        self.boxes = self.layout.rois_in_crop(p.crop_size)
        if first is not None:
            self.cropper(first)  # the reference crop, as the offline front end takes it
            self.cropper.shift = np.zeros(2)
        waiting, self.waiting = self.waiting, []
        for i, f in waiting:
            self._process(i, f)

    def _zero_row(self) -> None:
        i = self.roi.n
        self.roi.append(0.0)
        if self.crops is not None:
            self.crops[i % self.crop_keep] = 0

    def _process(self, i: int, frame: np.ndarray | None) -> None:
        assert self.cropper is not None and self.boxes is not None
        if frame is not None:
            self.ring[i] = self.cropper(frame)
        src = i - self.k
        if src < self.roi.n:  # frames before the face was found
            self.ring.pop(src, None)
            return
        a, b = self.ring.pop(src, None), self.ring.get(i)
        if a is None or b is None:
            self._zero_row()
            return
        p = self.params
        res = _roi_features(self.flow(a, b), self.boxes, ROI_NAMES.index(REFERENCE_ROI), p.patch, p.compensate)
        feats, crops = res[0], res[1]  # (some versions also return a flow image the live spotter does not use)
        if self.crops is not None:
            self.crops[src % self.crop_keep] = crops
        self.roi.append(feats)

    def finish(self) -> None:
        """End of the video: the frames without a partner get zero rows."""
        if self.cropper is None and self.waiting:
            self._find_face(final=True)
        while self.roi.n < self.seen:
            self._zero_row()
        self.ring.clear()


# -- R-peaks, block by block ------------------------------------------------------------------------
class LiveEcg:
    """R-peaks of an ECG that grows: every ``step_s`` of samples the last ``window_s`` are searched
    (NeuroKit2) and the peaks older than ``margin_s`` are kept, each stamped with the block that found it.

    Times are the samples' LSL timestamps (sender clock, s).
    """

    def __init__(self, srate_hz: float, window_s: float, step_s: float, margin_s: float) -> None:
        self.fs = srate_hz
        self.win = max(round(2.2 * srate_hz), round(window_s * srate_hz))
        self.step = max(1, round(step_s * srate_hz))
        self.margin = round(margin_s * srate_hz)
        self.refractory_s = 0.25
        self.x = _Grow((), np.float64)
        self.t = _Grow((), np.float64)
        self.blocks = 0  # blocks searched
        self.block_end_t: list[float] = []  # timestamp of each block's last sample
        self.block_end: list[int] = []  # samples searched by each block (its end index)
        self.peaks_t: list[float] = []
        self.peak_block: list[int] = []
        self.finished = False

    def feed(self, values: np.ndarray, ts: np.ndarray) -> None:
        self.x.extend(np.asarray(values, dtype=np.float64))
        self.t.extend(np.asarray(ts, dtype=np.float64))
        while (self.blocks + 1) * self.step <= self.x.n:
            self._block((self.blocks + 1) * self.step, self.margin)

    def finish(self) -> None:
        """The last samples: one more search up to the end, keeping every peak found."""
        if not self.finished and self.x.n > self.blocks * self.step:
            self._block(self.x.n, 0)
        self.finished = True

    def _block(self, end: int, margin: int) -> None:
        start = max(0, end - self.win)
        found: np.ndarray = np.zeros(0, dtype=np.int64)
        if end - start >= 2 * self.fs:
            try:
                found = r_peaks(self.x.v[start:end], self.fs) + start
            except EcgError:
                found = np.zeros(0, dtype=np.int64)
        b = self.blocks
        last = self.peaks_t[-1] if self.peaks_t else -math.inf
        for idx in found:
            if idx >= end - margin:
                continue
            t = float(self.t.v[idx])
            if t > last + self.refractory_s:
                self.peaks_t.append(t)
                self.peak_block.append(b)
                last = t
        self.block_end_t.append(float(self.t.v[end - 1]))
        self.block_end.append(end)
        self.blocks += 1

    @property
    def last_t(self) -> float:
        """Timestamp of the last sample searched (s), -inf before any."""
        return self.block_end_t[-1] if self.block_end_t else -math.inf

    def block_reaching(self, t: float) -> int | None:
        """The first searched block whose last sample is at or after ``t`` (sender clock); None if none yet."""
        j = int(np.searchsorted(self.block_end_t, t, side="left"))
        return j if j < len(self.block_end_t) else None

    def peaks_until(self, block: int) -> np.ndarray:
        """Peak times (sender clock, s) found by blocks ``0 .. block``."""
        j = int(np.searchsorted(self.peak_block, block, side="right"))
        return np.asarray(self.peaks_t[:j])


def _hrs_and_mean(peaks: np.ndarray, t: np.ndarray) -> tuple[float | None, float | None]:
    """Largest HR slope at times ``t`` and the mean HRS over the beats (None when too few beats)."""
    if peaks.size < 4:
        return None, None
    curve = hr_curve(peaks)
    d = curve.derivative()
    grid = np.arange(0.5 * (peaks[0] + peaks[1]), 0.5 * (peaks[-1] + peaks[-2]), 0.05)
    mean = float(np.nanmean(np.abs(d(grid)))) if grid.size else None
    at = np.abs(d(t))
    hrs = float(np.nanmax(at)) if np.isfinite(at).any() else None
    return hrs, mean


# -- scorers --------------------------------------------------------------------------------------
def _peak_ok(x: np.ndarray, p: int, dist: int, thr_of: float, end: int) -> bool:
    """``p`` is a local maximum of ``x[:end]`` above ``thr_of`` not beaten by another one within ``dist`` - 1."""
    if p <= 0 or p >= end - 1 or not (x[p - 1] < x[p] >= x[p + 1]) or x[p] < thr_of:
        return False
    lo, hi = max(1, p - dist + 1), min(end - 1, p + dist)
    for q in range(lo, hi):
        if q == p or not (x[q - 1] < x[q] >= x[q + 1]) or x[q] < thr_of:
            continue
        if x[q] > x[p] or (x[q] == x[p] and q < p):
            return False
    return True


class _Curve:
    """A smoothed curve grown sample by sample, with peaks decided ``dist`` samples after them.

    ``left``/``right``: the moving average's reach (as :func:`mecg.model.baseline.moving_average`).
    ``threshold(end)`` gives the height a peak needs when the curve is known up to ``end``.
    """

    def __init__(self, width: int, dist: int) -> None:
        self.left, self.right = width // 2, (width - 1) // 2
        self.dist = dist
        self.src = _Grow((), np.float64)
        self.csum = _Grow((), np.float64)  # csum[i] = sum(src[:i])
        self.csum.append(0.0)
        self.y = _Grow((), np.float64)  # smoothed
        self.ysum = _Grow((), np.float64)
        self.ysum.append(0.0)
        self.ymax = _Grow((), np.float64)
        self.next_peak = 0  # first index not yet decided

    def add(self, value: float) -> None:
        self.src.append(value)
        self.csum.append(self.csum.v[-1] + value)
        while self.y.n + self.right < self.src.n:
            self._smooth_one(self.src.n)

    def _smooth_one(self, n: int) -> None:
        t = self.y.n
        a, b = max(0, t - self.left), min(n, t + self.right + 1)
        v = (self.csum.v[b] - self.csum.v[a]) / (b - a)
        self.y.append(v)
        self.ysum.append(self.ysum.v[-1] + v)
        self.ymax.append(max(v, self.ymax.v[-1]) if self.ymax.n else v)

    def close(self) -> None:
        """End of the source: the last samples are smoothed over what exists."""
        n = self.src.n
        while self.y.n < n:
            self._smooth_one(n)

    def decidable(self, closed: bool) -> int:
        """Peaks below this index can be decided (the curve is known ``dist`` beyond them)."""
        return self.y.n if closed else self.y.n - self.dist


class _BaselineLive:
    """The baseline (:mod:`mecg.model.baseline`) on a growing feature table; see the module docstring."""

    def __init__(self, fps: float, kf: int, params: BaselineParams, warmup: int) -> None:
        self.params, self.kf, self.fps = params, kf, fps
        self.k_me = max(1, round(params.me_length_s * fps / 2))
        self.k_mae = max(self.k_me + 1, round(params.mae_length_s * fps / 2))
        self.warmup = warmup
        idx = {n: i for i, n in enumerate(ROI_NAMES)}
        skip = {REFERENCE_ROI, "eye_r", "eye_l"} if params.mask_eyes else {REFERENCE_ROI}
        self.lower = [idx[n] for n in ROI_NAMES if n not in skip and not n.startswith("brow")]
        self.keep = [idx[n] for n in ROI_NAMES if n not in skip]
        self.eyes = [idx["eye_r"], idx["eye_l"]]
        self.eye = _Grow((), np.float64)
        self.lowmax = _Grow((), np.float64)
        self.keepmax = _Grow((), np.float64)
        self.blink = _Grow((), bool)
        self._med = (0, 0.0)  # (frames the median is over, median)
        self.raw_n = 0
        self.limit = math.inf  # the score's length, once the video's is known
        self.shift = kf // 2
        self.curves = {"MaE": _Curve(2 * self.k_mae + 1, self.k_mae), "ME": _Curve(2 * self.k_me + 1, self.k_me)}
        for c in self.curves.values():
            for _ in range(self.shift):
                c.add(0.0)
        self.mae_spans: list[tuple[int, int]] = []
        self.closed = False

    def _median(self, n: int) -> float:
        block = max(1, round(self.fps))
        m = n if n < block else n // block * block
        if self._med[0] != m:
            self._med = (m, float(np.median(self.eye.v[:m])))
        return self._med[1]

    def add_rows(self, roi: np.ndarray) -> list[tuple[str, int, float]]:
        """New feature rows (in order); returns the peaks decided: ``(type, frame, height)``."""
        out: list[tuple[str, int, float]] = []
        for row in roi:
            mag = row[:, 2].astype(np.float64)
            self.eye.append(mag[self.eyes].max())
            self.lowmax.append(mag[self.lower].max())
            self.keepmax.append(mag[self.keep].max())
            n = self.eye.n
            med = self._median(n)
            e = self.eye.v[-1]
            self.blink.append(bool(e > 3 * med and e > 1.5 * self.lowmax.v[-1]) if self.params.mask_eyes else False)
            while self.raw_n + self.kf < n:
                out += self._raw(self.raw_n, n)
        return out

    def _raw(self, j: int, n: int) -> list[tuple[str, int, float]]:
        b = self.blink.v[max(0, j - self.kf) : min(n, j + self.kf + 1)]
        value = self.lowmax.v[j] if b.any() else self.keepmax.v[j]
        self.raw_n += 1
        for c in self.curves.values():
            if c.src.n < self.limit:  # the score is as long as the video
                c.add(float(value))
        return self._decide()

    def _decide(self) -> list[tuple[str, int, float]]:
        out = []
        for kind, c in self.curves.items():  # MaE first: an ME inside an MaE decided before it is dropped
            end = c.decidable(self.closed)
            if not self.closed and c.y.n < self.warmup:
                continue
            while c.next_peak < end:
                p = c.next_peak
                c.next_peak += 1
                n_stat = max(min(c.y.n, p + c.dist + 1), min(self.warmup, c.y.n))
                mean = c.ysum.v[n_stat] / n_stat
                thr = mean + self.params.p * (c.ymax.v[n_stat - 1] - mean)
                if not _peak_ok(c.y.v, p, c.dist, thr, c.y.n):
                    continue
                k = self.k_mae if kind == "MaE" else self.k_me
                if kind == "ME" and any(a <= p <= b for a, b in self.mae_spans):
                    continue
                if kind == "MaE":
                    self.mae_spans.append((max(0, p - k), p + k))
                out.append((kind, p, float(c.y.v[p])))
        return out

    def close(self, n_frames: int) -> list[tuple[str, int, float]]:
        """End of the video (``n_frames``): the rest of the curve, smoothed over what exists."""
        out: list[tuple[str, int, float]] = []
        self.limit = n_frames
        while self.raw_n < self.eye.n:
            out += self._raw(self.raw_n, self.eye.n)
        for c in self.curves.values():
            c.close()
        self.closed = True
        return out + self._decide()

    def k_of(self, kind: str) -> int:
        return self.k_mae if kind == "MaE" else self.k_me


# -- the spotter ----------------------------------------------------------------------------------
@dataclass
class _Pending:
    """A peak found on the video, waiting for the ECG to be decided."""

    kind: str
    apex: int
    onset: int
    offset: int
    score: float


class LiveSpotter:
    """Spots on streams as they arrive (a :class:`mecg.acquire.live_analysis.LiveAnalyser`).

    Parameters
    ----------
    session : str
        The recording's name (what its spots are labelled with).
    params : LiveSpotParams
        Method, thresholds, warm-up and ECG waits.
    checkpoint : Checkpoint, optional
        The CMCL-Net (``method="cmclnet"``).
    ecg_channel : str
        ``[STREAM:]LABEL|INDEX`` of the ECG (``""``: the automatic rule).
    """

    def __init__(
        self,
        session: str,
        params: LiveSpotParams = LiveSpotParams(),
        checkpoint: Checkpoint | None = None,
        ecg_channel: str = "",
    ) -> None:
        if params.method == "cmclnet" and checkpoint is None:
            raise MecgError("live spotting with CMCL-Net needs a model (a .pt checkpoint from `mecg train`)")
        if params.method == "cmclnet" and checkpoint is not None and checkpoint.preset != "small":
            raise MecgError(
                f"live spotting runs small-preset models; this one is the {checkpoint.preset} preset (whole-face "
                "flow images): spot its recordings afterwards with `mecg spot`, or train with --preset small"
            )
        if checkpoint is not None and params.ccf_eta is not None and checkpoint.spot.get("threshold_ccf") is not None:
            from mecg.model.pipeline import ccf_threshold

            ccf_threshold(checkpoint.spot, params.ccf_eta)  # an eta the model holds no threshold for: refused now
        self.session, self.params, self.ck, self.ecg_channel = session, params, checkpoint, ecg_channel
        import neurokit2  # noqa: F401  (seconds to import: now, not in the middle of a recording)

        self.video_key: str | None = None
        self.ecg_key: str | None = None
        self.ecg_col = 0
        self.offsets: dict[str, float] = {}
        self.candidates: list[LiveCandidate] = []
        self.notices: list[str] = [n for n in [checkpoint.features_notice()] if n] if checkpoint is not None else []
        self.skipped: dict[str, int] = {}
        self.fe: LiveFrontEnd | None = None
        self.scorer: _BaselineLive | _CmclLive | None = None
        self.ecg: LiveEcg | None = None
        self.video_t = _Grow((), np.float64)
        self.pending: list[_Pending] = []
        self.fps = 0.0
        self.frame_shape: tuple[int, ...] = ()
        self.finished = False

    # -- streams ----------------------------------------------------------------------------------
    def add_stream(self, key: str, info: StreamInfo) -> bool:
        """Take the first video stream and the first stream carrying the ECG; ignore the others."""
        if info.kind == StreamKind.VIDEO and self.video_key is None and info.nominal_srate_hz > 0:
            self.video_key, self.fps, self.frame_shape = key, float(info.nominal_srate_hz), tuple(info.frame_shape)
            self._start_video()
            return True
        if info.kind == StreamKind.SIGNAL and self.ecg_key is None and info.nominal_srate_hz > 0:
            col = stream_ecg_column(info, self.ecg_channel, key)
            if col is not None:
                p = self.params
                self.ecg_key, self.ecg_col = key, col
                self.ecg = LiveEcg(info.nominal_srate_hz, p.ecg_window_s, p.ecg_step_s, p.ecg_margin_s)
                return True
        return False

    def _start_video(self) -> None:
        p, fps = self.params, self.fps
        warm = max(1, round(p.warmup_s * fps))
        if p.method == "cmclnet":
            assert self.ck is not None
            if default_k(fps) != self.ck.frontend.k_frames:
                raise MecgError(
                    f"the video is {fps:g} fps but the model was trained on features for k={self.ck.frontend.k_frames} "
                    "frames; train a model for this frame rate or spot live with the baseline"
                )
            fe_params = replace(self.ck.frontend, face_box=p.face_box or self.ck.frontend.face_box)
            self.scorer = _CmclLive(self.ck, fps, warm, self)
            keep = round(20 * fps)
        else:
            fe_params = FrontEndParams(k_frames=default_k(fps), face_box=p.face_box)
            self.scorer = _BaselineLive(fps, fe_params.k_frames, BaselineParams(p=p.p), warm)
            keep = 0
        self.fe = LiveFrontEnd(fe_params, fps, p.probe_s, crop_keep=keep)

    # -- data ---------------------------------------------------------------------------------------
    def clock_offset(self, key: str, offset_s: float) -> list[LiveEvent]:
        """A stream's clock offset: the first one of each stream is used for all its samples."""
        if key not in self.offsets:
            self.offsets[key] = float(offset_s)
            return self._decide_pending()
        return []

    def feed(self, key: str, first: int, data: np.ndarray | list, ts: np.ndarray) -> list[LiveEvent]:
        """Samples ``first ..`` of stream ``key`` with their timestamps (sender clock, s)."""
        if key == self.video_key:
            return self._feed_video(first, data, ts)
        if key == self.ecg_key and self.ecg is not None:  # samples not handed over are simply absent
            x = np.asarray(data)
            self.ecg.feed(x[:, self.ecg_col] if x.ndim == 2 else x, ts)
            return self._decide_pending()
        return []

    def skip(self, key: str, first: int, count: int) -> list[LiveEvent]:
        """Samples recorded but not analysed: video frames count as missing frames, ECG samples are left out."""
        self.skipped[key] = self.skipped.get(key, 0) + count
        if key == self.video_key:
            return self._feed_video(first, [None] * count, None)
        return []

    def _feed_video(self, first: int, data: np.ndarray | list, ts: np.ndarray | None) -> list[LiveEvent]:
        assert self.fe is not None
        while self.fe.seen < first:  # frames never handed over (should not happen: skips are announced)
            self._one_frame(None, math.nan)
        frames: list[np.ndarray | None]
        if isinstance(data, list):
            frames = data
        else:
            arr = np.asarray(data)
            if arr.dtype == np.int8:
                arr = arr.view(np.uint8)
            frames = list(arr.reshape((len(arr), *self.frame_shape)))
        out: list[LiveEvent] = []
        for j, fr in enumerate(frames):
            out += self._one_frame(fr, math.nan if ts is None else float(ts[j]))
        return out + self._decide_pending()

    def _one_frame(self, frame: np.ndarray | None, t: float) -> list[LiveEvent]:
        assert self.fe is not None and self.scorer is not None
        self.video_t.append(t)
        n0 = self.fe.roi.n
        self.fe.push(frame)
        if self.fe.notices:
            self.notices += self.fe.notices
            self.fe.notices = []
        if self.fe.roi.n > n0:
            return self._found(self.scorer.add_rows(self.fe.roi.v[n0:]))
        return []

    def _found(self, peaks: list[tuple[str, int, float]]) -> list[LiveEvent]:
        assert self.scorer is not None
        for kind, apex, score in peaks:
            if isinstance(self.scorer, _BaselineLive):
                k = self.scorer.k_of(kind)
                on, off = max(0, apex - k), apex + k
            else:
                on, off = self.scorer.edges(apex)
            if self.finished:
                off = min(off, self.video_t.n - 1)
            self.pending.append(_Pending(kind, apex, on, off, score))
        return []

    # -- decisions ----------------------------------------------------------------------------------
    def _frame_time(self, i: int) -> float:
        """Frame ``i``'s time on the recorder's clock (NaN for a frame never seen, or before the offset is known)."""
        if self.video_key not in self.offsets or i >= self.video_t.n:
            return math.nan
        t = self.video_t.v[max(0, i)]
        if not np.isfinite(t):  # a skipped frame: interpolate from the nominal rate
            good = np.flatnonzero(np.isfinite(self.video_t.v[: i + 1]))
            if good.size == 0:
                return math.nan
            t = self.video_t.v[good[-1]] + (i - good[-1]) / self.fps
        return float(t + self.offsets[self.video_key])

    def ecg_block_for(self, t_rec: float, lookahead_s: float | None = None) -> tuple[str, int | None]:
        """``("wait", None)`` until the ECG reaches ``t_rec`` + lookahead (default ``ecg_lookahead_s``);
        then ``("ok", block)``, or ``("none", None)`` without ECG; ``("stalled", last block)`` when the
        video is ``ecg_wait_s`` ahead."""
        if self.ecg is None:
            return "none", None
        if self.ecg_key not in self.offsets or self.video_key not in self.offsets or not math.isfinite(t_rec):
            return ("stalled", self.ecg.blocks - 1) if self.finished else ("wait", None)
        ahead = self.params.ecg_lookahead_s if lookahead_s is None else lookahead_s
        need = t_rec + ahead - self.offsets[self.ecg_key]
        b = self.ecg.block_reaching(need)
        if b is not None:
            return "ok", b
        last_video = self._frame_time(self.video_t.n - 1)
        if (
            self.finished
            or self.ecg.finished
            or last_video - (need + self.offsets[self.ecg_key]) > self.params.ecg_wait_s
        ):
            return "stalled", self.ecg.blocks - 1
        return "wait", None

    def _decide_pending(self) -> list[LiveEvent]:
        out: list[LiveEvent] = []
        keep: list[_Pending] = []
        for c in self.pending:
            ev = self._decide(c)
            if ev is None:
                keep.append(c)
            else:
                out.append(ev)
        self.pending = keep
        if isinstance(self.scorer, _CmclLive):
            out += self._found_events(self.scorer.advance())
        return out

    def _found_events(self, peaks: list[tuple[str, int, float]]) -> list[LiveEvent]:
        if not peaks:
            return []
        self._found(peaks)
        return self._decide_pending()

    def _decide(self, c: _Pending) -> LiveEvent | None:
        p = self.params
        t_apex = self._frame_time(c.apex)
        if self.ecg is not None and not math.isfinite(t_apex) and not self.finished:
            return None
        state, block = self.ecg_block_for(t_apex)
        if state == "wait":
            return None
        hrs = mean = None
        ccf: CcfState = "no ECG" if state == "none" else "off" if p.ccf_eta is None else "applied"
        kept = True
        if block is not None and block >= 0 and self.ecg is not None:
            peaks = self.ecg.peaks_until(block) + self.offsets[self.ecg_key]
            tol = max(1, round(0.25 * self.fps))
            ts = np.array([self._frame_time(i) for i in range(max(0, c.apex - tol), c.apex + tol + 1)])
            ts = ts[np.isfinite(ts)]
            hrs, mean = _hrs_and_mean(peaks, ts) if ts.size else (None, None)
            if peaks.size < p.min_beats or mean is None or hrs is None:
                ccf = "warm-up" if p.ccf_eta is not None else ccf
            elif p.ccf_eta is not None and c.kind == "ME":
                kept = bool(hrs > p.ccf_eta * mean)
        elif state == "stalled" and p.ccf_eta is not None:
            ccf = "warm-up"
        spot = Spot(self.session, c.onset, c.apex, c.offset, c.score, c.kind, kept, hrs)  # type: ignore[arg-type]
        t_off = self._frame_time(min(c.offset, self.video_t.n - 1))
        warm = c.apex < round(p.warmup_s * self.fps)  # decided when the warm-up ended, not at once
        cand = LiveCandidate(spot, t_apex, t_off, hrs, mean, p.ccf_eta, ccf, p.method, warm)
        self.candidates.append(cand)
        return LiveEvent(cand.to_json(), t_apex if math.isfinite(t_apex) else 0.0)

    def finish(self) -> list[LiveEvent]:
        """End of the recording: the last frames and beats, and every candidate still waiting."""
        if self.finished:
            return []
        out: list[LiveEvent] = []
        if self.ecg is not None:
            self.ecg.finish()
        if self.fe is not None and self.scorer is not None:
            n0 = self.fe.roi.n
            self.fe.finish()
            peaks = self.scorer.add_rows(self.fe.roi.v[n0:]) if self.fe.roi.n > n0 else []
            self.finished = True
            peaks += self.scorer.close(self.video_t.n)
            self._found(peaks)
        self.finished = True
        out += self._decide_pending()
        return out

    def summary(self) -> dict[str, object]:
        """What ran and what it found (stored with the events)."""
        p = self.params
        return {
            "method": p.method,
            "params": asdict(p),
            "video_stream": self.video_key,
            "ecg_stream": self.ecg_key,
            "frames": self.video_t.n,
            "skipped_samples": dict(self.skipped),
            "candidates": len(self.candidates),
            "kept": sum(c.spot.kept_by_ccf for c in self.candidates),
            "beats": len(self.ecg.peaks_t) if self.ecg is not None else 0,
            # ECG waited for after a CMCL-Net window's centre (s): what its candidates' latency is made of
            "window_wait_s": self.scorer.window_wait() if isinstance(self.scorer, _CmclLive) else None,
            "notices": self.notices[:20],
        }


class _CmclLive:
    """CMCL-Net windows on the growing features and ECG; see the module docstring."""

    def __init__(self, ck: Checkpoint, fps: float, warmup: int, owner: LiveSpotter) -> None:
        self.ck, self.fps, self.warmup, self.owner = ck, fps, warmup, owner
        self.wp = ck.window
        self.w = self.wp.frames(fps)
        self.stride = max(1, self.w // 6)
        self.curve = _Curve(max(1, self.w // 2), self.w)
        self.centers_done = 0  # windows scored: centres 0, stride, ...
        self.last_score: float | None = None
        self.scale: tuple[float, float] | None = None
        self.closed = False
        self.rows = 0
        spot = ck.spot
        use_ccf = owner.params.ccf_eta is not None and spot.get("threshold_ccf") is not None and ck.mode != "video"
        self.use_ccf = use_ccf
        # The score threshold tuned for this eta (a checkpoint without one for it is refused here, before
        # recording starts); without the CCF, the checkpoint's plain threshold.
        from mecg.model.pipeline import ccf_threshold  # torch: imported only when a network spots

        self.threshold_ccf = ccf_threshold(spot, owner.params.ccf_eta)[0] if use_ccf else None
        self.rise = max(1, round(spot["me_rise_s"] * fps))
        self.fall = max(1, round(spot["me_fall_s"] * fps))
        self.n_total: int | None = None
        self._ecg_scale: float | None = None
        import torch

        torch.set_num_threads(1)  # one core for the network: the recording and the front end need the others

    def window_wait(self) -> float:
        """ECG waited for after a window's centre (s): ``window_lookahead_s``, else what the model was
        trained for (``mecg train --live-lookahead``), else ``ecg_lookahead_s``."""
        p, trained = self.owner.params, self.ck.window.ecg_lookahead_s
        if p.window_lookahead_s is not None:
            return p.window_lookahead_s
        return trained if trained is not None else p.ecg_lookahead_s

    def threshold(self) -> float:
        spot = self.ck.spot
        if self.threshold_ccf is not None and self.owner.ecg is not None:
            return self.threshold_ccf
        return float(spot["threshold"])

    def edges(self, apex: int) -> tuple[int, int]:
        return max(0, apex - self.rise), apex + self.fall

    def add_rows(self, roi: np.ndarray) -> list[tuple[str, int, float]]:
        self.rows += len(roi)
        return self.advance()

    def close(self, n_frames: int) -> list[tuple[str, int, float]]:
        self.closed = True
        self.n_total = n_frames
        return self.advance()

    def _norm(self) -> tuple[float, float] | None:
        fe = self.owner.fe
        assert fe is not None
        if self.scale is None and (fe.roi.n >= self.warmup or self.closed) and fe.roi.n:
            part = fe.roi.v[: self.warmup]
            self.scale = (float(np.median(part[:, :, 2])) + 1e-3, float(np.median(part[:, :, 3])) + 1e-4)
        return self.scale

    def advance(self) -> list[tuple[str, int, float]]:
        """Score every window whose inputs are complete, then decide the peaks that can be."""
        fe = self.owner.fe
        assert fe is not None
        if self._norm() is None:
            return []
        n_known = fe.roi.n
        centers, items = [], []
        while True:
            c = self.centers_done * self.stride
            if self.closed and c >= (self.n_total or 0):
                break
            if not self.closed and c + self.w // 2 >= n_known:
                break
            item = self._window(c)
            if item is None:
                break
            centers.append(c)
            items.append(item)
            self.centers_done += 1
            if len(items) >= 64:
                break
        if items:
            self._score(centers, items)
        if self.closed and items:
            return self.advance()
        if self.closed:
            n = self.n_total or 0
            while self.curve.src.n < n:  # frames after the last centre take its score
                self.curve.add(self.last_score if self.last_score is not None else 0.0)
            self.curve.close()
        return self._decide()

    def _score(self, centers: list[int], items: list[dict[str, np.ndarray]]) -> None:
        import torch

        from mecg.model.train import to_torch

        batch = {k: np.stack([it[k] for it in items]) for k in items[0]}
        with torch.inference_mode():
            logit, _ = self.ck.model(to_torch(batch, next(self.ck.model.parameters()).device.type))
            s = torch.sigmoid(logit).float().cpu().numpy().reshape(-1)
        for c, v in zip(centers, s):
            v = float(v)
            if self.last_score is None:
                self.curve.add(v)
            else:  # frames between the previous centre and this one, linearly interpolated
                prev_c = c - self.stride
                for f in range(prev_c + 1, c + 1):
                    self.curve.add(self.last_score + (v - self.last_score) * (f - prev_c) / self.stride)
            self.last_score = v

    def _decide(self) -> list[tuple[str, int, float]]:
        c = self.curve
        end = c.decidable(self.closed)
        out = []
        thr = self.threshold()
        while c.next_peak < end:
            p = c.next_peak
            c.next_peak += 1
            if _peak_ok(c.y.v, p, c.dist, thr, c.y.n):
                out.append(("ME", p, float(c.y.v[p])))
        return out

    def _window(self, c: int) -> dict[str, np.ndarray] | None:
        """The inputs of the window centred on frame ``c`` (None: wait for the ECG)."""
        fe, owner, wp = self.owner.fe, self.owner, self.wp
        assert fe is not None and fe.crops is not None and self.scale is not None
        n_ecg = round(wp.ecg_context_s * wp.ecg_rate_hz)
        n_hr = round(wp.hr_context_s * wp.hr_rate_hz)
        ecg_in: dict[str, np.ndarray] = {
            "ecg": np.zeros(n_ecg, dtype=np.float32),
            "hr": np.zeros(n_hr, dtype=np.float32),
            "hand": np.zeros(8, dtype=np.float32),
        }
        if self.ck.mode != "video" and owner.ecg is not None:
            tc = owner._frame_time(min(c, len(owner.video_t.v) - 1))
            state, block = owner.ecg_block_for(tc, self.window_wait())
            if state == "wait":
                return None
            if block is not None and block >= 0:
                ecg_in = self._ecg_inputs(tc, block, n_ecg, n_hr)
        last = fe.roi.n - 1
        idx = np.clip(np.round(np.linspace(c - self.w / 2, c + self.w / 2 - 1, wp.time_steps)).astype(int), 0, last)
        scale, strain = self.scale
        feats = fe.roi.v[idx].astype(np.float32).copy()
        feats[:, :, :3] /= scale
        feats[:, :, 3] /= strain
        crops = (fe.crops[idx % fe.crop_keep].astype(np.float32) / scale).astype(np.float16).astype(np.float32)
        return {"feats": feats, "crops": crops, **ecg_in}

    def _ecg_inputs(self, tc: float, block: int, n_ecg: int, n_hr: int) -> dict[str, np.ndarray]:
        from mecg.model.ecg_features import bandpass, hrv_at, rr_quality

        owner, wp = self.owner, self.wp
        ecg = owner.ecg
        assert ecg is not None
        off = owner.offsets[owner.ecg_key]
        fs = ecg.fs
        n_avail = ecg.block_end[block]
        t_all = ecg.t.v[:n_avail] + off
        step = max(1, round(fs / wp.ecg_rate_hz))
        rate = fs / step
        kc = int(np.searchsorted(t_all, tc))
        k0 = round(kc * rate / fs - n_ecg / 2)
        a = max(0, (k0 - round(rate)) * step)  # one extra second before, for the filter
        seg = bandpass(ecg.x.v[a:n_avail], fs)
        if self._ecg_scale is None:  # the ECG's scale from its first seconds (offline: the whole recording)
            self._ecg_scale = float(np.percentile(np.abs(seg), 99)) + 1e-6
        dec = seg[(-a) % step :: step] if a % step else seg[::step]
        base = (a + ((-a) % step)) // step
        k = np.arange(k0, k0 + n_ecg) - base
        trained = wp.ecg_lookahead_s
        if trained is not None:  # a model trained for live spotting sees the ECG up to its lookahead, as trained
            k = np.minimum(k, math.floor((kc + trained * fs) / step) - base)
        k = np.clip(k, 0, max(0, dec.size - 1))
        ecg_in = (dec[k] / self._ecg_scale).astype(np.float32) if dec.size else np.zeros(n_ecg, np.float32)
        peaks = ecg.peaks_until(block) + off
        if trained is not None:
            peaks = peaks[peaks <= tc + trained - owner.params.ecg_margin_s]
        if peaks.size < 4:
            return {
                "ecg": ecg_in,
                "hr": np.zeros(n_hr, dtype=np.float32),
                "hand": np.zeros(8, dtype=np.float32),
            }
        curve = hr_curve(peaks)
        rr = np.diff(peaks)
        mean_hr = float(np.mean(60.0 / rr))
        th = tc - wp.hr_context_s / 2 + np.arange(n_hr) / wp.hr_rate_hz
        hr = ((np.nan_to_num(curve(th), nan=mean_hr) - mean_hr) / 10.0).astype(np.float32)
        hrs, mean_hrs = _hrs_and_mean(peaks, np.array([tc]))
        hrs = 0.0 if hrs is None else hrs
        mean_hrs = mean_hrs or 1e-3
        hr_c = float(np.nan_to_num(curve(tc), nan=mean_hr))
        hv = np.nan_to_num(hrv_at(peaks, np.array([tc]), 10.0)[0], nan=0.0)
        good = rr_quality(peaks)
        j = int(np.searchsorted(peaks, tc)) - 1
        q = float(good[j]) if 0 <= j < good.size else 0.0
        hand = np.array(
            [
                (hr_c - mean_hr) / 10.0,
                hrs / 10.0,
                hrs / max(mean_hrs, 1e-3),
                hv[0],
                hv[1] * 10,
                hv[3] * 10,
                hv[4] * 10,
                q,
            ],
            dtype=np.float32,
        )
        return {"ecg": ecg_in, "hr": hr, "hand": hand}


# -- replay and reading back ------------------------------------------------------------------------
def replay_live(
    path: str | os.PathLike,
    spotter: LiveSpotter,
    *,
    chunk_s: float = 0.1,
    decided_at: list[float] | None = None,
) -> list[LiveCandidate]:
    """Feed a recorded session to ``spotter`` as the recorder would have (the "as-live" offline run).

    Streams are announced, each one's first stored clock offset given, then the video and the ECG are
    fed in time order in ``chunk_s`` pieces. Returns the candidates in the order they were decided.

    ``decided_at``, when given, receives for each candidate the time of the latest sample the spotter
    had been fed when it decided it (recorder's clock, s; NaN for the ones decided at the end): minus the
    candidate's ``offset_time_s``, the latency the method's waits cost, without any computing time
    (within ``chunk_s``).
    """
    with open_session(path) as s:
        streams = {k: st for k, st in s.streams.items() if st.info.type != EVENTS_TYPE}
        for key, st in streams.items():
            spotter.add_stream(key, st.info)
        for key, st in streams.items():
            rows = st.clock_offsets
            spotter.clock_offset(key, float(rows[0, 1]) if len(rows) else 0.0)
        fed = [k for k in (spotter.video_key, spotter.ecg_key) if k is not None]
        ts = {k: np.asarray(streams[k].timestamps) for k in fed}
        pos = dict.fromkeys(fed, 0)
        t0 = min((float(v[0]) for v in ts.values() if v.size), default=0.0)
        t_end = max((float(v[-1]) for v in ts.values() if v.size), default=0.0)
        t = t0
        while t <= t_end + chunk_s:
            t += chunk_s
            for k in fed:
                stop = int(np.searchsorted(ts[k], t, side="left"))
                a = pos[k]
                if stop <= a:
                    continue
                st = streams[k]
                data = st.frames(a, stop) if st.info.kind == StreamKind.VIDEO else st.data[a:stop]
                spotter.feed(k, a, data, ts[k][a:stop])
                pos[k] = stop
                if decided_at is not None and len(decided_at) < len(spotter.candidates):
                    seen = max(float(ts[j][pos[j] - 1]) + spotter.offsets.get(j, 0.0) for j in fed if pos[j])
                    decided_at += [seen] * (len(spotter.candidates) - len(decided_at))
    spotter.finish()
    if decided_at is not None:
        decided_at += [math.nan] * (len(spotter.candidates) - len(decided_at))
    return list(spotter.candidates)


def stored_live_spots(path: str | os.PathLike) -> tuple[list[LiveCandidate], dict]:
    """The candidates spotted live while ``path`` was recorded, and the analysis summary ({} if none ran)."""
    name = Path(path).stem
    with open_session(path) as s:
        found = s.find_streams(type=EVENTS_TYPE)
        if not found:
            return [], {}
        st = found[0]
        summary = json.loads(str(st.group.attrs.get("live_analysis", "{}")) or "{}")
        out = []
        for text in st.markers():
            d = json.loads(text)
            if d.get("event") == "spotted_candidate":
                out.append(LiveCandidate.from_json(text, name))
        return out, summary


def compare_spots(live: list[Spot], offline: list[Spot]) -> dict[str, dict]:
    """How far live spots are from offline ones: MEGC matching (IoU >= 0.5) with the offline spots as
    reference, per type (``"me"``, ``"mae"``, ``"overall"``: tp, fp, fn, precision, recall, f1)."""
    res = evaluate([s.interval() for s in live if s.kept_by_ccf], [s.interval() for s in offline if s.kept_by_ccf])
    return {k: v.as_dict() for k, v in res.items()}
