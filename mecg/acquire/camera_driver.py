"""The camera driver: frames from OpenCV (a device or a video file) or a virtual camera to an LSL ``VideoRaw`` outlet.

Each frame is optionally cropped to a region of interest, resized and turned grey, then pushed as
one int8 sample of ``width x height x channels`` values (LSL has no uint8: receivers view the
bytes as uint8) with ``push_chunk``. The timestamp is the exposure start when the source knows it
(V4L2 buffer timestamps are on the monotonic clock LSL uses on Linux; the virtual camera),
otherwise the moment ``grab()`` returned, minus a configurable latency. Dropped frames are counted
from the source's frame counter or, without one, from gaps in the timestamps; the stream declares
that it can drop samples, so recorders do not dejitter its timestamps into a regular grid. The
exposure time goes into the header (``desc/exposure_s``, s) when it is known: declared by the user
(``--exposure-ms``), the virtual camera's true one, or a V4L2 camera's manual exposure; otherwise
the header has none and sync estimates it (with a warning).
"""

from __future__ import annotations

import hashlib
import math
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pylsl

from mecg.acquire.background import BackgroundLoop
from mecg.acquire.buffers import DEFAULT_BUFFER_MAX_MB, DEFAULT_BUFFER_S, buffer_seconds
from mecg.acquire.errors import AcquireError, DeviceNotFoundError, DeviceTimeoutError
from mecg.acquire.frames import Frame, FrameSource
from mecg.acquire.states import FrameSourceKind


@dataclass
class CameraConfig:
    """Settings of one camera driver.

    ``camera``: a device index (``"0"``), a ``/dev/videoN`` path, a video file, or ``"sim"`` /
    ``"sim:SEED"`` (a virtual camera playing synthetic participant SEED). ``fps``: rate to request
    from a device, or to play a file at (default: the file's). ``size``: output ``(width, height)``
    in px; ``roi``: ``(x, y, width, height)`` cropped first; ``gray``: one channel. ``loop``:
    replay a file forever; ``realtime``: pace a file at its rate (else as fast as the outlet
    takes it). ``latency_s``: subtracted from grab-time stamps. ``max_buffered_s``: what the
    outlet keeps for each receiver while the network or the receiver is behind (s; ``None``: 15 s,
    shortened so that it stays under ``buffer_max_mb`` MB: 640x480 grey at 150 fps gets 15 s = 0.7 GB,
    RGB 14 s = 1.9 GB; see :mod:`mecg.acquire.buffers`); an explicit one over the cap is refused.
    ``rt_priority``: run the capture thread with real-time scheduling (Linux SCHED_FIFO, 1-99; needs
    root, CAP_SYS_NICE or an rtprio limit) so a busy machine does not hold it up long enough for the
    camera's buffers to overflow. ``exposure_s``:
    the camera's exposure time (s) as the user set it, published in the stream header (it does not
    change the camera's setting; a pylon camera is set to it); ``None``: the source's own, when it
    knows it. ``trigger_line`` / ``strobe_line``: a pylon camera's frame-start trigger input (e.g.
    ``"Line1"``) and the output driven with its exposure (e.g. ``"Line2"``); ``None``: free run, no strobe.
    """

    camera: str
    fps: float | None = None
    size: tuple[int, int] | None = None
    roi: tuple[int, int, int, int] | None = None
    gray: bool = False
    name: str = "FaceCamera"
    source_id: str | None = None
    loop: bool = False
    realtime: bool = True
    latency_s: float = 0.0
    max_buffered_s: float | None = None
    buffer_max_mb: float = DEFAULT_BUFFER_MAX_MB
    rt_priority: int | None = None
    exposure_s: float | None = None
    trigger_line: str | None = None
    strobe_line: str | None = None

    def __post_init__(self) -> None:
        e = self.exposure_s
        if e is not None and not (math.isfinite(e) and 0 < e <= 10.0):
            raise AcquireError(f"exposure must be a finite time in (0, 10] s, got {e}")


