"""Spotting with CMCL-Net, and the candidate clip filter (CCF).

1. Window scores every ``stride`` frames (``window / 6``), linearly interpolated to every frame.
2. Smoothing: moving average over half a window.
3. Peaks above the threshold (chosen on validation data when training), at least one window
   apart; each peak is an ME apex and becomes ``[apex - rise, apex + fall]``, the mean onset->apex
   and apex->offset durations of the training MEs (an ME's apex comes early, so a symmetric
   interval around it would sit late).
4. **CCF**: a candidate is kept only if the heart-rate slope at its apex exceeds ``eta`` x the
   trial's mean HRS (:class:`CcfRule`). "At its apex" is either the HRS exactly at the spotted
   apex frame (``hrs="apex"``, the paper's rule) or the largest HRS within ``+-window_s`` of it
   (``hrs="window"``, allowing for the spotter's apex uncertainty). The "trial" is the stimulus
   segment the apex lies in when the session has numeric stimulus markers (``trial="stimulus"``,
   the paper's trial = one stimulus clip; :func:`mecg.model.ecg_features.stimulus_segments`), or
   the whole session (``trial="session"``); ``trial="auto"`` takes the segments when there are
   markers. Rejected candidates stay in the output with ``kept_by_ccf`` false. Sessions without
   ECG are spotted video-only and not filtered.

Thresholds (:func:`choose_threshold`) maximise ME F1 on validation sessions over a grid that
reaches below its fixed floor (quantiles of the validation peak heights) down to where candidates
explode (:data:`MAX_CANDIDATES_PER_MIN`), and say when the choice sits at an edge of that grid.
"""

from __future__ import annotations

import weakref
from dataclasses import asdict, dataclass, replace
from typing import Literal

import numpy as np
from scipy.signal import find_peaks

from mecg.errors import MecgError
from mecg.model.baseline import moving_average
from mecg.model.cmclnet import CMCLNet
from mecg.model.evaluate import Interval, evaluate
from mecg.model.heart_rate import hr_slope
from mecg.model.spots import Spot
from mecg.model.train import predict
from mecg.model.windows import SessionData

HrsRule = Literal["apex", "window"]
TrialRule = Literal["auto", "session", "stimulus"]
HRS_RULES: tuple[str, ...] = ("apex", "window")
TRIAL_RULES: tuple[str, ...] = ("auto", "session", "stimulus")
#: Half-width (s) of the span around a spotted apex in which ``hrs="window"`` looks for the HRS peak.
CCF_APEX_TOLERANCE_S = 0.25
#: A stimulus segment shorter than this (s of ECG) is too short for a mean HRS: the session's is used.
MIN_SEGMENT_S = 10.0
#: The etas training chooses a CCF threshold for (besides the default eta), 1.3-2.3 in steps of 0.1.
DEFAULT_ETAS: tuple[float, ...] = tuple(round(1.3 + 0.1 * i, 1) for i in range(11))
#: The threshold grid stops where the validation sessions would give more candidates per minute than this.
MAX_CANDIDATES_PER_MIN = 30.0
#: The fixed part of the threshold grid (ME probability); the adaptive part extends it.
BASE_GRID = np.linspace(0.05, 0.95, 37)
#: Quantile levels of the validation peak heights added to the grid.
QUANTILE_LEVELS = np.linspace(0.0, 1.0, 65)


@dataclass(frozen=True)
class CcfRule:
    """How the CCF reads the heart (stored in checkpoints; see the module docstring).

    ``hrs``: ``"apex"`` (HRS at the apex frame) or ``"window"`` (largest HRS within ``+-window_s`` s);
    ``trial``: ``"auto"``, ``"session"`` or ``"stimulus"``.
    """

    hrs: HrsRule = "apex"
    window_s: float = CCF_APEX_TOLERANCE_S
    trial: TrialRule = "auto"

    def __post_init__(self) -> None:
        if self.hrs not in HRS_RULES:
            raise MecgError(f"CCF HRS rule {self.hrs!r} is not one of {', '.join(HRS_RULES)}")
        if self.trial not in TRIAL_RULES:
            raise MecgError(f"CCF trial rule {self.trial!r} is not one of {', '.join(TRIAL_RULES)}")
        if not 0.0 < self.window_s <= 5.0:
            raise MecgError(f"CCF window {self.window_s:g} s is out of bounds (0-5 s]")

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> CcfRule:
        hrs, trial = str(d.get("hrs", "apex")), str(d.get("trial", "auto"))
        return cls(hrs, float(d.get("window_s", CCF_APEX_TOLERANCE_S)), trial)  # type: ignore[arg-type]

    def describe(self) -> str:
        """E.g. ``HRS at the apex, trial auto`` or ``HRS max within +-0.25 s, trial session``."""
        how = "HRS at the apex" if self.hrs == "apex" else f"HRS max within +-{self.window_s:g} s"
        return f"{how}, trial {self.trial}"


