"""Every lost sample counted, restarted streams picked up (loopback LSL only).

Each simulated device is a child process with one LSL outlet (camera-like video or ECG-like signal)
that pushes samples on a fixed schedule ``t0 + i / rate`` and writes the index ``i`` into the sample,
so the truth is in the recorded data: the indices absent between two recorded ones are the missing
samples. Outlets live in child processes because destroying an outlet in the process whose recorder
holds an inlet on it has crashed liblsl (tests/test_sync_live.py).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pylsl
import pytest

from mecg.acquire.buffers import BufferTooLargeError, buffer_mb, buffer_seconds
from mecg.acquire.recorder import Recorder, RecorderConfig, StreamStatus
from mecg.acquire.stream_metadata import StreamQuery
from mecg.cli.info import format_summary, summarize
from mecg.cli.record import format_summary as record_summary
from mecg.cli.record import status_line
from mecg.session import check_session, open_session

#: Real-time simulators against millisecond and lost-sample assertions: ``make test`` runs these after the rest,
#: in one process, so CPU-bound tests on other workers do not starve them (see the Makefile).
pytestmark = pytest.mark.realtime

#: The simulated device: pushes the index ranges ``runs`` on the schedule, then waits for stdin to close.
DEVICE = r"""
import json, math, sys, time
import numpy as np, pylsl
a = json.loads(sys.argv[1])
rate = a["rate"]
if a["kind"] == "video":  # 8x6 grey frames; the index in the first 3 bytes
    info = pylsl.StreamInfo(a["name"], "Video", 48, rate, pylsl.cf_int8, a["sid"])
    for k, v in (("width", "8"), ("height", "6"), ("channels", "1"), ("pixel_format", "mono8")):
        info.desc().append_child_value(k, v)
    info.desc().append_child_value("can_drop_samples", "true")
else:
    info = pylsl.StreamInfo(a["name"], "ECG", 1, rate, pylsl.cf_float32, a["sid"])
outlet = pylsl.StreamOutlet(info, chunk_size=1, max_buffered=15)
t0 = a.get("t0") or pylsl.local_clock()
runs = a["runs"]
if a.get("from_now"):  # a restarted device: its first sample is the one due now
    first = math.ceil((pylsl.local_clock() - t0) * rate) + 1
    runs = [[first, first + runs[0][1] - runs[0][0]]]
print(json.dumps({"t0": t0, "runs": runs}), flush=True)
if not a.get("from_now"):  # the schedule is kept, but nothing is pushed before the recorder listens: a loaded
    outlet.wait_for_consumers(30.0)  # machine once opened it after the whole first run was pushed
for start, stop in runs:
    for i in range(start, stop):
        t = t0 + i / rate
        while pylsl.local_clock() < t:
            time.sleep(max(0.0, min(0.002, t - pylsl.local_clock() + 1e-4)))  # never negative: the clock moves
        if a["kind"] == "video":
            x = np.zeros((1, 48), np.uint8)
            x[0, :3] = [i & 255, (i >> 8) & 255, (i >> 16) & 255]
            outlet.push_chunk(x.view(np.int8), t)
        else:
            outlet.push_sample([float(i)], t)
        if i == start:
            print(json.dumps({"first": i, "t": t}), flush=True)
    print(json.dumps({"pushed": [start, stop]}), flush=True)
sys.stdin.readline()
"""


class Device:
    """One simulated device process; ``messages`` are its JSON lines."""

    def __init__(self, kind: str, sid: str, rate: float, runs: list[list[int]], **extra: object) -> None:
        args = {"kind": kind, "name": f"Loss{kind}", "sid": sid, "rate": rate, "runs": runs, **extra}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", DEVICE, json.dumps(args)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.messages: list[dict] = []
        self.start = self.read()

    def read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        assert line, f"device process ended (exit {self.proc.poll()}; its traceback is in the captured stderr)"
        self.messages.append(json.loads(line))
        return self.messages[-1]

    def wait_pushed(self, n_runs: int) -> None:
        while sum("pushed" in m for m in self.messages) < n_runs:
            self.read()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(10)


def wait_for(cond, timeout_s: float, what: str) -> None:
    end = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < end, f"{what}: not within {timeout_s:g} s"
        time.sleep(0.02)


def sid(tag: str) -> str:
    return f"test-loss-{tag}-{uuid.uuid4().hex[:8]}"


def recorder(tmp_path: Path, source_id: str) -> Recorder:
    cfg = RecorderConfig(path=tmp_path / "s.h5", queries=(StreamQuery(source_ids=(source_id,)),), wait_s=20.0)
    return Recorder(cfg).start()


def stream(rec: Recorder) -> StreamStatus:
    return rec.status().streams[0]


def indices(path: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """Recorded sample indices, timestamps and the stream group's attributes."""
    with open_session(path) as s:
        st = next(iter(s.streams.values()))
        data = np.asarray(st.data[:])
        ts = np.asarray(st.timestamps)
        attrs = dict(st.group.attrs)
    if data.ndim == 3:  # frames: index in the first three bytes
        flat = data.reshape(len(data), -1).astype(np.int64)
        idx = flat[:, 0] | (flat[:, 1] << 8) | (flat[:, 2] << 16)
    else:
        idx = np.rint(data[:, 0]).astype(np.int64)
    return idx, ts, attrs


