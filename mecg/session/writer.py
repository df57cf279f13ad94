"""The streaming session writer: append any stream at any time, flush often, survive a crash.

Crash safety rests on HDF5's own consistency: after ``File.flush()`` the file on disk is a
complete, readable HDF5 file. Between flushes nothing the flushed file refers to may be
overwritten, so no chunk is ever moved: video frames are written once, whole, and compressed
(deflate: ``write_direct_chunk``; an opt-in hdf5plugin codec: HDF5's filter pipeline with the
chunk cache off, one whole frame per chunk); signals, timestamps and markers use unfiltered chunks of fixed size that
are filled in place. Every dataset carries HDF5's Fletcher32 checksum (deflated video frames get theirs
appended by :mod:`mecg.session.checksum`), so a damaged chunk is an error on read, never silent
data; a checksummed chunk keeps its size, so it is still rewritten in place. A background
thread flushes whenever something was appended
(every ``flush_interval_s``, default 0.5 s), so a SIGKILL loses at most that much. Every
append writes a stream's data and its timestamps under one lock, so a flush never sees them
at different lengths. The root attribute ``complete`` turns true only on a clean close.

Metadata reaches the file only in a flush: HDF5's metadata cache, when full, writes the dirty B-tree
nodes and object headers it evicts at once, pointing past the end of the file that the flushed
superblock records (``addr overflow`` on open; shown with a 4 KiB cache). Evictions are off
(:func:`keep_metadata_until_flush`), so the cache holds all metadata of the file: about 0.4 KB of
memory per stored chunk, 212 MB more after one hour of 150 fps video with 1 kHz ECG (measured; HDF5's
default cache grew the same in that recording, so this costs nothing more in practice).

HDF5's flush itself is not atomic: it writes the changed object headers and B-tree nodes in address
order and the superblock (with the new end of file) last, over ~0.2 ms of each flush; a kill there left
a B-tree node past the recorded end, or a shape counting chunks the index did not hold yet (20 of 100
kills 0-400 µs into a flush; about 1 in 6000 SIGKILLs at random moments). HDF5 therefore writes through
:class:`~mecg.session.ordered_file.OrderedFile`, which holds back the writes of each flush and makes
them new space first, then the superblock, then nodes rewritten in place, then all object headers in
one write: 0 of 100 writers ended 0-1500 µs into a flush were damaged (0 of 100 at 0-500 µs).
``benchmarks/bench_writer.py --crash`` measures kills inside a flush.
"""

from __future__ import annotations

import atexit
import datetime as _dt
import functools
import hashlib
import os
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import h5py
import numpy as np

from mecg.session import video_codec
from mecg.session import video_codec as _codec  # the name video_codec is also a parameter
from mecg.session.annotations import Annotation, write_annotations
from mecg.session.checksum import with_trailer
from mecg.session.format import (
    ANNOTATIONS,
    BASE_FORMAT_VERSION,
    CHANNEL_LISTS,
    FORMAT_NAME,
    GROUND_TRUTH,
    MAX_ATTR_CHANNELS,
    STREAMS,
    SessionError,
    StreamInfo,
    StreamKind,
    stream_key,
)
from mecg.session.ordered_file import OrderedFile

_STR = h5py.string_dtype("utf-8")
#: Rows per chunk of a signal's data and timestamps (about 1 s of 1000 Hz ECG).
SIGNAL_CHUNK_ROWS = 1024
#: Largest chunk of a signal's data in bytes: a wide stream gets fewer rows per chunk (at least one),
#: so a chunk fits HDF5's 1 MiB chunk cache and is filled in place.
SIGNAL_CHUNK_BYTES = 1 << 20


