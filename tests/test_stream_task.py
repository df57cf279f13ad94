"""A recorded stream switched to a restarted device's new outlet: nothing recorded twice, nothing new dropped.

Driven by hand (no threads, no LSL traffic): fake inlets hand out chunks, the clock the task reads is set
by the test. LSL's own recovery may have put the old inlet on the new outlet before the recorder opens a
second inlet on it; then both may hold the same samples (seen: a new inlet delivered the last 7 frames the
recovered old one had already delivered, tests/test_record_loss.py under load).
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from mecg.acquire import stream_task
from mecg.acquire.recorder_config import LiveSettings, TimingSettings
from mecg.acquire.stream_task import StreamTask, TaskHost
from mecg.session import StreamInfo

RATE = 100.0
T0 = 500.0  # sender timestamp of sample 0 (s)


class FakeInlet:
    """Hands out queued samples (the index as the value, stamped ``T0 + i / RATE``) like ``pull_chunk``."""

    def __init__(self, indices: range | list[int] = ()) -> None:
        self.queue = list(indices)
        self.closed = False

    def give(self, indices: range | list[int]) -> None:
        self.queue += list(indices)

    def pull_chunk(self, timeout: float, max_samples: int, dest_obj: np.ndarray, as_numpy: bool):
        take, self.queue = self.queue[:max_samples], self.queue[max_samples:]
        dest_obj[: len(take), 0] = take
        return dest_obj[: len(take)], T0 + np.asarray(take, dtype=np.float64) / RATE

    def close_stream(self) -> None:
        self.closed = True


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(stream_task.pylsl, "local_clock", c)
    return c


def make_task(old: FakeInlet) -> tuple[StreamTask, list[int]]:
    recorded: list[int] = []
    host = TaskHost(
        append=lambda key, data, ts: recorded.extend(np.rint(np.asarray(data)[:, 0]).astype(int).tolist()),
        append_clock_offsets=lambda key, rows: None,
        event=lambda msg: None,
        fail=lambda exc: (_ for _ in ()).throw(exc),
        stop=threading.Event(),
    )
    info = StreamInfo("Dev", "EEG", source_id="dev-1", nominal_srate_hz=RATE, channel_labels=["index"])
    task = StreamTask(host, old, info, "dev", False, timing=TimingSettings(), live=LiveSettings(), uid="old")
    return task, recorded


def pull_all(task: StreamTask) -> None:
    while task._pull_once():
        pass


def first_run(clock: Clock) -> tuple[StreamTask, list[int], FakeInlet]:
    """A task whose inlet delivered samples 0-49 (0.5 s after it opened)."""
    old = FakeInlet(range(0, 50))
    task, recorded = make_task(old)
    clock.now += 0.5
    pull_all(task)
    return task, recorded, old


def switch(task: StreamTask, new: FakeInlet, clock: Clock) -> None:
    """What the recorder's housekeeping and the pull thread do on a restarted outlet."""
    task.watch_pulls()
    task.offer_inlet(new, "new")
    clock.now += 0.05
    task._switch_inlet()
    pull_all(task)


def test_samples_the_recovered_old_inlet_delivered_are_not_recorded_again(clock: Clock) -> None:
    task, recorded, old = first_run(clock)
    # the device dies; 1.5 s later its new outlet streams from sample 200, and LSL's recovery brings the
    # old inlet onto it: samples 200-259 arrive there, then the new outlet goes quiet
    clock.now += 2.0
    old.give(range(200, 260))
    pull_all(task)
    clock.now += 0.5  # quiet: the recorder opens its own inlet on the new outlet, which holds 253-259 and more
    switch(task, FakeInlet(range(253, 280)), clock)
    assert recorded == [*range(0, 50), *range(200, 280)]


def test_a_new_outlet_the_old_inlet_never_reached_is_recorded_whole(clock: Clock) -> None:
    task, recorded, _ = first_run(clock)
    clock.now += 3.0  # the device died; its old inlet stays silent
    switch(task, FakeInlet(range(300, 340)), clock)
    assert recorded == [*range(0, 50), *range(300, 340)]


def test_a_resumed_old_outlet_then_a_restart_keeps_every_new_sample(clock: Clock) -> None:
    task, recorded, old = first_run(clock)
    clock.now += 1.0  # a pause of the same outlet, then it goes on (the old inlet is on it all along)
    old.give(range(150, 200))
    pull_all(task)
    clock.now += 2.0  # then the device restarts on a new outlet the old inlet does not reach
    switch(task, FakeInlet(range(400, 420)), clock)
    assert recorded == [*range(0, 50), *range(150, 200), *range(400, 420)]
