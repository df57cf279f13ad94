"""Device clocks and the trigger box: how true event times become recorded timestamps.

The true timeline ``T`` (s) is the recorder's LSL clock. A device has its own crystal: a
nominal rate ``r`` really runs at ``r * (1 + drift_ppm * 1e-6)``, so its k-th sample happens at
``T = start_s + k / (r * (1 + drift))``. The driver stamps each sample when it reaches the host,
``latency_s`` later with ``jitter_s`` of random spread, and on the clock of the machine that
runs the driver, which is ``offset_s`` ahead of the recorder's clock (LSL then measures that
offset as ``-offset_s``, the value to *add* to the sender's timestamps). ``reset_at_s`` models
a clock reset of the sender: from that moment its offset becomes ``offset_after_reset_s``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DeviceClock:
    """Timing of one device and its LSL sender (all in seconds, drift in ppm)."""

    drift_ppm: float = 0.0
    offset_s: float = 0.0
    latency_s: float = 0.0
    jitter_s: float = 0.0
    start_s: float = 0.0
    reset_at_s: float | None = None
    offset_after_reset_s: float = 0.0

    def sample_times(self, nominal_rate_hz: float, n: int, first: int = 0) -> np.ndarray:
        """True times ``T`` (s) of samples ``first .. first + n - 1`` (exposure start for a camera)."""
        k = np.arange(first, first + n, dtype=np.float64)
        return self.start_s + k / (nominal_rate_hz * (1.0 + self.drift_ppm * 1e-6))

    def sender_offset(self, t_true: np.ndarray) -> np.ndarray:
        """Offset (s) of the sender's clock relative to the recorder's at true times ``t_true``."""
        t = np.asarray(t_true, dtype=np.float64)
        if self.reset_at_s is None:
            return np.full(t.shape, self.offset_s)
        return np.where(t < self.reset_at_s, self.offset_s, self.offset_after_reset_s)

    def stamps(self, t_true: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """LSL timestamps (s, sender clock) a driver would attach to events at true times ``t_true``."""
        t = np.asarray(t_true, dtype=np.float64)
        arrival = (
            t + self.latency_s + np.abs(rng.normal(0.0, self.jitter_s, t.shape))
            if self.jitter_s
            else t + self.latency_s
        )
        return arrival + self.sender_offset(arrival)

    def clock_offsets(
        self, duration_s: float, rng: np.random.Generator, every_s: float = 5.0, noise_s: float = 50e-6
    ) -> np.ndarray:
        """Measurements ``[local_time, offset]`` as LabRecorder's time_correction takes them every ``every_s``."""
        local = np.arange(0.0, duration_s + every_s, every_s)
        return np.column_stack([local, -self.sender_offset(local) + rng.normal(0.0, noise_s, local.shape)])


def trigger_pulses(
    rng: np.random.Generator, duration_s: float, min_gap_s: float = 2.0, max_gap_s: float = 8.0, width_s: float = 0.05
) -> np.ndarray:
    """Trigger pulses ``(n, 2)`` of ``[rise_s, fall_s]`` on the true timeline, gaps uniform in [min, max] s.

    Irregular gaps make the pulse train's pattern unique, so camera and amplifier trains can be
    matched without ambiguity.
    """
    rises = []
    t = float(rng.uniform(0.3, min(1.5, max_gap_s)))
    while t < duration_s - width_s:
        rises.append(t)
        t += float(rng.uniform(min_gap_s, max_gap_s))
    r = np.asarray(rises)
    return np.column_stack([r, r + width_s]) if r.size else np.zeros((0, 2))


def line_level(t_s: np.ndarray, pulses: np.ndarray) -> np.ndarray:
    """Trigger line (0/1) at true times ``t_s``."""
    t = np.asarray(t_s, dtype=np.float64)
    if pulses.size == 0:
        return np.zeros(t.shape, dtype=np.int8)
    i = np.searchsorted(pulses[:, 0], t, side="right") - 1
    ok = i >= 0
    high = np.zeros(t.shape, dtype=bool)
    high[ok] = t[ok] < pulses[i[ok], 1]
    return high.astype(np.int8)


def exposure_overlap(start_s: np.ndarray, exposure_s: float, pulses: np.ndarray) -> np.ndarray:
    """Fraction (0-1) of each exposure ``[start, start + exposure_s]`` during which the line was high."""
    start = np.asarray(start_s, dtype=np.float64)
    out = np.zeros(start.shape)
    if pulses.size == 0:
        return out
    end = start + exposure_s
    j = np.searchsorted(pulses[:, 1], start, side="right")  # first pulse ending after exposure start
    for step in (0, 1):  # an exposure shorter than the gaps overlaps at most two pulses
        k = j + step
        ok = k < len(pulses)
        lo = np.maximum(start[ok], pulses[k[ok], 0])
        hi = np.minimum(end[ok], pulses[k[ok], 1])
        out[ok] += np.clip(hi - lo, 0, None)
    return np.clip(out / exposure_s, 0, 1)
