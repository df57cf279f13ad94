"""How fast this machine's cores are, recorded with benchmark results run on different machines."""

from __future__ import annotations

import time


def reference_loop_s() -> float:
    """Seconds for 10**7 Python integer additions in one thread (best of 3).

    Lower is faster: 2.6 s on the 2026-12-01 morning machine, 0.52 s on the afternoon one. Compare
    absolute speeds of runs only when this figure is close.
    """
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        s = 0
        for i in range(10**7):
            s += i
        best = min(best, time.perf_counter() - t)
    return round(best, 2)
