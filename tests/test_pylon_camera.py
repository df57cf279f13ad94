"""Basler pylon cameras (issue #20 item 5), tested against pylon's camera emulator (``PYLON_CAMEMU=1``).

The emulator (``Basler Emulation (0815-0000)``, 1024x1040 Mono8) has the trigger, line and
chunk-mode nodes but no chunk parser and reports timestamp 0, so the chunk-timestamp path is
tested by feeding the source's clock map synthetic camera ticks. Skipped where pypylon or the
emulator is not available.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

os.environ.setdefault("PYLON_CAMEMU", "1")  # before pypylon enumerates

import numpy as np
import pytest
from waiting import wait_until as wait_for

pylon = pytest.importorskip("pypylon.pylon", reason="pypylon is not installed (pip install mecg[devices])")

from mecg.acquire.camera_driver import CameraConfig, CameraDriver  # noqa: E402
from mecg.acquire.errors import AcquireError, DeviceNotFoundError, DeviceRefusedError, DeviceTimeoutError  # noqa: E402
from mecg.acquire.pylon_camera import PylonCamera, list_pylon_cameras  # noqa: E402
from mecg.acquire.recorder import Recorder, RecorderConfig  # noqa: E402
from mecg.acquire.stream_metadata import StreamQuery  # noqa: E402
from mecg.cli.main import main  # noqa: E402
from mecg.session import open_session  # noqa: E402

if not any(c["class"] == "BaslerCamEmu" for c in list_pylon_cameras()):
    pytest.skip("pylon's camera emulator is not available (PYLON_CAMEMU)", allow_module_level=True)


def test_emulator_camera_into_a_session(tmp_path: Path) -> None:
    sid = f"test-pylon-{uuid.uuid4().hex[:8]}"
    cfg = CameraConfig(camera="pylon", fps=50.0, size=(128, 130), source_id=sid, strobe_line="Line2", exposure_s=0.002)
    drv = CameraDriver(cfg)
    assert drv.connect() == (130, 128)
    assert drv.source.exposure_s == pytest.approx(0.002)
    out = tmp_path / "pylon.h5"
    rec = Recorder(
        RecorderConfig(path=out, queries=(StreamQuery(source_ids=(sid,)),), wait_s=5.0, settle_s=0.2, min_free_mb=0)
    )
    try:
        rec.start()
        drv.start()
        assert wait_for(lambda: bool(rec.status().streams) and rec.status().streams[0].samples >= 60, 30.0)
    finally:
        rec.stop()
        drv.close()
    assert not drv.error
    with open_session(out) as s:
        video = s.stream(kind="video")
        frames, t = video.data[:], video.timestamps[:]
        header = video.info.lsl_header
    assert frames.shape[1:] == (130, 128) and frames.shape[0] >= 60
    assert frames.std() > 0  # the emulator's test image, not a blank
    assert np.all(np.diff(t) > 0)
    assert "<exposure_s>0.002</exposure_s>" in header
    assert "Line2 = ExposureActive" in header and "free run" in header
    # the emulator reports no timestamps: the header says the frames carry host times, and why
    assert "host arrival less the exposure time" in header and "emulator" in header
    # frame numbers are the stream's BlockIDs; the emulator makes a frame whenever a buffer is free,
    # so it never skips one: no gap, no drop (drops on a real camera are BlockID/frame-counter gaps)
    assert drv.frames >= 60 and drv.dropped == 0


def test_trigger_and_strobe_lines_are_set_and_undone() -> None:
    cam = PylonCamera(trigger_line="Line1", strobe_line="Line2", first_frame_timeout_s=0.5)
    try:
        nm = cam.cam.GetNodeMap()
        assert nm.GetNode("TriggerSelector").GetValue() == "FrameStart"
        assert nm.GetNode("TriggerMode").GetValue() == "On" and nm.GetNode("TriggerSource").GetValue() == "Line1"
        assert (
            nm.GetNode("LineSelector").GetValue() == "Line2" and nm.GetNode("LineSource").GetValue() == "ExposureActive"
        )
        assert cam.acquisition["trigger"] == "FrameStart on Line1, rising edge"
        with pytest.raises(DeviceTimeoutError, match="no trigger pulse on Line1"):
            cam.read()  # nothing drives Line1
    finally:
        cam.close()
    cam = PylonCamera()
    try:
        assert cam.cam.GetNodeMap().GetNode("TriggerMode").GetValue() == "Off"  # close() undid the trigger mode
    finally:
        cam.close()


def test_each_trigger_exposes_one_frame_numbered_by_block_id() -> None:
    cam = PylonCamera(trigger_line="Software")
    try:
        frames = []
        for _ in range(5):
            cam.trigger()
            frames.append(cam.read())
    finally:
        cam.close()
    numbers = [f.number for f in frames]
    assert numbers == list(range(numbers[0], numbers[0] + 5))
    assert all(f.image.shape == (1040, 1024) and f.image.dtype == np.uint8 for f in frames)
    assert np.all(np.diff([f.t_s for f in frames]) > 0)


def test_camera_ticks_are_mapped_to_the_lsl_clock_without_the_arrival_jitter() -> None:
    """The chunk-timestamp path (which the emulator cannot exercise): ticks of a camera clock 30 ppm
    fast, frames arriving exposure + 3 ms + up to 4 ms of jitter after their exposure start."""
    cam = PylonCamera(exposure_s=0.002)
    try:
        rng = np.random.default_rng(2)
        t0, fps, drift = 1000.0, 150.0, 30e-6
        start = t0 + np.arange(3000) / fps  # true exposure starts, host clock
        ticks = np.round((start - t0 + 5.0) * (1 + drift) * cam.tick_hz).astype(np.int64)
        arrival = start + cam.exposure_s + 0.003 + rng.exponential(0.001, start.size).clip(0, 0.004)
        mapped = np.array([cam._stamp(int(k), a) for k, a in zip(ticks, arrival)])
        assert cam.timestamps == "exposure"
        assert "frame arrivals" in cam.acquisition["timestamp_source"]
    finally:
        cam.close()
    err = mapped[1000:] - start[1000:]
    assert np.std(err) < 1e-4  # the jitter is gone
    assert np.median(err) == pytest.approx(0.003, abs=3e-4)  # the transfer delay stays (--latency-ms)


def test_pylon_errors_are_clear(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(DeviceNotFoundError, match="serial 1234"):
        PylonCamera("1234")
    with pytest.raises(DeviceRefusedError, match="TriggerSource cannot be 'Line9'"):
        PylonCamera(trigger_line="Line9")
    with pytest.raises(AcquireError, match="pylon cameras only"):
        CameraDriver(CameraConfig(camera="sim", trigger_line="Line1")).connect()
    rc = main(["stream", "camera", "--camera", "pylon", "--strobe-line", "Line7", "--lsl-local", "--seconds", "1"])
    err = capsys.readouterr().err
    assert rc == 2 and "LineSelector cannot be 'Line7'" in err and "Traceback" not in err
