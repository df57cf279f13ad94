"""The recorder's live preview (StreamPreview) and monitor mode (path=None): what the lab app's live view reads."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import numpy as np
import pylsl
import pytest
from waiting import wait_until

from mecg.acquire.preview import StreamPreview
from mecg.acquire.recorder import Recorder, RecorderConfig
from mecg.acquire.stream_metadata import StreamQuery
from mecg.session import StreamInfo


def _signal_info(srate: float = 100.0, channels: int = 2) -> StreamInfo:
    return StreamInfo(
        name="S",
        type="ECG",
        kind="signal",
        channel_format="float32",
        nominal_srate_hz=srate,
        channel_labels=[f"c{i}" for i in range(channels)],
        channel_units=["mV"] * channels,
        channel_types=["ECG"] * channels,
    )


def test_signal_ring_keeps_the_last_seconds_in_order() -> None:
    p = StreamPreview(_signal_info(100.0), signal_s=1.0)  # 100 samples kept
    for k in range(7):  # 7 chunks of 30 samples: wraps the ring twice
        t = np.arange(30 * k, 30 * (k + 1)) / 100.0
        p.push(np.stack([t, -t], axis=1).astype(np.float32), t)
    t, x = p.signal()
    assert t.size == 100 and np.all(np.diff(t) > 0)
    np.testing.assert_allclose(t, np.arange(110, 210) / 100.0)
    np.testing.assert_allclose(x[:, 0], t, rtol=1e-6)
    t2, _ = p.signal(0.5)
    assert t2[0] >= t[-1] - 0.5 - 1e-9 and t2[-1] == t[-1]
    big = np.arange(1000) / 100.0  # a chunk larger than the ring
    p.push(np.zeros((1000, 2), np.float32), big)
    assert p.signal()[0][-1] == big[-1] and p.received == 7 * 30 + 1000


def test_video_keeps_a_strided_copy_of_the_newest_frame_at_most_frame_hz() -> None:
    info = StreamInfo(
        name="Cam", type="Video", kind="video", channel_format="int8", nominal_srate_hz=150.0, frame_shape=(48, 64)
    )
    p = StreamPreview(info, frame_hz=1000.0, max_width_px=32)
    buf = np.zeros((4, 48 * 64), np.int8)  # the pull thread's reused buffer
    frame = (np.arange(48 * 64) % 251).astype(np.uint8).reshape(48, 64)
    buf[1] = frame.reshape(-1).view(np.int8)
    p.push(buf[:2], np.array([1.0, 2.0]))
    ts, img = p.frame()
    assert ts == 2.0 and p.step == 2 and img.shape == (24, 32) and img.dtype == np.uint8
    np.testing.assert_array_equal(img, frame[::2, ::2])
    buf[1] = 0  # the buffer is reused: the kept frame must be a copy
    assert p.frame()[1].any()
    slow = StreamPreview(info, frame_hz=1.0)
    slow.push(buf[:1], np.array([1.0]))
    slow.push(buf[:1], np.array([2.0]))  # within 1 s of the last copy: not kept
    assert slow.frame()[0] == 1.0 and slow.received == 2


def test_markers_since() -> None:
    info = StreamInfo(name="M", type="Markers", kind="markers", channel_format="string", nominal_srate_hz=0.0)
    p = StreamPreview(info)
    p.push(["a", "b"], np.array([1.0, 2.0]))
    assert p.markers() == [(1.0, "a"), (2.0, "b")] and p.markers(1.5) == [(2.0, "b")]


def test_monitor_mode_watches_streams_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sid = f"test-preview-{uuid.uuid4().hex[:8]}"
    info = pylsl.StreamInfo("PreviewSig", "MecgTest", 2, 200.0, pylsl.cf_float32, sid)
    outlet = pylsl.StreamOutlet(info)
    stop = threading.Event()

    def push() -> None:
        t0, k = pylsl.local_clock(), 0
        while not stop.wait(0.01):
            due = int((pylsl.local_clock() - t0) * 200)
            if due > k:
                ts = t0 + np.arange(k, due) / 200.0
                outlet.push_chunk(np.full((due - k, 2), 1.5, np.float32), ts.tolist())
                k = due

    th = threading.Thread(target=push, daemon=True)
    th.start()
    monkeypatch.chdir(tmp_path)  # where a relative file would land
    rec = Recorder(RecorderConfig(path=None, queries=(), required=(StreamQuery(source_ids=(sid,)),), preview=True))
    try:
        rec.start()
        assert rec.monitoring and rec.status().state == "monitoring"
        assert type(rec.writer).__name__ == "_NullWriter"  # nothing is written anywhere
        wait_until(lambda: rec.status().streams[0].samples >= 200, 10.0)
        st = rec.status()
        assert st.streams[0].samples >= 200 and st.streams[0].state == "ok" and st.file_bytes == 0
        prev = rec.previews()["PreviewSig"]
        t, x = prev.signal(1.0)
        assert t.size > 100 and np.all(x == 1.5)
    finally:
        final = rec.stop()
        stop.set()
        th.join()
    assert final.state == "stopped" and not final.complete and final.path == ""
    assert not any(p.suffix == ".h5" for p in Path.cwd().iterdir())  # a monitor creates no session file
