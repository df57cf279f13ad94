"""Waiting on conditions with a deadline instead of fixed sleeps: fast on a quiet machine, holding on a loaded one."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

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
