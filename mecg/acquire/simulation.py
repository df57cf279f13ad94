"""A whole simulated lab: one synthetic participant seen by a virtual amplifier, trigger box and camera.

The three share one true timeline and one trigger line: the box's pulses appear on the
amplifier's TRIG channel and as the LED in the video, and the camera's exposures on the
amplifier's STROBE channel, as in the real setup (hardware/wiring.md). The amplifier and the box
sit behind pseudo-terminals whose stable paths the ordinary drivers open; the camera is a frame
source for the camera driver in the same process. :meth:`Simulation.truth` tells a test or a
user what really happened (trial, timeline origin, pulses).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from mecg.acquire.sim_world import Timeline, TriggerLine
from mecg.acquire.states import EcgProtocol
from mecg.acquire.virtual_amplifier import VirtualAmplifier, VirtualCyton, amplifier_timing
from mecg.acquire.virtual_camera import VirtualCamera, camera_timing
from mecg.acquire.virtual_trigger_box import VirtualTriggerBox
from mecg.synth import Subject, Trial, TrialConfig


def default_link_dir() -> Path:
    """Where ``mecg simulate`` puts its port links by default (one folder per user)."""
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"mecg-sim-{uid}"


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate. Times in s, rates in Hz, latency/jitter in s, drift in ppm.

    ``duration_s`` is the synthetic trial's length (played in a loop); ``me_per_min`` /
    ``mae_per_min`` the participant's expression rates (per minute). ``protocol``: the
    amplifier's (``"mecg"`` or ``"cyton"``). ``trigger_box``: simulate the box (the line then
    carries only its pulses; without it, the trial's own pulse schedule); ``trigger_autostart``:
    the box runs its schedule from power-up. ``amp_*``: the amplifier's clock and link;
    ``camera_*``: the camera's exposure-to-host latency and jitter (``None``: the trial's).
    """

    seed: int = 0
    me_per_min: float = 2.5
    mae_per_min: float = 2.0
    duration_s: float = 60.0
    fps: float = 150.0
    width: int = 640
    height: int = 480
    color: bool = False
    protocol: str = "mecg"
    rate_hz: int | None = None
    trigger_box: bool = True
    trigger_autostart: bool = False
    camera: bool = True
    camera_stamps: str = "exposure"
    camera_drop_prob: float = 0.0
    amp_drift_ppm: float | None = None
    amp_latency_s: float | None = None
    amp_jitter_s: float | None = None
    camera_latency_s: float | None = None
    camera_jitter_s: float | None = None
    link_dir: str | None = None


