"""Live analysis in a process of its own (``LiveAnalysis(process=True)``, what `mecg record --live-spot` and
the app use): the same accounting, events and summary as in a thread; a process that fails or dies turns
the analysis off with a message and never blocks the recorder's threads.

The analysers here are module-level classes so that the spawned process can unpickle them.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest
from waiting import wait_until

from mecg.acquire.live_analysis import LiveAnalysis, LiveEvent
from mecg.errors import MecgError
from mecg.session import StreamInfo

CAM = StreamInfo(name="cam", type="VideoRaw", kind="video", nominal_srate_hz=30.0, frame_shape=(4, 4))
MARKERS = StreamInfo(name="trigger", type="Markers", kind="markers", nominal_srate_hz=0.0)


class Slow:
    """Takes ``delay_s`` per chunk; says which samples it was fed and told it missed; one event a chunk."""

    def __init__(self, delay_s: float = 0.0, fail_at: int | None = None) -> None:
        self.delay_s, self.fail_at = delay_s, fail_at
        self.fed: list[tuple[int, int]] = []
        self.skipped: list[tuple[int, int]] = []
        self.pid = 0

    def add_stream(self, key: str, info: StreamInfo) -> bool:
        return info.kind == "video"

    def feed(self, key: str, first: int, data: object, ts: np.ndarray) -> list[LiveEvent]:
        if self.fail_at is not None and first >= self.fail_at:
            raise RuntimeError(f"cannot analyse frame {first}")
        time.sleep(self.delay_s)
        self.fed.append((first, len(ts)))
        self.pid = os.getpid()
        return [LiveEvent(f"chunk {first} sum {int(np.asarray(data).sum())}", float(ts[0]))]

    def skip(self, key: str, first: int, count: int) -> list[LiveEvent]:
        self.skipped.append((first, count))
        return []

    def clock_offset(self, key: str, offset_s: float) -> list[LiveEvent]:
        return [LiveEvent(f"offset {offset_s:g}", 0.0)]

    def finish(self) -> list[LiveEvent]:
        return [LiveEvent("finished", 0.0)]

    def summary(self) -> dict[str, object]:
        return {"fed": self.fed, "skipped": self.skipped, "pid": self.pid}


class Unpicklable(Slow):
    """An analyser holding a lock cannot go to a process."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()


def _frames(i: int) -> np.ndarray:
    return np.full((2, 4, 4), i % 7, dtype=np.uint8)


def test_a_process_analyses_what_a_thread_would_and_reports_back() -> None:
    stored: list[LiveEvent] = []
    live = LiveAnalysis(Slow(), process=True, max_queue_s=60.0)
    live.prepare()  # the process starts and imports before recording; begin() then finds it ready
    live.add_stream("cam", CAM)
    live.add_stream("trigger", MARKERS)
    live.begin(stored.extend)
    for i in range(50):
        live.push("cam", _frames(i), np.array([2 * i, 2 * i + 1]) / 30.0)
        live.push("trigger", ["x"], np.array([i / 15.0]))
    live.clock_offset("cam", 0.25)
    live.finish()
    assert not live.stats.error
    texts = [ev.text for _, ev in live.events()]
    # the data arrived intact (each chunk's pixel sum), in order, then the offset and the last events
    assert texts[:50] == [f"chunk {2 * i} sum {(i % 7) * 32}" for i in range(50)]
    assert texts[50:] == ["offset 0.25", "finished"]
    assert [ev.text for ev in stored] == texts  # stored in the session as they came
    summary = live.summary()
    assert summary["mode"] == "process" and summary["pid"] not in (0, os.getpid())
    assert summary["fed"] == [[2 * i, 2] for i in range(50)] or summary["fed"] == [(2 * i, 2) for i in range(50)]
    assert summary["analysed_samples"] == {"cam": 100} and live.stats.skipped == 0
    # the markers stream was not wanted: none of it was queued or sent
    assert "trigger" not in summary["analysed_samples"]


