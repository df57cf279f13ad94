"""mecg stats: ECG features at ME/MaE apexes vs non-expression moments, on synthetic data with and without coupling."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from mecg.cli import stats as stats_cli
from mecg.cli.main import _COMMANDS, run
from mecg.model.heart_rate import hr_change
from mecg.model.stats import (
    FEATURES,
    SessionMoments,
    compare_groups,
    holm,
    rank_test,
    sample_quiet_frames,
    subject_differences,
    subject_test,
)
from mecg.synth import DatasetSpec, Subject, Trial, TrialConfig, make_dataset, write_trial

# Small and fast, but with enough MEs for power: 8 sessions of 45 s at 6 MEs/min (~37 MEs). The statistics
# read the ECG; the video only carries the sync (every frame is read and placed), so it is small and 15 fps;
# the ECG at 500 Hz resolves R-peaks to 2 ms, far finer than the heart-rate slopes compared.
SMALL = TrialConfig(duration_s=45.0, fps=15.0, width=64, height=48, me_per_min=6.0, ecg_rate_hz=500.0)


def _run(argv: list[str]) -> tuple[int, str, str]:
    """``mecg ARGV`` with only the stats subcommand registered (independent of other commands' imports)."""
    parser = argparse.ArgumentParser(prog="mecg")
    stats_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run(args.func, args)
    return code, out.getvalue(), err.getvalue()


def test_registered() -> None:
    assert "mecg.cli.stats" in _COMMANDS


def _strict_json(text: str) -> dict:
    def no_nan(c: str) -> None:
        raise AssertionError(f"non-standard JSON constant {c}")

    return json.loads(text, parse_constant=no_nan)


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> dict[float, tuple[Path, dict, Path]]:
    """Same subjects and expressions (seed 1) with coupling 1 and 0: folder, JSON result, plot (coupling 1 only)."""
    out = {}
    for coupling in (1.0, 0.0):
        d = tmp_path_factory.mktemp(f"coupling{coupling:g}")
        make_dataset(
            DatasetSpec(str(d / "data"), subjects=8, trials=1, seed=1, config=replace(SMALL, coupling=coupling)),
            workers=1,  # no worker processes to start: each would import the package again
        )
        png = d / "stats.png"
        plot = ["--plot", str(png)] if coupling else []  # only the coupled result's plot is looked at
        code, stdout, stderr = _run(["stats", str(d / "data"), "--json", *plot])
        assert code == 0, stderr
        out[coupling] = (d / "data", _strict_json(stdout), png)
    return out


@pytest.mark.slow
def test_hrs_at_me_apex_is_higher_with_coupling(datasets: dict) -> None:
    res = datasets[1.0][1]["features"]
    hrs = res["hrs"]["me_vs_non"]
    assert hrs["n_me"] >= 30 and hrs["n_non"] >= 30
    assert hrs["p_corrected"] < 0.05
    assert hrs["effect_size"] > 0.5, "MEs should mostly sit on sharp HRS peaks"
    assert res["hrs"]["groups"]["me"]["median"] > 2 * res["hrs"]["groups"]["non"]["median"]
    assert res["hr_change"]["me_vs_non"]["p_corrected"] < 0.05  # 75 % of ME responses are accelerations
    subj = res["hrs"]["subject_level"]["me_vs_non"]  # the same effect, each subject weighing the same
    assert subj["n_subjects"] == 8 and subj["mean_diff"] > 0 and subj["ci95"][0] > 0
    assert subj["p_corrected"] < 0.05 and subj["n_higher"] >= 7 and subj["p_wilcoxon"] < 0.05


@pytest.mark.slow
def test_hrs_no_different_without_coupling(datasets: dict) -> None:
    res = datasets[0.0][1]["features"]
    hrs = res["hrs"]["me_vs_non"]
    assert hrs["n_me"] >= 30
    assert hrs["p"] > 0.05
    assert abs(hrs["effect_size"]) < 0.3
    assert all(f[c]["p_corrected"] > 0.05 for f in res.values() for c in ("me_vs_non", "mae_vs_non"))
    subj = res["hrs"]["subject_level"]["me_vs_non"]
    assert subj["n_subjects"] == 8 and subj["ci95"][0] < 0 < subj["ci95"][1] and subj["p"] > 0.05
    assert all(f["subject_level"][c]["p_corrected"] > 0.05 for f in res.values() for c in ("me_vs_non", "mae_vs_non"))


@pytest.mark.slow
def test_json_schema(datasets: dict) -> None:
    res = datasets[1.0][1]
    assert set(res) >= {"features", "meta"}
    assert set(res["features"]) == set(FEATURES) and "hrs" in res["features"]
    for f in res["features"].values():
        me, mae = f["me_vs_non"], f["mae_vs_non"]
        assert set(me) >= {"p", "p_corrected", "effect_size", "n_me", "n_non"}
        assert set(mae) >= {"p", "p_corrected", "effect_size", "n_mae", "n_non"}
        for t in (me, mae):
            assert 0 <= t["p"] <= t["p_corrected"] <= 1
            assert -1 <= t["effect_size"] <= 1
        assert set(f["groups"]) == {"me", "mae", "non"}
        assert f["groups"]["me"]["n"] == me["n_me"] and f["groups"]["non"]["n"] == me["n_non"]
        assert f["groups"]["mae"]["n"] == mae["n_mae"]
        g = f["groups"]["non"]
        assert g["q25"] <= g["median"] <= g["q75"] and g["iqr"] == pytest.approx(g["q75"] - g["q25"])
    meta = res["meta"]
    assert meta["correction"] == "holm" and meta["family_size"] == 2 * len(FEATURES)
    assert len(meta["sessions"]) == 8 and meta["skipped"] == []
    assert meta["moments"]["non"] >= meta["moments"]["me"]
    assert meta["subject_family_size"] == 2 * len(FEATURES) and len(meta["subjects"]) == 8
    assert sorted(x for v in meta["subjects"].values() for x in v) == sorted(meta["sessions"])
    for f in res["features"].values():
        for t in f["subject_level"].values():
            assert set(t) >= {"n_subjects", "n_higher", "mean_diff", "ci95", "p", "p_corrected", "median_diff"}
            assert "p_wilcoxon" in t
            assert len(t["per_subject"]) == t["n_subjects"] and t["ci95"][0] <= t["mean_diff"] <= t["ci95"][1]


@pytest.mark.slow
def test_plot_is_a_png(datasets: dict) -> None:
    png = datasets[1.0][2]
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    import matplotlib.image

    h, w = matplotlib.image.imread(png).shape[:2]
    assert w > 800 and h > 400


@pytest.mark.slow
def test_seeded_and_human_table(datasets: dict) -> None:
    data, res, _ = datasets[1.0]
    code, stdout, _ = _run(["stats", str(data), "--json"])
    assert code == 0 and _strict_json(stdout)["features"] == res["features"], "same seed, same moments"
    code, stdout, _ = _run(["stats", str(data), "--seed", "3", "--json"])
    assert _strict_json(stdout)["features"]["hrs"]["groups"]["non"] != res["features"]["hrs"]["groups"]["non"]
    code, stdout, _ = _run(["stats", str(data)])
    assert code == 0
    assert "Holm over 16 tests" in stdout
    assert "Per subject (8 subject(s)" in stdout and "one-sample t" in stdout and "Wilcoxon" in stdout
    line = next(x for x in stdout.splitlines() if x.startswith("hrs "))
    assert "bpm/s" in line


@pytest.mark.slow
def test_single_file_and_unusable_sessions_skipped(datasets: dict, tmp_path: Path) -> None:
    src = sorted(datasets[1.0][0].glob("*.h5"))[0]
    shutil.copy(src, tmp_path / "a.h5")
    quiet = replace(SMALL, duration_s=8.0, me_per_min=0.0, mae_per_min=0.0)  # < 10 s: no forced ME
    write_trial(Trial(Subject.random("S09", 9), 0, quiet), tmp_path / "b_unannotated.h5")
    (tmp_path / "c_garbage.h5").write_bytes(b"not a session at all" * 10)
    code, stdout, stderr = _run(["stats", str(tmp_path), "--json"])
    assert code == 0, stderr
    res = _strict_json(stdout)
    assert res["meta"]["sessions"] == ["a"]
    assert {s["file"] for s in res["meta"]["skipped"]} == {"b_unannotated.h5", "c_garbage.h5"}
    assert "skipping b_unannotated.h5: no annotated expressions" in stderr
    assert "skipping c_garbage.h5" in stderr and "not an HDF5 file" in stderr
    code, stdout, stderr = _run(["stats", str(tmp_path / "a.h5"), "--json"])
    assert code == 0 and _strict_json(stdout)["meta"]["sessions"] == ["a"]


def test_no_usable_sessions_exit_2(tmp_path: Path) -> None:
    code, stdout, stderr = _run(["stats", str(tmp_path)])
    assert code == 2 and stdout == ""
    assert "holds no .h5 session files" in stderr and "Traceback" not in stderr
    (tmp_path / "x.h5").write_bytes(b"\x00" * 100)
    code, _, stderr = _run(["stats", str(tmp_path), "--json"])
    assert code == 2
    assert "no usable sessions" in stderr and "x.h5" in stderr and "Traceback" not in stderr
    code, _, stderr = _run(["stats", str(tmp_path / "missing")])
    assert code == 2 and "does not exist" in stderr
    code, _, stderr = _run(["stats", str(tmp_path), "--plot", str(tmp_path / "no" / "s.png")])
    assert code == 2 and "--plot" in stderr
    code, _, stderr = _run(["stats", str(tmp_path), "--plot", str(tmp_path / "s.txt")])
    assert code == 2 and ".png, .pdf or .svg" in stderr
    (tmp_path / "figs.png").mkdir()
    code, _, stderr = _run(["stats", str(tmp_path), "--plot", str(tmp_path / "figs.png")])
    assert code == 2 and "is a folder" in stderr


def test_rank_test_effect_size_sign_and_holm() -> None:
    r = rank_test(np.array([4.0, 5, 6, np.nan]), np.array([1.0, 2, 3]))
    assert r["effect_size"] == 1.0 and r["n_me"] == 3 and r["n_non"] == 3
    assert rank_test(np.array([1.0, 2, 3]), np.array([4.0, 5, 6]))["effect_size"] == -1.0
    assert rank_test(np.array([1.0, 2]), np.array([4.0, 5, 6]))["p"] is None  # too few values
    assert holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])


