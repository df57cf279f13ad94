"""The ECG driver: a serial ECG board to an LSL outlet of type ``ECG``.

One thread reads the port as bytes come, decodes samples on the device's clock, maps them to the
LSL clock with a running lower-envelope fit (:class:`~mecg.acquire.clock_fit.ClockFit`, so USB
and scheduling jitter do not reach the timestamps) and pushes each read as one chunk with
per-sample timestamps. When the port disappears (cable pulled) or the device stops sending (a
reset), it closes the port, tries again every ``retry_s`` and, once the device answers, starts
it again on the same outlet: inlets see a gap, not a new stream. The outlet's ``source_id`` is
built from the board's own number (mecg) or the port's name (Cyton), so a restarted driver
publishes the same stream and recorders reconnect by themselves.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pylsl
import serial

from mecg.acquire.buffers import DEFAULT_BUFFER_MAX_MB, buffer_seconds
from mecg.acquire.clock_fit import ClockFit, StampSlew
from mecg.acquire.ecg_boards import BoardInfo, CytonBoard, MecgBoard
from mecg.acquire.errors import AcquireError, DeviceReplyError
from mecg.acquire.reconnect import ReconnectingLoop
from mecg.acquire.serial_port import open_port
from mecg.acquire.states import DriverState, EcgProtocol

PROTOCOLS = tuple(EcgProtocol)
#: Default outlet buffer (s): samples are small, so a minute costs a few MB.
ECG_BUFFER_S = 60.0


@dataclass
class EcgConfig:
    """Settings of one ECG driver.

    ``port``: serial port path; ``protocol``: ``"mecg"`` or ``"cyton"``; ``rate_hz``: rate to set
    (``None``: the device's own); ``baud``: ``None`` = the protocol's default; ``name``/``source_id``:
    LSL identity (``None`` = from the board); ``latency_s``: constant transport latency to subtract
    from the timestamps (s); ``ecg_channels``: Cyton channels to publish (1-8); ``retry_s``: wait
    between reconnection attempts (s); ``read_interval_s``: how often the port is read (s): each
    read costs CPU, each interval adds up to that much delivery latency; timestamps do not change;
    ``stall_s``: no sample for this long (s) while the port stays open counts as a lost device
    (e.g. it was reset and sits stopped): the driver starts it again. ``max_buffered_s``: what the
    outlet keeps for each receiver through a network outage (s; ``None``: 60 s, a few MB at 1 kHz),
    refused over ``buffer_max_mb`` MB (:mod:`mecg.acquire.buffers`).
    """

    port: str
    protocol: str = "mecg"
    rate_hz: float | None = None
    baud: int | None = None
    name: str = "ECG"
    source_id: str | None = None
    latency_s: float = 0.0
    ecg_channels: int = 1
    retry_s: float = 0.5
    answer_timeout_s: float | None = None
    read_interval_s: float = 0.004
    stall_s: float = 2.0
    max_buffered_s: float | None = None
    buffer_max_mb: float = DEFAULT_BUFFER_MAX_MB

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise AcquireError(f"unknown protocol {self.protocol!r}; choose one of {', '.join(PROTOCOLS)}")


@dataclass
class EcgStats:
    """A snapshot of the driver's counters."""

    state: str = DriverState.IDLE
    samples: int = 0
    lost: int = 0
    duplicates: int = 0
    crc_errors: int = 0
    skipped_bytes: int = 0
    reconnects: int = 0
    rate_hz: float = 0.0
    offset_s: float = 0.0
    drift_ppm: float = 0.0
    last_error: str = ""
    extra: dict = field(default_factory=dict)


def ecg_stream_info(info: BoardInfo, name: str, source_id: str, port: str) -> pylsl.StreamInfo:
    """The outlet's description: channels with labels, units and types; the board; the timing."""
    labels = info.labels
    si = pylsl.StreamInfo(name, "ECG", len(labels), info.rate_hz, pylsl.cf_float32, source_id)
    units = ["mV"] * info.n_ecg + ["bool"] * len(info.digital_labels)
    types = ["ECG"] * info.n_ecg + list(info.digital_labels)
    chans = si.desc().append_child("channels")
    for lab, unit, typ in zip(labels, units, types):
        ch = chans.append_child("channel")
        ch.append_child_value("label", lab)
        ch.append_child_value("unit", unit)
        ch.append_child_value("type", typ)
    acq = si.desc().append_child("acquisition")
    acq.append_child_value("manufacturer", info.manufacturer)
    acq.append_child_value("model", info.model)
    acq.append_child_value("serial_number", info.uid)
    acq.append_child_value("firmware", info.firmware)
    acq.append_child_value("protocol", info.protocol)
    acq.append_child_value("port", port)
    acq.append_child_value("driver", "mecg.acquire.ecg_driver")
    timing = si.desc().append_child("timing")
    timing.append_child_value("clock", "device clock mapped to the LSL clock by a running lower-envelope fit")
    return si


def board_source_id(info: BoardInfo) -> str:
    """A stable LSL ``source_id``: the board's model and serial number (Cyton: its port's name)."""
    model = info.model.lower().replace(" ", "-")
    prefix = model if model.startswith("mecg") else f"{info.manufacturer.lower()}-{model}"
    return f"{prefix}-{info.uid}"


class EcgStreamLoop(ReconnectingLoop):
    """What the ECG drivers (:class:`EcgDriver`, :class:`~mecg.acquire.brainflow_source.BrainFlowDriver`) share.

    Their reconnect hooks record state in ``self._stats`` (:class:`EcgStats`, guarded by
    ``self._lock``), and their status line differs only in the counters :meth:`_status_counters` gives.
    """

    config: Any  #: EcgConfig or BrainFlowConfig; the status line shows its ``name``
    _stats: EcgStats
    _lock: threading.Lock

    def _mark_lost(self, exc: BaseException) -> None:
        with self._lock:
            self._stats.state, self._stats.last_error = DriverState.RECONNECTING, str(exc)

    def _mark_retry_failed(self, err: BaseException) -> None:
        with self._lock:
            self._stats.last_error = str(err)

    def _mark_back(self) -> None:
        with self._lock:
            self._stats.state = DriverState.STREAMING
            self._stats.reconnects += 1

    def _mark_failed(self, msg: str) -> None:
        with self._lock:
            self._stats.state, self._stats.last_error = DriverState.FAILED, msg

    # -- outlet ---------------------------------------------------------------------------------
    def _stream_info(self, info: BoardInfo, where: str) -> pylsl.StreamInfo:
        """Take ``info`` as the board's and describe its ECG stream (``where``: the port or board, in words)."""
        self.info = info
        self.source_id = self.config.source_id or board_source_id(info)
        return ecg_stream_info(info, self.config.name, self.source_id, where)

    def _open_outlet(self, si: pylsl.StreamInfo, info: BoardInfo, default_s: float) -> None:
        """Open the outlet for ``si``, buffering ``config.max_buffered_s`` (else ``default_s``) seconds."""
        #: The outlet's buffer (s).
        self.buffer_s = buffer_seconds(
            self.config.max_buffered_s,
            default_s=default_s,
            srate_hz=info.rate_hz,
            sample_bytes=4 * len(info.labels),
            max_mb=self.config.buffer_max_mb,
            what=f"the ECG outlet ({len(info.labels)} channels at {info.rate_hz:g} Hz)",
        )
        self.outlet = pylsl.StreamOutlet(si, chunk_size=0, max_buffered=self.buffer_s)

    # -- status ---------------------------------------------------------------------------------
    @property
    def stats(self) -> EcgStats:
        """A copy of the counters."""
        with self._lock:
            return EcgStats(**{k: getattr(self._stats, k) for k in EcgStats.__dataclass_fields__})

    def _status_counters(self, s: EcgStats) -> str:
        """The driver's own part of the status line: duplicates, CRC errors, clock drift (ppm)."""
        return f"dup {s.duplicates} crc {s.crc_errors} | device clock drift {s.drift_ppm:+.1f} ppm"

    def status_line(self) -> str:
        """One line for a live display."""
        s = self.stats
        return (
            f"{self.config.name} [{s.state}] {s.samples} samples {s.rate_hz:6.1f} Hz | lost {s.lost} "
            + self._status_counters(s)
            + (f" | reconnects {s.reconnects}" if s.reconnects else "")
            + (f" | error: {self.error}" if self.error else "")
        )


class EcgDriver(EcgStreamLoop):
    """Streams one serial ECG board to LSL.

    Use :meth:`connect` (raises :class:`~mecg.errors.MecgError` subclasses with the fix in the
    message), then :meth:`start` (background thread) and :meth:`stop`, or ``with EcgDriver(cfg)``.
    """

    def __init__(self, config: EcgConfig) -> None:
        self.config = config
        self.board = self._make_board()
        self.fit = ClockFit()
        self.info: BoardInfo | None = None
        self.outlet: pylsl.StreamOutlet | None = None
        self.source_id = ""
        self._port: serial.Serial | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stats = EcgStats()
        self.slew = StampSlew()
        self._next_read = 0.0
        self._last_data = np.inf  # set when streaming starts
        self._rate_window: list[tuple[float, int]] = []
        #: Set when the streaming thread stopped on an error it cannot recover from; ``error`` says why.
        self.failed = threading.Event()
        self.error = ""

    def _make_board(self) -> MecgBoard | CytonBoard:
        c = self.config
        if c.protocol == EcgProtocol.CYTON:
            return CytonBoard(c.ecg_channels, c.answer_timeout_s or 3.0)
        return MecgBoard(c.answer_timeout_s or 0.5)

    # -- connection -----------------------------------------------------------------------------
    def _open_and_start(self) -> BoardInfo:
        c = self.config
        port = open_port(c.port, c.baud or self.board.default_baud)
        try:
            info = self.board.connect(port, c.rate_hz)
        except BaseException:
            port.close()
            raise
        self._port = port
        self.fit.reset()
        self.slew.reset()
        self._last_data = pylsl.local_clock()
        return info

    def connect(self) -> BoardInfo:
        """Open the port, bring the device to streaming and create the LSL outlet."""
        info = self._open_and_start()
        self._make_outlet(info)
        self._stats.state = DriverState.STREAMING
        return info

    def _make_outlet(self, info: BoardInfo) -> None:
        if self.info is not None and (info.labels, info.rate_hz) == (self.info.labels, self.info.rate_hz):
            self.info = info
            return
        self._open_outlet(self._stream_info(info, self.config.port), info, ECG_BUFFER_S)

    # -- streaming ------------------------------------------------------------------------------
    def pump(self) -> int:
        """Read what the port has (waits up to its timeout) and push it; returns samples pushed."""
        assert self._port is not None and self.outlet is not None and self.info is not None
        wait = self._next_read - pylsl.local_clock()
        if wait > 0:
            time.sleep(wait)
        data = self._port.read(max(1, self._port.in_waiting))
        arrival = pylsl.local_clock()
        self._next_read = arrival + self.config.read_interval_s
        if arrival - self._last_data > self.config.stall_s:
            raise TimeoutError(f"no data from {self.config.port} for {self.config.stall_s:g} s")
        if not data:
            return 0
        s = self.board.decode(data, arrival) if isinstance(self.board, CytonBoard) else self.board.decode(data)
        if len(s):
            self._last_data = arrival
            self.fit.add(s.device_s, arrival)
            ts = self.slew.stamps(
                s.device_s, lambda d: self.fit.map(d) - self.config.latency_s, 1.0 / self.info.rate_hz
            )
            self.outlet.push_chunk(s.values, ts.tolist())
        self._count(len(s), arrival)
        return len(s)

    def _count(self, n: int, now: float) -> None:
        with self._lock:
            st = self._stats
            st.samples += n
            st.lost, st.duplicates = self.board.lost, self.board.duplicates
            st.crc_errors, st.skipped_bytes = self.board.crc_errors, self.board.skipped_bytes
            st.offset_s, st.drift_ppm = self.fit.offset_s(), self.fit.drift_ppm
            self._rate_window.append((now, st.samples))
            while len(self._rate_window) > 2 and now - self._rate_window[0][0] > 2.0:
                self._rate_window.pop(0)
            (t0, n0), (t1, n1) = self._rate_window[0], self._rate_window[-1]
            st.rate_hz = (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0

    # -- reconnection (the loop is ReconnectingLoop's) ------------------------------------------
    lost_errors = (serial.SerialException, OSError)  # OSError includes the stall's TimeoutError
    retry_errors = (AcquireError, serial.SerialException, OSError)
    fatal_errors = (DeviceReplyError,)  # the device answers, but wrongly: retrying cannot help

    def _close_link(self) -> None:
        try:
            if self._port is not None:
                self._port.close()
        except (OSError, serial.SerialException):
            pass
        self._port = None

    def _reopen(self) -> BoardInfo:
        return self._open_and_start()

    def _resume(self, reopened: object) -> None:
        assert isinstance(reopened, BoardInfo)
        self._make_outlet(reopened)

    def _connected(self) -> bool:
        return self._port is not None

    def stop(self) -> None:
        """Stop the device and the thread, close the port; the outlet goes away with the driver."""
        self._stop_loop()
        if self._port is not None:
            try:
                self.board.stop(self._port)
                self._port.close()
            except (OSError, serial.SerialException):
                pass
            self._port = None
        with self._lock:
            self._stats.state = DriverState.STOPPED
