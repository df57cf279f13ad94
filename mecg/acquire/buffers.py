"""How much an LSL outlet or inlet may buffer: enough seconds to ride out an outage, within a memory cap.

An outlet keeps, per connected inlet, the samples the network has not taken yet (a link outage,
a stalled recorder); an inlet keeps what its program has not pulled yet. LSL sizes both in
seconds (``max_buffered`` / ``max_buflen``; for irregular streams in hundreds of samples) and drops
the oldest samples when they are full. A frame of 640x480 grey is 307,200 B, RGB 921,600 B: at 150
fps that is 46 MB/s or 138 MB/s, so a buffer that rides out a 10 s outage holds 0.46 or 1.4 GB.
The memory is taken only while data backs up, and LSL keeps freed samples for reuse, so a
process holds its high-water mark afterwards.

:func:`buffer_seconds` turns a requested buffer (or the default) into LSL's whole seconds: the
default is :data:`DEFAULT_BUFFER_S` capped so that the buffer stays under the memory cap
(:data:`DEFAULT_BUFFER_MAX_MB`); an explicit request over the cap is refused with the numbers.
"""

from __future__ import annotations

import math

from mecg.acquire.errors import AcquireError

#: Default buffer for video outlets and inlets (s): a 10 s outage plus margin.
DEFAULT_BUFFER_S = 15.0
#: Default memory cap of one buffer (MB, 1e6 bytes).
DEFAULT_BUFFER_MAX_MB = 2000.0
#: LSL's bookkeeping per buffered sample (timestamp, reference count, links), about, in bytes.
SAMPLE_OVERHEAD_B = 48
#: LSL sizes the buffers of irregular streams (markers) in units of this many samples.
IRREGULAR_SAMPLES_PER_UNIT = 100


class BufferTooLargeError(AcquireError):
    """A requested buffer would take more memory than the cap allows."""


def buffer_bytes_per_s(srate_hz: float, sample_bytes: int) -> float:
    """Memory (bytes) of one second of buffer; for irregular streams (``srate_hz <= 0``) of one unit (100 samples)."""
    per_sample = sample_bytes + SAMPLE_OVERHEAD_B
    return per_sample * (srate_hz if srate_hz > 0 else IRREGULAR_SAMPLES_PER_UNIT)


def buffer_mb(buffer_s: float, srate_hz: float, sample_bytes: int) -> float:
    """Memory (MB) of a full buffer of ``buffer_s`` seconds (irregular streams: units of 100 samples)."""
    return buffer_s * buffer_bytes_per_s(srate_hz, sample_bytes) / 1e6


def buffer_seconds(
    requested_s: float | None,
    *,
    default_s: float,
    srate_hz: float,
    sample_bytes: int,
    max_mb: float = DEFAULT_BUFFER_MAX_MB,
    what: str = "the stream",
    option: str = "--buffer-s",
    other_fix: str = "",
) -> int:
    """The buffer to give LSL, in whole seconds (at least 1, LSL's smallest).

    Parameters
    ----------
    requested_s
        Seconds asked for, or ``None`` for ``default_s`` capped to ``max_mb`` (rounded down).
    default_s
        The default buffer (s).
    srate_hz, sample_bytes
        The stream's nominal rate (Hz; <= 0 for irregular streams) and bytes per sample.
    max_mb
        Memory cap of the buffer (MB).
    what, option, other_fix
        For the error message: the stream, the option that set the buffer, another way out (e.g.
        ``"make the frames smaller (--size, --gray)"``).

    Raises
    ------
    BufferTooLargeError
        ``requested_s`` needs more than ``max_mb``; the message gives the memory and the longest
        buffer that fits.
    """
    per_s = buffer_bytes_per_s(srate_hz, sample_bytes)
    fits = max(1, math.floor(max_mb * 1e6 / per_s)) if per_s > 0 else 1 << 30
    if requested_s is None:
        return max(1, min(math.floor(default_s), fits))
    if not (math.isfinite(requested_s) and requested_s > 0):
        raise BufferTooLargeError(f"{option} must be a positive number of seconds, got {requested_s}")
    want = max(1, math.ceil(requested_s))
    if want > fits:
        raise BufferTooLargeError(
            f"{option} {requested_s:g} for {what} needs about {_mb(buffer_mb(want, srate_hz, sample_bytes))} MB "
            f"({_mb(per_s / 1e6)} MB per second of buffer), over the {_mb(max_mb)} MB cap: give at most "
            f"{fits} s, {other_fix + ', ' if other_fix else ''}or raise the cap with --buffer-max-mb"
        )
    return want


def _mb(x: float) -> str:
    """``1,382`` for large sizes, two significant digits below 10 (``0.043``)."""
    return f"{x:,.0f}" if x >= 10 else f"{x:.2g}"
