"""A running robust map from a device's clock to the host's LSL clock.

A serial device stamps each packet with its own clock (``device_s``); the host sees the packet
arrive at ``host_s = device_s * (1 + drift) + offset + latency + jitter``, where the jitter is
one-sided (USB polling, OS scheduling, reads that return several packets at once: a packet is
never early). The fit therefore follows the **lower envelope** of ``host_s - device_s``:

1. Points fall into blocks of ``block_s`` of device time; each block keeps only its earliest
   arrival relative to the device clock (the packet that waited least).
2. Blocks older than ``window_s`` (device time) are forgotten, so the map follows slow drift
   changes and a long run costs constant memory.
3. With fewer than ``min_blocks`` blocks the map is an offset only (slope 1): the lowest
   ``host_s - device_s`` seen so far.
4. Otherwise a least-squares line through the block minima, refitted without the blocks that lie
   more than ``outlier_s`` above it (blocks in which every packet was held up, e.g. during a
   host stall), then lowered onto the lowest remaining block minimum so the line stays an
   envelope. The slope is clamped to +-``max_drift_ppm``.

The mapped times carry the device's sample timing with the jitter removed, plus the constant part
of the transport latency, which only the device (or a loopback measurement) can know; a driver
subtracts it when told (``latency_s``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


class ClockFit:
    """Fit ``host_s ~ device_s`` on the lower envelope of arrivals (all times in s).

    Parameters
    ----------
    window_s
        Device-time span of blocks kept (default 60 s).
    block_s
        Device-time length of one block (default 0.25 s).
    min_blocks
        Blocks needed before a slope (drift) is fitted (default 8, i.e. 2 s at the defaults).
    max_drift_ppm
        Largest drift believed, in ppm (default 500; crystals are within +-100).
    outlier_s
        A block minimum this far above the line is ignored in the refit (default 1 ms).
    refit_s
        Once the slope is fitted, refit at most once per this much device time (default 0.1 s);
        until then after every :meth:`add`.
    """

    def __init__(
        self,
        window_s: float = 60.0,
        block_s: float = 0.25,
        min_blocks: int = 8,
        max_drift_ppm: float = 500.0,
        outlier_s: float = 0.001,
        refit_s: float = 0.1,
    ) -> None:
        self.window_s, self.block_s, self.min_blocks = window_s, block_s, min_blocks
        self.max_slope = max_drift_ppm * 1e-6
        self.outlier_s = outlier_s
        self.refit_s = refit_s
        self.reset()

    def reset(self) -> None:
        """Forget everything (the device restarted and its clock with it)."""
        self._blocks: dict[int, tuple[float, float]] = {}  # block -> (device_s, host_s - device_s) of its minimum
        self._ref = 0.0  # device time the line is expanded around (keeps the intercept well conditioned)
        self._intercept = 0.0  # offset at device time _ref
        self._slope = 0.0  # drift (host s per device s - 1)
        self._last_refit = -np.inf
        self.points = 0

    @property
    def ready(self) -> bool:
        """True once at least one point was added."""
        return self.points > 0

    @property
    def drift_ppm(self) -> float:
        """Fitted drift of the device clock against the host's, in ppm."""
        return self._slope * 1e6

    @property
    def n_blocks(self) -> int:
        """Blocks the fit uses now."""
        return len(self._blocks)

    def offset_s(self, device_s: float | None = None) -> float:
        """``host - device`` (s) at ``device_s`` (default: the newest block)."""
        if device_s is None:
            device_s = max((v[0] for v in self._blocks.values()), default=self._ref)
        return self._intercept + self._slope * (device_s - self._ref)

    def add(self, device_s: np.ndarray, host_s: np.ndarray | float) -> None:
        """Add arrivals: device times (s) of packets and the host times (s) they arrived."""
        d = np.atleast_1d(np.asarray(device_s, dtype=np.float64))
        if d.size == 0:
            return
        r = np.broadcast_to(np.asarray(host_s, dtype=np.float64), d.shape) - d
        blocks = np.floor(d / self.block_s).astype(np.int64)
        for b in np.unique(blocks):
            sel = blocks == b
            k = int(np.argmin(r[sel]))
            cand = (float(d[sel][k]), float(r[sel][k]))
            old = self._blocks.get(int(b))
            if old is None or cand[1] < old[1]:
                self._blocks[int(b)] = cand
        newest = float(d.max())
        horizon = np.floor((newest - self.window_s) / self.block_s)
        for b in [b for b in self._blocks if b < horizon]:
            del self._blocks[b]
        self.points += d.size
        if len(self._blocks) < self.min_blocks or newest - self._last_refit >= self.refit_s:
            self._refit(newest)
            self._last_refit = newest

    def _refit(self, newest: float) -> None:
        pts = np.array(list(self._blocks.values()))
        x, r = pts[:, 0], pts[:, 1]
        self._ref = newest
        if len(pts) < self.min_blocks:
            self._slope, self._intercept = 0.0, float(r.min())
            return
        xc = x - newest
        keep = np.ones(len(pts), dtype=bool)
        for _ in range(2):
            slope, icpt = np.polyfit(xc[keep], r[keep], 1)
            slope = float(np.clip(slope, -self.max_slope, self.max_slope))
            resid = r - (icpt + slope * xc)
            new_keep = resid <= self.outlier_s
            if new_keep.sum() < 2 or np.array_equal(new_keep, keep):
                break
            keep = new_keep
        resid = r[keep] - slope * xc[keep]
        self._slope, self._intercept = slope, float(resid.min())

    def map(self, device_s: np.ndarray | float) -> np.ndarray:
        """Host times (s) of device times ``device_s`` (s)."""
        d = np.asarray(device_s, dtype=np.float64)
        return d + self._intercept + self._slope * (d - self._ref)