def test_quiet_frames_keep_their_distances() -> None:
    t = np.arange(3000) / 50.0  # 60 s at 50 fps
    busy = [(10.0, 10.4), (30.0, 33.0)]
    f = sample_quiet_frames(t, busy, (5.0, 55.0), 20, np.random.default_rng(0), 2.0, 1.0)
    assert f.size == 20
    assert np.all((t[f] >= 5.0) & (t[f] <= 55.0))
    for a, b in busy:
        assert np.all((t[f] < a - 2.0) | (t[f] > b + 2.0))
    assert np.min(np.diff(t[f])) >= 1.0
    # more than fit: as many as there is room for
    assert sample_quiet_frames(t, busy, (5.0, 8.0), 20, np.random.default_rng(0), 2.0, 1.0).size <= 4


def test_hr_change_of_a_step() -> None:
    rr = np.r_[np.full(20, 1.0), np.full(20, 0.75)]  # 60 -> 80 bpm
    peaks = np.r_[0.0, np.cumsum(rr)]
    step_t = peaks[20]
    assert hr_change(peaks, np.array([step_t + 0.5]))[0] == pytest.approx(20.0, abs=4.0)
    assert hr_change(peaks, np.array([7.0]))[0] == pytest.approx(0.0, abs=1e-9)
    assert np.isnan(hr_change(peaks, np.array([2.0]))[0])  # baseline before the first beat


