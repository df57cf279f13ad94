"""The loop the device drivers share: pump until stopped, reopen a lost link, stop on what retrying cannot fix.

A driver (:class:`~mecg.acquire.ecg_driver.EcgDriver`, :class:`~mecg.acquire.trigger_driver.TriggerDriver`,
:class:`~mecg.acquire.brainflow_source.BrainFlowDriver`) subclasses :class:`ReconnectingLoop`, says
which errors mean what (:attr:`~ReconnectingLoop.lost_errors`, ``retry_errors``, ``fatal_errors``)
and fills in the hooks: :meth:`pump` (one read and push), :meth:`_close_link`, :meth:`_reopen`
(open and start the device again; raises on failure), :meth:`_resume` (take the reopened device
into use), and the hooks that record state for its status line. The loop itself is here once:
when :meth:`pump` raises a lost error the link is closed, and every ``retry_s`` a reopen is tried
until one works (the driver streams again, counting one reconnect) or :meth:`stop` is called; an
error that retrying cannot help (or a bug) ends the thread with ``failed`` set and ``error`` saying why.
The lifetime is here once too: :meth:`~ReconnectingLoop.start` (connect unless :meth:`_connected`,
then the thread), :meth:`~ReconnectingLoop.close` (stop, drop the outlet) and ``with driver:``;
the driver defines ``connect`` and ``stop``.
"""

from __future__ import annotations

import threading
from typing import Self

from mecg.acquire.background import BackgroundLoop
from mecg.acquire.states import DriverState
from mecg.errors import MecgError

__all__ = ["DriverState", "ReconnectingLoop", "failure_message"]


def failure_message(exc: BaseException) -> str:
    """The message a failed driver shows: a user error's own text, else ``internal error <type>: <text>``."""
    return str(exc) if isinstance(exc, MecgError) else f"internal error {type(exc).__name__}: {exc}"


class ReconnectingLoop(BackgroundLoop):
    """Base of a driver thread that pumps a device and reconnects it when the link is lost.

    The subclass's ``__init__`` sets ``self._stop`` (``threading.Event``), ``self._thread = None``,
    ``self.failed`` (``threading.Event``) and ``self.error = ""``; its config has ``retry_s`` (s).
    """

    #: Errors from :meth:`pump` that mean the link is lost: reconnect.
    lost_errors: tuple[type[BaseException], ...] = (OSError,)
    #: Errors from :meth:`_reopen` that retrying may fix (device still absent or silent).
    retry_errors: tuple[type[BaseException], ...] = (OSError,)
    #: Errors from :meth:`_reopen` that retrying cannot fix (checked before ``retry_errors``): the thread fails.
    fatal_errors: tuple[type[BaseException], ...] = ()

    failed: threading.Event
    error: str
    outlet: object | None  #: the LSL outlet the driver publishes to; :meth:`close` drops it

    # -- hooks ----------------------------------------------------------------------------------
    @property
    def retry_s(self) -> float:
        """Wait between reconnection attempts (s)."""
        return float(self.config.retry_s)  # type: ignore[attr-defined]

    def pump(self) -> object:  # pragma: no cover - every driver defines it
        """Read what the device sent and publish it; raise a lost error when the link is gone."""
        raise NotImplementedError

    def _close_link(self) -> None:  # pragma: no cover - every driver defines it
        """Close the port (or release the board) after the link was lost; never raises."""
        raise NotImplementedError

    def _reopen(self) -> object:  # pragma: no cover - every driver defines it
        """Open and start the device again; returns what :meth:`_resume` needs. Raises on failure."""
        raise NotImplementedError

    def _resume(self, reopened: object) -> None:
        """Take the reopened device into use (an error here fails the thread)."""

    def _ends_stream(self, exc: BaseException) -> bool:
        """Whether a lost error means the source has ended (the thread stops quietly) rather than a lost link."""
        return False

    def _mark_lost(self, exc: BaseException) -> None:
        """Record that the link was lost because of ``exc`` (state, last error)."""

    def _mark_retry_failed(self, err: BaseException) -> None:
        """Record that one reconnection attempt failed with ``err``."""

    def _mark_back(self) -> None:
        """Record that the link is back: streaming again, one more reconnect."""

    def _mark_failed(self, msg: str) -> None:
        """Record that the thread stopped for good with ``msg``."""

    # -- lifetime -------------------------------------------------------------------------------
    def connect(self) -> object:  # pragma: no cover - every driver defines it
        """Open the device (raises the project's errors, with the fix in the message)."""
        raise NotImplementedError

    def _connected(self) -> bool:  # pragma: no cover - every driver defines it
        """Whether :meth:`connect` has opened the device (port or board)."""
        raise NotImplementedError

    def start(self) -> Self:
        """Connect if needed and run the loop in a background thread (named after the driver's class)."""
        if not self._connected():
            self.connect()
        self._start_loop(type(self).__name__)
        return self

    def stop(self) -> None:  # pragma: no cover - every driver defines it
        """Stop the thread and release the device."""
        raise NotImplementedError

    def close(self) -> None:
        """Stop and drop the outlet."""
        self.stop()
        self.outlet = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the loop -------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    self.pump()
                except self.lost_errors as exc:
                    if self._stop.is_set():
                        break
                    if self._ends_stream(exc):
                        break
                    self._reconnect(exc)
        except Exception as exc:  # a device the driver cannot use, or a bug: stop and say why, never stream 0 samples
            self._fail(exc)

    def _reconnect(self, exc: BaseException) -> None:
        """The link failed with ``exc``: close it and try to reopen every ``retry_s`` until it works or we stop."""
        self._mark_lost(exc)
        self._close_link()
        while not self._stop.wait(self.retry_s):
            try:
                reopened = self._reopen()
            except self.fatal_errors:
                raise  # the device answers, but wrongly: retrying cannot help
            except self.retry_errors as err:
                self._mark_retry_failed(err)
                continue
            self._resume(reopened)
            self._mark_back()
            return

    def _fail(self, exc: BaseException) -> None:
        """Stop for good: record the failure, set ``error`` and ``failed``."""
        msg = failure_message(exc)
        self._mark_failed(msg)
        self.error = msg
        self.failed.set()
