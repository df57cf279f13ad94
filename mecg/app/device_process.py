"""The devices the lab app starts, run in a child process so they never compete with the window.

A :class:`~mecg.acquire.rig.Rig` (a simulated lab, or the drivers of an amplifier, a camera and a
trigger box) pushes to LSL from threads. In the app's own process those threads would share one
interpreter lock with the window and the recorder: the simulated camera, which draws every face in
Python, skipped about a fifth of its frames at 150 fps 640x480 that way. :class:`DeviceProcess`
starts the rig in a ``spawn`` child and talks to it over a pipe:

- the child answers the rig's description lines and stream source ids, or the error that stopped
  it from starting (re-raised in the app with its message);
- ``journal(path)``: when a simulated recording starts, the child journals the participant's
  expressions beside it as the camera shows them (``S.sim-annotations.jsonl``), so a killed app
  leaves them for ``mecg record --recover-annotations``;
- ``annotate(path)``: after a simulated recording, the child (which knows the simulated camera)
  stores the participant's expressions as the session's annotations and drops the journal;
- ``close_device(name)``: stops one driver (``"ecg"``, ``"camera"``, ``"trigger"``);
- ``close()``: stops everything. If the app dies, the pipe closes and the child stops its rig;
- :meth:`DeviceProcess.problems`: what the devices report (a camera error, ...), sent by the child
  once a second on a second pipe and read without waiting.

Qt-free; the LSL configuration (``LSLAPICFG``) is inherited through the environment.
"""

from __future__ import annotations

import multiprocessing as mp
import signal
import threading
from multiprocessing.connection import Connection
from pathlib import Path

from mecg.acquire.rig import RigConfig
from mecg.errors import MecgError

#: Seconds a command may take before the child is considered hung (and killed).
REPLY_S = 30.0
#: Seconds to wait for the child to annotate a session; it is never killed while it writes the file.
ANNOTATE_S = 600.0


class DeviceProcessError(MecgError):
    """The device process failed or stopped answering."""


def _report(rig, reports: Connection, stop: threading.Event) -> None:
    """Child thread: send the rig's problems once a second."""
    while not stop.wait(1.0):
        try:
            reports.send(rig.problems())
        except (OSError, ValueError):
            return


def _serve(config: RigConfig, conn: Connection, reports: Connection) -> None:
    """The child: start the rig, then answer commands until told to stop or the app goes away."""
    # Ctrl-C in a terminal (or a SIGTERM to the process group) reaches this child too: the app closes
    # the recording and then stops this child itself (it still needs it to annotate a simulated
    # session). The child also ends when the app is gone (the pipe closes); SIGKILL always works.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from mecg.acquire.rig import Rig

    try:
        rig = Rig(config).start()
    except BaseException as exc:  # sent to the app, which shows it
        conn.send(("error", type(exc).__name__, str(exc) or repr(exc), isinstance(exc, MecgError)))
        return
    conn.send(("ok", rig.describe(), dict(rig.source_ids)))
    stop = threading.Event()
    journals: dict = {}  # recording path -> its expression journal (simulated participant)
    threading.Thread(target=_report, args=(rig, reports, stop), name="reports", daemon=True).start()
    try:
        while True:
            try:
                cmd, arg = conn.recv()
            except (EOFError, OSError):  # the app is gone
                return
            if cmd == "stop":
                return
            try:
                if cmd == "annotate":
                    conn.send(("ok", _annotate(rig, Path(arg), journals)))
                elif cmd == "journal":
                    conn.send(("ok", _journal(rig, Path(arg), journals)))
                elif cmd == "close_device":
                    drv = getattr(rig, arg, None) if arg in ("ecg", "camera", "trigger") else None
                    if drv is None:
                        raise MecgError(f"no device {arg!r} is running")
                    drv.close()
                    conn.send(("ok", None))
                else:
                    raise MecgError(f"unknown command {cmd!r}")
            except Exception as exc:  # answered; the devices keep running
                conn.send(("error", type(exc).__name__, str(exc) or repr(exc), isinstance(exc, MecgError)))
    finally:
        stop.set()
        rig.close()
        try:
            conn.send(("ok", None))
        except (OSError, EOFError, ValueError):
            pass


def _annotate(rig, path: Path, journals: dict) -> str:
    """Write the simulated participant's expressions into ``path``; the line to show ('' if not simulated)."""
    if rig.simulation is None or rig.simulation.camera is None:
        return ""
    from mecg.acquire.sim_truth import annotate_simulated

    counts = annotate_simulated(path, rig.simulation.camera)
    journal = journals.pop(str(path), None)
    if journal is not None:  # stored: the journal kept for a crash is not needed any more
        journal.close(remove=True)
    return (
        "" if counts is None else f"annotations of the simulated participant written: {counts[0]} ME, {counts[1]} MaE"
    )


