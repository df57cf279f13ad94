"""How fast this machine's cores are, recorded with benchmark results run on different machines."""

from __future__ import annotations

import time


def reference_loop_s() -> float:
    """Seconds for 10**7 Python integer additions in one thread (best of 3).

    Lower is faster: 0.23 s on the machine of session 10 (2026-12-01), where the same loop typed at
    module level (slower: global variables) takes 0.52 s; that module-level loop took 2.6 s on session
    9's machine and about 1.0 s on session 6's. Compare absolute speeds only when this figure is close.
    """
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        s = 0
        for i in range(10**7):
            s += i
        best = min(best, time.perf_counter() - t)
    return round(best, 2)
