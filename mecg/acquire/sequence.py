"""Counters that wrap: packet sequence numbers (lost / duplicated packets) and device clocks (unwrap)."""

from __future__ import annotations

import numpy as np


class SequenceTracker:
    """Counts lost packets from gaps in a wrapping sequence counter and flags repeats.

    A step ``d = (seq - last) mod modulus`` of 1 is the next packet; ``1 < d < modulus/2`` means
    ``d - 1`` packets were lost; ``d == 0`` is a duplicate and a step backwards (``d >=
    modulus/2``) a stale packet: both are dropped. Gaps of ``modulus/2`` packets or more cannot
    be told from stale packets (32768 packets = 33 s at 1000 Hz for a 16-bit counter).

    ``elapsed`` optionally tells how many packet periods passed since the last accepted packet
    (from a clock); a gap longer than the counter can express is then counted in whole wraps.
    """

    def __init__(self, modulus: int) -> None:
        self.modulus = modulus
        self.last: int | None = None
        self.lost = 0
        self.duplicates = 0
        self.stale = 0
        self.accepted = 0
        #: Step of each packet of the last :meth:`check` (1 = next, 0 for dropped ones).
        self.steps = np.zeros(0, dtype=np.int64)

    def reset(self) -> None:
        """Forget the last counter (a device restart); totals are kept."""
        self.last = None

    def check(self, seq: np.ndarray, elapsed: np.ndarray | None = None) -> np.ndarray:
        """Boolean mask of the packets in ``seq`` to keep (in order); updates the counts.

        Parameters
        ----------
        seq
            Sequence numbers in arrival order.
        elapsed
            Optional packet periods since the previous packet in ``seq`` (estimated from a clock);
            used only to add whole counter wraps to long gaps.
        """
        s = np.asarray(seq, dtype=np.int64)
        keep = np.ones(s.size, dtype=bool)
        if s.size == 0:
            return keep
        m = self.modulus
        prev = np.concatenate([[s[0] - 1 if self.last is None else self.last], s[:-1]])
        d = (s - prev) % m
        if elapsed is None and np.all((d >= 1) & (d < m // 2)):  # fast path: no repeats
            self.lost += int(np.sum(d - 1))
            self.accepted += s.size
            self.last = int(s[-1])
            self.steps = d
            return keep
        last = self.last
        steps = np.zeros(s.size, dtype=np.int64)
        for i, v in enumerate(s.tolist()):
            if last is None:
                last = v
                steps[i] = 1
                continue
            step = (v - last) % m
            if step == 0:
                self.duplicates += 1
                keep[i] = False
                continue
            if step >= m // 2:
                self.stale += 1
                keep[i] = False
                continue
            if elapsed is not None and elapsed[i] > m:
                step += m * round(float(elapsed[i] - step) / m)
            self.lost += step - 1
            steps[i] = step
            last = v
        self.accepted += int(keep.sum())
        self.last = last
        self.steps = steps
        return keep


class Unwrapper:
    """Unwraps a ``bits``-bit counter (a device clock in us) into a monotonic int64 count.

    Steps are taken modulo ``2**bits``; a step backwards of less than half the range is kept
    negative (a repeat), so a duplicated packet does not add a whole wrap.
    """

    def __init__(self, bits: int = 32) -> None:
        self.modulus = 1 << bits
        self.last: int | None = None  # last raw value
        self.base = 0  # unwrapped value of ``last``

    def reset(self) -> None:
        """Start again (the device clock restarted)."""
        self.last = None
        self.base = 0

    def unwrap(self, raw: np.ndarray) -> np.ndarray:
        """Unwrapped values of ``raw`` (int64), continuing from the previous call."""
        r = np.asarray(raw, dtype=np.int64)
        if r.size == 0:
            return r
        m = self.modulus
        if self.last is None:
            self.last, self.base = int(r[0]), int(r[0])
        prev = np.concatenate([[self.last], r[:-1]])
        step = (r - prev) % m
        step = np.where(step >= m // 2, step - m, step)
        out = self.base + np.cumsum(step)
        self.last, self.base = int(r[-1]), int(out[-1])
        return out
