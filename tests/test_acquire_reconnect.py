"""The drivers' shared reconnect loop, the recorder's grouped settings and acquire's StrEnums (no devices, no LSL)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass

import pytest

from mecg.acquire.errors import AcquireError, DeviceReplyError
from mecg.acquire.reconnect import ReconnectingLoop
from mecg.acquire.recorder_config import BufferSettings, RecorderConfig, StreamSelection
from mecg.acquire.states import DeviceRole, DriverState, EcgProtocol, RecorderState, StreamKind, StreamState


@dataclass
class _Cfg:
    retry_s: float = 0.001


class _FakeDriver(ReconnectingLoop):
    """Pumps a scripted link: each ``pump`` and ``_reopen`` takes the next outcome of its script."""

    lost_errors = (OSError,)
    retry_errors = (AcquireError, OSError)
    fatal_errors = (DeviceReplyError,)

    def __init__(self, pumps: list[BaseException | None], reopens: list[BaseException | None]) -> None:
        self.config = _Cfg()
        self._stop = threading.Event()
        self._thread = None
        self.failed = threading.Event()
        self.error = ""
        self.pumps, self.reopens = list(pumps), list(reopens)
        self.log: list[str] = []
        self.idle = threading.Event()  # set once the pump script ran out

    def pump(self) -> None:
        if not self.pumps:
            self.idle.set()
            self._stop.wait(0.01)
            return
        exc = self.pumps.pop(0)
        if exc is not None:
            raise exc

    def _close_link(self) -> None:
        self.log.append("close")

    def _reopen(self) -> str:
        exc = self.reopens.pop(0)
        if exc is not None:
            raise exc
        return "device"

    def _resume(self, reopened: object) -> None:
        self.log.append(f"resume {reopened}")

    def _mark_lost(self, exc: BaseException) -> None:
        self.log.append(f"lost {exc}")

    def _mark_retry_failed(self, err: BaseException) -> None:
        self.log.append(f"retry failed {err}")

    def _mark_back(self) -> None:
        self.log.append("back")

    def _mark_failed(self, msg: str) -> None:
        self.log.append(f"failed {msg}")


def _wait(event: threading.Event, what: str, deadline_s: float = 10.0) -> None:
    assert event.wait(deadline_s), f"{what} did not happen within {deadline_s} s"


def test_a_lost_link_is_closed_retried_until_it_reopens_and_counted_once() -> None:
    d = _FakeDriver([None, OSError("cable pulled"), None], [AcquireError("no port yet"), OSError("busy"), None])
    d._start_loop("fake")
    _wait(d.idle, "streaming again")
    d._stop_loop()
    assert d.log == [
        "lost cable pulled",
        "close",
        "retry failed no port yet",
        "retry failed busy",
        "resume device",
        "back",
    ]
    assert not d.failed.is_set() and d.error == ""


def test_an_error_retrying_cannot_fix_fails_the_thread_with_its_message() -> None:
    d = _FakeDriver([OSError("gone")], [DeviceReplyError("the box sent status 9; flash its firmware")])
    d._start_loop("fake")
    _wait(d.failed, "the failure")
    d._stop_loop()
    assert d.error == "the box sent status 9; flash its firmware"
    assert d.log[-1] == "failed the box sent status 9; flash its firmware"


def test_a_bug_in_the_pump_is_an_internal_error_not_a_reconnect() -> None:
    d = _FakeDriver([ValueError("bad index")], [])
    d._start_loop("fake")
    _wait(d.failed, "the failure")
    d._stop_loop()
    assert d.error == "internal error ValueError: bad index"
    assert not any(line.startswith("lost") for line in d.log)


def test_stop_ends_the_retries() -> None:
    d = _FakeDriver([OSError("gone")], [OSError("still gone")] * 100_000)
    d._start_loop("fake")
    deadline = time.monotonic() + 10.0
    while not any(line.startswith("retry failed") for line in d.log) and time.monotonic() < deadline:
        d._stop.wait(0.005)
    d._stop_loop()
    assert d._thread is None and not d.failed.is_set()


def test_recorder_config_takes_flat_keywords_into_their_groups() -> None:
    cfg = RecorderConfig("s.h5", wait_s=3.0, min_free_mb=0.0, buffer_s=2.0, gap_s=0.25, preview=True)
    assert cfg.selection.wait_s == 3.0 and cfg.output.min_free_mb == 0.0
    assert cfg.buffers.buffer_s == 2.0 and cfg.timing.gap_s == 0.25 and cfg.live.preview
    assert cfg.selection.settle_s == StreamSelection().settle_s  # untouched settings keep their defaults
    mixed = RecorderConfig(None, buffers=BufferSettings(buffer_max_mb=5.0), buffer_s=1.0)
    assert (mixed.buffers.buffer_s, mixed.buffers.buffer_max_mb) == (1.0, 5.0)
    with pytest.raises(TypeError, match="unknown setting 'wait'"):
        RecorderConfig(None, wait=3.0)


def test_the_enums_are_the_old_strings() -> None:
    assert DriverState.RECONNECTING == "reconnecting" and f"{DriverState.STREAMING}" == "streaming"
    assert RecorderState.MONITORING == "monitoring" and StreamState.STALLED == "stalled"
    assert [str(k) for k in StreamKind] == ["signal", "video", "markers"]
    assert {DeviceRole.ECG: 1}["ecg"] == 1  # role keys still answer to the plain strings
    assert json.dumps({DeviceRole.CAMERA: RecorderState.RECORDING}) == '{"camera": "recording"}'
    assert tuple(EcgProtocol) == ("mecg", "cyton")
