"""Waiting on conditions with a deadline instead of fixed sleeps: fast on a quiet machine, holding on a loaded one."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import numpy as np

if TYPE_CHECKING:
    import pylsl

T = TypeVar("T")


def wait_until(pred: Callable[[], T], timeout_s: float, poll_s: float = 0.02) -> T | bool:
    """Poll ``pred`` every ``poll_s`` seconds until it returns something true or ``timeout_s`` seconds pass.

    Returns the last value of ``pred()`` (true when the condition came, false on time-out), so that a test
    writes ``assert wait_until(lambda: ..., 10)``.
    """
    end = time.monotonic() + timeout_s
    while True:
        got = pred()
        if got or time.monotonic() >= end:
            return got
        time.sleep(poll_s)


def pull(inlet: pylsl.StreamInlet, seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """Samples and timestamps (on this host's clock) received for ``seconds``; call while the outlet lives."""
    chunks, stamps = [], []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        d, t = inlet.pull_chunk(timeout=0.05, max_samples=4096, as_numpy=True)
        if len(t):
            chunks.append(d)
            stamps.append(t)
    if not stamps:
        return np.zeros((0, inlet.channel_count)), np.zeros(0)
    return np.concatenate(chunks), np.concatenate(stamps) + inlet.time_correction(timeout=2.0)
