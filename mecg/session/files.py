"""Which files are sessions: a file, a folder's ``*.h5`` files, or a list of files."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from mecg.session.format import SessionError


def session_files(target: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    """Session files named by ``target``.

    Parameters
    ----------
    target : str, PathLike or sequence of them
        A session file, a folder (its ``*.h5`` files, sorted by name), or a list of session files.

    Returns
    -------
    list of Path

    Raises
    ------
    SessionError
        Nothing is there, the folder holds no ``.h5`` file, or the list is empty.
    """
    if not isinstance(target, str | os.PathLike):
        paths = [Path(p) for p in target]
        if not paths:
            raise SessionError("no session files given; give a session file, a folder of sessions or a list of files")
        for p in paths:
            if not p.is_file():
                raise SessionError(f"{p} does not exist; give session files (.h5)")
        return paths
    p = Path(target)
    if p.is_dir():
        files = sorted(p.glob("*.h5"))
        if not files:
            raise SessionError(f"{p} holds no .h5 session files; make some with `mecg synth` or `mecg record`")
        return files
    if not p.exists():
        raise SessionError(f"{p} does not exist; give a session file or a folder of sessions")
    return [p]
