"""Derived data lives beside the recording: naming, binding, atomic updates, v1 files, refusals."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from mecg.session import (
    Annotation,
    SessionError,
    SessionWriter,
    StreamInfo,
    derivatives_path,
    open_session,
)
from mecg.session import derivatives as derivatives_module


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_recording(path: Path, seed: int = 0, notes: str = "") -> Path:
    """A small v2 recording: 12 frames of video, 1.5 s of ECG, one annotation."""
    rng = np.random.default_rng(seed)
    with SessionWriter(path, subject_id="P-1", notes=notes) as w:
        cam = w.add_stream(StreamInfo("cam", "Video", kind="video", nominal_srate_hz=30.0, frame_shape=(16, 20)))
        ecg = w.add_stream(StreamInfo("ecg", "ECG", nominal_srate_hz=1000.0, channel_labels=["ECG"]))
        w.append(cam, rng.integers(0, 256, (12, 16, 20), dtype=np.uint8), np.arange(12) / 30)
        w.append(ecg, rng.normal(0, 1, (1500, 1)), np.arange(1500) / 1000)
        w.append_clock_offsets(ecg, [[0.0, 0.001]])
        w.set_annotations([Annotation(2, 3, 5, "ME", "AU4")], cam)
    return path


@pytest.fixture
def rec(tmp_path: Path) -> Path:
    return write_recording(tmp_path / "S.h5")


def test_name_is_beside_the_recording_and_not_a_recording_glob(tmp_path: Path) -> None:
    assert derivatives_path(tmp_path / "sub-01_trial-01.h5") == tmp_path / "sub-01_trial-01.derivatives.hdf5"
    assert not derivatives_path(tmp_path / "S.h5").match("*.h5")  # `mecg spot DIR` globs *.h5


def test_results_go_beside_the_recording_which_is_never_written(rec: Path) -> None:
    before = sha256(rec)
    with open_session(rec, writable=True) as s:
        s.write_group("sync", {"mode": "strobe", "offset_ms": 1.5}, {"frame_time_ecg_s": np.arange(12) / 30})
        s.write_group("features/frontend", {"params": "k=3"}, {"roi": np.ones((12, 2, 4), np.float32)})
        s.write_annotations([Annotation(1, 2, 3, "MaE")], "cam")
        s.write_group("features/text", {"n": 2}, {"names": np.array(["ECG", "Ünï"]), "empty": np.zeros((0, 2))})
        assert s.derived("features/text")["names"].asstr()[()].tolist() == ["ECG", "Ünï"]
        assert s.derived("features/text")["empty"].shape == (0, 2)
        # the session reads its own writes
        assert s.sync_group.attrs["mode"] == "strobe" and "frame_time_ecg_s" in s.sync_group
        np.testing.assert_array_equal(s.sync_group["frame_time_ecg_s"][()], np.arange(12) / 30)
        assert s.derived("features/frontend").attrs["params"] == "k=3"
        assert [a.type for a in s.annotations] == ["MaE"]
    assert sha256(rec) == before
    d = rec.with_name("S.derivatives.hdf5")
    assert sorted(p.name for p in rec.parent.iterdir()) == ["S.derivatives.hdf5", "S.h5"]  # no temporary left
    with open_session(rec) as s, h5py.File(d, "r") as f:
        assert f.attrs["format"] == "mecg-derivatives" and f.attrs["format_version"] == 1
        assert f.attrs["recording_id"] == s.recording_id and f.attrs["recording_checksum"] == s.checksum()
        assert f.attrs["recording_file"] == "S.h5"
        assert f["sync/frame_time_ecg_s"].fletcher32 and f["features/frontend/roi"].fletcher32
        assert sorted(s.features_group.keys()) == ["frontend", "text"] and s.annotated_stream == "cam"
        assert [a.type for a in s.annotations] == ["MaE"]  # the coder's table hides the recording's
    with h5py.File(rec, "r") as f:  # the recording still holds what the recorder wrote
        assert set(f) == {"streams", "annotations"} and f["annotations/type"].asstr()[()].tolist() == ["ME"]


def test_read_only_session_refuses_to_store(rec: Path) -> None:
    with open_session(rec) as s, pytest.raises(SessionError, match="writable=True"):
        s.write_group("sync", {"mode": "lsl"})
    with open_session(rec, writable=True) as s, pytest.raises(SessionError, match="results go to"):
        s.write_group("streams", {})
    assert not derivatives_path(rec).exists()


def test_derivatives_of_another_recording_are_refused(rec: Path, tmp_path: Path) -> None:
    with open_session(rec, writable=True) as s:
        s.write_group("sync", {"mode": "strobe"})
    other = write_recording(tmp_path / "other.h5", seed=1)
    shutil.copy(derivatives_path(rec), derivatives_path(other))
    with pytest.raises(SessionError) as e:
        open_session(other)
    msg = str(e.value)
    assert "other.derivatives.hdf5" in msg and "belongs to recording" in msg and "move it away" in msg


def test_derivatives_of_a_changed_recording_are_refused(rec: Path) -> None:
    with open_session(rec, writable=True) as s:
        s.write_group("sync", {"mode": "strobe"})
    with h5py.File(rec, "r+") as f:  # someone edits the recording after its results were stored
        f["streams/ecg/data"][0, 0] = 123.0
    with pytest.raises(SessionError, match=r"another version of S\.h5"):
        open_session(rec)


@pytest.mark.parametrize("content", ["garbage", "a session", "other format version"])
def test_broken_derivatives_file_is_a_clean_error(rec: Path, content: str) -> None:
    d = derivatives_path(rec)
    if content == "garbage":
        d.write_bytes(b"\x00junk" * 100)
    elif content == "a session":
        shutil.copy(rec, d)
    else:
        with open_session(rec, writable=True) as s:
            s.write_group("sync", {})
        with h5py.File(d, "r+") as f:
            f.attrs["format_version"] = 7
    with pytest.raises(SessionError) as e:
        open_session(rec)
    assert str(d) in str(e.value)


def test_opening_a_derivatives_file_as_a_session_says_what_it_is(rec: Path) -> None:
    with open_session(rec, writable=True) as s:
        s.write_group("sync", {})
    with pytest.raises(SessionError, match="derivatives file: open its recording instead"):
        open_session(derivatives_path(rec))


def test_failed_update_keeps_the_old_derivatives_whole(rec: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with open_session(rec, writable=True) as s:
        s.write_group("sync", {"mode": "strobe"}, {"frame_time_ecg_s": np.arange(12.0)})
    old = sha256(derivatives_path(rec))
    real_replace = derivatives_module.os.replace

    def full_disk(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(derivatives_module.os, "replace", full_disk)
    with open_session(rec, writable=True) as s:
        with pytest.raises(SessionError, match="Nothing was changed") as e:
            s.write_group("sync", {"mode": "pulses"})
        assert "No space left" in str(e.value)
        assert s.sync_group.attrs["mode"] == "strobe"
    monkeypatch.setattr(derivatives_module.os, "replace", real_replace)
    assert sha256(derivatives_path(rec)) == old
    assert sorted(p.name for p in rec.parent.iterdir()) == ["S.derivatives.hdf5", "S.h5"]


def write_v1(path: Path) -> Path:
    """A format-v1 file as mecg 0.1 wrote it: no checksums, /sync and /features inside the recording."""
    with h5py.File(path, "w") as f:
        f.attrs.update({"format": "mecg-session", "format_version": 1, "subject_id": "P-old", "complete": True})
        g = f.create_group("streams/ecg")
        g.attrs.update({"name": "ecg", "type": "ECG", "kind": "signal", "channel_format": "float32"})
        g.attrs["nominal_srate_hz"] = 100.0
        g.attrs["channel_labels"] = np.array(["ECG"], dtype=object)
        g.create_dataset("data", data=np.arange(300, dtype=np.float32)[:, None], chunks=(1024, 1), maxshape=(None, 1))
        g.create_dataset("timestamps", data=np.arange(300) / 100.0, chunks=(1024,), maxshape=(None,))
        g.create_dataset("clock_offsets", shape=(0, 2), chunks=(64, 2), maxshape=(None, 2), dtype=np.float64)
        f.create_group("annotations")
        f.create_group("sync").attrs["mode"] = "v1-inside"
        f["sync/frame_time_ecg_s"] = np.arange(5.0)
        f.create_group("features/old").attrs["params"] = "v1"
        f.create_group("features/shared").attrs["params"] = "v1"
    return path


def test_v1_files_read_their_own_groups_until_derivatives_exist(tmp_path: Path) -> None:
    p = write_v1(tmp_path / "old.h5")
    before = sha256(p)
    with open_session(p, writable=True) as s:
        assert s.format_version == 1 and s.sync_group.attrs["mode"] == "v1-inside"
        assert sorted(s.features_group.keys()) == ["old", "shared"]
        s.write_group("sync", {"mode": "new"}, {"frame_time_ecg_s": np.arange(3.0)})
        s.write_group("features/shared", {"params": "v2"})
        s.write_group("features/new", {"params": "v2"})
    assert sha256(p) == before
    with open_session(p) as s:
        assert s.sync_group.attrs == {"mode": "new"}  # the derivatives' /sync replaces the inside one whole
        np.testing.assert_array_equal(s.sync_group["frame_time_ecg_s"][()], np.arange(3.0))
        assert sorted(s.features_group.keys()) == ["new", "old", "shared"]
        assert s.features_group["shared"].attrs["params"] == "v2" and s.derived("features/old").attrs["params"] == "v1"


def test_recording_checksum_sees_chunk_changes_but_not_copies(rec: Path, tmp_path: Path) -> None:
    with open_session(rec) as s:
        a = s.checksum()
    copy = tmp_path / "copy" / "S.h5"
    copy.parent.mkdir()
    shutil.copy(rec, copy)
    with open_session(copy) as s:
        assert s.checksum() == a  # content, not path or mtime
    with h5py.File(copy, "r+") as f:
        f["streams/cam/timestamps"][3] = 99.0
    with open_session(copy) as s:
        assert s.checksum() != a


def _store_many(path: str, name: str, n: int, barrier) -> None:
    big = np.random.default_rng(0).normal(size=400_000)  # ~0.1 s per update: the two programs overlap
    barrier.wait()
    for i in range(n):
        with open_session(path, writable=True) as s:
            s.write_group(f"features/{name}", {"i": i}, {"v": big + i})


def test_two_programs_storing_at_once_lose_nothing(rec: Path) -> None:
    """Each update copies the newest derivatives file under a folder lock: no writer overwrites another's."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_store_many, args=(str(rec), name, 6, barrier)) for name in ("a", "b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(180)
        assert p.exitcode == 0
    with open_session(rec) as s:
        assert {k: int(s.features_group[k].attrs["i"]) for k in ("a", "b") if k in s.features_group} == {
            "a": 5,
            "b": 5,
        }
    assert sorted(p.name for p in rec.parent.iterdir() if p.name.startswith(".")) == []  # no temporary left
