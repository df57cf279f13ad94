"""Checking a session beyond what opening it checks: ``mecg validate`` and ``mecg validate --deep``.

The quick check (:func:`validate_session`) adds to :func:`open_session`'s structure and schema
checks: every chunk lies inside the file, timestamps are finite, each stream's last sample decodes,
annotations fit the video. The deep check (:func:`deep_check`) reads every chunk of every dataset
of the recording and its derivatives (HDF5 verifies each Fletcher32 checksum), decodes every video
frame, and checks timestamps (finite; a backward step is reported as a clock reset) and clock
offsets (finite).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import h5py
import numpy as np

from mecg.session.checksum import has_fletcher32
from mecg.session.format import SessionError, StreamKind
from mecg.session.reader import Session, open_session
from mecg.session.views import H5_ERRORS, CheckedDataset

#: Rows read at once by the deep check (frames for video).
SLAB_ROWS = 4096
VIDEO_SLAB = 64
#: A timestamp this much (s) earlier than the one before it is a clock reset; smaller backward
#: steps are LSL jitter (counted, not reported).
RESET_STEP_S = 1.0


def _chunks_outside(ds: h5py.Dataset, file_size: int) -> int:
    """Number of chunks of ``ds`` whose bytes lie beyond the end of the file (0 when intact)."""
    if ds.chunks is None:
        return 0
    bad = 0

    def visit(info: h5py.h5d.StoreInfo) -> None:
        nonlocal bad
        if info.byte_offset is None or info.byte_offset + info.size > file_size:
            bad += 1

    ds.id.chunk_iter(visit)
    return bad


def _all_zero_chunks(ds: h5py.Dataset, path: str) -> int:
    """Chunks whose stored bytes (data and checksum) are all zero: Fletcher32 cannot see those."""
    if ds.chunks is None:
        return 0
    spans: list[tuple[int, int]] = []
    ds.id.chunk_iter(lambda info: spans.append((info.byte_offset, info.size)))
    zero = 0
    with open(path, "rb") as fh:
        for off, size in spans:
            fh.seek(off)
            if not any(fh.read(size)):
                zero += 1
    return zero


@dataclass
class StreamReport:
    """What the checks found in one stream."""

    key: str
    kind: str
    samples: int
    chunks_read: int = 0
    frames_decoded: int = 0
    clock_resets: list[int] = field(default_factory=list)  # samples where time steps back > RESET_STEP_S
    jitter_backsteps: int = 0  # smaller backward steps (jitter of LSL timestamps)


@dataclass
class Report:
    """The outcome of :func:`deep_check`: valid when ``errors`` is empty."""

    path: str
    deep: bool
    format_version: int = 0
    complete: bool = False
    derivatives: str | None = None
    streams: list[StreamReport] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict:
        """JSON-ready form (``mecg validate --json``)."""
        return {
            "path": self.path,
            "valid": self.valid,
            "deep": self.deep,
            "format_version": self.format_version,
            "complete": self.complete,
            "derivatives": self.derivatives,
            "streams": [s.__dict__ for s in self.streams],
            "errors": self.errors,
            "warnings": self.warnings,
        }


def validate_session(path: str | os.PathLike, *, deep: bool = False) -> Session:
    """Open ``path`` and check it (quick, or with ``deep`` every chunk and frame).

    Returns the open session (the caller closes it). Raises :class:`SessionError` on the first problem.
    """
    rep, s = check_session(path, deep=deep)
    if not rep.valid:
        if s is not None:
            s.close()
        raise SessionError(rep.errors[0])
    assert s is not None
    return s


def check_session(path: str | os.PathLike, *, deep: bool = False) -> tuple[Report, Session | None]:
    """Check ``path`` and return the report and, when it opened, the open session (caller closes it)."""
    rep = Report(str(path), deep)
    try:
        s = open_session(path)
    except SessionError as exc:
        rep.errors.append(str(exc))
        return rep, None
    rep.format_version, rep.complete = s.format_version, s.complete
    rep.derivatives = str(s.derivatives_path) if s.derivatives is not None else None
    if s.format_version < 2:
        rep.warnings.append("format v1: chunks carry no checksums, so damaged samples cannot be detected")
    if not s.complete:
        rep.warnings.append("not closed cleanly: readable up to the last flush")
    try:
        _quick(s, rep)
        if deep and not rep.errors:
            _deep(s, rep)
    except SessionError as exc:
        rep.errors.append(str(exc))
    except H5_ERRORS as exc:
        rep.errors.append(f"{s.path} is corrupted: {exc}")
    return rep, s


def _quick(s: Session, rep: Report) -> None:
    size = os.path.getsize(s.path)
    for st in s.streams.values():
        rep.streams.append(StreamReport(st.key, st.info.kind, st.sample_count))
        for name in ("data", "timestamps", "clock_offsets"):
            if _chunks_outside(st.h5group[name], size):
                raise SessionError(
                    f"{s.path}: stream {st.key!r} {name} reaches past the end of the file; it is truncated"
                )
        st.timestamps  # noqa: B018 - finite, readable
        st.clock_offsets  # noqa: B018
        if st.sample_count:
            if st.info.kind == StreamKind.VIDEO:
                st.frames(st.sample_count - 1)
            else:
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


def _read_all(ds: CheckedDataset) -> int:
    """Read every row of ``ds`` (HDF5 checks each chunk's Fletcher32); return the chunks read."""
    n = ds.shape[0] if ds.ndim else 0
    step = max(1, SLAB_ROWS if ds.chunks is None else ds.chunks[0] * max(1, SLAB_ROWS // ds.chunks[0]))
    for a in range(0, n, step):
        ds[a : a + step]
    if not ds.ndim:
        ds[()]
    return ds.ds.id.get_num_chunks() if ds.chunks is not None else 1


def _deep(s: Session, rep: Report) -> None:
    for st, sr in zip(s.streams.values(), rep.streams):
        for name in ("data", "timestamps", "clock_offsets"):
            ds = st.h5group[name]
            if has_fletcher32(ds):
                zero = _all_zero_chunks(ds, str(s.path))
                if zero and (name != "data" or st.info.kind == StreamKind.VIDEO):
                    raise SessionError(
                        f"{s.path}: stream {st.key!r} {name} has {zero} chunk(s) of all-zero bytes "
                        "(zeroed on disk: mecg never writes such chunks there)"
                    )
                if zero:
                    rep.warnings.append(
                        f"stream {st.key!r} data has {zero} chunk(s) of all-zero bytes: a flat-zero signal, "
                        "or zeroed on disk (a checksum cannot tell these apart)"
                    )
            if name == "data" and st.info.kind == StreamKind.VIDEO:
                for a in range(0, st.sample_count, VIDEO_SLAB):
                    sr.frames_decoded += len(st.frames(a, min(a + VIDEO_SLAB, st.sample_count)))
                sr.chunks_read += ds.id.get_num_chunks()
            else:
                sr.chunks_read += _read_all(CheckedDataset(ds, f"{s.path}: stream {st.key!r} {name}"))
        ts = st.timestamps
        step = np.diff(ts)
        back = np.flatnonzero(step < -RESET_STEP_S) + 1
        sr.clock_resets = [int(i) for i in back]
        sr.jitter_backsteps = int(np.count_nonzero((step < 0) & (step >= -RESET_STEP_S)))
        if back.size:
            rep.warnings.append(
                f"stream {st.key!r}: timestamps step back by more than {RESET_STEP_S:g} s {back.size} time(s) "
                f"(clock resets), first at sample {int(back[0])}"
            )
    _read_other(s._file, s, rep, skip="streams")
    if s.derivatives is not None:
        _read_other(s.derivatives, s, rep, skip=None)


def _read_other(f: h5py.File, s: Session, rep: Report, skip: str | None) -> None:
    """Read every dataset of ``f`` outside ``/skip`` (annotations, ground truth, derived data)."""
    names: list[str] = []
    f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
    for n in names:
        if skip is not None and n.startswith(skip + "/"):
            continue
        _read_all(CheckedDataset(f[n], f"{f.filename}:/{n}"))
