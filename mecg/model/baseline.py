"""The classical (MDMD-style) spotter that ME papers compare against.

1. Score per frame: the largest head-motion-compensated flow magnitude over the ROIs between
   frames ``i`` and ``i + k``, placed at ``i + k // 2`` (the middle of the motion it measures).
   The nose bridge (the reference) and, by default, the eyes are left out: blinks move the
   eyelids far more than any ME moves anything, so with the eyes in, the baseline spots blinks
   (as the literature does, we mask them; AU7 is then seen only through its spill-over).
2. Smooth with a moving average of ``2k + 1`` frames.
3. Threshold ``T = mean + p (max - mean)`` of the smoothed curve of that video (``p`` ~ 0.55).
4. Peaks above ``T`` at least ``k`` frames apart; each becomes ``[peak - k, peak + k]``.

MEs and MaEs are spotted from the same flow curve with their own ``k`` (half the typical
expression length: 0.3 s for MEs, 1.5 s for MaEs); an ME candidate inside a spotted MaE is
dropped. The score of a spot is the smoothed curve at its peak.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import find_peaks

from mecg.model.face import REFERENCE_ROI, ROI_NAMES
from mecg.model.frontend import FrontEndFeatures
from mecg.model.spots import Spot


@dataclass(frozen=True)
class BaselineParams:
    """``p``: threshold fraction; expression lengths (s) set ``k`` for each type."""

    p: float = 0.55
    me_length_s: float = 0.3
    mae_length_s: float = 1.5
    mask_eyes: bool = True


def flow_score(feats: FrontEndFeatures, mask_eyes: bool = True) -> np.ndarray:
    """Per-frame motion score: max over ROIs of compensated flow magnitude, placed at ``i + k // 2``.

    The nose bridge is never used. With ``mask_eyes`` the eyes are left out, and in blink frames
    (eye motion over 3x its median and over 1.5x any lower-face ROI) the brows too: DIS spreads
    the eyelid's motion into them.
    """
    mag = feats.roi[:, :, 2].astype(np.float64)
    idx = {n: i for i, n in enumerate(ROI_NAMES)}
    skip = {REFERENCE_ROI, "eye_r", "eye_l"} if mask_eyes else {REFERENCE_ROI}
    lower = [idx[n] for n in ROI_NAMES if n not in skip and not n.startswith("brow")]
    keep = [idx[n] for n in ROI_NAMES if n not in skip]
    raw = mag[:, keep].max(axis=1)
    k = feats.params.k_frames
    if mask_eyes:
        eye = mag[:, [idx["eye_r"], idx["eye_l"]]].max(axis=1)
        blink = (eye > 3 * np.median(eye)) & (eye > 1.5 * mag[:, lower].max(axis=1))
        # a blink's spill-over lasts about k frames around the eye's peak
        blink = np.convolve(blink.astype(float), np.ones(2 * k + 1), mode="same") > 0
        raw[blink] = mag[blink][:, lower].max(axis=1)
    out = np.zeros_like(raw)
    shift = k // 2
    out[shift:] = raw[: raw.size - shift] if shift else raw
    return out


def moving_average(x: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average over ``width`` samples (edges averaged over what exists)."""
    width = max(1, int(width))
    kernel = np.ones(width)
    num = np.convolve(x, kernel, mode="same")
    den = np.convolve(np.ones_like(x), kernel, mode="same")
    return num / den


def spot_curve(score: np.ndarray, k: int, p: float) -> tuple[np.ndarray, float, np.ndarray]:
    """Smoothed curve, threshold and peak frames for one ``k``."""
    smooth = moving_average(score, 2 * k + 1)
    thr = float(smooth.mean() + p * (smooth.max() - smooth.mean()))
    peaks, _ = find_peaks(smooth, height=thr, distance=max(1, k))
    return smooth, thr, peaks


def spot_baseline(
    feats: FrontEndFeatures, fps: float, session: str, params: BaselineParams = BaselineParams()
) -> tuple[list[Spot], dict]:
    """Spot one video. Returns its spots (by onset) and the curves for plotting."""
    score = flow_score(feats, params.mask_eyes)
    n = score.size
    k_me = max(1, round(params.me_length_s * fps / 2))
    k_mae = max(k_me + 1, round(params.mae_length_s * fps / 2))
    rows: list[Spot] = []
    curves = {"score": score}
    mae_spans = []
    for kind, k in (("MaE", k_mae), ("ME", k_me)):
        smooth, thr, peaks = spot_curve(score, k, params.p)
        curves[kind] = (smooth, thr)
        for pk in peaks:
            if kind == "ME" and any(a <= pk <= b for a, b in mae_spans):
                continue
            on, off = max(0, int(pk) - k), min(n - 1, int(pk) + k)
            if kind == "MaE":
                mae_spans.append((on, off))
            rows.append(Spot(session, on, int(pk), off, float(smooth[pk]), kind))
    rows.sort(key=lambda r: r.onset_frame)
    return rows, curves
