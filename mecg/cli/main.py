"""Entry point of ``mecg``: builds the parser from the subcommand modules and maps errors to exit codes.

Exit codes: 0 success, 1 a check failed (``validate``), 2 a user error (bad option, file or
device; the message says what to do), 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Collection, Sequence

from mecg.errors import MecgError


class _VersionAction(argparse.Action):
    """``--version``: prints ``PROG VERSION`` and exits; the version is looked up only then (it costs ~80 ms)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs: object) -> None:
        super().__init__(
            option_strings, dest, nargs=0, default=argparse.SUPPRESS, help="show program's version number and exit"
        )

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> None:
        import mecg

        print(f"{parser.prog} {mecg.__version__}")
        parser.exit()


#: Every subcommand, in the order ``mecg --help`` lists them: (name, module, help). The module's
#: ``register(subparsers)`` adds the command with its options and sets ``func(args) -> int``; it is
#: imported only when its command is the one that runs (or asks for its own ``--help``), so
#: ``mecg --help`` and the light commands start without torch, SciPy or OpenCV. ``help`` is the
#: line ``mecg --help`` shows; it must equal the module's own (tests/test_light_imports.py checks).
_TABLE: tuple[tuple[str, str, str], ...] = (
    ("info", "mecg.cli.info", "summarize a session file"),
    ("validate", "mecg.cli.info", "check a session file (exit 0 valid, 1 invalid)"),
    ("synth", "mecg.cli.synth", "generate synthetic participants (video + ECG + triggers + annotations)"),
    (
        "sync",
        "mecg.cli.sync",
        "align video frames to the ECG clock (strobe, trigger pulses or LSL clocks), with a verdict",
    ),
    ("spot", "mecg.cli.spot", "spot micro- and macro-expressions in sessions"),
    ("eval", "mecg.cli.eval", "MEGC evaluation of spotted intervals (IoU >= 0.5)"),
    ("stats", "mecg.cli.stats", "ECG features at ME/MaE apexes vs non-expression moments (rank tests)"),
    ("annotate", "mecg.cli.annotate", "import coder sheets, compare and merge coders, choose the reference set"),
    ("train", "mecg.cli.train", "train CMCL-Net on annotated sessions"),
    ("stream", "mecg.cli.stream", "stream one device (ECG amplifier, camera, trigger box) to LSL"),
    (
        "simulate",
        "mecg.cli.simulate",
        "start virtual devices (amplifier, trigger box, camera) playing a synthetic participant",
    ),
    ("devices", "mecg.cli.devices", "list serial ports, cameras that open, and LSL streams"),
    (
        "import-dataset",
        "mecg.cli.dataset",
        "convert CAS(ME)^2 or SAMM Long Videos into sessions (video + annotations, no ECG)",
    ),
    ("record", "mecg.cli.record", "record LSL streams (or devices started here) into a session file"),
    (
        "import-xdf",
        "mecg.cli.xdf",
        "convert a LabRecorder .xdf recording into a session file (raw timestamps and clock offsets kept)",
    ),
    (
        "export-nwb",
        "mecg.cli.nwb",
        "write a session as an NWB file (ECG in volts, video, markers, ME/MaE annotations, subject)",
    ),
    ("app", "mecg.cli.app", "the lab recording app (live view, recording, health, check)"),
    (
        "review",
        "mecg.cli.review",
        "review a session: frame-exact video, motion/score/ECG tracks, code and accept spots",
    ),
)

#: Subcommand modules, in registration order.
_COMMANDS = tuple(dict.fromkeys(mod for _, mod, _ in _TABLE))


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's own exit code is 2 too; keep its usage line
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser(load: Collection[str] | None = None) -> argparse.ArgumentParser:
    """The ``mecg`` parser.

    ``load``: the commands whose modules are imported and registered in full; every other command
    is a placeholder with its name and help line only (enough for ``mecg --help`` and for argparse's
    "invalid choice" message). ``None`` (the default) registers every command in full.
    """
    import importlib

    p = _Parser(prog="mecg", description="Record face video + ECG, align them, and spot micro-expressions.")
    p.add_argument("--version", action=_VersionAction)
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    modules = [mod for name, mod, _ in _TABLE if load is None or name in load]
    registered: set[str] = set()
    for name, mod, help_ in _TABLE:
        if mod in modules:
            if mod not in registered:  # one module may add several commands (info, validate)
                importlib.import_module(mod).register(sub)
                registered.add(mod)
        else:
            sub.add_parser(name, help=help_)
    return p


def _command_in(argv: Sequence[str]) -> str | None:
    """The subcommand ``argv`` names: its first argument that is not an option (``mecg`` has no option with a value)."""
    for arg in argv:
        if arg == "--":
            continue
        if not arg.startswith("-"):
            return arg
    return None


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
    p.add_argument("--version", action=_VersionAction)
    add_arguments(p)
    return run(func, p.parse_args(argv), prog=prog)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen subcommand."""
    if argv is None:
        argv = sys.argv[1:]
    command = _command_in(argv)
    parser = build_parser(load=() if command is None else (command,))
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    return run(args.func, args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
