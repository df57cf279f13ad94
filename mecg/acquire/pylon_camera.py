"""A Basler pylon (pypylon) machine-vision camera as a frame source: hardware trigger, strobe, chunk timestamps.

``--camera pylon`` (the first camera pylon lists) or ``pylon:SERIAL`` opens a GenICam camera
through Basler's pylon SDK (USB3 Vision, GigE Vision, or pylon's camera emulator with
``PYLON_CAMEMU=1``) and sets it up with the SFNC feature names:

* **Frame rate / exposure**: ``AcquisitionFrameRate`` (free run) and ``ExposureTime`` (µs) when
  asked; the exposure read back is published in the stream header (``desc/exposure_s``).
* **Hardware trigger** (``trigger_line``): ``TriggerSelector=FrameStart``, ``TriggerMode=On``,
  ``TriggerSource=<line>``, rising edge: each pulse on that input exposes one frame.
* **Strobe** (``strobe_line``): ``LineSelector=<line>``, ``LineMode=Output``,
  ``LineSource=ExposureActive``: the output is high while the sensor exposes; wire it to the
  amplifier's STROBE input and ``mecg sync`` aligns every frame.
* **Timestamps**: with chunk data (``ChunkModeActive``; ``Timestamp`` and ``Framecounter``/
  ``FrameID`` chunks), each frame carries its exposure-start time in camera ticks (ns on USB3,
  ``GevTimestampTickFrequency`` on GigE); else the grab result's ``TimeStamp``. Ticks are mapped to
  the LSL clock by the lower-envelope :class:`~mecg.acquire.clock_fit.ClockFit`, fed with timestamp
  latches (``TimestampLatch``: camera time at a known host moment, every second) where the camera
  has them, else with frame arrivals less the exposure time (then the readout and transfer delay
  stays in: subtract it with ``--latency-ms``). A camera that gives no timestamps at all (pylon's
  emulator reports 0) is stamped at arrival less the exposure time, and the stream header says so.
* **Drops**: frame numbers come from the frame-counter chunk, else the stream's ``BlockID``; gaps
  count as dropped frames (:class:`~mecg.acquire.camera_driver.CameraDriver`).

pypylon is imported only when such a camera is opened (``pip install mecg[devices]``).
"""

from __future__ import annotations

import threading
from types import ModuleType
from typing import Any

import numpy as np
import pylsl

from mecg.acquire.clock_fit import ClockFit
from mecg.acquire.errors import AcquireError, DeviceNotFoundError, DeviceRefusedError, DeviceTimeoutError
from mecg.acquire.frames import Frame
from mecg.acquire.states import FrameSourceKind

#: USB3 Vision cameras count timestamps in ns; GigE ones say their rate in GevTimestampTickFrequency.
DEFAULT_TICK_HZ = 1e9
#: How often the camera's clock is latched against the host's (s).
LATCH_EVERY_S = 1.0
#: A GenTL BlockID that means "no block id".
NO_BLOCK_ID = 0xFFFFFFFFFFFFFFFF


def _pylon() -> tuple[ModuleType, ModuleType]:
    """``pypylon.pylon`` and ``pypylon.genicam``, imported on first use."""
    try:
        from pypylon import genicam, pylon
    except ImportError as exc:
        raise AcquireError(
            f"pypylon is not installed ({exc}): pip install 'mecg[devices]' (or pip install pypylon)"
        ) from None
    return pylon, genicam


def list_pylon_cameras() -> list[dict[str, str]]:
    """The cameras pylon sees: friendly name, serial number, model, device class."""
    pylon, _ = _pylon()
    return [
        {
            "name": d.GetFriendlyName(),
            "serial": d.GetSerialNumber(),
            "model": d.GetModelName(),
            "class": d.GetDeviceClass(),
        }
        for d in pylon.TlFactory.GetInstance().EnumerateDevices()
    ]


