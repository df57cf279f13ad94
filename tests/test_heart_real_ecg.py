"""mecg's offline heart path (R-peaks, HR, HR slope, trial mean HRS) on a real ECG, clean and with synthetic artefacts.

The ECG is pyhrv's SampleECG (BITalino, single lead, 1000 Hz, 22.35 s, raw 10-bit counts; see
tests/data/ecg/README.md). tests/test_live_rpeaks.py checks that the live detector agrees with the
offline one on it; here the offline path itself must give a physiologically consistent result:
a resting heart's beat count and rate, no missed or extra beats (no RR far from its neighbours),
all NeuroKit2 detectors on the same beats, HRS finite with a plausible trial mean, and the same
beats and HRS after the ECG artefacts of mecg.synth's ``hard`` realism are added.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mecg.model.heart_rate import (
    PEAK_METHODS,
    hr_change,
    hr_curve,
    hr_slope,
    instantaneous_hr,
    mean_hr_slope,
    r_peaks,
)
from mecg.synth.heart import EcgArtefacts
from mecg.synth.realism import REALISM

FS = 1000.0
REAL_ECG = Path(__file__).parent / "data" / "ecg" / "pyhrv_SampleECG_A2.npy"
#: BITalino ECG: mV = (ADC / 2^10 - 1/2) x 3.3 V / 1100 (gain) x 1000, so one mV is about 341 counts.
COUNTS_PER_MV = 1024 * 1100 / 3300.0


@pytest.fixture(scope="module")
def ecg() -> np.ndarray:
    x = np.load(REAL_ECG).astype(np.float64)
    assert x.shape == (22350,)
    return x


@pytest.fixture(scope="module")
def peaks_s(ecg: np.ndarray) -> np.ndarray:
    return r_peaks(ecg, FS) / FS


def test_beats_and_rate_are_those_of_a_resting_heart(ecg: np.ndarray, peaks_s: np.ndarray) -> None:
    duration = ecg.size / FS
    rr = np.diff(peaks_s)
    hr = 60.0 / rr
    assert 0 <= peaks_s[0] < 1.5 and duration - 1.5 < peaks_s[-1] <= duration  # beats from start to end
    assert 40 <= 60 * peaks_s.size / duration <= 100  # a resting adult
    assert 45 <= hr.min() and hr.max() <= 110
    # no missed beat (an RR near twice its neighbours) and no extra one (near half): successive RRs stay close
    med = np.median(rr)
    assert np.all((rr > 0.7 * med) & (rr < 1.3 * med))
    assert np.max(np.abs(np.diff(rr))) < 0.15  # s; beat-to-beat change of a resting sinus rhythm
    t, inst = instantaneous_hr(peaks_s)
    assert np.all(np.diff(t) > 0) and np.allclose(inst, hr)
    assert np.allclose(hr_curve(peaks_s)(t), inst)  # the curve runs through the beat-by-beat rates


def test_every_detector_finds_the_same_beats(ecg: np.ndarray, peaks_s: np.ndarray) -> None:
    # after each detector's filter has settled (3 s): same beats, none missed or added; the fiducial
    # point differs between detectors (up to ~70 ms on this morphology), the beat does not
    end = ecg.size / FS - 0.3  # a detector marking late in the beat loses one within 0.1 s of the end
    ref = peaks_s[(peaks_s > 3.5) & (peaks_s < end)]
    for method in PEAK_METHODS:
        p = r_peaks(ecg, FS, method) / FS
        p = p[(p > 3.5) & (p < end)]
        assert np.max(np.min(np.abs(ref[:, None] - p[None, :]), axis=1)) < 0.1, f"{method} missed a beat"
        assert np.max(np.min(np.abs(p[:, None] - ref[None, :]), axis=1)) < 0.1, f"{method} found an extra beat"


def test_hr_slope_and_trial_mean_are_finite_and_plausible(peaks_s: np.ndarray) -> None:
    grid = np.arange(peaks_s[1], peaks_s[-2], 0.05)
    hrs = hr_slope(peaks_s, grid)
    assert np.all(np.isfinite(hrs)) and np.all(hrs >= 0)
    mean = mean_hr_slope(peaks_s)
    # the paper's example trial: mean HRS 3.7 bpm/s; a resting heart's RSA gives a few bpm/s
    assert 0.5 < mean < 8.0
    assert np.max(hrs) < 40.0  # bpm/s: no jump from a missed or extra beat
    assert np.isnan(hr_slope(peaks_s, np.array([peaks_s[0] - 1.0]))[0])  # outside the beats: not made up
    change = hr_change(peaks_s, np.array([8.0, 12.0, 16.0]))
    assert np.all(np.isfinite(change)) and np.all(np.abs(change) < 20.0)


@pytest.mark.parametrize(("realism", "seed"), [("paper", 0), ("paper", 1), ("hard", 0), ("hard", 1)])
def test_synthetic_ecg_artefacts_on_the_real_ecg(ecg: np.ndarray, peaks_s: np.ndarray, realism: str, seed: int) -> None:
    """Every real beat survives the artefacts; a false beat can only come from an electrode-motion step."""
    t = np.arange(ecg.size) / FS
    art = EcgArtefacts.draw(np.random.default_rng(seed), REALISM[realism], ecg.size / FS, np.array([6.0, 15.0]))
    noisy = ecg + COUNTS_PER_MV * art(t)
    assert np.std(noisy - ecg) > 0.05 * np.std(ecg)  # the artefacts are not negligible
    p = r_peaks(noisy, FS) / FS
    assert np.max(np.min(np.abs(peaks_s[:, None] - p[None, :]), axis=1)) <= 0.01  # no real beat lost or moved
    extra = p[np.min(np.abs(p[:, None] - peaks_s[None, :]), axis=1) > 0.01]
    motion = np.array([m[0] for m in art.motion])
    # (zero-phase cleaning filters move a step's peak up to a few tens of ms ahead of it)
    near = [np.any((x >= motion - 0.1) & (x <= motion + 0.5)) for x in extra]
    assert all(near), f"false beats {extra} away from motion artefacts {motion}"
    if extra.size == 0:
        assert mean_hr_slope(p) == pytest.approx(mean_hr_slope(peaks_s), rel=0.25)
