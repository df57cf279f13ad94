"""The mecg serial protocol (``hardware/protocol.md``): frames, CRC, messages and an incremental parser.

Every message, in both directions, is one frame::

    A5 5A | type (1) | length L (1) | payload (L bytes) | CRC-16 (2, little-endian)

The CRC is CRC-16/CCITT-FALSE (polynomial 0x1021, initial value 0xFFFF, no reflection, no final
XOR) over ``type``, ``length`` and ``payload``. Multi-byte fields are little-endian. Each message
type has a fixed payload length (or a short list of them), which the parser checks before it
looks at the CRC, so garbage rarely even reaches the CRC test.

The parser is incremental (feed it whatever ``read()`` returned), resynchronises after garbage
by sliding one byte at a time past anything that is not a whole valid frame (so a real frame
that starts inside a false candidate is still found), and rejects every frame whose CRC fails.
"""

from __future__ import annotations

import binascii
import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar

import numpy as np

from mecg.acquire.errors import DeviceRefusedError, DeviceReplyError

SYNC = b"\xa5\x5a"
PROTOCOL_VERSION = 1
#: Largest payload any message may declare; longer declared lengths are garbage.
MAX_PAYLOAD = 64
#: Bytes of a frame around its payload: sync (2), type, length, CRC (2).
FRAME_OVERHEAD = 6
#: Sampling rates (Hz) the mecg amplifier firmware accepts (ADS1292R data rates that fit the link).
SUPPORTED_RATES_HZ = (125, 250, 500, 1000, 2000)
#: ECG channels a DATA frame carries (N = 1-8) and digital input bits it has (``digital`` is 8 bits).
MAX_CHANNELS = 8
MAX_DIGITAL = 8
#: Default serial baud rates; native-USB boards ignore them, pseudo-terminals too.
AMPLIFIER_BAUD = 921600
TRIGGER_BOX_BAUD = 115200

#: DATA ``digital`` bits and ``status`` bits.
DIGITAL_TRIG = 0x01
DIGITAL_STROBE = 0x02
STATUS_LEADOFF = 0x01
STATUS_OVERFLOW = 0x02
#: The digital input channels in bit order (bit 0 first).
DIGITAL_LABELS = ("TRIG", "STROBE", "DIN3", "DIN4", "DIN5", "DIN6", "DIN7", "DIN8")


class MsgType(IntEnum):
    """Frame types: device -> host below 0x80, host -> device (commands) from 0x81."""

    DATA = 0x01
    INFO = 0x02
    ACK = 0x03
    PULSE_EVENT = 0x04
    IDENTIFY = 0x81
    START = 0x82
    STOP = 0x83
    SET_RATE = 0x84
    PULSE = 0x85
    SCHEDULE = 0x86
    PING = 0x87


class Status(IntEnum):
    """ACK status codes."""

    OK = 0
    BAD_ARG = 1
    BUSY = 2
    UNKNOWN = 3


class DeviceKind(IntEnum):
    """INFO ``kind``."""

    AMPLIFIER = 1
    TRIGGER_BOX = 2

    @property
    def article_name(self) -> str:
        """``"an amplifier"``, ``"a trigger box"``: for messages."""
        return {1: "an amplifier", 2: "a trigger box"}[int(self)]


INFO_FIXED = 18
INFO_MAX_NAME = 32
#: Allowed payload lengths per type.
PAYLOAD_LENGTHS: dict[int, frozenset[int]] = {
    MsgType.DATA: frozenset(8 + 3 * n for n in range(1, 9)),
    MsgType.INFO: frozenset(range(INFO_FIXED, INFO_FIXED + INFO_MAX_NAME + 1)),
    MsgType.ACK: frozenset({6}),
    MsgType.PULSE_EVENT: frozenset({9}),
    MsgType.IDENTIFY: frozenset({0}),
    MsgType.START: frozenset({0}),
    MsgType.STOP: frozenset({0}),
    MsgType.SET_RATE: frozenset({2}),
    MsgType.PULSE: frozenset({3}),
    MsgType.SCHEDULE: frozenset({6}),
    MsgType.PING: frozenset({0}),
}
DEVICE_TYPES = frozenset(t for t in PAYLOAD_LENGTHS if t < 0x80)
HOST_TYPES = frozenset(t for t in PAYLOAD_LENGTHS if t > 0x80)


