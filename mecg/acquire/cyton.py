"""The OpenBCI Cyton's 33-byte serial packets: parser, decoder, encoder (for the simulator) and commands.

Packet layout (big-endian)::

    0xA0 | sample counter (1) | 8 channels x 24-bit signed (24) | aux (6) | footer 0xC0-0xC6

Footer 0xC0: aux = accelerometer (3 x int16); 0xC1: raw aux, which in digital board mode
(command ``/3``) carries the digital pins D11, D12, D13, D17, D18 in aux bytes 0-4; 0xC2 user
defined; 0xC3-0xC6 time-stamped variants. There is no CRC: a damaged header or footer is
detected, damaged sample bytes are not (a limit of the format).

Resynchronisation: the usual rule (a 0xA0 with a footer 32 bytes later) alone accepts false
packets: sample bytes fall in 0xC0-0xC6 about 3 % of the time, so a truncated packet followed by
a good one is taken for a packet 3 % of the time and swallows the good one. :class:`CytonParser`
adds lookahead (see there), at the cost of one byte or one packet of latency.

BrainFlow's ``CYTON_BOARD`` (``mecg stream ecg --brainflow CYTON_BOARD``) reads the same board;
this path stays for that lookahead (BrainFlow's reader accepts header + footer alone) and for
running without a native library (docs/devices.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HEADER = 0xA0
PACKET_SIZE = 33
FOOTERS = range(0xC0, 0xC7)
FOOTER_ACCEL = 0xC0
FOOTER_RAW_AUX = 0xC1
N_CHANNELS = 8
#: The Cyton streams 250 Hz over its USB dongle (the radio link carries no more).
RATE_HZ = 250
BAUD = 115200
#: ADS1299 scale: 4.5 V reference, default gain 24, 24-bit two's complement.
DEFAULT_GAIN = 24
UV_PER_COUNT = 4.5 / DEFAULT_GAIN / (2**23 - 1) * 1e6
#: Aux byte of each digital pin in digital board mode.
DIGITAL_PINS = {"D11": 0, "D12": 1, "D13": 2, "D17": 3, "D18": 4}

# Commands (ASCII) of the Cyton firmware v3.
CMD_START = b"b"
CMD_STOP = b"s"
CMD_SOFT_RESET = b"v"
CMD_DIGITAL_MODE = b"/3"
CMD_DEFAULT_MODE = b"/0"
CMD_RATE_250 = b"~6"
END_OF_RESPONSE = b"$$$"


def encode_packet(
    counter: int, channels: np.ndarray | list[int], aux: bytes = bytes(6), footer: int = FOOTER_ACCEL
) -> bytes:
    """One 33-byte packet (counter taken modulo 256, channels as signed 24-bit counts)."""
    ch = np.asarray(channels, dtype=np.int64)
    if ch.shape != (N_CHANNELS,):
        raise ValueError(f"a Cyton packet has {N_CHANNELS} channels, got {ch.shape}")
    if len(aux) != 6 or footer not in FOOTERS:
        raise ValueError("aux must be 6 bytes and footer in 0xC0-0xC6")
    body = b"".join(int(v & 0xFFFFFF).to_bytes(3, "big") for v in ch)
    return bytes((HEADER, counter & 0xFF)) + body + bytes(aux) + bytes((footer,))


def encode_packets(counters: np.ndarray, channels: np.ndarray, aux: np.ndarray, footer: int) -> bytes:
    """Many packets at once: ``counters`` (n,), ``channels`` (n, 8) counts, ``aux`` (n, 6) uint8."""
    n = len(counters)
    out = np.empty((n, PACKET_SIZE), np.uint8)
    out[:, 0] = HEADER
    out[:, 1] = np.asarray(counters) & 0xFF
    c = np.asarray(channels, dtype=np.int64) & 0xFFFFFF
    out[:, 2:26] = np.stack([(c >> 16) & 0xFF, (c >> 8) & 0xFF, c & 0xFF], axis=-1).reshape(n, 24)
    out[:, 26:32] = aux
    out[:, 32] = footer
    return out.tobytes()


class CytonParser:
    """Incremental parser of a Cyton byte stream into raw 33-byte packets.

    A candidate is a 0xA0 with a footer (0xC0-0xC6) 32 bytes later. It is accepted when

    * its counter continues the last good packet's and the next packet's 0xA0 follows it, or
    * a whole valid packet follows it directly (confirmation, needed after a gap or at start), or
    * its counter continues, something other than 0xA0 follows (garbage after a good packet),
      and no confirmed packet starts inside it (which is what a truncated packet looks like).

    So a packet is delivered once the first byte of the next one has arrived (one more packet
    when the counter jumps), and a random 0xA0 with a footer-like byte 32 bytes later is not
    taken for a sample. Counters: ``packets`` delivered, ``skipped_bytes`` consumed outside
    delivered packets.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._last_counter: int | None = None
        self.packets = 0
        self.skipped_bytes = 0

    def reset(self) -> None:
        """Forget buffered bytes and the last counter (after a reconnect)."""
        self._buf.clear()
        self._last_counter = None

    def feed(self, data: bytes) -> list[bytes]:
        """Append ``data``; return the complete packets it finished, in order."""
        buf = self._buf
        buf += data
        n = len(buf)
        out: list[bytes] = []
        pos = good = 0
        P = PACKET_SIZE

        def valid(j: int) -> bool:  # header and footer of a packet at j (caller checked j + P <= n)
            return buf[j] == HEADER and 0xC0 <= buf[j + P - 1] <= 0xC6

        while True:
            i = buf.find(HEADER, pos)
            if i < 0:
                pos = n
                break
            if n - i < P + 1:
                pos = i
                break
            if not valid(i):
                pos = i + 1
                continue
            continues = self._last_counter is not None and buf[i + 1] == (self._last_counter + 1) & 0xFF
            if buf[i + P] == HEADER and continues:
                ok = True
            elif n - i < 2 * P + 1:
                pos = i  # decide when the next packet is here
                break
            elif buf[i + P] == HEADER:
                ok = 0xC0 <= buf[i + 2 * P - 1] <= 0xC6
            else:
                ok = continues and not any(
                    buf[j] == HEADER and valid(j) and buf[j + P] == HEADER for j in range(i + 1, i + P)
                )
            if not ok:
                pos = i + 1
                continue
            out.append(bytes(buf[i : i + P]))
            self._last_counter = buf[i + 1]
            good += P
            pos = i + P
        self.skipped_bytes += pos - good
        del buf[:pos]
        self.packets += len(out)
        return out