# -- OpenCV sources -----------------------------------------------------------------------------
def _rgb(image: np.ndarray) -> np.ndarray:
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if image.ndim == 3 and image.shape[2] == 1:
        return image[:, :, 0]
    return image


class DeviceCamera:
    """A camera through OpenCV (V4L2 on Linux), stamped with its buffer timestamps when they are usable."""

    kind = FrameSourceKind.DEVICE

    def __init__(self, spec: str, fps: float | None = None) -> None:
        index: int | str = int(spec) if spec.isdigit() else spec
        backend = cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY
        self.name = f"/dev/video{index}" if isinstance(index, int) and sys.platform.startswith("linux") else str(index)
        if sys.platform.startswith("linux") and not os.path.exists(self.name):
            raise DeviceNotFoundError(
                f"camera {spec!r} not found ({self.name} does not exist): list cameras with "
                "`mecg devices`, or use a video file or --camera sim"
            )
        self.cap = cv2.VideoCapture(index, backend)
        if not self.cap.isOpened():
            raise DeviceNotFoundError(
                f"camera {spec!r} cannot be opened: is another program using it? "
                "(`mecg devices` lists the cameras that open)"
            )
        if fps:
            self.cap.set(cv2.CAP_PROP_FPS, fps)
        self.fps = float(self.cap.get(cv2.CAP_PROP_FPS) or fps or 30.0)
        self.uid = f"cam-{Path(self.name).name}"
        self.timestamps = "grab"
        #: Exposure time (s) when the camera reports it in known units, else ``None``.
        self.exposure_s = v4l2_exposure_s(self.cap)

    def read(self) -> Frame | None:
        if not self.cap.grab():
            raise DeviceTimeoutError(f"camera {self.name} stopped delivering frames")
        t_grab = pylsl.local_clock()
        ok, image = self.cap.retrieve()
        if not ok:
            raise DeviceTimeoutError(f"camera {self.name} delivered a frame that could not be decoded")
        t = self.cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0  # V4L2: buffer timestamp, CLOCK_MONOTONIC
        usable = 0.0 < t_grab - t < 1.0
        self.timestamps = "exposure" if usable else "grab"
        return Frame(_rgb(image), t if usable else None, None)

    def close(self) -> None:
        self.cap.release()


#: V4L2's ``exposure_absolute`` (OpenCV ``CAP_PROP_EXPOSURE``) counts 100 us steps.
V4L2_EXPOSURE_UNIT_S = 1e-4
#: V4L2's ``exposure_auto`` menu value for manual exposure (OpenCV ``CAP_PROP_AUTO_EXPOSURE``).
V4L2_EXPOSURE_MANUAL = 1


def v4l2_exposure_s(cap: cv2.VideoCapture) -> float | None:
    """The exposure time (s) of an opened camera, or ``None`` when its units or its value are not known.

    ``CAP_PROP_EXPOSURE`` is in driver-specific units. Only V4L2 with manual exposure is read:
    there OpenCV passes ``exposure_absolute`` through in 100 us steps, unless
    ``OPENCV_VIDEOIO_V4L_RANGE_NORMALIZED`` rescales it (then unknown). With auto exposure the
    camera changes it from frame to frame, so there is no one value to publish.
    """
    try:
        normalized = os.environ.get("OPENCV_VIDEOIO_V4L_RANGE_NORMALIZED", "0") not in ("", "0")
        if cap.getBackendName() != "V4L2" or normalized:
            return None
        if round(cap.get(cv2.CAP_PROP_AUTO_EXPOSURE)) != V4L2_EXPOSURE_MANUAL:
            return None
        v = float(cap.get(cv2.CAP_PROP_EXPOSURE))
    except cv2.error:
        return None
    return v * V4L2_EXPOSURE_UNIT_S if math.isfinite(v) and v > 0 else None


