"""``mecg-app`` / ``mecg app``: start the lab recording app.

``--simulate`` (or the device options of ``mecg record``) starts devices on launch; ``--record``
starts recording once their streams are watched; ``--quit-after S`` closes the app after S
seconds (a recording is stopped and closed cleanly), saving ``--screenshot PNG`` just before;
``--settings FILE.ini`` keeps the remembered settings in that file instead of the user's.
"""

from __future__ import annotations

import argparse
import os
import sys
import weakref
from collections.abc import Sequence

from mecg.cli.argtypes import positive_float
from mecg.cli.record import add_device_arguments, rig_config
from mecg.cli.stream import add_lsl_options, apply_lsl_options
from mecg.errors import MecgError

DESCRIPTION = (
    "The lab recording app: LSL streams and devices, a live view (camera, ECG with R-peaks, heart rate, "
    "triggers), recording with per-stream health through the same engine as mecg record, and a check of "
    "each file afterwards."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``mecg app`` / ``mecg-app``."""
    o = p.add_argument_group("session (remembered between runs; these override the remembered values)")
    o.add_argument("--out-dir", metavar="DIR", help="folder for the session files (created if needed)")
    o.add_argument("--subject", default=None, help="pseudonymous participant id, e.g. P-0042 (never a name)")
    o.add_argument("--notes", default=None, help="free text kept with the session")
    o.add_argument(
        "--min-free-mb", type=float, default=None, help="refuse to start, or stop, below this free space (MB)"
    )
    add_device_arguments(p)
    a = p.add_argument_group("app")
    a.add_argument("--record", action="store_true", help="start recording as soon as the devices' streams are seen")
    a.add_argument("--settings", metavar="FILE.ini", help="keep the settings in this file (default: the user's)")
    a.add_argument("--live-hz", type=positive_float, default=20.0, help="live view refreshes a second (default 20)")
    a.add_argument("--quit-after", type=positive_float, default=None, metavar="S", help="close after S seconds")
    a.add_argument(
        "--screenshot", metavar="PNG", help="save a picture of the window just before --quit-after closes it"
    )
    add_lsl_options(p)


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


def run_app(args: argparse.Namespace) -> int:
    """Build the window, start what the options ask for, run the event loop; the exit code."""
    apply_lsl_options(args)
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
    scripted = args.quit_after is not None
    win = MainWindow(AppSettings(args.settings), live_hz=args.live_hz, interactive=not scripted)
    rp = win.recording_panel
    if args.out_dir is not None:
        rp.out_dir.setText(args.out_dir)
    if args.subject is not None:
        rp.subject.setText(args.subject)
    if args.notes is not None:
        rp.notes.setPlainText(args.notes)
    if args.min_free_mb is not None:
        win.lab.min_free_mb = args.min_free_mb
    win.show()
    old_handlers = install_signal_handlers(win)
    rig = rig_config(args)
    if not rig.empty:
        win.apply_rig_options(rig)
        win.record_when_ready = args.record
        win.start_devices(rig)
    else:
        win.record_when_ready = args.record
        win.refresh_streams()
    if scripted:
        ref = weakref.ref(win)  # no strong reference from the timer: the window is freed before Python exits

        def finish() -> None:
            w = ref()
            if w is None:
                return
            if args.screenshot:
                w.grab().save(args.screenshot)
                print(f"mecg app: screenshot saved to {args.screenshot}", file=sys.stderr, flush=True)
            w.close_without_asking()

        QTimer.singleShot(round(args.quit_after * 1000), finish)
    app.exec()
    restore_signal_handlers(old_handlers)
    code = 1 if scripted and win.errors else 0
    dispose(win)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """``mecg-app``: the same as ``mecg app``."""
    from mecg.cli.main import standalone

    return standalone("mecg-app", DESCRIPTION, add_arguments, run_app, argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