def crc16(data: bytes | bytearray) -> int:
    """CRC-16/CCITT-FALSE of ``data`` (check value: ``crc16(b"123456789") == 0x29B1``)."""
    return binascii.crc_hqx(data, 0xFFFF)


def frame(msg_type: int, payload: bytes = b"") -> bytes:
    """One complete frame of ``msg_type`` carrying ``payload``."""
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    body = bytes((msg_type, len(payload))) + payload
    return SYNC + body + struct.pack("<H", crc16(body))


@dataclass(frozen=True)
class Frame:
    """A frame that passed the length and CRC checks."""

    type: int
    payload: bytes


# -- messages ---------------------------------------------------------------------------------
def _int24_le(values: tuple[int, ...]) -> bytes:
    out = bytearray()
    for v in values:
        if not -(1 << 23) <= v < (1 << 23):
            raise ValueError(f"channel value {v} does not fit in 24 bits")
        out += (v & 0xFFFFFF).to_bytes(3, "little")
    return bytes(out)


@dataclass(frozen=True)
class Data:
    """One sample: sequence number, device time (us), digital inputs, status bits, ADC counts."""

    seq: int
    t_us: int
    digital: int
    status: int
    channels: tuple[int, ...]
    TYPE: ClassVar[int] = MsgType.DATA

    def payload(self) -> bytes:
        return struct.pack("<HIBB", self.seq, self.t_us, self.digital, self.status) + _int24_le(tuple(self.channels))

    @classmethod
    def from_payload(cls, p: bytes) -> Data:
        seq, t_us, digital, status = struct.unpack_from("<HIBB", p)
        ch = tuple(int.from_bytes(p[i : i + 3], "little", signed=True) for i in range(8, len(p), 3))
        return cls(seq, t_us, digital, status, ch)


@dataclass(frozen=True)
class Info:
    """The answer to IDENTIFY: what the device is and how it is set up."""

    version: int
    kind: int
    n_channels: int
    n_digital: int
    rate_hz: int
    lsb_pv: int
    uid: int
    t_us: int
    name: str
    TYPE: ClassVar[int] = MsgType.INFO

    def payload(self) -> bytes:
        name = self.name.encode("ascii")[:INFO_MAX_NAME]
        return (
            struct.pack(
                "<BBBBHIII",
                self.version,
                self.kind,
                self.n_channels,
                self.n_digital,
                self.rate_hz,
                self.lsb_pv,
                self.uid,
                self.t_us,
            )
            + name
        )

    @classmethod
    def from_payload(cls, p: bytes) -> Info:
        f = struct.unpack_from("<BBBBHIII", p)
        return cls(*f, name=p[INFO_FIXED:].decode("ascii", errors="replace"))


@dataclass(frozen=True)
class Ack:
    """The answer to every command but IDENTIFY: which command, its status, device time (us) on sending."""

    command: int
    status: int
    t_us: int
    TYPE: ClassVar[int] = MsgType.ACK

    def payload(self) -> bytes:
        return struct.pack("<BBI", self.command, self.status, self.t_us)

    @classmethod
    def from_payload(cls, p: bytes) -> Ack:
        return cls(*struct.unpack_from("<BBI", p))


