"""Fast lossless frame compression that any HDF5 reader can undo.

Frames are stored one per chunk with HDF5's built-in deflate filter, so h5py, MATLAB and HDFView
read them with no plugin. zlib's own deflate costs about 0.8 s of CPU per second of 150 fps
640x480 video, too much beside a recorder; ISA-L's deflate (``isal``) writes the same standard
zlib stream about 6x faster. We compress each frame ourselves and hand the bytes to HDF5 with
``write_direct_chunk``. A frame that does not shrink is stored raw with the filter marked skipped.
"""

from __future__ import annotations

import zlib

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
