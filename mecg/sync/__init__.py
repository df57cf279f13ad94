"""Sync: one timeline for video and ECG, from LSL clocks and hardware trigger pulses.

Pure numerical code over arrays read from a session; no devices, no torch.
"""

from mecg.sync.align import MODES, SyncResult, synchronize, write_result
from mecg.sync.clocks import correct_timestamps, dejitter, fit_clock_offsets, frame_indices
from mecg.sync.lookup import EcgSpan, Timeline
from mecg.sync.match import LineFit, match_pulses
from mecg.sync.pulses import LedRoi, SyncError, edge_times, led_candidates, led_onsets

__all__ = [
    "MODES",
    "EcgSpan",
    "LedRoi",
    "LineFit",
    "SyncError",
    "SyncResult",
    "Timeline",
    "correct_timestamps",
    "dejitter",
    "edge_times",
    "fit_clock_offsets",
    "frame_indices",
    "led_candidates",
    "led_onsets",
    "match_pulses",
    "synchronize",
    "write_result",
]
