"""R-peaks, instantaneous heart rate and the heart-rate slope (HRS).

Definitions (used by the candidate clip filter, the statistics and the synthetic data's tests):

* **Instantaneous HR** of RR interval j (between R-peaks j-1 and j) is ``60 / RR_j`` bpm, placed
  at the interval's midpoint ``(t_{j-1} + t_j) / 2``.
* **HR curve** ``hr(t)``: a monotone cubic (PCHIP) through those points, so it never overshoots.
* **HR slope** ``hrs(t) = |d hr / dt|`` in bpm/s, the analytic derivative of that curve. No further
  smoothing: the PCHIP is already smooth between beats, and the slope of one quick HR change
  lasts about one RR interval.
* The **trial mean HRS** is the mean of ``hrs`` over a uniform grid spanning the beats.
* The **HR change** at a moment ``t`` is the mean of ``hr`` over a response window after ``t``
  minus its mean over a baseline window before ``t`` (both on a uniform grid), in bpm.
"""

from __future__ import annotations

import numpy as np
from scipy.interpolate import PchipInterpolator

from mecg.errors import MecgError

#: R-peak detectors of NeuroKit2 that work offline on single-lead ECG.
PEAK_METHODS = ("neurokit", "pantompkins1985", "hamilton2002", "elgendi2010", "engzeemod2012", "rodrigues2021")


_CLEAN_METHODS = ("neurokit", "pantompkins1985", "hamilton2002", "elgendi2010", "engzeemod2012")


class EcgError(MecgError):
    """The ECG cannot be analysed (too short, flat, or too few beats)."""


def r_peaks(ecg: np.ndarray, srate_hz: float, method: str = "neurokit") -> np.ndarray:
    """Sample indices of R-peaks found by NeuroKit2 (``ecg_clean`` then ``ecg_peaks``)."""
    import neurokit2 as nk

    if method not in PEAK_METHODS:
        raise EcgError(f"unknown R-peak method {method!r}; choose one of {', '.join(PEAK_METHODS)}")
    x = np.asarray(ecg, dtype=np.float64).reshape(-1)
    if x.size < 2 * srate_hz:
        raise EcgError(f"ECG of {x.size / srate_hz:.2f} s is too short for R-peak detection (need >= 2 s)")
    if not np.isfinite(x).all() or np.ptp(x) == 0:
        raise EcgError("ECG is flat or has non-finite values: check the electrodes and the channel")
    fs = round(srate_hz)
    # each detector's own cleaning where NeuroKit2 has one, its default otherwise
    clean = nk.ecg_clean(x, sampling_rate=fs, method=method if method in _CLEAN_METHODS else "neurokit")
    _, info = nk.ecg_peaks(clean, sampling_rate=fs, method=method)
    return np.asarray(info["ECG_R_Peaks"], dtype=np.int64)


#: A live R-peak search keeps a peak once it is this old (s): :class:`mecg.model.live_spotter.LiveSpotParams`'s
#: ``ecg_margin_s`` default, and what windows trained for live spotting (:mod:`mecg.model.windows`) assume.
LIVE_PEAK_MARGIN_S = 0.15


def instantaneous_hr(peaks_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(t_s, hr_bpm)``: 60/RR at each RR interval's midpoint."""
    p = np.asarray(peaks_s, dtype=np.float64)
    if p.size < 3:
        raise EcgError(f"{p.size} R-peaks are too few for a heart rate (need >= 3)")
    rr = np.diff(p)
    return 0.5 * (p[1:] + p[:-1]), 60.0 / rr


def hr_curve(peaks_s: np.ndarray) -> PchipInterpolator:
    """The HR curve ``hr(t)`` (bpm) through the instantaneous HR points (see module docstring)."""
    t, hr = instantaneous_hr(peaks_s)
    return PchipInterpolator(t, hr, extrapolate=False)


def hr_slope(peaks_s: np.ndarray, t_s: np.ndarray) -> np.ndarray:
    """HR slope ``|d hr/dt|`` in bpm/s at times ``t_s`` (NaN outside the span of the beats)."""
    return np.abs(hr_curve(peaks_s).derivative()(np.asarray(t_s, dtype=np.float64)))


def mean_hr_slope(peaks_s: np.ndarray, step_s: float = 0.05) -> float:
    """The trial mean HRS (bpm/s): mean of ``hr_slope`` on a ``step_s`` grid over the beats."""
    t, _ = instantaneous_hr(peaks_s)
    grid = np.arange(t[0], t[-1], step_s)
    return float(np.nanmean(hr_slope(peaks_s, grid)))


def hr_change(
    peaks_s: np.ndarray,
    t_s: np.ndarray,
    baseline_s: tuple[float, float] = (-5.0, -1.0),
    response_s: tuple[float, float] = (0.0, 2.0),
    step_s: float = 0.05,
) -> np.ndarray:
    """HR change (bpm) at times ``t_s``: mean ``hr`` over ``t + response_s`` minus mean over ``t + baseline_s``.

    Windows are ``(start, end)`` offsets in s from each moment; NaN where a window leaves the span of the beats.
    """
    curve = hr_curve(peaks_s)
    t = np.asarray(t_s, dtype=np.float64).reshape(-1, 1)

    def window_mean(w: tuple[float, float]) -> np.ndarray:
        offsets = np.arange(w[0], w[1] + step_s / 2, step_s)
        return curve(t + offsets).mean(axis=1)  # NaN outside the beats propagates

    return window_mean(response_s) - window_mean(baseline_s)
