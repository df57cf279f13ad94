"""Many sessions in parallel (issue #21 item 5): `--jobs N` gives what `--jobs 1` gives; errors still reach the user."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from mecg.cli.main import main
from mecg.model.parallel import map_sessions, threads_per_job
from mecg.model.pipeline import load_sessions
from mecg.model.windows import WindowParams
from mecg.synth import DatasetSpec, TrialConfig, make_dataset

#: Three short sessions with ECG and annotations: enough for spot, stats and features, fast to make.
SMALL = TrialConfig(duration_s=6.0, fps=30.0, width=96, height=72, me_per_min=30.0, mae_per_min=10.0)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("par") / "data"
    make_dataset(DatasetSpec(str(d), subjects=3, trials=1, seed=5, config=SMALL), workers=1)
    return d


def _fresh(dataset: Path, tmp_path: Path, name: str, sessions: int | None = None) -> Path:
    """A copy of the recordings alone (the first ``sessions`` of them), so no run reads another run's cached
    features or sync."""
    out = tmp_path / name
    out.mkdir()
    for f in sorted(dataset.glob("*.h5"))[:sessions]:
        shutil.copy2(f, out / f.name)
    return out


def test_map_sessions_keeps_order_and_raises_in_turn() -> None:
    assert list(map_sessions(math.sqrt, [16.0, 4.0, 9.0, 1.0], jobs=2)) == [4.0, 2.0, 3.0, 1.0]
    got = []
    with pytest.raises(ValueError):
        for v in map_sessions(math.sqrt, [4.0, 9.0, -1.0, 16.0], jobs=2):
            got.append(v)
    assert got == [2.0, 3.0]  # the results before the failing item arrive first
    assert threads_per_job(1) >= threads_per_job(64) == 1


@pytest.mark.slow
def test_spot_jobs_2_equals_jobs_1(dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    csv = {}
    for jobs in (1, 2):
        folder = _fresh(dataset, tmp_path, f"j{jobs}")
        csv[jobs] = tmp_path / f"spots{jobs}.csv"
        assert main(["spot", str(folder), "--out", str(csv[jobs]), "--jobs", str(jobs), "--json", "--quiet"]) == 0
        rep = json.loads(capsys.readouterr().out)
        assert rep["jobs"] == jobs and [s["session"] for s in rep["sessions"]] == sorted(
            f.stem for f in folder.glob("*.h5")
        )
    assert csv[1].read_text() == csv[2].read_text()
    assert len(csv[1].read_text().splitlines()) > 1  # something was spotted


@pytest.mark.slow
def test_stats_jobs_2_equals_jobs_1(dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    res = {}
    for jobs in (1, 2):
        folder = _fresh(dataset, tmp_path, f"j{jobs}")
        assert main(["stats", str(folder), "--json", "--jobs", str(jobs), "--quiet"]) == 0
        res[jobs] = json.loads(capsys.readouterr().out)
    assert res[1]["meta"]["sessions"] == res[2]["meta"]["sessions"] and len(res[1]["meta"]["sessions"]) == 3
    assert res[1] == res[2]


@pytest.mark.slow
def test_training_features_jobs_2_equal_jobs_1(dataset: Path, tmp_path: Path) -> None:
    data = {}
    for jobs in (1, 2):
        paths = sorted(_fresh(dataset, tmp_path, f"j{jobs}").glob("*.h5"))
        data[jobs] = load_sessions(paths, WindowParams(time_steps=8), log=lambda m: None, jobs=jobs)
    for a, b in zip(data[1], data[2], strict=True):
        assert a.name == b.name and a.has_ecg and b.has_ecg
        np.testing.assert_array_equal(a.roi, b.roi)
        np.testing.assert_array_equal(a.crops, b.crops)
        np.testing.assert_array_equal(a.hand, b.hand)
        np.testing.assert_array_equal(a.ecg, b.ecg)


@pytest.mark.slow
def test_jobs_is_validated_and_worker_errors_reach_the_user(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    for bad in ("0", "-2", "x", "100000"):
        with pytest.raises(SystemExit) as e:
            main(["spot", str(dataset), "--out", str(tmp_path / "s.csv"), "--jobs", bad])
        assert e.value.code == 2
    # one good session before the bad file: two workers, the good result arrives first, the error in its turn
    # (and no output is written); more good sessions would only make the workers spot them first
    folder = _fresh(dataset, tmp_path, "bad", sessions=1)
    (folder / "zz_not_a_session.h5").write_bytes(b"not HDF5")
    capsys.readouterr()
    assert main(["spot", str(folder), "--out", str(tmp_path / "s.csv"), "--jobs", "2", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "zz_not_a_session.h5" in err and "Traceback" not in err
    assert not (tmp_path / "s.csv").exists()
