"""``mecg app``: the lab recording app (the same as ``mecg-app``; see docs/app.md).

Qt is imported only when the command runs, so ``mecg --help`` works on a machine without a display.
"""

from __future__ import annotations

import argparse


def _app(args: argparse.Namespace) -> int:
    from mecg.app.main import run_app

    return run_app(args)


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``app`` to the ``mecg`` parser."""
    from mecg.app.main import DESCRIPTION, add_arguments

    p = sub.add_parser(
        "app", help="the lab recording app (live view, recording, health, check)", description=DESCRIPTION
    )
    add_arguments(p)
    p.set_defaults(func=_app)
