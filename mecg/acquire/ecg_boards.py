"""The two ECG boards the ECG driver speaks: the mecg amplifier (hardware/protocol.md) and the OpenBCI Cyton.

A board object knows how to bring its device from any state to streaming (:meth:`connect`), how
to turn the bytes it sends into samples on the device's own clock (:meth:`decode`), and how to
stop it. It counts what went wrong (bad CRC, skipped bytes, lost and repeated packets).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import numpy as np
import serial

from mecg.acquire import cyton
from mecg.acquire.errors import AcquireError, DeviceRefusedError, DeviceTimeoutError
from mecg.acquire.protocol import (
    AMPLIFIER_BAUD,
    DIGITAL_LABELS,
    SUPPORTED_RATES_HZ,
    Ack,
    Command,
    DeviceKind,
    Frame,
    FrameParser,
    Info,
    MsgType,
    SetRate,
    check_ack,
    check_info,
    decode,
    decode_data,
    encode,
)
from mecg.acquire.sequence import SequenceTracker, Unwrapper


@dataclass(frozen=True)
class BoardInfo:
    """What the driver learnt about a connected board."""

    protocol: str
    manufacturer: str
    model: str
    uid: str
    firmware: str
    rate_hz: float
    n_ecg: int
    digital_labels: tuple[str, ...]
    mv_per_count: float

    @property
    def labels(self) -> list[str]:
        """Channel labels of the LSL stream: ``ECG`` (or ``ECG1``..) then the digital inputs."""
        ecg = ["ECG"] if self.n_ecg == 1 else [f"ECG{i + 1}" for i in range(self.n_ecg)]
        return ecg + list(self.digital_labels)


@dataclass
class Samples:
    """Samples decoded from one read: device clock (s), values ``(n, channels)`` float32."""

    device_s: np.ndarray
    values: np.ndarray

    def __len__(self) -> int:
        return int(self.device_s.size)


def _empty(n_channels: int) -> Samples:
    return Samples(np.zeros(0), np.zeros((0, n_channels), np.float32))


class MecgBoard:
    """The mecg amplifier (ADS1292R firmware or :class:`~mecg.acquire.virtual_amplifier.VirtualAmplifier`)."""

    protocol = "mecg"
    default_baud = AMPLIFIER_BAUD

    def __init__(self, answer_timeout_s: float = 0.5, tries: int = 3) -> None:
        self.answer_timeout_s, self.tries = answer_timeout_s, tries
        self.parser = FrameParser.for_host()
        self.tracker = SequenceTracker(1 << 16)
        self.clock = Unwrapper(32)
        self.info: BoardInfo | None = None
        self._n = 1
        self._pending: list[Frame] = []
        self.other_frames = 0

    # -- counters -----------------------------------------------------------------------------
    @property
    def lost(self) -> int:
        return self.tracker.lost

    @property
    def duplicates(self) -> int:
        return self.tracker.duplicates + self.tracker.stale

    @property
    def crc_errors(self) -> int:
        return self.parser.crc_errors

    @property
    def skipped_bytes(self) -> int:
        return self.parser.skipped_bytes

    # -- commands -----------------------------------------------------------------------------
    def _request(self, port: serial.Serial, msg: object, want: int, what: str) -> Frame:
        """Send ``msg`` until the frame type ``want`` answers it (ACK: for that command)."""
        for _ in range(self.tries):
            port.write(encode(msg))
            deadline = time.monotonic() + self.answer_timeout_s
            while time.monotonic() < deadline:
                frames = self.parser.feed(port.read(max(1, port.in_waiting)))
                for i, f in enumerate(frames):
                    if f.type == want and (want != MsgType.ACK or decode(f).command == msg.TYPE):
                        self._pending = frames[i + 1 :]
                        return f
        raise DeviceTimeoutError(
            f"no answer from {port.port} to {what} after {self.tries} tries: is it an mecg amplifier "
            "(else try --protocol cyton), powered, and at the right --baud?"
        )

    def _ack_ok(self, port: serial.Serial, msg: object, what: str) -> Ack:
        ack = decode(self._request(port, msg, MsgType.ACK, what))
        check_ack(ack, what, f"the amplifier on {port.port}")
        return ack

    def connect(self, port: serial.Serial, rate_hz: float | None = None) -> BoardInfo:
        """Stop whatever it was doing, identify it, set the rate, start streaming."""
        port.reset_input_buffer()
        self.parser.reset()
        self._ack_ok(port, Command(MsgType.STOP), "STOP")
        info = decode(self._request(port, Command(MsgType.IDENTIFY), MsgType.INFO, "IDENTIFY"))
        assert isinstance(info, Info)
        check_info(info, DeviceKind.AMPLIFIER, port.port)
        rate = info.rate_hz
        if rate_hz is not None and int(rate_hz) != rate:
            if int(rate_hz) not in SUPPORTED_RATES_HZ:
                raise DeviceRefusedError(
                    f"--rate {rate_hz:g} Hz is not offered by the mecg amplifier; "
                    f"choose one of {', '.join(map(str, SUPPORTED_RATES_HZ))}"
                )
            self._ack_ok(port, SetRate(int(rate_hz)), f"SET_RATE {int(rate_hz)} Hz")
            rate = int(rate_hz)
        self._n = info.n_channels
        self.info = BoardInfo(
            protocol=self.protocol,
            manufacturer="mecg",
            model=info.name.split(" ")[0] or "mecg amplifier",
            uid=f"{info.uid:08x}",
            firmware=info.name,
            rate_hz=float(rate),
            n_ecg=info.n_channels,
            digital_labels=DIGITAL_LABELS[: info.n_digital],
            mv_per_count=info.lsb_pv * 1e-9,
        )
        self.tracker.reset()
        self.clock.reset()
        self._ack_ok(port, Command(MsgType.START), "START")
        return self.info

    def stop(self, port: serial.Serial) -> None:
        """Ask the device to stop streaming (best effort: no wait)."""
        port.write(encode(Command(MsgType.STOP)))

    # -- data ---------------------------------------------------------------------------------
    def decode(self, data: bytes) -> Samples:
        """Samples in ``data`` (plus any received during :meth:`connect`), repeats dropped."""
        assert self.info is not None, "connect() first"
        frames = self._pending + self.parser.feed(data)
        self._pending = []
        width = 8 + 3 * self._n
        payloads = [f.payload for f in frames if f.type == MsgType.DATA and len(f.payload) == width]
        self.other_frames += len(frames) - len(payloads)
        n_dig = len(self.info.digital_labels)
        if not payloads:
            return _empty(self._n + n_dig)
        block = decode_data(payloads, self._n)
        keep = self.tracker.check(block.seq)
        t_us = self.clock.unwrap(block.t_us[keep])
        values = np.empty((t_us.size, self._n + n_dig), np.float32)
        values[:, : self._n] = block.counts[keep] * self.info.mv_per_count
        for b in range(n_dig):
            values[:, self._n + b] = (block.digital[keep] >> b) & 1
        return Samples(t_us * 1e-6, values)


class CytonBoard:
    """An OpenBCI Cyton through its dongle (or :class:`~mecg.acquire.virtual_amplifier.VirtualCyton`).

    Digital board mode (``/3``) puts the pins D11 and D12 in each packet: wire the trigger to D11
    and the camera strobe to D12. ``n_ecg`` channels (1-8, from channel 1) are published.
    """

    protocol = "cyton"
    default_baud = cyton.BAUD

    def __init__(self, n_ecg: int = 1, answer_timeout_s: float = 3.0) -> None:
        if not 1 <= n_ecg <= cyton.N_CHANNELS:
            raise AcquireError(f"the Cyton has {cyton.N_CHANNELS} channels; --channels must be 1-8, got {n_ecg}")
        self.n_ecg, self.answer_timeout_s = n_ecg, answer_timeout_s
        self.parser = cyton.CytonParser()
        self.tracker = SequenceTracker(256)
        self.info: BoardInfo | None = None
        self.digital_mode = False
        self._index = 0  # unwrapped sample number
        self._last_arrival: float | None = None

    @property
    def lost(self) -> int:
        return self.tracker.lost

    @property
    def duplicates(self) -> int:
        return self.tracker.duplicates + self.tracker.stale

    crc_errors = 0  # the format has no CRC

    @property
    def skipped_bytes(self) -> int:
        return self.parser.skipped_bytes

    def _ask(self, port: serial.Serial, cmd: bytes, timeout_s: float) -> str | None:
        """Send a text command; the answer up to ``$$$``, or None if none came."""
        port.write(cmd)
        buf = b""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            buf += port.read(max(1, port.in_waiting))
            if cyton.END_OF_RESPONSE in buf:
                return buf.split(cyton.END_OF_RESPONSE)[0].decode("ascii", errors="replace")
        return None

    def connect(self, port: serial.Serial, rate_hz: float | None = None) -> BoardInfo:
        """Stop, soft-reset, select digital mode and 250 Hz, start streaming."""
        if rate_hz is not None and float(rate_hz) != cyton.RATE_HZ:
            raise DeviceRefusedError(
                f"the Cyton streams {cyton.RATE_HZ} Hz over its USB dongle; "
                f"--rate {rate_hz:g} needs its WiFi shield, which this driver does not speak"
            )
        port.write(cyton.CMD_STOP)
        time.sleep(0.05)
        port.reset_input_buffer()
        banner = self._ask(port, cyton.CMD_SOFT_RESET, self.answer_timeout_s)
        if banner is None or "OpenBCI" not in banner:
            raise DeviceTimeoutError(
                f"no answer from a Cyton on {port.port} to a soft reset ('v'): is the board on, the dongle's "
                "switch on GPIO_6, and is it a Cyton (else try --protocol mecg)?"
            )
        answer = self._ask(port, cyton.CMD_DIGITAL_MODE, 1.0)
        self.digital_mode = bool(answer and "Success" in answer)
        self._ask(port, cyton.CMD_RATE_250, 0.5)  # firmware v2 does not know it: no answer is fine
        m = re.search(r"Firmware: *([^\n]+)", banner)
        uid = re.sub(r"[^A-Za-z0-9]+", "-", port.port).strip("-")
        self.info = BoardInfo(
            protocol=self.protocol,
            manufacturer="OpenBCI",
            model="Cyton",
            uid=uid,
            firmware=m.group(1).strip() if m else "unknown",
            rate_hz=float(cyton.RATE_HZ),
            n_ecg=self.n_ecg,
            digital_labels=("TRIG", "STROBE") if self.digital_mode else (),
            mv_per_count=cyton.UV_PER_COUNT * 1e-3,
        )
        self.parser.reset()
        self.tracker.reset()
        self._index, self._last_arrival = 0, None
        port.write(cyton.CMD_START)
        return self.info

    def stop(self, port: serial.Serial) -> None:
        """Stop streaming."""
        port.write(cyton.CMD_STOP)

    def decode(self, data: bytes, arrival_s: float | None = None) -> Samples:
        """Samples in ``data``; device time = sample number / 250 Hz (the counter wraps every 256)."""
        assert self.info is not None, "connect() first"
        packets = self.parser.feed(data)
        n_dig = len(self.info.digital_labels)
        if not packets:
            return _empty(self.n_ecg + n_dig)
        block = cyton.decode_packets(packets)
        elapsed = None
        if arrival_s is not None and self._last_arrival is not None:  # long gaps: count whole counter wraps
            elapsed = np.zeros(len(block))
            elapsed[0] = (arrival_s - self._last_arrival) * cyton.RATE_HZ
        keep = self.tracker.check(block.counter, elapsed)
        if arrival_s is not None:
            self._last_arrival = arrival_s
        idx = self._index + np.cumsum(self.tracker.steps[keep])
        if idx.size:
            self._index = int(idx[-1])
        values = np.empty((idx.size, self.n_ecg + n_dig), np.float32)
        values[:, : self.n_ecg] = block.counts[keep, : self.n_ecg] * self.info.mv_per_count
        if n_dig:
            values[:, self.n_ecg] = block.digital("D11")[keep]
            values[:, self.n_ecg + 1] = block.digital("D12")[keep]
        return Samples(idx / cyton.RATE_HZ, values)
