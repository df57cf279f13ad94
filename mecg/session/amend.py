"""The last root attributes of a session file that a converter has just written and not yet published.

A converter (``mecg import-xdf``) writes its ``.part.h5`` with :class:`~mecg.session.SessionWriter`,
closes it, reads it back to learn what only the whole recording knows (when it started and ended
on the recorder's clock, whether every chunk arrived), sets those here, and only then renames the
file into place. A published recording is never written again: this is not for one.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py

from mecg.session.format import SessionError
from mecg.session.views import H5_ERRORS

#: The root attributes a converter may set after the writer closed, and their types.
AMENDABLE: dict[str, type] = {"start_time_lsl": float, "end_time": str, "complete": bool}


def amend_root_attrs(path: str | os.PathLike, attrs: dict[str, float | str | bool]) -> None:
    """Set root attributes of the just-written, unpublished session file ``path``.

    ``attrs`` may hold only :data:`AMENDABLE` names: ``start_time_lsl`` (s, recorder LSL time at
    the start), ``end_time`` (ISO 8601 text) and ``complete``. Raises :class:`SessionError` for
    another name or when the file cannot be written.
    """
    bad = sorted(set(attrs) - set(AMENDABLE))
    if bad:
        raise SessionError(f"cannot amend {', '.join(bad)} of {path}: only {', '.join(AMENDABLE)} may be set")
    p = Path(path)
    try:
        with h5py.File(p, "r+") as f:
            for name, value in attrs.items():
                f.attrs[name] = AMENDABLE[name](value)
    except H5_ERRORS as exc:
        raise SessionError(f"cannot write {p}: {exc}") from None
