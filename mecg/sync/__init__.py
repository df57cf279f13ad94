"""Sync: one timeline for video and ECG, from LSL clocks and hardware trigger pulses.

Pure numerical code over arrays read from a session; no devices, no torch.
"""

from mecg.sync.align import MODES, SyncParams, SyncResult, synchronize, write_result
from mecg.sync.clocks import correct_timestamps, dejitter, fit_clock_offsets, frame_indices
from mecg.sync.lookup import EcgSpan, Timeline
from mecg.sync.match import LineFit, match_pulses
from mecg.sync.pulses import LedRoi, SyncError, edge_times, led_candidates, led_onsets
from mecg.sync.segments import EcgClock, StreamTimebase, stream_timebase
from mecg.sync.verdict import VERDICTS, Verdict, VerdictRules

__all__ = [
    "MODES",
    "VERDICTS",
    "EcgClock",
    "EcgSpan",
    "LedRoi",
    "LineFit",
    "StreamTimebase",
    "SyncError",
    "SyncParams",
    "SyncResult",
    "Timeline",
    "Verdict",
    "VerdictRules",
    "correct_timestamps",
    "dejitter",
    "edge_times",
    "fit_clock_offsets",
    "frame_indices",
    "led_candidates",
    "led_onsets",
    "match_pulses",
    "stream_timebase",
    "synchronize",
    "write_result",
]
