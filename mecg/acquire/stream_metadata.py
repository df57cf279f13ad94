"""From an LSL stream header to what a session file stores about the stream, and how streams are picked.

:func:`session_stream_info` reads the full header of an opened inlet (``inlet.info()``: the one
from a resolver lacks the ``desc`` element) into a :class:`mecg.session.StreamInfo`: identity,
nominal rate, channel labels / units / types from ``desc/channels``, ``can_drop_samples`` and,
for video, the frame geometry the camera driver declares (``desc/width``, ``height``,
``channels``). The header itself is kept verbatim (``lsl_header``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pylsl

from mecg.acquire.errors import AcquireError
from mecg.session import StreamInfo

#: Stream types recorded when nothing else is asked for.
DEFAULT_TYPES = ("ECG", "Video", "Markers")

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

    ``StreamQuery(types=("ECG", "Video"), hosts=("lab-pc",))`` matches ECG and Video streams sent
    from ``lab-pc``; an all-empty query matches every stream. Types compare case-insensitively.
    """

    types: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    source_ids: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()

    def matches(self, info: pylsl.StreamInfo) -> bool:
        """True if ``info`` (a resolved LSL stream) is wanted by this query."""
        if self.types and info.type().lower() not in {t.lower() for t in self.types}:
            return False
        if self.names and info.name() not in self.names:
            return False
        if self.source_ids and info.source_id() not in self.source_ids:
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
                ("host", self.hosts),
            )
            if vals
        ]
        return ", ".join(parts) or "any stream"


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


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return 0


def video_frame_shape(info: pylsl.StreamInfo) -> tuple[int, ...] | None:
    """``(height, width)`` or ``(height, width, 3)`` from the header's ``desc``; None if absent or inconsistent."""
    desc = info.desc()
    w, h = _int(desc.child_value("width")), _int(desc.child_value("height"))
    ch = _int(desc.child_value("channels")) or 1
    if w <= 0 or h <= 0 or ch not in (1, 3) or w * h * ch != info.channel_count():
        return None
    return (h, w) if ch == 1 else (h, w, 3)


def is_video(info: pylsl.StreamInfo) -> bool:
    """A camera stream this recorder stores as frames: type Video, int8 samples, geometry in the header."""
    return (
        info.type().lower() == "video"
        and info.channel_format() == pylsl.cf_int8
        and video_frame_shape(info) is not None
    )


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
    if is_video(info):
        # cameras skip frames when they cannot keep up; the camera driver says so in its header
        return StreamInfo(
            kind="video",
            frame_shape=video_frame_shape(info),
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
