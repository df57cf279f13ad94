"""Constants and the stream description of the HDF5 session format (docs/session-format.md)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from mecg.errors import MecgError

FORMAT_NAME = "mecg-session"
#: v2: every dataset carries a Fletcher32 checksum, a ``recording_id`` root attribute, and no /sync
#: or /features groups (derived data lives in the derivatives file). v3: see MAX_ATTR_CHANNELS.
#: The newest version this mecg reads and writes; v1 and v2 stay readable.
FORMAT_VERSION = 3
#: The version a file gets when it needs nothing newer: a session whose streams all have at most
#: :data:`MAX_ATTR_CHANNELS` channels is written as v2, so older mecg versions still read it.
BASE_FORMAT_VERSION = 2
#: v3: a signal stream with more channels than this keeps ``channel_labels``, ``channel_units`` and
#: ``channel_types`` as datasets of its group instead of attributes (an HDF5 attribute holds at most
#: 64 KiB: about 4,000 labels). Streams with up to this many channels keep them as attributes.
MAX_ATTR_CHANNELS = 1024
#: Per-channel lists of a signal stream (attributes up to MAX_ATTR_CHANNELS channels, else datasets).
CHANNEL_LISTS = ("channel_labels", "channel_units", "channel_types")
#: The ``format`` attribute of a derivatives file and the version of its layout.
DERIVATIVES_NAME = "mecg-derivatives"
DERIVATIVES_VERSION = 1
#: Name of the derivatives file beside a recording ``S.h5``: ``S.derivatives.hdf5``. Not ``*.h5``,
#: so folder scans for recordings (``mecg spot DIR``, ``mecg train DIR``) never pick it up.
DERIVATIVES_SUFFIX = ".derivatives.hdf5"


class StreamKind(StrEnum):
    """How a stream's samples are stored (the ``kind`` attribute; values as written in the file).

    signal: ``data`` (n, channel_count) numeric; video: (n, height, width[, 3]) uint8; markers: (n,) UTF-8.
    """

    SIGNAL = "signal"
    VIDEO = "video"
    MARKERS = "markers"


#: The stream kinds, as strings.
STREAM_KINDS: tuple[str, ...] = tuple(StreamKind)

#: LSL channel formats and the numpy dtype a signal stream stores them as.
CHANNEL_FORMATS = {
    "float32": np.float32,
    "double64": np.float64,
    "int8": np.int8,
    "int16": np.int16,
    "int32": np.int32,
    "int64": np.int64,
    "string": None,
}

# Group names at the root of a session file.
STREAMS = "streams"
ANNOTATIONS = "annotations"
SYNC = "sync"
FEATURES = "features"
GROUND_TRUTH = "ground_truth"


class SessionError(MecgError):
    """A session file is missing, unreadable, not a mecg session, or inconsistent."""


class SessionVersionError(SessionError):
    """A session file was written in a newer format version than this mecg reads."""


@dataclass
class StreamInfo:
    """Description of one recorded stream, as an LSL ``stream_info`` carries it.

    Parameters
    ----------
    name, type, source_id, hostname
        The LSL identity of the stream. ``source_id`` tells apart two streams with one name.
    kind
        A :class:`StreamKind` (or its value ``"signal"``, ``"video"``, ``"markers"``): how the
        samples are stored; always a :class:`StreamKind` after construction.
    nominal_srate_hz
        Declared sampling rate in Hz; 0 for irregular streams (markers).
    channel_format
        LSL channel format of a signal (``float32``, ``double64``, ``int16``, ...); ``string`` for
        markers; ``int8`` for video (LSL has no uint8; frames are stored as uint8).
    channel_labels, channel_units, channel_types
        One entry per channel of a signal stream (units such as ``"mV"``, ``"bool"``).
    frame_shape
        ``(height, width)`` or ``(height, width, 3)`` for a video stream.
    can_drop_samples
        True when the device may skip samples (cameras): timestamps must then not be dejittered.
    lsl_header
        The stream's full LSL XML header (``info.as_xml()``), kept verbatim.
    """

    name: str
    type: str
    kind: StreamKind | str = StreamKind.SIGNAL
    source_id: str = ""
    hostname: str = ""
    nominal_srate_hz: float = 0.0
    channel_format: str = "float32"
    channel_labels: list[str] = field(default_factory=list)
    channel_units: list[str] = field(default_factory=list)
    channel_types: list[str] = field(default_factory=list)
    frame_shape: tuple[int, ...] = ()
    can_drop_samples: bool = False
    lsl_header: str = ""

    def __post_init__(self) -> None:
        if self.kind not in STREAM_KINDS:
            raise SessionError(f"stream {self.name!r}: kind must be one of {STREAM_KINDS}, got {self.kind!r}")
        self.kind = StreamKind(self.kind)
        if self.channel_format not in CHANNEL_FORMATS:
            raise SessionError(
                f"stream {self.name!r}: unknown channel format {self.channel_format!r}; "
                f"use one of {sorted(CHANNEL_FORMATS)}"
            )
        if self.kind == StreamKind.VIDEO:
            if len(self.frame_shape) not in (2, 3) or (len(self.frame_shape) == 3 and self.frame_shape[2] != 3):
                raise SessionError(
                    f"video stream {self.name!r}: frame_shape must be (height, width) or (height, width, 3), "
                    f"got {self.frame_shape!r}"
                )
            self.frame_shape = tuple(int(x) for x in self.frame_shape)
            self.channel_format = "int8"
        elif self.kind == StreamKind.MARKERS:
            self.channel_format = "string"
        else:
            if self.channel_format == "string":
                raise SessionError(
                    f"signal stream {self.name!r} cannot have channel format 'string'; use kind='markers'"
                )
            if not self.channel_labels:
                raise SessionError(f"signal stream {self.name!r} needs at least one channel label")
            n = len(self.channel_labels)
            if not self.channel_units:
                self.channel_units = [""] * n
            if not self.channel_types:
                self.channel_types = [self.type] * n
            if len(self.channel_units) != n or len(self.channel_types) != n:
                raise SessionError(
                    f"signal stream {self.name!r}: {n} channel labels but {len(self.channel_units)} units "
                    f"and {len(self.channel_types)} types"
                )

    @property
    def channel_count(self) -> int:
        """Number of channels: signal channels, pixels per frame for video, 1 for markers."""
        if self.kind == StreamKind.SIGNAL:
            return len(self.channel_labels)
        if self.kind == StreamKind.VIDEO:
            return int(np.prod(self.frame_shape))
        return 1

    @property
    def dtype(self) -> np.dtype:
        """The numpy dtype of the stored samples."""
        if self.kind == StreamKind.VIDEO:
            return np.dtype(np.uint8)
        if self.kind == StreamKind.MARKERS:
            return np.dtype(object)
        return np.dtype(CHANNEL_FORMATS[self.channel_format])


_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def stream_key(name: str, taken: set[str] | frozenset[str] = frozenset()) -> str:
    """A group name for a stream: its name with unsafe characters replaced, made unique with ``_2``, ``_3``."""
    base = _KEY_UNSAFE.sub("_", name).strip("._") or "stream"
    key, i = base, 2
    while key in taken:
        key, i = f"{base}_{i}", i + 1
    return key