# -- per-subject analysis on moments with a known truth -----------------------------------------------------
def _moments(rng: np.random.Generator, n_subjects: int, effect: float, confound: bool) -> list[SessionMoments]:
    """One session per subject; subjects differ a lot in level (0-20), ``effect`` is added at ME moments.

    With ``confound`` the subjects with a high level have many MEs and few non-ME moments, those with a low
    level the reverse: pooling moments then shows a difference that no subject has.
    """
    out = []
    for k in range(n_subjects):
        level = 20.0 * k / (n_subjects - 1)
        n_me, n_non = (2 + 2 * k, 2 + 2 * (n_subjects - 1 - k)) if confound else (6, 12)
        group = np.array(["me"] * n_me + ["non"] * n_non)
        v = level + rng.normal(0, 1.0, group.size) + effect * (group == "me")
        values = {name: v for name in FEATURES}
        out.append(SessionMoments(f"s{k}", group, np.arange(group.size), np.arange(group.size) * 1.0, values,
                                  subject=f"S{k:02d}"))  # fmt: skip
    return out


def test_subject_level_recovers_a_known_effect() -> None:
    t = subject_test(subject_differences(_moments(np.random.default_rng(0), 10, 3.0, False), "hrs"))
    assert t["n_subjects"] == 10 and t["n_higher"] == 10
    assert t["ci95"][0] < 3.0 < t["ci95"][1] and t["ci95"][0] > 1.0
    assert t["mean_diff"] == pytest.approx(3.0, abs=0.6)
    assert t["p"] < 0.001 and t["p_wilcoxon"] < 0.01