class PylonCamera:
    """A :class:`~mecg.acquire.frames.FrameSource` over a pylon camera.

    Parameters
    ----------
    serial
        The camera's serial number (``None``: the first camera pylon lists).
    fps
        Frame rate (Hz) to set for free run (``None``: the camera's).
    exposure_s
        Exposure time (s) to set (``None``: the camera's; read back either way).
    trigger_line
        ``TriggerSource`` for one frame per rising edge (``"Line1"``; ``"Software"`` for
        :meth:`trigger`), or ``None`` for free run.
    strobe_line
        Output line to drive with ``ExposureActive`` (``"Line2"``), or ``None``.
    chunks
        Ask for chunk data (timestamp, frame counter, exposure); off if the camera cannot parse it.
    first_frame_timeout_s, frame_timeout_s
        How long to wait for the first frame with a hardware trigger (the trigger may start
        later), and for any frame in free run, before :class:`DeviceTimeoutError`. Once a
        triggered camera has delivered, it waits for the next pulse as long as it takes.
    """

    kind = FrameSourceKind.DEVICE

    def __init__(
        self,
        serial: str | None = None,
        *,
        fps: float | None = None,
        exposure_s: float | None = None,
        trigger_line: str | None = None,
        strobe_line: str | None = None,
        chunks: bool = True,
        first_frame_timeout_s: float = 10.0,
        frame_timeout_s: float = 2.0,
        max_buffers: int = 32,
    ) -> None:
        self.pylon, self.genicam = _pylon()
        pylon = self.pylon
        self.trigger_line, self.strobe_line = trigger_line, strobe_line
        self.first_frame_timeout_s, self.frame_timeout_s = first_frame_timeout_s, frame_timeout_s
        self._closing = threading.Event()
        self._got_frame = False
        self.frames_failed = 0
        self.skipped = 0
        tl = pylon.TlFactory.GetInstance()
        devices = list(tl.EnumerateDevices())
        if serial:
            devices = [d for d in devices if d.GetSerialNumber() == serial]
        if not devices:
            seen = ", ".join(f"{d.GetFriendlyName()}" for d in tl.EnumerateDevices()) or "none"
            raise DeviceNotFoundError(
                f"no pylon camera{f' with serial {serial}' if serial else ''} found (pylon sees: {seen}): is it "
                "connected and powered, and not opened by another program (pylon Viewer)? For pylon's camera "
                "emulator set PYLON_CAMEMU=1"
            )
        try:
            self.cam = pylon.InstantCamera(tl.CreateDevice(devices[0]))
            self.cam.Open()
        except self.genicam.GenericException as exc:
            raise DeviceNotFoundError(f"cannot open pylon camera {devices[0].GetFriendlyName()}: {exc}") from None
        info = self.cam.GetDeviceInfo()
        self.serial = info.GetSerialNumber()
        self.model = info.GetModelName()
        self.name = info.GetFriendlyName()
        self.uid = f"pylon-{self.serial}"
        self.emulated = info.GetDeviceClass() == "BaslerCamEmu"
        try:
            self._configure(fps, exposure_s, chunks)
            self._start(max_buffers)
        except BaseException:
            self.cam.Close()
            raise

    # -- GenICam nodes ----------------------------------------------------------------------------
    def _node(self, *names: str) -> Any:
        """The first of ``names`` the camera has and can read, or None."""
        nm = self.cam.GetNodeMap()
        for n in names:
            node = nm.GetNode(n)
            if node is not None and self.genicam.IsReadable(node):
                return node
        return None

    def _set(self, name: str, value: object, what: str) -> None:
        """Set node ``name`` to ``value``; a :class:`DeviceRefusedError` naming ``what`` if the camera refuses."""
        node = self.cam.GetNodeMap().GetNode(name)
        if node is None or not self.genicam.IsWritable(node):
            raise DeviceRefusedError(f"{self.name} has no writable {name}: it cannot {what}")
        symbolics = list(getattr(node, "Symbolics", []) or []) if isinstance(value, str) else []
        if symbolics and value not in symbolics:
            raise DeviceRefusedError(f"{self.name}: {name} cannot be {value!r} ({what}); choose one of {symbolics}")
        try:
            node.SetValue(value)
        except self.genicam.GenericException as exc:
            raise DeviceRefusedError(f"{self.name} refused {name}={value} ({what}): {exc}") from None

    def _configure(self, fps: float | None, exposure_s: float | None, chunks: bool) -> None:
        fmt = self._node("PixelFormat")
        self.color = False
        if fmt is not None:
            if "Mono8" in list(fmt.Symbolics) and (fmt.GetValue().startswith("Mono") or fmt.GetValue() == "Mono8"):
                self._set("PixelFormat", "Mono8", "deliver 8-bit grey frames")
            elif not fmt.GetValue().startswith("Mono"):
                self.color = True
        self._converter = None
        if self.color:
            conv = self.pylon.ImageFormatConverter()
            conv.OutputPixelFormat = self.pylon.PixelType_RGB8packed
            self._converter = conv
        if exposure_s is not None:
            auto = self._node("ExposureAuto")
            if auto is not None and self.genicam.IsWritable(auto):
                auto.SetValue("Off")
            name = "ExposureTime" if self._node("ExposureTime") is not None else "ExposureTimeAbs"
            self._set(name, float(exposure_s * 1e6), f"set an exposure of {exposure_s * 1e3:g} ms")
        exp = self._node("ExposureTime", "ExposureTimeAbs")
        #: Exposure time (s) read back from the camera.
        self.exposure_s = float(exp.GetValue()) * 1e-6 if exp is not None else None
        self.exposure_from = "pylon camera (ExposureTime, read back)"
        if fps is not None and self.trigger_line is None:
            enable = self._node("AcquisitionFrameRateEnable")
            if enable is not None and self.genicam.IsWritable(enable):
                enable.SetValue(True)
            name = (
                "AcquisitionFrameRate" if self._node("AcquisitionFrameRate") is not None else "AcquisitionFrameRateAbs"
            )
            self._set(name, float(fps), f"run at {fps:g} fps")
        rate = self._node(
            "ResultingFrameRate", "ResultingFrameRateAbs", "AcquisitionFrameRate", "AcquisitionFrameRateAbs"
        )
        self.fps = float(fps or (rate.GetValue() if rate is not None else 30.0))
        # trigger input
        self._set("TriggerSelector", "FrameStart", "select the frame-start trigger")
        if self.trigger_line is not None:
            self._set("TriggerMode", "On", "wait for a trigger")
            self._set("TriggerSource", self.trigger_line, f"take its trigger from {self.trigger_line}")
            act = self._node("TriggerActivation")
            if act is not None and self.genicam.IsWritable(act):
                act.SetValue("RisingEdge")
        else:
            self._set("TriggerMode", "Off", "run free")
        # strobe output
        if self.strobe_line is not None:
            self._set("LineSelector", self.strobe_line, f"select {self.strobe_line} for the strobe")
            mode = self.cam.GetNodeMap().GetNode("LineMode")
            if mode is not None and self.genicam.IsWritable(mode):
                self._set("LineMode", "Output", f"make {self.strobe_line} an output")
            self._set("LineSource", "ExposureActive", f"put the exposure on {self.strobe_line}")
        # chunk data
        self.chunk_names: list[str] = []
        if chunks and self._node("ChunkModeActive") is not None:
            self.cam.GetNodeMap().GetNode("ChunkModeActive").SetValue(True)
            selector = self._node("ChunkSelector")
            if selector is not None:
                for want in ("Timestamp", "Framecounter", "FrameID", "CounterValue", "ExposureTime"):
                    if want in list(selector.Symbolics):
                        selector.SetValue(want)
                        self.cam.GetNodeMap().GetNode("ChunkEnable").SetValue(True)
                        self.chunk_names.append(want)
            if not self.chunk_names:
                self.cam.GetNodeMap().GetNode("ChunkModeActive").SetValue(False)
        freq = self._node("GevTimestampTickFrequency")
        self.tick_hz = float(freq.GetValue()) if freq is not None else DEFAULT_TICK_HZ
        self._latch = None
        for cmd, value in (
            ("TimestampLatch", "TimestampLatchValue"),
            ("GevTimestampControlLatch", "GevTimestampValue"),
        ):
            c = self.cam.GetNodeMap().GetNode(cmd)
            if c is not None and self.genicam.IsWritable(c) and self.cam.GetNodeMap().GetNode(value) is not None:
                self._latch = (cmd, value)
                break

    def _start(self, max_buffers: int) -> None:
        pylon = self.pylon
        self.cam.MaxNumBuffer.SetValue(max_buffers)
        try:
            self.cam.StartGrabbing(pylon.GrabStrategy_OneByOne)
        except self.genicam.GenericException as exc:
            if not self.chunk_names and self._node("ChunkModeActive") is None:
                raise DeviceTimeoutError(f"{self.name} would not start grabbing: {exc}") from None
            # some transport layers (pylon's emulator) cannot parse chunks: grab without them
            self.cam.GetNodeMap().GetNode("ChunkModeActive").SetValue(False)
            self.chunk_names = []
            self.cam.StartGrabbing(pylon.GrabStrategy_OneByOne)
        self.fit = ClockFit()
        self._next_latch = 0.0
        self._stamps = "none"  # what the last frame's timestamp came from
        self.timestamps = "host"
        self._exposure_for_fit = self.exposure_s or 0.0

    # -- timing ---------------------------------------------------------------------------------
    def _latch_now(self) -> None:
        """Latch the camera clock and feed (camera time, host time after) to the fit."""
        cmd, value = self._latch
        nm = self.cam.GetNodeMap()
        nm.GetNode(cmd).Execute()
        host = pylsl.local_clock()
        ticks = nm.GetNode(value).GetValue()
        if ticks:
            self.fit.add(np.array([ticks / self.tick_hz]), host)

    def _device_ticks(self, result: Any) -> int | None:
        if "Timestamp" in self.chunk_names:
            node = result.GetChunkDataNodeMap().GetNode("ChunkTimestamp")
            if node is not None and self.genicam.IsReadable(node):
                v = int(node.GetValue())
                if v:
                    return v
        v = int(result.GetTimeStamp())
        return v or None

    def _number(self, result: Any) -> int | None:
        for chunk, node_name in (("Framecounter", "ChunkFramecounter"), ("FrameID", "ChunkFrameID")):
            if chunk in self.chunk_names:
                node = result.GetChunkDataNodeMap().GetNode(node_name)
                if node is not None and self.genicam.IsReadable(node):
                    return int(node.GetValue())
        block = int(result.GetBlockID())
        return None if block == NO_BLOCK_ID else block

    @property
    def acquisition(self) -> dict[str, str]:
        """What the stream header says about this camera (``desc/acquisition``)."""
        stamps = {
            "exposure": "exposure start from the camera's clock (chunk/grab timestamp), mapped to LSL by a "
            + (
                "lower-envelope fit of timestamp latches"
                if self._latch
                else "lower-envelope fit of frame arrivals "
                "less the exposure time (readout and transfer delay not removed)"
            ),
            "host": "host arrival less the exposure time: the camera gave no timestamps"
            + (" (pylon's camera emulator reports 0)" if self.emulated else ""),
        }[self.timestamps]
        return {
            "camera": f"{self.model} #{self.serial} (pylon{', emulated' if self.emulated else ''})",
            "timestamp_source": stamps,
            "trigger": f"FrameStart on {self.trigger_line}, rising edge" if self.trigger_line else "free run",
            "strobe": f"{self.strobe_line} = ExposureActive" if self.strobe_line else "none",
            "chunks": ",".join(self.chunk_names) or "none",
        }

    # -- frames ---------------------------------------------------------------------------------
    def trigger(self, timeout_s: float = 1.0) -> None:
        """Fire one software trigger (``trigger_line="Software"``), once the camera is ready for it."""
        if self.trigger_line != "Software":
            raise AcquireError("software triggers need trigger_line='Software'")
        if self.cam.WaitForFrameTriggerReady(int(timeout_s * 1000), self.pylon.TimeoutHandling_Return):
            self.cam.ExecuteSoftwareTrigger()

    def read(self) -> Frame | None:
        """The next frame; raises :class:`DeviceTimeoutError` when none comes in time (see the class)."""
        pylon = self.pylon
        waited = 0.0
        limit = self.first_frame_timeout_s if not self._got_frame else self.frame_timeout_s
        if self.trigger_line is not None and self._got_frame:
            limit = float("inf")
        while True:
            if self._closing.is_set() or not self.cam.IsGrabbing():
                return None
            if self._latch is not None and pylsl.local_clock() >= self._next_latch:
                self._latch_now()
                self._next_latch = pylsl.local_clock() + LATCH_EVERY_S
            try:
                result = self.cam.RetrieveResult(250, pylon.TimeoutHandling_Return)
            except self.genicam.GenericException:
                if self._closing.is_set():
                    return None
                raise
            arrival = pylsl.local_clock()
            if result is None or not result.IsValid():
                waited += 0.25
                if waited >= limit:
                    why = f"no trigger pulse on {self.trigger_line}?" if self.trigger_line else "is it still connected?"
                    raise DeviceTimeoutError(f"{self.name} delivered no frame for {waited:g} s ({why})")
                continue
            try:
                if not result.GrabSucceeded():
                    self.frames_failed += 1
                    continue
                self.skipped += int(result.GetNumberOfSkippedImages())
                if self._converter is not None:
                    image = self._converter.Convert(result).GetArray()
                else:
                    image = result.GetArray()
                image = np.array(image, dtype=np.uint8, copy=True)
                number = self._number(result)
                ticks = self._device_ticks(result)
            finally:
                result.Release()
            self._got_frame = True
            return Frame(image, self._stamp(ticks, arrival), number)

    def _stamp(self, ticks: int | None, arrival: float) -> float:
        """Exposure start on the LSL clock (s)."""
        if ticks is None:
            self.timestamps = "host"
            return arrival - self._exposure_for_fit
        self.timestamps = "exposure"
        device_s = ticks / self.tick_hz
        if self._latch is None:
            self.fit.add(np.array([device_s]), arrival - self._exposure_for_fit)
        return float(self.fit.map(device_s))

    def close(self) -> None:
        """Stop grabbing, undo the trigger mode, close the camera."""
        self._closing.set()
        try:
            if self.cam.IsGrabbing():
                self.cam.StopGrabbing()
            if self.cam.IsOpen():
                if self.trigger_line is not None:
                    self.cam.GetNodeMap().GetNode("TriggerMode").SetValue("Off")
                self.cam.Close()
        except self.genicam.GenericException:
            pass


def open_pylon(
    spec: str, *, fps: float | None, exposure_s: float | None, trigger_line: str | None, strobe_line: str | None
) -> PylonCamera:
    """The camera of ``--camera pylon`` / ``pylon:SERIAL``."""
    serial = spec.partition(":")[2].strip() or None
    return PylonCamera(serial, fps=fps, exposure_s=exposure_s, trigger_line=trigger_line, strobe_line=strobe_line)