@dataclass(frozen=True)
class PulseEvent:
    """The trigger box fired a pulse: its number, rising-edge device time (us), width (ms) and code."""

    seq: int
    t_us: int
    width_ms: int
    code: int
    TYPE: ClassVar[int] = MsgType.PULSE_EVENT

    def payload(self) -> bytes:
        return struct.pack("<HIHB", self.seq, self.t_us, self.width_ms, self.code)

    @classmethod
    def from_payload(cls, p: bytes) -> PulseEvent:
        return cls(*struct.unpack_from("<HIHB", p))


@dataclass(frozen=True)
class Command:
    """A host command without arguments (IDENTIFY, START, STOP, PING)."""

    type: int

    def payload(self) -> bytes:
        return b""

    @property
    def TYPE(self) -> int:  # same spelling as the message classes' class constant
        return self.type


@dataclass(frozen=True)
class SetRate:
    """Set the amplifier's sampling rate (Hz); only while stopped."""

    rate_hz: int
    TYPE: ClassVar[int] = MsgType.SET_RATE

    def payload(self) -> bytes:
        return struct.pack("<H", self.rate_hz)

    @classmethod
    def from_payload(cls, p: bytes) -> SetRate:
        return cls(*struct.unpack_from("<H", p))


@dataclass(frozen=True)
class Pulse:
    """Fire one trigger pulse now, ``width_ms`` long, tagged ``code``."""

    width_ms: int
    code: int
    TYPE: ClassVar[int] = MsgType.PULSE

    def payload(self) -> bytes:
        return struct.pack("<HB", self.width_ms, self.code)

    @classmethod
    def from_payload(cls, p: bytes) -> Pulse:
        return cls(*struct.unpack_from("<HB", p))


@dataclass(frozen=True)
class Schedule:
    """Configure the trigger box's own irregular schedule (rise-to-rise gaps uniform in [min, max] ms)."""

    min_gap_ms: int
    max_gap_ms: int
    width_ms: int
    TYPE: ClassVar[int] = MsgType.SCHEDULE

    def payload(self) -> bytes:
        return struct.pack("<HHH", self.min_gap_ms, self.max_gap_ms, self.width_ms)

    @classmethod
    def from_payload(cls, p: bytes) -> Schedule:
        return cls(*struct.unpack_from("<HHH", p))


Message = Data | Info | Ack | PulseEvent | Command | SetRate | Pulse | Schedule
_DECODERS = {
    MsgType.DATA: Data.from_payload,
    MsgType.INFO: Info.from_payload,
    MsgType.ACK: Ack.from_payload,
    MsgType.PULSE_EVENT: PulseEvent.from_payload,
    MsgType.SET_RATE: SetRate.from_payload,
    MsgType.PULSE: Pulse.from_payload,
    MsgType.SCHEDULE: Schedule.from_payload,
}


def encode(msg: Message) -> bytes:
    """The frame of ``msg``."""
    return frame(msg.TYPE, msg.payload())


def decode(f: Frame) -> Message:
    """The message a checked frame carries."""
    dec = _DECODERS.get(f.type)
    return dec(f.payload) if dec else Command(f.type)


def command(msg_type: MsgType) -> bytes:
    """Frame of an argument-less command (IDENTIFY, START, STOP, PING)."""
    return frame(msg_type)


