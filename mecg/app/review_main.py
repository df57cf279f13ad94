"""``mecg review``: open the review window on one session (see docs/annotate.md, "Review window").

``--screenshot PNG`` waits until every track is computed, saves a picture of the window and
closes it (no event loop left running: for docs and scripted checks).
"""

from __future__ import annotations

import argparse
import signal
import sys
import weakref
from pathlib import Path

from mecg.errors import MecgError


def check_inputs(args: argparse.Namespace) -> None:
    """Refuse missing input files and an unwritable --screenshot before Qt starts (MecgError)."""
    from mecg.cli.outputs import check_output_file

    for what, value in (("session", args.session), ("--spots", args.spots), ("--model", args.model)):
        if value is None:
            continue
        p = Path(value)
        if not p.exists():
            raise MecgError(f"{what} {p} does not exist; check the path")
        if p.is_dir():
            raise MecgError(f"{what} {p} is a folder; give a file")
    if args.screenshot:
        check_output_file(args.screenshot, f"--screenshot {args.screenshot}", suffixes=(".png",))


def run_review(args: argparse.Namespace) -> int:
    """Build the review window and run the event loop; the exit code (1 when a --screenshot run saw errors)."""
    check_inputs(args)
    from mecg.app.main import check_display, dispose, quiet_qt_messages

    try:
        check_display()
    except MecgError:
        raise MecgError(
            "no display to open the review window on (neither DISPLAY nor WAYLAND_DISPLAY is set): run it on "
            "the desktop, over `ssh -X` or under `xvfb-run`; with QT_QPA_PLATFORM=offscreen only --screenshot "
            "PNG makes sense"
        ) from None
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from mecg.app.qt_check import check_qt_binding
    from mecg.app.review_window import ReviewWindow

    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setApplicationName("mecg-review")
    app.setOrganizationName("mecg")
    quiet_qt_messages()
    check_qt_binding()
    win = ReviewWindow(
        args.session,
        args.coder,
        spots=args.spots,
        model=args.model,
        motion=not args.no_motion,
        interactive=not args.screenshot,
        start_frame=args.frame,
    )
    win.show()
    ref = weakref.ref(win)

    def on_signal(_signum: int, _frame: object) -> None:  # Ctrl-C / SIGTERM: close (asks when there are changes)
        w = ref()
        if w is not None:
            QTimer.singleShot(0, w.close)

    old = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    wake = QTimer()  # lets Python run its signal handlers while Qt waits
    wake.timeout.connect(lambda: None)
    wake.start(200)
    if args.screenshot:
        shot = QTimer()

        def finish() -> None:
            w = ref()
            if w is None or not w.idle:
                return
            shot.stop()
            w.grab().save(args.screenshot)
            print(f"mecg review: screenshot saved to {args.screenshot}", file=sys.stderr, flush=True)
            w.close_without_asking()

        shot.timeout.connect(finish)
        shot.start(100)
    app.exec()
    for sig, h in old.items():
        signal.signal(sig, h)
    code = 1 if args.screenshot and win.errors else 0
    dispose(win)
    return code
