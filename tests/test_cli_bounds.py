"""Options are bounded (NaN, inf, 1e9 refused by argparse) and outputs are checked before any work."""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tmpfs import mounted_tmpfs

import mecg.cli.stats as stats_cli
import mecg.cli.synth as synth_cli
import mecg.model.frontend as frontend_module
import mecg.model.pipeline as pipeline_module
import mecg.model.spotting as spotting_module
from mecg.cli.argtypes import FPS, PER_MINUTE, bounded
from mecg.cli.main import main
from mecg.synth import Subject, Trial, TrialConfig, write_trial


# -- the shared argparse type -----------------------------------------------------------------------
def test_bounded_refuses_nan_inf_and_what_is_out_of_range() -> None:
    for text in ("nan", "NaN", "inf", "-inf", "1e9", "0", "-1", "1000.5", "x"):
        with pytest.raises(argparse.ArgumentTypeError, match="finite number in \\(0, 1000\\] fps"):
            FPS(text)
    assert FPS("1000") == 1000.0 and FPS("29.97") == 29.97
    assert PER_MINUTE("0") == 0.0 and PER_MINUTE("60") == 60.0
    with pytest.raises(argparse.ArgumentTypeError, match="per minute"):
        PER_MINUTE("60.1")
    half_open = bounded(float, 0, 1, hi_open=True)
    assert half_open("0") == 0.0
    with pytest.raises(argparse.ArgumentTypeError, match=r"\[0, 1\)"):
        half_open("1")
    ints = bounded(int, 1, 8)
    assert ints("8") == 8
    for text in ("0", "9", "2.5", str(10**400)):
        with pytest.raises(argparse.ArgumentTypeError, match=r"integer in \[1, 8\]"):
            ints(text)