def exposure_of(source: FrameSource, cfg: CameraConfig) -> tuple[float | None, str]:
    """The exposure time (s) to publish and where it came from: the user's, else the source's; (None, "") if unknown."""
    if cfg.exposure_s is not None:
        return cfg.exposure_s, "declared (--exposure-ms)"
    e = getattr(source, "exposure_s", None)
    if e is None or not (math.isfinite(e) and e > 0):
        return None, ""
    if getattr(source, "exposure_from", None):
        return float(e), source.exposure_from
    virtual = source.kind == FrameSourceKind.VIRTUAL
    return float(e), "virtual camera (true)" if virtual else "camera (V4L2 exposure_absolute, manual)"


class VideoFileSource:
    """A video file played as a camera: at its own rate (or ``fps``), once or in a loop."""

    kind = FrameSourceKind.FILE

    def __init__(self, path: str, fps: float | None = None, loop: bool = False, realtime: bool = True) -> None:
        self.path = Path(path)
        self.cap = cv2.VideoCapture(str(self.path))
        if not self.cap.isOpened():
            raise DeviceNotFoundError(f"cannot read video file {path}: not a video OpenCV can decode")
        self.fps = float(fps or self.cap.get(cv2.CAP_PROP_FPS) or 30.0)
        self.loop, self.realtime = loop, realtime
        self.name = self.path.name
        self.uid = "file-" + hashlib.sha1(str(self.path.resolve()).encode()).hexdigest()[:10]
        self._n = 0
        self._t0: float | None = None
        self.timestamps = "schedule"

    def read(self) -> Frame | None:
        ok, image = self.cap.read()
        if not ok and self.loop and self._n:
            self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, image = self.cap.read()
        if not ok:
            return None
        if self._t0 is None:
            self._t0 = pylsl.local_clock()
        t = self._t0 + self._n / self.fps  # the frame's place on the playing schedule
        if self.realtime:
            wait = t - pylsl.local_clock()
            if wait > 0:
                time.sleep(wait)
        frame = Frame(_rgb(image), t, self._n)
        self._n += 1
        return frame

    def close(self) -> None:
        self.cap.release()


def open_source(cfg: CameraConfig) -> FrameSource:
    """The frame source ``cfg.camera`` names; raises :class:`DeviceNotFoundError` with what to do."""
    spec = cfg.camera.strip()
    if spec == "pylon" or spec.startswith("pylon:"):
        from mecg.acquire.pylon_camera import open_pylon

        return open_pylon(
            spec, fps=cfg.fps, exposure_s=cfg.exposure_s, trigger_line=cfg.trigger_line, strobe_line=cfg.strobe_line
        )
    if cfg.trigger_line or cfg.strobe_line:
        raise AcquireError("trigger and strobe lines are set on pylon cameras only (--camera pylon[:SERIAL])")
    if spec == "sim" or spec.startswith("sim:"):
        from mecg.acquire.virtual_camera import VirtualCamera
        from mecg.synth import Subject, Trial, TrialConfig

        try:
            seed = int(spec[4:]) if spec.startswith("sim:") else 0
        except ValueError:
            raise AcquireError(f"--camera {spec!r}: write sim or sim:SEED with an integer seed") from None
        w, h = cfg.size or (640, 480)
        trial = Trial(
            Subject.random(f"S{seed:02d}", seed),
            0,
            TrialConfig(duration_s=60.0, fps=cfg.fps or 150.0, width=w, height=h, color=not cfg.gray),
        )
        return VirtualCamera(trial, seed=seed)
    if spec.isdigit() or spec.startswith("/dev/video"):
        return DeviceCamera(spec, cfg.fps)
    if Path(spec).is_file():
        return VideoFileSource(spec, cfg.fps, cfg.loop, cfg.realtime)
    raise DeviceNotFoundError(
        f"camera {spec!r} not found: give a device index (0), a /dev/video path, an existing video file, or sim"
    )


