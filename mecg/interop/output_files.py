"""Output files written atomically: a temporary file beside the target, renamed over it when complete.

A failed or interrupted export or import then never leaves a half-written file under the name the
user asked for, and ``--overwrite`` keeps the old file until the new one is complete.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from mecg.errors import MecgError


def check_output(dst: Path, overwrite: bool, error: type[MecgError]) -> None:
    """Refuse an output that cannot be written: a folder, an existing file without ``overwrite``, a bad folder."""
    if dst.is_dir():
        raise error(f"{dst} is a folder; give a file name inside it")
    if dst.exists() and not overwrite:
        raise error(f"{dst} already exists; choose another name or pass --overwrite to replace it")
    if not dst.parent.is_dir():
        raise error(f"folder {dst.parent} does not exist; create it first")
    if not os.access(dst.parent, os.W_OK | os.X_OK):
        raise error(f"folder {dst.parent} is not writable; choose another folder or fix its permissions")


def temp_beside(dst: Path, suffix: str, error: type[MecgError]) -> Path:
    """An empty temporary file next to ``dst`` (hidden, ending in ``suffix``) with a new file's usual mode."""
    try:
        fd, name = tempfile.mkstemp(prefix=f".{dst.stem}.", suffix=suffix, dir=dst.parent)
    except OSError as exc:
        raise error(f"cannot write in folder {dst.parent}: {exc.strerror or exc}; choose another folder") from None
    os.close(fd)
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(name, 0o666 & ~mask)  # mkstemp makes it 0600
    return Path(name)
