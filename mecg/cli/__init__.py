"""The ``mecg`` command line: one command, one module per subcommand."""

from mecg.cli.main import main

__all__ = ["main"]
