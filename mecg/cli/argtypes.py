"""Argument types shared by the ``mecg`` subcommands (argparse ``type=`` callables)."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def positive(kind: type) -> Callable[[str], object]:
    """An argparse type for a number of ``kind`` (int or float) that must be > 0."""

    def conv(text: str) -> object:
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
        if v <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return v

    return conv


#: A float that must be > 0 (seconds, Hz, ...).
positive_float = positive(float)


def nonneg_float(text: str) -> float:
    """An argparse type for a finite float >= 0 (a rate that may be zero)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not 0 <= v < float("inf"):
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return v


def parse_size(text: str) -> tuple[int, int]:
    """``"640x480"`` -> ``(640, 480)``; raises ``argparse.ArgumentTypeError`` with the expected form."""
    try:
        w, h = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 640x480, got {text!r}") from None
    if not (16 <= w <= 8192 and 16 <= h <= 8192):
        raise argparse.ArgumentTypeError(f"size {w}x{h} is out of range (16-8192 px per side)")
    return w, h
