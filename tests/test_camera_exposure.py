"""The camera driver publishes the exposure time in its stream header (``desc/exposure_s``) when it is known.

Known means: declared by the user (``--exposure-ms``), the virtual camera's true one, or a V4L2
camera in manual exposure (OpenCV passes ``exposure_absolute`` through in 100 us steps). Anything
else (auto exposure, other backends, normalised property ranges, video files) publishes nothing,
so ``mecg sync`` warns and estimates instead of trusting a number in unknown units. The live
recording and sync of a simulated lab (header exposure = truth, no "exposure unknown" warning)
is in tests/test_sync_live.py.
"""

from __future__ import annotations

import re
import threading
import uuid
from pathlib import Path

import cv2
import numpy as np
import pylsl
import pytest

from mecg.acquire.camera_driver import (
    CameraConfig,
    VideoFileSource,
    v4l2_exposure_s,
    video_stream_info,
)
from mecg.acquire.errors import AcquireError
from mecg.acquire.virtual_camera import VirtualCamera
from mecg.cli.main import main
from mecg.synth import Subject, Trial, TrialConfig


def _exposure_in(xml: str) -> float | None:
    m = re.search(r"<exposure_s>([^<]*)</exposure_s>", xml)
    return float(m.group(1)) if m else None


class FakeCapture:
    """The three things :func:`v4l2_exposure_s` asks an OpenCV capture."""

    def __init__(self, backend: str, auto: float, exposure: float) -> None:
        self.backend, self.props = backend, {cv2.CAP_PROP_AUTO_EXPOSURE: auto, cv2.CAP_PROP_EXPOSURE: exposure}

    def getBackendName(self) -> str:  # OpenCV's name
        return self.backend

    def get(self, prop: int) -> float:
        return self.props[prop]


@pytest.mark.parametrize(
    ("backend", "auto", "value", "expected_s"),
    [
        ("V4L2", 1, 40, 0.004),  # manual exposure: 40 x 100 us
        ("V4L2", 1, 1, 0.0001),
        ("V4L2", 3, 40, None),  # aperture priority (auto): the camera changes it
        ("V4L2", 1, 0, None),
        ("V4L2", 1, -1, None),  # OpenCV's "cannot read"
        ("MSMF", 1, -6, None),  # Windows: log2 seconds in other units; not read
        ("AVFOUNDATION", 1, 0.5, None),
    ],
)
def test_v4l2_exposure_only_in_known_units(
    backend: str, auto: float, value: float, expected_s: float | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENCV_VIDEOIO_V4L_RANGE_NORMALIZED", raising=False)
    got = v4l2_exposure_s(FakeCapture(backend, auto, value))
    assert got == (pytest.approx(expected_s) if expected_s is not None else None)


def test_normalised_v4l2_ranges_are_not_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENCV_VIDEOIO_V4L_RANGE_NORMALIZED", "1")
    assert v4l2_exposure_s(FakeCapture("V4L2", 1, 0.02)) is None


def _clip(path: Path) -> Path:
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 50.0, (32, 24))
    for i in range(20):
        w.write(np.full((24, 32, 3), 10 * i, np.uint8))
    w.release()
    return path


def test_header_carries_the_known_exposure_only(tmp_path: Path) -> None:
    trial = Trial(Subject.random("S02", 2), 0, TrialConfig(duration_s=5.0, fps=60.0, width=32, height=24))
    virtual = VirtualCamera(trial)
    shape = (24, 32)
    xml = video_stream_info("C", "c", shape, 60.0, virtual, CameraConfig("sim")).as_xml()
    assert _exposure_in(xml) == pytest.approx(trial.config.exposure_s, rel=1e-9)
    assert "virtual camera (true)" in xml
    f = VideoFileSource(str(_clip(tmp_path / "clip.avi")))
    try:
        assert _exposure_in(video_stream_info("C", "c", shape, 50.0, f, CameraConfig("x")).as_xml()) is None
        declared = video_stream_info("C", "c", shape, 50.0, f, CameraConfig("x", exposure_s=0.0025)).as_xml()
        assert _exposure_in(declared) == 0.0025 and "declared (--exposure-ms)" in declared
        # the user's declaration wins over the source's own
        over = video_stream_info("C", "c", shape, 60.0, virtual, CameraConfig("sim", exposure_s=0.002)).as_xml()
        assert _exposure_in(over) == 0.002
    finally:
        f.close()
    for bad in (0.0, -0.001, float("nan"), 11.0):
        with pytest.raises(AcquireError, match="exposure"):
            CameraConfig("x", exposure_s=bad)


def test_stream_camera_exposure_ms_reaches_the_header(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    clip = _clip(tmp_path / "clip.avi")
    sid = f"test-exposure-{uuid.uuid4().hex[:8]}"
    argv = ["stream", "camera", "--camera", str(clip), "--loop", "--gray", "--source-id", sid, "--exposure-ms", "3.5"]
    rc: list[int] = []
    th = threading.Thread(target=lambda: rc.append(main([*argv, "--seconds", "2"])), daemon=True)
    th.start()
    try:
        found = pylsl.resolve_byprop("source_id", sid, timeout=10.0)
        assert found
        inlet = pylsl.StreamInlet(found[0])
        xml = inlet.info(timeout=5.0).as_xml()
        inlet.close_stream()
    finally:
        th.join(20.0)
    assert rc == [0]
    assert _exposure_in(xml) == pytest.approx(0.0035)
    assert "exposure 3.5 ms (declared" in capsys.readouterr().err
    for bad in ("0", "-1", "nan", "20000"):
        with pytest.raises(SystemExit) as exit_info:  # argparse refuses it before any device is opened
            main(["stream", "camera", "--camera", str(clip), "--exposure-ms", bad])
        assert exit_info.value.code == 2 and "--exposure-ms" in capsys.readouterr().err
