"""Durations and byte counts as people read them, for the recorder's status (``mecg record``, the lab app)."""

from __future__ import annotations


def hms(seconds: float) -> str:
    """``HH:MM:SS`` of a duration in seconds (negative counts as 0, fractions are cut)."""
    s = max(0, int(seconds))
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def size_text(n_bytes: float) -> str:
    """A byte count for people: ``1.23 GB``, ``4.56 MB``, ``7.89 kB`` (powers of 1000) or ``12 B``."""
    for unit, f in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n_bytes >= f:
            return f"{n_bytes / f:.2f} {unit}"
    return f"{int(n_bytes)} B"
