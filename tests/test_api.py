"""The public API (issue #19): docs/api.md's quickstart runs as written, and each function's outputs,
types and errors."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import mecg
from mecg.model.evaluate import read_predictions, write_predictions
from mecg.model.spotting import SpotResult
from mecg.session import SessionError
from mecg.sync import SyncError
from mecg.synth import Subject, Trial, TrialConfig, write_trial

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"
#: Two short annotated sessions, small frames: MEs and MaEs, ECG and trigger pulses.
CFG = TrialConfig(duration_s=12.0, fps=30.0, width=192, height=144, me_per_min=10, mae_per_min=5, ecg_rate_hz=250.0)


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder ``sessions/`` with s01.h5 and s02.h5 (two subjects), never synced: copy it before use."""
    root = tmp_path_factory.mktemp("api") / "sessions"
    root.mkdir()
    for i, sid in enumerate(("S01", "S02")):
        write_trial(Trial(Subject.random(sid, i + 1), 0, CFG), root / f"{sid.lower()}.h5")
    return root


@pytest.fixture(scope="module")
def featured(made: Path) -> Path:
    """The sessions with s01's video features cached in its derivatives file (computed once; not synced)."""
    out = made.parent / "featured"
    shutil.copytree(made, out)
    mecg.load_features(out / "s01.h5", ecg=False, workers=1)
    return out


@pytest.fixture
def sessions(featured: Path, tmp_path: Path) -> Path:
    """A fresh copy of the sessions (not synced; s01's video features cached) in this test's folder."""
    out = tmp_path / "sessions"
    shutil.copytree(featured, out)
    return out


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, re.S | re.M)


