"""Camera driver: a video file and the virtual camera into an LSL Video outlet; metadata, drops, stamps, LED."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import cv2
import numpy as np
import pylsl
import pytest
from waiting import wait_until

from mecg.acquire.camera_driver import CameraConfig, CameraDriver, open_source
from mecg.acquire.errors import AcquireError, DeviceNotFoundError
from mecg.acquire.sim_world import DeviceTiming, Timeline, TriggerLine
from mecg.acquire.virtual_camera import VirtualCamera
from mecg.synth import Subject, Trial, TrialConfig


def _sid() -> str:
    return f"test-cam-{uuid.uuid4().hex[:8]}"


def _inlet(source_id: str) -> pylsl.StreamInlet:
    found = pylsl.resolve_byprop("source_id", source_id, timeout=5.0)
    assert found
    inlet = pylsl.StreamInlet(found[0], max_buflen=10)
    inlet.open_stream(timeout=5.0)
    return inlet


def _pull_until(inlet: pylsl.StreamInlet, n: int, seconds: float) -> tuple[np.ndarray, np.ndarray]:
    frames, stamps = [], []
    end = time.monotonic() + seconds
    while sum(len(t) for t in stamps) < n and time.monotonic() < end:
        d, t = inlet.pull_chunk(timeout=0.05, max_samples=256, as_numpy=True)
        if len(t):
            frames.append(d)
            stamps.append(t)
    return np.concatenate(frames).view(np.uint8), np.concatenate(stamps)


def _video(path: Path, n: int = 24, fps: float = 30.0) -> list[np.ndarray]:
    """Write a small MJPG video whose frames differ (a moving bar); return the BGR frames written."""
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (64, 48))
    assert w.isOpened()
    frames = []
    for i in range(n):
        img = np.full((48, 64, 3), 40, np.uint8)
        img[:, (2 * i) % 56 : (2 * i) % 56 + 8] = (200, 120, 30)
        w.write(img)
        frames.append(img)
    w.release()
    return frames


def test_video_file_with_roi_resize_and_grey(tmp_path: Path) -> None:
    path = tmp_path / "face.avi"
    _video(path)
    cfg = CameraConfig(camera=str(path), roi=(8, 4, 48, 40), size=(24, 20), gray=True, source_id=_sid())
    drv = CameraDriver(cfg)
    assert drv.connect() == (20, 24)
    inlet = _inlet(drv.source_id)
    info = inlet.info(timeout=5.0)
    drv.start()
    frames, ts = _pull_until(inlet, 24, 5.0)
    assert drv.finished.wait(5.0)
    drv.close()
    assert len(ts) == 24 and drv.frames == 24 and drv.dropped == 0
    # the same frames, decoded and processed independently
    cap = cv2.VideoCapture(str(path))
    for i in range(24):
        _, bgr = cap.read()
        crop = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)[4:44, 8:56]
        want = cv2.cvtColor(cv2.resize(crop, (24, 20), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
        assert np.array_equal(frames[i].reshape(20, 24), want)
    assert np.allclose(np.diff(ts), 1 / 30.0, atol=1e-6)  # stamped on the file's own schedule
    d = info.desc()
    assert (info.type(), info.channel_format(), info.channel_count(), info.nominal_srate()) == (
        "VideoRaw",
        pylsl.cf_int8,
        480,
        30.0,
    )
    assert [d.child_value(k) for k in ("width", "height", "channels", "pixel_format", "can_drop_samples")] == [
        "24",
        "20",
        "1",
        "mono8",
        "true",
    ]
    assert (
        d.child("acquisition").child_value("source") == "file"
        and d.child("acquisition").child_value("roi") == "8,4,48,40"
    )


def test_video_file_in_colour_is_rgb(tmp_path: Path) -> None:
    path = tmp_path / "c.avi"
    written = _video(path, n=3)
    drv = CameraDriver(CameraConfig(camera=str(path), realtime=False, source_id=_sid()))
    assert drv.connect() == (48, 64, 3)
    inlet = _inlet(drv.source_id)
    info = inlet.info(timeout=5.0)
    assert info.desc().child_value("pixel_format") == "rgb8" and info.channel_count() == 48 * 64 * 3
    with drv:
        frames, _ = _pull_until(inlet, 3, 5.0)
    img = frames[1].reshape(48, 64, 3)
    bar = written[1][:, 3]  # BGR (200, 120, 30) -> RGB (30, 120, 200), give or take JPEG
    assert np.abs(img[:, 3].astype(int) - bar[:, ::-1].astype(int)).max() < 12


def test_virtual_camera_frames_stamps_drops_and_led(tmp_path: Path) -> None:
    trial = Trial(Subject.random("S05", 5), 0, TrialConfig(duration_s=20.0, fps=60.0, width=96, height=72))
    timeline = Timeline()
    line = TriggerLine(np.array([[0.8, 0.9], [1.6, 1.7]]))  # two pulses lighting the LED
    timing = DeviceTiming(clock_offset_s=0.0, drift_ppm=200.0, latency_s=0.015, jitter_s=0.002)
    cam = VirtualCamera(trial, timeline=timeline, line=line, timing=timing, drop_prob=0.1, seed=3)
    drv = CameraDriver(CameraConfig(camera="virtual", source_id=_sid()), source=cam)
    assert drv.connect() == (72, 96)
    inlet = _inlet(drv.source_id)
    drv.start()
    head, head_ts = _pull_until(inlet, 1, 2.0)  # frames are coming: run past both LED pulses, stop, take everything
    wait_until(lambda: drv.frames >= 110, 15.0)  # ~2 s of the trial at 60 fps with 10 % dropped
    drv.stop()
    tail, tail_ts = _pull_until(inlet, drv.frames - len(head_ts), 3.0)
    drv.close()
    frames, ts = np.concatenate([head, tail]), np.concatenate([head_ts, tail_ts])
    assert len(ts) == drv.frames >= 90 and drv.dropped > 3
    # stamps are the exposure starts on the host clock: frame numbers follow from them exactly
    num = np.round((ts - timeline.t0 - trial.config.camera.start_s) * cam._rate).astype(int)
    assert np.allclose(ts, timeline.t0 + cam.frame_time(num), atol=1e-9)
    assert drv.dropped == int(np.sum(np.diff(num) - 1))  # counted from the frame counter
    # the frames are the trial's frames; the LED lights during the pulses
    x0, y0, x1, y1 = trial.config.led.box(96, 72)
    led = frames.reshape(-1, 72, 96)[:, (y0 + y1) // 2, (x0 + x1) // 2].astype(int)  # the LED's centre pixel
    exp = line.exposure_level(cam.frame_time(num), trial.config.exposure_s)
    assert (exp > 0.99).sum() >= 6 and led[exp > 0.99].min() > 200 and led[exp == 0].max() < 60
    j = len(num) // 2
    trial.led_level[num[j] % trial.n_frames] = exp[j]
    assert np.array_equal(frames[j].reshape(72, 96), trial.frame(num[j] % trial.n_frames))


def test_grab_time_stamps_when_the_source_has_none() -> None:
    trial = Trial(Subject.random("S05", 5), 0, TrialConfig(duration_s=10.0, fps=50.0, width=64, height=48))
    timeline = Timeline()
    cam = VirtualCamera(
        trial, timeline=timeline, stamps="none", timing=DeviceTiming(clock_offset_s=0.0, latency_s=0.02, jitter_s=0.0)
    )
    drv = CameraDriver(CameraConfig(camera="virtual", latency_s=0.02, source_id=_sid(), rt_priority=5), source=cam)
    drv.connect()
    inlet = _inlet(drv.source_id)
    with drv:
        _, ts = _pull_until(inlet, 40, 3.0)
    assert drv.priority == "SCHED_FIFO 5" or "refused" in drv.priority  # depends on the user's rights
    num = np.round((ts - timeline.t0 - trial.config.camera.start_s) * 50.0).astype(int)
    err = ts - (timeline.t0 + cam.frame_time(num))  # grab time minus the configured latency vs exposure start
    assert np.median(np.abs(err)) < 0.003


def test_camera_errors(tmp_path: Path) -> None:
    with pytest.raises(DeviceNotFoundError, match="not found"):
        open_source(CameraConfig(camera="7"))
    with pytest.raises(DeviceNotFoundError, match="not found"):
        open_source(CameraConfig(camera=str(tmp_path / "missing.avi")))
    junk = tmp_path / "junk.avi"
    junk.write_bytes(b"not a video" * 100)
    with pytest.raises(DeviceNotFoundError, match="cannot read video file"):
        open_source(CameraConfig(camera=str(junk)))
    path = tmp_path / "v.avi"
    _video(path, n=2)
    with pytest.raises(AcquireError, match="outside"):
        CameraDriver(CameraConfig(camera=str(path), roi=(50, 0, 30, 10))).connect()