# -- parsing ----------------------------------------------------------------------------------
class FrameParser:
    """Incremental frame parser for one direction of the link.

    Parameters
    ----------
    lengths
        Accepted frame types and the payload lengths allowed for each. :meth:`for_host` accepts
        the device -> host messages with their exact lengths; :meth:`for_device` accepts every
        command type 0x81-0xFF with any length (a device answers what it does not know).

    Counters: ``frames`` delivered, ``crc_errors`` (candidates with a valid header whose CRC
    failed), ``skipped_bytes`` (bytes consumed that were not part of a delivered frame).
    """

    def __init__(self, lengths: dict[int, frozenset[int]] | None = None) -> None:
        self._lengths = dict(lengths) if lengths is not None else {t: PAYLOAD_LENGTHS[t] for t in DEVICE_TYPES}
        self._buf = bytearray()
        self.frames = 0
        self.crc_errors = 0
        self.skipped_bytes = 0

    @classmethod
    def for_host(cls) -> FrameParser:
        """The host side: DATA, INFO, ACK, PULSE_EVENT with their exact payload lengths."""
        return cls({t: PAYLOAD_LENGTHS[t] for t in DEVICE_TYPES})

    @classmethod
    def for_device(cls) -> FrameParser:
        """The device side: any command type 0x81-0xFF, any payload length up to 64."""
        any_len = frozenset(range(MAX_PAYLOAD + 1))
        return cls({t: any_len for t in range(0x81, 0x100)})

    def reset(self) -> None:
        """Forget buffered bytes (after a reconnect); counters are kept."""
        self._buf.clear()

    def feed(self, data: bytes) -> list[Frame]:
        """Append ``data`` and return every complete valid frame it finished, in order."""
        buf = self._buf
        buf += data
        n = len(buf)
        out: list[Frame] = []
        pos = 0
        good = 0
        lengths = self._lengths
        while True:
            i = buf.find(SYNC, pos)
            if i < 0:
                pos = n - 1 if n > pos and buf[-1] == 0xA5 else n  # a trailing 0xA5 may start a sync
                break
            if i + 4 > n:
                pos = i
                break
            length = buf[i + 3]
            allowed = lengths.get(buf[i + 2])
            if allowed is None or length not in allowed:
                pos = i + 1
                continue
            end = i + FRAME_OVERHEAD + length
            if end > n:
                pos = i
                break
            if binascii.crc_hqx(buf[i + 2 : end - 2], 0xFFFF) != buf[end - 2] | (buf[end - 1] << 8):
                self.crc_errors += 1
                pos = i + 1  # the sync may have been garbage: a real frame can start inside this one
                continue
            out.append(Frame(buf[i + 2], bytes(buf[i + 4 : end - 2])))
            good += end - i
            pos = end
        self.skipped_bytes += pos - good
        del buf[:pos]
        self.frames += len(out)
        return out


@dataclass
class DataBlock:
    """DATA frames of one channel count decoded into arrays (one row per sample)."""

    seq: np.ndarray  # uint16
    t_us: np.ndarray  # uint32, device clock
    digital: np.ndarray  # uint8
    status: np.ndarray  # uint8
    counts: np.ndarray  # int32 (n, n_channels), ADC counts

    def __len__(self) -> int:
        return int(self.seq.size)


def decode_data(payloads: list[bytes], n_channels: int) -> DataBlock:
    """Decode DATA payloads of ``n_channels`` channels at once (vectorised)."""
    width = 8 + 3 * n_channels
    if not payloads:
        z = np.zeros(0, np.uint8)
        return DataBlock(z.astype(np.uint16), z.astype(np.uint32), z, z, np.zeros((0, n_channels), np.int32))
    a = np.frombuffer(b"".join(payloads), np.uint8).reshape(-1, width)
    seq = a[:, 0].astype(np.uint16) | (a[:, 1].astype(np.uint16) << 8)
    t_us = np.ascontiguousarray(a[:, 2:6]).view("<u4").ravel().astype(np.uint32)
    b = a[:, 8:].reshape(-1, n_channels, 3).astype(np.int32)
    counts = b[..., 0] | (b[..., 1] << 8) | (b[..., 2] << 16)
    counts = (counts ^ 0x800000) - 0x800000
    return DataBlock(seq, t_us, a[:, 6].copy(), a[:, 7].copy(), counts)


def check_command(f: Frame) -> Status:
    """How a device first judges a command frame: UNKNOWN type, BAD_ARG length, or OK to decode."""
    if f.type not in HOST_TYPES:
        return Status.UNKNOWN
    if len(f.payload) not in PAYLOAD_LENGTHS[f.type]:
        return Status.BAD_ARG
    return Status.OK