def _journal(rig, path: Path, journals: dict) -> str:
    """Start journaling the simulated participant's expressions beside ``path`` (they survive a SIGKILL)."""
    if rig.simulation is None or rig.simulation.camera is None:
        return ""
    from mecg.acquire.sim_truth import start_journal

    for old in journals.values():  # one recording at a time: an earlier journal that was never annotated stays
        old.close(remove=False)
    journals.clear()
    journals[str(path)] = start_journal(path, rig.simulation.camera)
    return str(journals[str(path)].path)


class DeviceProcess:
    """A :class:`~mecg.acquire.rig.Rig` in a child process (see the module docstring).

    The constructor blocks until the devices run (or raises their error, e.g. a wrong serial port).
    """

    def __init__(self, config: RigConfig, start_s: float = 60.0) -> None:
        self.config = config
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._reports, child_reports = ctx.Pipe(duplex=False)
        self._lock = threading.Lock()  # one command at a time (the app calls from several threads)
        self._problems: list[str] = []
        self.process = ctx.Process(
            target=_serve, args=(config, child, child_reports), name="mecg-app-devices", daemon=True
        )
        self.process.start()
        child.close()
        child_reports.close()
        reply = self._receive(start_s, "starting the devices")
        self.lines: list[str] = list(reply[1])
        self.source_ids: dict[str, str] = dict(reply[2])

    @property
    def pid(self) -> int | None:
        """The child's process id."""
        return self.process.pid

    @property
    def alive(self) -> bool:
        """True while the child runs."""
        return self.process.is_alive()

    def _receive(self, timeout_s: float, what: str, kill: bool = True) -> tuple:
        try:
            ready = self._conn.poll(timeout_s)
            reply = self._conn.recv() if ready else None
        except (EOFError, OSError):
            reply = None
        if reply is None:
            code = self.process.exitcode
            if kill or not self.process.is_alive():
                self.process.kill()
            state = f"exited with code {code}" if code is not None else f"did not answer in {timeout_s:g} s"
            raise DeviceProcessError(f"{what}: the device process {state}; see the terminal for its output")
        if reply[0] == "error":
            _, name, message, user_error = reply
            raise DeviceProcessError(message if user_error else f"{what}: {name}: {message}")
        return reply

    def _call(self, cmd: str, arg: object, what: str, timeout_s: float = REPLY_S, kill: bool = True) -> object:
        with self._lock:
            if not self.alive:
                raise DeviceProcessError(
                    f"{what}: the device process is not running (exit code {self.process.exitcode})"
                )
            try:
                self._conn.send((cmd, arg))
            except (OSError, ValueError) as exc:
                raise DeviceProcessError(f"{what}: the device process cannot be reached ({exc})") from None
            return self._receive(timeout_s, what, kill)[1]

    def problems(self) -> list[str]:
        """Device-side trouble worth showing (camera error, ...); never waits."""
        try:
            while self._reports.poll(0):
                self._problems = list(self._reports.recv())
        except (EOFError, OSError):
            pass
        if not self.alive:
            return [f"the device process stopped (exit code {self.process.exitcode}): restart the devices"]
        return list(self._problems)

    def journal(self, path: str | Path) -> str:
        """Journal the simulated participant's expressions beside ``path`` while it records ('' if not simulated)."""
        return str(self._call("journal", str(path), "starting the expression journal") or "")

    def annotate(self, path: str | Path) -> str:
        """Write a simulated participant's expressions into the closed session ``path``; a line to show."""
        # never killed on a timeout: the child may be writing into the recorded file
        return str(self._call("annotate", str(path), "annotating the simulated session", ANNOTATE_S, kill=False) or "")

    def close_device(self, name: str) -> None:
        """Stop one driver (``"ecg"``, ``"camera"`` or ``"trigger"``); its stream stalls."""
        self._call("close_device", name, f"stopping the {name}")

    def close(self, timeout_s: float = 15.0) -> None:
        """Stop every device and the child (killed if it does not stop within ``timeout_s``)."""
        with self._lock:
            if self.alive:
                try:
                    self._conn.send(("stop", None))
                    if self._conn.poll(timeout_s):
                        self._conn.recv()
                except (OSError, EOFError, ValueError):
                    pass
            self.process.join(timeout_s)
            if self.process.is_alive():
                self.process.kill()
                self.process.join(5.0)
            self._conn.close()
            self._reports.close()