#: The default rule (see docs/spotting.md for why).
DEFAULT_RULE = CcfRule()
#: The rule of checkpoints written before the rule was stored (their thresholds were tuned under it).
LEGACY_RULE = CcfRule("window", CCF_APEX_TOLERANCE_S, "session")


def parse_hrs_rule(text: str) -> tuple[HrsRule, float]:
    """``apex``, ``window`` or ``window:S`` (S in s, 0-5] -> ``(rule, window_s)``; MecgError otherwise."""
    name, _, arg = text.strip().partition(":")
    if name == "apex" and not arg:
        return "apex", CCF_APEX_TOLERANCE_S
    if name == "window":
        try:
            s = float(arg) if arg else CCF_APEX_TOLERANCE_S
        except ValueError:
            s = -1.0
        if 0.0 < s <= 5.0:
            return "window", s
    raise MecgError(f"--ccf-hrs {text!r}: use apex, window or window:S with S in seconds (0-5], e.g. window:0.25")


def frame_scores(model: CMCLNet, data: SessionData, device: str = "cpu") -> np.ndarray:
    """ME probability per frame (window scores interpolated), smoothed over half a window."""
    w = data.params.frames(data.fps)
    stride = max(1, w // 6)
    centers = np.arange(0, data.n, stride)
    s = predict(model, data, centers, device)
    per_frame = np.interp(np.arange(data.n), centers, s)
    return moving_average(per_frame, max(1, w // 2))


def candidates(scores: np.ndarray, data: SessionData, threshold: float, rise_s: float, fall_s: float) -> list[Spot]:
    """Peaks of the smoothed scores at or above ``threshold`` as ME candidates (``rise_s``/``fall_s``: apex to edges).

    ``threshold`` -inf gives every peak: the candidates at any threshold are exactly those of them whose
    score reaches it (peaks closer than a window are resolved by height, higher first).
    """
    w = data.params.frames(data.fps)
    rise, fall = max(1, round(rise_s * data.fps)), max(1, round(fall_s * data.fps))
    peaks, _ = find_peaks(scores, height=None if threshold == -np.inf else threshold, distance=max(1, w))
    return [
        Spot(data.name, max(0, int(p) - rise), int(p), min(data.n - 1, int(p) + fall), float(scores[p]), "ME")
        for p in peaks
    ]


# -- the trial mean HRS ----------------------------------------------------------------------------
_REFERENCE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def trial_reference(data: SessionData, trial: TrialRule = "auto") -> tuple[np.ndarray, str]:
    """Per frame, the trial mean HRS (bpm/s) the CCF compares with, and what it is.

    ``trial="session"``: the session's mean HRS everywhere. ``"stimulus"``: per stimulus segment
    (:func:`~mecg.model.ecg_features.stimulus_segments`), the mean of the HRS on a 0.05 s grid over
    the segment's span on the ECG clock; a segment with under :data:`MIN_SEGMENT_S` of ECG gets the
    session's mean. ``"auto"``: ``"stimulus"`` when the session has stimulus markers, else
    ``"session"``. Raises :class:`MecgError` for ``"stimulus"`` on a session without markers.
    Computed once per session object and rule.
    """
    cache = _REFERENCE.setdefault(data, {})
    if trial in cache:
        return cache[trial]
    n = len(data.hrs)
    ref = np.full(n, float(data.mean_hrs))
    what = "session mean HRS"
    if trial != "session":
        from mecg.model.ecg_features import stimulus_segments
        from mecg.session import open_session

        with open_session(data.path) as s:
            segs = stimulus_segments(s)
        if not segs and trial == "stimulus":
            raise MecgError(
                f"{data.name} has no numeric stimulus markers, so there is no stimulus segment to take the trial "
                "mean HRS over: use --ccf-trial session (the whole session) or auto"
            )
        short = 0
        for seg in segs:
            ft = data.frame_t[seg.first_frame : seg.stop_frame]
            ft = ft[np.isfinite(ft)]
            mean = np.nan
            if ft.size and ft[-1] - ft[0] >= MIN_SEGMENT_S:
                with np.errstate(all="ignore"):
                    mean = float(np.nanmean(hr_slope(data.peaks_s, np.arange(ft[0], ft[-1], 0.05))))
            if np.isfinite(mean):
                ref[seg.first_frame : seg.stop_frame] = mean
            else:
                short += 1
        if segs:
            what = f"stimulus-segment mean HRS ({len(segs)} segment(s)" + (
                f", {short} under {MIN_SEGMENT_S:g} s of ECG taking the session mean)" if short else ")"
            )
    cache[trial] = (ref, what)
    return ref, what


def apply_ccf(spots: list[Spot], data: SessionData, eta: float, rule: CcfRule = DEFAULT_RULE) -> list[Spot]:
    """Mark candidates whose apex HRS is not above ``eta`` x the trial mean HRS (no-op without ECG)."""
    if not data.has_ecg:
        return spots
    ref, _ = trial_reference(data, rule.trial)
    tol = max(1, round(rule.window_s * data.fps)) if rule.hrs == "window" else 0
    out = []
    for sp in spots:
        a = sp.apex_frame
        hrs = float(np.max(data.hrs[max(0, a - tol) : a + tol + 1]))
        out.append(replace(sp, hrs_apex_bpm_per_s=hrs, kept_by_ccf=bool(hrs > eta * ref[a])))
    return out


def spot_data(
    model: CMCLNet,
    data: SessionData,
    spot: dict,
    eta: float | None,
    device: str = "cpu",
    scores: np.ndarray | None = None,
    rule: CcfRule = DEFAULT_RULE,
) -> tuple[list[Spot], np.ndarray]:
    """Candidates of one session, the CCF (``rule``) applied when ``eta`` is given; returns spots and frame scores."""
    sc = frame_scores(model, data, device) if scores is None else scores
    rows = candidates(sc, data, spot["threshold"], spot["me_rise_s"], spot["me_fall_s"])
    return (apply_ccf(rows, data, eta, rule) if eta is not None else rows), sc


# -- thresholds ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ThresholdChoice:
    """A threshold chosen on validation sessions, and where it sits in the grid searched.

    Attributes
    ----------
    threshold : float
        The score threshold (ME probability, 0-1).
    f1 : float
        Validation ME F1 at it.
    edge : str or None
        ``"low"`` or ``"high"`` when it is the lowest or highest threshold of the grid (a better one may lie
        beyond), else None.
    grid_low, grid_high : float
        The grid's ends; the low end is where the validation sessions reach
        :data:`MAX_CANDIDATES_PER_MIN`, or the lowest peak.
    grid_size : int
        Thresholds tried.
    candidates_per_min : float
        Validation candidates per minute of video at the threshold (before the CCF).
    tied : int
        Thresholds that reached the same best F1 (the middle one is taken).
    capped : bool
        True when the grid's low end is the candidate cap (lower validation peaks exist), False when it is
        the lowest peak (a lower threshold would change nothing).
    """

    threshold: float
    f1: float
    edge: str | None
    grid_low: float
    grid_high: float
    grid_size: int
    candidates_per_min: float
    tied: int
    capped: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


def threshold_grid(peak_heights: np.ndarray, minutes: float) -> np.ndarray:
    """The thresholds to try: :data:`BASE_GRID` plus quantiles of the validation peak heights.

    Thresholds at which the validation sessions would give more than :data:`MAX_CANDIDATES_PER_MIN`
    candidates per minute are dropped, so the grid reaches down to where candidates explode and no
    further. Sorted ascending, never empty.
    """
    h = np.sort(np.asarray(peak_heights, dtype=np.float64))
    grid = np.concatenate([BASE_GRID, np.quantile(h, QUANTILE_LEVELS) if h.size else []])
    grid = np.unique(np.round(grid, 6))
    per_min = (h.size - np.searchsorted(h, grid, side="left")) / max(minutes, 1e-9)
    ok = grid[per_min <= MAX_CANDIDATES_PER_MIN]
    return ok if ok.size else grid[-1:]


def choose_threshold(
    score_sets: list[tuple[SessionData, np.ndarray]],
    rise_s: float,
    fall_s: float,
    eta: float | None = None,
    rule: CcfRule = DEFAULT_RULE,
) -> ThresholdChoice:
    """The threshold that maximises ME F1 over the given (validation) sessions, with the CCF at ``eta`` if given.

    The grid is :func:`threshold_grid` over the sessions' score peaks. When several thresholds reach
    the best F1 (often all 0 on a small validation set), the middle one of them is taken, not the
    lowest, which would flood the output with candidates.
    """
    every: list[tuple[list[Spot], list[Interval]]] = []
    heights: list[float] = []
    minutes = 0.0
    for data, sc in score_sets:
        rows = candidates(sc, data, -np.inf, rise_s, fall_s)
        if eta is not None:
            rows = apply_ccf(rows, data, eta, rule)
        truth = [Interval(data.name, a.onset_frame, a.offset_frame, "ME") for a in data.annotations if a.type == "ME"]
        every.append((rows, truth))
        heights += [r.score for r in rows]
        minutes += data.n / data.fps / 60.0
    grid = threshold_grid(np.asarray(heights), minutes)
    truth_all = [t for _, tr in every for t in tr]
    f1s = np.array(
        [
            evaluate([r.interval() for rows, _ in every for r in rows if r.score >= thr and r.kept_by_ccf], truth_all)[
                "me"
            ].f1
            for thr in grid
        ]
    )
    best = np.flatnonzero(f1s >= f1s.max() - 1e-9)
    i = int(best[len(best) // 2])
    thr = float(grid[i])
    edge = "low" if i == 0 and grid.size > 1 else "high" if i == grid.size - 1 and grid.size > 1 else None
    return ThresholdChoice(
        thr,
        float(f1s[i]),
        edge,
        float(grid[0]),
        float(grid[-1]),
        int(grid.size),
        float(sum(h >= thr for h in heights) / max(minutes, 1e-9)),
        int(best.size),
        bool(heights) and float(grid[0]) > min(heights),
    )