@dataclass
class CytonBlock:
    """Decoded Cyton packets (one row per sample)."""

    counter: np.ndarray  # uint8
    counts: np.ndarray  # int32 (n, 8), ADC counts
    aux: np.ndarray  # uint8 (n, 6)
    footer: np.ndarray  # uint8

    def __len__(self) -> int:
        return int(self.counter.size)

    def digital(self, pin: str) -> np.ndarray:
        """Level (0/1) of a digital pin (``"D11"``, ...) in digital board mode (footer 0xC1)."""
        return (self.aux[:, DIGITAL_PINS[pin]] != 0).astype(np.uint8)


def decode_packets(packets: list[bytes]) -> CytonBlock:
    """Decode raw packets at once (vectorised)."""
    if not packets:
        z = np.zeros(0, np.uint8)
        return CytonBlock(z, np.zeros((0, N_CHANNELS), np.int32), np.zeros((0, 6), np.uint8), z)
    a = np.frombuffer(b"".join(packets), np.uint8).reshape(-1, PACKET_SIZE)
    b = a[:, 2:26].reshape(-1, N_CHANNELS, 3).astype(np.int32)
    counts = (b[..., 0] << 16) | (b[..., 1] << 8) | b[..., 2]
    counts = (counts ^ 0x800000) - 0x800000
    return CytonBlock(a[:, 1].copy(), counts, a[:, 26:32].copy(), a[:, 32].copy())
