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
from mecg.interop.nwb_export import NwbExportError, NwbExportReport, export_nwb
from mecg.session import open_session
from mecg.sync import synchronize, write_result
from mecg.synth import Subject, Trial, TrialConfig, write_trial

CFG = TrialConfig(
    duration_s=12.0, fps=150.0, width=48, height=40, trigger_gap_s=(1.0, 3.0), me_per_min=10, mae_per_min=10
)
#: Inspector importances that must not appear.
BAD = {"CRITICAL", "BEST_PRACTICE_VIOLATION", "ERROR", "PYNWB_VALIDATION"}
#: The neurodata types an export may contain: all in NWB core 2.2 (2020) and hdmf-common 1.x, so every NWB 2.x
#: reader maps them. Newer ones (EventsTable 2.9, ElectrodesTable 2.8, MeaningsTable ...) are unknown to older readers.
OLD_TYPES = {
    ("core", "NWBFile"),
    ("core", "Subject"),
    ("core", "TimeSeries"),
    ("core", "ImageSeries"),
    ("core", "AnnotationSeries"),
    ("core", "TimeIntervals"),
    ("hdmf-common", "DynamicTable"),
    ("hdmf-common", "VectorData"),
    ("hdmf-common", "VectorIndex"),
    ("hdmf-common", "ElementIdentifiers"),
}


def _neurodata_types(path: Path) -> set[tuple[str, str]]:
    """Every (namespace, neurodata_type) an NWB file's HDF5 objects declare."""
    found: set[tuple[str, str]] = set()
    with h5py.File(path, "r") as f:
        for obj in [f, *(f[n] for n in _names(f))]:
            if "neurodata_type" in obj.attrs:
                found.add((str(obj.attrs["namespace"]), str(obj.attrs["neurodata_type"])))
    return found


def _names(f: h5py.File) -> list[str]:
    out: list[str] = []
    f.visit(out.append)
    return [n for n in out if not n.startswith("specifications")]


def _assert_old_types_only(path: Path) -> None:
    types = _neurodata_types(path)
    assert ("core", "NWBFile") in types
    assert types <= OLD_TYPES, f"types newer than NWB 2.2 core: {sorted(types - OLD_TYPES)}"


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


@pytest.fixture(scope="module")
def synced_export(
    sessions: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, NwbExportReport]:
    """The synced session exported once with default options (external video): the file and its report."""
    out = tmp_path_factory.mktemp("nwb_ref") / "ref.nwb"
    return out, export_nwb(sessions[0], out, age="P30Y")


def _bad_messages(path: Path) -> list[str]:
    """Inspector messages that must not appear; but an external video's regular timestamps are allowed."""
    msgs = [m for m in inspect_nwbfile(nwbfile_path=str(path)) if m is not None]
    with h5py.File(path, "r") as f:
        acq = f["acquisition"] if "acquisition" in f else {}
        external = {f"/acquisition/{k}" for k, g in acq.items() if "format" in g and g["format"][()] == b"external"}
    return [
        f"{m.importance.name} {m.check_function_name} {m.location}: {m.message}"
        for m in msgs
        if (m.importance.name in BAD or m.check_function_name == "check_timestamp_of_the_first_sample_is_not_negative")
        and not (m.check_function_name == "check_regular_timestamps" and m.location in external)
    ]


def test_round_trip_external_video_on_ecg_clock(
    sessions: tuple[Path, Path], synced_export: tuple[Path, NwbExportReport], tmp_path: Path, capsys
) -> None:
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
        aux = nwb.acquisition["ECG_aux"]  # the stream's other channels: one (n, 2) series, their table says which
        assert aux.data.shape == (ecg_s.sample_count, 2) and aux.rate == fs and aux.unit == "bool"
        chans = nwb.acquisition["ECG_channels"].to_dataframe()
        assert list(chans["label"]) == ecg_s.info.channel_labels and list(chans["unit"]) == ["mV", "bool", "bool"]
        for _, row in chans.iterrows():
            col = nwb.acquisition[row["series"]].data[:, row["column"]]
            np.testing.assert_array_equal(col, ecg_s.channel(row["label"]))
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
        markers = nwb.acquisition["Stimulus"]
        assert list(markers.data[:]) == s.streams["Stimulus"].markers() and np.all(np.diff(markers.timestamps[:]) > 0)
    _assert_old_types_only(out)
    # the same session gives the same identifier (another export, other options)
    assert synced_export[1].identifier == rep["identifier"]


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
        truth = s.ground_truth("frame_time_on_ecg_clock_s")
        ecg = nwb.acquisition["ECG"]
        t_ecg0 = ecg.starting_time if ecg.timestamps is None else ecg.timestamps[0]
        err_ms = ((t - t_ecg0) - truth) * 1e3  # recorder clock: the devices' latency difference remains
        assert abs(np.median(err_ms)) < 40 and np.ptp(err_ms) < 10
        assert nwb.subject.subject_id == "S-9"
    _assert_old_types_only(out)