class StampSlew:
    """Per-sample timestamps that follow a :class:`ClockFit` without false steps (all times in s).

    Each published stamp is the fitted time of its sample plus a correction ``err``. When the fit
    changes (a new block minimum, a refined drift), the previous stamp's fitted time changes with
    it; the difference becomes ``err``, which then shrinks toward 0 by at most ``max_slew`` s per
    s of device time. So a fit that moves 0.7 ms at 1000 Hz is followed over ~7 samples (each
    step 1.1 periods) instead of one 1.7-period step that readers count as a lost sample; the step
    between samples comes from the fit (its drift included), so a real gap in the device counter
    shows at its full size and no lag builds up however far the clocks drift apart. A correction
    larger than ``resync_s`` is not slewed: the stamps jump onto the fit (a real clock event, e.g.
    the host clock stepped). Stamps stay strictly increasing (:func:`forward_only`).

    Parameters
    ----------
    max_slew
        Largest correction rate, s per s of device time (default 0.1, i.e. 0.1 sample period per sample).
    resync_s
        Corrections larger than this (s) jump at once (default 5 ms).
    """

    def __init__(self, max_slew: float = 0.1, resync_s: float = 0.005) -> None:
        self.max_slew, self.resync_s = max_slew, resync_s
        self.last_ts = -np.inf  # survives reset: stamps never go back, not even across a reconnect
        self.resyncs = 0
        self.reset()

    def reset(self) -> None:
        """Forget the device clock (it restarted, e.g. on a reconnect): the next stamps jump onto the fit."""
        self._last_device_s = np.nan

    def stamps(self, device_s: np.ndarray, fitted: Callable[[np.ndarray], np.ndarray], period_s: float) -> np.ndarray:
        """Stamps (s) of samples at device times ``device_s`` (s, increasing).

        ``fitted`` maps device times to their fitted host times (the fit's ``map`` minus the
        latency); ``period_s`` is the nominal sample period (stamps are at least half of it apart).
        """
        d = np.asarray(device_s, dtype=np.float64)
        if d.size == 0:
            return d.copy()
        target = np.asarray(fitted(d), dtype=np.float64)
        err = 0.0
        if np.isfinite(self._last_device_s) and np.isfinite(self.last_ts):
            err = self.last_ts - float(fitted(np.array([self._last_device_s]))[0])
            if abs(err) > self.resync_s:
                err = 0.0
                self.resyncs += 1
        left = np.maximum(abs(err) - self.max_slew * np.maximum(d - (self._last_device_s if err else d[0]), 0.0), 0.0)
        ts = forward_only(target + np.copysign(left, err), self.last_ts, 0.5 * period_s)
        self.last_ts, self._last_device_s = float(ts[-1]), float(d[-1])
        return ts


def forward_only(ts: np.ndarray, last: float, min_step: float) -> np.ndarray:
    """``ts`` made strictly increasing after ``last``: each at least ``min_step`` (s) after the one before.

    When the clock fit improves and moves back a little, the next samples are spaced ``min_step``
    until they meet the new fit again, instead of several samples sharing one timestamp.
    """
    c = min_step * np.arange(1, ts.size + 1)
    return np.maximum.accumulate(np.maximum(ts - c, last)) + c
