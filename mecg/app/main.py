"""The lab recording app's launcher: build the main window, start what was asked for, run Qt's event loop.

The command line (``mecg app`` / ``mecg-app``) is parsed by :mod:`mecg.cli.app`, which finds
:func:`run_app` through the ``mecg.frontends`` entry point ``app``; this room never imports the CLI
(docs/architecture.md). Also the Qt helpers the review window shares (:func:`quiet_qt_messages`,
:func:`dispose`, :func:`check_display`).
"""

from __future__ import annotations

import os
import sys
import weakref
from typing import TYPE_CHECKING

from mecg.errors import MecgError

if TYPE_CHECKING:
    from mecg.acquire.rig import RigConfig


def quiet_qt_messages() -> None:
    """Drop Qt's harmless per-resize warning of the offscreen platform; pass every other message on."""
    from PySide6.QtCore import qInstallMessageHandler

    def handler(_mode: object, _context: object, message: str) -> None:
        if "propagateSizeHints" not in message:
            print(message, file=sys.stderr)

    qInstallMessageHandler(handler)


def dispose(widget: object) -> None:
    """Delete a top-level widget (and its pyqtgraph items) now, while Qt runs, not in Python's final cleanup."""
    import gc

    from PySide6.QtWidgets import QApplication

    widget.deleteLater()
    QApplication.processEvents()
    QApplication.sendPostedEvents(None, 0)
    gc.collect()


def check_display(env: dict[str, str] | None = None) -> None:
    """Refuse to start on Linux with no display to open, before Qt aborts the process (MecgError)."""
    env = dict(os.environ) if env is None else env
    if not sys.platform.startswith("linux") or env.get("QT_QPA_PLATFORM"):
        return
    if not env.get("DISPLAY") and not env.get("WAYLAND_DISPLAY"):
        raise MecgError(
            "no display to open the window on (neither DISPLAY nor WAYLAND_DISPLAY is set): run it on the "
            "lab computer's desktop, over `ssh -X`, under `xvfb-run`, or with QT_QPA_PLATFORM=offscreen "
            "(no window; with --quit-after and --screenshot)"
        )


def run_app(
    rig: RigConfig | None = None,
    *,
    out_dir: str | None = None,
    subject: str | None = None,
    notes: str | None = None,
    min_free_mb: float | None = None,
    record: bool = False,
    settings: str | None = None,
    live_hz: float = 20.0,
    quit_after: float | None = None,
    screenshot: str | None = None,
    live_spot: str | None = None,
    ccf_eta: float | None = None,
) -> int:
    """Build the window, start what is asked for, run the event loop; the exit code.

    Parameters
    ----------
    rig
        Devices to start on launch (nothing when None or empty: the app watches the LSL streams it sees).
    out_dir, subject, notes, min_free_mb
        Override the remembered session folder, participant id, notes and free-space floor (MB).
    record
        Start recording as soon as the devices' streams are seen.
    settings
        INI file for the remembered settings (default: the user's).
    live_hz
        Live view refreshes per second (Hz).
    quit_after
        Close after this many seconds (a recording is stopped and closed cleanly); exit code 1 when
        the window showed errors.
    screenshot
        PNG saved just before ``quit_after`` closes the window.
    live_spot, ccf_eta
        Spot live while recording: ``"baseline"`` or a CMCL-Net checkpoint (None: off), and the CCF factor
        (default: 2 with a model; the baseline reports the HR slope without rejecting); see docs/spotting.md.

    The LSL configuration must be chosen before this is called (pylsl reads it on import).
    """
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from mecg.app.main_window import MainWindow, install_signal_handlers, restore_signal_handlers
    from mecg.app.qt_check import check_qt_binding
    from mecg.app.settings import AppSettings

    check_display()
    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setApplicationName("mecg-app")
    app.setOrganizationName("mecg")
    quiet_qt_messages()
    check_qt_binding()  # before any window: a leaking PySide6 would abort mid-recording
    scripted = quit_after is not None
    win = MainWindow(AppSettings(settings), live_hz=live_hz, interactive=not scripted)
    rp = win.recording_panel
    if out_dir is not None:
        rp.out_dir.setText(out_dir)
    if subject is not None:
        rp.subject.setText(subject)
    if notes is not None:
        rp.notes.setPlainText(notes)
    if min_free_mb is not None:
        win.lab.min_free_mb = min_free_mb
    win.lab.live_spot, win.lab.ccf_eta = live_spot, ccf_eta
    win.show()
    old_handlers = install_signal_handlers(win)
    win.record_when_ready = record
    if rig is not None and not rig.empty:
        win.apply_rig_options(rig)
        win.start_devices(rig)
    else:
        win.refresh_streams()
    if scripted:
        ref = weakref.ref(win)  # no strong reference from the timer: the window is freed before Python exits

        def finish() -> None:
            w = ref()
            if w is None:
                return
            if screenshot:
                w.grab().save(screenshot)
                print(f"mecg app: screenshot saved to {screenshot}", file=sys.stderr, flush=True)
            if w.record_when_ready:  # --record, but the devices' streams were not all seen yet: say so, exit 1
                w.show_error(
                    "recording",
                    f"--quit-after {quit_after:g} s came before the devices' streams were ready: nothing was "
                    "recorded; give --quit-after more time",
                )
            w.close_without_asking()

        QTimer.singleShot(round(quit_after * 1000), finish)
    app.exec()
    restore_signal_handlers(old_handlers)
    code = 1 if scripted and win.errors else 0
    dispose(win)
    return code