# -- the driver ---------------------------------------------------------------------------------
def video_stream_info(
    name: str, source_id: str, shape: tuple[int, ...], fps: float, source: FrameSource, cfg: CameraConfig
) -> pylsl.StreamInfo:
    """A ``VideoRaw`` stream (the XDF meta-data convention): one int8 sample per frame, row-major;
    ``desc/encoding`` holds width, height, color_channels, color_format (GRAY or RGB) and codec RAW.
    mecg's older ``desc/width``, ``height``, ``channels``, ``pixel_format`` stay beside it, with
    ``can_drop_samples``, the exposure time ``exposure_s`` (s, when known) and ``acquisition``."""
    h, w = shape[:2]
    ch = shape[2] if len(shape) == 3 else 1
    si = pylsl.StreamInfo(name, "VideoRaw", h * w * ch, fps, pylsl.cf_int8, source_id)
    d = si.desc()
    enc = d.append_child("encoding")
    enc.append_child_value("width", str(w))
    enc.append_child_value("height", str(h))
    enc.append_child_value("color_channels", str(ch))
    enc.append_child_value("color_format", "GRAY" if ch == 1 else "RGB")
    enc.append_child_value("codec", "RAW")
    d.append_child("display").append_child_value("origin", "top-left")
    d.append_child_value("width", str(w))
    d.append_child_value("height", str(h))
    d.append_child_value("channels", str(ch))
    d.append_child_value("pixel_format", "mono8" if ch == 1 else "rgb8")
    d.append_child_value("layout", "row-major (height, width, channels); int8 samples hold uint8 pixels")
    d.append_child_value("can_drop_samples", "true")
    exposure, exposure_from = exposure_of(source, cfg)
    if exposure is not None:
        d.append_child_value("exposure_s", f"{exposure:.9g}")
    acq = d.append_child("acquisition")
    acq.append_child_value("source", str(source.kind))
    acq.append_child_value("name", source.name)
    acq.append_child_value("timestamps", getattr(source, "timestamps", "exposure"))
    acq.append_child_value("driver", "mecg.acquire.camera_driver")
    for key, value in getattr(source, "acquisition", {}).items():  # what the source says of itself (pylon)
        acq.append_child_value(key, value)
    if cfg.roi:
        acq.append_child_value("roi", ",".join(map(str, cfg.roi)))
    if exposure is not None:
        acq.append_child_value("exposure", exposure_from)
    return si


