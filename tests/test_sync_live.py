"""Live sync (issue #14): a simulated lab recorded live, a driver killed and restarted, then ``mecg sync``.

The simulated lab is the one ``mecg record --simulate`` runs (virtual amplifier with the trigger and
the camera strobe wired, virtual trigger box, virtual camera), driven by the real drivers and
recorded by the real :class:`~mecg.acquire.recorder.Recorder` over the project's localhost-only LSL
config. During the recording the ECG driver (a ``mecg stream ecg`` process, SIGKILLed and started
again with the same source_id) or the camera driver (stopped, its outlet gone, and a new one started
on the same source_id) goes away for a while; the recorder records a gap and goes on.

The result is checked against the simulator's ground truth (:meth:`Simulation.truth`), never
against sync's own residuals: every recorded frame's true exposure start is put on the ECG clock
(the amplifier's sample clock from the first recorded ECG sample, see docs/sync.md). The contract:
either the verdict is ``failed`` and ``mecg sync`` exits 1, or every aligned frame is within 1 ms
of the truth, frames in the ECG gap are NaN and counted, and the exit code matches the verdict.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pytest
from waiting import wait_until as wait_for

from mecg.acquire.camera_driver import CameraConfig, CameraDriver
from mecg.acquire.recorder import Recorder, RecorderConfig, StreamStatus
from mecg.acquire.simulation import Simulation, SimulationConfig
from mecg.acquire.stream_metadata import StreamQuery
from mecg.acquire.trigger_driver import TriggerConfig, TriggerDriver
from mecg.cli.main import main
from mecg.session import open_session
from mecg.sync.align import header_exposure_s
from mecg.synth.clocks import line_level

#: Real-time simulators against millisecond and lost-sample assertions: ``make test`` runs these after the rest,
#: in one process, so CPU-bound tests on other workers do not starve them (see the Makefile).
pytestmark = pytest.mark.realtime

SEED = 4
FPS = 60.0
SIZE = (96, 72)
#: ``mecg sync`` exit code of each verdict.
EXIT = {"ok": 0, "suspect": 3, "failed": 1}
#: Required agreement with the truth (ms).
TOL_MS = 1.0
#: Seconds of data wanted before the kill and after the restart.
RUN_S = 4.0


class EcgProcess:
    """``mecg stream ecg`` on the virtual amplifier's port, in its own process (so it can be SIGKILLed)."""

    def __init__(self, port: str, name: str, source_id: str, log: Path, protocol: str = "mecg") -> None:
        self.log = log
        args = ["stream", "ecg", "--port", port, "--protocol", protocol, "--name", name, "--source-id", source_id]
        args.append("--lsl-local")
        with open(log, "ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mecg", *args],
                stdout=subprocess.DEVNULL,
                stderr=err,
                env=os.environ.copy(),
            )

    def kill(self) -> None:
        """SIGKILL: no STOP to the device, no clean close of the outlet."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10.0)


@dataclass
class LiveRecording:
    """A recorded session, the simulator's truth at its end, the recorder's events."""

    path: Path
    truth: dict
    events: str


def _stream(rec: Recorder, source_id: str) -> StreamStatus:
    """The recorder's status of the stream with ``source_id``."""
    (st,) = [s for s in rec.status().streams if s.source_id == source_id]
    return st


def _samples(rec: Recorder, source_id: str) -> int:
    return _stream(rec, source_id).samples