def test_subject_level_is_not_fooled_where_pooling_is() -> None:
    # no effect at all, but subjects with a high level contribute most of the MEs
    rng = np.random.default_rng(1)
    pooled_hits = subject_hits = 0
    for _ in range(40):
        ms = _moments(rng, 10, 0.0, True)
        group = np.concatenate([m.group for m in ms])
        v = np.concatenate([m.values["hrs"] for m in ms])
        pooled_hits += rank_test(v[group == "me"], v[group == "non"])["p"] < 0.05
        subject_hits += subject_test(subject_differences(ms, "hrs"))["p"] < 0.05
    assert pooled_hits >= 35, "the pooled test should fall for the confound"
    assert subject_hits <= 6, "the per-subject test should keep about its 5 % false positives"


def test_subjects_group_sessions_and_too_few_subjects() -> None:
    rng = np.random.default_rng(2)
    ms = _moments(rng, 4, 1.0, False)
    ms[1] = replace(ms[1], subject="S00")  # a second session of S00
    ms[3] = replace(ms[3], subject="")  # no subject_id: its own subject
    d = subject_differences(ms, "hr")
    assert set(d) == {"S00", "S02", "session:s3"}
    s00 = (
        np.concatenate([m.values["hr"][m.group == "me"] for m in ms[:2]]).mean()
        - np.concatenate([m.values["hr"][m.group == "non"] for m in ms[:2]]).mean()
    )
    assert d["S00"] == pytest.approx(s00)
    few = subject_test({"a": 1.0, "b": 2.0})
    assert few["n_subjects"] == 2 and few["mean_diff"] == 1.5 and few["p"] is None and few["ci95"] is None
    res = compare_groups(ms)
    assert res["subject_family_size"] == 2 * len(FEATURES) - len(FEATURES)  # no MaE moments: ME tests only
    assert res["features"]["hr"]["subject_level"]["mae_vs_non"]["p_corrected"] is None
