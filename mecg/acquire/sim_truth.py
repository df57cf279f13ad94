"""What a simulated recording really showed: the synthetic participant's expressions on the recorded frames.

A virtual camera stamps frame ``i`` of its device clock with its exposure start on the host's
LSL clock, ``t0 + start + i / rate``, and plays the trial's frame ``i mod n_frames``. So every
recorded frame's device index follows from its timestamp, and each of the trial's annotated
expressions (repeated on every loop of the trial) lands on the recorded frames that showed it.
Expressions whose onset, apex or offset frame was not recorded are left out.
"""

from __future__ import annotations

import numpy as np

from mecg.acquire.virtual_camera import VirtualCamera
from mecg.session import Annotation


def recorded_annotations(camera: VirtualCamera, frame_stamps_s: np.ndarray) -> list[Annotation]:
    """The trial's annotations mapped onto recorded frames (indices into the recorded video stream)."""
    ts = np.asarray(frame_stamps_s, dtype=np.float64)
    if ts.size == 0:
        return []
    start = float(camera.frame_time(0))
    period = float(camera.frame_time(1)) - start
    device = np.rint((ts - camera.timeline.t0 - start) / period).astype(np.int64)
    where = {int(i): r for r, i in enumerate(device)}
    n = camera.trial.n_frames
    out = []
    for loop in range(int(device.min()) // n, int(device.max()) // n + 1):
        for a in camera.trial.annotations():
            idx = [loop * n + f for f in (a.onset_frame, a.apex_frame, a.offset_frame)]
            if all(i in where for i in idx):
                out.append(Annotation(where[idx[0]], where[idx[1]], where[idx[2]], a.type, a.aus, a.emotion))
    return out