def test_the_quickstart_runs_as_written(sessions: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = python_blocks(DOC.read_text(encoding="utf-8"))
    assert len(blocks) >= 6
    monkeypatch.chdir(sessions.parent)
    ns: dict = {"__name__": "quickstart"}
    for n, code in enumerate(blocks, 1):
        exec(compile(code, f"docs/api.md block {n}", "exec"), ns)
    # what the quickstart made is what it says
    assert isinstance(ns["result"], SpotResult) and all(isinstance(s, mecg.Spot) for s in ns["result"].spots)
    assert isinstance(ns["trained"], mecg.TrainResult) and Path("cmcl.pt").is_file()
    assert isinstance(ns["model"], mecg.Checkpoint) and ns["model"].mode == "fusion"
    assert isinstance(ns["ecg"], mecg.FrameEcg) and isinstance(ns["res"], mecg.SyncResult)
    assert read_predictions("spots.csv")  # the CSV mecg eval reads


def test_every_public_name_loads_and_import_mecg_stays_light() -> None:
    assert set(mecg.__all__) <= set(dir(mecg))
    for name in mecg.__all__:
        assert getattr(mecg, name) is not None
    for name in ("sync_session", "ecg_for_frames", "load_features", "spot_session", "train_spotter", "evaluate"):
        assert "Parameters" in getattr(mecg, name).__doc__  # numpydoc
    with pytest.raises(AttributeError, match="no attribute 'spot'"):
        mecg.spot  # noqa: B018
    code = (
        "import json, sys, mecg\n"
        "mecg.Spot, mecg.open_session, mecg.MecgError, mecg.__version__, dir(mecg)\n"
        "print(json.dumps(sorted(m for m in ('torch', 'scipy', 'cv2') if m in sys.modules)))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(proc.stdout) == []


def test_spot_rows_round_trip_through_the_csv(tmp_path: Path) -> None:
    spots = [
        mecg.Spot("a", 10, 14, 20, 0.912345678, "ME"),
        mecg.Spot("a", 40, 47, 60, 0.5, "MaE", kept_by_ccf=False, hrs_apex_bpm_per_s=1.5),
    ]
    assert spots[0].as_row() == {
        "session": "a",
        "onset": 10,
        "apex": 14,
        "offset": 20,
        "score": "0.912346",
        "type": "ME",
        "kept_by_ccf": "true",
    }
    write_predictions(tmp_path / "p.csv", spots)
    lines = (tmp_path / "p.csv").read_text().splitlines()
    assert lines[0] == "session,onset,apex,offset,score,type,kept_by_ccf"
    assert lines[2] == "a,40,47,60,0.5,MaE,false"
    [back] = read_predictions(tmp_path / "p.csv")  # the rejected one is skipped
    assert back == replace(spots[0].interval(), score=0.912346)


def test_evaluate_takes_spots_or_files_and_skips_rejected_spots(tmp_path: Path) -> None:
    truth = tmp_path / "t.csv"
    truth.write_text("session,onset,offset,type\na,10,20,ME\na,50,60,ME\nb,0,40,MaE\n")
    spots = [
        mecg.Spot("a", 11, 15, 21, 0.9, "ME"),
        mecg.Spot("a", 50, 55, 60, 0.8, "ME", kept_by_ccf=False),
        mecg.Spot("b", 100, 110, 140, 0.7, "MaE"),
    ]
    res = mecg.evaluate(spots, truth)
    assert set(res) == {"me", "mae", "overall"} and isinstance(res["me"], mecg.Counts)
    assert (res["me"].tp, res["me"].fp, res["me"].fn) == (1, 0, 1)
    assert (res["mae"].tp, res["mae"].fp, res["mae"].fn) == (0, 1, 1)
    assert res["overall"].f1 == pytest.approx(0.4)
    write_predictions(tmp_path / "p.csv", spots)
    from_files = mecg.evaluate(tmp_path / "p.csv", str(truth))
    assert {k: v.as_dict() for k, v in from_files.items()} == {k: v.as_dict() for k, v in res.items()}
    with pytest.raises(mecg.MecgError, match=r"does not exist|cannot"):
        mecg.evaluate(tmp_path / "none.csv", truth)


def test_sync_session_stores_only_when_asked_and_ecg_for_frames_reads_one_clock(sessions: Path) -> None:
    path = sessions / "s01.h5"
    with pytest.raises(SyncError, match="has not been synced"):
        mecg.ecg_for_frames(path, 0, 10)
    dry = mecg.sync_session(path, store=False)
    assert isinstance(dry, mecg.SyncResult) and dry.mode == "strobe" and dry.verdict == "ok"
    with mecg.open_session(path) as s:
        assert "frame_time_ecg_s" not in s.sync_group
        n_frames = s.stream(kind="video").sample_count
    res = mecg.sync_session(path)
    np.testing.assert_array_equal(res.frame_time_ecg_s, dry.frame_time_ecg_s)

    ecg = mecg.ecg_for_frames(path, 100, 130)
    assert isinstance(ecg, mecg.FrameEcg) and ecg.verdict == "ok" and ecg.reasons == ()
    assert ecg.values.dtype == np.float64 and ecg.values.shape == ecg.t_s.shape == (ecg.values.size,)
    assert ecg.frame_t_s.shape == (30,)
    np.testing.assert_array_equal(ecg.frame_t_s, res.frame_time_ecg_s[100:130])
    # the samples cover the frames' span (first exposure to one frame period after the last) at the ECG rate
    span_s = ecg.frame_t_s[-1] + 1 / CFG.fps - ecg.frame_t_s[0]
    assert abs(ecg.values.size - span_s * ecg.srate_hz) <= 2
    assert ecg.frame_t_s[0] <= ecg.t_s[0] < ecg.frame_t_s[0] + 1 / ecg.srate_hz
    assert np.all(np.diff(ecg.t_s) > 0) and ecg.srate_hz == CFG.ecg_rate_hz
    with mecg.open_session(path) as s:
        raw = s.stream(type="ECG").data[ecg.first_sample : ecg.first_sample + ecg.values.size, 0]
        np.testing.assert_array_equal(ecg.values, np.asarray(raw, dtype=np.float64))
        same = mecg.ecg_for_frames(s, 100, 130)  # an open session works too
    np.testing.assert_array_equal(same.values, ecg.values)
    padded = mecg.ecg_for_frames(path, 100, 130, pad_s=0.1)
    assert padded.values.size == pytest.approx(ecg.values.size + 0.2 * ecg.srate_hz, abs=2)
    with pytest.raises(SyncError, match="outside the video"):
        mecg.ecg_for_frames(path, 0, n_frames + 1)


def test_load_features_shapes_and_ecg_only_after_sync(sessions: Path) -> None:
    path = sessions / "s01.h5"
    before = mecg.load_features(path, workers=1)
    assert isinstance(before, mecg.SessionFeatures) and before.ecg is None and before.fps == CFG.fps
    n = round(CFG.duration_s * CFG.fps)
    assert before.video.roi.shape[0] == pytest.approx(n, abs=5) and before.video.roi.shape[1:] == (12, 4)
    mecg.sync_session(path)
    after = mecg.load_features(path, workers=1)
    np.testing.assert_array_equal(after.video.roi, before.video.roi)  # read back from the derivatives cache
    assert after.ecg is not None and after.ecg.hr_bpm.shape == (after.video.roi.shape[0],)
    assert 40 < np.nanmedian(after.ecg.hr_bpm) < 150
    assert mecg.load_features(path, ecg=False, workers=1).ecg is None


def test_spot_session_baseline_and_its_errors(sessions: Path, tmp_path: Path) -> None:
    res = mecg.spot_session(sessions / "s01.h5", workers=1, plot=tmp_path / "s.png")
    assert isinstance(res, SpotResult) and res.method == "baseline" and res.session == "s01"
    assert res.scores.shape == (res.frames,) and res.fps == CFG.fps and (tmp_path / "s.png").stat().st_size > 0
    assert res.spots and all(isinstance(s, mecg.Spot) and s.session == "s01" for s in res.spots)
    assert [s.onset_frame for s in res.spots] == sorted(s.onset_frame for s in res.spots)
    assert all(0 <= s.onset_frame <= s.apex_frame <= s.offset_frame < res.frames for s in res.spots)
    assert res.kept == res.spots and res.summary.startswith("s01.h5: ")
    stricter = mecg.spot_session(sessions / "s01.h5", p=0.95, workers=1)  # features come from the cache
    assert len(stricter.spots) <= len(res.spots)
    with pytest.raises(mecg.MecgError, match="unknown spotting method 'magic'"):
        mecg.spot_session(sessions / "s01.h5", method="magic")
    with pytest.raises(mecg.MecgError, match="needs a model"):
        mecg.spot_session(sessions / "s01.h5", method="cmclnet")
    with pytest.raises(mecg.MecgError, match="does not exist; train a model"):
        mecg.spot_session(sessions / "s01.h5", tmp_path / "none.pt")
    with pytest.raises(SessionError, match="does not exist"):
        mecg.spot_session(tmp_path / "none.h5")


def test_load_spotter_and_train_spotter_refuse_what_they_cannot_use(tmp_path: Path) -> None:
    with pytest.raises(mecg.MecgError, match="is a folder"):
        mecg.load_spotter(tmp_path)
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(mecg.MecgError, match="refusing to load it"):
        mecg.load_spotter(tmp_path / "bad.pt")
    with pytest.raises(SessionError, match=r"holds no \.h5 session files"):
        mecg.train_spotter(tmp_path)
    with pytest.raises(SessionError, match="does not exist"):
        mecg.train_spotter([tmp_path / "none.h5"])
    if not _has_cuda():
        with pytest.raises(mecg.MecgError, match="no CUDA device"):
            mecg.train_spotter([tmp_path / "bad.pt"], device="cuda")


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()
