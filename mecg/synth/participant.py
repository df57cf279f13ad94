"""A synthetic participant and one trial of them: every stream, frame by frame or sample by sample.

A :class:`Trial` draws all its schedules up front (cheap: expressions, blinks, head pose, heart
beats, trigger pulses) and renders frames and ECG samples on demand, so the same object fills a
session file in a batch or plays the participant in real time inside a device simulator.
"""

from __future__ import annotations

import bisect
from dataclasses import asdict, dataclass, field, replace

import numpy as np
from scipy.signal import lfilter

from mecg.session import Annotation
from mecg.synth.clocks import DeviceClock, exposure_overlap, line_level, trigger_pulses
from mecg.synth.expressions import (
    BLINK_AMPLITUDE_SRC_PX,
    Bump,
    Expression,
    blink_closure,
    schedule_blinks,
    schedule_expressions,
    schedule_talk,
    talk_level,
)
from mecg.synth.face import Appearance, FaceRenderer, Led
from mecg.synth.heart import EcgArtefacts, Heart, HeartParams, draw_realistic_responses, draw_responses
from mecg.synth.identities import IDENTITY_NAMES, au_bumps
from mecg.synth.realism import RealismName, realism

#: The ECG stream's channels as the amplifier records them.
ECG_CHANNELS = ("ECG", "TRIG", "STROBE")
ECG_UNITS = ("mV", "bool", "bool")
#: True time (s) of the trial's stimulus onset (the clip's event code in the Markers stream).
STIMULUS_ONSET_S = 0.05


@dataclass(frozen=True)
class Subject:
    """A synthetic participant: how they look (face identity, framing) and how their heart behaves."""

    subject_id: str
    seed: int
    appearance: Appearance
    heart: HeartParams

    @classmethod
    def random(cls, subject_id: str, seed: int) -> Subject:
        """Draw a subject from ``seed`` (same seed, same subject); the face identity is ``seed`` modulo their count.

        In a dataset subject ``s`` has seed ``1000 x dataset seed + s``, so up to 8 subjects all look different.
        """
        rng = np.random.default_rng([seed, 0xFACE])
        appearance = replace(Appearance.random(rng), identity=IDENTITY_NAMES[seed % len(IDENTITY_NAMES)])
        return cls(subject_id, seed, appearance, HeartParams.random(rng))


@dataclass(frozen=True)
class TrialConfig:
    """Everything a trial's generator can vary. Times in s, rates in Hz, sizes in px.

    ``coupling`` scales the heart's response to expressions (0 = none, the null control).
    ``camera``/``amplifier`` are the device clocks (offset, drift, latency, jitter).
    ``exposure_s`` is the camera's exposure time (< frame period); ``strobe`` adds the camera's
    exposure output as an amplifier channel (all zero when false).
    ``ecg_gaps`` / ``camera_gaps``: ``(start_s, duration_s)`` spans of true time in which the
    amplifier's samples / the camera's frames never reach the recording (a driver restart, a
    cable pulled); the device clocks run on, so truth stays on the unbroken sample clock.
    ``realism`` (``"easy"``, ``"paper"``, ``"hard"``; :mod:`mecg.synth.realism`) sets the
    participant's confounds: face identities, unreliable heart responses, accelerations unrelated
    to the face, ECG artefacts, talking, lighting changes. The library default is ``"easy"``
    (the device simulators and sync tests want clean signals); ``mecg synth`` defaults to ``"paper"``.
    """

    duration_s: float = 60.0
    fps: float = 150.0
    width: int = 640
    height: int = 480
    color: bool = False
    exposure_s: float = 0.004
    ecg_rate_hz: float = 1000.0
    coupling: float = 1.0
    me_per_min: float = 2.5
    mae_per_min: float = 2.0
    blinks_per_min: float = 15.0
    head_motion: float = 1.0
    noise_sigma: float = 2.0
    strobe: bool = True
    led: Led = field(default_factory=Led)
    trigger_gap_s: tuple[float, float] = (2.0, 8.0)
    trigger_width_s: float = 0.05
    camera: DeviceClock = field(default_factory=lambda: DeviceClock(latency_s=0.030, jitter_s=0.002, start_s=0.1))
    amplifier: DeviceClock = field(default_factory=lambda: DeviceClock(latency_s=0.004, jitter_s=0.0005))
    ecg_gaps: tuple[tuple[float, float], ...] = ()
    camera_gaps: tuple[tuple[float, float], ...] = ()
    realism: RealismName = "easy"

    def __post_init__(self) -> None:
        realism(self.realism)  # a clear ValueError for an unknown name
        if not 0 < self.exposure_s < 1.0 / self.fps:
            object.__setattr__(self, "exposure_s", 0.6 / self.fps)

    def as_dict(self) -> dict:
        """Plain-JSON form (nested dataclasses become dicts)."""
        return asdict(self)


