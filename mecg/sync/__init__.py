"""Sync: one timeline for video and ECG, from LSL clocks and hardware trigger pulses.

Pure numerical code over arrays read from a session; no devices, no torch.

The public names load lazily (a module ``__getattr__``): ``from mecg.sync.segments import ...``
or ``import mecg.sync`` does not pull in SciPy or OpenCV; the submodule that holds a name is
imported the first time the name is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mecg.sync.align import (
        MODES,
        SyncMode,
        SyncParams,
        SyncResult,
        sync_auto,
        sync_lsl,
        sync_pulses,
        sync_strobe,
        synchronize,
        write_result,
    )
    from mecg.sync.clocks import correct_timestamps, dejitter, fit_clock_offsets, frame_indices
    from mecg.sync.lookup import EcgSpan, Timeline
    from mecg.sync.match import LineFit, match_pulses
    from mecg.sync.pulses import LedRoi, SyncError, edge_times, led_candidates, led_onsets
    from mecg.sync.segments import EcgClock, StreamTimebase, stream_timebase
    from mecg.sync.verdict import VERDICTS, Verdict, VerdictRules

#: Public name -> the submodule that defines it.
_SUBMODULE = {
    "MODES": "align",
    "SyncMode": "align",
    "SyncParams": "align",
    "sync_auto": "align",
    "sync_lsl": "align",
    "sync_pulses": "align",
    "sync_strobe": "align",
    "SyncResult": "align",
    "synchronize": "align",
    "write_result": "align",
    "correct_timestamps": "clocks",
    "dejitter": "clocks",
    "fit_clock_offsets": "clocks",
    "frame_indices": "clocks",
    "EcgSpan": "lookup",
    "Timeline": "lookup",
    "LineFit": "match",
    "match_pulses": "match",
    "LedRoi": "pulses",
    "SyncError": "pulses",
    "edge_times": "pulses",
    "led_candidates": "pulses",
    "led_onsets": "pulses",
    "EcgClock": "segments",
    "StreamTimebase": "segments",
    "stream_timebase": "segments",
    "VERDICTS": "verdict",
    "Verdict": "verdict",
    "VerdictRules": "verdict",
}

__all__ = [
    "MODES",
    "VERDICTS",
    "EcgClock",
    "EcgSpan",
    "LedRoi",
    "LineFit",
    "StreamTimebase",
    "SyncError",
    "SyncMode",
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
    "sync_auto",
    "sync_lsl",
    "sync_pulses",
    "sync_strobe",
    "synchronize",
    "write_result",
]


def __getattr__(name: str) -> object:
    sub = _SUBMODULE.get(name)
    if sub is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{sub}"), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_SUBMODULE))
