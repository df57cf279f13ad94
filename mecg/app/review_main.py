"""The review window's launcher (``mecg review``; see docs/annotate.md, "Review window").

:mod:`mecg.cli.review` parses the command line, checks the inputs and finds :func:`run_review`
through the ``mecg.frontends`` entry point ``review`` (the CLI never imports this room).

``--screenshot PNG`` waits until every track is computed, saves a picture of the window and
closes it (no event loop left running: for docs and scripted checks).
"""

from __future__ import annotations

import signal
import sys
import weakref
from pathlib import Path

from mecg.errors import MecgError


def run_review(
    session: str | Path,
    coder: str,
    *,
    spots: str | Path | None = None,
    model: str | Path | None = None,
    frame: int = 0,
    motion: bool = True,
    screenshot: str | Path | None = None,
) -> int:
    """Build the review window on ``session`` and run the event loop; the exit code.

    Parameters
    ----------
    session
        The session file (.h5).
    coder
        Coder id whose set of intervals is edited (saved beside the recording).
    spots
        Spotted candidates (CSV of ``mecg spot --out``) to accept or reject.
    model
        CMCL-Net checkpoint whose ME score track is shown.
    frame
        The frame shown first.
    motion
        Compute the motion track when it is not cached.
    screenshot
        Wait for every track, save a PNG of the window there and close (exit code 1 when the
        window showed errors). The caller checks the inputs exist (``mecg review`` does).
    """
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
        session,
        coder,
        spots=spots,
        model=model,
        motion=motion,
        interactive=not screenshot,
        start_frame=frame,
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
    if screenshot:
        shot = QTimer()

        def finish() -> None:
            w = ref()
            if w is None or not w.idle:
                return
            shot.stop()
            w.grab().save(str(screenshot))
            print(f"mecg review: screenshot saved to {screenshot}", file=sys.stderr, flush=True)
            w.close_without_asking()

        shot.timeout.connect(finish)
        shot.start(100)
    app.exec()
    for sig, h in old.items():
        signal.signal(sig, h)
    code = 1 if screenshot and win.errors else 0
    dispose(win)
    return code
