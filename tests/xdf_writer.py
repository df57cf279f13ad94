"""A small XDF 1.0 writer for tests, written from the specification (https://github.com/sccn/xdf/wiki/Specifications).

File: ``XDF:`` then chunks ``[NumLengthBytes][Length][Tag uint16][Content]`` (``Length`` counts tag +
content; NumLengthBytes is 1, 4 or 8). Samples chunk content: ``[StreamId uint32][NumSampleBytes]
[NumSamples]`` then per sample ``[TimeStampBytes 0|8][TimeStamp float64]?`` and the values
(little-endian numbers; strings as ``[NumLengthBytes][Length][bytes]`` per channel).
Like LabRecorder, a sample's timestamp is left out when it equals the previous one plus 1/srate.

:func:`write_sender_reboot` writes a whole LabRecorder-style recording in which one sending computer
reboots (its LSL clock restarts near 0), with the recorder's clock time of every sample as truth.
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


def videoraw_desc(
    width: int, height: int, color_format: str = "GRAY", color_channels: int | None = None, codec: str = "RAW"
) -> str:
    """``desc`` of a raw video stream by the XDF meta-data convention (type ``VideoRaw``).

    https://github.com/sccn/xdf/wiki/Video-Raw-Meta-Data; ``color_channels`` defaults to what the format implies.
    """
    if color_channels is None:
        color_channels = {"GRAY": 1, "RGB": 3, "BGR": 3, "YUV": 3, "RGBA": 4}.get(color_format.upper(), 1)
    return (
        f"<encoding><width>{width}</width><height>{height}</height><color_channels>{color_channels}</color_channels>"
        f"<color_format>{escape(color_format)}</color_format><color_space>sRGB</color_space>"
        f"<codec>{escape(codec)}</codec></encoding>"
        "<display><origin>top-left</origin><pixel_aspect>1.0</pixel_aspect></display>"
        "<acquisition><manufacturer>OtherVendor</manufacturer><model>Cam 1</model>"
        "<serial_number>0001</serial_number><view>face</view></acquisition>"
    )


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
        """ClockOffset chunk (tag 4) with ``collection_time`` as given (LabRecorder's is on the sender's clock)."""
        self.chunk(4, struct.pack("<Idd", sid, collection_time, offset))

    def measured_offset(self, sid: int, recorder_time: float, offset: float) -> tuple[float, float]:
        """ClockOffset chunk as LabRecorder writes it: ``offset`` measured at ``recorder_time`` (recorder's clock, s).

        LabRecorder takes ``offset = inlet.time_correction()`` then ``now = local_clock()`` and writes
        ``CollectionTime = now - offset`` (App-LabRecorder ``XDFWriter::write_stream_offset``), i.e. the
        sender's clock at that moment; its footer lists the same pairs. Returns ``(CollectionTime, offset)``.
        """
        self.clock_offset(sid, recorder_time - offset, offset)
        return recorder_time - offset, offset

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


def write_sender_reboot(path: str | Path, seed: int = 0, clock_at_boot_s: float = 0.0) -> dict[str, object]:
    """A 60 s LabRecorder recording in which the amplifier's computer reboots, as LabRecorder writes it.

    The recorder's LSL clock runs from 2000 s. The amplifier's computer ("amp-pc") has been up about
    653,000 s (its clock reads the recorder's + 653,000 s, drifting 40 ppm); at recorder time
    2025.3 s it goes down, boots at 2030 s (its clock restarts at ``clock_at_boot_s``, 0 for a
    reboot, larger than 653,000 s for a stream taken over by a computer that has been up longer;
    now drifting -25 ppm) and streams again from 2041 s; LabRecorder's inlet recovers the stream.
    Streams:

    - 1 ``ECG`` (float32, 1 channel, mV, 250 Hz) from amp-pc, timestamps with 20 us of jitter;
    - 2 ``AmpEvents`` (string markers, irregular) from amp-pc;
    - 3 ``RecMarkers`` (string markers) from the recording computer itself (offset about 0).

    Offsets are measured every 5 s (20 us of noise; none while amp-pc is down), chunks are written
    every 0.5 s in recorder-time order, boundaries every 10 s, footers as LabRecorder writes them.
    Returns ``{"true_times": {stream name: recorder times (s)}, "stamps": {name: raw timestamps (s)},
    "offsets": {name: [(CollectionTime, offset), ...]}}``.
    """
    rng = np.random.default_rng(seed)
    down, boot, back, end = 2025.3, 2030.0, 2041.0, 2060.0

    def amp_clock(r: np.ndarray) -> np.ndarray:
        """amp-pc's LSL clock (s) at recorder times ``r``: before the reboot and after it."""
        r = np.asarray(r, dtype=np.float64)
        return np.where(r < boot, r + 653_000.0 + 40e-6 * (r - 2000.0), clock_at_boot_s + (r - boot) * (1.0 - 25e-6))

    fs = 250.0
    before = 2000.1 + np.arange(int((down - 2000.1) * fs)) / fs  # recorder times of the samples
    after = back + np.arange(int((end - back) * fs)) / fs
    ecg_r = np.concatenate([before, after])
    ecg_ts = amp_clock(ecg_r) + rng.normal(0.0, 20e-6, ecg_r.size)
    ev_r = np.sort(np.concatenate([rng.uniform(2000.5, down, 9), rng.uniform(back, end - 0.5, 7)]))
    ev_ts = amp_clock(ev_r)
    rec_off = 3e-6
    rec_r = np.sort(rng.uniform(2000.2, end - 0.2, 12))
    rec_ts = rec_r - rec_off
    streams = {
        1: ("ECG", ecg_r, ecg_ts, rng.normal(0.0, 1.0, (ecg_r.size, 1)).astype(np.float32)),
        2: ("AmpEvents", ev_r, ev_ts, [[f"event {k}"] for k in range(ev_r.size)]),
        3: ("RecMarkers", rec_r, rec_ts, [[f"marker {k}"] for k in range(rec_r.size)]),
    }
    w = XdfWriter(path)
    w.stream(
        1,
        "float32",
        1,
        fs,
        stream_header_xml(
            "ECG", "ECG", 1, fs, "float32", "amp-serial-42", "amp-pc", channels_desc(["ECG"], ["mV"], ["ECG"])
        ),
    )
    w.stream(2, "string", 1, 0.0, stream_header_xml("AmpEvents", "Markers", 1, 0.0, "string", "amp-ev", "amp-pc"))
    w.stream(3, "string", 1, 0.0, stream_header_xml("RecMarkers", "Markers", 1, 0.0, "string", "rec-mk", "lab-pc"))
    offsets: dict[int, list[tuple[float, float]]] = {1: [], 2: [], 3: []}
    measure_at = 2002.0 + 5.0 * np.arange(12)
    for k, lo in enumerate(np.arange(2000.0, end, 0.5)):
        hi = lo + 0.5
        for sid, (_, r, ts, values) in streams.items():
            sel = np.flatnonzero((r >= lo) & (r < hi))
            if sel.size:
                vals = values[sel] if isinstance(values, np.ndarray) else [values[i] for i in sel]
                w.samples(sid, vals, ts[sel])
            for t in measure_at[(measure_at >= lo) & (measure_at < hi)]:
                t = float(t + rng.uniform(0.0, 0.01))  # each stream's offset thread has its own phase
                if sid == 3:
                    off = rec_off
                elif down <= t < back:
                    continue  # amp-pc is down: time_correction times out
                else:
                    off = float(t - amp_clock(t))
                offsets[sid].append(w.measured_offset(sid, t, off + float(rng.normal(0.0, 20e-6))))
        if k % 20 == 19:
            w.boundary()
    for sid, (_, _, ts, _) in streams.items():
        w.footer(sid, float(ts[0]), float(ts[-1]), ts.size, np.asarray(offsets[sid]))
    w.close()
    return {
        "true_times": {name: r for name, r, _, _ in streams.values()},
        "stamps": {name: ts for name, _, ts, _ in streams.values()},
        "offsets": {streams[sid][0]: rows for sid, rows in offsets.items()},
    }
