"""Progress of long commands: a tqdm bar with an ETA on a terminal, plain lines elsewhere, nothing with ``--quiet``.

Library functions take plain callbacks (``progress(done, total)``, ``log(line)``); only the CLI
makes bars, through :class:`Progress`:

* stderr is a terminal: a bar (done/total, rate, elapsed<remaining) with each progress line
  printed above it;
* stderr is not a terminal (a log file, a pipe, CI): no bar, the progress lines as before;
* ``--quiet``: no bar and no progress lines; warnings and errors are still printed.

tqdm is imported only when a bar is shown, so light commands do not pay for it.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from typing import TextIO


def add_quiet_option(p: argparse.ArgumentParser) -> None:
    """Add ``--quiet`` to a command's parser."""
    p.add_argument("--quiet", action="store_true", help="no progress bar or progress lines (warnings still shown)")


class Progress:
    """A progress display for ``total`` items of ``unit`` (``total`` None: unknown).

    Use as a context manager. ``update(n)`` counts finished items, ``set(done, total)`` follows a
    library's ``(done, total)`` callback, ``log(line)`` prints a progress line, ``warn(line)`` a
    line that ``--quiet`` does not hide.
    """

    def __init__(
        self,
        total: int | None,
        desc: str = "",
        unit: str = "it",
        *,
        quiet: bool = False,
        stream: TextIO | None = None,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.quiet = quiet
        self.done = 0  # items done so far (counted with or without a bar)
        self.bar = None
        if not quiet and _is_terminal(self.stream):
            from tqdm import tqdm

            # no monitor thread: a second Python thread would stop export-nwb from writing in a
            # forked child, the guard that keeps a full disk from crashing this process's HDF5
            tqdm.monitor_interval = 0
            # follow the terminal's width; a terminal that reports none (0 columns) gets 80
            sized = _columns(self.stream) > 0
            self.bar = tqdm(
                total=total,
                desc=desc or None,
                unit=unit,
                file=self.stream,
                dynamic_ncols=sized,
                ncols=None if sized else 80,
                nrows=None if sized else 24,
            )

    @property
    def shown(self) -> bool:
        """Whether a bar is drawn."""
        return self.bar is not None

    def update(self, n: int = 1) -> None:
        """``n`` more items done."""
        self.done += n
        if self.bar is not None:
            self.bar.update(n)

    def set(self, done: int, total: int | None = None) -> None:
        """``done`` of ``total`` items done (a library's ``progress(done, total)`` callback)."""
        self.done = done
        if self.bar is None:
            return
        if total is not None and total != self.bar.total:
            self.bar.total = total
        self.bar.update(done - self.bar.n)

    def describe(self, desc: str) -> None:
        """Change the bar's label (e.g. the item now worked on)."""
        if self.bar is not None:
            self.bar.set_description_str(desc, refresh=False)

    def log(self, line: str) -> None:
        """A progress line: above the bar on a terminal, a plain line otherwise, nothing with ``--quiet``."""
        if self.quiet:
            return
        self._print(line)

    def warn(self, line: str) -> None:
        """A line shown even with ``--quiet`` (above the bar when there is one)."""
        self._print(line)

    def _print(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def close(self) -> None:
        """Finish the bar (it stays on screen)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _columns(stream: TextIO) -> int:
    """The terminal's width in columns (0 when it does not say)."""
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError, io.UnsupportedOperation):
        return 0


def _is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False
