"""Recording faults for synthetic sessions: what real labs get and sync must survive.

Each fault changes a :class:`~mecg.synth.participant.TrialConfig` so the session written from it
holds that fault, with truth still on the unbroken device clocks:

* ``none``: a clean recording;
* ``ecg_gap``: the amplifier's samples miss the recording for a few seconds (driver restart);
* ``camera_gap``: the camera's frames miss the recording for a few seconds;
* ``clock_reset``: the camera's sender clock jumps (a reboot of the camera PC): its LSL
  timestamps and clock offsets change by the jump mid-recording;
* ``led_between``: a 1 ms exposure, so nearly every LED edge falls between two exposures and
  the video shows only which frame lit first.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from mecg.synth.clocks import DeviceClock
from mecg.synth.participant import TrialConfig

FAULTS = ("none", "ecg_gap", "camera_gap", "clock_reset", "led_between")


def random_clocks(rng: np.random.Generator) -> tuple[DeviceClock, DeviceClock]:
    """Camera and amplifier clocks as sync tests draw them: camera start and sender offset -2..+2 s, drift
    -100..+100 ppm on both devices, 30 ms camera and 4 ms amplifier latency with timestamp jitter."""
    cam = DeviceClock(
        drift_ppm=float(rng.uniform(-100, 100)),
        offset_s=float(rng.uniform(-2, 2)),
        latency_s=0.03,
        jitter_s=0.002,
        start_s=float(rng.uniform(-2, 2)),
    )
    amp = DeviceClock(drift_ppm=float(rng.uniform(-100, 100)), latency_s=0.004, jitter_s=0.0005)
    return cam, amp


def with_fault(config: TrialConfig, fault: str, rng: np.random.Generator) -> TrialConfig:
    """``config`` with ``fault`` (one of :data:`FAULTS`) placed at a random time in its middle half."""
    if fault not in FAULTS:
        raise ValueError(f"unknown fault {fault!r}; choose one of {', '.join(FAULTS)}")
    d = config.duration_s
    at = float(rng.uniform(0.3 * d, 0.6 * d))
    length = float(rng.uniform(3.0, 6.0))
    if fault == "ecg_gap":
        return replace(config, ecg_gaps=((at, length),))
    if fault == "camera_gap":
        return replace(config, camera_gaps=((at, length),))
    if fault == "clock_reset":
        cam = config.camera
        jump = float(rng.choice([-1.0, 1.0]) * rng.uniform(0.3, 5.0))
        return replace(config, camera=replace(cam, reset_at_s=at, offset_after_reset_s=cam.offset_s + jump))
    if fault == "led_between":
        return replace(config, exposure_s=min(0.001, 0.5 / config.fps))
    return config
