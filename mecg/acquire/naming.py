"""Names of new session files: ``<folder>/<subject>_<YYYYmmdd-HHMMSS>.h5``, safe and never an existing file.

Shared by ``mecg record --session-dir`` and the lab app's output folder.
"""

from __future__ import annotations

import datetime as _dt
import re
from pathlib import Path

_SAFE = re.compile(r"[^A-Za-z0-9_-]+")


def safe_subject(subject: str) -> str:
    """``subject`` made safe for a file name: only letters, digits, ``-`` and ``_`` (no ``/``, no ``..``)."""
    return _SAFE.sub("-", subject).strip("-_")[:64]


def auto_session_path(folder: str | Path, subject: str, when: _dt.datetime | None = None) -> Path:
    """``<folder>/<subject>_<YYYYmmdd-HHMMSS>.h5`` (local time), never an existing file, never outside ``folder``."""
    when = when or _dt.datetime.now()
    stem = f"{safe_subject(subject) or 'session'}_{when:%Y%m%d-%H%M%S}"
    p = Path(folder) / f"{stem}.h5"
    i = 2
    while p.exists():
        p = Path(folder) / f"{stem}-{i}.h5"
        i += 1
    return p
