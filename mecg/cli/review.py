"""``mecg review``: the review window for one session (video, tracks, coding; see docs/annotate.md).

Qt is imported only when the command runs, so ``mecg --help`` works on a machine without a display.
"""

from __future__ import annotations

import argparse
import getpass
import re

from mecg.cli.argtypes import bounded


def default_coder() -> str:
    """The login name as a coder id (letters, digits, ``_.-``), or ``coder`` when there is none."""
    try:
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", getpass.getuser())[:64]
    except (OSError, KeyError):
        name = ""
    return name if name.strip("._") else "coder"


def _review(args: argparse.Namespace) -> int:
    from mecg.app.review_main import run_review

    return run_review(args)


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``review`` to the ``mecg`` parser."""
    p = sub.add_parser(
        "review",
        help="review a session: frame-exact video, motion/score/ECG tracks, code and accept spots",
        description=(
            "Scrub a session's video frame by frame with its tracks (per-ROI motion, the spotter's score, ECG "
            "with R-peaks, HR and HR slope, stimulus markers, every coder's intervals, spotted candidates) and "
            "code expressions; the coder's set is saved beside the recording (the recording is never written)."
        ),
    )
    p.add_argument("session", metavar="SESSION", help="the session file (.h5)")
    p.add_argument("--spots", metavar="CSV", help="spotted candidates (mecg spot --out) to accept or reject")
    p.add_argument("--model", metavar="M.pt", help="CMCL-Net checkpoint: show its ME score track")
    p.add_argument("--coder", default=default_coder(), help="coder id whose set is edited (default: your login name)")
    p.add_argument("--frame", type=bounded(int, 0, 10**9), default=0, help="frame shown first (default 0)")
    p.add_argument("--no-motion", action="store_true", help="do not compute the motion track when it is not cached")
    p.add_argument("--screenshot", metavar="PNG", help="wait for the tracks, save a picture of the window and close")
    p.set_defaults(func=_review)
