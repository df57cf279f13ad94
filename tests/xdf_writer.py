"""A small XDF 1.0 writer for tests, written from the specification (https://github.com/sccn/xdf/wiki/Specifications).

File: ``XDF:`` then chunks ``[NumLengthBytes][Length][Tag uint16][Content]`` (``Length`` counts tag +
content; NumLengthBytes is 1, 4 or 8). Samples chunk content: ``[StreamId uint32][NumSampleBytes]
[NumSamples]`` then per sample ``[TimeStampBytes 0|8][TimeStamp float64]?`` and the values
(little-endian numbers; strings as ``[NumLengthBytes][Length][bytes]`` per channel).
Like LabRecorder, a sample's timestamp is left out when it equals the previous one plus 1/srate.
"""

from __future__ import annotations

import struct
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np

BOUNDARY_UUID = bytes.fromhex("43A546DCCBF5410FB30ED5467383CBE4")
DTYPES = {"float32": "<f4", "double64": "<f8", "int8": "i1", "int16": "<i2", "int32": "<i4", "int64": "<i8"}


def varlen(n: int) -> bytes:
    """XDF variable-length integer: one byte saying 1, 4 or 8, then the value little-endian."""
    if n < 256:
        return b"\x01" + struct.pack("<B", n)
    if n < 2**32:
        return b"\x04" + struct.pack("<I", n)
    return b"\x08" + struct.pack("<Q", n)


def stream_header_xml(
    name: str,
    type: str,
    channel_count: int,
    nominal_srate: float,
    channel_format: str,
    source_id: str = "",
    hostname: str = "lab-pc",
    desc: str = "",
    created_at: float = 100.0,
) -> str:
    """An LSL stream header as LabRecorder stores it (``info.as_xml()``)."""
    return (
        '<?xml version="1.0"?>\n<info>\n'
        f"\t<name>{escape(name)}</name>\n\t<type>{escape(type)}</type>\n"
        f"\t<channel_count>{channel_count}</channel_count>\n\t<channel_format>{channel_format}</channel_format>\n"
        f"\t<source_id>{escape(source_id)}</source_id>\n\t<nominal_srate>{nominal_srate:g}</nominal_srate>\n"
        f"\t<version>1.1000000000000001</version>\n\t<created_at>{created_at!r}</created_at>\n"
        f"\t<uid>uid-{escape(name)}</uid>\n\t<session_id>default</session_id>\n\t<hostname>{escape(hostname)}</hostname>\n"
        f"\t<desc>{desc}</desc>\n</info>\n"
    )


def channels_desc(labels: list[str], units: list[str], types: list[str]) -> str:
    """``<channels>`` for a header's desc."""
    chans = "".join(
        f"<channel><label>{escape(a)}</label><unit>{escape(u)}</unit><type>{escape(t)}</type></channel>"
        for a, u, t in zip(labels, units, types)
    )
    return f"<channels>{chans}</channels>"


class XdfWriter:
    """Writes chunks in the order called; ``close()`` ends the file (no footers unless written)."""

    def __init__(self, path: str | Path, datetime: str | None = "2026-03-04T10:20:30+01:00") -> None:
        self.path = Path(path)
        self.f = open(self.path, "wb")
        self.f.write(b"XDF:")
        self.formats: dict[int, tuple[str, int, float]] = {}
        self.last_ts: dict[int, float] = {}
        dt = f"<datetime>{datetime}</datetime>" if datetime else ""
        self.chunk(1, f'<?xml version="1.0"?>\n<info><version>1.0</version>{dt}</info>'.encode())

    def chunk(self, tag: int, content: bytes) -> int:
        """Write one chunk; returns its byte offset."""
        pos = self.f.tell()
        self.f.write(varlen(len(content) + 2) + struct.pack("<H", tag) + content)
        return pos

    def stream(self, sid: int, channel_format: str, channel_count: int, nominal_srate: float, header_xml: str) -> None:
        """StreamHeader chunk (tag 2)."""
        self.formats[sid] = (channel_format, channel_count, nominal_srate)
        self.chunk(2, struct.pack("<I", sid) + header_xml.encode())

    def samples(self, sid: int, values: object, stamps: np.ndarray, compress_stamps: bool = True) -> int:
        """Samples chunk (tag 3): ``values`` (n, channels) numbers or a list of n lists of strings."""
        fmt, nch, srate = self.formats[sid]
        out = bytearray(struct.pack("<I", sid))
        stamps = np.asarray(stamps, dtype=np.float64)
        out += varlen(len(stamps))
        arr = (
            None if fmt == "string" else np.ascontiguousarray(np.asarray(values).reshape(len(stamps), nch), DTYPES[fmt])
        )
        for i, t in enumerate(stamps):
            prev = self.last_ts.get(sid)
            if compress_stamps and srate > 0 and prev is not None and prev + 1.0 / srate == t:
                out += b"\x00"
            else:
                out += b"\x08" + struct.pack("<d", t)
            self.last_ts[sid] = float(t)
            if arr is None:
                for v in values[i]:
                    b = str(v).encode()
                    out += varlen(len(b)) + b
            else:
                out += arr[i].tobytes()
        return self.chunk(3, bytes(out))

    def clock_offset(self, sid: int, collection_time: float, offset: float) -> None:
        """ClockOffset chunk (tag 4)."""
        self.chunk(4, struct.pack("<Idd", sid, collection_time, offset))

    def boundary(self) -> None:
        """Boundary chunk (tag 5)."""
        self.chunk(5, BOUNDARY_UUID)

    def footer(self, sid: int, first: float, last: float, count: int, offsets: np.ndarray | None = None) -> None:
        """StreamFooter chunk (tag 6) with LabRecorder's fields."""
        offs = "".join(
            f"<offset><time>{t!r}</time><value>{v!r}</value></offset>"
            for t, v in (offsets if offsets is not None else [])
        )
        xml = (
            f'<?xml version="1.0"?>\n<info><first_timestamp>{first!r}</first_timestamp>'
            f"<last_timestamp>{last!r}</last_timestamp><sample_count>{count}</sample_count>"
            f"<clock_offsets>{offs}</clock_offsets></info>"
        )
        self.chunk(6, struct.pack("<I", sid) + xml.encode())

    def close(self) -> None:
        self.f.close()
