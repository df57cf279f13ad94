"""A tmpfs mounted on a test folder (a small or read-only file system), skipped where mounting is not allowed."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def mounted_tmpfs(folder: Path, options: str, what: str = "a small tmpfs") -> Iterator[Path]:
    """Mount a tmpfs with ``options`` (e.g. ``size=256k``, ``ro,size=64k``) on ``folder``; unmount after."""
    folder.mkdir(exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount {what} here (needs root): {r.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)
