"""A serial port made of a pseudo-terminal, and the thread that runs a virtual device behind it.

The driver opens the port's ``path`` exactly like ``/dev/ttyUSB0``. ``path`` is a stable symbolic
link to the pty's slave (as udev's ``/dev/serial/by-id/...`` links are), so a device can be
**unplugged** (the pty closes: the driver's reads fail, the link disappears) and **plugged back**
(a new pty behind the same link), as a USB device would.
"""

from __future__ import annotations

import errno
import os
import threading
import time
import tty
from collections import deque
from dataclasses import replace
from pathlib import Path

import numpy as np

from mecg.acquire.sim_world import DeviceTiming, Timeline


class VirtualPort:
    """One pty pair; the device side reads and writes the master without blocking.

    Parameters
    ----------
    link
        Where to put the stable symbolic link (replaced if it exists); ``None``: no link, the
        path is the pty's own ``/dev/pts/N``.
    """

    def __init__(self, link: str | os.PathLike | None = None) -> None:
        self.link = Path(link) if link is not None else None
        self._master = self._slave = -1
        self._pts = ""
        self.plug()

    @property
    def path(self) -> str:
        """What a driver opens."""
        return str(self.link) if self.link is not None else self._pts

    @property
    def plugged(self) -> bool:
        return self._master >= 0

    def plug(self) -> None:
        """Create the pty (raw mode) and point the link at it."""
        if self.plugged:
            return
        self._master, self._slave = os.openpty()  # the device keeps the slave open too: no EIO while no host
        tty.setraw(self._slave)
        os.set_blocking(self._master, False)
        self._pts = os.ttyname(self._slave)
        if self.link is not None:
            self.link.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.link.with_name(self.link.name + ".new")
            tmp.unlink(missing_ok=True)
            os.symlink(self._pts, tmp)
            os.replace(tmp, self.link)

    def unplug(self) -> None:
        """Close the pty and remove the link: the host's reads fail, reopening finds nothing."""
        if self.link is not None:
            self.link.unlink(missing_ok=True)
        for fd in (self._master, self._slave):
            if fd >= 0:
                os.close(fd)
        self._master = self._slave = -1

    close = unplug

    def read(self) -> bytes:
        """Bytes the host wrote (empty when none, or unplugged)."""
        if not self.plugged:
            return b""
        try:
            return os.read(self._master, 4096)
        except (BlockingIOError, InterruptedError):
            return b""
        except OSError as exc:
            if exc.errno == errno.EIO:
                return b""
            raise

    def write(self, data: bytes) -> int:
        """Write what the pty takes now; returns the number of bytes taken."""
        if not self.plugged or not data:
            return 0
        try:
            return os.write(self._master, data)
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError as exc:
            if exc.errno == errno.EIO:
                return 0
            raise


class VirtualSerialDevice:
    """A device on a :class:`VirtualPort`, run by a thread every ``period_s``.

    Output goes through a transport queue: each message becomes readable on the host at its
    emission time plus the device's latency and half-normal jitter, in order (a serial link is
    FIFO). The device's transmit buffer holds ``fifo_bytes``; what does not fit is dropped
    (:meth:`room` tells a device how much fits).

    Subclasses implement :meth:`on_input` (bytes from the host), :meth:`tick` (emit what is due
    at true time ``now``) and :meth:`power_up` (state after power-on).
    """

    period_s = 0.001

    def __init__(
        self,
        link: str | os.PathLike | None,
        timeline: Timeline,
        timing: DeviceTiming,
        seed: int,
        fifo_bytes: int = 16384,
    ) -> None:
        self.port = VirtualPort(link)
        self.timeline = timeline
        self.timing = timing
        self.fifo_bytes = fifo_bytes
        self._rng = np.random.default_rng([seed, 0x5E41A1])
        self._queue: deque[tuple[float, bytes]] = deque()  # (true release time, bytes)
        self._queued_bytes = 0
        self._pending = b""  # released, not yet taken by the pty
        self._last_release = -np.inf
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.bytes_dropped = 0
        self.power_up()

    @property
    def path(self) -> str:
        """The port a driver opens."""
        return self.port.path

    # -- to implement -----------------------------------------------------------------------
    def power_up(self) -> None:
        """Reset the device's state as at power-on."""

    def on_input(self, data: bytes, now: float) -> None:
        """Handle bytes from the host at true time ``now``."""

    def tick(self, now: float) -> None:
        """Emit whatever is due at true time ``now``."""

    # -- transport --------------------------------------------------------------------------
    def device_us(self, t_true_s: float) -> int:
        """The device's 32-bit microsecond counter at a true time."""
        return int(np.floor(self.timing.device_s(t_true_s) * 1e6)) & 0xFFFFFFFF

    def room(self) -> int:
        """Bytes the transmit buffer can take now."""
        return self.fifo_bytes - self._queued_bytes - len(self._pending)

    def emit(self, data: bytes, t_emit: float) -> bool:
        """Queue ``data`` produced at true time ``t_emit``; False (dropped) if it does not fit."""
        if len(data) > self.room():
            self.bytes_dropped += len(data)
            return False
        j = abs(self._rng.normal(0.0, self.timing.jitter_s)) if self.timing.jitter_s else 0.0
        release = max(self._last_release, t_emit + self.timing.latency_s + j)
        self._last_release = release
        self._queue.append((release, data))
        self._queued_bytes += len(data)
        return True

    def _flush(self, now: float) -> None:
        out = [self._pending]
        while self._queue and self._queue[0][0] <= now:
            _, data = self._queue.popleft()
            self._queued_bytes -= len(data)
            out.append(data)
        buf = b"".join(out)
        n = self.port.write(buf) if buf else 0
        self._pending = buf[n:]

    # -- life cycle -------------------------------------------------------------------------
    def step(self) -> None:
        """One pass of the device loop (the thread calls it every ``period_s``)."""
        with self._lock:
            now = self.timeline.now()
            data = self.port.read()
            if data:
                self.on_input(data, now)
            if self.port.plugged:
                self.tick(now)
                self._flush(now)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.step()
            time.sleep(self.period_s)

    def start(self) -> VirtualSerialDevice:
        """Run the device in a background thread."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=f"{type(self).__name__}", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread and close the port."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        self.port.close()

    def unplug(self) -> None:
        """Pull the USB cable: the port vanishes, the device loses power."""
        with self._lock:
            self.port.unplug()
            self._queue.clear()
            self._queued_bytes = 0
            self._pending = b""

    def reset(self) -> None:
        """Reset the device (its clock restarts from 0, state as at power-up); the port stays."""
        with self._lock:
            now = self.timeline.now()
            self.timing = replace(self.timing, clock_offset_s=-now * (1.0 + self.timing.drift_ppm * 1e-6))
            self.power_up()

    def replug(self) -> None:
        """Plug it back: a fresh port behind the same path, the device powered up again (clock from 0)."""
        with self._lock:
            self.reset()
            self._last_release = -np.inf
            self.port.plug()

    def __enter__(self) -> VirtualSerialDevice:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
