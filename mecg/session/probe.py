"""Walk a file's HDF5 metadata in a child process first: damaged metadata can hang or crash HDF5.

HDF5 trusts its metadata. A zeroed or flipped object header, B-tree or heap in a v0/v1-layout file
(which carries no metadata checksums) can send the C library into an endless loop or a segfault,
which no Python code in the same process can stop. :func:`probe` therefore reads everything the
reader will later touch (every object header, attribute, link, chunk index and string heap) in a
forked child with a time limit. A child that hangs or crashes is reported as a damaged file; a
child that meets an ordinary HDF5 error is left to the reader, which reports that error itself.
Each file is probed once per process (keyed by device, inode, size, mtime and ctime); a file whose walk
hung or crashed is refused at once when opened again unchanged.

Forking is safe only while this process has no other thread (another thread may hold a lock that the
child would inherit locked). With other threads (an app, a recorder, a thread pool), probes go to a
probe server: one single-threaded interpreter, started at the first such probe (~0.3 s of CPU), that
forks a child per probe, so later probes cost a fork instead of a new interpreter each. It ends when
this process closes its pipe (exit, or a kill).
"""

from __future__ import annotations

import atexit
import gc
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from mecg.session.format import SessionError

#: Longest time (s) the metadata walk may take; a healthy 27 GB recording needs well under 1 s.
PROBE_TIMEOUT_S = 20.0
_probed: set[tuple] = set()
_damaged: dict[tuple, str] = {}  # file key -> why its walk failed (hang or crash)

_WALK = """
import sys, h5py
def walk(path):
    with h5py.File(path, "r") as f:
        dict(f.attrs)
        def visit(name, link):
            if not isinstance(link, h5py.HardLink):
                return
            obj = f.get(name)
            dict(obj.attrs)
            if isinstance(obj, h5py.Dataset):
                obj.shape, obj.dtype, obj.chunks, obj.external, obj.is_virtual
                plist = obj.id.get_create_plist()
                [plist.get_filter(i) for i in range(plist.get_nfilters())]
                if obj.chunks is not None and not obj.is_virtual and not obj.external:
                    obj.id.get_num_chunks()
                    obj.id.chunk_iter(lambda info: None)
                if h5py.check_string_dtype(obj.dtype) is not None and obj.size < 10_000_000 and not obj.external:
                    obj[()]
        f.visititems_links(visit)
"""


def _walk_here(path: str) -> None:
    namespace: dict = {}
    exec(_WALK, namespace)  # the same code in a forked child and in a spawned interpreter
    namespace["walk"](path)


def probe(path: Path) -> None:
    """Raise :class:`SessionError` when walking ``path``'s metadata hangs or crashes HDF5."""
    st = os.stat(path)
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    if key in _probed:
        return
    if key in _damaged:  # the same bytes hung or crashed HDF5 before: do not wait for it again
        raise SessionError(_damaged[key])
    if hasattr(os, "fork") and threading.active_count() == 1:
        status = _run_forked(str(path))
    elif hasattr(os, "fork"):  # other threads may hold h5py's lock: a single-threaded server forks instead
        status = _SERVER.run(str(path))
    else:
        status = _run_spawned(str(path))
    if status == "timeout":
        _damaged[key] = (
            f"{path}: HDF5 did not finish reading the file's structure within {PROBE_TIMEOUT_S:g} s (damaged "
            "metadata can make it loop); the file is corrupted, restore it from a backup or re-export it"
        )
    elif status.startswith("signal"):
        _damaged[key] = (
            f"{path}: HDF5 crashes ({status}) reading the file's structure; the file is corrupted, "
            "restore it from a backup or re-export it"
        )
    else:
        _probed.add(key)
        return
    raise SessionError(_damaged[key])


def _run_forked(path: str, timeout_s: float | None = None, walk: Callable[[str], None] | None = None) -> str:
    """Walk ``path`` in a forked child; ``"ok"``, ``"timeout"`` (after ``timeout_s``) or ``"signal NAME"``."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # child: walk, exit without running the parent's cleanup
        # no cycle collection here: an LSL inlet or outlet the parent left for the collector,
        # destroyed in this child (where liblsl's threads do not exist), segfaults it
        gc.disable()
        code = 0
        try:
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
            signal.alarm(0)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            (walk or _walk_here)(path)
        except BaseException:
            code = 3
        os._exit(code)
    deadline = time.monotonic() + (PROBE_TIMEOUT_S if timeout_s is None else timeout_s)
    delay = 0.0005
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return "timeout"
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
    if os.WIFSIGNALED(status):
        return f"signal {signal.Signals(os.WTERMSIG(status)).name}"
    return "ok"


def _serve() -> None:
    """The probe server's loop (in its own single-threaded interpreter): fork a walking child per request."""
    namespace: dict = {}
    exec(_WALK, namespace)
    for line in sys.stdin:
        timeout_s, _, path_hex = line.strip().partition(" ")
        path = os.fsdecode(bytes.fromhex(path_hex))
        sys.stdout.write(_run_forked(path, float(timeout_s), namespace["walk"]) + "\n")
        sys.stdout.flush()


class _ProbeServer:
    """A single-threaded interpreter that forks a child per probe (for processes with other threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self.started = 0  # servers started by this process (a test reads it)

    def _start(self) -> subprocess.Popen:
        code = "import sys; from mecg.session.probe import _serve; _serve()"
        self.started += 1
        return subprocess.Popen(
            [sys.executable, "-c", code],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
            start_new_session=True,  # a Ctrl-C in the terminal is for this process, which closes the pipe
        )

    def run(self, path: str) -> str:
        """``path``'s probe status; a server that fails to answer is replaced, its probe run spawned."""
        with self._lock:
            proc = self._proc
            if proc is None or proc.poll() is not None:
                proc = self._proc = self._start()
            try:
                assert proc.stdin is not None and proc.stdout is not None
                proc.stdin.write(f"{PROBE_TIMEOUT_S!r} {os.fsencode(path).hex()}\n")
                proc.stdin.flush()
                # the server answers within the walk's time limit; one that does not is replaced
                ready, _, _ = select.select([proc.stdout], [], [], PROBE_TIMEOUT_S + 10.0)
                answer = proc.stdout.readline().strip() if ready else ""
            except (OSError, ValueError):
                answer = ""
            if answer == "ok" or answer == "timeout" or answer.startswith("signal "):
                return answer
            self._proc = None  # the server itself died (it never walks a file itself): not the file's fault
            proc.kill()
            proc.wait()
        return _run_spawned(path)

    def close(self) -> None:
        """End the server (it exits when its pipe closes); at exit, so no server outlives this process."""
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            assert proc.stdin is not None
            proc.stdin.close()
            try:
                proc.wait(timeout=PROBE_TIMEOUT_S + 1.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


_SERVER = _ProbeServer()
atexit.register(_SERVER.close)


def _run_spawned(path: str) -> str:
    code = _WALK + "\nwalk(sys.argv[1])\n"
    try:
        r = subprocess.run(
            [sys.executable, "-c", code, path], capture_output=True, timeout=PROBE_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        return "timeout"
    if r.returncode < 0:
        return f"signal {signal.Signals(-r.returncode).name}"
    return "ok"
