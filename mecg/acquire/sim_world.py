"""What the virtual devices share: the true timeline, the trigger line, and how each device keeps time.

The **true timeline** ``T`` (s) starts when a simulation starts; on the host it is
``local_clock() - t0``. A synthetic :class:`~mecg.synth.Trial` says what happens at each ``T``
(heart beats, face, camera exposures); a trial shorter than the run is played in a loop.

The **trigger line** is the wire from the trigger box to the amplifier's TRIG input and to the
LED in the camera's view: the amplifier samples its level, the camera integrates it over each
exposure. It holds the trial's own pulse schedule (when no trigger box is simulated) and/or the
pulses a virtual trigger box adds while running. A pulse is never added at a time some device
has already sampled (:meth:`TriggerLine.add` moves it later), so every device sees every pulse
whole.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
from pylsl import local_clock

from mecg.synth.clocks import exposure_overlap, line_level


class Timeline:
    """The true timeline of a simulation on the host's LSL clock (s)."""

    def __init__(self, t0_host_s: float | None = None) -> None:
        self.t0 = local_clock() if t0_host_s is None else float(t0_host_s)

    def now(self) -> float:
        """True time now (s)."""
        return local_clock() - self.t0

    def host(self, t_true_s: np.ndarray | float) -> np.ndarray | float:
        """Host LSL-clock time (s) of true time(s) ``t_true_s``."""
        return np.asarray(t_true_s) + self.t0 if isinstance(t_true_s, np.ndarray) else t_true_s + self.t0


@dataclass(frozen=True)
class DeviceTiming:
    """How a virtual device keeps time and how its bytes reach the host.

    ``clock_offset_s``: the device clock's reading at true time 0 (its counter started long
    before); ``drift_ppm``: its crystal's error (it counts ``1 + drift`` device seconds per true
    second and samples that much faster); ``latency_s`` + half-normal ``jitter_s``: from a
    sample (or answer) to its bytes being readable on the host.
    """

    clock_offset_s: float = 1000.0
    drift_ppm: float = 0.0
    latency_s: float = 0.004
    jitter_s: float = 0.0005

    def device_s(self, t_true_s: np.ndarray | float) -> np.ndarray | float:
        """Device clock reading (s) at true time(s)."""
        return self.clock_offset_s + np.asarray(t_true_s) * (1.0 + self.drift_ppm * 1e-6)


class TriggerLine:
    """The trigger wire's pulses on the true timeline, shared by the virtual devices (thread safe).

    Parameters
    ----------
    pulses
        A fixed ``(n, 2)`` schedule of ``[rise, fall]`` (s), e.g. ``trial.pulses``.
    period_s
        Repeat ``pulses`` every ``period_s`` (a looped trial); ``None``: once.
    """

    def __init__(self, pulses: np.ndarray | None = None, period_s: float | None = None) -> None:
        self._base = np.zeros((0, 2)) if pulses is None else np.asarray(pulses, dtype=np.float64).reshape(-1, 2)
        self._period = period_s
        self._added = np.zeros((0, 2))
        self._lock = threading.Lock()
        self._seen_until = -np.inf  # latest true time any device has sampled

    def add(self, rise_s: float, width_s: float) -> float:
        """Add a pulse rising at ``rise_s`` (or just after the latest sampled time); returns its rise (s)."""
        with self._lock:
            rise = max(float(rise_s), self._seen_until + 1e-6)
            self._added = np.vstack([self._added, [rise, rise + width_s]])
            self._added = self._added[np.argsort(self._added[:, 0], kind="stable")]
            return rise

    def pulses(self, t0_s: float, t1_s: float) -> np.ndarray:
        """All pulses rising in ``[t0_s, t1_s)``, sorted."""
        with self._lock:
            added = self._added.copy()
        base = self._base
        if self._period and base.size:
            k0, k1 = int(np.floor(t0_s / self._period)) - 1, int(np.ceil(t1_s / self._period)) + 1
            base = np.concatenate([base + k * self._period for k in range(k0, k1)])
        allp = np.concatenate([base, added])
        allp = allp[(allp[:, 0] >= t0_s) & (allp[:, 0] < t1_s)]
        return allp[np.argsort(allp[:, 0], kind="stable")]

    def _mark(self, t_max: float) -> np.ndarray:
        with self._lock:
            self._seen_until = max(self._seen_until, t_max)
            return self._added.copy()

    def level(self, t_s: np.ndarray) -> np.ndarray:
        """Line level (0/1, int8) at true times ``t_s``; marks them as sampled."""
        t = np.asarray(t_s, dtype=np.float64)
        if t.size == 0:
            return np.zeros(0, np.int8)
        added = self._mark(float(t.max()))
        base_t = np.mod(t, self._period) if self._period else t
        return np.maximum(line_level(base_t, self._base), line_level(t, added)).astype(np.int8)

    def exposure_level(self, start_s: np.ndarray, exposure_s: float) -> np.ndarray:
        """Fraction (0-1) of each exposure ``[start, start + exposure_s]`` with the line high."""
        s = np.atleast_1d(np.asarray(start_s, dtype=np.float64))
        added = self._mark(float(s.max()) + exposure_s)
        base_s = np.mod(s, self._period) if self._period else s
        return np.clip(exposure_overlap(base_s, exposure_s, self._base) + exposure_overlap(s, exposure_s, added), 0, 1)


def looped_segments(t_s: np.ndarray, period_s: float) -> list[tuple[slice, np.ndarray]]:
    """Split sorted true times into runs inside one loop of a ``period_s`` trial: (slice, times in the trial)."""
    loops = np.floor(t_s / period_s).astype(np.int64)
    out = []
    start = 0
    for stop in [*(np.flatnonzero(np.diff(loops)) + 1).tolist(), t_s.size]:
        if stop > start:
            out.append((slice(start, stop), t_s[start:stop] - loops[start] * period_s))
        start = stop
    return out
