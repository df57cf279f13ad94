"""A recording across two hosts, through a cable pulled for 3 s and an amplifier driver killed and restarted.

The devices (``mecg simulate`` with its virtual amplifier, trigger box and camera; ``mecg stream
ecg`` and ``mecg stream trigger`` on them) run in one network namespace with one hostname, the
recorder (``mecg record``) in another with another, joined by a veth link; each side's LSL config
names the other in ``KnownPeers`` (tests/netns.py). The camera's outlet keeps 1 s, so the outage
costs frames; the ECG driver's keeps 60 s, so it costs no samples; the restart costs the samples of
the time the driver was down. What was really lost is known from the simulator (device frame and
sample indices, the pulses it fired), not from the recorder's counting, and the two must agree;
what the device programs pushed is logged on their own host, so losses on the way are told from
what a busy machine's simulator never delivered. Needs root or CAP_NET_ADMIN; skipped with the
reason elsewhere.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from netns import (
    DEVICES,
    RECORDER,
    TwoHosts,
    camera_truth,
    chain_lost,
    ecg_stamp_error,
    ecg_truth,
    namespace_problem,
    pulse_truth,
    read_truth,
    wait_for,
)

from mecg.cli.info import recorded_loss
from mecg.session import open_session

MECG = [sys.executable, "-m", "mecg"]
LIFE = ["--seconds", "300"]  # device programs end by themselves even if this test is killed
FPS = 60.0
RECORD_S = 20.0
OUTAGE = (4.0, 7.0)  # s after the recording started: the cable is out
KILL_AT = 11.0  # s after the recording started: the amplifier driver is killed and started again

_problem = namespace_problem() if sys.platform.startswith("linux") else "network namespaces are Linux only"
pytestmark = [
    pytest.mark.skipif(_problem is not None, reason=f"multi-host test needs network namespaces: {_problem}"),
    pytest.mark.slow,
]


def _ready(proc, text: str = "Ctrl-C to stop") -> bool:
    """``proc`` printed ``text``; fails at once (with its output) if it exited."""
    if proc.popen.poll() is not None:
        raise AssertionError(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.text()}")
    return text in proc.text()


def _at(t0: float, offset_s: float) -> None:
    """Wait until ``offset_s`` after ``t0`` (monotonic): the scenario's own timeline, not a wait for a result."""
    time.sleep(max(0.0, t0 + offset_s - time.monotonic()))


@pytest.fixture
def lab(tmp_path: Path):
    with TwoHosts(tmp_path / "lab") as hosts:
        yield hosts