def record_with_restart(
    tmp_path: Path, restart: Literal["ecg", "camera"], *, protocol: str = "mecg", fps: float = FPS
) -> LiveRecording:
    """Record the simulated lab; after ``RUN_S`` s kill the ``restart`` driver, start it again, record ``RUN_S`` s.

    ``protocol``: the amplifier's (``mecg`` at 1000 Hz or ``cyton`` at 250 Hz); ``fps``: the camera's rate.
    """
    token = uuid.uuid4().hex[:8]
    sids = {k: f"test-live-{k}-{token}" for k in ("ecg", "camera", "trigger")}
    sim = Simulation(
        SimulationConfig(
            seed=SEED,
            fps=fps,
            protocol=protocol,
            width=SIZE[0],
            height=SIZE[1],
            me_per_min=0.0,
            mae_per_min=0.0,
            link_dir=str(tmp_path / "lab"),
        )
    ).start()
    out = tmp_path / f"live-{restart}.h5"
    cam_cfg = CameraConfig(camera="virtual", fps=fps, gray=True, name=f"Cam-{token}", source_id=sids["camera"])
    drivers: dict[str, TriggerDriver | CameraDriver | EcgProcess] = {}
    ecg_log = tmp_path / "ecg-driver.log"
    rec: Recorder | None = None
    try:
        drivers["trigger"] = TriggerDriver(
            TriggerConfig(
                port=sim.trigger_box.path,
                name=f"Trig-{token}",
                gap_s=(0.3, 0.6),
                width_ms=40,
                seed=SEED,
                source_id=sids["trigger"],
            )
        ).start()
        drivers["camera"] = CameraDriver(cam_cfg, source=sim.camera).start()
        ecg_args = (sim.amplifier.path, f"ECG-{token}", sids["ecg"], ecg_log, protocol)
        drivers["ecg"] = EcgProcess(*ecg_args)
        queries = tuple(StreamQuery(source_ids=(s,)) for s in sids.values())
        rec = Recorder(
            RecorderConfig(path=out, queries=queries, required=queries, wait_s=90.0, settle_s=0.3, min_free_mb=0.0)
        ).start()
        sid = sids[restart]
        fs = sim.amplifier_rate_hz
        per_s = fs if restart == "ecg" else fps
        assert wait_for(
            lambda: _samples(rec, sids["ecg"]) > RUN_S * fs and _samples(rec, sids["camera"]) > RUN_S * fps, 60.0
        ), ecg_log.read_text()
        if restart == "ecg":
            drivers["ecg"].kill()
        else:
            drivers["camera"].close()  # the driver stops and its outlet goes away: inlets see the stream vanish
        assert wait_for(lambda: _stream(rec, sid).state == "stalled", 30.0)
        n_before = _stream(rec, sid).samples
        if restart == "ecg":
            drivers["ecg"] = EcgProcess(*ecg_args)
        else:
            drivers["camera"] = CameraDriver(cam_cfg, source=sim.camera).start()
        assert wait_for(lambda: _stream(rec, sid).gaps == 1, 60.0), ecg_log.read_text()
        assert wait_for(lambda: _stream(rec, sid).samples > n_before + RUN_S * per_s, 60.0)
    finally:
        if rec is not None:
            rec.stop()
        for d in drivers.values():
            if isinstance(d, EcgProcess):
                d.kill()
            else:
                d.close()
        # the truth once nothing records and the trigger fires no more: taken before the stop, it missed a pulse
        # fired meanwhile that the recording has (a 40-sample TRIG mismatch, CI on a slow machine)
        truth = sim.truth()
        sim.stop()
    events = "\n".join(rec.events())
    assert "gap of" in events, events
    return LiveRecording(out, truth, events)


@dataclass
class Truth:
    """Ground truth on the ECG clock (s): each frame's exposure start, each ECG segment's first and last sample."""

    frame_s: np.ndarray
    ecg_first_s: np.ndarray
    ecg_last_s: np.ndarray

    def inside(self, margin_s: float) -> np.ndarray:
        """Frames inside an ECG segment's span by at least ``margin_s`` (the ones that must be aligned)."""
        out = np.zeros(self.frame_s.size, dtype=bool)
        for first, last in zip(self.ecg_first_s, self.ecg_last_s):
            out |= (self.frame_s > first + margin_s) & (self.frame_s < last - margin_s)
        return out

    def in_gap(self, margin_s: float) -> np.ndarray:
        """Frames between two ECG segments, at least ``margin_s`` from either (no ECG there: must be NaN)."""
        out = np.zeros(self.frame_s.size, dtype=bool)
        for last, first in zip(self.ecg_last_s[:-1], self.ecg_first_s[1:]):
            out |= (self.frame_s > last + margin_s) & (self.frame_s < first - margin_s)
        return out

    def within_span(self) -> np.ndarray:
        """Frames between the first and the last recorded ECG sample."""
        return (self.frame_s >= self.ecg_first_s[0]) & (self.frame_s <= self.ecg_last_s[-1])


