"""The background-thread lifecycle the drivers share: start ``_run`` once, stop it and wait."""

from __future__ import annotations

import threading


class BackgroundLoop:
    """Mixin for a driver whose ``_run`` loops until ``self._stop`` (a ``threading.Event``) is set.

    The driver's ``__init__`` creates ``self._stop`` and sets ``self._thread = None``.
    """

    _stop: threading.Event
    _thread: threading.Thread | None

    def _start_loop(self, name: str) -> None:
        """Run ``self._run`` in a daemon thread, unless it already runs."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=name, daemon=True)
            self._thread.start()

    def _stop_loop(self, timeout_s: float = 3.0) -> None:
        """Tell ``_run`` to end and wait for it (at most ``timeout_s``)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)
            self._thread = None

    def _run(self) -> None:  # pragma: no cover - every driver defines it
        raise NotImplementedError