def _outside(t: np.ndarray, gaps: tuple[tuple[float, float], ...]) -> np.ndarray:
    """The times of ``t`` that fall in none of the ``(start_s, duration_s)`` gaps."""
    keep = np.ones(t.size, dtype=bool)
    for start, dur in gaps:
        keep &= ~((t >= start) & (t < start + dur))
    return t[keep]


def _ou(rng: np.random.Generator, n: int, dt: float, tau_s: float, sd: float) -> np.ndarray:
    """An Ornstein-Uhlenbeck process of ``n`` steps (stationary s.d. ``sd``, time constant ``tau_s``)."""
    a = np.exp(-dt / tau_s)
    x = lfilter([np.sqrt(1 - a * a) * sd], [1, -a], rng.standard_normal(n))
    return x + sd * rng.standard_normal() * a ** np.arange(1, n + 1)


class Trial:
    """One recorded trial of a subject.

    Parameters
    ----------
    subject
        The participant.
    index
        Trial number (0-based); with the subject's seed it seeds everything.
    config
        Generator settings.
    expressions
        A scripted list of expressions to use instead of drawing them (demos, tests).
    """

    def __init__(
        self, subject: Subject, index: int, config: TrialConfig, expressions: list[Expression] | None = None
    ) -> None:
        self.subject, self.index, self.config = subject, index, config
        c = config
        self.realism = r = realism(c.realism)
        rng = np.random.default_rng([subject.seed, index, 0x7121A1])
        # the realism's confounds draw from their own stream, so `easy` is the original world draw for draw
        xr = np.random.default_rng([subject.seed, index, 0x5EA115])
        n_frames = int(np.floor((c.duration_s - c.camera.start_s) * c.fps))
        n_samples = int(np.floor((c.duration_s - c.amplifier.start_s) * c.ecg_rate_hz))
        #: True exposure-start time (s) of every recorded frame, and true time of every recorded ECG sample.
        self.frame_times_s = _outside(c.camera.sample_times(c.fps, n_frames), c.camera_gaps)
        all_samples = c.amplifier.sample_times(c.ecg_rate_hz, n_samples)
        self.sample_times_s = _outside(all_samples, c.ecg_gaps)
        #: Index on the amplifier's unbroken sample clock of every recorded sample.
        self.sample_clock_index = np.flatnonzero(np.isin(all_samples, self.sample_times_s))
        self.n_frames, self.n_samples = self.frame_times_s.size, self.sample_times_s.size
        drawn = schedule_expressions(rng, c.duration_s, c.me_per_min, c.mae_per_min)
        self.expressions: list[Expression] = (
            sorted(expressions, key=lambda e: e.onset_s) if expressions is not None else drawn
        )
        self._onsets = [e.onset_s for e in self.expressions]
        self.blinks = schedule_blinks(rng, c.duration_s, c.blinks_per_min)
        self.pulses = trigger_pulses(rng, c.duration_s, *c.trigger_gap_s, width_s=c.trigger_width_s)
        apexes = [(e.apex_s, e.kind) for e in self.expressions]
        #: True times (s) of posture shifts: a head shift, an HR rise and an electrode-motion artefact each.
        self.posture_s = np.sort(xr.uniform(0, c.duration_s, xr.poisson(r.posture_per_min * c.duration_s / 60.0)))
        if r.name == "easy":
            responses = draw_responses(rng, apexes, c.duration_s, c.coupling)
            heart = subject.heart
        else:
            responses = draw_realistic_responses(
                xr, subject.heart, r, apexes, c.duration_s, c.coupling, [STIMULUS_ONSET_S], self.posture_s
            )
            h = subject.heart
            heart = replace(h, rsa_bpm=h.rsa_bpm * r.rsa_scale, baseline_mv=h.baseline_mv * r.baseline_scale)
        self.heart = Heart.simulate(heart, c.duration_s, responses, rng)
        if r.name != "easy":
            self.heart.artefacts = EcgArtefacts.draw(xr, r, c.duration_s, self.posture_s)
        #: Bursts of mouth movement that are no expression: ``(start_s, length_s, rate_hz, amplitude_px)``.
        self.talk = schedule_talk(xr, c.duration_s, r.talk_per_min, r.talk_px)
        self.pose = self._head_pose(rng)
        self.gain = self._flicker(rng)
        if r.name != "easy":
            self._realistic_pose_and_light(xr)
        self.led_level = exposure_overlap(self.frame_times_s, c.exposure_s, self.pulses)
        self._noise_index = rng.integers(0, 1 << 30, self.n_frames)
        self._stamp_seed = int(rng.integers(1 << 31))
        appearance = subject.appearance if r.identities else replace(subject.appearance, identity="astronaut")
        self._aus, self._blink, self._talk_bumps = au_bumps(appearance.identity)
        self.renderer = FaceRenderer(
            appearance,
            c.width,
            c.height,
            color=c.color,
            led=c.led,
            noise_sigma=c.noise_sigma,
            rng=np.random.default_rng([subject.seed, index, 0x40157]),
        )

    # -- schedules ------------------------------------------------------------------------
    def _head_pose(self, rng: np.random.Generator) -> np.ndarray:
        """(n_frames, 4): tx, ty (640-reference px), rotation (rad), relative scale."""
        c, n, dt = self.config, self.n_frames, 1.0 / self.config.fps
        m = c.head_motion * self.realism.head_scale
        pose = np.zeros((n, 4))
        pose[:, 0] = _ou(rng, n, dt, 12.0, 3.0 * m)
        pose[:, 1] = _ou(rng, n, dt, 12.0, 2.0 * m)
        pose[:, 2] = _ou(rng, n, dt, 15.0, np.deg2rad(0.7) * m)
        pose[:, 3] = 1.0 + _ou(rng, n, dt, 20.0, 0.008 * m)
        # Small quick head movements (about 3 per minute): smooth steps of 1-4 px over 0.2-0.6 s.
        t = self.frame_times_s
        for t0 in rng.uniform(0, c.duration_s, rng.poisson(3.0 * c.duration_s / 60.0)):
            length = rng.uniform(0.2, 0.6)
            u = np.clip((t - t0) / length, 0, 1)
            step = 0.5 - 0.5 * np.cos(np.pi * u)
            ang = rng.uniform(0, 2 * np.pi)
            amp = rng.uniform(1.0, 4.0) * m
            pose[:, 0] += amp * np.cos(ang) * step
            pose[:, 1] += amp * np.sin(ang) * step
            pose[:, 2] += np.deg2rad(rng.uniform(-0.5, 0.5)) * m * step
        return pose

    def _realistic_pose_and_light(self, rng: np.random.Generator) -> None:
        """Posture shifts in the head pose; lamp flicker and lighting changes in the gain (not in ``easy``)."""
        r, t, c = self.realism, self.frame_times_s, self.config
        for t0 in self.posture_s:  # the head moves 5-15 px, turns 1-3 deg and nears/leaves 1-4 % over 0.5-1.5 s
            u = np.clip((t - t0) / rng.uniform(0.5, 1.5), 0, 1)
            step = 0.5 - 0.5 * np.cos(np.pi * u)
            ang = rng.uniform(0, 2 * np.pi)
            amp = rng.uniform(5.0, 15.0)
            self.pose[:, 0] += amp * np.cos(ang) * step
            self.pose[:, 1] += amp * np.sin(ang) * step
            self.pose[:, 2] += np.deg2rad(rng.uniform(1.0, 3.0) * rng.choice([-1.0, 1.0])) * step
            self.pose[:, 3] += rng.uniform(-0.04, 0.04) * step
        if r.mains_flicker > 0:  # lamps flicker at twice the mains frequency; the exposure averages part of it
            f = 2.0 * self.subject.heart.mains_hz
            mid = t + 0.5 * c.exposure_s
            self.gain *= 1.0 + r.mains_flicker * np.sinc(f * c.exposure_s) * np.sin(
                2 * np.pi * f * mid + rng.uniform(0, 6.3)
            )
        for t0 in rng.uniform(0, c.duration_s, rng.poisson(r.light_steps_per_min * c.duration_s / 60.0)):
            u = np.clip((t - t0) / rng.uniform(0.3, 1.0), 0, 1)
            self.gain *= 1.0 + rng.choice([-1.0, 1.0]) * r.light_step * rng.uniform(0.3, 1.0) * (
                0.5 - 0.5 * np.cos(np.pi * u)
            )

    def _flicker(self, rng: np.random.Generator) -> np.ndarray:
        """Illumination gain per frame: slow drift (0.5 %) plus a faint fast ripple (0.3 %)."""
        t = self.frame_times_s
        slow = _ou(rng, self.n_frames, 1.0 / self.config.fps, 5.0, 0.005)
        ripple = 0.003 * np.sin(2 * np.pi * rng.uniform(3, 9) * t + rng.uniform(0, 2 * np.pi))
        return 1.0 + slow + ripple

    # -- video ----------------------------------------------------------------------------
    def active_bumps(self, i: int) -> list[tuple[Bump, float]]:
        """AU and eyelid bumps acting on frame ``i``, with amplitudes (640-reference px)."""
        t = float(self.frame_times_s[i]) + 0.5 * self.config.exposure_s
        out: list[tuple[Bump, float]] = []
        k = bisect.bisect_right(self._onsets, t)
        for e in self.expressions[max(0, k - 3) : k]:
            if t > e.offset_s:
                continue
            act = float(e.activation(t))
            if act <= 0:
                continue
            for au, amp in e.aus:
                for bump in self._aus[au]:
                    if not bump.side or bump.side in e.sides:
                        out.append((bump, amp * act))
        closure = blink_closure(t, self.blinks)
        if closure > 0:
            px = BLINK_AMPLITUDE_SRC_PX * 640.0 / self.subject.appearance.crop_width  # lid travel, 640-ref px
            out += [(b, px * closure) for b in self._blink]
        if self.talk:
            level = talk_level(t, self.talk)
            if level > 0:
                out += [(b, level) for b in self._talk_bumps]
        return out

    def frame(self, i: int) -> np.ndarray:
        """Frame ``i`` as uint8 ``(height, width[, 3])``."""
        return self.renderer.render(
            self.pose[i], self.active_bumps(i), self.gain[i], self.led_level[i], int(self._noise_index[i])
        )

    def frames(self, start: int, stop: int) -> np.ndarray:
        """Frames ``[start, stop)`` stacked."""
        return np.stack([self.frame(i) for i in range(start, stop)])

    # -- ECG ------------------------------------------------------------------------------
    def ecg(self, start: int, stop: int) -> np.ndarray:
        """Amplifier samples ``[start, stop)`` as float32 ``(n, 3)``: ECG (mV), trigger and strobe (0/1)."""
        idx = np.arange(start, stop)
        t = self.sample_times_s[start:stop]
        out = np.empty((idx.size, 3), dtype=np.float32)
        out[:, 0] = self.heart.ecg(t, idx)
        out[:, 1] = line_level(t, self.pulses)
        if self.config.strobe:
            exp = np.column_stack([self.frame_times_s, self.frame_times_s + self.config.exposure_s])
            out[:, 2] = line_level(t, exp)
        else:
            out[:, 2] = 0
        return out

    # -- what a recorder stores -----------------------------------------------------------
    def frame_stamps(self) -> np.ndarray:
        """The LSL timestamps (s) the camera driver attaches to each frame."""
        rng = np.random.default_rng([self._stamp_seed, 1])
        return self.config.camera.stamps(self.frame_times_s, rng)

    def sample_stamps(self) -> np.ndarray:
        """The LSL timestamps (s) the ECG driver attaches to each sample."""
        rng = np.random.default_rng([self._stamp_seed, 2])
        return self.config.amplifier.stamps(self.sample_times_s, rng)

    def clock_offsets(self, device: str) -> np.ndarray:
        """LabRecorder-style offset measurements for ``"camera"``, ``"amplifier"`` or ``"recorder"`` (offset 0)."""
        clock = {"camera": self.config.camera, "amplifier": self.config.amplifier}.get(device, DeviceClock())
        rng = np.random.default_rng([self._stamp_seed, {"camera": 3, "amplifier": 4}.get(device, 5)])
        return clock.clock_offsets(self.config.duration_s, rng)

    def annotations(self) -> list[Annotation]:
        """The coded expressions on this trial's frames (only those fully inside the video)."""
        out = []
        for e in self.expressions:
            if e.onset_s >= self.frame_times_s[0] and e.offset_s <= self.frame_times_s[-1]:
                out.append(e.to_annotation(self.frame_times_s))
        return out

    def frame_times_on_ecg_clock(self) -> np.ndarray:
        """Truth for sync: each frame's exposure start on the amplifier's sample clock (sample / nominal rate, s)."""
        a = self.config.amplifier
        return (self.frame_times_s - a.start_s) * (1.0 + a.drift_ppm * 1e-6)

    def frame_sample_positions(self) -> np.ndarray:
        """Truth for sync: where each frame's exposure start falls among the *recorded* ECG samples.

        A fractional index into the stream's data (what model code looks up), running on before
        the first and after the last sample; NaN for a frame whose time falls in an ECG gap.
        """
        k = self.frame_times_on_ecg_clock() * self.config.ecg_rate_hz  # on the unbroken sample clock
        kept = self.sample_clock_index.astype(np.float64)
        pos = np.interp(k, kept, np.arange(kept.size, dtype=np.float64))
        pos = np.where(k < kept[0], k - kept[0], np.where(k > kept[-1], kept.size - 1 + k - kept[-1], pos))
        j = np.clip(np.searchsorted(kept, k), 1, kept.size - 1)
        in_gap = (kept[j] - kept[j - 1] > 1.5) & (k > kept[j - 1]) & (k < kept[j])
        return np.where(in_gap, np.nan, pos)

    def ground_truth(self) -> tuple[dict, dict[str, np.ndarray]]:
        """Attributes and arrays for /ground_truth: the clocks and true times no sync or model code reads."""
        import json

        c = self.config
        attrs = {
            "generator": "mecg.synth",
            "subject_seed": self.subject.seed,
            "trial_index": self.index,
            "config_json": json.dumps(c.as_dict()),
            "camera_drift_ppm": c.camera.drift_ppm,
            "camera_offset_s": c.camera.offset_s,
            "camera_latency_s": c.camera.latency_s,
            "amplifier_drift_ppm": c.amplifier.drift_ppm,
            "amplifier_offset_s": c.amplifier.offset_s,
            "amplifier_latency_s": c.amplifier.latency_s,
            "coupling": c.coupling,
            "realism": c.realism,
            "realism_json": json.dumps(self.realism.as_dict()),
            "face_identity": self.renderer.appearance.identity,
            "heart_responder": bool(self.subject.heart.responder_rank < self.realism.responder_share),
        }
        expr = self.expressions
        arrays = {
            "frame_true_time_s": self.frame_times_s,
            "sample_true_time_s_first_last": self.sample_times_s[[0, -1]],
            "frame_time_on_ecg_clock_s": self.frame_times_on_ecg_clock(),
            "frame_ecg_sample_position": self.frame_sample_positions(),
            "trigger_pulses_true_s": self.pulses,
            "r_peaks_true_s": self.heart.beats_s,
            "expression_apex_true_s": np.array([e.apex_s for e in expr], dtype=np.float64),
            "expression_is_me": np.array([e.kind == "ME" for e in expr], dtype=bool),
            "hr_response_times_s": np.array([r.t_s for r in self.heart.responses], dtype=np.float64),
            "hr_response_bpm": np.array([r.amplitude_bpm for r in self.heart.responses], dtype=np.float64),
            "hr_response_cause": np.array([r.cause.encode() for r in self.heart.responses], dtype="S8"),
            "posture_shift_true_s": np.asarray(self.posture_s, dtype=np.float64),
            "talk_bursts_true_s": np.array([[a, a + n] for a, n, _, _ in self.talk], dtype=np.float64).reshape(-1, 2),
        }
        return attrs, arrays