def missing_between(idx: np.ndarray, events: list[str] | None = None) -> int:
    """The truth: indices absent between the first and the last recorded one (each recorded once, in order)."""
    back = np.flatnonzero(np.diff(idx) <= 0)
    assert back.size == 0, (
        f"samples recorded twice or out of order at {[idx[max(0, i - 2) : i + 3].tolist() for i in back[:3]]}: {events}"
    )
    return int(idx[-1] - idx[0] + 1 - idx.size)


def last_index_seen(rec: Recorder, rate: float, t0: float, i: int) -> bool:
    return stream(rec).last_ts >= t0 + i / rate - 1e-9


@pytest.mark.parametrize(("kind", "rate"), [("video", 150.0), ("ecg", 250.0)])
def test_a_pause_is_one_gap_with_its_missing_samples(tmp_path: Path, kind: str, rate: float) -> None:
    source_id = sid(kind)
    runs = [[0, int(2 * rate)], [int(3.2 * rate), int(4.5 * rate)]]  # 1.2 s without samples
    dev = Device(kind, source_id, rate, runs)
    try:
        rec = recorder(tmp_path, source_id)
        t0 = dev.start["t0"]
        try:
            dev.wait_pushed(2)
            wait_for(lambda: last_index_seen(rec, rate, t0, runs[1][1] - 1), 20.0, "the last sample recorded")
        finally:
            final = rec.stop()
    finally:
        dev.close()
    s = final.streams[0]
    idx, _, attrs = indices(tmp_path / "s.h5")
    truth_gap = runs[1][0] - runs[0][1]
    truth = missing_between(idx)
    assert truth >= truth_gap  # the recording may have started after sample 0, never with a hole before the pause
    assert s.missing == truth and s.gaps == 1 and s.dropped == truth - truth_gap
    (start, dur, miss) = s.gap_table[0]
    assert miss == truth_gap
    assert start == pytest.approx(t0 + (runs[0][1] - 1) / rate, abs=1e-6)
    assert dur == pytest.approx((truth_gap + 1) / rate, abs=1e-6)
    # stored in the session, read by mecg info
    assert attrs["missing_samples"] == truth and attrs["gap_count"] == 1
    assert attrs["gaps"].shape == (1, 3) and attrs["gaps"][0, 2] == truth_gap
    rep, sess = check_session(tmp_path / "s.h5", deep=True)
    sess.close()
    assert rep.valid, rep.errors
    with open_session(tmp_path / "s.h5") as sess:
        d = summarize(sess)
    loss = d["streams"][0]["loss"]
    assert loss["missing"] == truth and loss["gaps"] == [[pytest.approx(start), pytest.approx(dur), truth_gap]]
    assert f"recorder: {truth} {'frames' if kind == 'video' else 'samples'} missing" in format_summary(d)
    # the recorder's summary and status lines name the missing samples, not only "dropped"
    assert f"missing {truth}" in status_line(final, None)
    assert str(truth) in record_summary(final)


def test_a_stall_to_the_end_is_a_gap_up_to_the_stop(tmp_path: Path) -> None:
    source_id, rate = sid("tail"), 150.0
    runs = [[0, 300]]
    dev = Device("video", source_id, rate, runs)
    try:
        rec = recorder(tmp_path, source_id)
        t0 = dev.start["t0"]
        last_t = t0 + (runs[0][1] - 1) / rate
        try:
            dev.wait_pushed(1)
            wait_for(lambda: last_index_seen(rec, rate, t0, runs[0][1] - 1), 20.0, "the last sample recorded")
            wait_for(lambda: pylsl.local_clock() > last_t + 1.0, 5.0, "a second of silence")
            assert stream(rec).gaps == 0  # not known while it lasts...
            before = pylsl.local_clock()
        finally:
            final = rec.stop()
        after = pylsl.local_clock()
    finally:
        dev.close()
    s = final.streams[0]
    idx, _, attrs = indices(tmp_path / "s.h5")
    inside = missing_between(idx)
    assert inside == 0 and s.gaps == 1
    start, _, miss = s.gap_table[-1]  # ...but at the stop
    assert start == pytest.approx(last_t, abs=1e-6)
    # the truth: every frame due between the last one and the stop; the stop happened between before and after
    # (give or take the measured clock offset, microseconds on one machine: 1 ms allowed)
    assert math.floor((before - 1e-3 - last_t) * rate) <= miss <= math.floor((after + 1e-3 - last_t) * rate)
    assert s.missing == inside + miss and attrs["missing_samples"] == s.missing
    assert attrs["gaps"][-1, 2] == miss


