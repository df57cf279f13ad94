"""Video frames as an LSL / XDF stream header declares them: the XDF ``VideoRaw`` convention, and mecg's older layout.

The XDF meta-data convention for raw video (https://github.com/sccn/xdf/wiki/Video-Raw-Meta-Data):
stream type ``VideoRaw``, one sample per frame, one channel per colour channel of each pixel, and in
``desc``::

    <encoding>
      <width>640</width> <height>480</height>   required, pixels
      <color_channels>3</color_channels>        1 grey, 3 RGB or YUV, 4 RGBA
      <color_format>RGB</color_format>          required: GRAY, RGB, RGBA, YUV, ...
      <codec>RAW</codec>                        RAW when absent
    </encoding>
    <display><origin>top-left</origin> ...</display>
    <acquisition><manufacturer/> <model/> <serial_number/> ...</acquisition>

mecg streams written before it followed the convention have type ``Video`` and ``desc/width``,
``height``, ``channels`` (1 or 3) and ``pixel_format`` (``mono8``/``rgb8``); both are recognised,
under either type. A session stores frames as uint8 ``(h, w)`` (grey) or ``(h, w, 3)`` (RGB),
sent as LSL ``int8`` samples (LSL has no uint8), row-major. A video stream that cannot be stored
so (another colour format, a compressed codec, other sample types, a geometry that does not match
the channel count) is described with ``problem`` saying why; the caller then keeps its samples as
a plain signal, so nothing is lost.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

#: Stream types (compared case-insensitively) of raw video: the XDF name and mecg's older one.
VIDEO_TYPES = ("VideoRaw", "Video")
#: ``color_format`` / ``pixel_format`` values (upper case) of one grey channel per pixel.
GREY_FORMATS = ("GRAY", "GREY", "MONO", "MONO8", "Y", "Y8", "L", "LUMINANCE", "GRAY8", "GREY8")
#: ``color_format`` / ``pixel_format`` values (upper case) of red, green, blue per pixel, in that order.
RGB_FORMATS = ("RGB", "RGB8", "RGB24")
#: ``codec`` values (upper case) of uncompressed frames.
RAW_CODECS = ("", "RAW", "NONE", "UNCOMPRESSED")


@dataclass(frozen=True)
class VideoLayout:
    """The frames a video stream header declares.

    ``frame_shape`` is ``(height, width)`` or ``(height, width, 3)`` when a session can store the
    frames, else ``()`` and ``problem`` says why. ``convention`` is ``"VideoRaw"`` (``desc/encoding``)
    or ``"mecg"`` (mecg's older ``desc/width``, ``height``, ``channels``).
    """

    width: int
    height: int
    color_format: str
    convention: str
    frame_shape: tuple[int, ...] = ()
    problem: str = ""

    @property
    def storable(self) -> bool:
        """True when a session stores this stream as video frames."""
        return not self.problem


def is_video_type(stream_type: str) -> bool:
    """True for the stream types of raw video (``VideoRaw``, ``Video``; any case)."""
    return stream_type.strip().lower() in {t.lower() for t in VIDEO_TYPES}


def _text(el: ET.Element | None, tag: str) -> str:
    child = el.find(tag) if el is not None else None
    return (child.text or "").strip() if child is not None else ""


def _int(text: str) -> int:
    try:
        return int(float(text))
    except ValueError:
        return 0


def video_layout(
    stream_type: str, channel_format: str, channel_count: int, desc: ET.Element | None
) -> VideoLayout | None:
    """The frames a stream of this type, LSL channel format (``"int8"``, ...), channel count and ``desc`` holds.

    None when the type is not a video type. Otherwise a :class:`VideoLayout`, whose ``problem`` is
    empty when a session can store the frames.
    """
    if not is_video_type(stream_type):
        return None
    enc = desc.find("encoding") if desc is not None else None
    if enc is not None and (_text(enc, "width") or _text(enc, "height")):
        convention, w, h = "VideoRaw", _int(_text(enc, "width")), _int(_text(enc, "height"))
        declared = _int(_text(enc, "color_channels"))
        fmt = _text(enc, "color_format").upper()
        codec = _text(enc, "codec").upper()
    else:
        convention, w, h = "mecg", _int(_text(desc, "width")), _int(_text(desc, "height"))
        declared = _int(_text(desc, "channels"))
        fmt = _text(desc, "pixel_format").upper()
        codec = ""

    def out(problem: str = "", shape: tuple[int, ...] = ()) -> VideoLayout:
        return VideoLayout(w, h, fmt, convention, shape, problem)

    if w <= 0 or h <= 0:
        return out("no frame width and height in its header (desc/encoding/width, height)")
    if codec not in RAW_CODECS:
        return out(f"frames compressed with codec {codec}; a session stores raw frames")
    if fmt in GREY_FORMATS:
        ch = 1
    elif fmt in RGB_FORMATS:
        ch = 3
    elif fmt:
        return out(f"colour format {fmt}; a session stores GRAY or RGB frames")
    else:  # no colour format: the channels per pixel decide (3 is taken as RGB)
        ch = declared or (channel_count // (w * h) if channel_count % (w * h) == 0 else 0)
        if ch not in (1, 3):
            return out(
                f"{ch or 'an unknown number of'} colour channels per pixel; a session stores 1 (GRAY) or 3 (RGB)"
            )
    if declared and declared != ch:
        return out(f"color_channels {declared} does not match colour format {fmt}")
    if w * h * ch != channel_count:
        return out(f"{channel_count} channels, but {w} x {h} pixels x {ch} colour channel(s) = {w * h * ch}")
    if channel_format != "int8":
        return out(f"{channel_format} samples; a session stores 8-bit pixels, sent as int8")
    return out(shape=(h, w) if ch == 1 else (h, w, 3))


def video_layout_from_xml(header_xml: str) -> VideoLayout | None:
    """:func:`video_layout` of a stream header (LSL ``info.as_xml()`` or an XDF StreamHeader's XML)."""
    el = ET.fromstring(header_xml)
    return video_layout(
        _text(el, "type"), _text(el, "channel_format"), _int(_text(el, "channel_count")), el.find("desc")
    )
