"""Spotting with CMCL-Net, and the candidate clip filter (CCF).

1. Window scores every ``stride`` frames (``window / 6``), linearly interpolated to every frame.
2. Smoothing: moving average over half a window.
3. Peaks above the threshold (chosen on validation data when training), at least one window
   apart; each peak is an ME apex and becomes ``[apex - rise, apex + fall]``, the mean onset->apex
   and apex->offset durations of the training MEs (an ME's apex comes early, so a symmetric
   interval around it would sit late).
4. **CCF**: a candidate is kept only if the heart-rate slope at its apex exceeds
   ``eta`` x the trial's mean HRS. "At its apex" is the largest HRS within +-0.25 s of the spotted
   apex, the uncertainty of the spotter's apex. Rejected candidates stay in the output with
   ``kept_by_ccf`` false. Sessions without ECG are spotted video-only and not filtered.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy.signal import find_peaks

from mecg.model.baseline import moving_average
from mecg.model.cmclnet import CMCLNet
from mecg.model.evaluate import Interval, evaluate
from mecg.model.spots import Spot
from mecg.model.train import predict
from mecg.model.windows import SessionData

#: Half-width (s) of the span around a spotted apex in which the CCF looks for the HRS peak.
CCF_APEX_TOLERANCE_S = 0.25


def frame_scores(model: CMCLNet, data: SessionData, device: str = "cpu") -> np.ndarray:
    """ME probability per frame (window scores interpolated), smoothed over half a window."""
    w = data.params.frames(data.fps)
    stride = max(1, w // 6)
    centers = np.arange(0, data.n, stride)
    s = predict(model, data, centers, device)
    per_frame = np.interp(np.arange(data.n), centers, s)
    return moving_average(per_frame, max(1, w // 2))


def candidates(scores: np.ndarray, data: SessionData, threshold: float, rise_s: float, fall_s: float) -> list[Spot]:
    """Peaks of the smoothed scores above ``threshold`` as ME candidates (``rise_s``/``fall_s``: apex to edges, s)."""
    w = data.params.frames(data.fps)
    rise, fall = max(1, round(rise_s * data.fps)), max(1, round(fall_s * data.fps))
    peaks, _ = find_peaks(scores, height=threshold, distance=max(1, w))
    return [
        Spot(data.name, max(0, int(p) - rise), int(p), min(data.n - 1, int(p) + fall), float(scores[p]), "ME")
        for p in peaks
    ]


def apply_ccf(spots: list[Spot], data: SessionData, eta: float) -> list[Spot]:
    """Mark candidates whose apex HRS is not above ``eta`` x trial mean HRS (no-op without ECG)."""
    if not data.has_ecg:
        return spots
    tol = max(1, round(CCF_APEX_TOLERANCE_S * data.fps))
    out = []
    for sp in spots:
        a = sp.apex_frame
        hrs = float(np.max(data.hrs[max(0, a - tol) : a + tol + 1]))
        out.append(replace(sp, hrs_apex_bpm_per_s=hrs, kept_by_ccf=bool(hrs > eta * data.mean_hrs)))
    return out


def spot_data(
    model: CMCLNet,
    data: SessionData,
    spot: dict,
    eta: float | None,
    device: str = "cpu",
    scores: np.ndarray | None = None,
) -> tuple[list[Spot], np.ndarray]:
    """Candidates of one session with the CCF applied when ``eta`` is given; returns spots and frame scores."""
    sc = frame_scores(model, data, device) if scores is None else scores
    rows = candidates(sc, data, spot["threshold"], spot["me_rise_s"], spot["me_fall_s"])
    return (apply_ccf(rows, data, eta) if eta is not None else rows), sc


def choose_threshold(
    score_sets: list[tuple[SessionData, np.ndarray]], rise_s: float, fall_s: float, eta: float | None = None
) -> float:
    """The threshold that maximises ME F1 over the given (validation) sessions.

    When several thresholds reach the best F1 (often all 0 on a small validation set), the middle
    one of them is taken, not the lowest, which would flood the output with candidates.
    """
    grid = np.linspace(0.05, 0.95, 37)
    f1s = []
    for thr in grid:
        preds, truth = [], []
        for data, sc in score_sets:
            rows = candidates(sc, data, float(thr), rise_s, fall_s)
            if eta is not None:
                rows = apply_ccf(rows, data, eta)
            preds += [r.interval() for r in rows if r.kept_by_ccf]
            truth += [
                Interval(data.name, a.onset_frame, a.offset_frame, "ME") for a in data.annotations if a.type == "ME"
            ]
        f1s.append(evaluate(preds, truth)["me"].f1)
    f1s = np.asarray(f1s)
    best = np.flatnonzero(f1s >= f1s.max() - 1e-9)
    return float(grid[best[len(best) // 2]])
