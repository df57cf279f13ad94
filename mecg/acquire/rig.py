"""The devices one recording starts itself: ECG amplifier, camera and trigger box drivers, or a simulated lab.

``mecg record --ecg-port ... --camera ... --trigger-port ...`` (and the lab app) start the device
drivers of :mod:`mecg.acquire` in the recording process instead of one ``mecg stream`` per
device. With ``simulate`` the rig first starts a :class:`~mecg.acquire.simulation.Simulation`
(virtual amplifier and trigger box on pseudo-terminals in a private folder, a virtual camera)
and runs the same real drivers on it, so a laptop records a complete synthetic session. The
simulated streams get source_ids unique to the run, so the recorder never picks up another
program's simulation on the same machine.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from dataclasses import dataclass, field

from mecg.acquire.errors import AcquireError
from mecg.acquire.states import DeviceRole
from mecg.acquire.stream_metadata import StreamQuery


@dataclass
class RigConfig:
    """Which drivers to start (``None`` = not this device). Rates in Hz, sizes in px, times in s.

    ``ecg_port`` / ``ecg_protocol`` / ``ecg_rate_hz``: the serial amplifier. ``camera``: a device
    index, ``/dev/videoN``, a video file or ``sim[:SEED]``; ``fps``, ``size`` (width, height) and
    ``color`` (else grey) apply to it and to the simulated camera. ``trigger_port``: the trigger
    box, pulsing every ``trigger_gap_s`` (min, max) for ``trigger_width_ms``. ``simulate``: a
    simulated lab (amplifier, trigger box, camera) playing synthetic participant ``seed`` (making
    ``me_per_min`` / ``mae_per_min`` expressions a minute), with
    ``camera_drop_prob`` of frames lost at random. ``camera_rt_priority``: real-time priority of
    the camera's capture thread (Linux SCHED_FIFO, see docs/devices.md).
    """

    simulate: bool = False
    seed: int = 0
    me_per_min: float = 2.5
    mae_per_min: float = 2.0
    ecg_port: str | None = None
    ecg_protocol: str = "mecg"
    ecg_rate_hz: float | None = None
    camera: str | None = None
    fps: float | None = None
    size: tuple[int, int] | None = None
    color: bool = False
    trigger_port: str | None = None
    trigger_gap_s: tuple[float, float] = (2.0, 8.0)
    trigger_width_ms: int = 50
    camera_drop_prob: float = 0.0
    camera_rt_priority: int | None = None
    names: dict[str, str] = field(
        default_factory=lambda: {
            DeviceRole.ECG: "ECG",
            DeviceRole.CAMERA: "FaceCamera",
            DeviceRole.TRIGGER: "TriggerBox",
        }
    )

    @property
    def empty(self) -> bool:
        """True when the rig starts nothing."""
        return not (self.simulate or self.ecg_port or self.camera or self.trigger_port)


class Rig:
    """Starts and stops the drivers of a :class:`RigConfig`; :meth:`start` raises device errors with the fix."""

    def __init__(self, config: RigConfig) -> None:
        if config.simulate and (config.ecg_port or config.camera or config.trigger_port):
            raise AcquireError("--simulate starts its own devices: drop --ecg-port, --camera and --trigger-port")
        self.config = config
        self.simulation = None
        self.ecg = None
        self.camera = None
        self.trigger = None
        self._dir: str | None = None
        self.source_ids: dict[str, str] = {}

    def start(self) -> Rig:
        """Open every device and start streaming; on an error, stop what was started and re-raise."""
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def _start(self) -> None:
        c = self.config
        token = uuid.uuid4().hex[:8]
        amp_port, trig_port, frame_source = c.ecg_port, c.trigger_port, None
        if c.simulate:
            from mecg.acquire.simulation import Simulation, SimulationConfig

            w, h = c.size or (640, 480)
            self._dir = tempfile.mkdtemp(prefix="mecg-record-sim-")
            try:
                self.simulation = Simulation(
                    SimulationConfig(
                        seed=c.seed,
                        me_per_min=c.me_per_min,
                        mae_per_min=c.mae_per_min,
                        fps=c.fps or 150.0,
                        width=w,
                        height=h,
                        color=c.color,
                        protocol=c.ecg_protocol,
                        rate_hz=int(c.ecg_rate_hz) if c.ecg_rate_hz else None,
                        camera_drop_prob=c.camera_drop_prob,
                        link_dir=self._dir,
                    )
                )
            except ValueError as exc:
                raise AcquireError(str(exc)) from None
            self.simulation.start()
            amp_port = self.simulation.amplifier.path
            trig_port = self.simulation.trigger_box.path
            frame_source = self.simulation.camera
        if amp_port:
            from mecg.acquire.ecg_driver import EcgConfig, EcgDriver

            self.ecg = EcgDriver(
                EcgConfig(
                    port=amp_port,
                    protocol=c.ecg_protocol,
                    rate_hz=c.ecg_rate_hz,
                    name=c.names[DeviceRole.ECG],
                    source_id=f"mecg-sim-ecg-{token}" if c.simulate else None,
                )
            )
            self.ecg.start()
            self.source_ids[DeviceRole.ECG] = self.ecg.source_id
        if trig_port:
            from mecg.acquire.trigger_driver import TriggerConfig, TriggerDriver

            self.trigger = TriggerDriver(
                TriggerConfig(
                    port=trig_port,
                    name=c.names[DeviceRole.TRIGGER],
                    gap_s=tuple(c.trigger_gap_s),
                    width_ms=c.trigger_width_ms,
                    seed=c.seed if c.simulate else None,
                    source_id=f"mecg-sim-trigger-{token}" if c.simulate else None,
                )
            )
            self.trigger.start()
            self.source_ids[DeviceRole.TRIGGER] = self.trigger.source_id
        if c.camera or frame_source is not None:
            from mecg.acquire.camera_driver import CameraConfig, CameraDriver

            cfg = CameraConfig(
                camera=c.camera or "virtual",
                fps=c.fps,
                size=None if c.simulate else c.size,
                gray=not c.color,
                rt_priority=c.camera_rt_priority,
                name=c.names[DeviceRole.CAMERA],
                source_id=f"mecg-sim-camera-{token}" if c.simulate else None,
            )
            self.camera = CameraDriver(cfg, source=frame_source)
            self.camera.start()
            self.source_ids[DeviceRole.CAMERA] = self.camera.source_id

    def queries(self) -> tuple[StreamQuery, ...]:
        """One query per started stream (by its source_id): what a recorder must wait for."""
        return tuple(StreamQuery(source_ids=(sid,)) for sid in self.source_ids.values())

    def describe(self) -> list[str]:
        """One line per started device, for the user."""
        out = []
        if self.simulation is not None:
            s = self.simulation
            out.append(
                f"simulated lab: participant {s.trial.subject.subject_id} (seed {self.config.seed}), "
                f"{s.config.fps:g} fps {s.config.width}x{s.config.height}, amplifier {s.amplifier_rate_hz:g} Hz"
            )
        if self.ecg is not None and self.ecg.info is not None:
            i = self.ecg.info
            out.append(
                f"ECG: {i.manufacturer} {i.model} on {self.ecg.config.port}, {i.rate_hz:g} Hz, "
                f"{', '.join(i.labels)} -> LSL {self.ecg.config.name!r}"
            )
        if self.camera is not None:
            sh = self.camera.shape
            out.append(
                f"camera: {self.camera.source.name}, {sh[1]}x{sh[0]}{'x3' if len(sh) == 3 else ''} "
                f"-> LSL {self.camera.config.name!r}"
            )
        if self.trigger is not None:
            g = self.trigger.config.gap_s
            out.append(
                f"trigger box on {self.trigger.config.port}: pulses every {g[0]:g}-{g[1]:g} s "
                f"-> LSL {self.trigger.config.name!r}"
            )
        return out

    def stats(self) -> dict:
        """What the devices report themselves: samples sent and lost, frames sent and skipped, pulses."""
        out: dict = {}
        if self.ecg is not None:
            st = self.ecg.stats
            out[DeviceRole.ECG] = {"samples": st.samples, "lost": st.lost, "reconnects": st.reconnects}
        if self.camera is not None:
            out[DeviceRole.CAMERA] = {"frames": self.camera.frames, "dropped": self.camera.dropped}
            if self.simulation is not None and self.simulation.camera is not None:
                out[DeviceRole.CAMERA]["skipped_by_simulator"] = self.simulation.camera.frames_skipped
        if self.trigger is not None:
            out[DeviceRole.TRIGGER] = {"pulses": len(self.trigger.markers), "reconnects": self.trigger.reconnects}
        return out

    def problems(self) -> list[str]:
        """Device-side trouble worth showing (a driver that stopped on an error, with why)."""
        out = []
        if self.camera is not None and self.camera.error:
            out.append(f"camera: {self.camera.error}")
        if self.ecg is not None and self.ecg.error:
            out.append(f"ECG: {self.ecg.error}")
        if self.trigger is not None and self.trigger.error:
            out.append(f"trigger box: {self.trigger.error}")
        return out

    def close(self) -> None:
        """Stop every driver and the simulation; remove the simulation's folder."""
        for drv in (self.camera, self.trigger, self.ecg):
            if drv is not None:
                try:
                    drv.close()
                except Exception:
                    pass
        if self.simulation is not None:
            try:
                self.simulation.stop()
            except Exception:
                pass
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> Rig:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
