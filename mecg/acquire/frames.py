"""Frame sources for the camera driver: what they deliver and the interface they share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass
class Frame:
    """One captured frame.

    ``image``: uint8, ``(h, w)`` grey or ``(h, w, 3)`` RGB. ``t_s``: exposure start on the host's
    LSL clock when the source knows it (V4L2 buffer timestamps, the virtual camera), else
    ``None`` (the driver stamps the grab time). ``number``: the source's frame counter if it has
    one (gaps = dropped frames), else ``None``.
    """

    image: np.ndarray
    t_s: float | None = None
    number: int | None = None


class FrameSource(Protocol):
    """A camera, a video file or a virtual camera, opened.

    Optional attributes the camera driver reads when a source has them: ``exposure_s`` (s) and
    ``exposure_from`` (where that value came from, for the header), ``timestamps`` (what the
    frames' ``t_s`` are: ``"exposure"``, ``"grab"``, ``"host"``, ``"schedule"``) and
    ``acquisition`` (a dict of text put in the stream header's ``desc/acquisition``: camera,
    trigger, strobe, timestamp source; see :mod:`mecg.acquire.pylon_camera`).
    """

    #: Human-readable name of what is captured, e.g. ``"/dev/video0"`` or a file name.
    name: str
    #: Nominal frame rate (Hz).
    fps: float
    #: ``"device"``, ``"file"`` or ``"virtual"`` (:class:`~mecg.acquire.states.FrameSourceKind`).
    kind: str
    #: A stable identifier of the source, used to build the LSL ``source_id``.
    uid: str

    def read(self) -> Frame | None:
        """The next frame (blocks until it is due); ``None`` at the end of a file."""
        ...

    def close(self) -> None:
        """Release the source."""
        ...
