"""The validating, lazy session reader.

:func:`open_session` checks structure and version when it opens a file and raises
:class:`SessionError` naming the file and the problem. Nothing large is read on open: a stream's
``data`` is the h5py dataset itself, so a 10-minute 150 fps video is read frame range by frame
range.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import h5py
import numpy as np

from mecg.session import video_codec
from mecg.session.annotations import Annotation, read_annotations, write_annotations
from mecg.session.format import (
    ANNOTATIONS,
    FEATURES,
    FORMAT_NAME,
    FORMAT_VERSION,
    STREAMS,
    SYNC,
    SessionError,
    SessionVersionError,
    StreamInfo,
)


def _str(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _strlist(value: object) -> list[str]:
    return [_str(v) for v in np.asarray(value, dtype=object).reshape(-1)] if value is not None else []


@dataclass
class Stream:
    """One recorded stream of an open session; ``data`` and large arrays are read on demand."""

    key: str
    info: StreamInfo
    group: h5py.Group

    @property
    def data(self) -> h5py.Dataset:
        """The samples as an h5py dataset (lazy): slice it to read."""
        return self.group["data"]

    @cached_property
    def timestamps(self) -> np.ndarray:
        """Raw LSL timestamps in seconds (float64), one per sample or frame."""
        return self.group["timestamps"][()]

    @property
    def clock_offsets(self) -> np.ndarray:
        """Clock-offset measurements ``(m, 2)``: ``[local_time_s, offset_s]``."""
        return self.group["clock_offsets"][()]

    @property
    def sample_count(self) -> int:
        """Number of samples (frames for video)."""
        return int(self.group["data"].shape[0])

    @property
    def duration_s(self) -> float:
        """Time from first to last timestamp in seconds (0 for fewer than two samples)."""
        n = self.sample_count
        if n < 2:
            return 0.0
        ts = self.group["timestamps"]
        return float(ts[n - 1] - ts[0])

    @property
    def effective_srate_hz(self) -> float:
        """Measured rate: (samples - 1) / duration, in Hz; 0 when undefined."""
        d = self.duration_s
        return (self.sample_count - 1) / d if d > 0 else 0.0

    def frames(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Frames ``[start, stop)`` of a video stream as uint8 ``(n, h, w[, 3])``.

        Frames written by mecg (one deflated frame per chunk) are inflated with ISA-L straight
        from their chunks, about twice as fast as HDF5's own filter; anything else goes through h5py.
        """
        if self.info.kind != "video":
            raise SessionError(f"stream {self.key!r} is a {self.info.kind} stream, not video")
        ds = self.data
        n = ds.shape[0]
        a, b, _ = slice(start, stop).indices(n)
        shape = ds.shape[1:]
        if ds.chunks != (1, *shape) or ds.compression != "gzip" or b <= a:
            return ds[a:b]
        out = np.empty((b - a, *shape), dtype=np.uint8)
        zero = (0,) * len(shape)
        try:
            for i in range(a, b):
                mask, buf = ds.id.read_direct_chunk((i, *zero))
                raw = buf if mask & 1 else video_codec.inflate(buf)
                out[i - a] = np.frombuffer(raw, dtype=np.uint8).reshape(shape)
        except (OSError, ValueError, KeyError):  # a chunk never written (crash) or foreign encoding
            return ds[a:b]
        return out

    def markers(self) -> list[str]:
        """All markers of a markers stream, as strings."""
        if self.info.kind != "markers":
            raise SessionError(f"stream {self.key!r} is a {self.info.kind} stream, not markers")
        return [str(v) for v in self.data.asstr()[()]]

    def channel(self, label: str) -> np.ndarray:
        """All samples of one signal channel, by label."""
        if label not in self.info.channel_labels:
            raise SessionError(
                f"stream {self.key!r} has no channel {label!r}; it has {', '.join(self.info.channel_labels)}"
            )
        return self.data[:, self.info.channel_labels.index(label)]


