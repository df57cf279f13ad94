"""The chunk structure of an XDF file, read without its samples: headers, footers and where the file is cut.

XDF (https://github.com/sccn/xdf/wiki/Specifications) is the magic ``XDF:`` followed by chunks:
``[NumLengthBytes: 1, 4 or 8][Length][Tag: uint16][Content]``, where ``Length`` counts the tag and
the content. Tags: 1 FileHeader (XML), 2 StreamHeader (StreamId + XML), 3 Samples, 4 ClockOffset
(StreamId + two float64), 5 Boundary (a 16-byte UUID), 6 StreamFooter (StreamId + XML).

:func:`scan_xdf` walks the chunks by their lengths (the samples are not decoded, so a large file is
scanned in a moment) and reports the byte offset where the intact part ends: a recording that
LabRecorder did not finish (killed, crashed, disk full) ends inside a chunk and has no footers.
pyxdf itself logs such damage and goes on, which would import a cut file without a word.

A gzip-compressed XDF file (``.xdfz`` or ``.xdf.gz``, as pyxdf reads them) is inflated first with
:func:`decompress_xdf`; a cut or damaged gzip stream leaves the bytes before the damage, which
:func:`scan_xdf` then sees as a cut XDF file.
"""

from __future__ import annotations

import gzip
import os
import struct
import xml.etree.ElementTree as ET
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from mecg.errors import MecgError

MAGIC = b"XDF:"
#: Name endings (lower case) of gzip-compressed XDF files, as pyxdf recognises them.
COMPRESSED_SUFFIXES = (".xdfz", ".xdf.gz")
#: The first bytes of a gzip file.
GZIP_MAGIC = b"\x1f\x8b"
TAGS = {1: "FileHeader", 2: "StreamHeader", 3: "Samples", 4: "ClockOffset", 5: "Boundary", 6: "StreamFooter"}
#: Tags whose content starts with a uint32 StreamId.
STREAM_TAGS = (2, 3, 4, 6)


class XdfError(MecgError):
    """An XDF file cannot be imported (not XDF, truncated, corrupted, or nothing to import); the message says why."""


class XdfTruncatedError(XdfError):
    """The XDF file ends inside a chunk or is corrupted after some intact chunks (``intact_bytes``)."""

    def __init__(self, message: str, intact_bytes: int) -> None:
        super().__init__(message)
        self.intact_bytes = intact_bytes


@dataclass
class XdfStreamScan:
    """One stream as the chunks show it: its header and footer XML (verbatim)."""

    stream_id: int
    header_xml: str
    footer_xml: str = ""


@dataclass
class XdfScan:
    """What :func:`scan_xdf` found. Offsets and sizes in bytes.

    ``intact_bytes`` is where the last complete chunk ends (the file size for a sound file);
    ``problem`` is empty for a sound file and says what is cut or damaged otherwise.
    """

    path: Path
    size: int
    file_header_xml: str = ""
    streams: dict[int, XdfStreamScan] = field(default_factory=dict)
    chunks: int = 0
    intact_bytes: int = 0
    problem: str = ""

    @property
    def truncated(self) -> bool:
        """True when the file ends inside a chunk or is damaged (the chunks after ``intact_bytes`` are unusable)."""
        return bool(self.problem)

    @property
    def missing_footers(self) -> list[int]:
        """Stream ids without a StreamFooter (LabRecorder writes the footers when it stops cleanly)."""
        return [sid for sid, s in self.streams.items() if not s.footer_xml]


def _chunk_name(tag: int, sid: int | None) -> str:
    name = TAGS.get(tag, f"tag-{tag}")
    return f"{name} chunk" + (f" of stream {sid}" if sid is not None else "")


def is_compressed_xdf(path: str | os.PathLike) -> bool:
    """True for a gzip-compressed XDF file name (``.xdfz``, ``.xdf.gz``; any case)."""
    return str(path).lower().endswith(COMPRESSED_SUFFIXES)


