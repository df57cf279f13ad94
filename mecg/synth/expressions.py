"""Facial action units as local deformations, and the timing of expressions.

Each action unit (AU) is one or two Gaussian displacement "bumps" placed on landmarks of the
source photograph (scikit-image's astronaut, 512x512). A bump moves the skin around its centre
by ``amplitude`` pixels along its direction; expressions drive AUs with an onset -> apex ->
offset time course. Amplitudes are given in pixels of a 640x480 frame, as the issue and the
ME literature quote them, and scaled to the actual frame size by the renderer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mecg.session import Annotation


@dataclass(frozen=True)
class Bump:
    """A Gaussian displacement centred at ``(x, y)`` (source px) of width ``sigma`` (source px).

    ``direction`` is the unit motion of the skin at amplitude 1; ``side`` is ``"R"``/``"L"``
    (the participant's right/left) or ``""`` for midline bumps.
    """

    x: float
    y: float
    sigma_x: float
    sigma_y: float
    direction: tuple[float, float]
    side: str = ""


def _unit(dx: float, dy: float) -> tuple[float, float]:
    n = float(np.hypot(dx, dy))
    return (dx / n, dy / n)


# Landmarks of the astronaut photograph (x right, y down; the participant's right eye is image-left).
LANDMARKS = {
    "eye_R": (201.0, 101.0),
    "eye_L": (247.0, 101.0),
    "brow_inner_R": (211.0, 91.0),
    "brow_inner_L": (238.0, 91.0),
    "brow_outer_R": (191.0, 93.0),
    "brow_outer_L": (258.0, 93.0),
    "nose_bridge": (225.0, 108.0),
    "nose_tip": (226.0, 127.0),
    "mouth_R": (205.0, 142.0),
    "mouth_L": (250.0, 143.0),
    "chin": (228.0, 166.0),
}

#: The AUs the generator can show, each as its bumps.
AUS: dict[str, tuple[Bump, ...]] = {
    "AU1": (Bump(211, 91, 6, 4, (0, -1), "R"), Bump(238, 91, 6, 4, (0, -1), "L")),
    "AU2": (Bump(192, 93, 7, 4, (0, -1), "R"), Bump(257, 93, 7, 4, (0, -1), "L")),
    "AU4": (Bump(213, 93, 7, 5, _unit(0.5, 0.8), "R"), Bump(236, 93, 7, 5, _unit(-0.5, 0.8), "L")),
    "AU7": (Bump(201, 106, 7, 3, (0, -1), "R"), Bump(247, 106, 7, 3, (0, -1), "L")),
    "AU9": (Bump(216, 119, 5, 5, _unit(0.2, -1), "R"), Bump(236, 119, 5, 5, _unit(-0.2, -1), "L")),
    "AU12": (Bump(205, 142, 7, 6, _unit(-0.7, -0.7), "R"), Bump(250, 143, 7, 6, _unit(0.7, -0.7), "L")),
    "AU15": (Bump(205, 144, 7, 6, _unit(-0.2, 1), "R"), Bump(250, 145, 7, 6, _unit(0.2, 1), "L")),
    "AU17": (Bump(228, 164, 12, 7, (0, -1), ""),),
}
#: Eyelid closure: the upper lid slides down over the eye (amplitude in source px at full closure).
BLINK = (Bump(201, 100, 9, 3, (0, 1), "R"), Bump(247, 100, 9, 3, (0, 1), "L"))
BLINK_AMPLITUDE_SRC_PX = 6.0
#: Mouth movements that are no expression (talking, murmuring, swallowing): lower lip and jaw
#: down, upper lip up; driven at syllable rate by :func:`talk_level`.
TALK = (Bump(228, 152, 13, 5, (0, 1)), Bump(227, 136, 11, 4, (0, -1)), Bump(228, 166, 15, 8, (0, 1)))

#: AU combinations per emotion (EMFACS-like, restricted to the AUs above).
EMOTION_AUS: dict[str, tuple[tuple[str, ...], ...]] = {
    "happiness": (("AU12",), ("AU7", "AU12")),
    "surprise": (("AU1", "AU2"), ("AU1",), ("AU2",)),
    "anger": (("AU4",), ("AU4", "AU7")),
    "disgust": (("AU9",), ("AU9", "AU17")),
    "sadness": (("AU1", "AU4", "AU15"), ("AU15",), ("AU15", "AU17")),
    "fear": (("AU1", "AU2", "AU4"), ("AU4",)),
    "contempt": (("AU12",),),
}


@dataclass(frozen=True)
class Expression:
    """One expression on the true timeline (s). ``aus`` maps AU name to its amplitude (px at 640x480)."""

    kind: str  # "ME" or "MaE"
    onset_s: float
    apex_s: float
    offset_s: float
    aus: tuple[tuple[str, float], ...]
    sides: str  # "RL" both sides, "R" or "L" for an asymmetric expression
    emotion: str

    def activation(self, t: np.ndarray | float) -> np.ndarray:
        """Time course in [0, 1]: raised-cosine rise onset->apex, raised-cosine fall apex->offset."""
        t = np.asarray(t, dtype=np.float64)
        a = np.zeros_like(t)
        rise = (t >= self.onset_s) & (t < self.apex_s)
        a[rise] = 0.5 - 0.5 * np.cos(np.pi * (t[rise] - self.onset_s) / max(self.apex_s - self.onset_s, 1e-9))
        fall = (t >= self.apex_s) & (t <= self.offset_s)
        a[fall] = 0.5 + 0.5 * np.cos(np.pi * (t[fall] - self.apex_s) / max(self.offset_s - self.apex_s, 1e-9))
        return a

    def to_annotation(self, frame_times_s: np.ndarray) -> Annotation:
        """Frames (inclusive) whose exposure starts within the expression, as a coder would mark them."""
        onset = int(np.searchsorted(frame_times_s, self.onset_s, side="left"))
        offset = int(np.searchsorted(frame_times_s, self.offset_s, side="right")) - 1
        apex = int(np.clip(np.argmin(np.abs(frame_times_s - self.apex_s)), onset, max(onset, offset)))
        offset = max(offset, apex)
        return Annotation(onset, apex, offset, self.kind, "+".join(a for a, _ in self.aus), self.emotion)


def _non_overlapping_times(
    rng: np.random.Generator,
    n: int,
    duration_s: float,
    lengths_s: list[float],
    taken: list[tuple[float, float]],
    gap_s: float,
) -> list[float]:
    """Start times for ``n`` intervals of given lengths that avoid ``taken`` (with ``gap_s`` margin)."""
    starts = []
    for length in lengths_s[:n]:
        for _ in range(200):
            s = float(rng.uniform(1.0, max(1.0, duration_s - length - 1.0)))
            if all(s + length + gap_s < a or s > b + gap_s for a, b in taken):
                taken.append((s, s + length))
                starts.append(s)
                break
    return starts


def schedule_expressions(
    rng: np.random.Generator,
    duration_s: float,
    me_per_min: float = 2.5,
    mae_per_min: float = 2.0,
    me_amplitude_px: tuple[float, float] = (0.6, 2.0),
    mae_amplitude_px: tuple[float, float] = (3.0, 7.0),
) -> list[Expression]:
    """Draw the expressions of one trial: Poisson counts (at least one ME in trials >= 10 s unless
    ``me_per_min`` is 0), no overlaps.

    MEs last 0.2-0.5 s onset->offset with onset->apex 0.06-0.25 s; MaEs last 0.6-4 s. Amplitudes
    are px at 640x480: MEs low (``me_amplitude_px``), MaEs larger and with more AUs.
    """
    n_me = int(rng.poisson(me_per_min * duration_s / 60.0))
    if duration_s >= 10 and me_per_min > 0:
        n_me = max(n_me, 1)
    n_mae = int(rng.poisson(mae_per_min * duration_s / 60.0))
    me_len = [float(x) for x in rng.uniform(0.2, 0.5, n_me)]
    mae_len = [float(x) for x in rng.uniform(0.6, 4.0, n_mae)]
    taken: list[tuple[float, float]] = []
    out = []
    emotions = list(EMOTION_AUS)
    for start, length in zip(_non_overlapping_times(rng, n_mae, duration_s, mae_len, taken, 1.0), mae_len):
        emo = emotions[rng.integers(len(emotions))]
        combos = EMOTION_AUS[emo]
        aus = list(max(combos, key=len))
        if len(aus) < 2:  # MaEs usually show several AUs
            extra = [a for a in AUS if a not in aus]
            aus.append(extra[rng.integers(len(extra))])
        amp = rng.uniform(*mae_amplitude_px)
        apex = start + length * float(rng.uniform(0.25, 0.5))
        out.append(
            Expression(
                "MaE",
                start,
                apex,
                start + length,
                tuple((a, float(amp * rng.uniform(0.7, 1.0))) for a in aus),
                "RL",
                emo,
            )
        )
    for start, length in zip(_non_overlapping_times(rng, n_me, duration_s, me_len, taken, 0.8), me_len):
        emo = emotions[rng.integers(len(emotions))]
        combos = EMOTION_AUS[emo]
        aus = list(combos[rng.integers(len(combos))][:2])
        amp = rng.uniform(*me_amplitude_px)
        rise = min(float(rng.uniform(0.06, 0.25)), length * 0.6)
        sides = "RL" if emo != "contempt" and rng.random() > 0.25 else ("R" if rng.random() < 0.5 else "L")
        out.append(
            Expression(
                "ME",
                start,
                start + rise,
                start + length,
                tuple((a, float(amp * rng.uniform(0.8, 1.0))) for a in aus),
                sides,
                emo,
            )
        )
    out.sort(key=lambda e: e.onset_s)
    return out


def schedule_blinks(rng: np.random.Generator, duration_s: float, per_min: float = 15.0) -> list[tuple[float, float]]:
    """Blinks as ``(start_s, length_s)``, 0.1-0.4 s long, at least 1 s apart (none when ``per_min`` is 0)."""
    if per_min <= 0:
        return []
    times, t = [], float(rng.exponential(60.0 / per_min))
    while t < duration_s:
        length = float(rng.uniform(0.1, 0.4))
        times.append((t, length))
        t += length + 1.0 + float(rng.exponential(60.0 / per_min))
    return times


def blink_closure(t: float, blinks: list[tuple[float, float]]) -> float:
    """Eyelid closure in [0, 1] at time ``t``: fast close (1/3 of the blink), slower reopening."""
    for start, length in blinks:
        if start <= t <= start + length:
            u = (t - start) / length
            return float(np.sin(0.5 * np.pi * u / 0.33) if u < 0.33 else np.cos(0.5 * np.pi * (u - 0.33) / 0.67))
    return 0.0


def schedule_talk(
    rng: np.random.Generator, duration_s: float, per_min: float, amplitude_px: tuple[float, float]
) -> list[tuple[float, float, float, float]]:
    """Bursts of mouth movement as ``(start_s, length_s, rate_hz, amplitude_px)``: 0.5-4 s at 3-6 Hz (syllables)."""
    if per_min <= 0:
        return []
    out = []
    for start in np.sort(rng.uniform(0, duration_s, rng.poisson(per_min * duration_s / 60.0))):
        out.append(
            (
                float(start),
                float(rng.uniform(0.5, 4.0)),
                float(rng.uniform(3.0, 6.0)),
                float(rng.uniform(*amplitude_px)),
            )
        )
    return out


def talk_level(t: float, bursts: list[tuple[float, float, float, float]]) -> float:
    """Mouth opening (px at 640 wide) at time ``t``: syllable cycles under a raised-cosine envelope."""
    level = 0.0
    for start, length, rate, amp in bursts:
        if start <= t <= start + length:
            u = (t - start) / length
            env = min(1.0, 4.0 * u, 4.0 * (1.0 - u))
            level += amp * env * (0.5 - 0.5 * np.cos(2 * np.pi * rate * (t - start)))
    return float(level)