@pytest.mark.parametrize(("kind", "rate"), [("video", 150.0), ("ecg", 250.0)])
def test_a_restarted_outlet_is_picked_up_and_its_loss_counted(tmp_path: Path, kind: str, rate: float) -> None:
    source_id = sid(f"restart-{kind}")
    first = Device(kind, source_id, rate, [[0, int(1.5 * rate)]])
    second = None
    try:
        rec = recorder(tmp_path, source_id)
        t0 = first.start["t0"]
        try:
            first.wait_pushed(1)
            wait_for(lambda: last_index_seen(rec, rate, t0, int(1.5 * rate) - 1), 20.0, "the first run recorded")
            first.kill()  # the outlet is destroyed with its process
            wait_for(lambda: stream(rec).state == "stalled", 10.0, "the stall noticed")
            n_run = int(2 * rate)
            second = Device(kind, source_id, rate, [[0, n_run]], t0=t0, from_now=True)
            i0, i1 = second.start["runs"][0]
            pushed_first = second.read()  # {"first": i0, "t": ...}
            second.wait_pushed(1)
            wait_for(lambda: last_index_seen(rec, rate, t0, i1 - 1), 20.0, "the restarted outlet's samples recorded")
        finally:
            final = rec.stop()
    finally:
        first.close()
        if second is not None:
            second.close()
    s = final.streams[0]
    idx, ts, attrs = indices(tmp_path / "s.h5")
    truth = missing_between(idx, rec.events())
    assert s.missing == truth and attrs["missing_samples"] == truth
    assert s.gaps >= 1 and sum(g[2] for g in s.gap_table) + s.dropped == truth
    assert s.restarts == 1
    # pick-up: the first sample recorded from the new outlet came this long after it pushed its first one
    back = ts[np.searchsorted(idx, i0)]
    delay = back - pushed_first["t"]
    print(f"{kind}: restarted outlet picked up {delay:.3f} s after its first sample")
    assert 0.0 <= delay < 3.0


def test_buffers_default_within_the_cap_and_an_explicit_one_over_it_is_refused() -> None:
    grey, rgb = 640 * 480, 640 * 480 * 3
    assert buffer_seconds(None, default_s=15.0, srate_hz=150.0, sample_bytes=grey) == 15
    s_rgb = buffer_seconds(None, default_s=15.0, srate_hz=150.0, sample_bytes=rgb)
    assert 10 <= s_rgb < 15 and buffer_mb(s_rgb, 150.0, rgb) <= 2000.0  # a 10 s outage fits under the cap
    assert buffer_seconds(30.0, default_s=15.0, srate_hz=150.0, sample_bytes=grey) == 30
    with pytest.raises(BufferTooLargeError, match=r"--buffer-s 30 .* over the 2,000 MB cap: give at most 14 s"):
        buffer_seconds(30.0, default_s=15.0, srate_hz=150.0, sample_bytes=rgb, what="the camera")
    assert buffer_seconds(30.0, default_s=15.0, srate_hz=150.0, sample_bytes=rgb, max_mb=5000.0) == 30
    assert buffer_seconds(None, default_s=360.0, srate_hz=0.0, sample_bytes=32) == 360  # markers: 36,000


def test_a_recorder_buffer_over_the_cap_stops_the_start_and_writes_nothing(tmp_path: Path) -> None:
    source_id = sid("cap")
    dev = Device("video", source_id, 150.0, [[0, 300]])
    try:
        cfg = RecorderConfig(
            path=tmp_path / "s.h5",
            queries=(StreamQuery(source_ids=(source_id,)),),
            wait_s=20.0,
            buffer_s=30.0,
            buffer_max_mb=0.2,  # 8x6 frames: 96 B each with LSL's bookkeeping, 14.4 kB per second
        )
        with pytest.raises(
            BufferTooLargeError, match=r"--buffer-s 30 for Lossvideo .* needs about 0.43 MB .* give at most 13 s"
        ):
            Recorder(cfg).start()
        assert not (tmp_path / "s.h5").exists()
        cfg.buffers.buffer_s = None  # the default is shortened to fit
        rec = Recorder(cfg).start()
        assert rec.status().streams[0].buffer_s == 13
        rec.stop()
    finally:
        dev.close()


def test_stream_attributes_of_the_format_cannot_be_overwritten(tmp_path: Path) -> None:
    from mecg.session import SessionError, SessionWriter, StreamInfo

    with SessionWriter(tmp_path / "w.h5") as w:
        key = w.add_stream(
            StreamInfo(
                name="C",
                type="ECG",
                kind="signal",
                source_id="s",
                hostname="h",
                nominal_srate_hz=250.0,
                channel_format="float32",
                lsl_header="<info/>",
                channel_labels=["ECG"],
                channel_units=["mV"],
                channel_types=["ECG"],
            )
        )
        with pytest.raises(SessionError, match="sample_count"):
            w.set_stream_attrs(key, {"sample_count": 5, "missing_samples": 1})
        w.set_stream_attrs(key, {"missing_samples": np.int64(3)})
    with open_session(tmp_path / "w.h5") as s:
        assert s.streams[key].group.attrs["missing_samples"] == 3 and "sample_count" in s.streams[key].group.attrs