def test_samples_stamped_before_the_recorder_start_move_session_start_back(
    sessions: tuple[Path, Path], synced_export: tuple[Path, NwbExportReport], tmp_path: Path
) -> None:
    """Devices stamp their first samples before the recorder starts: no NWB time may be negative."""
    synced, _ = sessions
    late = tmp_path / "late.h5"
    late.write_bytes(synced.read_bytes())
    with h5py.File(late, "r+") as f:
        f.attrs["start_time_lsl"] = float(f.attrs["start_time_lsl"]) + 0.5  # the recorder "started" 0.5 s late
    with open_session(late, writable=True) as s:  # its own sync result, beside it (derivatives are per recording)
        write_result(s, synchronize(s, "strobe"))
    (ref_path, ref), out = synced_export, tmp_path / "late.nwb"
    export_nwb(late, out, age="P30Y")
    assert _bad_messages(out) == []
    with NWBHDF5IO(str(ref_path), "r") as a, NWBHDF5IO(str(out), "r") as b:
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
        assert nwb.acquisition["ECG_aux"].unit == "n.a."  # digital lines, not volts
        assert list(nwb.acquisition["ECG_channels"].to_dataframe()["unit"]) == ["mV", "n.a.", "n.a."]
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
        cam = nwb.acquisition["FaceCamera"]  # an external video: every frame's time (pynwb 2.x cannot read num_samples)
        assert cam.rate is None and cam.num_samples == 40
        np.testing.assert_allclose(cam.timestamps[:], np.arange(40) / 30.0, atol=1e-9)
        row = nwb.intervals["expressions"].to_dataframe().iloc[0]
        assert (row["onset_frame"], row["offset_frame"], row["emotion"]) == (5, 9, "negative")
        assert row["start_time"] == pytest.approx(5 / 30.0) and row["stop_time"] == pytest.approx(9 / 30.0)


def test_each_signal_stream_is_one_series_of_all_its_channels(tmp_path: Path) -> None:
    """Streams other vendors send: BioSemi-like channels without units, EXG in uV with an accelerometer, mixed
    voltage units; and a markers stream. Each becomes one (n, channels) series (two when some channels are volts
    and some are not), its channels listed in a table; the markers an AnnotationSeries with their times."""
    from mecg.session import SessionWriter, StreamInfo

    rng = np.random.default_rng(20)
    path, t0 = tmp_path / "vendors.h5", 100.0
    streams = {
        "BioSemi": (
            StreamInfo("BioSemi", "EEG", nominal_srate_hz=512.0, channel_labels=[f"A{i}" for i in range(1, 9)]),
            512.0,
        ),
        "OpenBCI": (
            StreamInfo(
                "OpenBCI",
                "EXG",
                nominal_srate_hz=250.0,
                channel_labels=["ECG", "EXG2", "EXG3", "EXG4", "AccX"],
                channel_units=["uV", "uV", "uV", "uV", "g"],
                channel_types=["ECG", "EXG", "EXG", "EXG", "ACC"],
            ),
            250.0,
        ),
        "Mixed": (
            StreamInfo("Mixed", "EXG", nominal_srate_hz=100.0, channel_labels=["L", "R"], channel_units=["mV", "uV"]),
            100.0,
        ),
    }
    data = {}
    with SessionWriter(path, "s01", fixed_time="2026-01-01T09:00:00.000+00:00", start_time_lsl=t0) as w:
        for key, (info, fs) in streams.items():
            assert w.add_stream(info) == key
            n = int(4 * fs)
            data[key] = rng.normal(0, 50, (n, len(info.channel_labels))).astype(np.float32)
            w.append(key, data[key], t0 + 0.25 + np.arange(n) / fs)
        w.add_stream(StreamInfo("Stimulus", "Markers", kind="markers", channel_format="string"))
        w.append("Stimulus", ["start", "face 3", "end"], [t0 + 1.0, t0 + 2.5, t0 + 3.25])
    out = tmp_path / "vendors.nwb"
    rep = export_nwb(path, out, age="P25Y")
    assert rep.objects == [
        "acquisition/BioSemi",
        "acquisition/BioSemi_channels",
        "acquisition/Mixed",
        "acquisition/Mixed_channels",
        "acquisition/OpenBCI",
        "acquisition/OpenBCI_aux",
        "acquisition/OpenBCI_channels",
        "acquisition/Stimulus",
    ]
    assert _bad_messages(out) == []
    _assert_old_types_only(out)
    with NWBHDF5IO(str(out), "r") as io:
        nwb = io.read()
        acq = nwb.acquisition
        biosemi = acq["BioSemi"]  # no unit: one series of all 8 channels, not 8 series
        assert biosemi.data.shape == (2048, 8) and biosemi.unit == "n.a." and biosemi.rate == 512.0
        np.testing.assert_array_equal(biosemi.data[()], data["BioSemi"])
        assert biosemi.starting_time == pytest.approx(0.25)
        assert "A1 (EEG, no unit), A2 (EEG, no unit)" in biosemi.description
        exg = acq["OpenBCI"]
        assert exg.data.shape == (1000, 4) and exg.unit == "volts" and exg.conversion == pytest.approx(1e-6)
        np.testing.assert_array_equal(exg.data[()], data["OpenBCI"][:, :4])
        assert acq["OpenBCI_aux"].unit == "g" and acq["OpenBCI_aux"].data.shape == (1000, 1)
        table = acq["OpenBCI_channels"].to_dataframe()
        assert list(table["label"]) == ["ECG", "EXG2", "EXG3", "EXG4", "AccX"]
        assert list(table["type"]) == ["ECG", "EXG", "EXG", "EXG", "ACC"]
        assert list(table["unit"]) == ["uV", "uV", "uV", "uV", "g"]
        assert list(table["series"]) == ["OpenBCI"] * 4 + ["OpenBCI_aux"] and list(table["column"]) == [0, 1, 2, 3, 0]
        mixed = acq["Mixed"]  # mV and uV in one series: stored in volts
        assert mixed.unit == "volts" and mixed.conversion == 1.0
        np.testing.assert_allclose(mixed.data[()], data["Mixed"] * np.array([1e-3, 1e-6]), rtol=1e-6)
        markers = acq["Stimulus"]
        assert list(markers.data[:]) == ["start", "face 3", "end"]
        np.testing.assert_allclose(markers.timestamps[:], [1.0, 2.5, 3.25], atol=1e-9)
