"""Output paths checked before any work: a command that will fail to write its result fails first.

``mecg spot``, ``train``, ``synth``, ``stats`` and ``record`` call these before they load a model,
extract features, train or open a device, so a folder given where a file is wanted, a folder that
does not exist, a read-only folder or disk, or an existing file without ``--overwrite`` costs
nothing. Writability is tested by creating (and removing) a file in the folder, which also
catches what permission bits do not show: a read-only mount, or any folder for root.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from mecg.errors import MecgError


def check_folder_writable(folder: str | os.PathLike, what: str) -> Path:
    """Refuse a ``folder`` that does not exist or where no file can be created; ``what`` names the output."""
    d = Path(folder)
    if not d.is_dir():
        if d.exists():
            raise MecgError(f"{what}: {d} is not a folder")
        raise MecgError(f"{what}: folder {d} does not exist; create it first")
    try:
        fd, name = tempfile.mkstemp(prefix=".mecg-write-check-", dir=d)
    except OSError as exc:
        raise MecgError(f"{what}: cannot write in folder {d} ({exc.strerror or exc}); choose another folder") from None
    os.close(fd)
    os.unlink(name)
    return d


def check_output_file(
    path: str | os.PathLike, what: str, *, overwrite: bool = True, suffixes: tuple[str, ...] = ()
) -> Path:
    """Refuse an output file that cannot be written, before any work.

    ``what`` names it in messages (``"--out spots.csv"``); ``overwrite=False`` refuses an existing
    file (commands with an ``--overwrite`` option); ``suffixes`` (lower case, with the dot) are the
    accepted file types.
    """
    p = Path(path)
    if suffixes and p.suffix.lower() not in suffixes:
        raise MecgError(f"{what}: give a file name ending in {' or '.join(suffixes)}")
    if p.is_dir():
        example = p / f"out{suffixes[0] if suffixes else ''}"
        raise MecgError(f"{what} is a folder; give a file name inside it, e.g. {example}")
    if p.exists() and not overwrite:
        raise MecgError(f"{what} already exists; choose another name or pass --overwrite to replace it")
    check_folder_writable(p.parent, what)
    if p.exists() and not os.access(p, os.W_OK):
        raise MecgError(f"{what}: the file exists and is read-only; choose another name or make it writable")
    return p