def test_two_hosts_outage_and_driver_restart_lose_only_what_is_counted(lab: TwoHosts, tmp_path: Path) -> None:
    sim_dir = lab.folder / "sim"
    sim_cmd = [*MECG, "simulate", "--dir", str(sim_dir), "--seed", "3", "--fps", f"{FPS:g}", "--size", "160x120"]
    # the camera's outlet keeps 1 s: the outage costs frames; the ECG driver's keeps 60 s: it costs no samples
    sim = lab.start(DEVICES, "simulate", [*sim_cmd, "--buffer-s", "1", *LIFE])
    wait_for("mecg simulate ready", lambda: _ready(sim), 60)
    ecg_cmd = [*MECG, "stream", "ecg", "--port", str(sim_dir / "amplifier"), *LIFE]
    ecg = lab.start(DEVICES, "ecg", ecg_cmd)
    trig_cmd = [*MECG, "stream", "trigger", "--port", str(sim_dir / "trigger"), "--gap", "1:2", "--seed", "3", *LIFE]
    trig = lab.start(DEVICES, "trigger", trig_cmd)
    wait_for("ECG driver ready", lambda: _ready(ecg), 30)
    wait_for("trigger driver ready", lambda: _ready(trig), 30)
    # what the device programs push, logged on their own host: tells the link's losses from the devices' own
    pushed = {name: lab.folder / f"pushed-{name}.npy" for name in ("FaceCamera", "ECG")}
    loggers = [lab.log_pushed(DEVICES, name, npy, 300) for name, npy in pushed.items()]

    out = tmp_path / "two_hosts.h5"
    rec = lab.start(
        RECORDER,
        "record",
        [*MECG, "record", "--out", str(out), "--duration", f"{RECORD_S:g}", "--wait", "15", "--quiet", "--json"]
        + [arg for name in ("ECG", "FaceCamera", "TriggerBox") for arg in ("--stream", name)]
        + ["--host", lab.hostname[DEVICES]],  # the streams of that computer only
    )
    wait_for("recording started", lambda: _ready(rec, "recording for"), 30)
    t0 = time.monotonic()
    _at(t0, OUTAGE[0])
    lab.link(False)
    t_down = time.monotonic()
    _at(t0, OUTAGE[1])
    lab.link(True)
    t_up = time.monotonic()
    _at(t0, KILL_AT)
    t_kill = time.monotonic()
    assert lab.stop(ecg, signal.SIGKILL) == -signal.SIGKILL
    ecg2 = lab.start(DEVICES, "ecg-restarted", ecg_cmd)
    wait_for("restarted ECG driver ready", lambda: _ready(ecg2), 30)

    rec.popen.wait(timeout=RECORD_S + 40)
    assert rec.popen.returncode == 0, rec.text()
    summary = json.loads(rec.out.read_text())
    for logger in loggers:
        assert lab.stop(logger) == 0, logger.text()
    cam_pushed, ecg_pushed = np.load(pushed["FaceCamera"]), np.load(pushed["ECG"])
    # SIGTERM, not SIGINT: a test run started in the background by a non-interactive shell passes SIGINT on
    # ignored, and a stop that cannot arrive failed this test in such runs (the simulator ran on to its kill)
    assert lab.stop(sim, signal.SIGTERM, timeout_s=30.0) == 0, sim.text()  # its simulation.json: every pulse
    truth = read_truth(sim_dir / "simulation.json")

    # streams found across hosts, by their senders' hostname; recording complete
    assert summary["complete"] and summary["error"] == ""
    streams = {s["name"]: s for s in summary["streams"]}
    assert set(streams) == {"ECG", "FaceCamera", "TriggerBox"}
    assert all(s["hostname"] == lab.hostname[DEVICES] for s in streams.values())
    with open_session(out) as s:
        assert s.complete
        ecg_s, cam_s, mk_s = s.stream(kind="signal"), s.stream(kind="video"), s.stream(kind="markers")
        assert {x.info.hostname for x in (ecg_s, cam_s, mk_s)} == {lab.hostname[DEVICES]}
        ecg_ts, ecg_v = ecg_s.timestamps, np.asarray(ecg_s.data[:, 0], dtype=np.float64)
        cam_ts, mk_ts = cam_s.timestamps, mk_s.timestamps
        assert len(ecg_s.clock_offsets) >= 3 and len(cam_s.clock_offsets) >= 3
    assert ecg_ts[-1] - ecg_ts[0] > RECORD_S - 2 and cam_ts[-1] - cam_ts[0] > RECORD_S - 2

    # the truth: what each device really produced and the recording lacks
    cam_loss = camera_truth(truth, cam_ts)
    ecg_loss = ecg_truth(truth, ecg_v, ecg_ts)
    pulses = pulse_truth(truth, mk_ts, ecg_ts[0] + 0.2, ecg_ts[-1] - 0.2)
    print(f"camera {cam_loss}\nECG {ecg_loss}\npulses {pulses}")
    assert pulses.recorded >= 5 and pulses.missing == 0  # markers ride out the outage in the outlet's buffer
    # on the way (link, LSL, recorder) frames were lost only in the outage, which the camera's 1 s buffer did not
    # ride out, and ECG samples only at the restart: the ECG driver's 60 s buffer held the outage. (What the
    # devices did not deliver, a frame a busy simulator could not render in time, is not the link's loss; the
    # truth and the recorder's count below include it.)
    # after the link returns, liblsl reconnects the inlet (about 1 s idle, 2.2 s seen on a loaded machine) and gets
    # the camera outlet's last 1 s: frames are lost up to a few seconds after t_up, long before the ECG kill
    outage = (t_down - 0.5, min(t_up + 3.0, t_kill - 1.0))
    cam_chain = chain_lost(cam_pushed, cam_ts)
    assert cam_chain.size > 0 and np.all((cam_chain > outage[0]) & (cam_chain < outage[1])), (cam_chain, outage)
    ecg_chain = chain_lost(ecg_pushed, ecg_ts)
    assert np.all((ecg_chain > t_kill - 1.0) & (ecg_chain < t_kill + 3.0)), ecg_chain
    assert cam_loss.missing_between(t_down - 0.5, t_up) >= cam_chain.size  # the outage's run, as the truth has it
    assert ecg_loss.missing_between(t_kill - 1.0, t_kill + 0.5) > 0

    # the recorder's own count of what is missing matches the truth: in its summary, in the session, in mecg info.
    # The camera's stamps are its frame schedule: exact. The ECG's come from the driver's fit of the amplifier
    # clock, which a restarted driver starts afresh from its first reads: its first stamps may be late by a
    # millisecond or more on a busy machine, and the step across the restart (what the recorder counts from)
    # longer by as much. The count may be off by that, never more; the driver's error itself must stay small.
    err = ecg_stamp_error(truth, ecg_v, ecg_ts)
    after = int(np.searchsorted(ecg_ts, t_kill))
    jump_s = err[after] - float(np.median(err[max(0, after - 2000) : after]))
    # (~1 ms on a quiet machine, 11 ms measured at load 12 on 2 cores)
    assert abs(jump_s) < 0.020, f"the restarted ECG driver's first stamps are {jump_s * 1e3:.1f} ms off"
    # every step the recorder counts from (the restart, and on a loaded machine a second stall right after it, seen
    # once: 704 and 5292 samples) may be off by the fit's jump across it: the count by the sum of those, never more
    rate = streams["ECG"]["nominal_srate_hz"]
    cuts = np.flatnonzero(np.diff(ecg_ts) > 1.5 / rate) + 1
    jumps = np.abs(err[cuts] - err[cuts - 1])  # what the truth knows of each step's error; bounded at the restart
    ecg_tol = max(1, cuts.size) + round(float(jumps.sum()) * rate)
    assert streams["ECG"]["restarts"] == 1
    for name, loss, tol in (("ECG", ecg_loss, ecg_tol), ("FaceCamera", cam_loss, 0)):
        st = streams[name]
        assert abs(st["missing"] - loss.missing) <= tol, (st, loss)
        # a run of missing samples longer than the recorder's gap_s (0.5 s) is a gap of its table, shorter ones
        # are "dropped"
        period = 1.0 / st["nominal_srate_hz"]
        long = [r for r in loss.runs if (r[1] + 1) * period > 0.5]
        assert len(st["gap_table"]) == len(long), (st["gap_table"], loss.runs)
        for (start, _dur, missing), (_, n, t_before) in zip(st["gap_table"], long):
            assert abs(missing - n) <= tol and abs(start - t_before) < 0.01
        assert abs(st["dropped"] - sum(n for _, n, _ in loss.runs if (n + 1) * period <= 0.5)) <= tol
    with open_session(out) as s:
        for name in ("ECG", "FaceCamera"):
            stored = recorded_loss(s.stream(name=name))
            assert stored is not None and stored["missing"] == streams[name]["missing"]
            assert stored["gaps"] == [list(g) for g in streams[name]["gap_table"]]
    info = subprocess.run([*MECG, "info", str(out)], capture_output=True, text=True, timeout=60)
    assert info.returncode == 0, info.stderr
    assert f"recorder: {streams['ECG']['missing']} samples missing" in info.stdout, info.stdout

    # sync of the result runs: the strobe edges put every recorded frame on the ECG clock (or in the ECG's gap).
    # Its verdict may be "suspect": with frames lost in the outage, sync has found the strobe edges of a short
    # camera segment (4 s, a few pulses) off the pulses' fit and said so.
    sync = subprocess.run([*MECG, "sync", "--json", str(out)], capture_output=True, text=True, timeout=120)
    assert sync.returncode in (0, 3), sync.stdout + sync.stderr
    report = json.loads(sync.stdout)
    assert report["verdict"] in ("ok", "suspect") and report["mode"] == "strobe", report
    assert report["frames_aligned"] + report["frames_in_ecg_gap"] == cam_loss.recorded
    with open_session(out) as s:
        assert s.complete  # the recording itself is unchanged: sync went to the derivatives
