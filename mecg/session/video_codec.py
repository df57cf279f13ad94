"""Fast lossless frame compression that any HDF5 reader can undo.

Frames are stored one per chunk with HDF5's built-in deflate filter, so h5py, MATLAB and HDFView
read them with no plugin. zlib's own deflate costs about 0.8 s of CPU per second of 150 fps
640x480 video, too much beside a recorder; ISA-L's deflate (``isal``) writes the same standard
zlib stream about 6x faster. We compress each frame ourselves and hand the bytes to HDF5 with
``write_direct_chunk``. A frame that does not shrink is stored raw with the filter marked skipped.

New recordings may instead choose a faster codec (:data:`CODECS`): a standard registered HDF5
filter plugin from ``hdf5plugin`` (Blosc with LZ4 and bit shuffle, plain LZ4, or Zstd level 1),
applied by HDF5's own filter pipeline before its Fletcher32. Decoding one 640x480 frame then costs
about 0.2-0.4 ms instead of about 1 ms, at a somewhat lower ratio on smooth video. Any HDF5 reader
needs that plugin to read those frames (h5py: ``import hdf5plugin``; MATLAB/HDFView: the plugin
folder on ``HDF5_PLUGIN_PATH``); ``deflate`` stays the default for the widest compatibility.
"""

from __future__ import annotations

import zlib

import hdf5plugin  # registers the Blosc/LZ4/Zstd filters with HDF5 for every h5py read and write
import numpy as np

try:  # ISA-L is a hard dependency; zlib is the fallback for platforms without a wheel.
    from isal import isal_zlib as _deflate

    _BACKEND = "isal"
except ImportError:  # pragma: no cover - exercised only where isal has no wheel
    _deflate = zlib
    _BACKEND = "zlib"

#: Deflate level handed to the backend (ISA-L levels 0-3; zlib 1-9).
DEFAULT_LEVEL = 2
#: Filter mask for write_direct_chunk: bit 0 set = the first filter (deflate) was skipped.
RAW_CHUNK_MASK = 0x1


#: Video codecs a new recording may use; ``deflate`` is HDF5's built-in filter (no plugin needed).
CODECS = ("deflate", "blosc-lz4", "lz4", "zstd")
#: Codec of new recordings unless chosen otherwise.
DEFAULT_CODEC = "deflate"
#: Typical lossless ratio on noisy face video (benchmarks/results/writer.json): for disk-use estimates only.
TYPICAL_RATIO = {"deflate": 1.15, "blosc-lz4": 1.15, "lz4": 1.04, "zstd": 1.1}
#: HDF5 filter ids of the plugin codecs (registered by hdf5plugin), by codec name.
PLUGIN_FILTER_IDS = {"blosc-lz4": hdf5plugin.BLOSC_ID, "lz4": hdf5plugin.LZ4_ID, "zstd": hdf5plugin.ZSTD_ID}


def check_codec(codec: str) -> str:
    """Return ``codec`` if it is one of :data:`CODECS`, else raise ``ValueError`` naming the choices."""
    if codec not in CODECS:
        raise ValueError(f"unknown video codec {codec!r}; choose one of {', '.join(CODECS)}")
    return codec


def plugin_filter(codec: str) -> hdf5plugin.Blosc | hdf5plugin.LZ4 | hdf5plugin.Zstd:
    """The h5py ``compression`` argument for a plugin codec (not ``deflate``, which mecg encodes itself)."""
    if check_codec(codec) == "blosc-lz4":  # bit shuffle: noisy 8-bit video shrinks like deflate's
        return hdf5plugin.Blosc(cname="lz4", clevel=5, shuffle=hdf5plugin.Blosc.BITSHUFFLE)
    if codec == "lz4":
        return hdf5plugin.LZ4()
    if codec == "zstd":
        return hdf5plugin.Zstd(clevel=1)
    raise ValueError("deflate frames are encoded by encode_frame, not by an HDF5 plugin filter")


def codec_of(ds: object) -> str:
    """Name of the video codec of an h5py dataset: ``deflate``, a plugin codec, or ``other``."""
    plist = ds.id.get_create_plist()  # type: ignore[attr-defined]
    ids = {plist.get_filter(i)[0] for i in range(plist.get_nfilters())}
    for name, fid in PLUGIN_FILTER_IDS.items():
        if fid in ids:
            return name
    return "deflate" if 1 in ids else "other"


def backend() -> str:
    """Name of the deflate implementation in use (``"isal"`` or ``"zlib"``)."""
    return _BACKEND


def encode_frame(frame: np.ndarray, level: int = DEFAULT_LEVEL) -> tuple[bytes, int]:
    """Compress one uint8 frame to a zlib stream.

    Returns ``(payload, filter_mask)``: the mask is 0 for compressed bytes and
    :data:`RAW_CHUNK_MASK` when the raw bytes are smaller and stored as they are.
    """
    raw = np.ascontiguousarray(frame, dtype=np.uint8).tobytes()
    lvl = min(level, 3) if _BACKEND == "isal" else max(level, 1)
    packed = _deflate.compress(raw, lvl)
    if len(packed) >= len(raw):
        return raw, RAW_CHUNK_MASK
    return packed, 0


def inflate(payload: bytes, max_bytes: int | None = None) -> bytes:
    """Undo :func:`encode_frame` (any zlib stream): ISA-L's inflate, else zlib's.

    ``max_bytes``: stop after that many output bytes (the top rows of a frame); the stream's own
    adler32 is then not reached, so callers check the chunk's Fletcher32 instead.
    """
    if max_bytes is None:
        return _deflate.decompress(payload)
    return _deflate.decompressobj().decompress(payload, max_bytes)
