"""The validating, lazy session reader: a read-only recording plus its derivatives, as one session.

:func:`open_session` checks structure, schema and version when it opens a file and raises
:class:`SessionError` naming the file and the problem. Nothing large is read on open: a stream's
``data`` is a checked view of the h5py dataset, so a 10-minute 150 fps video is read frame range by
frame range, and an HDF5 read error (a failed checksum, a damaged chunk) becomes a
:class:`SessionError` too. The recording is always opened read-only; results (sync, features,
annotations added later) are read from and written to its derivatives file
(:mod:`mecg.session.derivatives`), which takes precedence over a v1 recording's own groups.
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import h5py
import numpy as np

from mecg.session import video_codec
from mecg.session.annotations import Annotation, read_annotations, write_annotations
from mecg.session.checksum import TRAILER_BYTES, has_fletcher32, recording_checksum, strip_trailer
from mecg.session.derivatives import can_store_derivatives, check_binding, derivatives_path, update_derivatives
from mecg.session.format import (
    ANNOTATIONS,
    FEATURES,
    FORMAT_NAME,
    FORMAT_VERSION,
    GROUND_TRUTH,
    STREAMS,
    SYNC,
    SessionError,
    SessionVersionError,
    StreamInfo,
    StreamKind,
)
from mecg.session.integrity import check_stream_schema, refuse_foreign_storage
from mecg.session.probe import probe
from mecg.session.views import H5_ERRORS, CheckedDataset, CheckedGroup


def _str(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _strlist(value: object) -> list[str]:
    return [_str(v) for v in np.asarray(value, dtype=object).reshape(-1)] if value is not None else []


def _channel_list(g: h5py.Group, name: str, where: str) -> list[str]:
    """A per-channel list: the attribute ``name`` (v1, v2, narrow v3 streams) or the dataset ``name`` (wide v3)."""
    if name in g.attrs:
        return _strlist(g.attrs[name])
    if name not in g:
        return []
    ds = g[name]
    if not isinstance(ds, h5py.Dataset) or ds.ndim != 1 or h5py.check_string_dtype(ds.dtype) is None:
        raise SessionError(f"{where}: {name!r} must be a (channels,) dataset of strings; the file is damaged")
    return _strlist(ds[()])


@dataclass
class Stream:
    """One recorded stream of an open session; ``data`` and large arrays are read on demand."""

    key: str
    info: StreamInfo
    h5group: h5py.Group
    path: Path | None = None

    @property
    def _where(self) -> str:
        return f"{self.path}: stream {self.key!r}"

    @property
    def group(self) -> CheckedGroup:
        """The stream's group, read-only: its datasets raise :class:`SessionError` instead of HDF5 errors."""
        return CheckedGroup([self.h5group], self._where)

    @property
    def data(self) -> CheckedDataset:
        """The samples as a checked h5py dataset (lazy): slice it to read."""
        return CheckedDataset(self.h5group["data"], f"{self._where} data")

    @cached_property
    def timestamps(self) -> np.ndarray:
        """Raw LSL timestamps in seconds (float64), one per sample or frame. Non-finite ones raise."""
        ds = self.h5group["timestamps"]
        ts = CheckedDataset(ds, f"{self._where} timestamps")[()]
        if ts.size and not np.all(np.isfinite(ts)):
            bad = int(np.flatnonzero(~np.isfinite(ts))[0])
            raise SessionError(
                f"{self._where} has a non-finite timestamp (sample {bad}: {ts[bad]}); the file is damaged "
                "(run `mecg validate --deep`)"
            )
        rows = ds.chunks[0] if ds.chunks else ts.size
        for a in range(0, ts.size, max(rows, 1)):  # Fletcher32 of all-zero bytes is 0: look for zeroed chunks
            part = ts[a : a + rows]
            if part.size > 1 and not part.any():
                raise SessionError(
                    f"{self._where}: timestamps {a}-{a + part.size - 1} are all exactly 0 (zeroed on disk); "
                    "the file is damaged, restore it from a backup"
                )
        return ts

    @property
    def clock_offsets(self) -> np.ndarray:
        """Clock-offset measurements ``(m, 2)``: ``[local_time_s, offset_s]``. Non-finite ones raise."""
        off = CheckedDataset(self.h5group["clock_offsets"], f"{self._where} clock_offsets")[()]
        if off.size and not np.all(np.isfinite(off)):
            raise SessionError(f"{self._where} has a non-finite clock offset; the file is damaged")
        return off

    @property
    def sample_count(self) -> int:
        """Number of samples (frames for video)."""
        return int(self.h5group["data"].shape[0])

    @property
    def duration_s(self) -> float:
        """Time from first to last timestamp in seconds (0 for fewer than two samples)."""
        n = self.sample_count
        if n < 2:
            return 0.0
        ts = CheckedDataset(self.h5group["timestamps"], f"{self._where} timestamps")
        d = float(ts[n - 1] - ts[0])
        return d if np.isfinite(d) else 0.0

    @property
    def effective_srate_hz(self) -> float:
        """Measured rate: (samples - 1) / duration, in Hz; 0 when undefined."""
        d = self.duration_s
        return (self.sample_count - 1) / d if d > 0 else 0.0

    def frames(
        self, start: int = 0, stop: int | None = None, *, rows: int | None = None, threads: int = 1
    ) -> np.ndarray:
        """Frames ``[start, stop)`` of a video stream as uint8 ``(n, h, w[, 3])``.

        Frames written by mecg (one deflated frame per chunk) are checked and inflated with ISA-L
        straight from their chunks, about twice as fast as HDF5's own filters; anything else goes
        through h5py. A whole deflated frame is checked by its zlib stream's adler32 (Fletcher32 is
        then computed only to name a damaged frame), a partial or raw one by the chunk's Fletcher32.
        A damaged frame raises :class:`SessionError`.

        ``rows``: only the top ``rows`` rows of each frame (``(n, rows, w[, 3])``); the rest of a
        deflated frame is not inflated, which saves time when only a region near the top is needed
        (the Fletcher32 check still covers the whole chunk). ``threads`` > 1 inflates in that many
        threads (ISA-L and zlib release the GIL), for large reads with cores to spare.

        Frames in a plugin codec (``blosc-lz4``, ``lz4``, ``zstd``; see :data:`video_codec.CODECS`)
        go through HDF5's own filters (registered by hdf5plugin), which check Fletcher32 and decode
        the whole frame in about 0.2-0.4 ms (640x480); ``rows`` then only crops and ``threads`` is
        not used.
        """
        if self.info.kind != StreamKind.VIDEO:
            raise SessionError(f"stream {self.key!r} is a {self.info.kind} stream, not video")
        ds = self.h5group["data"]
        checked = CheckedDataset(ds, f"{self._where} data")
        n = ds.shape[0]
        a, b, _ = slice(start, stop).indices(n)
        shape = ds.shape[1:]
        rows = shape[0] if rows is None else max(0, min(int(rows), shape[0]))
        if ds.chunks != (1, *shape) or ds.compression != "gzip" or b <= a:
            return checked[a:b, :rows] if rows < shape[0] else checked[a:b]
        out = np.empty((b - a, rows, *shape[1:]), dtype=np.uint8)
        threads = max(1, min(int(threads), (b - a) // 8 or 1))
        if threads == 1:
            self._inflate_into(out, a, b, a)
        else:
            cuts = np.linspace(a, b, threads + 1).astype(int)
            with ThreadPoolExecutor(threads) as ex:
                parts = [ex.submit(self._inflate_into, out, int(x), int(y), a) for x, y in itertools.pairwise(cuts)]
                for f in parts:
                    f.result()
        return out

    def _inflate_into(self, out: np.ndarray, a: int, b: int, base: int) -> None:
        """Inflate frames ``[a, b)`` of a one-frame-per-chunk deflated video into ``out[a - base:]``."""
        ds = self.h5group["data"]
        checked = CheckedDataset(ds, f"{self._where} data")
        shape = ds.shape[1:]
        f32 = self._fletcher32
        size = int(np.prod(shape))
        rows = out.shape[1]
        want = size // shape[0] * rows  # bytes of the top ``rows`` rows
        zero = (0,) * len(shape)
        for i in range(a, b):
            try:
                mask, buf = ds.id.read_direct_chunk((i, *zero))
                if f32 and mask & 2:  # Fletcher32 skipped for this chunk: let HDF5 decide
                    raise ValueError("unusual filter mask")
                if f32 and want == size and not mask & 1:
                    # A whole deflated frame: the zlib stream's own adler32, which inflate checks, covers
                    # every byte of the frame, so Fletcher32 (about a fifth of the inflate's instructions)
                    # is only computed to name the damage when the stream fails.
                    try:
                        raw = video_codec.inflate(memoryview(buf)[:-TRAILER_BYTES])
                    except Exception:
                        if strip_trailer(buf) is None:
                            raise self._bad_frame(i) from None
                        raise
                else:
                    if f32:
                        buf = strip_trailer(buf)
                        if buf is None:
                            raise self._bad_frame(i)
                    if mask & 1 and f32 and not np.frombuffer(buf, np.uint8).any():
                        raise SessionError(  # mecg stores a frame raw only when deflate cannot shrink it
                            f"{self._where} frame {i} is all zero bytes with its checksum (zeroed on disk); "
                            "the file is damaged, restore it from a backup"
                        )
                    if mask & 1:
                        if len(buf) != size:
                            raise ValueError("frame size")
                        raw = buf[:want]
                    else:  # stop early only where Fletcher32 has checked the chunk (else adler32 must be reached)
                        raw = video_codec.inflate(buf, want if f32 else None)
                        if len(raw) != (want if f32 else size):
                            raise ValueError("frame size")
                        raw = raw[:want]
                if len(raw) != want:
                    raise ValueError("frame size")
                out[i - base] = np.frombuffer(raw, dtype=np.uint8).reshape(out.shape[1:])
            except SessionError:
                raise
            except Exception:  # a foreign encoding, or damage: HDF5's own filters decide (and raise)
                out[i - base] = checked[i][:rows]

    def _bad_frame(self, i: int) -> SessionError:
        return SessionError(
            f"{self._where} frame {i} fails its checksum: the file is damaged "
            "(run `mecg validate --deep`); restore it from a backup"
        )

    @cached_property
    def _fletcher32(self) -> bool:
        return has_fletcher32(self.h5group["data"])

    def markers(self) -> list[str]:
        """All markers of a markers stream, as strings."""
        if self.info.kind != StreamKind.MARKERS:
            raise SessionError(f"stream {self.key!r} is a {self.info.kind} stream, not markers")
        try:
            return [str(v) for v in self.data.asstr()[()]]
        except UnicodeDecodeError as exc:
            raise SessionError(f"{self._where} holds a marker that is not UTF-8 ({exc}); the file is damaged") from None

    def channel(self, label: str) -> np.ndarray:
        """All samples of one signal channel, by label."""
        labels = self.info.channel_labels
        if label not in labels:
            have = ", ".join(labels[:20]) + (f" ... ({len(labels)} channels)" if len(labels) > 20 else "")
            raise SessionError(f"stream {self.key!r} has no channel {label!r}; it has {have}")
        return self.data[:, self.info.channel_labels.index(label)]


_EMPTY: h5py.File | None = None


def _empty_group() -> h5py.Group:
    """An empty, read-only stand-in for a group that is in neither file (kept in memory)."""
    global _EMPTY
    if _EMPTY is None:
        _EMPTY = h5py.File(f"mecg-empty-{uuid.uuid4().hex}", "w", driver="core", backing_store=False)
    return _EMPTY["/"]


class Session:
    """An open session: the read-only recording and its derivatives file, read as one.

    Use :func:`open_session` to create one; close it or use ``with``. The recording's h5py handle
    is private to the session room (other rooms read through the methods, see docs/architecture.md);
    ``derivatives`` is the derivatives file (read-only handle, None if there is none).
    """

    def __init__(self, path: Path, f: h5py.File, derivatives: h5py.File | None = None, writable: bool = False) -> None:
        self.path = path
        self._file = f  # the recording, read-only; only mecg.session touches it
        self.derivatives = derivatives
        self.writable = writable
        self.attrs = dict(f.attrs)  # read once: a damaged attribute heap fails here, on open
        self.streams: dict[str, Stream] = {}
        for key, g in f[STREAMS].items():
            info = _stream_info(path, key, g)
            check_stream_schema(path, key, g, info)
            self.streams[key] = Stream(key, info, g, path)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the recording and its derivatives file."""
        if self.derivatives is not None:
            self.derivatives.close()
        self._file.close()

    # -- root attributes -------------------------------------------------------------------
    def attr(self, name: str, default: object = "") -> object:
        """A root attribute of the recording, decoded to ``str`` for text."""
        v = self.attrs.get(name, default)
        return _str(v) if isinstance(v, bytes | str) else v

    @property
    def subject_id(self) -> str:
        return str(self.attr("subject_id"))

    @property
    def notes(self) -> str:
        return str(self.attr("notes"))

    @property
    def format_version(self) -> int:
        return int(self.attrs["format_version"])

    @property
    def recording_id(self) -> str:
        """The recording's id (v2; '' for a v1 file), which its derivatives file repeats."""
        return str(self.attr("recording_id"))

    @property
    def complete(self) -> bool:
        """True when the recording was closed cleanly (false after a crash)."""
        return bool(self.attrs.get("complete", False))

    @property
    def derivatives_path(self) -> Path:
        """Where this recording's derived data lives (the file may not exist yet)."""
        return derivatives_path(self.path)

    def checksum(self) -> str:
        """The recording's fingerprint (see :func:`mecg.session.checksum.recording_checksum`)."""
        try:
            return recording_checksum(self._file, self.path)
        except H5_ERRORS as exc:
            raise SessionError(f"{self.path} is corrupted: {exc}") from None

    # -- content: derivatives first, then a v1 recording's own groups -------------------------
    def _groups(self, name: str) -> list[h5py.Group]:
        out = []
        try:
            for f in (self.derivatives, self._file):
                if f is not None and name in f and isinstance(f[name], h5py.Group):
                    out.append(f[name])
        except H5_ERRORS as exc:
            raise SessionError(f"{self.path}: /{name} cannot be read ({exc}); the file is damaged") from None
        return out

    def derived(self, name: str) -> CheckedGroup | None:
        """The derived group ``sync`` or ``features/<name>`` (derivatives first), or None if absent."""
        found = self._groups(name)
        return CheckedGroup(found[:1], f"{self.path}:/{name}") if found else None

    @cached_property
    def _annotation_group(self) -> h5py.Group:
        try:
            found = [g for g in self._groups(ANNOTATIONS) if "onset_frame" in g or g.file is self._file]
        except H5_ERRORS as exc:
            raise SessionError(f"{self.path}: the annotations cannot be read ({exc}); the file is damaged") from None
        return found[0] if found else _empty_group()

    def ground_truth(self, name: str) -> np.ndarray:
        """The generator's truth ``/ground_truth/<name>`` of a synthetic session (``mecg synth``), as an array.

        For tests and benchmarks that score sync or spotting against the truth; sync and the model
        never read it. Raises :class:`SessionError` when the session has no such truth.
        """
        try:
            g = self._file.get(GROUND_TRUTH)
            if not isinstance(g, h5py.Group) or not isinstance(g.get(name), h5py.Dataset):
                have = ", ".join(sorted(g)) if isinstance(g, h5py.Group) else "none (not a synthetic session)"
                raise SessionError(f"{self.path} has no ground truth {name!r}; it has {have}")
            return g[name][()]
        except H5_ERRORS as exc:
            raise SessionError(f"{self.path}: ground truth {name!r} cannot be read ({exc}); damaged file") from None

    @cached_property
    def annotations(self) -> list[Annotation]:
        """The coded expressions (empty when the session is not annotated); derivatives first."""
        try:
            return read_annotations(self._annotation_group)
        except SessionError as exc:
            raise SessionError(f"{self.path}: {exc}") from None
        except H5_ERRORS as exc:
            raise SessionError(f"{self.path}: the annotations cannot be read ({exc}); the file is damaged") from None

    @property
    def annotated_stream(self) -> str:
        """Key of the video stream whose frames the annotations index ('' if none)."""
        try:
            return _str(self._annotation_group.attrs.get("video_stream", ""))
        except H5_ERRORS as exc:
            raise SessionError(f"{self.path}: the annotations cannot be read ({exc}); the file is damaged") from None

    @property
    def sync_group(self) -> CheckedGroup:
        """The sync results (empty until ``mecg sync`` ran): the derivatives' /sync, else a v1 file's."""
        g = self.derived(SYNC)
        return g if g is not None else CheckedGroup([], f"{self.path}:/{SYNC}")

    @property
    def features_group(self) -> CheckedGroup:
        """Cached features, one subgroup each; a derivatives subgroup hides a v1 file's one of that name."""
        return CheckedGroup(self._groups(FEATURES), f"{self.path}:/{FEATURES}")

    def _store(self, what: str, change: Callable[[h5py.File], None], need_bytes: int = 0) -> None:
        if not self.writable:
            raise SessionError(f"{self.path} is open read-only; open it with writable=True to store {what}")
        from mecg.session.writer import software_version

        update_derivatives(self.path, self.recording_id, self.checksum(), change, software_version(), need_bytes)
        if self.derivatives is not None:
            self.derivatives.close()
        self.derivatives = _open_derivatives(self.path, self.recording_id, self.checksum)
        self.__dict__.pop("annotations", None)
        self.__dict__.pop("_annotation_group", None)

    def write_group(self, name: str, attrs: dict, arrays: dict[str, np.ndarray] | None = None) -> None:
        """Replace the derived group ``sync`` or ``features/<sub>`` with ``attrs`` and ``arrays``.

        Written to the derivatives file (atomically: copy, change, fsync, rename); the recording
        is never written. The session must be open with ``writable=True``.
        """
        root, _, sub = name.partition("/")
        if root not in (SYNC, FEATURES) or (root == FEATURES and (not sub or "/" in sub)) or (root == SYNC and sub):
            raise SessionError(f"results go to /{SYNC} or /{FEATURES}/<name>, not /{name}")

        def change(f: h5py.File) -> None:
            if name in f:
                del f[name]
            g = f.require_group(FEATURES).create_group(sub) if sub else f.create_group(SYNC)
            for k, v in attrs.items():
                g.attrs[k] = v
            for k, v in (arrays or {}).items():
                v = np.asarray(v)
                if v.dtype.kind in "OUS":  # text: variable-length UTF-8, which HDF5 lets no filter touch
                    g.create_dataset(k, data=v.astype(str).astype(object), dtype=h5py.string_dtype())
                    continue
                opts = {"compression": "gzip", "compression_opts": 4, "fletcher32": True} if v.ndim else {}
                g.create_dataset(k, data=v, **opts)

        self._store("results", change, sum(np.asarray(v).nbytes for v in (arrays or {}).values()))

    def write_annotations(self, annotations: list[Annotation], video_stream: str) -> None:
        """Replace the annotations (in the derivatives file; the session must be open with ``writable=True``)."""
        if video_stream not in self.streams or self.streams[video_stream].info.kind != StreamKind.VIDEO:
            raise SessionError(f"{self.path}: {video_stream!r} is not a video stream of this session")
        self._store("annotations", lambda f: write_annotations(f.require_group(ANNOTATIONS), annotations, video_stream))

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
    if not isinstance(g, h5py.Group):
        raise SessionError(f"{where} is not a group; the file is damaged or not written by mecg")
    for ds in ("data", "timestamps", "clock_offsets"):
        if ds not in g:
            raise SessionError(f"{where} has no {ds!r} dataset; the file is damaged or not written by mecg")
    for attr in ("name", "type", "kind"):
        if attr not in a:
            raise SessionError(f"{where} lacks the {attr!r} attribute; the file is damaged or not written by mecg")
    if not isinstance(g["data"], h5py.Dataset) or not isinstance(g["timestamps"], h5py.Dataset):
        raise SessionError(f"{where}: data and timestamps must be datasets; the file is damaged")
    n_data = g["data"].shape[0] if g["data"].ndim else -1
    n_ts = g["timestamps"].shape[0] if g["timestamps"].ndim else -1
    if n_data != n_ts:
        raise SessionError(
            f"{where} has {n_data} samples but {n_ts} timestamps; the file is damaged "
            "(re-export the stream or recover it with h5py)"
        )
    try:
        rate = float(a.get("nominal_srate_hz", 0.0))
        frame_shape = tuple(int(x) for x in np.asarray(a.get("frame_shape", ()), dtype=object).reshape(-1))
        info = StreamInfo(
            name=_str(a["name"]),
            type=_str(a["type"]),
            kind=_str(a["kind"]),
            source_id=_str(a.get("source_id", "")),
            hostname=_str(a.get("hostname", "")),
            nominal_srate_hz=rate,
            channel_format=_str(a.get("channel_format", "float32")),
            channel_labels=_channel_list(g, "channel_labels", where),
            channel_units=_channel_list(g, "channel_units", where),
            channel_types=_channel_list(g, "channel_types", where),
            frame_shape=frame_shape,
            can_drop_samples=bool(a.get("can_drop_samples", False)),
            lsl_header=_str(a.get("lsl_header", "")),
        )
    except SessionError as exc:
        raise SessionError(f"{where}: {exc}") from None
    except (TypeError, ValueError, OverflowError) as exc:
        raise SessionError(f"{where} has an attribute of the wrong type ({exc}); the file is damaged") from None
    if not (np.isfinite(rate) and rate >= 0):
        raise SessionError(f"{where}: nominal_srate_hz must be a finite rate >= 0 Hz, got {rate}")
    if info.kind == StreamKind.VIDEO and min(frame_shape[:2]) <= 0:
        raise SessionError(f"{where}: frame_shape {frame_shape} must be positive")
    return info


def _open_h5(p: Path) -> h5py.File:
    try:
        is_h5 = h5py.is_hdf5(p)
    except OSError as exc:
        raise SessionError(f"{p} cannot be read: {exc}") from None
    if not is_h5:
        raise SessionError(f"{p} is not an HDF5 file (no HDF5 signature); it is not a mecg session")
    probe(p)  # damaged metadata can hang or crash HDF5: walk it in a child process first
    try:
        return h5py.File(p, "r")
    except (OSError, RuntimeError, ValueError) as exc:
        raise SessionError(f"{p} is truncated or corrupted and cannot be opened ({exc})") from None


def _open_derivatives(recording: Path, recording_id: str, checksum: Callable[[], str]) -> h5py.File | None:
    """The recording's derivatives file, read-only and checked, or None when there is none."""
    d = derivatives_path(recording)
    if not d.exists():
        return None
    if d.is_dir():
        raise SessionError(f"{d} is a folder; mecg keeps {recording.name}'s results under that name, move it away")
    f = _open_h5(d)
    try:
        refuse_foreign_storage(f, d)
        check_binding(f, d, recording, recording_id, checksum)
        for name in (SYNC, FEATURES, ANNOTATIONS):
            if name in f and not isinstance(f[name], h5py.Group):
                raise SessionError(f"{d}: /{name} is not a group; the file is damaged, move it away")
        return f
    except SessionError:
        f.close()
        raise
    except H5_ERRORS as exc:
        f.close()
        raise SessionError(f"{d} is corrupted ({exc}); move it away and run sync/spot again") from None


def open_session(path: str | os.PathLike, *, writable: bool = False) -> Session:
    """Open and validate a session: the recording (always read-only) and its derivatives file.

    Raises :class:`SessionError` for a missing path, a file that is not HDF5, a truncated or
    corrupted file, an HDF5 file that is not a mecg session, external links or storage, datasets
    that do not match the format, inconsistent streams, or a derivatives file that belongs to
    another recording; :class:`SessionVersionError` for a newer format version. ``writable`` lets
    :meth:`Session.write_group` and :meth:`Session.write_annotations` store results in the
    derivatives file (the folder must be writable); the recording itself is never written.
    """
    p = Path(path)
    if not p.exists():
        raise SessionError(f"{p} does not exist; check the path")
    if p.is_dir():
        raise SessionError(f"{p} is a folder, not a session file")
    if writable and not can_store_derivatives(p):
        raise SessionError(
            f"cannot store results for {p}: its folder is not writable (they go to {derivatives_path(p).name} "
            "beside it); copy the recording to a writable folder or run without storing results"
        )
    f = _open_h5(p)
    try:
        fmt = _str(f.attrs.get("format", ""))
        if fmt != FORMAT_NAME:
            hint = ", it is a derivatives file: open its recording instead" if fmt == "mecg-derivatives" else ""
            raise SessionError(f"{p} is an HDF5 file but not a mecg session (format attribute {fmt!r}{hint})")
        try:
            version = int(f.attrs.get("format_version", -1))
        except (TypeError, ValueError):
            version = -1
        if version > FORMAT_VERSION:
            raise SessionVersionError(
                f"{p} uses session format v{version}, newer than the v{FORMAT_VERSION} this mecg reads; upgrade mecg"
            )
        if version < 1:
            raise SessionError(f"{p} has an invalid format version {version}")
        refuse_foreign_storage(f, p)
        for g in (STREAMS, ANNOTATIONS) if version >= 2 else (STREAMS, ANNOTATIONS, SYNC, FEATURES):
            if g not in f or not isinstance(f[g], h5py.Group):
                raise SessionError(f"{p} has no /{g} group; the file is damaged")
        rec_id = _str(f.attrs.get("recording_id", ""))
        deriv = _open_derivatives(p, rec_id, lambda: recording_checksum(f, p))
        try:
            return Session(p, f, deriv, writable)
        except BaseException:
            if deriv is not None:
                deriv.close()
            raise
    except SessionError:
        f.close()
        raise
    except H5_ERRORS as exc:
        f.close()
        raise SessionError(f"{p} is corrupted: {exc}") from None
