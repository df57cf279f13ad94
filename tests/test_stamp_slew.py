"""StampSlew: per-sample stamps follow the clock fit without phantom gaps, lag or hidden losses."""

from __future__ import annotations

import numpy as np

from mecg.acquire.clock_fit import ClockFit, StampSlew

RATE = 1000.0
P = 1.0 / RATE


def _run(chunks, fitted_for_chunk, slew: StampSlew | None = None) -> np.ndarray:
    """Stamp each chunk of device times with the map ``fitted_for_chunk(k)`` current at chunk k."""
    slew = slew or StampSlew()
    return np.concatenate([slew.stamps(d, fitted_for_chunk(k), P) for k, d in enumerate(chunks)])


def _chunks(n: int, per: int = 10, gap_after: int | None = None, gap: int = 0) -> list[np.ndarray]:
    idx = np.arange(n, dtype=np.float64)
    if gap_after is not None:
        idx[gap_after:] += gap
    return [idx[i : i + per] * P for i in range(0, n, per)]


def test_forward_fit_jump_makes_no_phantom_gap() -> None:
    # The fit moves 0.69 ms forward after chunk 20 (as seen under load): no step reaches 1.5 periods.
    def fitted(k):
        off = 100.0 + (0.00069 if k >= 20 else 0.0)
        return lambda d: d + off

    ts = _run(_chunks(1000), fitted)
    steps = np.diff(ts)
    assert steps.max() < 1.2 * P
    assert steps.min() > 0.5 * P
    assert abs(ts[-1] - (0.999 + 100.00069)) < 1e-9  # caught up with the fit


def test_backward_fit_jump_is_slewed_not_stacked() -> None:
    def fitted(k):
        off = 100.0 - (0.002 if k >= 20 else 0.0)
        return lambda d: d + off

    ts = _run(_chunks(1000), fitted)
    steps = np.diff(ts)
    assert steps.min() > 0.85 * P and steps.max() < 1.01 * P
    assert abs(ts[-1] - (0.999 + 99.998)) < 1e-9


def test_real_counter_gap_shows_at_full_size() -> None:
    # 36 samples missing on the device counter, and the fit moves 0.5 ms at the same time.
    def fitted(k):
        off = 100.0 + (0.0005 if k >= 30 else 0.0)
        return lambda d: d + off

    ts = _run(_chunks(600, gap_after=300, gap=36), fitted)
    steps = np.diff(ts)
    big = np.flatnonzero(steps > 1.5 * P)
    assert big.tolist() == [299]
    assert abs(steps[299] - 37 * P) < 0.6 * P


def test_drift_either_way_keeps_lag_bounded() -> None:
    # 200 ppm either way over 10 min, the fit refitted every chunk from noisy arrivals.
    rng = np.random.default_rng(7)
    for ppm in (200.0, -200.0):
        fit, slew = ClockFit(), StampSlew()
        worst, n_per = 0.0, 50
        for k in range(int(600 * RATE / n_per)):
            d = (k * n_per + np.arange(n_per)) * P
            arrival = d[-1] * (1 + ppm * 1e-6) + 5.0 + rng.exponential(0.002)  # the chunk arrives at once
            fit.add(d, arrival)
            ts = slew.stamps(d, fit.map, P)
            worst = max(worst, float(np.abs(ts - fit.map(d)).max()))
            if k == 0:
                first = ts[0]
        assert worst < 0.005  # never more than the resync threshold off the fit
        truth_span = (k * n_per + n_per - 1) * P * (1 + ppm * 1e-6)
        assert abs((ts[-1] - first) - truth_span) < 0.003  # no lag built up over 10 min
        assert abs(fit.drift_ppm - ppm) < 20


def test_large_jump_resyncs_and_reconnect_restarts() -> None:
    def fitted(k):
        off = 100.0 + (0.020 if k >= 20 else 0.0)
        return lambda d: d + off

    slew = StampSlew()
    ts = _run(_chunks(400), fitted, slew)
    steps = np.diff(ts)
    assert slew.resyncs == 1
    assert abs(steps[199] - (P + 0.020)) < 1e-9  # shown as the clock event it is
    assert np.allclose(ts[200:], np.arange(200, 400) * P + 100.020)
    # A reconnect: the device clock restarts at 0, the fit is new; stamps jump onto it, still increasing.
    slew.reset()
    after = slew.stamps(np.arange(10) * P, lambda d: d + 100.5, P)
    assert np.allclose(after, np.arange(10) * P + 100.5)
    assert after[0] > ts[-1]
