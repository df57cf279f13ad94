"""A cheap look at what a stream's pull thread just received, for a live display (the lab app).

The recorder's pull thread hands every chunk it appended to the stream's :class:`StreamPreview`
(``RecorderConfig.preview``). The preview keeps, under a short lock:

- **video**: the newest frame, downsampled by striding (every ``step``-th row and column, so a
  640 px wide frame becomes 320 px) and copied at most ``frame_hz`` times a second: about 2 MB/s
  at 30 Hz for 640x480 grey, instead of the 46 MB/s a second full-rate inlet would cost;
- **signals** (ECG, ...): the last ``signal_s`` seconds of samples and timestamps in a ring;
- **markers**: the last ``max_markers`` markers with their timestamps.

A display polls :meth:`StreamPreview.frame`, :meth:`StreamPreview.signal` and
:meth:`StreamPreview.markers` at its own rate (the app: 20 Hz); readers get copies, never the
ring itself. Qt-free: the engine never imports Qt.
"""

from __future__ import annotations

import collections
import math
import threading
import time

import numpy as np

from mecg.acquire.states import StreamKind
from mecg.session import StreamInfo


class StreamPreview:
    """The recent data of one stream (see the module docstring). Times in s on the LSL clock.

    ``signal_s``: seconds of signal kept; ``frame_hz``: most frames copied per second;
    ``max_width_px``: frames are strided down to at most this width; ``max_markers``: markers kept.
    """

    def __init__(
        self,
        info: StreamInfo,
        signal_s: float = 10.0,
        frame_hz: float = 30.0,
        max_width_px: int = 320,
        max_markers: int = 200,
    ) -> None:
        self.info = info
        self.kind = info.kind
        self._lock = threading.Lock()
        self.received = 0  # samples (frames) seen, whether kept or not
        self._frame: np.ndarray | None = None
        self._frame_ts = math.nan
        self._frame_due = 0.0
        self._frame_every_s = 1.0 / frame_hz if frame_hz > 0 else 0.0
        self._markers: collections.deque[tuple[float, str]] = collections.deque(maxlen=max_markers)
        if self.kind == StreamKind.VIDEO:
            shape = tuple(info.frame_shape or ())
            self.frame_shape = shape
            self.step = max(1, math.ceil(shape[1] / max_width_px)) if len(shape) >= 2 else 1
        elif self.kind == StreamKind.SIGNAL:
            srate = info.nominal_srate_hz if info.nominal_srate_hz > 0 else 100.0
            self.size = max(16, math.ceil(signal_s * srate))
            self._ts = np.full(self.size, np.nan)
            self._x = np.zeros((self.size, info.channel_count), dtype=np.float32)
            self._written = 0

    # -- the pull thread ----------------------------------------------------------------------
    def push(self, data: object, ts: np.ndarray) -> None:
        """Take what the pull thread just appended (``data`` may be its reused buffer: copied here)."""
        n = len(ts)
        if n == 0:
            return
        if self.kind == StreamKind.VIDEO:
            self.received += n
            now = time.monotonic()
            if now < self._frame_due or not self.frame_shape:
                return
            self._frame_due = now + self._frame_every_s
            raw = np.asarray(data)[n - 1].view(np.uint8).reshape(self.frame_shape)
            small = np.ascontiguousarray(raw[:: self.step, :: self.step])
            with self._lock:
                self._frame, self._frame_ts = small, float(ts[-1])
        elif self.kind == StreamKind.SIGNAL:
            x = np.asarray(data)[:n]
            t = np.asarray(ts, dtype=np.float64)
            got = n
            if n > self.size:
                x, t, n = x[-self.size :], t[-self.size :], self.size
            with self._lock:
                i = self._written % self.size
                first = min(n, self.size - i)
                self._x[i : i + first] = x[:first]
                self._ts[i : i + first] = t[:first]
                if first < n:
                    self._x[: n - first] = x[first:]
                    self._ts[: n - first] = t[first:]
                self._written += n
                self.received += got
        else:
            items = [(float(t), str(m)) for t, m in zip(ts, data)]
            with self._lock:
                self._markers.extend(items)
                self.received += n

    # -- the display --------------------------------------------------------------------------
    def frame(self) -> tuple[float, np.ndarray] | None:
        """``(timestamp_s, frame)`` of the newest kept frame (uint8, strided by :attr:`step`), or None."""
        with self._lock:
            return None if self._frame is None else (self._frame_ts, self._frame)

    def signal(self, seconds: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(t_s, x)``: the last ``seconds`` (default all kept) of samples, oldest first; copies."""
        if self.kind != StreamKind.SIGNAL:
            return np.zeros(0), np.zeros((0, 0), dtype=np.float32)
        with self._lock:
            n = min(self._written, self.size)
            i = self._written % self.size
            idx = (np.arange(i - n, i)) % self.size
            t, x = self._ts[idx], self._x[idx]
        if seconds is not None and t.size:
            keep = t >= t[-1] - seconds
            t, x = t[keep], x[keep]
        return t, x

    def markers(self, since_s: float = -math.inf) -> list[tuple[float, str]]:
        """``[(timestamp_s, text), ...]`` of the kept markers newer than ``since_s``, oldest first."""
        with self._lock:
            return [m for m in self._markers if m[0] > since_s]
