"""Names acquire uses for states, kinds and roles, as ``StrEnum``: each member equals its old string.

Files, JSON, status lines and CLI output are unchanged (``str(RecorderState.RECORDING) ==
"recording"``), and code that still compares with the plain strings keeps working.
"""

from __future__ import annotations

from enum import StrEnum


class DriverState(StrEnum):
    """What a device driver is doing, as its status line and stats show it."""

    IDLE = "idle"
    STREAMING = "streaming"  # ECG drivers
    RUNNING = "running"  # the trigger driver
    RECONNECTING = "reconnecting"
    FAILED = "failed"
    FINISHED = "finished"  # a BrainFlow playback file ended
    STOPPED = "stopped"


class RecorderState(StrEnum):
    """What a :class:`~mecg.acquire.recorder.Recorder` is doing."""

    IDLE = "idle"
    MONITORING = "monitoring"  # monitor mode: streams watched, nothing written
    RECORDING = "recording"
    STOPPED = "stopped"
    FAILED = "failed"


class StreamState(StrEnum):
    """One recorded stream's state (:class:`~mecg.acquire.recorder.StreamStatus`)."""

    OK = "ok"
    WAITING = "waiting"  # no sample yet
    STALLED = "stalled"  # no sample for a while
    LOST = "lost"  # gone for good (it had no source_id to recover)
    ERROR = "error"


class StreamKind(StrEnum):
    """How a session stores a stream (``StreamInfo.kind``, :data:`mecg.session.format.STREAM_KINDS`)."""

    SIGNAL = "signal"
    VIDEO = "video"
    MARKERS = "markers"


class DeviceRole(StrEnum):
    """A device's role in a rig (:class:`~mecg.acquire.rig.Rig`): keys of its names, source_ids and counts."""

    ECG = "ecg"
    CAMERA = "camera"
    TRIGGER = "trigger"


class EcgProtocol(StrEnum):
    """The serial protocol of an ECG board (``--protocol``)."""

    MECG = "mecg"
    CYTON = "cyton"


class FrameSourceKind(StrEnum):
    """What a camera driver's frames come from (:class:`~mecg.acquire.frames.FrameSource` ``kind``)."""

    DEVICE = "device"
    FILE = "file"
    VIRTUAL = "virtual"