# -- checking what a device says ----------------------------------------------------------------
_STREAM_COMMAND = {DeviceKind.AMPLIFIER: "mecg stream ecg", DeviceKind.TRIGGER_BOX: "mecg stream trigger"}
_STATUS_HINT = {
    Status.BAD_ARG: "an argument out of range or a wrong payload length",
    Status.BUSY: "not allowed in its current state; power-cycle it and try again",
    Status.UNKNOWN: "its firmware does not implement this command; update the firmware",
}


def check_info(info: Info, want: DeviceKind, port: str) -> None:
    """Refuse an INFO that hardware/protocol.md does not allow, or that comes from another kind of device.

    Raises :class:`~mecg.acquire.errors.DeviceReplyError` (or :class:`~mecg.acquire.errors.AcquireError`
    subclasses) naming the field, its value, what the protocol allows and what to do.
    """
    reflash = "its firmware is misconfigured or corrupt: re-flash it (hardware/firmware) and power-cycle it"
    if info.version != PROTOCOL_VERSION:
        raise DeviceReplyError(
            f"{port} speaks mecg protocol version {info.version}; this driver knows version {PROTOCOL_VERSION}: "
            "flash firmware that speaks it, or use the mecg release that matches the firmware"
        )
    if info.kind not in DeviceKind.__members__.values():
        raise DeviceReplyError(
            f"{port} answered IDENTIFY with device kind {info.kind}, which the mecg protocol does not define "
            f"(1 amplifier, 2 trigger box): is it an mecg device? If so, {reflash}"
        )
    kind = DeviceKind(info.kind)
    if kind != want:
        noun = "an amplifier" if want == DeviceKind.AMPLIFIER else "a trigger box"
        raise DeviceReplyError(f"{port} is not {noun} but {kind.article_name}: use `{_STREAM_COMMAND[kind]}` for it")
    if kind != DeviceKind.AMPLIFIER:
        return
    who = f"the amplifier on {port}"
    if not 1 <= info.n_channels <= MAX_CHANNELS:
        raise DeviceReplyError(
            f"{who} reports {info.n_channels} ECG channels; the protocol allows 1-{MAX_CHANNELS}: {reflash}"
        )
    if info.n_digital > MAX_DIGITAL:
        raise DeviceReplyError(
            f"{who} reports {info.n_digital} digital inputs; the protocol allows 0-{MAX_DIGITAL}: {reflash}"
        )
    if info.rate_hz not in SUPPORTED_RATES_HZ:
        raise DeviceReplyError(
            f"{who} reports a sampling rate of {info.rate_hz} Hz; the protocol allows "
            f"{', '.join(map(str, SUPPORTED_RATES_HZ))} Hz: {reflash}"
        )
    if info.lsb_pv == 0:
        raise DeviceReplyError(f"{who} reports an ADC count of 0 pV (lsb_pv), so its samples have no scale: {reflash}")


def check_ack(ack: Ack, what: str, who: str) -> None:
    """Refuse an ACK whose status is not OK: :class:`~mecg.acquire.errors.DeviceRefusedError` for a defined
    refusal (BAD_ARG, BUSY, UNKNOWN), :class:`~mecg.acquire.errors.DeviceReplyError` for a status the
    protocol does not define. ``what`` names the command, ``who`` the device (``"the amplifier on /dev/x"``)."""
    if ack.status == Status.OK:
        return
    if ack.status not in Status.__members__.values():
        raise DeviceReplyError(
            f"{who} answered {what} with ACK status {ack.status}, which the mecg protocol does not define "
            "(0 OK, 1 BAD_ARG, 2 BUSY, 3 UNKNOWN): update its firmware, or mecg if the firmware is newer"
        )
    st = Status(ack.status)
    raise DeviceRefusedError(f"{who} refused {what}: {st.name} ({_STATUS_HINT[st]})")
