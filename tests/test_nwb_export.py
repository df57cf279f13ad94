"""`mecg export-nwb`: round trip through pynwb, NWB Inspector checks, external and in-file video, errors."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
from nwbinspector import inspect_nwbfile
from pynwb import NWBHDF5IO

from mecg.cli.main import main
from mecg.interop.nwb_export import NwbExportError, export_nwb
from mecg.session import open_session
from mecg.sync import synchronize, write_result
from mecg.synth import Subject, Trial, TrialConfig, write_trial

CFG = TrialConfig(
    duration_s=12.0, fps=150.0, width=48, height=40, trigger_gap_s=(1.0, 3.0), me_per_min=10, mae_per_min=10
)
#: Inspector importances that must not appear.
BAD = {"CRITICAL", "BEST_PRACTICE_VIOLATION", "ERROR", "PYNWB_VALIDATION"}


@pytest.fixture(scope="module")
def sessions(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same synthetic session twice: aligned by `mecg sync` (strobe) and not aligned."""
    d = tmp_path_factory.mktemp("nwb")
    raw = write_trial(Trial(Subject.random("P-0042", 4), 0, CFG), d / "raw.h5")
    synced = d / "synced.h5"
    synced.write_bytes(raw.read_bytes())
    with open_session(synced, writable=True) as s:
        write_result(s, synchronize(s, "strobe"))
    return synced, raw


def _bad_messages(path: Path) -> list[str]:
    msgs = [m for m in inspect_nwbfile(nwbfile_path=str(path)) if m is not None]
    return [
        f"{m.importance.name} {m.check_function_name} {m.location}: {m.message}"
        for m in msgs
        if m.importance.name in BAD or m.check_function_name == "check_timestamp_of_the_first_sample_is_not_negative"
    ]