class Simulation:
    """The virtual devices of one :class:`SimulationConfig`; :meth:`start` / :meth:`stop` (or ``with``)."""

    def __init__(self, config: SimulationConfig) -> None:
        c = self.config = config
        if c.protocol not in tuple(EcgProtocol):
            raise ValueError(f"protocol must be 'mecg' or 'cyton', got {c.protocol!r}")
        self.link_dir = Path(c.link_dir) if c.link_dir else default_link_dir()
        self.link_dir.mkdir(parents=True, exist_ok=True)
        self.trial = Trial(
            Subject.random(f"S{c.seed:02d}", c.seed),
            0,
            TrialConfig(
                duration_s=c.duration_s,
                fps=c.fps,
                width=c.width,
                height=c.height,
                color=c.color,
                me_per_min=c.me_per_min,
                mae_per_min=c.mae_per_min,
            ),
        )
        self.timeline = Timeline()
        self.line = TriggerLine() if c.trigger_box else TriggerLine(self.trial.pulses, c.duration_s)
        timing = amplifier_timing(self.trial, c.seed)
        timing = replace(
            timing,
            **{
                k: v
                for k, v in (
                    ("drift_ppm", c.amp_drift_ppm),
                    ("latency_s", c.amp_latency_s),
                    ("jitter_s", c.amp_jitter_s),
                )
                if v is not None
            },
        )
        common = {"timeline": self.timeline, "line": self.line, "timing": timing, "seed": c.seed}
        if c.protocol == EcgProtocol.MECG:
            self.amplifier: VirtualAmplifier | VirtualCyton = VirtualAmplifier(
                self.trial, link=self.link_dir / "amplifier", rate_hz=c.rate_hz or 1000, **common
            )
        else:
            if c.rate_hz not in (None, 250):
                raise ValueError("a Cyton streams 250 Hz")
            self.amplifier = VirtualCyton(self.trial, link=self.link_dir / "amplifier", **common)
        self.trigger_box = (
            VirtualTriggerBox(
                self.line,
                link=self.link_dir / "trigger",
                timeline=self.timeline,
                seed=c.seed,
                autostart=c.trigger_autostart,
            )
            if c.trigger_box
            else None
        )
        cam_timing = camera_timing(self.trial)
        if c.camera_latency_s is not None:
            cam_timing = replace(cam_timing, latency_s=c.camera_latency_s)
        if c.camera_jitter_s is not None:
            cam_timing = replace(cam_timing, jitter_s=c.camera_jitter_s)
        self.camera = (
            VirtualCamera(
                self.trial,
                timeline=self.timeline,
                line=self.line,
                timing=cam_timing,
                stamps=c.camera_stamps,
                drop_prob=c.camera_drop_prob,
                seed=c.seed,
            )
            if c.camera
            else None
        )

    @property
    def amplifier_rate_hz(self) -> float:
        return float(getattr(self.amplifier, "rate_hz", 250))

    def start(self) -> Simulation:
        """Power the serial devices up (their threads run until :meth:`stop`)."""
        self.amplifier.start()
        if self.trigger_box is not None:
            self.trigger_box.start()
        return self

    def stop(self) -> None:
        """Stop every device and remove the port links."""
        self.amplifier.stop()
        if self.trigger_box is not None:
            self.trigger_box.stop()

    def __enter__(self) -> Simulation:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def truth(self) -> dict:
        """What really happened, as plain JSON: settings, the timeline origin on the LSL clock, the pulses so far.

        Times are on the true timeline (s since the simulation started; ``t0_lsl_s`` on the host's
        LSL clock). ``amplifier.sample_clock``: sample ``k`` of the amplifier's current sample grid
        is at true time ``t0_s + k / rate_hz`` (``rate_hz`` includes its drift; a new grid starts
        when the amplifier powers up again or changes rate). ``camera``: device frame ``i`` starts
        its exposure at true time ``start_s + i / rate_hz`` and integrates light for
        ``exposure_s``; its stamp on the LSL clock is that time + ``t0_lsl_s``.
        """
        now = self.timeline.now()
        pulses = self.line.pulses(0.0, now + 1.0)
        clock = self.amplifier.clock
        return {
            "config": asdict(self.config),
            "t0_lsl_s": self.timeline.t0,
            "amplifier": {
                "port": self.amplifier.path,
                "protocol": self.config.protocol,
                "rate_hz": self.amplifier_rate_hz,
                "timing": asdict(self.amplifier.timing),
                "sample_clock": {"t0_s": float(clock.t0), "rate_hz": float(clock.rate)},
            },
            "trigger_box": {"port": self.trigger_box.path} if self.trigger_box else None,
            "camera": {
                "fps": self.config.fps,
                "size": [self.config.width, self.config.height],
                "start_s": self.trial.config.camera.start_s,
                "rate_hz": self.camera.rate_hz,
                "exposure_s": float(self.camera.exposure_s),
            }
            if self.camera
            else None,
            "pulses_true_s": np.round(pulses, 6).tolist(),
        }

    def write_truth(self, path: str | os.PathLike | None = None) -> Path:
        """Write :meth:`truth` as JSON (default ``<link_dir>/simulation.json``)."""
        p = Path(path) if path else self.link_dir / "simulation.json"
        p.write_text(json.dumps(self.truth(), indent=2) + "\n")
        return p
