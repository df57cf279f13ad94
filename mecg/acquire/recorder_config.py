"""What a :class:`~mecg.acquire.recorder.Recorder` records and how: :class:`RecorderConfig` and its groups.

The settings come in five groups (times in s, sizes in MB): :class:`StreamSelection` (which
streams, how long to look for them), :class:`OutputSettings` (the file: metadata, flushing, the
disk reserve, the ECG choice), :class:`BufferSettings` (inlet buffers), :class:`TimingSettings`
(polling, clock offsets, gaps) and :class:`LiveSettings` (live heart rate and previews).
``RecorderConfig(path, wait_s=5.0, buffer_s=None, ...)`` also takes every group field as a flat
keyword and puts it into its group.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields

from mecg.acquire.buffers import DEFAULT_BUFFER_MAX_MB
from mecg.acquire.live_analysis import LiveAnalysis
from mecg.acquire.stream_metadata import DEFAULT_TYPES, StreamQuery


@dataclass
class StreamSelection:
    """Which streams to record. ``queries``: a stream is recorded if any matches it (default: every ECG,
    Video and Markers stream). ``required``: each must match a stream before recording starts (e.g. the
    drivers this process started), else ``NoStreamError``. ``wait_s``: how long to look for streams (s);
    ``settle_s``: once the required ones are there, how long to keep looking for more (s).
    ``late_streams``: record matching streams that appear later. ``pickup_every_s``: how often the
    resolver is checked for restarted streams (s)."""

    queries: tuple[StreamQuery, ...] = (StreamQuery(types=DEFAULT_TYPES),)
    required: tuple[StreamQuery, ...] = ()
    wait_s: float = 5.0
    settle_s: float = 1.0
    late_streams: bool = True
    pickup_every_s: float = 0.1


@dataclass
class OutputSettings:
    """The session file. ``subject_id``, ``notes``: stored in it; ``overwrite``: replace an existing file;
    ``flush_interval_s``: how often appended data is flushed (s: a crash loses at most about that);
    ``min_free_mb``: stop (file kept, not marked complete) when the disk has less free (MB);
    ``ecg_channel``: the explicit ECG choice ``[STREAM:]LABEL|INDEX`` (:mod:`mecg.session.ecg_channel`),
    checked against the streams found, stored in the file and used for the live heart rate;
    ``video_codec``: lossless codec of video frames (``deflate``, or a faster hdf5plugin codec:
    ``blosc-lz4``, ``lz4``, ``zstd``; :data:`mecg.session.video_codec.CODECS`)."""

    subject_id: str = ""
    notes: str = ""
    overwrite: bool = False
    flush_interval_s: float = 0.5
    min_free_mb: float = 200.0
    ecg_channel: str = ""
    video_codec: str = "deflate"


@dataclass
class BufferSettings:
    """Inlet buffers. ``buffer_s``: what each inlet may hold while the recorder is behind (s; ``None``: 15 s
    for video, capped so that the buffer stays under ``buffer_max_mb`` MB, and 360 s for signals and
    markers); an explicit buffer over the cap is refused (:class:`~mecg.acquire.buffers.BufferTooLargeError`)."""

    buffer_s: float | None = None
    buffer_max_mb: float = DEFAULT_BUFFER_MAX_MB


@dataclass
class TimingSettings:
    """Per-stream threads. ``poll_s`` / ``video_poll_s``: wait between pulls of an idle inlet (s);
    ``clock_offset_every_s``: how often each stream's clock offset is measured (s); ``gap_s``: a
    timestamp step longer than this is a gap (stream lost and back), shorter ones count dropped samples (s)."""

    poll_s: float = 0.02
    video_poll_s: float = 0.004
    clock_offset_every_s: float = 5.0
    gap_s: float = 0.5


@dataclass
class LiveSettings:
    """For a live display. ``hr_window_s``: ECG seconds used for the live heart rate; ``preview``: keep a
    :class:`~mecg.acquire.preview.StreamPreview` per stream (``preview_signal_s`` seconds of signal,
    frames copied at most ``preview_frame_hz`` times a second); ``analysis``: a
    :class:`~mecg.acquire.live_analysis.LiveAnalysis` (e.g. live spotting) fed every recorded chunk
    through a bounded queue, its events stored in the session being written."""

    hr_window_s: float = 8.0
    preview: bool = False
    preview_signal_s: float = 10.0
    preview_frame_hz: float = 30.0
    analysis: LiveAnalysis | None = None


_GROUPS = {
    "selection": StreamSelection,
    "output": OutputSettings,
    "buffers": BufferSettings,
    "timing": TimingSettings,
    "live": LiveSettings,
}
#: Flat keyword -> the group that holds it.
_FLAT = {f.name: group for group, cls in _GROUPS.items() for f in fields(cls)}


@dataclass(init=False)
class RecorderConfig:
    """What to record and how: ``path`` (``None``: monitor mode, everything but the file) and five groups.

    Build it from groups (``RecorderConfig(path, selection=StreamSelection(...))``), from flat
    keywords (``RecorderConfig(path, queries=..., wait_s=5.0, min_free_mb=0)``), or both (flat
    keywords then change the given groups' copies). An unknown keyword raises ``TypeError``.
    """

    path: str | os.PathLike | None
    selection: StreamSelection = field(default_factory=StreamSelection)
    output: OutputSettings = field(default_factory=OutputSettings)
    buffers: BufferSettings = field(default_factory=BufferSettings)
    timing: TimingSettings = field(default_factory=TimingSettings)
    live: LiveSettings = field(default_factory=LiveSettings)

    def __init__(
        self,
        path: str | os.PathLike | None,
        *,
        selection: StreamSelection | None = None,
        output: OutputSettings | None = None,
        buffers: BufferSettings | None = None,
        timing: TimingSettings | None = None,
        live: LiveSettings | None = None,
        **flat: object,
    ) -> None:
        self.path = path
        given = {"selection": selection, "output": output, "buffers": buffers, "timing": timing, "live": live}
        by_group: dict[str, dict[str, object]] = {g: {} for g in _GROUPS}
        for name, value in flat.items():
            if name not in _FLAT:
                raise TypeError(f"RecorderConfig got an unknown setting {name!r}")
            by_group[_FLAT[name]][name] = value
        for group, cls in _GROUPS.items():
            base = given[group]
            values = {f.name: getattr(base, f.name) for f in fields(cls)} if base is not None else {}
            setattr(self, group, cls(**{**values, **by_group[group]}))
