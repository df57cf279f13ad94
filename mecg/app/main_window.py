"""The supervisor's window: live view, streams and devices, recording and health, the check after it.

Everything that blocks (starting devices, finding streams, opening inlets, closing the file,
checking it) runs in a worker thread; the UI thread only draws. Two timers drive the display:
the live view at ``live_hz`` (default 20 Hz) and the status / health table at 2 Hz. Closing
the window while recording asks first and always closes the file cleanly (complete).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import pylsl
from PySide6.QtCore import QByteArray, Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import QLabel, QMainWindow, QMessageBox, QSplitter, QVBoxLayout, QWidget

from mecg.acquire.readable import hms, size_text
from mecg.acquire.rig import RigConfig
from mecg.app.lab import Lab, find_streams
from mecg.app.live_view import LiveView
from mecg.app.recording_panel import RecordingPanel
from mecg.app.session_check import check_session, format_check
from mecg.app.settings import AppSettings
from mecg.app.streams_panel import StreamsPanel
from mecg.app.worker import WorkerPool
from mecg.errors import MecgError

#: Keyboard shortcuts (also shown on the buttons' tooltips and in docs/app.md).
START_SHORTCUT = "Ctrl+R"
STOP_SHORTCUT = "Ctrl+E"
REFRESH_SHORTCUT = "F5"


def explain(exc: BaseException) -> str:
    """A message for people: the project's errors say what to do; anything else gets its type named."""
    if isinstance(exc, MecgError):
        return str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename or ''}".rstrip(": ")
    return f"{type(exc).__name__}: {exc}"


