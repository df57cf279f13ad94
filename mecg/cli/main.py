"""Entry point of ``mecg``: builds the parser from the subcommand modules and maps errors to exit codes.

Exit codes: 0 success, 1 a check failed (``validate``), 2 a user error (bad option, file or
device; the message says what to do), 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from mecg import __version__
from mecg.errors import MecgError

#: Subcommand modules; each has ``register(subparsers)`` that sets ``func(args) -> int``.
_COMMANDS = (
    "mecg.cli.info",
    "mecg.cli.synth",
    "mecg.cli.sync",
    "mecg.cli.spot",
    "mecg.cli.eval",
    "mecg.cli.stats",
    "mecg.cli.annotate",
    "mecg.cli.train",
    "mecg.cli.stream",
    "mecg.cli.simulate",
    "mecg.cli.devices",
    "mecg.cli.dataset",
    "mecg.cli.record",
    "mecg.cli.xdf",
    "mecg.cli.nwb",
    "mecg.cli.app",
    "mecg.cli.review",
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's own exit code is 2 too; keep its usage line
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The full ``mecg`` parser with every subcommand."""
    import importlib

    p = _Parser(prog="mecg", description="Record face video + ECG, align them, and spot micro-expressions.")
    p.add_argument("--version", action="version", version=f"mecg {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for mod in _COMMANDS:
        importlib.import_module(mod).register(sub)
    return p


def run(func, args: argparse.Namespace, prog: str = "mecg") -> int:
    """Run a command function, turning user errors into a message and exit code 2."""
    try:
        return int(func(args) or 0)
    except MecgError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `mecg info --json | head`
        return 0


def standalone(
    prog: str,
    description: str,
    add_arguments: Callable[[argparse.ArgumentParser], None],
    func: Callable[[argparse.Namespace], int],
    argv: Sequence[str] | None = None,
) -> int:
    """Run one command as its own program (``mecg-record``, ``mecg-app``): same options, errors and exit codes."""
    p = _Parser(prog=prog, description=description)
    add_arguments(p)
    return run(func, p.parse_args(argv), prog=prog)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen subcommand."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    return run(args.func, args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
