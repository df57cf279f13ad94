"""A live heart rate and live R-peak marks: NeuroKit2's detector on the last seconds of ECG, median RR.

The R-peaks are found exactly as offline analysis finds them (:func:`mecg.model.heart_rate.r_peaks`:
NeuroKit2's ``ecg_clean`` then ``ecg_peaks``, method ``neurokit``), on the window at hand, so a live
mark sits where the offline one will (within a sample; beats in the window's first 0.3 s may be
missed, and those in its last :data:`TAIL_GUARD_S` are left for the next search; see
tests/test_live_rpeaks.py). acquire never imports model/, so the two NeuroKit2 calls are repeated
here. NeuroKit2 (about 1.5 s to import) is loaded with the first search, or earlier in the background
by :func:`warm_up`; one search of a 10 s window costs a few ms (benchmarks/bench_live_rpeaks.py).
"""

from __future__ import annotations

import importlib
import sys
import threading

import numpy as np

from mecg.session import StreamInfo
from mecg.session.ecg_channel import stream_ecg_column

#: Shortest and longest RR interval (s) accepted: 200 and 30 bpm.
RR_RANGE_S = (0.3, 2.0)
#: Shortest window (s) searched, as offline (NeuroKit2's filters need it).
MIN_WINDOW_S = 2.0
#: Peaks this close (s) to the window's newest sample are dropped: a QRS cut off by the window's end makes
#: NeuroKit2 mark the highest point before it (the P wave, up to 0.19 s early); the next search has the beat whole.
TAIL_GUARD_S = 0.25

_warm_lock = threading.Lock()
_warm_started = False
_warm_done = threading.Event()


def _import_neurokit2() -> None:
    try:
        importlib.import_module("neurokit2")
    except Exception:  # e.g. a full disk for a cache: the search that needs it raises (and is handled) there
        pass
    finally:
        _warm_done.set()


def warm_up() -> None:
    """Start importing NeuroKit2 in a background thread (once per process), so the first search does not stall.

    A caller that searches before the import is done waits for it (Python's import lock); :func:`ready`
    says whether it would.
    """
    global _warm_started
    with _warm_lock:
        if _warm_started or "neurokit2" in sys.modules:
            return
        _warm_started = True
    threading.Thread(target=_import_neurokit2, name="mecg-import-neurokit2", daemon=True).start()


def ready() -> bool:
    """True when a search would not wait for NeuroKit2's import (seconds on a slow machine); starts it if needed."""
    if _warm_done.is_set():
        return True
    warm_up()
    return not _warm_started and "neurokit2" in sys.modules


def r_peaks(ecg: np.ndarray, srate_hz: float) -> np.ndarray:
    """Indices of R-peaks in ``ecg`` (mV or any unit), found as offline: NeuroKit2 ``ecg_clean`` + ``ecg_peaks``.

    Peaks in the last :data:`TAIL_GUARD_S` of the window are left for the next search (a beat cut
    off there is marked early). ``srate_hz`` is rounded to whole Hz, as offline. Returns no peaks
    (not an error) for a window shorter than :data:`MIN_WINDOW_S`, a flat one or one with
    non-finite samples (electrodes off, a gap), or where NeuroKit2 finds no beat.
    """
    x = np.asarray(ecg, dtype=np.float64).reshape(-1)
    fs = round(float(srate_hz))
    if fs <= 0 or x.size < MIN_WINDOW_S * fs or not np.all(np.isfinite(x)) or np.ptp(x) == 0:
        return np.zeros(0, dtype=np.int64)
    import neurokit2 as nk  # here, not at the top: `mecg record` starts without it (about 1.5 s)

    clean = nk.ecg_clean(x, sampling_rate=fs, method="neurokit")
    _, info = nk.ecg_peaks(clean, sampling_rate=fs, method="neurokit")
    peaks = np.asarray(info["ECG_R_Peaks"], dtype=np.int64)
    return peaks[peaks < x.size - round(TAIL_GUARD_S * fs)]


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


def ecg_channel(info: StreamInfo, choice: str = "") -> int:
    """Column of the ECG in a signal stream by mecg's one rule (:mod:`mecg.session.ecg_channel`), else 0."""
    col = stream_ecg_column(info, choice)
    return 0 if col is None else col