class MainWindow(QMainWindow):
    """The lab app's window. ``settings``: where to remember things; ``live_hz``: live view refreshes a second;
    ``interactive``: False sends errors to stderr instead of message boxes (scripted runs)."""

    def __init__(self, settings: AppSettings, live_hz: float = 20.0, interactive: bool = True) -> None:
        super().__init__()
        self.settings = settings
        self.interactive = interactive
        self.lab = Lab(min_free_mb=float(settings.get("min_free_mb")))
        self.busy = False
        self.errors: list[str] = []  # every error shown, for scripts and tests
        self.last_check: dict | None = None
        self.workers = WorkerPool(self)
        self._queue: list[tuple[str, Callable[[], object], Callable | None]] = []
        self._closing = False
        self.record_when_ready = False
        self.setWindowTitle("mecg — lab recording")

        self.start_action = QAction("● Record", self)
        self.start_action.setShortcut(QKeySequence(START_SHORTCUT))
        self.start_action.setToolTip(f"start recording the ticked streams ({START_SHORTCUT})")
        self.start_action.triggered.connect(self.start_recording)
        self.stop_action = QAction("■ Stop", self)
        self.stop_action.setShortcut(QKeySequence(STOP_SHORTCUT))
        self.stop_action.setToolTip(f"stop recording and close the file ({STOP_SHORTCUT})")
        self.stop_action.triggered.connect(self.stop_recording)
        self.refresh_action = QAction("Refresh streams", self)
        self.refresh_action.setShortcut(QKeySequence(REFRESH_SHORTCUT))
        self.refresh_action.triggered.connect(self.refresh_streams)
        quit_action = QAction("Quit", self)
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        for a in (self.start_action, self.stop_action, self.refresh_action, quit_action):
            a.setShortcutContext(Qt.ShortcutContext.ApplicationShortcut)
            self.addAction(a)
        menu = self.menuBar().addMenu("&Recording")
        for a in (self.start_action, self.stop_action, self.refresh_action, quit_action):
            menu.addAction(a)

        self.live = LiveView()
        self.streams = StreamsPanel()
        self.recording_panel = RecordingPanel(self.start_action, self.stop_action)
        left = QSplitter(Qt.Orientation.Vertical)
        left.addWidget(self.live)
        left.addWidget(self.streams)
        left.setStretchFactor(0, 3)
        left.setStretchFactor(1, 2)
        main = QSplitter(Qt.Orientation.Horizontal)
        main.addWidget(left)
        main.addWidget(self.recording_panel)
        main.setStretchFactor(0, 3)
        main.setStretchFactor(1, 2)
        main.setSizes([920, 620])
        central = QWidget()
        QVBoxLayout(central).addWidget(main)
        self.setCentralWidget(central)
        self.cost_label = QLabel("")
        self.statusBar().addPermanentWidget(self.cost_label)

        self.streams.refresh_requested.connect(self.refresh_streams)
        self.streams.selection_changed.connect(self.watch_selection)
        self.streams.start_devices_requested.connect(self.start_devices)
        self.streams.stop_devices_requested.connect(self.stop_devices)
        self.recording_panel.open_folder_requested.connect(self.recording_panel.open_folder)

        self._load_settings()
        self.live_timer = QTimer(self)
        self.live_timer.setInterval(max(1, round(1000 / live_hz)))
        self.live_timer.timeout.connect(self._tick_live)
        self.live_timer.start()
        self.status_timer = QTimer(self)
        self.status_timer.setInterval(500)
        self.status_timer.timeout.connect(self._tick_status)
        self.status_timer.start()
        self._cost_t0 = (time.monotonic(), 0.0)
        self._update_actions()

    # -- settings ---------------------------------------------------------------------------------
    def _load_settings(self) -> None:
        s, sp, rp = self.settings, self.streams, self.recording_panel
        rp.subject.setText(str(s.get("subject")))
        rp.notes.setPlainText(str(s.get("notes")))
        rp.out_dir.setText(str(s.get("out_dir")))
        sp.sim_fps.setValue(float(s.get("sim_fps")))
        sp.sim_size.setText(str(s.get("sim_size")))
        sp.sim_seed.setValue(int(s.get("sim_seed")))
        sp.ecg_port.setText(str(s.get("ecg_port")))
        sp.ecg_protocol.setCurrentText(str(s.get("ecg_protocol")))
        sp.camera.setText(str(s.get("camera")))
        sp.camera_fps.setValue(float(s.get("camera_fps")))
        sp.camera_size.setText(str(s.get("camera_size")))
        sp.camera_color.setChecked(bool(s.get("camera_color")))
        sp.trigger_port.setText(str(s.get("trigger_port")))
        sp.trigger_gap.setText(str(s.get("trigger_gap")))
        geom = s.geometry()
        if isinstance(geom, QByteArray) and not geom.isEmpty():
            self.restoreGeometry(geom)
        else:
            self.resize(1560, 960)

    def save_settings(self) -> None:
        """Remember the window's fields and geometry."""
        s, sp, rp = self.settings, self.streams, self.recording_panel
        for key, value in (
            ("subject", rp.subject.text()),
            ("notes", rp.notes.toPlainText()),
            ("out_dir", rp.out_dir.text()),
            ("sim_fps", sp.sim_fps.value()),
            ("sim_size", sp.sim_size.text()),
            ("sim_seed", sp.sim_seed.value()),
            ("ecg_port", sp.ecg_port.text()),
            ("ecg_protocol", sp.ecg_protocol.currentText()),
            ("camera", sp.camera.text()),
            ("camera_fps", sp.camera_fps.value()),
            ("camera_size", sp.camera_size.text()),
            ("camera_color", sp.camera_color.isChecked()),
            ("trigger_port", sp.trigger_port.text()),
            ("trigger_gap", sp.trigger_gap.text()),
        ):
            s.set(key, value)
        s.set_geometry(self.saveGeometry())
        s.sync()

    def apply_rig_options(self, cfg: RigConfig) -> None:
        """Put device options (from the command line) into the panel's fields."""
        sp = self.streams
        if cfg.simulate:
            sp.sim_fps.setValue(cfg.fps or 150.0)
            w, h = cfg.size or (640, 480)
            sp.sim_size.setText(f"{w}x{h}")
            sp.sim_seed.setValue(cfg.seed)
            return
        sp.ecg_port.setText(cfg.ecg_port or "")
        sp.ecg_protocol.setCurrentText(cfg.ecg_protocol)
        sp.camera.setText(cfg.camera or "")
        sp.camera_fps.setValue(cfg.fps or 0.0)
        sp.camera_size.setText(f"{cfg.size[0]}x{cfg.size[1]}" if cfg.size else "")
        sp.camera_color.setChecked(cfg.color)
        sp.trigger_port.setText(cfg.trigger_port or "")
        sp.trigger_gap.setText(f"{cfg.trigger_gap_s[0]:g}:{cfg.trigger_gap_s[1]:g}")

    # -- running blocking work ----------------------------------------------------------------------
    def _run(self, what: str, fn: Callable[[], object], then: Callable[[object], None] | None = None) -> None:
        """Run ``fn`` in a worker (one at a time, queued); ``then(result)`` on the UI thread; errors shown."""
        if self.busy:
            self._queue.append((what, fn, then))
            return
        self.busy = True
        self._update_actions()
        self.statusBar().showMessage(what + " …")

        def done(result: object) -> None:
            self.busy = False
            self.statusBar().clearMessage()
            try:
                if then is not None:
                    then(result)
            finally:
                self._next()

        def failed(exc: BaseException) -> None:
            self.busy = False
            self.statusBar().clearMessage()
            self.show_error(what, exc)
            self._next()

        self.workers.submit(fn, done, failed)

    def _next(self) -> None:
        self._update_actions()
        if self._queue and not self._closing:
            what, fn, then = self._queue.pop(0)
            self._run(what, fn, then)

    def show_error(self, what: str, exc: BaseException | str) -> None:
        """Tell the user what went wrong and what to do: a message box (or stderr when not interactive)."""
        text = exc if isinstance(exc, str) else explain(exc)
        self.errors.append(f"{what}: {text}")
        self.recording_panel.message(f"[{time.strftime('%H:%M:%S')}] error: {what}: {text}")
        if self.interactive:
            QMessageBox.critical(self, f"mecg — {what}", f"{what} failed:\n\n{text}")
        else:
            print(f"mecg app: {what}: {text}", file=sys.stderr, flush=True)

    def _update_actions(self) -> None:
        rec = self.lab.recording
        self.start_action.setEnabled(not self.busy and not rec)
        self.stop_action.setEnabled(rec and not self.busy)
        self.streams.set_busy(self.busy, rec)

    # -- devices and streams ----------------------------------------------------------------------
    def start_devices(self, cfg: RigConfig) -> None:
        """Start a simulated lab or drivers (in a worker), then list the streams and watch the ticked ones."""
        self.live.clear()

        def then(lines: object) -> None:
            self.streams.set_devices(list(lines), self.lab.device_source_ids)
            for line in lines:
                self.recording_panel.message(line)
            self.refresh_streams()

        self._run("starting the devices", lambda: self.lab.start_devices(cfg), then)

    def stop_devices(self) -> None:
        """Stop the devices this app started."""

        def then(_r: object) -> None:
            self.streams.set_devices([], set())
            self.refresh_streams()

        self._run("stopping the devices", self.lab.stop_devices, then)

    def refresh_streams(self) -> None:
        """Look for LSL streams (1 s, in a worker), list them, and watch the ticked ones."""
        want = self.lab.device_source_ids
        # streams of devices just started may take a moment to be seen (device processes start slowly on a
        # loaded machine); a recording that starts by itself (--record) waits longer, so that it never
        # starts without a device this app started
        wait_s = 30.0 if self.record_when_ready else 4.0

        def find() -> object:
            found = find_streams(1.0)
            end = time.monotonic() + wait_s
            while want - {s.source_id for s in found} and time.monotonic() < end:
                found = find_streams(1.0)
            return found

        def then(found: object) -> None:
            self.streams.set_streams(list(found))
            absent = want - {s.source_id for s in found}  # type: ignore[attr-defined]
            if self.record_when_ready and absent:
                self.record_when_ready = False
                self.show_error(
                    "starting the recording",
                    f"the stream of {', '.join(sorted(absent))} did not appear within {wait_s:g} s: not recording "
                    "without it; check the device's messages above, then press Refresh and Record",
                )
            self.watch_selection()

        self._run("looking for LSL streams", find, then)

    def watch_selection(self) -> None:
        """Watch (monitor mode) the ticked streams, unless recording."""
        if self.lab.recording:
            return
        selection = self.streams.selection()

        def then(_st: object) -> None:
            if self.record_when_ready and self.lab.engine is not None:
                self.record_when_ready = False
                self.start_recording()

        self._run("watching the ticked streams", lambda: self.lab.monitor(selection), then)

    # -- recording --------------------------------------------------------------------------------
    def session_path(self) -> Path:
        """The next file: ``<folder>/<subject>_<YYYYmmdd-HHMMSS>.h5``; the folder is created. Raises MecgError."""
        from mecg.acquire.naming import auto_session_path

        folder = Path(self.recording_panel.out_dir.text().strip() or ".").expanduser()
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise MecgError(
                f"cannot create the output folder {folder}: {exc.strerror or exc}; choose another folder"
            ) from None
        return auto_session_path(folder, self.recording_panel.subject.text().strip())

    def start_recording(self) -> None:
        """Record the ticked streams to a new file in the output folder (the Record button, Ctrl+R)."""
        if self.lab.recording or self.busy:
            return
        if not self.streams.selection():
            self.show_error(
                "starting the recording",
                "no stream is ticked for recording: start the devices (or their drivers elsewhere), press "
                "Refresh and tick the streams to record",
            )
            return
        try:
            path = self.session_path()
        except MecgError as exc:
            self.show_error("starting the recording", exc)
            return
        subject = self.recording_panel.subject.text().strip()
        notes = self.recording_panel.notes.toPlainText()
        self.save_settings()
        self.recording_panel.health.forget()

        def then(st: object) -> None:
            self.recording_panel.message(f"[{time.strftime('%H:%M:%S')}] recording to {path}")
            self._tick_status()

        self._run("starting the recording", lambda: self.lab.start_recording(path, subject, notes), then)

    def stop_recording(self) -> None:
        """Stop, close the file cleanly, then check it (the Stop button, Ctrl+E)."""
        if not self._engine_has_file():
            return
        self._run("stopping the recording", self.lab.stop_recording, self._stopped)

    def _engine_has_file(self) -> bool:
        e = self.lab.engine
        return e is not None and not e.monitoring

    def _stopped(self, final: object) -> None:
        for m in self.lab.messages:
            if m:
                self.recording_panel.message(m)
        if final is None:
            return
        state = "complete" if final.complete else "NOT complete"
        self.recording_panel.message(
            f"[{time.strftime('%H:%M:%S')}] stopped: {hms(final.elapsed_s)}, {size_text(final.file_bytes)}, "
            f"file {state}: {final.path}"
        )
        if final.error:
            self.show_error("recording", final.error)
        self.check_file(Path(final.path))

    def check_file(self, path: Path) -> None:
        """Validate ``path`` and run the sync report on it (in a worker); show the result."""
        self.recording_panel.show_check(f"checking {path.name} (validate, sync) …", path.parent)

        def then(report: object) -> None:
            self.last_check = dict(report)
            self.recording_panel.show_check(format_check(self.last_check), path.parent)

        self._run(f"checking {path.name}", lambda: check_session(path), then)

    # -- timers -----------------------------------------------------------------------------------
    def _tick_live(self) -> None:
        e = self.lab.engine
        if e is None:
            return
        analysis = self.lab.analysis
        if analysis is not None:
            self.live.show_candidates(analysis.events(), e.start_lsl)
        self.live.refresh(e.previews(), pylsl.local_clock())

    def _tick_status(self) -> None:
        e = self.lab.engine
        st = e.status() if e is not None else None
        recording = e is not None and not e.monitoring
        self.recording_panel.show_status(st, recording)
        if e is not None:
            for m in e.events():
                self.recording_panel.message(m)
            if recording and e.failure is not None and not self.busy:
                self.stop_recording()  # the recorder stopped itself (disk full): close up, check, tell
        devices = self.lab.devices
        for p in devices.problems() if devices is not None else ():
            self.statusBar().showMessage(f"device: {p}", 5000)
        t0, c0 = self._cost_t0
        now = time.monotonic()
        if now - t0 >= 2.0:
            share = (self.live.cpu_s - c0) / (now - t0) * 100
            self.cost_label.setText(f"live view {share:.1f}% of a core")
            self._cost_t0 = (now, self.live.cpu_s)
        self._update_actions()

    # -- closing ----------------------------------------------------------------------------------
    def ask(self, title: str, text: str) -> bool:
        """A yes/no question (Yes = True)."""
        answer = QMessageBox.question(
            self,
            title,
            text,
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        return answer == QMessageBox.StandardButton.Yes

    def close_without_asking(self) -> None:
        """Close now (SIGINT / SIGTERM / --quit-after): a recording is stopped and its file closed cleanly."""
        self._force_close = True
        self.close()

    def closeEvent(self, event: QCloseEvent) -> None:
        if self._closing:
            event.accept()
            return
        recording = self._engine_has_file()
        if recording and not getattr(self, "_force_close", False):
            el = self.lab.status()
            elapsed = hms(el.elapsed_s) if el is not None else "?"
            if not self.ask(
                "Stop the recording?",
                f"A recording is running ({elapsed}).\n\nStop it, close the file cleanly and quit?",
            ):
                event.ignore()
                return
        self._closing = True
        self._queue.clear()
        self.live_timer.stop()
        self.status_timer.stop()
        self.workers.join(15.0)  # let running work finish (a start that is opening inlets)
        try:
            self.save_settings()
        except Exception:
            pass
        final = self.lab.close()
        self.live.shutdown()
        if final is not None:
            state = "complete" if final.complete else "NOT complete"
            print(f"mecg app: recording stopped at close: {final.path} ({state})", file=sys.stderr, flush=True)
            for m in self.lab.messages:  # e.g. whether the simulated participant's annotations were written
                print(f"mecg app: {m}", file=sys.stderr, flush=True)
        event.accept()


def install_signal_handlers(window: MainWindow) -> dict:
    """SIGINT / SIGTERM close the window cleanly (a recording is stopped, its file closed complete).

    Returns the previous handlers, for :func:`restore_signal_handlers` once the window is gone.
    """
    import signal
    import weakref

    ref = weakref.ref(window)

    def handler(signum: int, _frame: object) -> None:
        w = ref()
        if w is not None:
            QTimer.singleShot(0, w.close_without_asking)

    return {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}


def restore_signal_handlers(old: dict) -> None:
    """Put back the handlers :func:`install_signal_handlers` replaced."""
    import signal

    for sig, h in old.items():
        signal.signal(sig, h)