def signal_chunk_rows(channels: int, itemsize: int) -> int:
    """Rows per chunk of a signal of ``channels`` channels of ``itemsize`` bytes (1 to SIGNAL_CHUNK_ROWS)."""
    return max(1, min(SIGNAL_CHUNK_ROWS, SIGNAL_CHUNK_BYTES // max(1, channels * itemsize)))


def keep_metadata_until_flush(f: h5py.File) -> None:
    """Turn off evictions from ``f``'s metadata cache, so that metadata reaches the disk only in a flush.

    HDF5 writes an evicted dirty entry at once; between flushes that is metadata the flushed file does not
    describe. Without evictions the cache grows with the file's metadata (it also needs its automatic
    resizing off): about 0.4 KB of memory per chunk.
    """
    cfg = f.id.get_mdc_config()
    cfg.incr_mode = cfg.decr_mode = cfg.flash_incr_mode = 0  # H5C_incr__off, H5C_decr__off, H5C_flash_incr__off
    cfg.evictions_enabled = False
    f.id.set_mdc_config(cfg)


def software_version() -> str:
    """The mecg version string stored in every file mecg writes."""
    from mecg import __version__

    return __version__


def _now_iso() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds")


def _encoded_chunk(frame: np.ndarray, level: int) -> tuple[bytes, int]:
    """One video frame as HDF5 stores it: deflated (or raw, see the mask) with its Fletcher32 trailer."""
    payload, mask = _codec.encode_frame(frame, level)
    return with_trailer(payload), mask


class SessionWriter:
    """Write one session file while it is being recorded.

    Parameters
    ----------
    path
        The ``.h5`` file to create.
    subject_id
        Pseudonymous participant id (no names: it is stored in clear).
    notes
        Free text kept with the session.
    overwrite
        Replace an existing file; otherwise an existing path is an error.
    flush_interval_s
        Longest time in seconds that appended data waits before it is flushed to disk.
    video_level
        Deflate level for video frames (ISA-L 0-3).
    video_codec
        Lossless video codec of new video streams (see :data:`video_codec.CODECS`): ``deflate``
        (HDF5's built-in filter, readable everywhere) or a faster plugin codec (``blosc-lz4``,
        ``lz4``, ``zstd``) that other readers need ``hdf5plugin`` (or the HDF5 plugin) to decode.
    start_time_lsl
        LSL clock (s) at which recording started, if known.
    fixed_time
        ISO 8601 time to store instead of the wall clock in every time attribute (for
        reproducible synthetic files; never set it for a real recording).
    recording_id
        Unique id of this recording, which its derivatives file repeats (default: a random UUID, or
        one derived from ``fixed_time``, ``subject_id`` and ``notes`` when ``fixed_time`` is set).
    encode_threads
        Deflated video: how many frames of one append are compressed at once, in threads (ISA-L
        releases the GIL), so one stream's compression can use several cores; the file is the same
        byte for byte. Default: the CPU count, at most 4; 1 compresses in the appending thread.

    Use as a context manager, or call :meth:`close`. Safe to call from several threads.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        subject_id: str = "",
        notes: str = "",
        *,
        overwrite: bool = False,
        flush_interval_s: float = 0.5,
        video_level: int = video_codec.DEFAULT_LEVEL,
        video_codec: str = video_codec.DEFAULT_CODEC,
        start_time_lsl: float = float("nan"),
        fixed_time: str | None = None,
        recording_id: str | None = None,
        encode_threads: int | None = None,
    ) -> None:
        self.path = Path(path)
        self._encode_threads = max(1, encode_threads or min(4, os.cpu_count() or 1))
        self._pool: ThreadPoolExecutor | None = None
        self._pool_ended = False
        self._pool_lock = threading.Lock()
        try:
            self._video_codec = _codec.check_codec(video_codec)
        except ValueError as exc:
            raise SessionError(str(exc)) from exc
        if self.path.exists() and not overwrite:
            raise SessionError(f"{self.path} already exists; choose another name or pass overwrite")
        if not self.path.parent.is_dir():
            raise SessionError(f"cannot create {self.path}: folder {self.path.parent} does not exist")
        try:  # HDF5 writes through OrderedFile, which orders the writes of each flush (crash safety)
            self._file = OrderedFile(self.path)
        except OSError as exc:
            raise SessionError(f"cannot create {self.path}: {exc}") from exc
        try:
            self._f = h5py.File(self._file, "w", libver="earliest")
        except OSError as exc:
            self._file.close()
            raise SessionError(f"cannot create {self.path}: {exc}") from exc
        keep_metadata_until_flush(self._f)
        self._fixed_time = fixed_time
        self._frozen = False
        self._lock = threading.RLock()
        self._dirty = False
        self._closed = False
        self._video_level = video_level
        self._streams: dict[str, StreamInfo] = {}
        self._counts: dict[str, int] = {}
        # Each stream's group and datasets stay open while recording: h5py closes an object when
        # it is freed, and a close that flushes on a full disk could only print its error.
        self._open: dict[str, tuple[h5py.Group, h5py.Dataset, h5py.Dataset, h5py.Dataset]] = {}
        f = self._f
        f.attrs["format"] = FORMAT_NAME
        f.attrs["format_version"] = BASE_FORMAT_VERSION  # raised to v3 by a stream that needs it (add_stream)
        f.attrs["subject_id"] = subject_id
        f.attrs["notes"] = notes
        f.attrs["start_time"] = self._now()
        f.attrs["start_time_lsl"] = float(start_time_lsl)
        f.attrs["end_time"] = ""
        f.attrs["software_version"] = software_version()
        f.attrs["complete"] = False
        if recording_id is None:
            recording_id = (
                uuid.uuid4().hex
                if fixed_time is None
                else hashlib.sha256(f"{fixed_time}\n{subject_id}\n{notes}".encode()).hexdigest()[:32]
            )
        f.attrs["recording_id"] = recording_id
        for g in (STREAMS, ANNOTATIONS):
            f.create_group(g)
        self._flush_locked()  # through OrderedFile too: it learns the flushed end of file, so the next flush is ordered
        self._flush_interval_s = float(flush_interval_s)
        self._stop = threading.Event()
        self._flusher = threading.Thread(target=self._flush_loop, name="session-flush", daemon=True)
        self._flusher.start()
        # h5py's file-object driver calls back into Python: a file left open until the interpreter
        # tears down crashes it (segmentation fault), so an open writer is aborted at exit.
        atexit.register(self.abort)

    # -- context manager -------------------------------------------------------------------
    def __enter__(self) -> SessionWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- streams ---------------------------------------------------------------------------
    @property
    def streams(self) -> dict[str, StreamInfo]:
        """The streams added so far, by key."""
        return dict(self._streams)

    def count(self, key: str) -> int:
        """Samples (or frames) appended to stream ``key`` so far."""
        return self._counts[key]

    def add_stream(self, info: StreamInfo) -> str:
        """Create the group of a new stream and return its key (unique, derived from the name)."""
        with self._lock:
            self._check_open()
            key = stream_key(info.name, set(self._streams))
            g = self._f[STREAMS].create_group(key)
            for attr in ("name", "type", "kind", "source_id", "hostname", "channel_format", "lsl_header"):
                g.attrs[attr] = str(getattr(info, attr))  # plain str: h5py cannot store a StrEnum
            g.attrs["nominal_srate_hz"] = float(info.nominal_srate_hz)
            g.attrs["channel_count"] = info.channel_count
            g.attrs["can_drop_samples"] = bool(info.can_drop_samples)
            g.attrs["created_time"] = self._now()
            g.attrs["sample_count"] = 0
            if info.kind == StreamKind.SIGNAL:
                n = len(info.channel_labels)
                for name in CHANNEL_LISTS:
                    values = np.array(getattr(info, name), dtype=object)
                    if n <= MAX_ATTR_CHANNELS:
                        g.attrs[name] = values
                    else:  # too long for an attribute (64 KiB): a dataset, and the file becomes v3
                        g.create_dataset(name, data=values, dtype=_STR)
                if n > MAX_ATTR_CHANNELS and int(self._f.attrs["format_version"]) < 3:
                    self._f.attrs["format_version"] = 3
                # No filter: an unfiltered chunk keeps its size and is rewritten in place. A
                # compressed chunk that grows is moved, and HDF5 may reuse its old bytes before
                # the next flush while the flushed index still points there (crash corruption).
                g.create_dataset(
                    "data",
                    shape=(0, n),
                    maxshape=(None, n),
                    chunks=(signal_chunk_rows(n, info.dtype.itemsize), n),
                    dtype=info.dtype,
                    fletcher32=True,
                )
            elif info.kind == StreamKind.VIDEO:
                shape = info.frame_shape
                g.attrs["frame_shape"] = np.array(shape, dtype=np.int64)
                g.attrs["pixel_format"] = "mono8" if len(shape) == 2 else "rgb8"
                g.attrs["video_codec"] = self._video_codec
                if self._video_codec == "deflate":
                    codec_opts: dict = {"compression": "gzip", "compression_opts": max(1, self._video_level)}
                else:  # HDF5's pipeline encodes; no chunk cache, so each frame reaches the file at once
                    codec_opts = {"compression": _codec.plugin_filter(self._video_codec), "rdcc_nbytes": 0}
                g.create_dataset(
                    "data",
                    shape=(0, *shape),
                    maxshape=(None, *shape),
                    chunks=(1, *shape),
                    dtype=np.uint8,
                    fletcher32=True,
                    **codec_opts,
                )
            else:
                # HDF5 refuses filters on variable-length strings: markers carry no checksum
                g.create_dataset("data", shape=(0,), maxshape=(None,), chunks=(256,), dtype=_STR)
            g.create_dataset(
                "timestamps",
                shape=(0,),
                maxshape=(None,),
                chunks=(SIGNAL_CHUNK_ROWS,),
                dtype=np.float64,
                fletcher32=True,
            )
            g.create_dataset(
                "clock_offsets", shape=(0, 2), maxshape=(None, 2), chunks=(64, 2), dtype=np.float64, fletcher32=True
            )
            self._streams[key] = info
            self._counts[key] = 0
            # No chunk cache: each append's samples reach the file in append(), whose failure (a
            # full disk) freezes the file. Cached chunks were written by the next flush, and HDF5's
            # file flush goes on to the metadata after its raw-data flush failed: the datasets' new
            # shapes and sample_count reached the disk without the chunks they count, and
            # validation refused the whole file as damaged (bench_writer's full-disk trial).
            dapl = h5py.h5p.create(h5py.h5p.DATASET_ACCESS)
            dapl.set_chunk_cache(0, 0, 1.0)
            opened = [h5py.Dataset(h5py.h5d.open(g.id, n, dapl)) for n in (b"data", b"timestamps", b"clock_offsets")]
            self._open[key] = (g, *opened)
            self._dirty = True
            return key

    def append(self, key: str, data: np.ndarray | Sequence, timestamps: np.ndarray | Sequence[float]) -> None:
        """Append samples with their LSL timestamps (s) to stream ``key``.

        ``data`` is ``(n, channels)`` for a signal, ``(n, height, width[, 3])`` uint8 (or int8, as
        LSL delivers it) for video, and ``n`` strings for markers.
        """
        info = self._info(key)
        ts = np.asarray(timestamps, dtype=np.float64).reshape(-1)
        n = ts.shape[0]
        if info.kind == StreamKind.MARKERS:
            values = [str(v) for v in np.asarray(data, dtype=object).reshape(-1)]
            if len(values) != n:
                raise SessionError(f"stream {key!r}: {len(values)} markers but {n} timestamps")
        elif info.kind == StreamKind.VIDEO:
            arr = np.asarray(data)
            if arr.dtype == np.int8:
                arr = arr.view(np.uint8)
            if arr.shape in ((n, info.channel_count), info.frame_shape) and arr.size == n * info.channel_count:
                arr = arr.reshape((n, *info.frame_shape))  # flat samples as LSL delivers them, or one frame
            if arr.shape != (n, *info.frame_shape):  # a reshape would accept transposed frames
                raise SessionError(
                    f"stream {key!r}: frames of shape {np.shape(data)} do not match {n} x {info.frame_shape}"
                )
            if self._video_codec != "deflate":  # HDF5's filter pipeline encodes (and checksums) in _write
                payloads = arr
            else:  # outside the lock; the Fletcher32 trailer HDF5's filter would have added
                payloads = self._encode(arr)
        else:
            arr = np.asarray(data, dtype=info.dtype)
            if arr.ndim == 1 and len(info.channel_labels) == 1:
                arr = arr[:, None]
            if arr.shape != (n, len(info.channel_labels)):
                raise SessionError(
                    f"stream {key!r}: data of shape {arr.shape} does not match {n} timestamps x "
                    f"{len(info.channel_labels)} channels"
                )
        if n == 0:
            return
        with self._lock:
            self._check_open()
            try:
                self._write(
                    key,
                    info,
                    n,
                    ts,
                    values if info.kind == StreamKind.MARKERS else None,
                    payloads if info.kind == StreamKind.VIDEO else None,
                    arr if info.kind == StreamKind.SIGNAL else None,
                )
            except OSError:
                # A write failed (disk full?). Freeze before the background flusher, which waits on
                # this lock, can flush: a flush after a failed write can leave a superblock that
                # points past the end of the file, and the whole file unreadable.
                self._freeze_locked()
                raise

    def _encode(self, frames: np.ndarray) -> list[tuple[bytes, int]]:
        """Deflate each frame and append its Fletcher32 trailer: ``(chunk, filter_mask)`` per frame, in order."""
        one = functools.partial(_encoded_chunk, level=self._video_level)
        with self._pool_lock:
            if self._encode_threads < 2 or len(frames) < 2 or self._pool_ended:
                pool = None
            elif self._pool is None:  # the writer's own threads, ended with it (no thread outlives the file)
                pool = self._pool = ThreadPoolExecutor(self._encode_threads, thread_name_prefix="mecg-encode")
            else:
                pool = self._pool
        if pool is not None:
            try:
                return list(pool.map(one, frames))
            except RuntimeError:  # closed meanwhile (cannot schedule after shutdown): _write refuses the append
                pass
        return [one(fr) for fr in frames]

    def _end_pool(self) -> None:
        """End the compressing threads (at close); later appends, refused anyway, compress in their own thread."""
        with self._pool_lock:
            pool, self._pool, self._pool_ended = self._pool, None, True
        if pool is not None:
            pool.shutdown(wait=True)

    def _write(
        self,
        key: str,
        info: StreamInfo,
        n: int,
        ts: np.ndarray,
        values: list | None,
        payloads: list | np.ndarray | None,
        arr: np.ndarray | None,
    ) -> None:
        """Append under the lock (see :meth:`append`)."""
        g, d, t, _ = self._open[key]
        start = self._counts[key]
        d.resize(start + n, axis=0)
        if isinstance(payloads, np.ndarray):  # a plugin codec: whole one-frame chunks through HDF5's filters
            d[start:] = payloads
        elif payloads is not None:
            zero = (0,) * len(info.frame_shape)
            for i, (payload, mask) in enumerate(payloads):
                d.id.write_direct_chunk((start + i, *zero), payload, filter_mask=mask)
        else:
            d[start:] = values if values is not None else arr
        t.resize(start + n, axis=0)
        t[start:] = ts
        self._counts[key] = start + n
        g.attrs["sample_count"] = start + n
        self._dirty = True

    def append_clock_offsets(self, key: str, rows: np.ndarray | Sequence[Sequence[float]]) -> None:
        """Append clock-offset measurements ``[local_time_s, offset_s]`` as LabRecorder takes them."""
        arr = np.asarray(rows, dtype=np.float64).reshape(-1, 2)
        self._info(key)
        with self._lock:
            self._check_open()
            d = self._open[key][3]
            start = d.shape[0]
            d.resize(start + arr.shape[0], axis=0)
            d[start:] = arr
            self._dirty = True

    def set_annotations(self, annotations: list[Annotation], video_stream: str) -> None:
        """Write the annotations table (frames index ``video_stream``'s frames)."""
        self._info(video_stream)
        with self._lock:
            self._check_open()
            write_annotations(self._f[ANNOTATIONS], annotations, video_stream)
            self._dirty = True

    #: Stream attributes the format defines; :meth:`set_stream_attrs` leaves them to the writer.
    _SCHEMA_ATTRS = frozenset(
        {
            *("name", "type", "kind", "source_id", "hostname", "channel_format", "lsl_header", "nominal_srate_hz"),
            *("channel_count", "can_drop_samples", "created_time", "sample_count", "frame_shape", "pixel_format"),
            *CHANNEL_LISTS,
        }
    )

    def set_stream_attrs(self, key: str, attrs: dict) -> None:
        """Set extra attributes of stream ``key`` (e.g. the recorder's loss counts and gap table), replacing old values.

        The format's own attributes (name, type, sample_count, ...) are refused: the writer keeps them.
        """
        self._info(key)
        bad = sorted(set(attrs) & self._SCHEMA_ATTRS)
        if bad:
            raise SessionError(f"set_stream_attrs cannot change the format's stream attributes {bad}")
        with self._lock:
            self._check_open()
            g = self._f[STREAMS][key]
            for k, v in attrs.items():
                g.attrs[k] = v
            self._dirty = True

    def set_ecg_channel(self, choice: str) -> None:
        """Store the explicit ECG choice ``[STREAM:]LABEL|INDEX`` (root attribute ``ecg_channel``).

        Sync and the model use it instead of the automatic rule (:mod:`mecg.session.ecg_channel`);
        files without the attribute use the rule.
        """
        with self._lock:
            self._check_open()
            self._f.attrs["ecg_channel"] = str(choice)
            self._dirty = True

    def set_ground_truth(self, attrs: dict, arrays: dict[str, np.ndarray] | None = None) -> None:
        """Store generator truth (synthetic sessions only) under /ground_truth. Sync and model never read it."""
        with self._lock:
            self._check_open()
            g = self._f.require_group(GROUND_TRUTH)
            for k, v in attrs.items():
                g.attrs[k] = v
            for k, v in (arrays or {}).items():
                if k in g:
                    del g[k]
                v = np.asarray(v)
                opts = {"compression": "gzip", "compression_opts": 4, "fletcher32": True} if v.ndim else {}
                g.create_dataset(k, data=v, **opts)
            self._dirty = True

    # -- flushing and closing --------------------------------------------------------------
    def flush(self) -> None:
        """Write everything appended so far to disk (HDF5 flush, then fsync).

        Raises :class:`OSError` when a write fails (a full disk); the file then stays as the last
        good flush left it (see :meth:`freeze`).
        """
        with self._lock:
            if self._closed:
                return
            self._flush_locked()
            try:  # survive a power cut too, not only a killed process
                os.fsync(self._file.fd)
            except (OSError, ValueError, TypeError):
                pass
            self._dirty = False

    def _flush_locked(self) -> None:
        """Flush the file's metadata; at a failure, freeze (nothing more reaches the file) and raise OSError.

        HDF5 2 reports a failed write as ``RuntimeError``; it is raised as :class:`OSError`, as a
        failed append is. The datasets have no chunk cache (:meth:`add_stream`), so a flush holds
        no sample data that could fail after the metadata counting it was written.
        """
        if self._frozen:
            return
        try:
            self._file.begin()  # HDF5's writes are held back and made in a crash-safe order
            try:
                self._f.flush()
            finally:
                self._file.commit()
        except (OSError, RuntimeError) as exc:  # disk full: nothing more may reach the file
            self._freeze_locked()
            if isinstance(exc, OSError):
                raise
            raise OSError(f"cannot write {self.path}: {exc}") from exc

    def _flush_loop(self) -> None:
        while not self._stop.wait(self._flush_interval_s):
            if self._dirty:
                try:
                    self.flush()
                except Exception as exc:
                    self.flush_error = exc
                    time.sleep(self._flush_interval_s)

    #: The last exception a background flush raised (e.g. the disk is full), or None.
    flush_error: BaseException | None = None

    def freeze(self) -> None:
        """Let nothing more reach the file on disk: it stays as the last flush left it, as after a crash.

        For a write that failed for lack of space: a flush that then fails half way can leave a
        superblock pointing past the end of the file (unreadable). The file HDF5 writes through
        (:class:`~mecg.session.ordered_file.OrderedFile`) then drops every write, so later flushes and
        the close go nowhere.
        """
        with self._lock:
            self._freeze_locked()

    def _freeze_locked(self) -> None:
        if not self._closed and not self._frozen:
            self._frozen = True
            self._file.frozen = True

    def close(self) -> None:
        """Record end time and final counts, mark the file complete, and close it."""
        if self._closed:
            return
        atexit.unregister(self.abort)
        self._stop.set()
        self._flusher.join()
        self._end_pool()
        with self._lock:
            if self._closed:
                return
            f = self._f
            for key, n in self._counts.items():
                f[STREAMS][key].attrs["sample_count"] = n
            f.attrs["end_time"] = self._now()
            f.attrs["complete"] = True
            self._close_file()
            self._closed = True

    def abort(self) -> None:
        """Close without marking the file complete (used when recording fails).

        Never raises: when the last flush fails (a full disk), the handle is closed anyway and the
        file keeps its last flushed state, with ``complete`` false.
        """
        if self._closed:
            return
        atexit.unregister(self.abort)
        self._stop.set()
        self._flusher.join()
        self._end_pool()
        with self._lock:
            try:
                self._flush_locked()
            except Exception as exc:
                self.flush_error = exc
            try:
                self._close_file()
            except Exception:
                self._file.close()
            self._closed = True

    def _close_file(self) -> None:
        """Close the HDF5 file (its last flush in the crash-safe order), then the file descriptor."""
        try:
            self._file.begin()
            try:
                self._f.close()
            finally:
                self._file.commit()
        finally:
            self._file.close()

    # -- helpers ---------------------------------------------------------------------------
    def _now(self) -> str:
        return self._fixed_time or _now_iso()

    def _info(self, key: str) -> StreamInfo:
        try:
            return self._streams[key]
        except KeyError:
            raise SessionError(f"no stream {key!r} in {self.path}; add it with add_stream first") from None

    def _check_open(self) -> None:
        if self._closed:
            raise SessionError(f"{self.path} is closed; no more data can be written to it")
