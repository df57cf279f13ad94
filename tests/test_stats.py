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
from mecg.model.stats import FEATURES, holm, rank_test, sample_quiet_frames
from mecg.synth import DatasetSpec, Subject, Trial, TrialConfig, make_dataset, write_trial

# Small and fast, but with enough MEs for power: 8 one-minute sessions at 5 MEs/min (~40 MEs).
SMALL = TrialConfig(duration_s=60.0, fps=30.0, width=96, height=72, me_per_min=5.0)


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
    """Same subjects and expressions (seed 1) with coupling 1 and 0: folder, JSON result, plot path."""
    out = {}
    for coupling in (1.0, 0.0):
        d = tmp_path_factory.mktemp(f"coupling{coupling:g}")
        make_dataset(
            DatasetSpec(str(d / "data"), subjects=8, trials=1, seed=1, config=replace(SMALL, coupling=coupling))
        )
        png = d / "stats.png"
        code, stdout, stderr = _run(["stats", str(d / "data"), "--json", "--plot", str(png)])
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


@pytest.mark.slow
def test_hrs_no_different_without_coupling(datasets: dict) -> None:
    res = datasets[0.0][1]["features"]
    hrs = res["hrs"]["me_vs_non"]
    assert hrs["n_me"] >= 30
    assert hrs["p"] > 0.05
    assert abs(hrs["effect_size"]) < 0.3
    assert all(f[c]["p_corrected"] > 0.05 for f in res.values() for c in ("me_vs_non", "mae_vs_non"))


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
