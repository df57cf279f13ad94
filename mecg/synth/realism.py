"""Realism settings of the synthetic world: how much real participants' confounds it carries.

``easy`` is the original world: every ME moves the heart the same way at the same lag, one face
photograph, no ECG artefacts. ``paper`` aims at what the paper and the physiology literature
report for participants watching clips at rest; ``hard`` is a stress test with weak, unreliable
coupling and frequent artefacts. docs/synth.md lists each parameter with its source.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

RealismName = Literal["easy", "paper", "hard"]
#: The settings, mildest first.
REALISM_NAMES: tuple[RealismName, ...] = ("easy", "paper", "hard")
#: What ``mecg synth`` makes unless told otherwise.
DEFAULT_CLI_REALISM: RealismName = "paper"


@dataclass(frozen=True)
class Realism:
    """The parameters one realism setting fixes. Rates per minute, HR in bpm, times in s, ECG in mV.

    Heart: ``responder_share`` of subjects respond to expressions at all; a responder's ME
    gets a response with a per-subject probability drawn from ``response_p``; response sizes
    come from ``me_bpm`` / ``mae_bpm`` (75 % accelerations); ``latency_sd_s`` jitters each
    response's centre around 0.3 s before the apex. Unrelated accelerations: ``spurious_per_min``
    quick ME-like steps, ``startle_p`` the chance of a startle at the stimulus onset
    (``startle_bpm``), ``posture_per_min`` posture shifts (``posture_bpm``, with a head shift and
    an electrode-motion artefact), ``rsa_scale`` multiplies respiratory sinus arrhythmia.
    ECG noise: ``baseline_scale`` multiplies baseline wander, ``emg_mv`` the s.d. of muscle noise
    (20-150 Hz) at rest, ``emg_bursts_per_min`` bursts of 3-6x that, ``motion_per_min``
    electrode-motion artefacts of ``motion_mv``. Video: ``identities`` (all faces or the
    astronaut only), ``head_scale`` multiplies head motion, ``talk_per_min`` bursts of mouth
    movement (talking, swallowing, lip presses) of ``talk_px`` (px at 640 wide), ``mains_flicker``
    the relative depth of lamp flicker at twice the mains frequency, ``light_steps_per_min``
    lighting changes of ``light_step`` (relative).
    """

    name: RealismName
    identities: bool
    responder_share: float
    response_p: tuple[float, float]
    me_bpm: tuple[float, float]
    mae_bpm: tuple[float, float]
    latency_sd_s: float
    spurious_per_min: float
    startle_p: float
    startle_bpm: tuple[float, float]
    posture_per_min: float
    posture_bpm: tuple[float, float]
    rsa_scale: float
    baseline_scale: float
    emg_mv: float
    emg_bursts_per_min: float
    motion_per_min: float
    motion_mv: tuple[float, float]
    head_scale: float
    talk_per_min: float
    talk_px: tuple[float, float]
    mains_flicker: float
    light_steps_per_min: float
    light_step: float

    def as_dict(self) -> dict:
        """Plain-JSON form."""
        return asdict(self)


REALISM: dict[str, Realism] = {
    "easy": Realism(
        name="easy",
        identities=False,
        responder_share=1.0,
        response_p=(1.0, 1.0),
        me_bpm=(6.0, 9.0),
        mae_bpm=(3.0, 5.0),
        latency_sd_s=0.0,
        spurious_per_min=1.0,
        startle_p=0.0,
        startle_bpm=(0.0, 0.0),
        posture_per_min=0.0,
        posture_bpm=(0.0, 0.0),
        rsa_scale=1.0,
        baseline_scale=1.0,
        emg_mv=0.0,
        emg_bursts_per_min=0.0,
        motion_per_min=0.0,
        motion_mv=(0.0, 0.0),
        head_scale=1.0,
        talk_per_min=0.0,
        talk_px=(0.0, 0.0),
        mains_flicker=0.0,
        light_steps_per_min=0.0,
        light_step=0.0,
    ),
    "paper": Realism(
        name="paper",
        identities=True,
        responder_share=0.9,
        response_p=(0.8, 1.0),
        me_bpm=(10.0, 16.0),
        mae_bpm=(3.0, 7.0),
        latency_sd_s=0.05,
        spurious_per_min=1.5,
        startle_p=0.6,
        startle_bpm=(3.0, 8.0),
        posture_per_min=0.4,
        posture_bpm=(4.0, 12.0),
        rsa_scale=1.6,
        baseline_scale=2.0,
        emg_mv=0.01,
        emg_bursts_per_min=1.0,
        motion_per_min=0.5,
        motion_mv=(0.2, 0.6),
        head_scale=1.5,
        talk_per_min=1.0,
        talk_px=(1.0, 3.0),
        mains_flicker=0.01,
        light_steps_per_min=0.3,
        light_step=0.03,
    ),
    "hard": Realism(
        name="hard",
        identities=True,
        responder_share=0.5,
        response_p=(0.3, 0.8),
        me_bpm=(2.0, 7.0),
        mae_bpm=(1.0, 5.0),
        latency_sd_s=0.35,
        spurious_per_min=3.0,
        startle_p=0.9,
        startle_bpm=(5.0, 12.0),
        posture_per_min=1.0,
        posture_bpm=(6.0, 15.0),
        rsa_scale=2.0,
        baseline_scale=3.0,
        emg_mv=0.02,
        emg_bursts_per_min=3.0,
        motion_per_min=2.0,
        motion_mv=(0.3, 1.0),
        head_scale=2.5,
        talk_per_min=3.0,
        talk_px=(1.5, 4.0),
        mains_flicker=0.03,
        light_steps_per_min=1.0,
        light_step=0.08,
    ),
}


def realism(name: str) -> Realism:
    """The setting called ``name``; ``ValueError`` naming the choices otherwise."""
    try:
        return REALISM[name]
    except KeyError:
        raise ValueError(f"unknown realism {name!r}; choose one of {', '.join(REALISM_NAMES)}") from None
