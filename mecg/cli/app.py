"""``mecg app`` / ``mecg-app``: the lab recording app (see docs/app.md).

The command line is parsed here; the window lives in :mod:`mecg.app`, which the CLI never imports
(docs/architecture.md): it is found by name through the ``mecg.frontends`` entry points of
pyproject.toml, and Qt is imported only when the command runs, so ``mecg --help`` works on a
machine without a display. ``--simulate`` (or the device options of ``mecg record``) starts devices
on launch; ``--record`` starts recording once their streams are watched; ``--quit-after S`` closes
the app after S seconds (a recording is stopped and closed cleanly), saving ``--screenshot PNG``
just before; ``--settings FILE.ini`` keeps the remembered settings in that file instead of the user's.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from mecg.cli.argtypes import positive_float
from mecg.cli.live_spot import add_live_spot_arguments, check_live_spot
from mecg.cli.record import add_device_arguments, rig_config
from mecg.cli.stream import add_lsl_options, apply_lsl_options
from mecg.errors import MecgError

#: The entry-point group where the Qt front ends register their launchers (pyproject.toml).
FRONTENDS = "mecg.frontends"

DESCRIPTION = (
    "The lab recording app: LSL streams and devices, a live view (camera, ECG with R-peaks, heart rate, "
    "triggers), recording with per-stream health through the same engine as mecg record, and a check of "
    "each file afterwards."
)


def frontend(name: str) -> Callable[..., int]:
    """The launcher that the window ``name`` (``app``, ``review``) registers under :data:`FRONTENDS`.

    Every installed copy of mecg's metadata is searched, so a stale ``mecg.egg-info`` left in a
    source folder (by a ``pip install .`` before the entry point existed) does not hide the
    installed one. Raises :class:`~mecg.errors.MecgError` when none registers it (a source tree
    that was never installed).
    """
    from importlib.metadata import distributions

    for dist in distributions(name="mecg"):
        for ep in dist.entry_points.select(group=FRONTENDS, name=name):
            return ep.load()
    raise MecgError(
        f"the {name} window is not registered with this installation of mecg (entry point {FRONTENDS}:{name}): "
        "install mecg with pip (`pip install -e .` in its source folder) and try again"
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
    add_live_spot_arguments(p)
    add_lsl_options(p)


def _app(args: argparse.Namespace) -> int:
    apply_lsl_options(args)  # before the app imports pylsl
    run_app = frontend("app")
    return run_app(
        rig_config(args),
        out_dir=args.out_dir,
        subject=args.subject,
        notes=args.notes,
        min_free_mb=args.min_free_mb,
        record=args.record,
        settings=args.settings,
        live_hz=args.live_hz,
        quit_after=args.quit_after,
        screenshot=args.screenshot,
        live_spot=check_live_spot(args.live_spot),
        ccf_eta=args.ccf_eta,
    )


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``app`` to the ``mecg`` parser."""
    p = sub.add_parser(
        "app", help="the lab recording app (live view, recording, health, check)", description=DESCRIPTION
    )
    add_arguments(p)
    p.set_defaults(func=_app)


def main(argv: Sequence[str] | None = None) -> int:
    """``mecg-app``: the same as ``mecg app``."""
    from mecg.cli.main import standalone

    return standalone("mecg-app", DESCRIPTION, add_arguments, _app, argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
