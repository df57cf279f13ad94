"""Spotting front end: MEGC metric, baseline spotter, head-motion compensation, HRS, cache, no face."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest

from mecg.cli.main import main
from mecg.model.baseline import BaselineParams, flow_score, spot_baseline
from mecg.model.ecg_features import ecg_features
from mecg.model.evaluate import Interval, evaluate, iou, read_predictions, write_predictions
from mecg.model.face import FaceNotFoundError
from mecg.model.frontend import CACHE_GROUP, FrontEndParams, frontend_features
from mecg.model.heart_rate import hr_slope, r_peaks
from mecg.model.spots import Spot
from mecg.session import SessionWriter, StreamInfo, open_session
from mecg.synth import Subject, Trial, TrialConfig, write_trial
from mecg.synth.expressions import Expression
from mecg.synth.heart import Heart, HeartParams

#: 8 s at 128 x 96 px: the head-motion margins hold as at 12 s and 192 x 144 (95th-percentile ratio <= 0.17, needs
#: < 0.5; no frame over the still face's level, seeds 5-7) for 60 % of the CPU
SMALL = TrialConfig(duration_s=8.0, fps=30.0, width=128, height=96, me_per_min=0, mae_per_min=0)


# -- the metric ------------------------------------------------------------------------------
def _iv(on: int, off: int, kind: str = "ME", score: float = 1.0, s: str = "a") -> Interval:
    return Interval(s, on, off, kind, score)


def test_iou_is_inclusive_and_half_counts() -> None:
    assert iou(_iv(0, 9), _iv(0, 9)) == 1.0
    assert iou(_iv(0, 9), _iv(10, 19)) == 0.0
    # [0, 9] vs [5, 14]: 5 frames shared of 15 -> 1/3; [0, 9] vs [0, 19]: 10 of 20 -> exactly 0.5
    assert iou(_iv(0, 9), _iv(5, 14)) == pytest.approx(1 / 3)
    res = evaluate([_iv(0, 19)], [_iv(0, 9)])
    assert (res["me"].tp, res["me"].fp, res["me"].fn) == (1, 0, 0)
    res = evaluate([_iv(0, 20)], [_iv(0, 9)])  # 10 / 21 < 0.5
    assert (res["me"].tp, res["me"].fp, res["me"].fn) == (0, 1, 1)


def test_duplicates_types_sessions_and_empty_sets() -> None:
    truth = [_iv(10, 20), _iv(100, 140, "MaE"), _iv(10, 20, s="b")]
    preds = [_iv(10, 20, score=0.9), _iv(11, 21, score=0.8), _iv(100, 140, "ME"), _iv(100, 141, "MaE")]
    res = evaluate(preds, truth)
    assert (res["me"].tp, res["me"].fp, res["me"].fn) == (1, 2, 1)  # duplicate and wrong type are FPs
    assert (res["mae"].tp, res["mae"].fp, res["mae"].fn) == (1, 0, 0)
    assert res["overall"].tp == 2 and res["overall"].fp == 2 and res["overall"].fn == 1
    assert res["me"].precision == pytest.approx(1 / 3) and res["me"].recall == pytest.approx(1 / 2)
    empty_pred = evaluate([], truth)
    assert empty_pred["overall"].fn == 3 and empty_pred["overall"].f1 == 0.0
    empty_truth = evaluate(preds, [])
    assert empty_truth["overall"].fp == 4 and empty_truth["overall"].precision == 0.0
    # the higher-scored prediction gets the expression; the other is the duplicate
    res = evaluate([_iv(11, 21, score=0.2), _iv(10, 20, score=0.9)], [_iv(10, 20)])
    assert res["me"].tp == 1 and res["me"].fp == 1


def test_eval_cli_skips_ccf_rejects_and_reports_json(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    pred = tmp_path / "p.csv"
    write_predictions(
        pred,
        [
            Spot("a", 10, 15, 20, 0.9, "ME", kept_by_ccf=True),
            Spot("a", 50, 55, 60, 0.8, "ME", kept_by_ccf=False),
        ],
    )
    assert len(read_predictions(pred)) == 1
    truth = tmp_path / "t.csv"
    truth.write_text("session,onset,offset,type\na,10,20,ME\na,50,60,ME\n")
    assert main(["eval", "--pred", str(pred), "--truth", str(truth), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"me", "mae", "overall"}
    assert out["me"] == {"tp": 1, "fp": 0, "fn": 1, "precision": 1.0, "recall": 0.5, "f1": 0.6667}
    bad = tmp_path / "bad.csv"
    bad.write_text("session,start\na,1\n")
    assert main(["eval", "--pred", str(bad), "--truth", str(truth)]) == 2
    assert "lacks column" in capsys.readouterr().err


# -- HRS --------------------------------------------------------------------------------------
def test_hr_slope_on_a_known_ramp() -> None:
    # HR ramps 60 -> 90 bpm over 30 s: slope 1 bpm/s
    beats = [0.0]
    while beats[-1] < 32:
        hr = 60 + np.clip(beats[-1] - 1, 0, 30)
        beats.append(beats[-1] + 60 / hr)
    b = np.asarray(beats)
    heart = Heart(HeartParams(noise_mv=0.01), b, np.diff(b, prepend=-1.0), [], 32.0)
    t = np.arange(0, 32, 0.001)
    peaks = t[r_peaks(heart.ecg(t), 1000.0)]
    hrs = hr_slope(peaks, np.arange(8, 26, 0.5))
    assert abs(np.median(hrs) - 1.0) < 0.05 and np.allclose(hrs, 1.0, atol=0.2)


# -- the video front end and the baseline -------------------------------------------------------
def test_baseline_finds_maes(tmp_path: Path) -> None:
    maes = [
        Expression("MaE", 3.0, 3.5, 4.5, (("AU12", 6.0), ("AU2", 5.0)), "RL", "happiness"),
        Expression("MaE", 5.5, 6.1, 7.0, (("AU4", 6.0), ("AU15", 5.0)), "RL", "sadness"),
    ]
    trial = Trial(Subject.random("S01", 2), 0, SMALL, expressions=maes)
    path = write_trial(trial, tmp_path / "m.h5")
    feats = frontend_features(path, FrontEndParams(k_frames=5), workers=1)
    rows, _ = spot_baseline(feats, 30.0, "m", BaselineParams(mae_length_s=1.5))
    truth = [Interval("m", a.onset_frame, a.offset_frame, a.type) for a in trial.annotations()]
    res = evaluate([r.interval() for r in rows], truth)
    assert res["mae"].tp == 2


def test_compensation_suppresses_head_motion(tmp_path: Path) -> None:
    cfg = replace(SMALL, head_motion=3.0, blinks_per_min=0.0)
    path = write_trial(Trial(Subject.random("S01", 5), 0, cfg, expressions=[]), tmp_path / "h.h5")
    still = write_trial(
        Trial(Subject.random("S01", 5), 0, replace(cfg, head_motion=0.0), expressions=[]), tmp_path / "still.h5"
    )
    on = flow_score(frontend_features(path, FrontEndParams(k_frames=5), workers=1, cache=False))
    off = flow_score(frontend_features(path, FrontEndParams(k_frames=5, compensate=False), workers=1, cache=False))
    floor = flow_score(frontend_features(still, FrontEndParams(k_frames=5), workers=1, cache=False))
    level = 3 * np.percentile(floor, 95)
    assert np.percentile(on, 95) < 0.5 * np.percentile(off, 95)
    assert (on > level).sum() < 0.25 * (off > level).sum()


def test_feature_cache_is_reused_and_invalidated(tmp_path: Path) -> None:
    path = write_trial(Trial(Subject.random("S01", 1), 0, replace(SMALL, duration_s=4.0)), tmp_path / "c.h5")
    a = frontend_features(path, FrontEndParams(k_frames=3), workers=1)
    with open_session(path) as s:
        with h5py.File(path, "r") as f:
            assert CACHE_GROUP.split("/")[0] not in f  # the recording is never written
        key = s.derived(CACHE_GROUP).attrs["params"]
        s.derived(CACHE_GROUP)["roi"][0, 0, 0]  # readable, from the derivatives file
    assert json.loads(key)["k_frames"] == 3
    b = frontend_features(path, FrontEndParams(k_frames=3), workers=1)
    np.testing.assert_array_equal(a.roi, b.roi)
    c = frontend_features(path, FrontEndParams(k_frames=6), workers=2)
    with open_session(path) as s:
        assert json.loads(s.derived(CACHE_GROUP).attrs["params"])["k_frames"] == 6
    assert not np.array_equal(a.roi, c.roi)
    d = frontend_features(path, FrontEndParams(k_frames=6), workers=1, cache=False)
    np.testing.assert_allclose(c.roi, d.roi, atol=1e-5)  # two processes give what one gives


def test_ecg_features_need_sync_and_are_cached(tmp_path: Path) -> None:
    path = write_trial(Trial(Subject.random("S01", 1), 0, replace(SMALL, duration_s=15.0)), tmp_path / "e.h5")
    with pytest.raises(Exception, match="mecg sync"):
        ecg_features(str(path))
    assert main(["sync", str(path)]) == 0
    f = ecg_features(str(path))
    with open_session(path) as s:
        n = s.stream(kind="video").sample_count
    assert f.hr_bpm.shape == (n,) and f.hrv.shape == (n, 5) and f.quality.mean() > 0.9
    assert 45 < np.nanmean(f.hr_bpm) < 100 and f.mean_hrs_bpm_per_s > 0
    g = ecg_features(str(path))
    np.testing.assert_array_equal(f.hrs_bpm_per_s, g.hrs_bpm_per_s)


def test_no_face_is_a_clear_error_and_face_box_overrides(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "blank.h5"
    rng = np.random.default_rng(0)
    with SessionWriter(path, "S01") as w:
        k = w.add_stream(StreamInfo("cam", "Video", kind="video", frame_shape=(72, 96), nominal_srate_hz=30))
        w.append(k, (120 + rng.normal(0, 2, (60, 72, 96))).clip(0, 255).astype(np.uint8), np.arange(60) / 30)
    with pytest.raises(FaceNotFoundError, match="--face-box"):
        frontend_features(path, FrontEndParams(k_frames=3), workers=1)
    assert main(["spot", str(path), "--out", str(tmp_path / "s.csv")]) == 2
    assert "no face found" in capsys.readouterr().err
    assert main(["spot", str(path), "--out", str(tmp_path / "s.csv"), "--face-box", "20,10,50,50"]) == 0


def test_spot_cli_writes_eval_ready_csv_and_plot(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    write_trial(
        Trial(Subject.random("S01", 3), 0, replace(SMALL, duration_s=12.0, mae_per_min=6.0)), tmp_path / "sub-01.h5"
    )
    out, png = tmp_path / "spots.csv", tmp_path / "spots.png"
    assert main(["spot", str(tmp_path), "--out", str(out), "--plot", str(png), "--workers", "1"]) == 0
    assert (tmp_path / "spots_sub-01.png").stat().st_size > 10_000
    rows = read_predictions(out)
    assert rows and all(r.session == "sub-01" for r in rows)
    capsys.readouterr()
    assert main(["eval", "--pred", str(out), "--truth", str(tmp_path), "--json"]) == 0
    assert "overall" in json.loads(capsys.readouterr().out)
