"""Synthetic participants: face video with expressions, coupled ECG, triggers, clocks, ground truth."""

from mecg.synth.clocks import DeviceClock
from mecg.synth.dataset import DatasetSpec, make_dataset, write_trial
from mecg.synth.face import Appearance, Led
from mecg.synth.heart import HeartParams
from mecg.synth.participant import Subject, Trial, TrialConfig

__all__ = [
    "Appearance",
    "DatasetSpec",
    "DeviceClock",
    "HeartParams",
    "Led",
    "Subject",
    "Trial",
    "TrialConfig",
    "make_dataset",
    "write_trial",
]
