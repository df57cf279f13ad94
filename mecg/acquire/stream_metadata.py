"""From an LSL stream header to what a session file stores about the stream, and how streams are picked.

:func:`session_stream_info` reads the full header of an opened inlet (``inlet.info()``: the one
from a resolver lacks the ``desc`` element) into a :class:`mecg.session.StreamInfo`: identity,
nominal rate, channel labels / units / types from ``desc/channels``, ``can_drop_samples`` and,
for video, the frame geometry. A stream is video when :func:`video_layout_of` finds frames a
session can store: type ``VideoRaw`` (the XDF convention, ``desc/encoding/width``, ``height``,
``color_format`` GRAY or RGB, ``int8`` samples; mecg's camera driver sends this) or mecg's older
``Video`` with ``desc/width``, ``height``, ``channels`` (see :mod:`mecg.session.lsl_video`). A
video stream whose frames a session cannot store (another colour format, a codec) is kept as a
signal, pixels as channels. The header itself is kept verbatim (``lsl_header``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pylsl

from mecg.acquire.errors import AcquireError
from mecg.session import StreamInfo
from mecg.session.lsl_video import VideoLayout, is_video_type, video_layout_from_xml

#: Stream types recorded when nothing else is asked for.
DEFAULT_TYPES = ("ECG", "VideoRaw", "Video", "Markers")

#: pylsl channel-format codes and their names in the session format.
LSL_FORMATS = {
    pylsl.cf_float32: "float32",
    pylsl.cf_double64: "double64",
    pylsl.cf_string: "string",
    pylsl.cf_int32: "int32",
    pylsl.cf_int16: "int16",
    pylsl.cf_int8: "int8",
    pylsl.cf_int64: "int64",
}


@dataclass(frozen=True)
class StreamQuery:
    """Which LSL streams to record: a stream matches when each non-empty field lists its value.

    ``StreamQuery(types=("ECG", "Video"), hosts=("lab-pc",))`` matches ECG and video streams sent
    from ``lab-pc``; an all-empty query matches every stream. Types compare case-insensitively, and
    ``Video`` and ``VideoRaw`` (the XDF name) match each other. ``streams`` (``mecg record --stream``)
    lists words each matched against the name, the type or the source_id.
    """

    types: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    source_ids: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()
    streams: tuple[str, ...] = ()

    def matches(self, info: pylsl.StreamInfo) -> bool:
        """True if ``info`` (a resolved LSL stream) is wanted by this query."""
        if self.types and _type_key(info.type()) not in {_type_key(t) for t in self.types}:
            return False
        if self.names and info.name() not in self.names:
            return False
        if self.source_ids and info.source_id() not in self.source_ids:
            return False
        if self.streams and not any(
            w in (info.name(), info.source_id()) or _type_key(w) == _type_key(info.type()) for w in self.streams
        ):
            return False
        return not (self.hosts and info.hostname() not in self.hosts)

    def describe(self) -> str:
        """The query in words, for messages: ``type ECG or Video, host lab-pc``."""
        parts = [
            f"{what} {' or '.join(vals)}"
            for what, vals in (
                ("type", self.types),
                ("name", self.names),
                ("source_id", self.source_ids),
                ("name, type or source_id", self.streams),
                ("host", self.hosts),
            )
            if vals
        ]
        return ", ".join(parts) or "any stream"


def _type_key(stream_type: str) -> str:
    """A stream type for comparison: lower case, the video types (Video, VideoRaw) as one."""
    return "video" if is_video_type(stream_type) else stream_type.lower()


def matches_any(info: pylsl.StreamInfo, queries: Iterable[StreamQuery]) -> bool:
    """True if any of ``queries`` matches ``info``."""
    return any(q.matches(info) for q in queries)


def stream_identity(info: pylsl.StreamInfo) -> tuple[str, ...]:
    """What makes two sightings the same stream: source_id + name + type + host (LSL's recovery key).

    A stream without a source_id cannot be recovered by LSL; each outlet is then its own stream (uid).
    """
    if info.source_id():
        return ("sid", info.source_id(), info.name(), info.type(), info.hostname())
    return ("uid", info.uid())


def _channels(desc: pylsl.info.XMLElement, n: int) -> tuple[list[str], list[str], list[str]]:
    labels, units, types = [], [], []
    ch = desc.child("channels").child("channel")
    while not ch.empty() and len(labels) < n:
        labels.append(ch.child_value("label") or f"ch{len(labels) + 1}")
        units.append(ch.child_value("unit"))
        types.append(ch.child_value("type"))
        ch = ch.next_sibling("channel")
    for i in range(len(labels), n):
        labels.append(f"ch{i + 1}")
        units.append("")
        types.append("")
    return labels, units, types


def video_layout_of(info: pylsl.StreamInfo) -> VideoLayout | None:
    """The frames the full header of ``info`` declares (see :func:`mecg.session.lsl_video.video_layout`).

    None when the stream type is not ``VideoRaw``/``Video``; else a layout whose ``problem`` says why
    a session cannot store the frames ('' when it can). Needs the full header (``inlet.info()``).
    """
    if not is_video_type(info.type()):
        return None
    return video_layout_from_xml(info.as_xml())


def video_frame_shape(info: pylsl.StreamInfo) -> tuple[int, ...] | None:
    """``(height, width)`` or ``(height, width, 3)`` of a video stream a session can store; None otherwise."""
    layout = video_layout_of(info)
    return layout.frame_shape if layout is not None and layout.storable else None


def is_video(info: pylsl.StreamInfo) -> bool:
    """A camera stream this recorder stores as frames: type VideoRaw or Video, int8 samples, GRAY or RGB
    geometry in the header (the XDF ``desc/encoding`` convention or mecg's older ``desc/width``...)."""
    return video_frame_shape(info) is not None


def session_stream_info(info: pylsl.StreamInfo) -> StreamInfo:
    """The session's description of a stream from its full LSL header (``inlet.info()``).

    Raises :class:`AcquireError` for a channel format the session cannot store.
    """
    fmt = LSL_FORMATS.get(info.channel_format())
    if fmt is None:
        raise AcquireError(
            f"LSL stream {info.name()!r} has channel format {info.channel_format()}, which a session cannot store"
        )
    desc = info.desc()
    declared = desc.child_value("can_drop_samples").strip().lower()
    common = {
        "name": info.name(),
        "type": info.type(),
        "source_id": info.source_id(),
        "hostname": info.hostname(),
        "nominal_srate_hz": float(info.nominal_srate()),
        "lsl_header": info.as_xml(),
    }
    shape = video_frame_shape(info)
    if shape is not None:
        # cameras skip frames when they cannot keep up; the camera driver says so in its header
        return StreamInfo(
            kind="video",
            frame_shape=shape,
            channel_format="int8",
            can_drop_samples=declared != "false",
            **common,
        )
    if fmt == "string":
        return StreamInfo(kind="markers", channel_format="string", can_drop_samples=declared == "true", **common)
    labels, units, types = _channels(desc, info.channel_count())
    types = [t or info.type() for t in types]
    return StreamInfo(
        kind="signal",
        channel_format=fmt,
        channel_labels=labels,
        channel_units=units,
        channel_types=types,
        can_drop_samples=declared == "true",
        **common,
    )


def describe_queries(queries: Sequence[StreamQuery]) -> str:
    """Several queries in words, joined by ``; or ``."""
    return "; or ".join(q.describe() for q in queries) or "any stream"
