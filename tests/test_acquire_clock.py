"""The running clock fit: USB-like jitter and host stalls must not reach the mapped timestamps."""

from __future__ import annotations

import numpy as np

from mecg.acquire.clock_fit import ClockFit


def _arrivals(
    rng: np.random.Generator,
    n: int,
    rate_hz: float,
    drift_ppm: float,
    offset_s: float,
    latency_s: float,
    jitter_s: float,
    batch: int = 8,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Device times, host arrival times (read in batches: a packet waits for the batch's last) and true host times."""
    dev = 1234.5 + np.arange(n) / rate_hz
    true_host = offset_s + (dev - dev[0]) * (1 + drift_ppm * 1e-6)
    arrive = true_host + latency_s + np.abs(rng.normal(0, jitter_s, n))
    arrive = np.maximum.accumulate(arrive)  # a serial link is FIFO
    last = np.minimum(np.arange(n) // batch * batch + batch - 1, n - 1)
    return dev, arrive[last], true_host


def test_fit_removes_jitter_and_follows_drift() -> None:
    rng = np.random.default_rng(0)
    dev, arrive, true = _arrivals(rng, 40_000, 1000.0, drift_ppm=80.0, offset_s=-7.25, latency_s=0.004, jitter_s=0.002)
    fit = ClockFit()
    errors = []
    for i in range(0, dev.size, 20):  # chunks as a driver maps them, with the fit as it stands then
        fit.add(dev[i : i + 20], arrive[i : i + 20])
        errors.append(fit.map(dev[i : i + 20]) - true[i : i + 20])
    err = np.concatenate(errors)[5000:]  # after 5 s
    raw = (arrive - true)[5000:]
    assert abs(np.median(err) - 0.004) < 0.0005  # the constant latency stays (only the device knows it)
    assert np.std(err) < 0.1e-3 < np.std(raw) / 5  # the jitter does not
    assert abs(fit.drift_ppm - 80.0) < 5.0


def test_fit_ignores_a_host_stall() -> None:
    rng = np.random.default_rng(1)
    dev, arrive, true = _arrivals(rng, 20_000, 1000.0, drift_ppm=0.0, offset_s=3.0, latency_s=0.002, jitter_s=0.0005)
    arrive[8000:8600] = np.maximum(arrive[8000:8600], arrive[8599] + 0.25)  # 0.6 s of packets held up 250 ms
    fit = ClockFit()
    for i in range(0, dev.size, 50):
        fit.add(dev[i : i + 50], arrive[i : i + 50])
    err = fit.map(dev) - true
    assert np.max(np.abs(err - 0.002)) < 0.0005


def test_offset_only_until_enough_blocks_and_reset() -> None:
    fit = ClockFit(min_blocks=8)
    fit.add(np.array([10.0, 10.1]), np.array([110.004, 110.2]))
    assert fit.ready and fit.drift_ppm == 0.0
    assert np.isclose(fit.map(10.5), 110.504)
    fit.reset()
    assert not fit.ready and fit.n_blocks == 0
