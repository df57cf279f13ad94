"""The metadata probe (mecg/session/probe.py) with other threads alive: one probe server, not one interpreter a file."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest

from mecg.session import probe as probe_module
from mecg.session.format import SessionError


@pytest.fixture
def other_thread() -> Iterator[None]:
    """A second Python thread, as in the app or a recorder: the probe may not fork this process."""
    stop = threading.Event()
    t = threading.Thread(target=stop.wait, daemon=True)
    t.start()
    yield
    stop.set()
    t.join()


def _h5(path: Path, n: int) -> Path:
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=np.arange(n), chunks=(4,), maxshape=(None,))
        f.attrs["n"] = n
    return path


def test_many_files_with_a_thread_alive_share_one_server(tmp_path: Path, other_thread: None) -> None:
    assert threading.active_count() > 1
    started = probe_module._SERVER.started
    paths = [_h5(tmp_path / f"f{i}.h5", 10 + i) for i in range(6)]
    for p in paths:
        probe_module.probe(p)
    # at most one server started for six files (none if an earlier test left one running)
    assert probe_module._SERVER.started - started <= 1
    server = probe_module._SERVER._proc
    assert server is not None and server.poll() is None


def test_a_hanging_walk_is_reported_and_the_server_goes_on(
    tmp_path: Path, other_thread: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(probe_module, "PROBE_TIMEOUT_S", 1.0)
    fifo = tmp_path / "hangs.h5"
    os.mkfifo(fifo)  # opening it for reading blocks until a writer comes: a walk that never ends
    with pytest.raises(SessionError, match="did not finish reading the file's structure within 1 s"):
        probe_module.probe(fifo)
    asked: list[str] = []
    monkeypatch.setattr(probe_module._SERVER, "run", lambda path: asked.append(path) or "ok")
    with pytest.raises(SessionError, match="did not finish"):  # the same bytes again: refused without a walk
        probe_module.probe(fifo)
    assert asked == []
    monkeypatch.undo()
    monkeypatch.setattr(probe_module, "PROBE_TIMEOUT_S", 1.0)
    server = probe_module._SERVER._proc
    probe_module.probe(_h5(tmp_path / "good.h5", 5))  # the same server answers the next file
    assert probe_module._SERVER._proc is server
    # the forked path (no other thread) reports the hang the same way
    assert probe_module._run_forked(str(fifo), timeout_s=0.5) == "timeout"


def test_a_server_that_died_is_replaced(tmp_path: Path, other_thread: None) -> None:
    probe_module.probe(_h5(tmp_path / "a.h5", 5))
    server = probe_module._SERVER._proc
    assert server is not None
    server.kill()
    server.wait()
    probe_module.probe(_h5(tmp_path / "b.h5", 6))  # a new server answers; the dead one is not blamed on the file
    probe_module.probe(_h5(tmp_path / "c.h5", 7))
    new = probe_module._SERVER._proc
    assert new is not None and new is not server and new.poll() is None
