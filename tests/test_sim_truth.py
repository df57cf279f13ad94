"""A simulated recording's annotations land on the recorded frames that showed the expressions."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mecg.acquire.sim_truth import recorded_annotations
from mecg.acquire.virtual_camera import VirtualCamera
from mecg.session import SessionWriter, StreamInfo, open_session
from mecg.synth import Subject, Trial, TrialConfig


def test_recorded_annotations_follow_device_frames_and_loops(tmp_path: Path) -> None:
    trial = Trial(Subject.random("S01", 4), 0, TrialConfig(duration_s=20.0, fps=30.0, width=64, height=48))
    truth = trial.annotations()
    assert truth
    cam = VirtualCamera(trial)
    n = trial.n_frames
    first = n - 100  # the recording starts late in the first loop and runs into the second
    device = np.arange(first, first + 2 * n)
    device = device[device % 7 != 3]  # some frames were dropped
    stamps = cam.timeline.t0 + cam.frame_time(device)
    ann = recorded_annotations(cam, stamps)
    assert ann
    for a in ann:
        d = device[[a.onset_frame, a.apex_frame, a.offset_frame]] % n
        assert any((d == [t.onset_frame, t.apex_frame, t.offset_frame]).all() and t.type == a.type for t in truth)
    # written into a session, the table reads back and validates against the video
    path = tmp_path / "rec.h5"
    with SessionWriter(path, "S01") as w:
        k = w.add_stream(StreamInfo("cam", "Video", kind="video", frame_shape=(2, 2), nominal_srate_hz=30))
        w.append(k, np.zeros((device.size, 2, 2), np.uint8), stamps)
    with open_session(path, writable=True) as s:
        s.write_annotations(ann, k)
        assert s.annotations == sorted(ann, key=lambda a: (a.onset_frame, a.offset_frame))
