"""Events produced while recording (live spotting): what they are and the stream type that stores them.

A recorder running a live analysis stores its events in the session being written as a markers
stream of type :data:`EVENTS_TYPE` (one JSON object per marker, see docs/session-format.md), so a
closed recording is never written again.
"""

from __future__ import annotations

from dataclasses import dataclass

#: LSL-style type of the markers stream holding live analysis events.
EVENTS_TYPE = "LiveSpots"


@dataclass(frozen=True)
class LiveEvent:
    """One result of live analysis: ``text`` (stored as a marker) at ``time_s`` (recorder's LSL clock, s)."""

    text: str
    time_s: float
