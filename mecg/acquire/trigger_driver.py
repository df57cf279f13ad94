"""The trigger box driver: commands pulses over serial and publishes each one on an LSL ``Markers`` stream.

By default the driver decides when to pulse: rise-to-rise gaps drawn uniformly from
``gap_s = (min, max)`` (irregular, so the pulse trains recorded by the amplifier and seen by the
camera match without ambiguity), each a PULSE command. With ``box_schedule`` it hands the
schedule to the box (SCHEDULE + START) and only listens. Either way every pulse the box reports
(PULSE_EVENT, stamped with the rising edge on the box's clock) becomes one marker
``"pulse <n>"``, timestamped on the LSL clock through a running fit of the box's clock, which
PING answers feed every ``ping_every_s`` (every 20 ms in the first second after each connect, so a
pulse early in the stream is stamped by a fit that has already seen quick answers). Reconnects like
the ECG driver.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np
import pylsl
import serial

from mecg.acquire.buffers import DEFAULT_BUFFER_MAX_MB, buffer_seconds
from mecg.acquire.clock_fit import ClockFit
from mecg.acquire.errors import AcquireError, DeviceReplyError, DeviceTimeoutError
from mecg.acquire.protocol import (
    TRIGGER_BOX_BAUD,
    Ack,
    Command,
    DeviceKind,
    Frame,
    FrameParser,
    Info,
    MsgType,
    Pulse,
    PulseEvent,
    Schedule,
    Status,
    check_ack,
    check_info,
    decode,
    encode,
)
from mecg.acquire.reconnect import ReconnectingLoop
from mecg.acquire.sequence import Unwrapper
from mecg.acquire.serial_port import open_port
from mecg.acquire.states import DriverState

#: After each connect, the driver pings every FAST_PING_S for FAST_PINGS_FOR_S (s): the box's clock fit
#: keeps the quickest answers, and a handful of pings on a loaded host may all arrive late (the first
#: pulse, 0.3 s into the stream, was once stamped 2.8 ms late on a loaded 2-core machine).
FAST_PING_S = 0.02
FAST_PINGS_FOR_S = 1.0


@dataclass
class TriggerConfig:
    """Settings of the trigger driver (times in s, widths in ms).

    ``count``: stop after this many pulses (``None``: run until stopped); ``seed``: of the host
    schedule (``None``: random); ``latency_s``: constant box-to-host latency to subtract;
    ``max_buffered_s``: what the outlet keeps for each receiver through a network outage, in LSL's
    units for irregular streams (hundreds of markers; ``None``: 360, i.e. 36,000 markers).
    """

    port: str
    baud: int = TRIGGER_BOX_BAUD
    name: str = "TriggerBox"
    source_id: str | None = None
    width_ms: int = 50
    gap_s: tuple[float, float] = (2.0, 8.0)
    count: int | None = None
    box_schedule: bool = False
    seed: int | None = None
    ping_every_s: float = 0.25
    latency_s: float = 0.0
    retry_s: float = 0.5
    answer_timeout_s: float = 0.5
    max_buffered_s: float | None = None
    buffer_max_mb: float = DEFAULT_BUFFER_MAX_MB

    def __post_init__(self) -> None:
        lo, hi = self.gap_s
        if not 0 < lo <= hi:
            raise AcquireError(f"pulse gaps must satisfy 0 < min <= max, got {lo:g}:{hi:g} s")
        if not 1 <= self.width_ms <= 1000 or self.width_ms >= lo * 1000:
            raise AcquireError(
                f"pulse width must be 1-1000 ms and shorter than the smallest gap, got {self.width_ms} ms"
            )


def marker_stream_info(name: str, source_id: str, cfg: TriggerConfig, info: Info, port: str) -> pylsl.StreamInfo:
    """A string ``Markers`` stream, one marker per pulse, with the pulse settings in its description."""
    si = pylsl.StreamInfo(name, "Markers", 1, pylsl.IRREGULAR_RATE, pylsl.cf_string, source_id)
    ch = si.desc().append_child("channels").append_child("channel")
    ch.append_child_value("label", "pulse")
    ch.append_child_value("type", "Marker")
    p = si.desc().append_child("pulses")
    p.append_child_value("format", "pulse <n>: n counts the box's pulses; the timestamp is the rising edge")
    p.append_child_value("width_ms", str(cfg.width_ms))
    p.append_child_value("schedule", "box" if cfg.box_schedule else "host")
    p.append_child_value("gap_s", f"{cfg.gap_s[0]:g}:{cfg.gap_s[1]:g}")
    p.append_child_value("outputs", "TTL to the amplifier TRIG input; LED in the camera view")
    acq = si.desc().append_child("acquisition")
    acq.append_child_value("manufacturer", "mecg")
    acq.append_child_value("model", info.name.split(" ")[0])
    acq.append_child_value("serial_number", f"{info.uid:08x}")
    acq.append_child_value("firmware", info.name)
    acq.append_child_value("port", port)
    return si


class TriggerDriver(ReconnectingLoop):
    """Runs the trigger box and publishes its pulses; :meth:`connect`, :meth:`start`, :meth:`stop`."""

    def __init__(self, config: TriggerConfig) -> None:
        self.config = config
        self.parser = FrameParser.for_host()
        self.fit = ClockFit(window_s=300.0, block_s=1.0, min_blocks=10)
        self.clock = Unwrapper(32)
        self.outlet: pylsl.StreamOutlet | None = None
        self.info: Info | None = None
        self.source_id = ""
        self.markers: list[tuple[str, float]] = []  # what was published: (marker, LSL time)
        self.commanded = 0
        self.reconnects = 0
        self.state: str = DriverState.IDLE
        self._port: serial.Serial | None = None
        self._rng = np.random.default_rng(config.seed)
        self._next_pulse: float | None = None
        self._next_ping = 0.0
        self._fast_pings_until = 0.0  # host time until which pings go every FAST_PING_S
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.done = threading.Event()  # set after ``count`` pulses
        #: Set when the thread stopped on an error it cannot recover from; ``error`` says why.
        self.failed = threading.Event()
        self.error = ""

    # -- requests -------------------------------------------------------------------------------
    def _request(self, msg: object, want: int, what: str) -> Frame:
        port = self._port
        assert port is not None
        for _ in range(3):
            port.write(encode(msg))
            deadline = time.monotonic() + self.config.answer_timeout_s
            while time.monotonic() < deadline:
                data = port.read(max(1, port.in_waiting))
                arrival = pylsl.local_clock()
                for f in self.parser.feed(data):
                    if f.type == want and (want != MsgType.ACK or decode(f).command == msg.TYPE):
                        self._observe(decode(f), arrival)
                        return f
                    self._handle(f, arrival)
        raise DeviceTimeoutError(
            f"no answer from {port.port} to {what}: is it the mecg trigger box, powered, at --baud {self.config.baud}?"
        )

    def _ack_ok(self, msg: object, what: str) -> None:
        check_ack(decode(self._request(msg, MsgType.ACK, what)), what, f"the trigger box on {self.config.port}")

    def _observe(self, msg: object, arrival: float) -> float | None:
        """Feed a timestamped message to the clock fit; returns its device time (s)."""
        t_us = getattr(msg, "t_us", None)
        if t_us is None:
            return None
        dev = float(self.clock.unwrap(np.array([t_us]))[0]) * 1e-6
        self.fit.add(np.array([dev]), arrival)
        return dev

    # -- connection -----------------------------------------------------------------------------
    def _open_and_start(self) -> Info:
        c = self.config
        self._port = open_port(c.port, c.baud)
        try:
            self._port.reset_input_buffer()
            self.parser.reset()
            self.fit.reset()
            self.clock.reset()
            self._ack_ok(Command(MsgType.STOP), "STOP")
            info = decode(self._request(Command(MsgType.IDENTIFY), MsgType.INFO, "IDENTIFY"))
            check_info(info, DeviceKind.TRIGGER_BOX, c.port)
            if c.box_schedule:
                lo, hi = (round(g * 1000) for g in c.gap_s)
                self._ack_ok(Schedule(lo, hi, c.width_ms), "SCHEDULE")
                self._ack_ok(Command(MsgType.START), "START")
        except BaseException:
            self._port.close()
            self._port = None
            raise
        self._next_pulse = None
        self._fast_pings_until = pylsl.local_clock() + FAST_PINGS_FOR_S
        return info

    def connect(self) -> Info:
        """Open the port, check it is a trigger box, set it up, create the outlet."""
        info = self._open_and_start()
        self.info = info
        self.source_id = self.config.source_id or f"mecg-trigger-{info.uid:08x}"
        #: The outlet's buffer, in LSL's units for markers (hundreds of markers).
        self.buffer_s = buffer_seconds(
            self.config.max_buffered_s,
            default_s=360.0,
            srate_hz=0.0,
            sample_bytes=32,
            max_mb=self.config.buffer_max_mb,
            what="the trigger outlet (markers, counted in hundreds)",
        )
        self.outlet = pylsl.StreamOutlet(
            marker_stream_info(self.config.name, self.source_id, self.config, info, self.config.port),
            max_buffered=self.buffer_s,
        )
        self.state = DriverState.RUNNING
        return info

    # -- running --------------------------------------------------------------------------------
    def _handle(self, f: Frame, arrival: float) -> None:
        msg = decode(f)
        dev = self._observe(msg, arrival)
        if isinstance(msg, PulseEvent) and dev is not None and self.outlet is not None:
            ts = float(self.fit.map(dev)) - self.config.latency_s
            marker = f"pulse {msg.seq}"
            self.outlet.push_sample([marker], ts)
            self.markers.append((marker, ts))
            if self.config.count is not None and len(self.markers) >= self.config.count:
                self.done.set()
        elif isinstance(msg, Ack) and msg.command == MsgType.PULSE and msg.status == Status.BUSY:
            self.commanded -= 1  # a pulse is still high: this one did not happen; try again shortly
            self._next_pulse = pylsl.local_clock() + 0.05

    def pump(self) -> None:
        """Send what is due (pulses, pings), read and publish what came."""
        c, port = self.config, self._port
        assert port is not None
        now = pylsl.local_clock()
        if not c.box_schedule and (c.count is None or self.commanded < c.count):
            if self._next_pulse is None:
                self._next_pulse = now + float(self._rng.uniform(*c.gap_s))
            if now >= self._next_pulse:
                port.write(encode(Pulse(c.width_ms, self.commanded % 255 + 1)))
                self.commanded += 1
                self._next_pulse = now + float(self._rng.uniform(*c.gap_s))
        if now >= self._next_ping:
            port.write(encode(Command(MsgType.PING)))
            self._next_ping = now + (FAST_PING_S if now < self._fast_pings_until else c.ping_every_s)
        data = port.read(max(1, port.in_waiting))
        arrival = pylsl.local_clock()
        for f in self.parser.feed(data):
            self._handle(f, arrival)

    # -- reconnection (the loop is ReconnectingLoop's) ------------------------------------------
    lost_errors = (serial.SerialException, OSError)
    retry_errors = (AcquireError, serial.SerialException, OSError)
    fatal_errors = (DeviceReplyError,)  # the box answers, but wrongly: retrying cannot help

    def _close_link(self) -> None:
        try:
            if self._port is not None:
                self._port.close()
        except (OSError, serial.SerialException):
            pass
        self._port = None

    def _reopen(self) -> Info:
        return self._open_and_start()

    def _mark_lost(self, exc: BaseException) -> None:
        self.state = f"{DriverState.RECONNECTING} ({exc})"

    def _mark_back(self) -> None:
        self.reconnects += 1
        self.state = DriverState.RUNNING

    def _mark_failed(self, msg: str) -> None:
        self.state = DriverState.FAILED

    def _connected(self) -> bool:
        return self._port is not None

    def stop(self) -> None:
        """Stop the box's schedule and the thread; close the port."""
        self._stop_loop()
        if self._port is not None:
            try:
                self._port.write(encode(Command(MsgType.STOP)))
                self._port.close()
            except (OSError, serial.SerialException):
                pass
            self._port = None
        self.state = DriverState.STOPPED

    def status_line(self) -> str:
        """One line for a live display."""
        last = self.markers[-1][0] if self.markers else "-"
        return (
            f"{self.config.name} [{self.state}] {len(self.markers)} pulses published "
            f"({self.commanded} commanded) | last: {last} | box clock {self.fit.drift_ppm:+.1f} ppm"
            + (f" | reconnects {self.reconnects}" if self.reconnects else "")
            + (f" | error: {self.error}" if self.error else "")
        )