class Session:
    """An open session file. Use :func:`open_session` to create one; close it or use ``with``."""

    def __init__(self, path: Path, f: h5py.File) -> None:
        self.path = path
        self.file = f
        self.streams: dict[str, Stream] = {}
        for key, g in f[STREAMS].items():
            self.streams[key] = Stream(key, _stream_info(path, key, g), g)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the file."""
        self.file.close()

    # -- root attributes -------------------------------------------------------------------
    def attr(self, name: str, default: object = "") -> object:
        """A root attribute, decoded to ``str`` for text."""
        v = self.file.attrs.get(name, default)
        return _str(v) if isinstance(v, bytes | str) else v

    @property
    def subject_id(self) -> str:
        return str(self.attr("subject_id"))

    @property
    def notes(self) -> str:
        return str(self.attr("notes"))

    @property
    def format_version(self) -> int:
        return int(self.file.attrs["format_version"])

    @property
    def complete(self) -> bool:
        """True when the recording was closed cleanly (false after a crash)."""
        return bool(self.file.attrs.get("complete", False))

    # -- content -----------------------------------------------------------------------------
    @cached_property
    def annotations(self) -> list[Annotation]:
        """The coded expressions (empty when the session is not annotated)."""
        return read_annotations(self.file[ANNOTATIONS])

    @property
    def annotated_stream(self) -> str:
        """Key of the video stream whose frames the annotations index ('' if none)."""
        return _str(self.file[ANNOTATIONS].attrs.get("video_stream", ""))

    @property
    def sync_group(self) -> h5py.Group:
        """The /sync group (empty until ``mecg sync`` ran)."""
        return self.file[SYNC]

    @property
    def features_group(self) -> h5py.Group:
        """The /features group (cached features)."""
        return self.file[FEATURES]

    def write_group(self, name: str, attrs: dict, arrays: dict[str, np.ndarray] | None = None) -> None:
        """Replace the contents of ``/sync`` or ``/features/<sub>`` with ``attrs`` and ``arrays``.

        The session must be open with ``writable=True``. Everything else in the file is untouched.
        """
        if self.file.mode != "r+":
            raise SessionError(f"{self.path} is open read-only; open it with writable=True to store results")
        root, _, sub = name.partition("/")
        if root not in (SYNC, FEATURES) or (root == FEATURES and not sub) or (root == SYNC and sub):
            raise SessionError(f"results go to /{SYNC} or /{FEATURES}/<name>, not /{name}")
        g = self.file[root]
        if sub:
            if sub in g:
                del g[sub]
            g = g.create_group(sub)
        else:
            for k in list(g.keys()):
                del g[k]
            for k in list(g.attrs.keys()):
                del g.attrs[k]
        for k, v in attrs.items():
            g.attrs[k] = v
        for k, v in (arrays or {}).items():
            g.create_dataset(k, data=np.asarray(v), compression="gzip", compression_opts=4)
        self.file.flush()

    def write_annotations(self, annotations: list[Annotation], video_stream: str) -> None:
        """Replace the annotations table (the session must be open with ``writable=True``)."""
        if self.file.mode != "r+":
            raise SessionError(f"{self.path} is open read-only; open it with writable=True to annotate it")
        if video_stream not in self.streams or self.streams[video_stream].info.kind != "video":
            raise SessionError(f"{self.path}: {video_stream!r} is not a video stream of this session")
        write_annotations(self.file[ANNOTATIONS], annotations, video_stream)
        self.__dict__.pop("annotations", None)  # drop the cached table
        self.file.flush()

    def find_streams(
        self, *, type: str | None = None, kind: str | None = None, name: str | None = None
    ) -> list[Stream]:
        """Streams matching all given criteria (type compared case-insensitively)."""
        out = []
        for s in self.streams.values():
            if type is not None and s.info.type.lower() != type.lower():
                continue
            if kind is not None and s.info.kind != kind:
                continue
            if name is not None and s.info.name != name:
                continue
            out.append(s)
        return out

    def stream(self, *, type: str | None = None, kind: str | None = None, name: str | None = None) -> Stream:
        """The one stream matching the criteria; an error names what was found instead."""
        found = self.find_streams(type=type, kind=kind, name=name)
        want = ", ".join(f"{k}={v!r}" for k, v in (("type", type), ("kind", kind), ("name", name)) if v)
        if not found:
            have = ", ".join(f"{s.key} ({s.info.type}, {s.info.kind})" for s in self.streams.values()) or "none"
            raise SessionError(f"{self.path}: no stream with {want}; streams are: {have}")
        if len(found) > 1:
            raise SessionError(
                f"{self.path}: several streams with {want} ({', '.join(s.key for s in found)}); select one by name"
            )
        return found[0]


def _stream_info(path: Path, key: str, g: h5py.Group) -> StreamInfo:
    a = g.attrs
    where = f"{path}: stream {key!r}"
    for ds in ("data", "timestamps", "clock_offsets"):
        if ds not in g:
            raise SessionError(f"{where} has no {ds!r} dataset; the file is damaged or not written by mecg")
    for attr in ("name", "type", "kind"):
        if attr not in a:
            raise SessionError(f"{where} lacks the {attr!r} attribute; the file is damaged or not written by mecg")
    n_data, n_ts = g["data"].shape[0], g["timestamps"].shape[0]
    if n_data != n_ts:
        raise SessionError(
            f"{where} has {n_data} samples but {n_ts} timestamps; the file is damaged "
            "(re-export the stream or recover it with h5py)"
        )
    try:
        return StreamInfo(
            name=_str(a["name"]),
            type=_str(a["type"]),
            kind=_str(a["kind"]),
            source_id=_str(a.get("source_id", "")),
            hostname=_str(a.get("hostname", "")),
            nominal_srate_hz=float(a.get("nominal_srate_hz", 0.0)),
            channel_format=_str(a.get("channel_format", "float32")),
            channel_labels=_strlist(a.get("channel_labels")),
            channel_units=_strlist(a.get("channel_units")),
            channel_types=_strlist(a.get("channel_types")),
            frame_shape=tuple(int(x) for x in a.get("frame_shape", ())),
            can_drop_samples=bool(a.get("can_drop_samples", False)),
            lsl_header=_str(a.get("lsl_header", "")),
        )
    except SessionError as exc:
        raise SessionError(f"{where}: {exc}") from None


def open_session(path: str | os.PathLike, *, writable: bool = False) -> Session:
    """Open and validate a session file.

    Raises :class:`SessionError` for a missing path, a file that is not HDF5, a truncated or
    corrupted file, an HDF5 file that is not a mecg session, or inconsistent streams, and
    :class:`SessionVersionError` for a newer format version. ``writable`` opens it for sync and
    feature results (``r+``).
    """
    p = Path(path)
    if not p.exists():
        raise SessionError(f"{p} does not exist; check the path")
    if p.is_dir():
        raise SessionError(f"{p} is a folder, not a session file")
    try:
        is_h5 = h5py.is_hdf5(p)
    except OSError as exc:
        raise SessionError(f"{p} cannot be read: {exc}") from None
    if not is_h5:
        raise SessionError(f"{p} is not an HDF5 file (no HDF5 signature); it is not a mecg session")
    try:
        f = h5py.File(p, "r+" if writable else "r")
    except OSError as exc:
        raise SessionError(f"{p} is truncated or corrupted and cannot be opened ({exc})") from None
    try:
        fmt = _str(f.attrs.get("format", ""))
        if fmt != FORMAT_NAME:
            raise SessionError(f"{p} is an HDF5 file but not a mecg session (format attribute {fmt!r})")
        version = int(f.attrs.get("format_version", -1))
        if version > FORMAT_VERSION:
            raise SessionVersionError(
                f"{p} uses session format v{version}, newer than the v{FORMAT_VERSION} this mecg reads; upgrade mecg"
            )
        if version < 1:
            raise SessionError(f"{p} has an invalid format version {version}")
        for g in (STREAMS, ANNOTATIONS, SYNC, FEATURES):
            if g not in f or not isinstance(f[g], h5py.Group):
                raise SessionError(f"{p} has no /{g} group; the file is damaged")
        return Session(p, f)
    except SessionError:
        f.close()
        raise
    except (OSError, KeyError, RuntimeError, ValueError) as exc:
        f.close()
        raise SessionError(f"{p} is corrupted: {exc}") from None


def _chunks_within_file(ds: h5py.Dataset, file_size: int) -> int:
    """Number of chunks of ``ds`` whose bytes lie beyond the end of the file (0 when intact)."""
    if ds.chunks is None:
        return 0
    bad = 0

    def visit(info: h5py.h5d.StoreInfo) -> None:
        nonlocal bad
        if info.byte_offset + info.size > file_size:
            bad += 1

    ds.id.chunk_iter(visit)
    return bad


def validate_session(path: str | os.PathLike) -> Session:
    """Open ``path`` and check it deeply: every chunk inside the file, timestamps readable.

    Returns the open session (the caller closes it). Raises :class:`SessionError` on any problem.
    """
    s = open_session(path)
    try:
        size = os.path.getsize(s.path)
        for st in s.streams.values():
            for name in ("data", "timestamps", "clock_offsets"):
                if _chunks_within_file(st.group[name], size):
                    raise SessionError(
                        f"{s.path}: stream {st.key!r} {name} reaches past the end of the file; it is truncated"
                    )
            ts = st.timestamps
            if ts.size and not np.all(np.isfinite(ts)):
                raise SessionError(f"{s.path}: stream {st.key!r} has non-finite timestamps")
            if st.sample_count:
                st.data[st.sample_count - 1]  # decompress the last chunk
        ann = s.annotations
        if ann:
            key = s.annotated_stream
            if key not in s.streams:
                raise SessionError(f"{s.path}: annotations refer to stream {key!r}, which is not in the file")
            n = s.streams[key].sample_count
            bad = [a for a in ann if a.offset_frame >= n]
            if bad:
                raise SessionError(f"{s.path}: {len(bad)} annotation(s) end after the last frame ({n - 1})")
    except SessionError:
        s.close()
        raise
    except (OSError, KeyError, RuntimeError, ValueError) as exc:
        s.close()
        raise SessionError(f"{s.path} is corrupted: {exc}") from None
    return s
