"""Synthetic participants: face video with expressions, coupled ECG, triggers, clocks, ground truth."""

from mecg.synth.clocks import DeviceClock
from mecg.synth.dataset import DatasetSpec, make_dataset, write_trial
from mecg.synth.face import Appearance, Led
from mecg.synth.faults import FAULTS, random_clocks, with_fault
from mecg.synth.heart import HeartParams
from mecg.synth.identities import IDENTITIES, FaceIdentity
from mecg.synth.participant import Subject, Trial, TrialConfig
from mecg.synth.realism import REALISM, REALISM_NAMES, Realism

__all__ = [
    "FAULTS",
    "IDENTITIES",
    "REALISM",
    "REALISM_NAMES",
    "Appearance",
    "DatasetSpec",
    "DeviceClock",
    "FaceIdentity",
    "HeartParams",
    "Led",
    "Realism",
    "Subject",
    "Trial",
    "TrialConfig",
    "make_dataset",
    "random_clocks",
    "with_fault",
    "write_trial",
]
