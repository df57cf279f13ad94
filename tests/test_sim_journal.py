"""The simulated participant's expressions are journaled as they happen, so a killed recording keeps them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pylsl
import pytest

from mecg.acquire.sim_truth import (
    ExpressionJournal,
    journal_annotations,
    journal_path,
    read_journal,
    recorded_annotations,
)
from mecg.acquire.virtual_camera import VirtualCamera
from mecg.cli.main import main
from mecg.session import open_session
from mecg.synth import Subject, Trial, TrialConfig

#: Real-time simulators against millisecond and lost-sample assertions: ``make test`` runs these after the rest,
#: in one process, so CPU-bound tests on other workers do not starve them (see the Makefile).
pytestmark = pytest.mark.realtime


def test_the_journal_gives_the_annotations_the_camera_gives(tmp_path: Path) -> None:
    trial = Trial(Subject.random("S02", 6), 0, TrialConfig(duration_s=20.0, fps=30.0, width=64, height=48))
    cam = VirtualCamera(trial)
    n = trial.n_frames
    journal = ExpressionJournal(tmp_path / "j.jsonl", cam)
    device = np.arange(n - 100, 2 * n + 50)
    device = device[device % 7 != 3]  # the camera skipped some frames: expressions are still journaled once
    for i in device:
        journal.frame_shown(int(i))
    journal.close()
    entries = read_journal(tmp_path / "j.jsonl")
    assert journal.written == len(entries) > 0
    stamps = cam.timeline.t0 + cam.frame_time(device)
    from_journal = journal_annotations(entries, stamps)
    assert from_journal and from_journal == recorded_annotations(cam, stamps)  # the clean close's own mapping
    # a line torn by a crash is ignored, the rest is kept
    with open(tmp_path / "j.jsonl", "a") as f:
        f.write('{"type": "ME", "onset_s": 1.0, "ap')
    assert read_journal(tmp_path / "j.jsonl") == entries


def test_sigkill_during_record_simulate_keeps_the_annotations_made_so_far(tmp_path: Path, capsys) -> None:
    out = tmp_path / "killed.h5"
    argv = ["--out", str(out), "--fps", "30", "--size", "160x120", "--me-per-min", "60", "--mae-per-min", "60"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "mecg", "record", "--simulate", *argv, "--quiet", "--min-free-mb", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),  # the tests' localhost-only LSL config (conftest)
    )
    jp = journal_path(out)
    try:
        # wait until two journaled expressions ended more than 2 s ago: the recorder flushes every 0.5 s,
        # so their frames are in the file (a crash loses at most about 1 s)
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.stderr.read()
            entries = read_journal(jp) if jp.exists() else []
            if sum(e["offset_s"] < pylsl.local_clock() - 2.0 for e in entries) >= 8:
                break
            assert time.monotonic() < deadline, "no expression journaled in time"
            time.sleep(0.1)
        t_kill = pylsl.local_clock()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    journaled = read_journal(jp)
    settled = [e for e in journaled if e["offset_s"] < t_kill - 2.0]
    assert len(settled) >= 8

    assert main(["record", "--recover-annotations", str(out)]) == 0
    assert "recovered" in capsys.readouterr().out
    assert not jp.exists()  # stored: the journal is gone
    with open_session(out) as s:
        assert not s.complete
        ann = s.annotations
        video = s.stream(kind="video")
        ts = video.timestamps
    # the truth: the settled expressions whose onset, apex and offset frames are all in the file (the virtual
    # camera stamps each frame with its exact exposure start, the journal's times). A starved camera drops frames
    # at the source (a loaded CI machine dropped 16 %, and both of two expressions lost one; once all of four did),
    # so eight are waited for
    stamps = np.asarray(ts)

    def recorded(t: float) -> bool:
        return bool(np.min(np.abs(stamps - t)) < 1e-6)

    whole = [e for e in journaled if all(recorded(e[k]) for k in ("onset_s", "apex_s", "offset_s"))]
    assert any(e in whole for e in settled), f"no settled expression has all its frames in the file: {settled}"
    # recovered: exactly the journaled expressions whose frames are all in the file
    onsets = sorted(float(stamps[a.onset_frame]) for a in ann)
    assert np.allclose(onsets, sorted(e["onset_s"] for e in whole), rtol=0, atol=1e-6), (whole, onsets)
    # each is one of the participant's journaled expressions, on the frames stamped with its times
    for a in ann:
        e = min(journaled, key=lambda e: abs(e["onset_s"] - ts[a.onset_frame]))
        assert (a.type, a.aus, a.emotion) == (e["type"], e["aus"], e["emotion"])
        for key, frame in (("onset_s", a.onset_frame), ("apex_s", a.apex_frame), ("offset_s", a.offset_frame)):
            assert abs(ts[frame] - e[key]) < 0.5 / 30
    # and they are the trial's expressions, in order (a camera that skips a frame may shorten one: no lengths)
    sim = Trial(
        Subject.random("S00", 0),
        0,
        TrialConfig(duration_s=60.0, fps=30.0, width=160, height=120, me_per_min=60.0, mae_per_min=60.0),
    )
    truth = [(t.type, t.aus, t.emotion) for t in sim.annotations()]
    shown = [(e["type"], e["aus"], e["emotion"]) for e in journaled]
    # the 60 s trial plays in a loop: on a slow machine the recording outlasts it and wraps to its start
    looped = truth * (2 + len(shown) // len(truth))
    assert any(looped[k : k + len(shown)] == shown for k in range(len(truth)))


def test_recover_without_a_journal_is_a_clear_error(tmp_path: Path, capsys) -> None:
    assert main(["record", "--recover-annotations", str(tmp_path / "x.h5")]) == 2
    err = capsys.readouterr().err
    assert "no expression journal" in err and "Traceback" not in err


def test_journal_lines_are_json(tmp_path: Path) -> None:
    trial = Trial(Subject.random("S03", 3), 0, TrialConfig(duration_s=10.0, fps=30.0, width=64, height=48))
    cam = VirtualCamera(trial)
    j = ExpressionJournal(tmp_path / "j.jsonl", cam)
    for i in range(trial.n_frames):
        j.frame_shown(i)
    j.close()
    lines = (tmp_path / "j.jsonl").read_text().splitlines()
    assert len(lines) == len(trial.annotations()) and all(json.loads(x)["type"] in ("ME", "MaE") for x in lines)
    j.close(remove=True)
    assert not (tmp_path / "j.jsonl").exists()
