"""``mecg info``, ``mecg validate`` and ``mecg --version``: output, JSON keys and exit codes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

import mecg
from mecg.cli.main import main
from mecg.session import Annotation, SessionWriter, StreamInfo, open_session

SUMMARY_KEYS = {
    "path",
    "format_version",
    "subject_id",
    "start_time",
    "end_time",
    "software_version",
    "notes",
    "complete",
    "file_size_bytes",
    "streams",
    "ecg",
    "ecg_channel_choice",
    "annotations",
    "sync",
    "features",
    "derivatives",
}
STREAM_KEYS = {
    "key",
    "name",
    "type",
    "kind",
    "source_id",
    "nominal_srate_hz",
    "effective_srate_hz",
    "samples",
    "duration_s",
    "clock_offsets",
}


def write_session(path: Path, *, close: bool = True) -> Path:
    """A small session: 30 video frames at 150 Hz, 2 s of 2-channel ECG at 500 Hz, markers, two annotations."""
    rng = np.random.default_rng(5)
    w = SessionWriter(path, subject_id="P-7", notes="cli test")
    cam = w.add_stream(StreamInfo("cam", "Video", kind="video", nominal_srate_hz=150.0, frame_shape=(24, 32)))
    ecg = w.add_stream(
        StreamInfo("ecg", "ECG", nominal_srate_hz=500.0, channel_labels=["I", "II"], channel_units=["mV", "mV"])
    )
    mk = w.add_stream(StreamInfo("mk", "Markers", kind="markers"))
    w.append(cam, rng.integers(0, 256, (30, 24, 32), dtype=np.uint8), 10.0 + np.arange(30) / 150)
    w.append(ecg, rng.normal(0, 1, (1000, 2)), 10.0 + np.arange(1000) / 500)
    w.append(mk, ["start", "stop"], [10.0, 11.9])
    w.append_clock_offsets(ecg, [[10.0, 0.001], [15.0, 0.002]])
    w.set_annotations([Annotation(3, 5, 8, "ME", "AU4", "anger"), Annotation(10, 15, 25, "MaE", "AU12")], cam)
    if close:
        w.close()
    else:
        w.abort()
    return path


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_session(tmp_path_factory.mktemp("cli") / "s.h5")


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory, session: Path) -> dict[str, Path]:
    """Files that ``mecg validate`` must reject, by what is wrong with them."""
    d = tmp_path_factory.mktemp("broken")
    garbage = d / "garbage.h5"
    garbage.write_bytes(np.random.default_rng(0).bytes(4096))
    truncated = d / "truncated.h5"
    shutil.copy(session, truncated)
    with open(truncated, "r+b") as fh:
        fh.truncate(truncated.stat().st_size // 2)
    other = d / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = np.arange(3)
    newer = d / "newer.h5"
    shutil.copy(session, newer)
    with h5py.File(newer, "r+") as f:
        f.attrs["format_version"] = 99
    return {"garbage": garbage, "truncated": truncated, "missing": d / "missing.h5", "other": other, "newer": newer}


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mecg", *args], capture_output=True, text=True, timeout=120)


# -- info --------------------------------------------------------------------------------------------------------


def test_info_human(session: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(session)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith(f"{session}  (mecg session v2, ")
    assert "subject P-7" in out and "ended " in out and "notes: cli test" in out
    assert "streams (3):" in out
    assert "frames 24x32" in out and "150 Hz nominal, 150.000 Hz measured" in out
    assert "channels I [mV], II [mV]" in out and "1000 samples" in out
    assert "annotations: 1 ME, 1 MaE on stream cam" in out
    assert "sync: not run" in out
    assert "ECG: ecg:I (column 0)" in out  # an ECG stream without ECG labels: column 0


def test_info_json(session: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "--json", str(session)]) == 0
    d = json.loads(capsys.readouterr().out)
    assert set(d) == SUMMARY_KEYS
    assert d["ecg"] == {"stream": "ecg", "column": 0, "label": "I"} and d["ecg_channel_choice"] == ""
    assert d["format_version"] == 2 and d["subject_id"] == "P-7" and d["complete"] is True
    assert d["software_version"] == mecg.__version__ and d["file_size_bytes"] == session.stat().st_size
    streams = {s["key"]: s for s in d["streams"]}
    assert set(streams) == {"cam", "ecg", "mk"}
    assert all(STREAM_KEYS <= set(s) for s in streams.values())
    assert streams["cam"]["frame_shape"] == [24, 32] and streams["cam"]["samples"] == 30
    assert streams["ecg"]["channels"] == ["I [mV]", "II [mV]"] and streams["ecg"]["clock_offsets"] == 2
    assert streams["ecg"]["effective_srate_hz"] == pytest.approx(500.0)
    assert streams["mk"]["samples"] == 2
    assert d["annotations"] == {"video_stream": "cam", "ME": 1, "MaE": 1}
    assert d["sync"] == {} and d["features"] == [] and d["derivatives"] is None


def test_info_shows_sync_and_features(session: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "synced.h5"
    shutil.copy(session, p)
    with open_session(p, writable=True) as s:  # results go to synced.derivatives.hdf5, not into the recording
        s.write_group("sync", {"mode": "strobe", "offset_ms": 12.3456, "drift_ppm": 1.5, "residual_rms_ms": 0.25})
        s.write_group("features/heart_rate", {})
    assert main(["info", str(p)]) == 0
    out = capsys.readouterr().out
    assert (
        "sync: strobe, verdict not judged (synced before verdicts), uncertainty n/a, offset 12.346 ms, "
        "drift 1.50 ppm, residual RMS 0.250 ms" in out
    )
    assert "cached features: heart_rate" in out
    assert main(["info", "--json", str(p)]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["sync"] == {"mode": "strobe", "offset_ms": 12.3456, "drift_ppm": 1.5, "residual_rms_ms": 0.25}
    assert d["features"] == ["heart_rate"] and d["derivatives"] == str(tmp_path / "synced.derivatives.hdf5")


def test_info_and_validate_crashed_session(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = write_session(tmp_path / "aborted.h5", close=False)
    assert main(["info", str(p)]) == 0
    assert "NOT CLOSED CLEANLY" in capsys.readouterr().out
    assert main(["validate", str(p)]) == 0
    assert "not closed cleanly" in capsys.readouterr().out


def test_info_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.h5"
    assert main(["info", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mecg: error: ") and str(missing) in err and "does not exist" in err
    assert "Traceback" not in err


# -- validate ----------------------------------------------------------------------------------------------------


def test_validate_valid(session: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(session)]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == f"valid: {session}, 3 stream(s), format v2" and captured.err == ""


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("garbage", "not an HDF5 file"),
        ("truncated", "truncated"),
        ("missing", "does not exist"),
        ("other", "not a mecg session"),
        ("newer", "newer than"),
    ],
)
def test_validate_invalid(broken: dict[str, Path], case: str, reason: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(broken[case])]) == 1
    captured = capsys.readouterr()
    err = captured.err.rstrip("\n")
    assert "\n" not in err, "the reason must be one line"
    assert err.startswith("invalid: ") and str(broken[case]) in err and reason in err
    assert captured.out == ""


# -- through the real command line -------------------------------------------------------------------------------


def test_exit_codes_through_python_m(session: Path, broken: dict[str, Path]) -> None:
    r = run_cli("validate", str(session))
    assert r.returncode == 0 and r.stdout.startswith("valid: ")
    r = run_cli("validate", str(broken["truncated"]))
    assert r.returncode == 1 and r.stderr.startswith("invalid: ") and "Traceback" not in r.stderr
    r = run_cli("info", str(broken["missing"]))
    assert r.returncode == 2 and "does not exist" in r.stderr and "Traceback" not in r.stderr
    assert r.stderr.count("\n") == 1
    r = run_cli("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"mecg {mecg.__version__}"


def test_version_and_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"mecg {mecg.__version__}"
    assert main([]) == 2
    assert "usage: mecg" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["info"])
    assert e.value.code == 2 and "required" in capsys.readouterr().err
