"""Argument types shared by the ``mecg`` subcommands (argparse ``type=`` callables)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def _interval(lo: float, hi: float, lo_open: bool, hi_open: bool) -> str:
    return f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"


def bounded(
    kind: type, lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False, unit: str = ""
) -> Callable[[str], int | float]:
    """An argparse type for a finite ``kind`` (int or float) within ``[lo, hi]``.

    ``lo_open`` / ``hi_open`` exclude the bound itself (``(0, 1000]``: more than 0, at most 1000).
    NaN and infinities are refused (``nan > 0`` is false, so a plain "> 0" check lets NaN through),
    and so is any value beyond ``hi``: each option's bounds keep what it allocates within the machine.
    """
    where = _interval(lo, hi, lo_open, hi_open) + (f" {unit}" if unit else "")
    noun = "integer" if kind is int else "number"

    def conv(text: str) -> int | float:
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a finite {noun} in {where}, got {text!r}") from None
        ok = (kind is int or math.isfinite(v)) and (lo < v if lo_open else lo <= v) and (v < hi if hi_open else v <= hi)
        if not ok:
            raise argparse.ArgumentTypeError(f"must be a finite {noun} in {where}, got {text}")
        return v

    return conv


def positive(kind: type, hi: float = 1e9) -> Callable[[str], int | float]:
    """An argparse type for a finite number of ``kind`` (int or float) in ``(0, hi]``."""
    return bounded(kind, 0, hi, lo_open=True)


#: A finite float > 0 and at most 1e9 (seconds, Hz, ...); options with tighter limits use :func:`bounded`.
positive_float = positive(float)
#: A finite float >= 0 and at most 1e9.
nonneg_float = bounded(float, 0, 1e9)

#: Shared limits (inclusive) of options several commands have.
#: Camera frame rates: high-speed cameras used for micro-expressions reach about 1000 fps.
FPS = bounded(float, 0, 1000, lo_open=True, unit="fps")
#: Expressions per minute of a simulated participant (an expression lasts 0.2-4 s).
PER_MINUTE = bounded(float, 0, 60, unit="per minute")
#: A run's or a trial's length: up to one day (s).
SECONDS = bounded(float, 0, 86400, lo_open=True, unit="s")
#: Latencies and jitters of a device (ms).
LATENCY_MS = bounded(float, 0, 10000, unit="ms")
#: A clock's drift (ppm): crystals are within about 100 ppm.
DRIFT_PPM = bounded(float, -1000, 1000, unit="ppm")
#: Amplifier sampling rates (Hz).
RATE_HZ = bounded(float, 0, 20000, lo_open=True, unit="Hz")
#: Worker processes or threads.
WORKERS = bounded(int, 1, 256)
#: Sessions worked on at once (``--jobs``), one process each.
JOBS = bounded(int, 1, 256)
#: Serial baud rates.
BAUD = bounded(int, 50, 20_000_000)
#: Linux real-time priorities (SCHED_FIFO).
RT_PRIORITY = bounded(int, 1, 99)


def parse_size(text: str) -> tuple[int, int]:
    """``"640x480"`` -> ``(640, 480)``; raises ``argparse.ArgumentTypeError`` with the expected form."""
    try:
        w, h = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 640x480, got {text!r}") from None
    if not (16 <= w <= 8192 and 16 <= h <= 8192):
        raise argparse.ArgumentTypeError(f"size {w}x{h} is out of range (16-8192 px per side)")
    return w, h
