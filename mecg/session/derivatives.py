"""The derivatives file: everything computed from a recording, kept beside it, never inside it.

A recording ``S.h5`` is never written again once closed. Sync results, cached features and
annotations added later go to ``S.derivatives.hdf5`` in the same folder, bound to the recording by
its ``recording_id`` and :func:`~mecg.session.checksum.recording_checksum`. Every change is atomic:
the file (or a copy of the existing one) is written under a temporary name, fsynced and renamed
over the old one, so a crash or a full disk leaves either the old file or the new one, whole.
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import io
import os
import shutil
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import h5py

from mecg.session.format import DERIVATIVES_NAME, DERIVATIVES_SUFFIX, DERIVATIVES_VERSION, SessionError


def derivatives_path(recording: str | os.PathLike) -> Path:
    """The derivatives file of a recording: ``S.h5`` -> ``S.derivatives.hdf5`` in the same folder."""
    p = Path(recording)
    return p.with_name(p.stem + DERIVATIVES_SUFFIX)


def can_store_derivatives(recording: str | os.PathLike) -> bool:
    """True when results for ``recording`` can be stored (its folder is writable)."""
    return os.access(Path(recording).resolve().parent, os.W_OK | os.X_OK)


def _str(v: object) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def check_binding(f: h5py.File, path: Path, recording: Path, recording_id: str, checksum: Callable[[], str]) -> None:
    """Refuse a derivatives file that is not one, or was made for another recording (or another version of it)."""
    fmt = _str(f.attrs.get("format", ""))
    if fmt != DERIVATIVES_NAME:
        raise SessionError(
            f"{path} is not a mecg derivatives file (format attribute {fmt!r}); "
            f"move it away: mecg keeps the results for {recording.name} under that name"
        )
    try:
        version = int(f.attrs.get("format_version", -1))
    except (TypeError, ValueError):
        version = -1
    if not 1 <= version <= DERIVATIVES_VERSION:
        raise SessionError(
            f"{path} has derivatives format version {version}; this mecg reads v1 (upgrade mecg or move the file away)"
        )
    their_id = _str(f.attrs.get("recording_id", ""))
    if their_id != recording_id:
        raise SessionError(
            f"{path} belongs to recording {their_id or '(no id)'}, not to {recording.name} "
            f"(id {recording_id or '(none)'}); move it away or put the recording it was made for back"
        )
    theirs = _str(f.attrs.get("recording_checksum", ""))
    ours = checksum()
    if theirs != ours:
        raise SessionError(
            f"{path} was made for another version of {recording.name} (checksum {theirs[:19]}..., the recording "
            f"now has {ours[:19]}...): the recording changed after its results were stored. Put the original "
            "recording back, or move the derivatives file away and run sync/spot again"
        )


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds")


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def close_without_writing(f: h5py.File) -> None:
    """Close ``f`` without writing anything more to it: its descriptor is pointed at /dev/null first.

    For a file that is being thrown away after a failed write (a full disk): HDF5 would otherwise
    retry its pending writes at close, fail again, and can be left in a state that crashes a later
    file operation of the same process.
    """
    try:
        fd = f.id.get_vfd_handle()
        null = os.open(os.devnull, os.O_RDWR)
        try:
            os.dup2(null, fd)
        finally:
            os.close(null)
    except (OSError, ValueError, TypeError):
        pass
    try:
        f.close()
    except (OSError, RuntimeError, ValueError):
        pass


#: Free space (bytes) an update keeps in hand beyond the copy of the old file and the new arrays.
RESERVE_BYTES = 1 << 20


def update_derivatives(
    recording: Path,
    recording_id: str,
    checksum: str,
    change: Callable[[h5py.File], None],
    software: str,
    need_bytes: int = 0,
) -> None:
    """Apply ``change`` to the derivatives of ``recording`` atomically (copy, modify, fsync, rename).

    A failure at any step (full disk, read-only folder) removes the temporary file, leaves the old
    derivatives file (if any) and the recording untouched, and raises :class:`SessionError`.
    """
    target = derivatives_path(recording)
    # HDF5 left with a file it could not finish writing (a full disk) can crash a later file operation of
    # the same process: refuse an update that would not fit before HDF5 writes anything (the copy of the
    # old file, ``need_bytes`` of new data uncompressed, and RESERVE_BYTES for HDF5's own structures).
    try:
        free = shutil.disk_usage(target.parent).free
        old_size = target.stat().st_size if target.exists() else 0
    except OSError:
        free, old_size = None, 0
    want = old_size + max(int(need_bytes), 0) + RESERVE_BYTES
    if free is not None and free < want:
        raise SessionError(
            f"cannot store results in {target}: the disk is full ({free / 1e6:.2f} MB free, about "
            f"{want / 1e6:.2f} MB needed). Nothing was changed: the recording is read-only to mecg; free disk "
            "space, then run the command again"
        )
    # One update at a time per folder, across processes and threads (flock on the folder): each update
    # copies the newest file, so two programs storing results at once (mecg spot while the review window
    # saves) never lose one another's change.
    try:
        folder_fd = os.open(target.parent, os.O_RDONLY)
    except OSError as exc:
        raise SessionError(f"cannot store results in {target}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(folder_fd, fcntl.LOCK_EX)
        _update_locked(recording, recording_id, checksum, change, software, target)
    finally:
        os.close(folder_fd)  # releases the lock


def _update_locked(
    recording: Path,
    recording_id: str,
    checksum: str,
    change: Callable[[h5py.File], None],
    software: str,
    target: Path,
) -> None:
    tmp = target.with_name(f".{target.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    # HDF5 reports some failed writes (a full disk) only when h5py frees an object: collect them
    # instead of letting Python print "Exception ignored" tracebacks, and fail the update.
    # (Cython prints their traceback to sys.stderr before calling the hook: catch both.)
    lost: list[BaseException] = []
    hook, stderr = sys.unraisablehook, sys.stderr
    sys.unraisablehook = lambda u: lost.append(u.exc_value) if u.exc_value is not None else None
    sys.stderr = io.StringIO()
    try:
        if target.exists():
            shutil.copyfile(target, tmp)
            f = h5py.File(tmp, "r+")
        else:
            f = h5py.File(tmp, "w", libver="earliest")
            f.attrs["format"] = DERIVATIVES_NAME
            f.attrs["format_version"] = DERIVATIVES_VERSION
            f.attrs["recording_file"] = recording.name
            f.attrs["recording_id"] = recording_id
            f.attrs["recording_checksum"] = checksum
            f.attrs["created_time"] = _now()
        try:
            change(f)
            f.attrs["updated_time"] = _now()
            f.attrs["software_version"] = software
            f.flush()
            if lost:
                raise OSError(f"HDF5 could not write: {lost[0]}")
        except BaseException:
            close_without_writing(f)  # the file is deleted anyway: its close must not retry writes on a full disk
            raise
        f.close()
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    except (OSError, RuntimeError, ValueError, KeyError, TypeError) as exc:
        tmp.unlink(missing_ok=True)
        raise SessionError(
            f"cannot store results in {target}: {exc}. Nothing was changed: the recording is read-only to mecg "
            f"and {'the previous ' + target.name + ' is as it was' if target.exists() else 'no file was left'}; "
            "free disk space or make the folder writable, then run the command again"
        ) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        sys.unraisablehook, sys.stderr = hook, stderr
