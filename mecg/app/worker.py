"""Run blocking work (finding streams, starting devices, closing a file, checking it) off the UI thread.

:class:`WorkerPool` runs each function in a Python thread and hands its result or its exception to
callbacks on the Qt thread through one queued signal, so the window never freezes. The callbacks
are kept only until they ran: nothing keeps the window alive after it closed.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable

from PySide6.QtCore import QObject, Qt, Signal


class WorkerPool(QObject):
    """Functions run in threads; ``on_done(result)`` / ``on_error(exception)`` run on the Qt thread."""

    _finished = Signal(int, bool, object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._calls: dict[int, tuple[Callable | None, Callable | None]] = {}
        self._threads: dict[int, threading.Thread] = {}
        self._tokens = itertools.count()
        self._finished.connect(self._deliver, Qt.ConnectionType.QueuedConnection)

    def submit(
        self,
        fn: Callable[[], object],
        on_done: Callable[[object], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        name: str = "mecg-app-worker",
    ) -> int:
        """Start ``fn`` in a thread; returns its token."""
        token = next(self._tokens)
        self._calls[token] = (on_done, on_error)

        def run() -> None:
            try:
                result = fn()
            except BaseException as exc:  # delivered to the UI, which shows it
                self._finished.emit(token, False, exc)
                return
            self._finished.emit(token, True, result)

        t = threading.Thread(target=run, name=name, daemon=True)
        self._threads[token] = t
        t.start()
        return token

    def _deliver(self, token: int, ok: bool, value: object) -> None:
        on_done, on_error = self._calls.pop(token, (None, None))
        self._threads.pop(token, None)
        callback = on_done if ok else on_error
        if callback is not None:
            callback(value)

    def join(self, timeout_s: float = 15.0) -> bool:
        """Wait (at most ``timeout_s`` each) for the running threads to end; True if they all did."""
        for t in list(self._threads.values()):
            t.join(timeout_s)
        return not any(t.is_alive() for t in self._threads.values())
