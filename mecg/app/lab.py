"""The lab app's engine room, without Qt: the devices it started, the streams it watches, the recording.

One :class:`Lab` owns at most one :class:`~mecg.acquire.rig.Rig` (a simulated lab or the
drivers of an amplifier, a camera and a trigger box), run in a child process
(:class:`~mecg.app.device_process.DeviceProcess`) so the devices never wait on the window, and
one :class:`~mecg.acquire.recorder.Recorder`, the same engine as ``mecg record``:

- while not recording, the recorder runs in **monitor mode** (no file) on the selected streams,
  so the live view and the health table have data and show what *would* be recorded;
- :meth:`Lab.start_recording` stops the monitor and starts a recorder on the same streams with a
  file (the streams' inlets are opened again: about 0.1-0.5 s);
- :meth:`Lab.stop_recording` drains and closes the file (complete), writes a simulated session's
  ground truth as annotations, as ``mecg record --simulate`` does, and goes back to monitoring.

Every engine has ``preview=True``: the live view reads each stream's
:class:`~mecg.acquire.preview.StreamPreview` and opens no inlet of its own. The methods block
(finding streams takes up to ``wait_s``); the app calls them from a worker thread.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import pylsl

from mecg.acquire.live_analysis import LiveAnalysis
from mecg.acquire.recorder import Recorder, RecorderConfig, RecorderStatus
from mecg.acquire.rig import RigConfig
from mecg.acquire.stream_metadata import StreamQuery
from mecg.app.device_process import DeviceProcess


@dataclass(frozen=True)
class FoundStream:
    """One LSL stream on the network, as the streams panel lists it. Rate in Hz (0: irregular)."""

    name: str
    type: str
    hostname: str
    source_id: str
    rate_hz: float
    channels: int

    @property
    def identity(self) -> tuple[str, ...]:
        """What tells two streams apart (the recorder's identity: source_id, name, type, host)."""
        return (self.source_id, self.name, self.type, self.hostname)

    def query(self) -> StreamQuery:
        """A query that matches exactly this stream."""
        return StreamQuery(
            types=(self.type,),
            names=(self.name,),
            source_ids=(self.source_id,) if self.source_id else (),
            hosts=(self.hostname,),
        )


def find_streams(wait_s: float = 1.0) -> list[FoundStream]:
    """The LSL streams this computer sees within ``wait_s`` (s), sorted by type and name."""
    out = {
        (i.source_id(), i.name(), i.type(), i.hostname()): FoundStream(
            name=i.name(),
            type=i.type(),
            hostname=i.hostname(),
            source_id=i.source_id(),
            rate_hz=float(i.nominal_srate()),
            channels=int(i.channel_count()),
        )
        for i in pylsl.resolve_streams(wait_time=wait_s)
    }
    return sorted(out.values(), key=lambda s: (s.type.lower(), s.name, s.hostname, s.source_id))


class Lab:
    """Devices, monitor and recorder of the app (see the module docstring). Thread-safe: one operation at a time.

    ``wait_s``: how long the engines look for the selected streams; ``min_free_mb``: the
    recorder's disk reserve (MB); ``preview_frame_hz``: frames a second the previews copy.
    """

    def __init__(self, wait_s: float = 5.0, min_free_mb: float = 500.0, preview_frame_hz: float = 30.0) -> None:
        self.wait_s, self.min_free_mb, self.preview_frame_hz = wait_s, min_free_mb, preview_frame_hz
        self.devices: DeviceProcess | None = None
        self.engine: Recorder | None = None  # the monitor or the recorder: what the live view shows
        self.selection: tuple[StreamQuery, ...] = ()
        self.last_path: Path | None = None
        self.messages: list[str] = []
        self._journal_problems: list[str] = []
        self._lock = threading.RLock()
        #: ``--live-spot``: ``"baseline"`` or a CMCL-Net checkpoint spotted live while recording (None: off),
        #: with its CCF factor; ``analysis`` is the running recording's (its events for the live view).
        self.live_spot: str | None = None
        self.ccf_eta: float | None = None
        self.analysis: LiveAnalysis | None = None

    # -- devices ----------------------------------------------------------------------------------
    def start_devices(self, config: RigConfig) -> list[str]:
        """Start a simulated lab or drivers (replacing the running ones); one line per device. Raises device errors."""
        with self._lock:
            if self.recording:
                raise RuntimeError("stop the recording before changing devices")
            self.stop_devices()
            self.devices = DeviceProcess(config)
            return list(self.devices.lines)

    def stop_devices(self) -> None:
        """Stop the devices this app started (the monitor shows their streams stall)."""
        with self._lock:
            if self.devices is not None:
                devices, self.devices = self.devices, None
                devices.close()

    @property
    def device_source_ids(self) -> set[str]:
        """source_ids of the streams of the devices this app started."""
        return set(self.devices.source_ids.values()) if self.devices is not None else set()

    # -- watching ---------------------------------------------------------------------------------
    @property
    def recording(self) -> bool:
        """True while a recorder with a file runs."""
        e = self.engine
        return e is not None and not e.monitoring and not e.wait(0) and e.state == "recording"

    def _live_analysis(self, path: Path) -> LiveAnalysis | None:
        """The live spotter for a recording to ``path`` (None when live spotting is off)."""
        if self.live_spot is None:
            return None
        from mecg.model.live_spotter import LiveSpotParams, LiveSpotter

        ck, eta = None, self.ccf_eta
        if self.live_spot != "baseline":
            from mecg.model.spotting import DEFAULT_ETA, load_spotter

            ck = load_spotter(self.live_spot)
            eta = DEFAULT_ETA if eta is None else eta
        params = LiveSpotParams(method="baseline" if ck is None else "cmclnet", ccf_eta=eta)
        live = LiveAnalysis(LiveSpotter(path.stem, params, ck), process=True)
        live.prepare()  # its own process (own core and interpreter lock): the window and recorder never wait on it
        return live

    def _config(
        self, path: Path | None, subject: str = "", notes: str = "", analysis: LiveAnalysis | None = None
    ) -> RecorderConfig:
        return RecorderConfig(
            path=path,
            subject_id=subject,
            notes=notes,
            queries=(),
            required=self.selection,
            wait_s=self.wait_s,
            min_free_mb=self.min_free_mb if path is not None else 0.0,
            preview=True,
            preview_frame_hz=self.preview_frame_hz,
            analysis=analysis,
        )

    def monitor(self, selection: tuple[StreamQuery, ...]) -> RecorderStatus | None:
        """Watch ``selection`` (monitor mode); None when nothing is selected. Raises ``NoStreamError``."""
        with self._lock:
            if self.recording:
                raise RuntimeError("recording: the selection cannot change now")
            self._stop_engine()
            self.selection = tuple(selection)
            if not self.selection:
                return None
            rec = Recorder(self._config(None))
            rec.start()
            self.engine = rec
            return rec.status()

    def _stop_engine(self) -> RecorderStatus | None:
        if self.engine is None:
            return None
        eng, self.engine = self.engine, None
        return eng.stop()

    # -- recording --------------------------------------------------------------------------------
    def start_recording(self, path: str | os.PathLike, subject: str = "", notes: str = "") -> RecorderStatus:
        """Record the selected streams to ``path``: the monitor stops, a recorder starts.

        Raises the recorder's errors (``OutputExistsError``, ``NoStreamError``, ``DiskFullError``,
        ...); the monitor then runs again and no file is left behind.
        """
        with self._lock:
            if not self.selection:
                raise RuntimeError("no stream is selected for recording")
            if self.recording:
                raise RuntimeError("already recording")
            # the model and the analysis process first: if either fails, the monitor is still running
            analysis = self._live_analysis(Path(path))
            self._stop_engine()
            rec = Recorder(self._config(Path(path), subject, notes, analysis))
            try:
                rec.start()
            except BaseException:
                if analysis is not None:
                    analysis.finish()  # its process ends
                self._restart_monitor()
                raise
            self.engine = rec
            self.analysis = analysis
            self.last_path = Path(path)
            self._journal(Path(path))
            return rec.status()

    def stop_recording(self) -> RecorderStatus | None:
        """Drain and close the file (complete unless it failed), annotate a simulated session, monitor again."""
        with self._lock:
            if self.engine is None or self.engine.monitoring:
                return None
            final = self._finish_recording()
            self._restart_monitor()
            return final

    def _finish_recording(self) -> RecorderStatus | None:
        """Stop the recorder (the file is closed), keep its messages, annotate a simulated session."""
        eng = self.engine
        final = self._stop_engine()
        self.messages = (eng.events() if eng is not None else []) + self._journal_problems
        self._journal_problems = []
        if final is not None and final.complete:
            self._annotate(Path(final.path))
        return final

    def _journal(self, path: Path) -> None:
        devices = self.devices
        if devices is None or not devices.config.simulate:
            return
        try:
            devices.journal(path)
        except Exception as exc:  # ground truth is a bonus: never stop a recording for it
            self._journal_problems.append(f"the simulated participant's expressions are not journaled: {exc}")

    def _annotate(self, path: Path) -> None:
        devices = self.devices
        if devices is None or not devices.config.simulate:
            return
        try:
            line = devices.annotate(path)
        except Exception as exc:  # ground truth is a bonus: never lose the recording for it
            line = f"annotations of the simulated participant not written: {exc}"
        if line:
            self.messages.append(line)

    def _restart_monitor(self) -> None:
        try:
            self.monitor(self.selection)
        except Exception as exc:  # the devices went away: the app shows it, the recording is safe
            self.messages.append(f"cannot watch the streams again: {exc}")

    def status(self) -> RecorderStatus | None:
        """The engine's status (monitor or recorder), or None."""
        e = self.engine
        return e.status() if e is not None else None

    def close(self) -> RecorderStatus | None:
        """Stop everything: a running recording is closed cleanly (complete) first. Returns its final status."""
        with self._lock:
            final = None
            if self.engine is not None and not self.engine.monitoring:
                final = self._finish_recording()
            self._stop_engine()
            self.stop_devices()
            return final