def test_round_trip_external_video_on_ecg_clock(sessions: tuple[Path, Path], tmp_path: Path, capsys) -> None:
    synced, _ = sessions
    out = tmp_path / "sub.nwb"
    assert main(["export-nwb", str(synced), str(out), "--age", "P31Y", "--sex", "F", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["clock"].startswith("ECG clock") and rep["video_files"] == [str(tmp_path / "sub_FaceCamera.mkv")]
    assert _bad_messages(out) == []
    with open_session(synced) as s, NWBHDF5IO(str(out), "r") as io:
        nwb = io.read()
        ecg_s = s.stream(type="ECG")
        fs = ecg_s.info.nominal_srate_hz
        assert (
            nwb.subject.subject_id == "P-0042" and nwb.subject.species == "Homo sapiens" and nwb.subject.age == "P31Y"
        )
        assert nwb.session_start_time.isoformat() == "{}".format(s.attr("start_time")).replace(".000", "")
        ecg = nwb.acquisition["ECG"]
        assert ecg.unit == "volts" and ecg.rate == fs
        volts = ecg.data[()][:, 0] * ecg.conversion
        np.testing.assert_allclose(volts, ecg_s.channel("ECG") * 1e-3, rtol=1e-6)  # stored in mV
        np.testing.assert_array_equal(nwb.acquisition["TRIG"].data[()], ecg_s.channel("TRIG"))
        cam = nwb.acquisition["FaceCamera"]
        assert cam.format == "external" and list(cam.external_file[:]) == ["sub_FaceCamera.mkv"]
        n = s.streams["FaceCamera"].sample_count
        t_nwb = cam.timestamps[()] if cam.timestamps is not None else cam.starting_time + np.arange(n) / cam.rate
        t_sync = s.sync_group["frame_time_ecg_s"][()]
        np.testing.assert_allclose(t_nwb - ecg.starting_time, t_sync, atol=1e-9)  # frames on the ECG clock
        cap = cv2.VideoCapture(str(tmp_path / "sub_FaceCamera.mkv"))
        frames = []
        while True:
            ok, fr = cap.read()
            if not ok:
                break
            frames.append(fr[:, :, 0])
        np.testing.assert_array_equal(np.stack(frames), s.streams["FaceCamera"].frames())  # FFV1: lossless
        ann = s.annotations
        assert len(ann) >= 2
        table = nwb.intervals["expressions"].to_dataframe()
        assert list(table["onset_frame"]) == [a.onset_frame for a in ann]
        assert list(table["apex_frame"]) == [a.apex_frame for a in ann]
        assert list(table["offset_frame"]) == [a.offset_frame for a in ann]
        assert list(table["type"]) == [a.type for a in ann] and list(table["aus"]) == [a.aus or "n.a." for a in ann]
        np.testing.assert_allclose(table["start_time"], [t_nwb[a.onset_frame] for a in ann])
        np.testing.assert_allclose(table["apex_time"], [t_nwb[a.apex_frame] for a in ann])
        markers = nwb.events["markers_Stimulus"].to_dataframe()
        assert list(markers["value"]) == s.streams["Stimulus"].markers()
    # the same session gives the same identifier
    again = export_nwb(synced, tmp_path / "again.nwb", age="P31Y")
    assert again.identifier == rep["identifier"]


def test_video_in_file_and_no_sync_uses_recorder_clock(sessions: tuple[Path, Path], tmp_path: Path) -> None:
    _, raw = sessions
    out = tmp_path / "raw.nwb"
    rep = export_nwb(raw, out, video_in_file=True, age="P20Y/", subject_id="S-9")
    assert rep.clock.startswith("recorder") and rep.video_files == [] and any("mecg sync" in w for w in rep.warnings)
    assert _bad_messages(out) == []
    with open_session(raw) as s, NWBHDF5IO(str(out), "r") as io:
        nwb = io.read()
        cam = nwb.acquisition["FaceCamera"]
        np.testing.assert_array_equal(cam.data[()], s.streams["FaceCamera"].frames())
        with h5py.File(out) as f:
            ds = f["acquisition/FaceCamera/data"]
            assert ds.compression == "gzip" and ds.chunks == (1, 40, 48)
        t = (
            cam.timestamps[()]
            if cam.timestamps is not None
            else cam.starting_time + np.arange(cam.data.shape[0]) / cam.rate
        )
        assert np.all(np.diff(t) > 0)
        truth = s.file["ground_truth/frame_time_on_ecg_clock_s"][()]
        ecg = nwb.acquisition["ECG"]
        t_ecg0 = ecg.starting_time if ecg.timestamps is None else ecg.timestamps[0]
        err_ms = ((t - t_ecg0) - truth) * 1e3  # recorder clock: the devices' latency difference remains
        assert abs(np.median(err_ms)) < 40 and np.ptp(err_ms) < 10
        assert nwb.subject.subject_id == "S-9"


def test_samples_stamped_before_the_recorder_start_move_session_start_back(
    sessions: tuple[Path, Path], tmp_path: Path
) -> None:
    """Devices stamp their first samples before the recorder starts: no NWB time may be negative."""
    synced, _ = sessions
    late = tmp_path / "late.h5"
    late.write_bytes(synced.read_bytes())
    with h5py.File(late, "r+") as f:
        f.attrs["start_time_lsl"] = float(f.attrs["start_time_lsl"]) + 0.5  # the recorder "started" 0.5 s late
    with open_session(late, writable=True) as s:  # its own sync result, beside it (derivatives are per recording)
        write_result(s, synchronize(s, "strobe"))
    ref, out = export_nwb(synced, tmp_path / "ref.nwb", age="P30Y"), tmp_path / "late.nwb"
    export_nwb(late, out, age="P30Y")
    assert _bad_messages(out) == []
    with NWBHDF5IO(str(tmp_path / "ref.nwb"), "r") as a, NWBHDF5IO(str(out), "r") as b:
        ra, rb = a.read(), b.read()
        shift = (ra.session_start_time - rb.session_start_time).total_seconds()
        assert 0.45 < shift <= 0.5 + 1e-6  # moved back to the earliest sample, at most by the 0.5 s

        def first(nwb, name: str) -> float:
            ts = nwb.acquisition[name]
            return float(ts.timestamps[0]) if ts.timestamps is not None else float(ts.starting_time)

        ta, tb = ra.acquisition["ECG"].get_timestamps(), rb.acquisition["ECG"].get_timestamps()
        assert tb == pytest.approx(ta - (0.5 - shift), abs=1e-5)  # one shift for all streams
        assert first(rb, "FaceCamera") == pytest.approx(first(ra, "FaceCamera") - (0.5 - shift), abs=1e-5)
        assert min(first(rb, "ECG"), first(rb, "FaceCamera")) == pytest.approx(0, abs=1e-6)
    assert ref.clock == "ECG clock (mecg sync)"


def test_errors_are_clear(sessions: tuple[Path, Path], tmp_path: Path, capsys) -> None:
    synced, _ = sessions
    out = tmp_path / "x.nwb"
    out.write_bytes(b"old")
    assert main(["export-nwb", str(synced), str(out)]) == 2
    assert "already exists" in capsys.readouterr().err and out.read_bytes() == b"old"
    assert main(["export-nwb", str(synced), str(tmp_path / "x.h5")]) == 2
    assert "should end in .nwb" in capsys.readouterr().err
    assert main(["export-nwb", str(tmp_path / "missing.h5"), str(tmp_path / "m.nwb")]) == 2
    assert "does not exist" in capsys.readouterr().err
    blank = tmp_path / "blank.h5"
    blank.write_bytes(synced.read_bytes())
    with h5py.File(blank, "r+") as f:
        f["streams/ECG"].attrs["channel_units"] = np.array(["", "", ""], dtype=object)
    with pytest.raises(NwbExportError, match="--ecg-unit"):
        export_nwb(blank, tmp_path / "b.nwb")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blank.h5", "x.nwb"]  # no video or part file left
    rep = export_nwb(blank, tmp_path / "b.nwb", ecg_unit="mV", age="P30Y")
    with NWBHDF5IO(str(tmp_path / "b.nwb"), "r") as io:
        nwb = io.read()
        assert nwb.acquisition["ECG"].conversion == pytest.approx(1e-3) and nwb.acquisition["ECG"].data.shape[1] == 1
        assert nwb.acquisition["TRIG"].unit == "n.a."  # a digital line, not volts
    assert rep.objects[0] == "acquisition/ECG"


def test_a_failed_overwrite_keeps_the_previous_export_whole(
    sessions: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced, _ = sessions
    out = tmp_path / "s.nwb"
    export_nwb(synced, out, age="P30Y")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert sorted(before) == ["s.nwb", "s_FaceCamera.mkv"]

    def fail(*_a: object, **_k: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(NWBHDF5IO, "write", fail)
    with pytest.raises(NwbExportError, match="the disk is full"):  # a clear error, not an OSError traceback
        export_nwb(synced, out, age="P30Y", overwrite=True)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # old .nwb and its video, no part files
    (tmp_path / "dir.nwb").mkdir()
    with pytest.raises(NwbExportError, match="is a folder"):
        export_nwb(synced, tmp_path / "dir.nwb", age="P30Y", overwrite=True)


def test_video_only_session_exports(tmp_path: Path) -> None:
    """A session from `mecg import-dataset` (video + annotations, no ECG, no clock offsets) exports too."""
    from mecg.session import Annotation, SessionWriter, StreamInfo

    path = tmp_path / "casme.h5"
    with SessionWriter(path, "s15", fixed_time="2026-01-01T09:00:00.000+00:00", start_time_lsl=0.0) as w:
        key = w.add_stream(StreamInfo("FaceCamera", "Video", kind="video", nominal_srate_hz=30.0, frame_shape=(8, 10)))
        w.append(key, np.random.default_rng(1).integers(0, 256, (40, 8, 10), dtype=np.uint8), np.arange(40) / 30.0)
        w.set_annotations([Annotation(5, 7, 9, "ME", "AU4", "negative")], key)
    rep = export_nwb(path, tmp_path / "casme.nwb", age="P22Y")
    assert rep.objects == ["acquisition/FaceCamera", "intervals/expressions"]
    assert _bad_messages(tmp_path / "casme.nwb") == []
    with NWBHDF5IO(str(tmp_path / "casme.nwb"), "r") as io:
        nwb = io.read()
        assert nwb.acquisition["FaceCamera"].rate == pytest.approx(30.0)
        row = nwb.intervals["expressions"].to_dataframe().iloc[0]
        assert (row["onset_frame"], row["offset_frame"], row["emotion"]) == (5, 9, "negative")
        assert row["start_time"] == pytest.approx(5 / 30.0) and row["stop_time"] == pytest.approx(9 / 30.0)
