"""A cheap heart rate for a live display: R-peaks in the last few seconds of ECG, median RR interval.

Good enough to see that the electrodes are on and the participant is calm; not a measurement.
Offline analysis uses NeuroKit2 in :mod:`mecg.model` (acquire never imports it).
"""

from __future__ import annotations

from functools import lru_cache
from itertools import zip_longest

import numpy as np

from mecg.session import StreamInfo

#: QRS band (Hz) the ECG is filtered to before peak picking.
QRS_BAND_HZ = (5.0, 20.0)
#: Shortest and longest RR interval (s) accepted: 200 and 30 bpm.
RR_RANGE_S = (0.3, 2.0)


@lru_cache(maxsize=8)
def _qrs_filter(srate_hz: float) -> np.ndarray:
    from scipy.signal import butter  # here, not at the top: `mecg record` starts without SciPy (about 1 s)

    hi = min(QRS_BAND_HZ[1], 0.45 * srate_hz)
    return butter(2, (QRS_BAND_HZ[0], hi), btype="bandpass", fs=srate_hz, output="sos")


def r_peaks(ecg: np.ndarray, srate_hz: float) -> np.ndarray:
    """Indices of R-peaks in ``ecg`` (any polarity): band-pass 5-20 Hz, squared slope, local maxima.

    Peaks are at least 0.3 s apart and reach 30% of the 99th percentile of the QRS energy.
    """
    from scipy.signal import find_peaks, sosfilt  # loaded with the first heart rate, not at start-up

    x = np.asarray(ecg, dtype=np.float64)
    if x.size < srate_hz or not np.all(np.isfinite(x)):
        return np.zeros(0, dtype=np.int64)
    y = sosfilt(_qrs_filter(float(srate_hz)), x - x[0])
    energy = np.gradient(y) ** 2
    win = max(1, round(0.08 * srate_hz))  # 80 ms moving integration, as Pan-Tompkins
    energy = np.convolve(energy, np.ones(win) / win, mode="same")
    settle = round(0.5 * srate_hz)  # the filter's start-up transient
    ref = np.percentile(energy[settle:], 99) if energy.size > settle else 0.0
    if ref <= 0:
        return np.zeros(0, dtype=np.int64)
    peaks, _ = find_peaks(energy, height=0.3 * ref, distance=max(1, round(RR_RANGE_S[0] * srate_hz)))
    return peaks[peaks >= settle]


def hr_from_peaks_bpm(peaks_s: np.ndarray) -> float | None:
    """Heart rate (bpm) from the median plausible RR interval of R-peak times (s); ``None`` with too few beats."""
    if peaks_s.size < 3:
        return None
    rr = np.diff(peaks_s)
    rr = rr[(rr >= RR_RANGE_S[0]) & (rr <= RR_RANGE_S[1])]
    if rr.size < 2:
        return None
    return float(60.0 / np.median(rr))


def heart_rate_bpm(ecg: np.ndarray, srate_hz: float) -> float | None:
    """Heart rate (bpm) from the median plausible RR interval of ``ecg``; ``None`` with fewer than 3 beats."""
    return hr_from_peaks_bpm(r_peaks(ecg, srate_hz) / float(srate_hz))


def ecg_channel(info: StreamInfo) -> int:
    """Index of the ECG channel of a signal stream (by channel type or label), else 0."""
    for i, (label, typ) in enumerate(zip_longest(info.channel_labels, info.channel_types, fillvalue="")):
        if typ.upper().startswith("ECG") or label.upper().startswith("ECG"):
            return i
    return 0