class CameraDriver(BackgroundLoop):
    """Streams one frame source to LSL: :meth:`connect`, :meth:`start`, :meth:`stop` (or ``with``).

    ``source``: an already opened :class:`~mecg.acquire.frames.FrameSource` (e.g. a
    :class:`~mecg.acquire.virtual_camera.VirtualCamera`); default: opened from ``config.camera``.
    """

    def __init__(self, config: CameraConfig, source: FrameSource | None = None) -> None:
        self.config = config
        self.source = source
        self.outlet: pylsl.StreamOutlet | None = None
        self.shape: tuple[int, ...] = ()
        self.source_id = ""
        self.frames = 0
        self.dropped = 0
        self.buffer_s = 0
        self.finished = threading.Event()  # the file ended
        self.error = ""
        #: Scheduling of the capture thread: "normal", "SCHED_FIFO n", or why not.
        self.priority = "normal"
        self._first: Frame | None = None
        self._last_number: int | None = None
        self._last_t: float | None = None
        self._t_start = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- frames ---------------------------------------------------------------------------------
    def process(self, image: np.ndarray) -> np.ndarray:
        """Crop, resize and convert one frame as configured (uint8, C-contiguous)."""
        c = self.config
        if c.roi:
            x, y, w, h = c.roi
            if x < 0 or y < 0 or x + w > image.shape[1] or y + h > image.shape[0] or w <= 0 or h <= 0:
                raise AcquireError(f"--roi {x},{y},{w},{h} is outside the {image.shape[1]}x{image.shape[0]} frame")
            image = image[y : y + h, x : x + w]
        if c.size and (image.shape[1], image.shape[0]) != tuple(c.size):
            image = cv2.resize(image, tuple(c.size), interpolation=cv2.INTER_AREA)
        if c.gray and image.ndim == 3:
            image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        return np.ascontiguousarray(image, dtype=np.uint8)

    def connect(self) -> tuple[int, ...]:
        """Open the source, read a first frame to learn the geometry, create the outlet; returns the frame shape."""
        if self.source is None:
            self.source = open_source(self.config)
        first = self.source.read()
        if first is None:
            raise DeviceTimeoutError(f"{self.source.name} delivered no frame")
        image = self.process(first.image)
        self._first = Frame(image, first.t_s, first.number)
        self.shape = image.shape
        self.source_id = self.config.source_id or f"mecg-camera-{self.source.uid}"
        info = video_stream_info(
            self.config.name, self.source_id, self.shape, self.config.fps or self.source.fps, self.source, self.config
        )
        h, w = self.shape[:2]
        fps = self.config.fps or self.source.fps
        #: The outlet's buffer (s): what it holds for each receiver through an outage.
        self.buffer_s = buffer_seconds(
            self.config.max_buffered_s,
            default_s=DEFAULT_BUFFER_S,
            srate_hz=fps,
            sample_bytes=int(np.prod(self.shape)),
            max_mb=self.config.buffer_max_mb,
            what=f"the camera outlet ({w}x{h}{'x3' if len(self.shape) == 3 else ''} at {fps:g} fps)",
            other_fix="make the frames smaller (--size, --gray)",
        )
        self.outlet = pylsl.StreamOutlet(info, chunk_size=1, max_buffered=self.buffer_s)
        return self.shape

    def _push(self, f: Frame, t_grab: float) -> None:
        t = f.t_s if f.t_s is not None else t_grab - self.config.latency_s
        if f.number is not None and self._last_number is not None:
            self.dropped += max(0, f.number - self._last_number - 1)
        elif f.number is None and self._last_t is not None:
            gap = round((t - self._last_t) * self.source.fps) - 1
            self.dropped += max(0, gap)
        self._last_number, self._last_t = f.number, t
        self.outlet.push_chunk(f.image.reshape(1, -1).view(np.int8), t)
        self.frames += 1

    def pump(self) -> bool:
        """Capture, process and push one frame; False when the source has ended."""
        assert self.outlet is not None and self.source is not None
        if self._first is not None:
            f, self._first = self._first, None
            self._push(f, pylsl.local_clock())
            return True
        f = self.source.read()
        t_grab = pylsl.local_clock()
        if f is None:
            self.finished.set()
            return False
        self._push(Frame(self.process(f.image), f.t_s, f.number), t_grab)
        return True

    def _raise_priority(self) -> None:
        p = self.config.rt_priority
        if not p:
            return
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(int(p)))  # 0: this thread
            self.priority = f"SCHED_FIFO {p}"
        except (AttributeError, OSError, ValueError) as exc:
            self.priority = f"normal (real-time priority refused: {exc})"

    def _run(self) -> None:
        self._raise_priority()
        try:
            while not self._stop.is_set() and self.pump():
                pass
        except Exception as exc:  # a camera that fails mid-run: report it, the CLI exits cleanly
            self.error = str(exc)
            self.finished.set()

    def start(self) -> CameraDriver:
        """Connect if needed and stream in a background thread."""
        if self.outlet is None:
            self.connect()
        if self._thread is None:
            self._t_start = pylsl.local_clock()
            self._start_loop("CameraDriver")
        return self

    def stop(self) -> None:
        """Stop the thread and release the source."""
        self._stop_loop()
        if self.source is not None:
            self.source.close()

    def close(self) -> None:
        """Stop and drop the outlet."""
        self.stop()
        self.outlet = None

    def __enter__(self) -> CameraDriver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def status_line(self) -> str:
        """One line for a live display."""
        el = pylsl.local_clock() - self._t_start if self._t_start else 0.0
        h, w = self.shape[:2] if self.shape else (0, 0)
        rate = self.frames / el if el > 0 else 0.0
        return (
            f"{self.config.name} {w}x{h}{'' if len(self.shape) == 2 else 'x3'} {self.frames} frames "
            f"{rate:6.1f} fps | dropped {self.dropped}"
            + (f" | {self.priority}" if self.priority != "normal" else "")
            + (f" | error: {self.error}" if self.error else "")
        )
