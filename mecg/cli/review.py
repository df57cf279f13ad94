"""``mecg review``: the review window for one session (video, tracks, coding; see docs/annotate.md).

The command line and its input checks are here; the window lives in :mod:`mecg.app`, found by name
through the ``mecg.frontends`` entry point ``review`` (the CLI never imports the app). Qt is imported
only when the command runs, so ``mecg --help`` works on a machine without a display.
"""

from __future__ import annotations

import argparse
import getpass
import re
from pathlib import Path

from mecg.cli.app import frontend
from mecg.cli.argtypes import bounded
from mecg.cli.outputs import check_output_file
from mecg.errors import MecgError


def default_coder() -> str:
    """The login name as a coder id (letters, digits, ``_.-``), or ``coder`` when there is none."""
    try:
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", getpass.getuser())[:64]
    except (OSError, KeyError):
        name = ""
    return name if name.strip("._") else "coder"


def check_inputs(args: argparse.Namespace) -> None:
    """Refuse missing input files and an unwritable --screenshot before Qt starts (MecgError)."""
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


def _review(args: argparse.Namespace) -> int:
    check_inputs(args)
    run_review = frontend("review")
    return run_review(
        args.session,
        args.coder,
        spots=args.spots,
        model=args.model,
        frame=args.frame,
        motion=not args.no_motion,
        screenshot=args.screenshot,
    )


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