def amplifier_inputs(truth: dict, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """TRIG and STROBE (0/1) that amplifier samples ``k`` of its sample grid saw, from the truth alone."""
    clock, cam = truth["amplifier"]["sample_clock"], truth["camera"]
    t = clock["t0_s"] + np.asarray(k, dtype=np.float64) / clock["rate_hz"]
    pulses = np.asarray(truth["pulses_true_s"], dtype=np.float64).reshape(-1, 2)
    i = np.floor((t - cam["start_s"]) * cam["rate_hz"])
    start = cam["start_s"] + i / cam["rate_hz"]
    strobe = (i >= 0) & (t >= start) & (t < start + cam["exposure_s"])
    return line_level(t, pulses).astype(np.float32), strobe.astype(np.float32)


def first_device_sample(trig: np.ndarray, strobe: np.ndarray, t_lsl: np.ndarray, truth: dict) -> int:
    """The amplifier's sample index of a recorded ECG segment's first sample.

    A first guess comes from the LSL timestamps (a few samples off: transport latency); the index
    is the one at which the true trigger line and camera exposures, sampled on the amplifier's
    true sample clock, reproduce the recorded TRIG and STROBE channels. (The truth's pulse times
    are rounded to 1 us, so a sample right at an edge may differ: up to 2 misses are allowed, and
    every other index must miss far more.)
    """
    clock = truth["amplifier"]["sample_clock"]
    guess = round((t_lsl[0] - truth["t0_lsl_s"] - clock["t0_s"]) * clock["rate_hz"])
    k = np.arange(trig.size)

    def misses(cand: int, n: int = trig.size) -> int:
        exp_trig, exp_strobe = amplifier_inputs(truth, cand + k[:n])
        return int(np.sum(exp_trig != trig[:n]) + np.sum(exp_strobe != strobe[:n]))

    scores = sorted((misses(cand), cand) for cand in range(guess - 60, guess + 61))
    if scores[0][0] > 2:  # a driver restarted on a loaded machine may stamp its first samples later: +-3 s,
        # screened on the first 2 s of the segment, the best few then scored on all of it
        screened = sorted((misses(cand, 2000), cand) for cand in range(guess - 3000, guess + 3001))
        scores = sorted({(misses(cand), cand) for _, cand in screened[:5]} | set(scores))
    (miss, cand), (runner_up, _) = scores[0], scores[1]
    assert miss <= 2 and runner_up > 20, f"no amplifier sample index reproduces the recorded channels: {scores[:3]}"
    return cand


def ground_truth(path: Path, truth: dict) -> Truth:
    """Frame exposure starts and ECG segments of the recording on the ECG clock (see the module docstring).

    A restarted driver starts the amplifier again on the sample grid it kept running (no power
    cycle), so the truth's one sample clock serves every ECG segment; were it not so, no sample
    index would reproduce a segment's channels and :func:`first_device_sample` would say so.
    """
    amp, cam = truth["amplifier"], truth["camera"]
    t0, rate, fs = amp["sample_clock"]["t0_s"], amp["sample_clock"]["rate_hz"], amp["rate_hz"]
    with open_session(path) as s:
        video, ecg = s.stream(kind="video"), s.stream(type="ECG")
        stamps, t_ecg = video.timestamps, ecg.timestamps
        labels = ecg.info.channel_labels
        data = ecg.data[()]
    # the virtual camera stamps frame i with its exposure start: which device frame each recorded one is
    pos = (stamps - truth["t0_lsl_s"] - cam["start_s"]) * cam["rate_hz"]
    frame = np.rint(pos)
    assert np.max(np.abs(pos - frame)) < 1e-3
    frame_true_s = cam["start_s"] + frame / cam["rate_hz"]
    # recorded ECG segments (cut where the file's timestamps step by more than 1.5 sample periods: the driver's
    # gap, and samples the amplifier dropped from its full transmit buffer while a loaded machine read late, as one
    # CI run did inside the restarted segment) and the amplifier sample of each one's start
    bounds = [0, *(np.flatnonzero(np.diff(t_ecg) > 1.5 / fs) + 1).tolist(), t_ecg.size]
    trig, strobe = data[:, labels.index("TRIG")], data[:, labels.index("STROBE")]
    first_true, last_true = [], []
    for a, b in itertools.pairwise(bounds):
        k0 = first_device_sample(trig[a:b], strobe[a:b], t_ecg[a:b], truth)
        first_true.append(t0 + k0 / rate)
        last_true.append(t0 + (k0 + b - a - 1) / rate)

    def on_ecg_clock(t: np.ndarray) -> np.ndarray:
        """True times -> ECG clock: recorded sample 0 at 0, then amplifier seconds (its crystal's)."""
        return (np.asarray(t) - first_true[0]) * rate / fs

    return Truth(on_ecg_clock(frame_true_s), on_ecg_clock(np.array(first_true)), on_ecg_clock(np.array(last_true)))


@pytest.mark.parametrize(
    "restart",
    [
        "ecg",
        pytest.param(
            "camera",
            marks=pytest.mark.skip(
                reason="the camera driver must share the virtual camera, so it restarts in this process: liblsl "
                "segfaulted destroying its outlet while this process's recorder held an inlet on it (seen once in a "
                "clean-clone CI run); camera gaps are covered by tests/test_sync_faults.py"
            ),
        ),
    ],
)
@pytest.mark.slow
def test_driver_killed_and_restarted_then_synced_against_truth(
    tmp_path: Path, capsys: pytest.CaptureFixture, restart: Literal["ecg", "camera"]
) -> None:
    live = record_with_restart(tmp_path, restart)
    rc = main(["sync", str(live.path), "--json"])
    cap = capsys.readouterr()
    report = json.loads(cap.out)
    gt = ground_truth(live.path, live.truth)
    with open_session(live.path) as s:
        times = s.sync_group["frame_time_ecg_s"][()]
        ecg_segments = s.sync_group["ecg_segments"][()]
        exposure = header_exposure_s(s.stream(kind="video"))

    # the camera's header carries its true exposure, so sync does not guess it
    assert exposure == pytest.approx(live.truth["camera"]["exposure_s"], rel=1e-6)
    assert report["exposure_ms"] == pytest.approx(exposure * 1e3, abs=1e-4)
    assert not any("exposure unknown" in w for w in report["warnings"]), report["warnings"]

    # the recording really has the gap (or not): a segment starts more than 50 ms after the one before it ends;
    # samples the amplifier dropped under load cut segments too, and sync must find each of them
    assert np.sum(gt.ecg_first_s[1:] - gt.ecg_last_s[:-1] > 0.05) == (1 if restart == "ecg" else 0)
    assert report["ecg"]["segments"] == gt.ecg_first_s.size
    if restart == "camera":
        assert report["video"]["segments"] == 2
    assert rc == EXIT[report["verdict"]], (rc, report["verdict"], cap.err)
    err_ms = (times - gt.frame_s) * 1e3
    aligned = np.isfinite(times)
    worst = float(np.max(np.abs(err_ms[aligned]))) if aligned.any() else float("nan")
    rms = float(np.sqrt(np.mean(err_ms[aligned] ** 2))) if aligned.any() else float("nan")
    print(
        f"\n{restart} restart: verdict {report['verdict']} ({'; '.join(report['reasons'])}), mode {report['mode']}, "
        f"frames {times.size}, aligned {int(aligned.sum())}, in ECG gap {report['frames_in_ecg_gap']} "
        f"(truly in the gap {int(gt.in_gap(0.0).sum())}); error vs truth max {worst:.4f} ms, RMS {rms:.4f} ms; "
        f"ECG segment starts {ecg_segments[:, 2]} s, true {gt.ecg_first_s} s"
    )
    if report["verdict"] == "failed":
        assert rc == 1
        return
    # ok or suspect: every aligned frame within 1 ms of the truth, every frame inside an ECG segment aligned
    assert np.all(np.abs(err_ms[aligned]) < TOL_MS), np.sort(np.abs(err_ms[aligned]))[-5:]
    assert aligned[gt.inside(margin_s=0.002)].all()
    # frames in the ECG gap: NaN, and counted
    assert not aligned[gt.in_gap(margin_s=0.002)].any()
    assert report["frames_in_ecg_gap"] == int((~aligned & gt.within_span()).sum())
    assert report["frames_aligned"] == int(aligned.sum())
    if restart == "ecg":
        # at least every recorded frame truly in the gap (counted from the truth: a loaded camera may have dropped
        # some of the gap's nominal frames at the source; the bound from the nominal rate failed on that once)
        assert report["frames_in_ecg_gap"] >= int(gt.in_gap(margin_s=0.002).sum()) > 0
        assert any("fall in ECG gaps" in w for w in report["warnings"])
    else:  # no gap; frames may only fall where the amplifier dropped samples (a few ms)
        assert report["frames_in_ecg_gap"] <= int(gt.in_gap(margin_s=-0.002).sum())
    # each ECG segment placed where it truly is: after the gap too, frames map to the right ECG samples
    assert np.all(np.abs(ecg_segments[:, 2] - gt.ecg_first_s) * 1e3 < TOL_MS), (ecg_segments, gt.ecg_first_s)
