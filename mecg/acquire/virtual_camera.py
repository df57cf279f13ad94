"""A virtual camera: a synthetic trial's face video, delivered in real time on its own drifting clock.

Frame ``i`` is exposed at true time ``start + i / (fps * (1 + drift))`` and reaches the host
``latency + |N(0, jitter)|`` later (at least one exposure later). Its trigger LED shows the
shared trigger line integrated over the exposure, so a virtual trigger box lights it. Stamps are
the exposure start on the host's clock (as V4L2 gives), or ``None`` to make the driver stamp the
grab time. A camera that cannot keep up (rendering slower than the frame rate) skips frames, as
a real one's full buffer does; ``drop_prob`` drops frames at random besides.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from pylsl import local_clock

from mecg.acquire.frames import Frame
from mecg.acquire.sim_world import DeviceTiming, Timeline, TriggerLine
from mecg.acquire.states import FrameSourceKind
from mecg.synth.participant import Trial


def camera_timing(trial: Trial) -> DeviceTiming:
    """The trial's camera clock: drift, exposure-to-host latency and jitter."""
    c = trial.config.camera
    return DeviceTiming(clock_offset_s=0.0, drift_ppm=c.drift_ppm, latency_s=c.latency_s, jitter_s=c.jitter_s)


class VirtualCamera:
    """A :class:`~mecg.acquire.frames.FrameSource` playing ``trial``'s video (looped) in real time.

    Parameters
    ----------
    trial
        What it films.
    timeline, line
        Shared with the other virtual devices (default: its own; the trial's trigger schedule).
    timing
        Drift, latency, jitter (default :func:`camera_timing`).
    stamps
        ``"exposure"``: frames carry their exposure start on the host clock; ``"none"``: they do not.
    drop_prob
        Probability that a frame is lost (never delivered).
    seed
        Seeds the jitter and the drops.
    """

    kind = FrameSourceKind.VIRTUAL

    def __init__(
        self,
        trial: Trial,
        *,
        timeline: Timeline | None = None,
        line: TriggerLine | None = None,
        timing: DeviceTiming | None = None,
        stamps: str = "exposure",
        drop_prob: float = 0.0,
        seed: int = 0,
    ) -> None:
        if stamps not in ("exposure", "none"):
            raise ValueError("stamps must be 'exposure' or 'none'")
        c = trial.config
        self.trial = trial
        self.timeline = timeline or Timeline()
        self.line = line or TriggerLine(trial.pulses, c.duration_s)
        self.timing = timing or camera_timing(trial)
        self.stamps, self.drop_prob = stamps, drop_prob
        self.fps = float(c.fps)
        self.exposure_s = c.exposure_s
        self._rate = c.fps * (1.0 + self.timing.drift_ppm * 1e-6)
        self._start = c.camera.start_s
        self._lag_s = max(self.timing.latency_s, self.exposure_s)  # exposure start -> on the host
        self._rng = np.random.default_rng([seed, 0xCA3])
        self._next: int | None = None
        self.name = f"virtual camera ({trial.subject.subject_id}, trial {trial.index})"
        self.uid = f"sim-{trial.subject.seed}-{trial.index}"
        self.frames_skipped = 0
        #: Called with the device index of every frame delivered (e.g. an expression journal's ``frame_shown``).
        self.on_frame: Callable[[int], None] | None = None

    @property
    def rate_hz(self) -> float:
        """True frame rate (Hz): the nominal one times ``1 + drift``."""
        return self._rate

    @property
    def timestamps(self) -> str:
        """What the frames' stamps are: ``"exposure"`` or ``"grab"`` (the driver's)."""
        return "exposure" if self.stamps == "exposure" else "grab"

    def frame_time(self, i: int | np.ndarray) -> np.ndarray | float:
        """True exposure start (s) of frame ``i``."""
        if isinstance(i, np.ndarray):
            return self._start + i.astype(np.float64) / self._rate
        return self._start + i / self._rate

    def _delivered_by(self, now: float) -> int:
        """The newest frame that would have reached the host by true time ``now`` (without jitter)."""
        return int(np.floor((now - self._lag_s - self._start) * self._rate))

    def read(self) -> Frame:
        """The next frame, when it is due (blocks)."""
        now = self.timeline.now()
        newest = self._delivered_by(now)
        if self._next is None:
            self._next = max(0, newest + 1)
        elif newest > self._next + 1:  # more than a frame late: the camera's buffer overflowed
            self.frames_skipped += newest - self._next
            self._next = newest
        while self.drop_prob and self._rng.random() < self.drop_prob:
            self._next += 1
        i = self._next
        self._next += 1
        t = float(self.frame_time(i))
        j = i % self.trial.n_frames
        self.trial.led_level[j] = float(self.line.exposure_level(np.array([t]), self.exposure_s)[0])
        image = self.trial.frame(j)
        jitter = abs(self._rng.normal(0.0, self.timing.jitter_s)) if self.timing.jitter_s else 0.0
        wait = self.timeline.host(t + self._lag_s + jitter) - local_clock()
        if wait > 0:
            time.sleep(wait)
        if self.on_frame is not None:
            self.on_frame(i)
        return Frame(image, self.timeline.host(t) if self.stamps == "exposure" else None, i)

    def close(self) -> None:
        """Nothing to release."""