def decompress_xdf(src: str | os.PathLike, dst: str | os.PathLike, block_bytes: int = 1 << 16) -> str:
    """Inflate the gzip-compressed XDF file ``src`` into ``dst``; returns '' or what is wrong with ``src``.

    A gzip stream that is cut (the recorder was killed) or damaged (a CRC or deflate error) is
    not an error here: ``dst`` keeps what was inflated before the damage (all but at most
    ``block_bytes`` bytes of it) and the returned text says what happened. Raises
    :class:`XdfError` when ``src`` is not gzip data at all, or ``dst`` cannot be written.
    """
    s, d = Path(src), Path(dst)
    with open(s, "rb") as f:
        if f.read(2) != GZIP_MAGIC:
            raise XdfError(f"{s} is not gzip-compressed (no gzip signature); if it is a plain XDF file, name it .xdf")
    problem = ""
    try:
        with gzip.open(s, "rb") as fin, open(d, "wb") as fout:
            while True:
                try:
                    block = fin.read(block_bytes)
                except EOFError:
                    problem = f"cut: its gzip data ends early (after {fout.tell()} inflated bytes)"
                    break
                except (gzip.BadGzipFile, zlib.error) as exc:
                    problem = f"damaged: its gzip data fails after {fout.tell()} inflated bytes ({exc})"
                    break
                if not block:
                    break
                fout.write(block)
    except OSError as exc:
        raise XdfError(f"cannot inflate {s} into {d}: {exc.strerror or exc}; free some disk space there") from None
    return problem


def scan_xdf(path: str | os.PathLike) -> XdfScan:
    """Walk the chunks of ``path`` and collect headers and footers; raises :class:`XdfError` if it is not XDF.

    A file cut or damaged after some intact chunks is *not* an error here: ``problem`` and
    ``intact_bytes`` say what happened, and the caller decides (``mecg import-xdf`` refuses it
    unless ``--partial``).
    """
    p = Path(path)
    if not p.exists():
        raise XdfError(f"{p} does not exist")
    if p.is_dir():
        raise XdfError(f"{p} is a folder; give an .xdf file")
    if is_compressed_xdf(p):
        raise XdfError(
            f"{p} is a compressed XDF file: inflate it with decompress_xdf (mecg import-xdf does this itself) "
            f"or gunzip -c {p.name} > rec.xdf"
        )
    size = p.stat().st_size
    scan = XdfScan(p, size)
    with open(p, "rb") as f:
        if f.read(4) != MAGIC:
            raise XdfError(f"{p} is not an XDF file (it does not start with 'XDF:'); is it a LabRecorder .xdf file?")
        pos = 4
        scan.intact_bytes = pos
        while pos < size:
            problem = _scan_chunk(f, pos, size, scan)
            if problem:
                scan.problem = problem
                break
            scan.chunks += 1
            pos = f.tell()
            scan.intact_bytes = pos
    if scan.file_header_xml == "" and not scan.problem:
        raise XdfError(f"{p} has no FileHeader chunk; it is not a valid XDF file")
    return scan


def _scan_chunk(f, pos: int, size: int, scan: XdfScan) -> str:
    """Read the chunk at ``pos`` (file positioned there); returns '' if sound, else what is wrong."""
    nb = f.read(1)[0]
    if nb not in (1, 4, 8):
        return f"damaged at byte {pos}: invalid chunk length field ({nb} length bytes; XDF allows 1, 4 or 8)"
    raw = f.read(nb)
    if len(raw) < nb:
        return f"cut at byte {pos}: the file ends inside the length field of a chunk"
    length = int.from_bytes(raw, "little")
    start = pos + 1 + nb
    end = start + length
    tag_raw = f.read(2)
    if len(tag_raw) < 2:
        return f"cut at byte {pos}: the file ends inside the tag of a chunk"
    tag = struct.unpack("<H", tag_raw)[0]
    sid = None
    if tag in STREAM_TAGS and length >= 6:
        sid_raw = f.read(4)
        if len(sid_raw) == 4:
            sid = struct.unpack("<I", sid_raw)[0]
    if tag not in TAGS or length < 2:
        return f"damaged at byte {pos}: unknown chunk tag {tag} (length {length})"
    if end > size:
        return (
            f"cut at byte {pos}: the {_chunk_name(tag, sid)} there declares {length} bytes but the file ends "
            f"after {size - start}"
        )
    if tag in STREAM_TAGS and sid is None:
        return f"damaged at byte {pos}: {TAGS[tag]} chunk too short for a stream id"
    if tag != 2 and sid is not None and sid not in scan.streams:
        return f"damaged at byte {pos}: {_chunk_name(tag, sid)} before any header of that stream"
    content_len = end - f.tell()
    if tag in (1, 2, 6):
        text = f.read(content_len).decode("utf-8", "replace")
        try:
            ET.fromstring(text)
        except ET.ParseError as exc:
            return f"damaged at byte {pos}: the {_chunk_name(tag, sid)} holds invalid XML ({exc})"
        if tag == 1:
            scan.file_header_xml = text
        elif tag == 2:
            scan.streams[sid] = XdfStreamScan(sid, text)
        else:
            scan.streams[sid].footer_xml = text
    else:
        if tag == 4 and content_len != 16:
            return f"damaged at byte {pos}: a ClockOffset chunk of stream {sid} has {content_len + 4} bytes, not 20"
        f.seek(end)
    return ""
