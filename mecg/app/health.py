"""A stream's health at a glance, from the recorder's :class:`~mecg.acquire.recorder.StreamStatus`.

Red (``bad``) when the stream stalls (no sample for 1 s or 20 sample periods), is lost, failed,
runs below ``SLOW_FRACTION`` of its nominal rate (after ``SETTLE_S`` of data), or dropped samples
in the last ``DROP_MEMORY_S``; amber (``warn``) while waiting for its first sample; green otherwise.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from mecg.acquire.recorder import StreamStatus

#: A regular stream measured below this share of its nominal rate is unhealthy.
SLOW_FRACTION = 0.8
#: Seconds of data before the measured rate is judged (the 2 s rate window must fill first).
SETTLE_S = 3.0
#: Seconds a drop keeps a stream red.
DROP_MEMORY_S = 5.0


@dataclass
class HealthTracker:
    """Remembers each stream's dropped count to tell new drops; :meth:`judge` gives ``(level, text)``."""

    _dropped: dict[str, tuple[int, float]] = field(default_factory=dict)

    def judge(self, s: StreamStatus, now_s: float | None = None) -> tuple[str, str]:
        """``("ok" | "warn" | "bad", text)`` for one stream; ``now_s``: a monotonic time (s)."""
        now = time.monotonic() if now_s is None else now_s
        last, since = self._dropped.get(s.key, (s.dropped, -math.inf))
        if s.dropped > last:
            since = now
        self._dropped[s.key] = (s.dropped, since)
        if s.state in ("stalled", "lost", "error"):
            return "bad", s.state + (f": {s.error}" if s.error else "")
        if s.state == "waiting":
            return "warn", "waiting for data"
        if now - since < DROP_MEMORY_S:
            return "bad", f"dropping samples ({s.dropped} so far)"
        regular = s.nominal_srate_hz > 0
        span = s.last_ts - s.first_ts if s.samples > 1 else 0.0
        if regular and span > SETTLE_S and s.rate_hz < SLOW_FRACTION * s.nominal_srate_hz:
            return "bad", f"slow: {s.rate_hz:.1f} of {s.nominal_srate_hz:g} Hz"
        return "ok", "ok"

    def forget(self) -> None:
        """Start afresh (a new recording)."""
        self._dropped.clear()