@pytest.mark.parametrize(
    "argv",
    [
        ["record", "--simulate", "--fps", "1e9"],
        ["record", "--simulate", "--fps", "nan"],
        ["record", "--simulate", "--fps", "inf"],
        ["record", "--simulate", "--me-per-min", "1e9"],
        ["record", "--simulate", "--mae-per-min", "nan"],
        ["record", "--simulate", "--min-free-mb", "nan"],
        ["record", "--simulate", "--wait", "inf"],
        ["record", "--simulate", "--duration", "99999999h"],
        ["record", "--simulate", "--trigger-gap", "nan:2"],
        ["record", "--simulate", "--trigger-gap", "1:inf"],
        ["record", "--ecg-port", "x", "--ecg-rate", "1e9"],
        ["synth", "d", "--fps", "nan"],
        ["synth", "d", "--fps", "1e9"],
        ["synth", "d", "--me-per-min", "1e9"],
        ["synth", "d", "--duration", "inf"],
        ["synth", "d", "--subjects", "1000000"],
        ["synth", "d", "--coupling", "nan"],
        ["synth", "d", "--led-occlusion", "1"],
        ["synth", "d", "--drift-ppm", "1e9"],
        ["synth", "d", "--jitter-ms", "-1"],
        ["stream", "camera", "--camera", "sim", "--fps", "nan"],
        ["stream", "ecg", "--port", "x", "--rate", "inf"],
        ["stream", "ecg", "--port", "x", "--channels", "65"],
        ["stream", "ecg", "--port", "x", "--seconds", "nan"],
        ["stream", "trigger", "--port", "x", "--width-ms", "0"],
        ["simulate", "--fps", "1e9"],
        ["simulate", "--duration", "nan"],
        ["spot", "s.h5", "--out", "o.csv", "--p", "nan"],
        ["spot", "s.h5", "--out", "o.csv", "--ccf-eta", "inf"],
        ["spot", "s.h5", "--out", "o.csv", "--workers", "0"],
        ["train", "d", "--out", "m.pt", "--epochs", "0"],
        ["train", "d", "--out", "m.pt", "--threads", "1000000"],
        ["train", "d", "--out", "m.pt", "--live-lookahead", "0.1"],
        ["train", "d", "--out", "m.pt", "--live-lookahead", "nan"],
        ["stats", "d", "--hrv-window", "inf"],
        ["stats", "d", "--min-distance", "nan"],
        ["devices", "--wait", "nan"],
    ],
)
def test_options_out_of_bounds_are_refused_by_argparse(argv: list[str], capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "Traceback" not in err
    option = argv[-2]  # the value out of bounds is the last one
    assert f"argument {option}" in err and ("must" in err or "expected" in err), err


# -- outputs checked before any work ------------------------------------------------------------------
@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("sessions")
    cfg = TrialConfig(duration_s=1.0, fps=30.0, width=64, height=48)
    return write_trial(Trial(Subject.random("S01", 1), 0, cfg), folder / "s.h5")


@pytest.fixture()
def readonly_dir(tmp_path: Path) -> Iterator[Path]:
    """A folder on a read-only file system (root may write anywhere else)."""
    with mounted_tmpfs(tmp_path / "ro", "ro,size=64k", "a read-only tmpfs") as d:
        yield d


@pytest.fixture()
def no_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every expensive step of spot, train, synth and stats fails the test if it is reached."""

    def forbidden(*_a: object, **_k: object) -> None:
        raise AssertionError("work started before the output was checked")

    for mod, name in (
        (frontend_module, "frontend_features"),
        (spotting_module, "open_session"),
        (pipeline_module, "load_sessions"),
        (synth_cli, "make_dataset"),
        (stats_cli, "collect_moments"),
    ):
        monkeypatch.setattr(mod, name, forbidden)
    import mecg.model.train as train_module

    monkeypatch.setattr(train_module, "load_checkpoint", forbidden)


def run(argv: list[str], capsys: pytest.CaptureFixture) -> str:
    t0 = time.monotonic()
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("mecg: error:") and "Traceback" not in err, err
    assert time.monotonic() - t0 < 30
    return err


def test_spot_refuses_a_folder_as_out_before_any_work(session: Path, tmp_path: Path, capsys, no_work) -> None:
    assert "is a folder" in run(["spot", str(session), "--out", str(tmp_path)], capsys)
    assert "is a folder" in run(["spot", str(session), "--model", "m.pt", "--out", str(tmp_path)], capsys)
    missing = tmp_path / "no" / "spots.csv"
    assert "does not exist" in run(["spot", str(session), "--out", str(missing)], capsys)
    plot = ["--plot", str(tmp_path)]
    assert "--plot" in run(["spot", str(session), "--out", str(tmp_path / "s.csv"), *plot], capsys)
    assert not (tmp_path / "s.csv").exists()


def test_train_refuses_a_folder_as_out_before_loading(session: Path, tmp_path: Path, capsys, no_work) -> None:
    assert "is a folder" in run(["train", str(session.parent), "--out", str(tmp_path)], capsys)
    assert "does not exist" in run(["train", str(session.parent), "--out", str(tmp_path / "x" / "m.pt")], capsys)


def test_stats_refuses_a_folder_as_plot_before_the_analysis(session: Path, tmp_path: Path, capsys, no_work) -> None:
    (tmp_path / "fig.png").mkdir()
    assert "is a folder" in run(["stats", str(session.parent), "--plot", str(tmp_path / "fig.png")], capsys)


def test_synth_refuses_a_file_or_an_existing_dataset(tmp_path: Path, capsys, no_work) -> None:
    (tmp_path / "file").write_text("x")
    assert "not a folder" in run(["synth", str(tmp_path / "file")], capsys)
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "manifest.json").write_text("{}")
    assert "--overwrite" in run(["synth", str(tmp_path / "ds")], capsys)


def test_read_only_targets_are_refused_before_any_work(
    session: Path, readonly_dir: Path, capsys, no_work, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = readonly_dir / "out"
    assert "cannot write in folder" in run(["spot", str(session), "--out", f"{out}.csv"], capsys)
    assert "cannot write in folder" in run(["train", str(session.parent), "--out", f"{out}.pt"], capsys)
    assert "cannot write in folder" in run(["stats", str(session.parent), "--plot", f"{out}.png"], capsys)
    assert "cannot" in run(["synth", str(out)], capsys)

    import mecg.acquire.rig as rig

    monkeypatch.setattr(rig.Rig, "start", lambda self: (_ for _ in ()).throw(AssertionError("devices started")))
    err = run(["record", "--simulate", "--min-free-mb", "0", "--out", f"{out}.h5"], capsys)
    assert "cannot write in folder" in err or "permission" in err
    assert list(readonly_dir.iterdir()) == []


# -- synth on a full disk ------------------------------------------------------------------------------
@pytest.fixture()
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with mounted_tmpfs(tmp_path / "small", "size=256k") as d:
        yield d


@pytest.mark.parametrize("workers", ["1", "2"])
def test_synth_on_a_full_disk_leaves_no_partial_file(small_disk: Path, workers: str, capsys) -> None:
    target = small_disk / "ds"
    argv = ["synth", str(target), "--duration", "4", "--fps", "30", "--size", "160x120", "--subjects", "2"]
    err = run([*argv, "--workers", workers], capsys)
    assert "the disk is full" in err and "no partial file" in err
    assert list(small_disk.iterdir()) == []  # no session, no manifest, no hidden staging folder, no empty folder
    # what fits is written whole, with its manifest
    assert main(["synth", str(target), "--duration", "0.5", "--fps", "10", "--size", "32x32", "--workers", "1"]) == 0
    assert sorted(p.name for p in target.iterdir()) == ["manifest.json", "sub-01_trial-01.h5"]
