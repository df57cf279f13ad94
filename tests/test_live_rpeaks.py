"""Live R-peaks (mecg.acquire.live_heart_rate) sit where offline analysis (mecg.model.heart_rate) puts them.

The live detector searches a sliding window of the last seconds; the offline one the whole recording.
On synthetic ECG (true beat times known) and on a real single-lead ECG (BITalino, 1000 Hz; see
tests/data/ecg/README.md), every live peak must be within 5 ms of an offline peak (and of the true beat),
and every offline peak inside the window, away from its first 0.5 s and its guarded tail, must be found.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mecg.acquire.live_heart_rate import MIN_WINDOW_S, TAIL_GUARD_S, heart_rate_bpm, r_peaks
from mecg.model.heart_rate import r_peaks as offline_r_peaks

TOL_S = 0.005
REAL_ECG = Path(__file__).parent / "data" / "ecg" / "pyhrv_SampleECG_A2.npy"


def _nearest_s(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """For each time in ``a``, the distance (s) to the nearest time in ``b``."""
    return np.min(np.abs(a[:, None] - b[None, :]), axis=1) if b.size else np.full(a.size, np.inf)


def _check_windows(ecg: np.ndarray, fs: float, window_s: float, starts_s: np.ndarray) -> int:
    """Slide a live window over ``ecg``; compare with the offline peaks of the whole signal; return peaks seen."""
    offline = offline_r_peaks(ecg, fs) / fs
    seen = 0
    for a_s in starts_s:
        a, b = round(a_s * fs), round(a_s * fs) + round(window_s * fs)
        live = (a + r_peaks(ecg[a:b], fs)) / fs
        assert live.size >= 0.6 * window_s  # a resting heart: more than 36 bpm
        far = live[_nearest_s(live, offline) > TOL_S]
        assert far.size == 0, f"live peaks {far} (window from {a_s:.2f} s) are not within 5 ms of an offline peak"
        inner = offline[(offline >= a / fs + 0.5) & (offline < b / fs - TAIL_GUARD_S - 0.01)]
        missed = inner[_nearest_s(inner, live) > TOL_S]
        assert missed.size == 0, f"offline peaks {missed} missed in the live window from {a_s:.2f} s"
        seen += live.size
    return seen


@pytest.mark.parametrize("fs", [500.0, 1000.0])
def test_live_peaks_match_offline_and_the_true_beats_on_synthetic_ecg(fs: float) -> None:
    from mecg.synth import Subject, Trial, TrialConfig

    trial = Trial(Subject.random("S07", 7), 0, TrialConfig(duration_s=40.0, fps=30.0, width=32, height=24))
    t = np.arange(round(40.0 * fs)) / fs
    ecg = trial.heart.ecg(t)
    starts = np.arange(0.0, 30.0, 0.77)  # windows cut the beats at every phase
    assert _check_windows(ecg, fs, 8.0, starts) > 300
    assert _check_windows(ecg, fs, 10.0, starts[::4]) > 50
    # and against the truth: the R wave of the synthetic beat (the old detector was 30 ms late, on the S wave)
    live = r_peaks(ecg[round(12 * fs) : round(22 * fs)], fs) / fs + 12.0
    assert np.all(_nearest_s(live, trial.heart.beats_s) < TOL_S)


def test_live_peaks_match_offline_on_a_real_ecg() -> None:
    ecg = np.load(REAL_ECG).astype(np.float64)  # raw 10-bit ADC counts, 1000 Hz, 22.35 s
    assert ecg.shape == (22350,)
    assert _check_windows(ecg, 1000.0, 8.0, np.arange(0.0, 14.0, 0.31)) > 300
    assert _check_windows(ecg, 1000.0, 10.0, np.arange(0.0, 12.0, 1.1)) > 100
    # heart rate from the live peaks equals the offline one's median RR
    offline = offline_r_peaks(ecg, 1000.0) / 1000.0
    assert heart_rate_bpm(ecg[:10000], 1000.0) == pytest.approx(60 / np.median(np.diff(offline[offline < 10])), 0.01)


def test_no_peaks_without_a_usable_window() -> None:
    rng = np.random.default_rng(3)
    assert r_peaks(np.zeros(8000), 1000.0).size == 0  # electrodes off: flat
    assert r_peaks(np.r_[np.nan, rng.standard_normal(7999)], 1000.0).size == 0  # a gap
    assert r_peaks(rng.standard_normal(round(MIN_WINDOW_S * 500) - 1), 500.0).size == 0  # too short
    assert heart_rate_bpm(np.zeros(8000), 1000.0) is None