def test_a_slow_process_skips_work_and_the_pushing_thread_never_waits() -> None:
    live = LiveAnalysis(Slow(delay_s=0.05), process=True, max_queue_s=1.0)
    live.add_stream("cam", CAM)
    live.begin(None)  # prepares the process itself
    t0 = time.perf_counter()
    worst = 0.0
    for i in range(300):  # 20 s of 30 fps video in 2-frame chunks, pushed at once: 3 s of analysis work
        t = time.perf_counter()
        live.push("cam", _frames(i), np.array([2 * i, 2 * i + 1]) / 30.0)
        worst = max(worst, time.perf_counter() - t)
    pushing = time.perf_counter() - t0
    live.finish()
    assert worst < 0.5 and pushing < 2.0, (worst, pushing)
    summary = live.summary()
    fed = [tuple(x) for x in summary["fed"]]
    skipped = [tuple(x) for x in summary["skipped"]]
    assert skipped and sum(n for _, n in skipped) == live.stats.skipped_samples["cam"]
    # every frame accounted for once, in order; what was fed is at most the bound (1 s = 30 frames) plus the
    # chunks in flight (one being sent, one being analysed)
    spans = sorted(fed + skipped)
    assert [a for a, _ in spans] == [2 * i for i in range(300)]
    assert sum(n for _, n in fed) <= 30 + 2 + 4 + 2


def test_an_analyser_failing_in_its_process_turns_the_analysis_off_with_the_reason() -> None:
    live = LiveAnalysis(Slow(fail_at=20), process=True, max_queue_s=60.0)
    live.add_stream("cam", CAM)
    live.begin(None)
    for i in range(30):
        live.push("cam", _frames(i), np.array([2 * i, 2 * i + 1]) / 30.0)
    assert wait_until(lambda: bool(live.stats.error), 30)
    for i in range(30, 40):  # after the failure nothing more is queued
        live.push("cam", _frames(i), np.array([2 * i, 2 * i + 1]) / 30.0)
    live.finish()
    assert "cannot analyse frame 20" in live.stats.error and "RuntimeError" in live.stats.error
    assert [ev.text for _, ev in live.events()] == [f"chunk {2 * i} sum {(i % 7) * 32}" for i in range(10)]
    assert live.stats.fed_samples["cam"] <= 60


def test_a_killed_analysis_process_is_reported_and_finish_does_not_hang() -> None:
    live = LiveAnalysis(Slow(delay_s=0.01), process=True, max_queue_s=60.0, finish_timeout_s=60.0)
    live.add_stream("cam", CAM)
    live.begin(None)
    live.push("cam", _frames(0), np.array([0.0, 1 / 30]))
    assert wait_until(lambda: len(live.events()) == 1, 30)
    assert live._proc is not None
    os.kill(live._proc.pid, signal.SIGKILL)
    assert wait_until(lambda: bool(live.stats.error), 30)
    for i in range(1, 20):  # pushing after the death neither blocks nor raises
        live.push("cam", _frames(i), np.array([2 * i, 2 * i + 1]) / 30.0)
    t = time.perf_counter()
    live.finish()
    assert time.perf_counter() - t < 10
    assert "process ended unexpectedly" in live.stats.error and f"exit code {-signal.SIGKILL}" in live.stats.error
    assert live.summary()["mode"] == "process"


def test_an_analyser_that_cannot_go_to_a_process_is_refused_early_or_runs_in_a_thread() -> None:
    with pytest.raises(MecgError, match="cannot start its process"):
        LiveAnalysis(Unpicklable(), process=True).prepare()
    # inside a recorder (begin never raises) it runs in a thread instead, and says so
    live = LiveAnalysis(Unpicklable(), process=True)
    live.add_stream("cam", CAM)
    live.begin(None)
    live.push("cam", _frames(1), np.array([0.0, 1 / 30]))
    live.finish()
    summary = live.summary()
    assert summary["mode"].startswith("thread (live analysis: cannot start its process")
    assert summary["fed"] == [(0, 2)] and summary["pid"] == os.getpid()
