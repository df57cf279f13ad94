"""Match two pulse trains and fit the line between their clocks.

The trigger box fires at irregular intervals, so only one offset lines the two trains up. Every
pair (camera pulse i, amplifier pulse j) proposes an offset; each proposal is scored by how many
camera pulses then land near an amplifier pulse (tolerance ``tol_s`` plus ``max_drift_ppm`` of
the distance from the proposing pair). The best proposal wins only if no proposal with a
clearly different offset scores nearly as well; otherwise the match is ambiguous and refused.
The matched pairs then get a robust line ``ecg_time = offset + (1 + drift) * camera_time``,
refined by re-matching with a tight tolerance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mecg.sync.clocks import huber_line
from mecg.sync.pulses import SyncError


@dataclass(frozen=True)
class LineFit:
    """``y = offset_s + (1 + drift_ppm * 1e-6) * x``, with the pairs it was fitted on and their residuals."""

    offset_s: float
    drift_ppm: float
    x: np.ndarray
    y: np.ndarray
    residuals_s: np.ndarray

    def __call__(self, x: np.ndarray | float) -> np.ndarray:
        return self.offset_s + (1.0 + self.drift_ppm * 1e-6) * np.asarray(x, dtype=np.float64)

    @property
    def rms_s(self) -> float:
        return float(np.sqrt(np.mean(self.residuals_s**2))) if self.residuals_s.size else float("nan")

    @property
    def max_s(self) -> float:
        return float(np.max(np.abs(self.residuals_s))) if self.residuals_s.size else float("nan")


def fit_line(x: np.ndarray, y: np.ndarray, scale_s: float = 0.0005) -> LineFit:
    """Robust (Huber) line through ``(x, y)`` pairs, expressed as offset and drift."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.size < 2:
        raise SyncError(f"{x.size} matched pulse(s) are too few to fit offset and drift (need >= 2)")
    a, b = huber_line(x, y, scale_s)
    return LineFit(a, (b - 1.0) * 1e6, x, y, y - (a + b * x))


def _pairs(cam: np.ndarray, ecg: np.ndarray, predict: np.ndarray, tol: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices (i, j) of camera pulses whose prediction lands within ``tol`` of an amplifier pulse (one-to-one)."""
    j = np.clip(np.searchsorted(ecg, predict), 1, len(ecg) - 1) if len(ecg) > 1 else np.zeros(len(predict), dtype=int)
    if len(ecg) > 1:
        left = np.abs(ecg[j - 1] - predict) < np.abs(ecg[j] - predict)
        j = np.where(left, j - 1, j)
    ok = np.abs(ecg[j] - predict) <= tol
    i, j = np.flatnonzero(ok), j[ok]
    _, first = np.unique(j, return_index=True)  # one camera pulse per amplifier pulse
    return i[first], j[first]


def best_offset(
    cam: np.ndarray,
    ecg: np.ndarray,
    *,
    tol_s: float = 0.015,
    max_drift_ppm: float = 300.0,
    min_matches: int = 3,
) -> tuple[float, int]:
    """The offset (s) that lines up the most pulses of two sorted trains, and the camera pulse that proposed it.

    Raises :class:`SyncError` when fewer than ``min_matches`` pulses line up or another offset
    scores nearly as well (the pattern is ambiguous).
    """
    if cam.size < min_matches or ecg.size < min_matches:
        raise SyncError(
            f"found {cam.size} LED pulse(s) in the video and {ecg.size} trigger pulse(s) on the amplifier; "
            f"need at least {min_matches} of each to align (check the LED is in view and the trigger cable)"
        )
    scores = []
    for i, c in enumerate(cam):
        tol = tol_s + max_drift_ppm * 1e-6 * np.abs(cam - c)
        for e in ecg:
            off = e - c
            pi, _ = _pairs(cam, ecg, cam + off, tol)
            scores.append((len(pi), off, i))
    scores.sort(key=lambda s: -s[0])
    best_n, best_off, best_i = scores[0]
    rival = next((s for s in scores if abs(s[1] - best_off) > 2 * tol_s + max_drift_ppm * 1e-6 * np.ptp(cam)), None)
    if best_n < min_matches:
        raise SyncError(
            f"only {best_n} of {cam.size} LED pulses line up with the {ecg.size} trigger pulses; "
            "the video and the amplifier do not seem to share the trigger line"
        )
    if rival is not None and rival[0] >= best_n - 1 and rival[0] >= 0.8 * best_n:
        raise SyncError(
            f"the pulse trains match equally well at offsets {best_off:.3f} s and {rival[1]:.3f} s "
            f"({best_n} vs {rival[0]} pulses): the pattern is ambiguous; use irregular trigger intervals"
        )
    return float(best_off), int(best_i)


def pair_pulses(
    cam: np.ndarray,
    ecg: np.ndarray,
    offset_s: float,
    anchor: int,
    *,
    tol_s: float = 0.015,
    max_drift_ppm: float = 300.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(i, j)`` of camera and amplifier pulses that coincide at ``offset_s`` (one-to-one)."""
    tol = tol_s + max_drift_ppm * 1e-6 * np.abs(cam - cam[anchor])
    return _pairs(cam, ecg, cam + offset_s, tol)


def match_pulses(
    cam_s: np.ndarray,
    ecg_s: np.ndarray,
    *,
    tol_s: float = 0.015,
    max_drift_ppm: float = 300.0,
    min_matches: int = 3,
    final_tol_s: float = 0.004,
) -> LineFit:
    """Match camera-clock pulse times to amplifier-clock pulse times and fit the clock line.

    Raises :class:`SyncError` when fewer than ``min_matches`` pulses match or the match is ambiguous.
    """
    cam = np.sort(np.asarray(cam_s, dtype=np.float64))
    ecg = np.sort(np.asarray(ecg_s, dtype=np.float64))
    best_off, best_i = best_offset(cam, ecg, tol_s=tol_s, max_drift_ppm=max_drift_ppm, min_matches=min_matches)
    # Refine: fit on the first match, then re-match with a tight tolerance around the line.
    i, j = pair_pulses(cam, ecg, best_off, best_i, tol_s=tol_s, max_drift_ppm=max_drift_ppm)
    fit = fit_line(cam[i], ecg[j])
    for _ in range(3):
        bound = max(final_tol_s, 5.0 * fit.rms_s)
        i, j = _pairs(cam, ecg, fit(cam), np.full(cam.size, bound))
        fit = fit_line(cam[i], ecg[j])
    return fit
