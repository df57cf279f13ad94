"""The HDF5 session format v2: round trip, plain-HDF5 readability, crash safety, errors, threads, laziness."""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest
from skimage import data as skdata

import mecg
from mecg.session import (
    FORMAT_NAME,
    FORMAT_VERSION,
    Annotation,
    SessionError,
    SessionVersionError,
    SessionWriter,
    StreamInfo,
    open_session,
    validate_session,
)
from mecg.session.video_codec import RAW_CHUNK_MASK

MONO_SHAPE = (120, 160)
RGB_SHAPE = (60, 80, 3)
NOISE_FRAME = 7  # index of the incompressible frame in the mono video
MARKERS = ["start ▶", "Ünïcödé", "表情 ME", "", "emoji 😀", "plain"]
LSL_HEADER = "<?xml version='1.0'?><info><name>ECG</name><desc>" + "<ch>é</ch>" * 8000 + "</desc></info>"  # > 64 KiB


def face_frames(n: int, shape: tuple[int, ...], seed: int) -> np.ndarray:
    """``n`` uint8 frames that look like video of a face: shifted crops of a photo plus sensor noise (sigma 2)."""
    rng = np.random.default_rng(seed)
    img = skdata.camera() if len(shape) == 2 else skdata.astronaut()
    h, w = shape[:2]
    out = np.empty((n, *shape), np.uint8)
    for i in range(n):
        y, x = 100 + int(rng.integers(-3, 4)), 150 + int(rng.integers(-3, 4))
        crop = img[y : y + h, x : x + w].astype(np.float64)
        out[i] = np.clip(crop + rng.normal(0.0, 2.0, crop.shape), 0, 255).round().astype(np.uint8)
    return out


@dataclass
class Written:
    """A session file written by :func:`written` and everything put into it."""

    path: Path
    keys: dict[str, str]
    infos: dict[str, StreamInfo]
    data: dict[str, np.ndarray | list[str]]
    ts: dict[str, np.ndarray]
    offsets: dict[str, np.ndarray]
    annotations: list[Annotation]
    truth_attrs: dict
    truth_arrays: dict[str, np.ndarray]


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Written:
    """One session with every stream kind, annotations and ground truth (written once per module)."""
    rng = np.random.default_rng(1234)
    path = tmp_path_factory.mktemp("session") / "full.h5"
    infos = {
        "ecg": StreamInfo(
            "ECG",
            "ECG",
            source_id="amp-1",
            hostname="lab-pc",
            nominal_srate_hz=1000.0,
            channel_format="int16",
            channel_labels=["I", "II", "III"],
            channel_units=["mV", "mV", "mV"],
            channel_types=["ECG"] * 3,
            lsl_header=LSL_HEADER,
        ),
        "ecg2": StreamInfo("ECG", "ECG", source_id="amp-2", nominal_srate_hz=500.0, channel_labels=["Lead I"]),
        "resp": StreamInfo(
            "Resp belt/1",
            "Resp",
            nominal_srate_hz=250.0,
            channel_format="float32",
            channel_labels=["belt"],
            channel_units=["a.u."],
        ),
        "cam": StreamInfo(
            "FaceCamera",
            "Video",
            kind="video",
            source_id="cam-0",
            hostname="lab-pc",
            nominal_srate_hz=150.0,
            frame_shape=MONO_SHAPE,
            can_drop_samples=True,
            lsl_header="<info><name>FaceCamera</name></info>",
        ),
        "rgb": StreamInfo("SceneCamera", "Video", kind="video", nominal_srate_hz=30.0, frame_shape=RGB_SHAPE),
        "mk": StreamInfo("Stimulus", "Markers", kind="markers", source_id="psychopy"),
    }
    mono = face_frames(20, MONO_SHAPE, seed=1)
    mono[NOISE_FRAME] = rng.integers(0, 256, MONO_SHAPE, dtype=np.uint8)
    ecg = rng.integers(-32768, 32768, (2500, 3)).astype(np.int16)
    ecg[:2] = [[-32768, 0, 32767], [32767, -1, 1]]
    resp = rng.normal(0, 1, 1000).astype(np.float32)
    resp[[3, 4, 5]] = [np.nan, np.inf, -np.inf]
    data: dict[str, np.ndarray | list[str]] = {
        "ecg": ecg,
        "ecg2": rng.normal(0, 1, (700, 1)).astype(np.float32),
        "resp": resp,
        "cam": mono,
        "rgb": face_frames(8, RGB_SHAPE, seed=2),
        "mk": MARKERS,
    }
    t0 = 81234.567890123  # LSL clock (s): fractions of a microsecond must survive
    rates = {"ecg": 1000.0, "ecg2": 500.0, "resp": 250.0, "cam": 150.0, "rgb": 30.0, "mk": 1.0}
    ts = {k: t0 + np.arange(len(v)) / rates[k] + rng.uniform(0, 1e-4, len(v)) for k, v in data.items()}
    offsets = {k: np.column_stack([t0 + 5.0 * np.arange(4), rng.normal(0, 1e-3, 4)]) for k in ("ecg", "cam")}
    annotations = [
        Annotation(10, 12, 15, "MaE", "AU6+AU12", "happiness"),
        Annotation(2, 3, 5, "ME", "AU1+AU2", "surprise"),
        Annotation(16, 16, 19, "ME", "AU4", ""),
    ]
    truth_attrs = {"seed": 7, "offset_ms": 12.5, "label": "truth é", "drift_ppm": np.array([1.5, -2.0])}
    truth_arrays = {"r_peaks_s": rng.uniform(0, 3, 40), "me_frames": np.arange(10, dtype=np.int64)}
    with SessionWriter(path, subject_id="P-0042", notes="pilot — 2nd run, café", start_time_lsl=t0) as w:
        keys = {name: w.add_stream(info) for name, info in infos.items()}
        for name, arr in data.items():
            half = len(arr) // 2  # two appends per stream
            w.append(keys[name], arr[:half], ts[name][:half])
            w.append(keys[name], arr[half:], ts[name][half:])
        for name, rows in offsets.items():
            w.append_clock_offsets(keys[name], rows[:2])
            w.append_clock_offsets(keys[name], rows[2:])
        w.set_annotations(annotations, keys["cam"])
        w.set_ground_truth(truth_attrs, truth_arrays)
    return Written(path, keys, infos, data, ts, offsets, annotations, truth_attrs, truth_arrays)


# -- round trip ------------------------------------------------------------------------------------------------


def test_root_attributes(written: Written) -> None:
    with open_session(written.path) as s:
        a = s.attrs
        assert a["format"] == FORMAT_NAME == "mecg-session"
        # v2: nothing in it needs v3 (wide streams' channel lists as datasets), so older mecg reads it
        assert s.format_version == int(a["format_version"]) == 2 and FORMAT_VERSION == 3
        assert len(s.recording_id) == 32 and s.recording_id == a["recording_id"]
        assert s.subject_id == "P-0042"
        assert s.notes == "pilot — 2nd run, café"
        assert s.complete is True
        assert a["start_time_lsl"] == 81234.567890123
        assert s.attr("software_version") == mecg.__version__
        start = dt.datetime.fromisoformat(str(s.attr("start_time")))
        end = dt.datetime.fromisoformat(str(s.attr("end_time")))
        assert start.utcoffset() == dt.timedelta(0) and end.utcoffset() == dt.timedelta(0)
        assert start <= end <= dt.datetime.now(dt.UTC)
        with h5py.File(written.path, "r") as f:  # the file's own layout
            assert set(f) == {"streams", "annotations", "ground_truth"}  # v2: derived data lives beside it
        assert len(s.sync_group) == 0 and len(s.sync_group.attrs) == 0 and len(s.features_group) == 0


def test_streams_round_trip(written: Written) -> None:
    with validate_session(written.path) as s:
        assert set(s.streams) == set(written.keys.values())
        for name, key in written.keys.items():
            st, want = s.streams[key], written.data[name]
            assert st.info == written.infos[name], name
            assert st.sample_count == len(want) == st.group.attrs["sample_count"]
            assert st.timestamps.dtype == np.float64
            np.testing.assert_array_equal(st.timestamps, written.ts[name])
            if st.info.kind == "markers":
                assert st.markers() == want
            elif st.info.kind == "video":
                got = st.frames()
                assert got.dtype == np.uint8 and got.shape == want.shape
                np.testing.assert_array_equal(got, want)
            else:
                got = st.data[()]
                assert got.dtype == st.info.dtype and got.shape == (len(want), len(st.info.channel_labels))
                np.testing.assert_array_equal(got, np.reshape(want, got.shape))
            np.testing.assert_array_equal(st.clock_offsets, written.offsets.get(name, np.empty((0, 2))))
            assert st.clock_offsets.shape[1] == 2


def test_stream_attributes(written: Written) -> None:
    with open_session(written.path) as s:
        ecg = s.streams[written.keys["ecg"]].group.attrs
        assert ecg["lsl_header"] == LSL_HEADER
        assert ecg["channel_count"] == 3 and ecg["channel_format"] == "int16"
        assert list(ecg["channel_labels"]) == ["I", "II", "III"]
        assert list(ecg["channel_units"]) == ["mV"] * 3
        assert dt.datetime.fromisoformat(ecg["created_time"]).utcoffset() == dt.timedelta(0)
        cam = s.streams[written.keys["cam"]]
        assert cam.info.channel_format == "int8" and cam.info.can_drop_samples
        assert cam.group.attrs["pixel_format"] == "mono8" and cam.group.attrs["channel_count"] == 120 * 160
        assert tuple(cam.group.attrs["frame_shape"]) == MONO_SHAPE
        assert s.streams[written.keys["rgb"]].group.attrs["pixel_format"] == "rgb8"
        mk = s.streams[written.keys["mk"]]
        assert mk.info.channel_format == "string" and mk.group.attrs["channel_count"] == 1
        assert mk.info.nominal_srate_hz == 0.0
        assert cam.duration_s == pytest.approx(written.ts["cam"][-1] - written.ts["cam"][0])
        assert cam.effective_srate_hz == pytest.approx(150.0, rel=0.01)


def test_storage_layout(written: Written) -> None:
    """Chunking and filters are as docs/session-format.md says."""
    with h5py.File(written.path, "r") as f:
        ecg = f["streams"][written.keys["ecg"]]
        assert ecg["data"].chunks == (1024, 3) and ecg["data"].compression is None
        assert ecg["timestamps"].chunks == (1024,) and ecg["timestamps"].maxshape == (None,)
        cam = f["streams"][written.keys["cam"]]["data"]
        assert cam.chunks == (1, *MONO_SHAPE) and cam.compression == "gzip" and cam.maxshape[0] is None
        masks = [cam.id.get_chunk_info(i).filter_mask for i in range(cam.id.get_num_chunks())]
        assert masks[NOISE_FRAME] == RAW_CHUNK_MASK
        assert all(m == 0 for i, m in enumerate(masks) if i != NOISE_FRAME)
        assert cam.id.get_chunk_info(0).size < cam[0].nbytes
        mk = f["streams"][written.keys["mk"]]["data"]
        assert h5py.check_string_dtype(mk.dtype).encoding == "utf-8"
        # every dataset but variable-length strings (HDF5 refuses filters on those) is Fletcher32-checked
        names: list[str] = []
        f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        unchecked = [n for n in names if not f[n].fletcher32]
        assert unchecked and all(h5py.check_string_dtype(f[n].dtype) for n in unchecked), unchecked


def test_checksummed_chunks_are_rewritten_in_place(tmp_path: Path) -> None:
    """A Fletcher32 chunk keeps its size, so appends fill it where it is (the crash-safety rule)."""
    with SessionWriter(tmp_path / "p.h5", flush_interval_s=60) as w:
        key = w.add_stream(StreamInfo("ecg", "ECG", channel_labels=["ECG"], nominal_srate_hz=1000))
        w.append(key, np.arange(100.0), np.arange(100) / 1000)
        w.flush()
        before = w._f["streams/ecg/data"].id.get_chunk_info(0)
        w.append(key, np.arange(100.0, 600.0), np.arange(100, 600) / 1000)
        w.flush()
        after = w._f["streams/ecg/data"].id.get_chunk_info(0)
        assert (after.byte_offset, after.size) == (before.byte_offset, before.size)
    with h5py.File(tmp_path / "p.h5", "r") as f:
        np.testing.assert_array_equal(f["streams/ecg/data"][:, 0], np.arange(600.0))


def test_same_name_gets_distinct_keys(written: Written) -> None:
    assert written.keys["ecg"] == "ECG" and written.keys["ecg2"] == "ECG_2"
    assert written.keys["resp"] == "Resp_belt_1"  # unsafe characters replaced; the name is kept verbatim
    with open_session(written.path) as s:
        assert s.streams["Resp_belt_1"].info.name == "Resp belt/1"
        assert [st.info.source_id for st in s.find_streams(name="ECG")] == ["amp-1", "amp-2"]
        assert s.stream(kind="markers").key == written.keys["mk"]
        assert s.stream(type="video", name="FaceCamera").key == written.keys["cam"]
        with pytest.raises(SessionError, match="several streams"):
            s.stream(type="ECG")
        with pytest.raises(SessionError, match="no stream"):
            s.stream(type="EEG")


def test_stream_accessors(written: Written) -> None:
    with open_session(written.path) as s:
        ecg = s.streams[written.keys["ecg"]]
        np.testing.assert_array_equal(ecg.channel("II"), written.data["ecg"][:, 1])
        with pytest.raises(SessionError, match="no channel 'V1'"):
            ecg.channel("V1")
        with pytest.raises(SessionError, match="not video"):
            ecg.frames()
        with pytest.raises(SessionError, match="not markers"):
            ecg.markers()
        np.testing.assert_array_equal(s.streams[written.keys["cam"]].frames(3, 5), written.data["cam"][3:5])


def test_annotations_round_trip(written: Written) -> None:
    with open_session(written.path) as s, h5py.File(written.path, "r") as f:
        assert s.annotations == sorted(written.annotations, key=lambda a: a.onset_frame)
        assert s.annotated_stream == written.keys["cam"]
        g = f["annotations"]
        assert g.attrs["count"] == 3
        assert g["onset_frame"].dtype == np.int64 and list(g["offset_frame"][()]) == [5, 15, 19]
        assert list(g["aus"].asstr()[()]) == ["AU1+AU2", "AU6+AU12", "AU4"]
        assert s.annotations[0].length_frames == 4


def test_ground_truth_round_trip(written: Written) -> None:
    with open_session(written.path) as s, h5py.File(written.path, "r") as f:
        g = f["ground_truth"]
        for k, v in written.truth_attrs.items():
            np.testing.assert_array_equal(g.attrs[k], v)
        for k, v in written.truth_arrays.items():
            np.testing.assert_array_equal(g[k][()], v)
            assert g[k].dtype == v.dtype
            np.testing.assert_array_equal(s.ground_truth(k), v)
        with pytest.raises(SessionError, match="no ground truth 'nope'"):
            s.ground_truth("nope")


@pytest.mark.parametrize("fmt", ["float32", "double64", "int8", "int16", "int32", "int64"])
def test_signal_channel_formats(tmp_path: Path, fmt: str) -> None:
    info = StreamInfo("S", "EEG", channel_format=fmt, channel_labels=["a", "b"])
    lim = np.iinfo(info.dtype) if info.dtype.kind == "i" else None
    vals = np.array([[lim.min, lim.max]] if lim else [[-1.5, 2e30]])
    with SessionWriter(tmp_path / "s.h5") as w:
        key = w.add_stream(info)
        w.append(key, vals.astype(info.dtype), [0.0])
    with open_session(tmp_path / "s.h5") as s:
        got = s.streams[key].data[()]
        assert got.dtype == info.dtype
        np.testing.assert_array_equal(got, vals.astype(info.dtype))


def test_video_accepts_flat_lsl_samples_and_int8(tmp_path: Path) -> None:
    frames = face_frames(3, (24, 32), seed=3)
    with SessionWriter(tmp_path / "v.h5") as w:
        key = w.add_stream(StreamInfo("cam", "Video", kind="video", frame_shape=(24, 32)))
        w.append(key, frames[:2].reshape(2, -1).view(np.int8), [0.0, 1.0])  # LSL: one flat int8 sample per frame
        w.append(key, frames[2], [2.0])  # a single frame
    with open_session(tmp_path / "v.h5") as s:
        np.testing.assert_array_equal(s.streams[key].frames(), frames)


def test_frames_compressed_in_threads_give_the_same_file_bytes(tmp_path: Path) -> None:
    """``encode_threads``: the frames of one append are deflated in parallel and stored in order, chunk for
    chunk as one thread stores them (a raw, incompressible frame included)."""
    frames = face_frames(9, (48, 64), seed=5)
    frames[4] = np.random.default_rng(5).integers(0, 256, (48, 64), dtype=np.uint8)  # stored raw
    chunks = {}
    for threads in (1, 3):
        path = tmp_path / f"t{threads}.h5"
        with SessionWriter(path, encode_threads=threads) as w:
            key = w.add_stream(StreamInfo("cam", "Video", kind="video", frame_shape=(48, 64)))
            w.append(key, frames[:7], np.arange(7.0))
            w.append(key, frames[7:], [7.0, 8.0])
        with h5py.File(path, "r") as f:
            d = f["streams"][key]["data"]
            chunks[threads] = [d.id.read_direct_chunk((i, 0, 0)) for i in range(9)]
        with open_session(path) as s:
            np.testing.assert_array_equal(s.streams[key].frames(), frames)
    assert chunks[3] == chunks[1]
    assert chunks[1][4][0] == RAW_CHUNK_MASK and chunks[1][0][0] == 0
    # the compressing threads end with the writer: a process that wrote video is single-threaded again
    # (code that forks, e.g. the NWB export, decides by that)
    assert not [t for t in threading.enumerate() if t.name.startswith("mecg-encode")]


# -- plain HDF5: no mecg, no plugin ----------------------------------------------------------------------------

PLAIN_READER = """
import sys, zlib
import h5py, numpy as np
path, expected = sys.argv[1], sys.argv[2]
want = np.load(expected)
with h5py.File(path, "r") as f:
    assert f.attrs["format"] == "mecg-session" and int(f.attrs["format_version"]) == 2
    for key in ("FaceCamera", "SceneCamera"):
        d = f["streams"][key]["data"]
        assert d.fletcher32 and d.compression == "gzip"
        got = d[()]  # HDF5 checks every frame's Fletcher32 trailer that mecg appended itself
        assert got.dtype == np.uint8 and np.array_equal(got, want[key]), key
        for i in range(d.shape[0]):
            mask, chunk = d.id.read_direct_chunk((i,) + (0,) * (d.ndim - 1))
            chunk = chunk[:-4]  # the Fletcher32 checksum, stored after the filtered bytes
            assert (chunk if mask & 1 else zlib.decompress(chunk)) == want[key][i].tobytes(), (key, i)
        # a flipped bit in a frame is an error for plain h5py, not a silently wrong frame
        mask, chunk = d.id.read_direct_chunk((0,) * d.ndim)
        bad = bytearray(chunk)
        bad[len(bad) // 2] ^= 0x10
        with h5py.File("flipped.h5", "w") as g:
            e = g.create_dataset("x", shape=d.shape, chunks=d.chunks, dtype=d.dtype, compression="gzip",
                                 fletcher32=True)
            e.id.write_direct_chunk((0,) * d.ndim, bytes(bad), filter_mask=mask)
            try:
                e[0]
                raise SystemExit("flipped bit not detected")
            except OSError:
                pass
        print(key, "masks", *[d.id.get_chunk_info(i).filter_mask for i in range(d.shape[0])])
    ts = f["streams"]["FaceCamera"]["timestamps"][()]
    assert ts.dtype == np.float64 and ts.shape == (want["FaceCamera"].shape[0],)
assert not [m for m in sys.modules if m.split(".")[0] in ("mecg", "hdf5plugin", "isal")]
print("PLAIN-OK")
"""


def test_video_reads_bit_exact_with_plain_h5py(written: Written, tmp_path: Path) -> None:
    script, expected, plugins = tmp_path / "plain.py", tmp_path / "frames.npz", tmp_path / "no-plugins"
    script.write_text(PLAIN_READER)
    plugins.mkdir()
    np.savez(expected, FaceCamera=written.data["cam"], SceneCamera=written.data["rgb"])
    env = {**os.environ, "HDF5_PLUGIN_PATH": str(plugins)}
    r = subprocess.run(
        [sys.executable, "-I", str(script), str(written.path), str(expected)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert "PLAIN-OK" in r.stdout
    mono_masks = r.stdout.splitlines()[0].split()[2:]
    assert mono_masks[NOISE_FRAME] == "1" and mono_masks.count("0") == len(mono_masks) - 1


# -- crash safety ----------------------------------------------------------------------------------------------

CRASH_WRITER = """
import sys, time
import numpy as np
from mecg.session import SessionWriter, StreamInfo
H, W = 96, 128
BASE = np.arange(H * W, dtype=np.int64).reshape(H, W)
w = SessionWriter(sys.argv[1], subject_id="crash")
cam = w.add_stream(StreamInfo("cam", "Video", kind="video", frame_shape=(H, W), nominal_srate_hz=150))
ecg = w.add_stream(StreamInfo("ecg", "ECG", channel_labels=["ECG"], channel_format="int32", nominal_srate_hz=1000))
mk = w.add_stream(StreamInfo("mk", "Markers", kind="markers"))
print("ready", flush=True)
nf = ne = nm = 0
while True:
    idx = np.arange(nf, nf + 3)
    w.append(cam, ((BASE[None] + 7 * idx[:, None, None]) % 256).astype(np.uint8), idx / 150)
    nf += 3
    w.append(ecg, np.arange(ne, ne + 20, dtype=np.int32), np.arange(ne, ne + 20) / 1000)
    ne += 20
    if nf % 30 == 0:
        w.append(mk, [f"mark é {nm}"], [nm * 0.2])
        nm += 1
    print(f"{time.monotonic():.6f} {nf} {ne} {nm}", flush=True)
    time.sleep(0.004)
"""


def expected_frame(i: int, shape: tuple[int, int] = (96, 128)) -> np.ndarray:
    """Frame ``i`` as CRASH_WRITER makes it."""
    return ((np.arange(shape[0] * shape[1]).reshape(shape) + 7 * i) % 256).astype(np.uint8)


@pytest.mark.parametrize("kill_after_s", [1.6, 2.05, 2.5])
def test_sigkill_keeps_all_but_the_last_second(tmp_path: Path, kill_after_s: float) -> None:
    script, path = tmp_path / "writer.py", tmp_path / "crash.h5"
    script.write_text(CRASH_WRITER)
    proc = subprocess.Popen([sys.executable, str(script), str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        t_ready = time.monotonic()
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)  # type: ignore[arg-type]
        reader.start()
        time.sleep(kill_after_s)  # when the kill lands is the parameter under test, not a wait for a result
        t_kill = time.monotonic()  # the kill lands after this: the bound below is conservative
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        reader.join(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    progress = [tuple(float(x) for x in ln.split()) for ln in lines if ln.strip()]
    # CLOCK_MONOTONIC is system-wide on Linux, so the child's stamps compare with t_kill.
    settled = [p for p in progress if p[0] <= t_kill - 1.0]
    floor_frames, floor_samples, floor_marks = (int(x) for x in settled[-1][1:]) if settled else (0, 0, 0)
    assert t_kill - t_ready < 1.0 or settled, "the writer printed no progress for over a second"

    with validate_session(path) as s:
        assert s.complete is False and s.attr("end_time") == ""
        cam, ecg, mk = s.streams["cam"], s.streams["ecg"], s.streams["mk"]
        nf, ne, nm = cam.sample_count, ecg.sample_count, mk.sample_count
        assert nf > 0 and ne > 0
        assert nf >= floor_frames and ne >= floor_samples and nm >= floor_marks, (nf, ne, nm, settled[-1:])
        assert len(cam.timestamps) == nf and len(ecg.timestamps) == ne and len(mk.timestamps) == nm
        frames = cam.frames()
        bad = [i for i in range(nf) if not np.array_equal(frames[i], expected_frame(i))]
        assert not bad, f"frames {bad[:5]} differ from what was written"
        np.testing.assert_array_equal(cam.timestamps, np.arange(nf) / 150)
        np.testing.assert_array_equal(ecg.data[:, 0], np.arange(ne))
        np.testing.assert_array_equal(ecg.timestamps, np.arange(ne) / 1000)
        assert mk.markers() == [f"mark é {i}" for i in range(nm)]


def test_metadata_reaches_the_disk_only_in_a_flush(tmp_path: Path) -> None:
    """A crash between flushes finds the file as the last flush left it, however small HDF5's metadata cache.

    A cache that evicts writes dirty B-tree nodes and object headers at once, pointing past the end of
    the file the flushed superblock records (``addr overflow``): the writer turns evictions off. The cache
    is shrunk to 4 KiB here (the writer's eviction setting kept) so that any eviction shows; a copy of the
    file taken between flushes is what a SIGKILL at that moment would leave.
    """
    path, copy = tmp_path / "s.h5", tmp_path / "crash.h5"
    w = SessionWriter(path, subject_id="mdc", flush_interval_s=3600)
    cfg = w._f.id.get_mdc_config()
    cfg.set_initial_size, cfg.initial_size, cfg.max_size, cfg.min_size = True, 4096, 4096, 1024
    cfg.incr_mode = cfg.decr_mode = cfg.flash_incr_mode = 0  # fixed size; evictions_enabled as the writer set it
    w._f.id.set_mdc_config(cfg)
    try:
        cam = w.add_stream(StreamInfo("cam", "Video", kind="video", frame_shape=(4, 4), nominal_srate_hz=150))
        ecg = w.add_stream(StreamInfo("ecg", "ECG", channel_labels=["ECG"], channel_format="int32"))
        w.flush()
        flushed = 0
        for i in range(1, 61):
            w.append(cam, np.full((3, 4, 4), i, np.uint8), np.arange(3 * i - 3, 3 * i) / 150)
            w.append(ecg, np.arange(20 * i - 20, 20 * i, dtype=np.int32), np.arange(20 * i - 20, 20 * i) / 1000)
            if i % 20 == 0:
                w.flush()
                flushed = i
            if i % 10 == 5:
                shutil.copyfile(path, copy)
                with validate_session(copy) as s:
                    assert s.complete is False
                    assert s.streams["cam"].sample_count == 3 * flushed
                    np.testing.assert_array_equal(s.streams["ecg"].data[:, 0], np.arange(20 * flushed))
    finally:
        w.close()


def test_a_writer_left_open_at_exit_is_aborted(tmp_path: Path) -> None:
    """A program that ends (here by an exception) with its writer open exits normally and leaves a valid file.

    HDF5 writes through a Python file object; without the writer's exit hook the interpreter's teardown
    closed the file from under it and crashed (segmentation fault).
    """
    path = tmp_path / "open.h5"
    code = (
        "import numpy as np\n"
        "from mecg.session import SessionWriter, StreamInfo\n"
        f"w = SessionWriter({str(path)!r})\n"
        "k = w.add_stream(StreamInfo('cam', 'Video', kind='video', frame_shape=(8, 8), nominal_srate_hz=150))\n"
        "for i in range(30):\n"
        "    w.append(k, np.full((3, 8, 8), i, np.uint8), np.arange(3 * i, 3 * i + 3) / 150)\n"
        "raise SystemExit('stopped with the writer open')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert "stopped with the writer open" in proc.stderr
    with validate_session(path) as s:
        assert s.complete is False
        assert s.streams["cam"].sample_count == 90


# -- bad input -------------------------------------------------------------------------------------------------


def _raises_naming(path: Path, exc: type[SessionError] = SessionError) -> AbstractContextManager:
    """``pytest.raises(exc)`` that also requires the message to name ``path``."""
    return pytest.raises(exc, match=re.escape(str(path)))


@pytest.mark.parametrize("opener", [open_session, validate_session])
def test_missing_path(tmp_path: Path, opener) -> None:
    p = tmp_path / "nope.h5"
    with _raises_naming(p) as e:
        opener(p)
    assert "does not exist" in str(e.value)


def test_directory(tmp_path: Path) -> None:
    with _raises_naming(tmp_path) as e:
        open_session(tmp_path)
    assert "folder" in str(e.value)


def test_garbage_bytes(tmp_path: Path) -> None:
    p = tmp_path / "garbage.h5"
    p.write_bytes(np.random.default_rng(0).bytes(8192))
    with _raises_naming(p) as e:
        validate_session(p)
    assert "not an HDF5 file" in str(e.value)


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9, "minus-one-byte"])
def test_truncated_session(written: Written, tmp_path: Path, fraction: float | str) -> None:
    p = tmp_path / "truncated.h5"
    shutil.copy(written.path, p)
    size = p.stat().st_size
    with open(p, "r+b") as fh:
        fh.truncate(size - 1 if fraction == "minus-one-byte" else int(size * fraction))
    with _raises_naming(p):  # open_session or, failing that, validate_session must refuse it
        with open_session(p):
            pass
        validate_session(p).close()


def test_hdf5_but_not_a_session(tmp_path: Path) -> None:
    p = tmp_path / "other.h5"
    with h5py.File(p, "w") as f:
        f["x"] = np.arange(3)
    with _raises_naming(p) as e:
        open_session(p)
    assert "not a mecg session" in str(e.value)


def test_newer_format_version(written: Written, tmp_path: Path) -> None:
    p = tmp_path / "v2.h5"
    shutil.copy(written.path, p)
    with h5py.File(p, "r+") as f:
        f.attrs["format_version"] = FORMAT_VERSION + 1
    with _raises_naming(p, SessionVersionError) as e:
        open_session(p)
    assert f"v{FORMAT_VERSION + 1}" in str(e.value) and "upgrade mecg" in str(e.value)


def test_missing_group(written: Written, tmp_path: Path) -> None:
    p = tmp_path / "noannotations.h5"
    shutil.copy(written.path, p)
    with h5py.File(p, "r+") as f:
        del f["annotations"]
    with _raises_naming(p) as e:
        open_session(p)
    assert "/annotations" in str(e.value)


def test_mismatched_data_and_timestamps(written: Written, tmp_path: Path) -> None:
    p = tmp_path / "mismatch.h5"
    shutil.copy(written.path, p)
    key = written.keys["ecg"]
    with h5py.File(p, "r+") as f:
        ts = f["streams"][key]["timestamps"]
        ts.resize(ts.shape[0] - 1, axis=0)
    with _raises_naming(p) as e:
        open_session(p)
    assert key in str(e.value) and "2500 samples but 2499 timestamps" in str(e.value)


def test_existing_output_needs_overwrite(written: Written, tmp_path: Path) -> None:
    p = tmp_path / "exists.h5"
    shutil.copy(written.path, p)
    with _raises_naming(p) as e:
        SessionWriter(p)
    assert "already exists" in str(e.value)
    with open_session(p) as s:  # untouched
        assert s.complete and len(s.streams) == 6
    with SessionWriter(p, overwrite=True):
        pass
    with open_session(p) as s:
        assert s.streams == {}
    with _raises_naming(tmp_path / "no" / "dir.h5"):
        SessionWriter(tmp_path / "no" / "dir.h5")


def test_bad_appends(tmp_path: Path) -> None:
    p = tmp_path / "w.h5"
    with SessionWriter(p) as w:
        cam = w.add_stream(StreamInfo("cam", "Video", kind="video", frame_shape=(24, 32)))
        ecg = w.add_stream(StreamInfo("ecg", "ECG", channel_labels=["I", "II"]))
        mk = w.add_stream(StreamInfo("mk", "Markers", kind="markers"))
        with _raises_naming(p) as e:
            w.append("EEG", np.zeros((1, 1)), [0.0])
        assert "'EEG'" in str(e.value)
        with pytest.raises(SessionError, match="do not match"):
            w.append(cam, np.zeros((2, 32, 24), np.uint8), [0.0, 1.0])  # transposed frames
        with pytest.raises(SessionError, match="do not match"):
            w.append(cam, np.zeros((2, 24, 32), np.uint8), [0.0])  # 2 frames, 1 timestamp
        with pytest.raises(SessionError, match="do not match"):
            w.append(cam, np.zeros((1, 24, 32, 3), np.uint8), [0.0])  # colour into a mono stream
        with pytest.raises(SessionError, match="2 channels"):
            w.append(ecg, np.zeros((3, 3)), [0.0, 1.0, 2.0])
        with pytest.raises(SessionError, match="2 markers but 1 timestamps"):
            w.append(mk, ["a", "b"], [0.0])
        assert w.count(cam) == w.count(ecg) == w.count(mk) == 0
    with pytest.raises(SessionError, match="closed"):
        w.append(ecg, np.zeros((1, 2)), [0.0])
    with open_session(p) as s:
        assert all(st.sample_count == 0 for st in s.streams.values())


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kind": "audio"},
        {"channel_format": "uint8"},
        {"kind": "video", "frame_shape": (10, 10, 4)},
        {"kind": "signal"},
        {"channel_format": "string", "channel_labels": ["a"]},
        {"channel_labels": ["a", "b"], "channel_units": ["mV"]},
    ],
)
def test_bad_stream_info(kwargs: dict) -> None:
    with pytest.raises(SessionError):
        StreamInfo("s", "T", **kwargs)


def test_bad_annotation() -> None:
    with pytest.raises(SessionError, match="type"):
        Annotation(1, 2, 3, "XE")
    with pytest.raises(SessionError, match="onset <= apex <= offset"):
        Annotation(5, 4, 6, "ME")


# -- threads ---------------------------------------------------------------------------------------------------


def test_concurrent_appends(tmp_path: Path) -> None:
    p = tmp_path / "threads.h5"
    n_frames, n_rows, step = 120, 3000, 7
    with SessionWriter(p, flush_interval_s=0.05) as w:
        cam = w.add_stream(StreamInfo("cam", "Video", kind="video", frame_shape=(24, 32)))
        sig = w.add_stream(StreamInfo("sig", "ECG", channel_format="double64", channel_labels=["value", "thread"]))
        start = threading.Barrier(3)
        errors: list[BaseException] = []

        def video() -> None:
            start.wait()
            for i in range(0, n_frames, 2):
                w.append(cam, np.stack([np.full((24, 32), (i + k) % 256, np.uint8) for k in (0, 1)]), [i, i + 1])

        def signal_rows(thread: int) -> None:
            start.wait()
            for k in range(0, n_rows, step):
                v = np.arange(k, min(k + step, n_rows)) + thread * 100_000.0
                w.append(sig, np.column_stack([v, np.full_like(v, thread)]), v)

        def guarded(fn, *a) -> None:
            try:
                fn(*a)
            except BaseException as exc:  # reported by the assertion below
                errors.append(exc)

        threads = [threading.Thread(target=guarded, args=a) for a in ((video,), (signal_rows, 1), (signal_rows, 2))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert not errors
        assert w.count(cam) == n_frames and w.count(sig) == 2 * n_rows
    with validate_session(p) as s:
        frames = s.streams["cam"].frames()
        assert [int(f[0, 0]) for f in frames] == list(range(n_frames))
        assert (frames == frames[:, :1, :1]).all()
        np.testing.assert_array_equal(s.streams["cam"].timestamps, np.arange(n_frames))
        rows, ts = s.streams["sig"].data[()], s.streams["sig"].timestamps
        assert rows.shape == (2 * n_rows, 2)
        np.testing.assert_array_equal(rows[:, 0], ts)  # each row kept its own timestamp
        for thread in (1, 2):
            mine = rows[rows[:, 1] == thread, 0]
            # in order, none lost, none doubled
            np.testing.assert_array_equal(mine, np.arange(n_rows) + thread * 100_000.0)


# -- laziness --------------------------------------------------------------------------------------------------


def test_open_and_timestamps_do_not_read_frames(written: Written, monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[str] = []
    original = h5py.Dataset.__getitem__

    def spy(self: h5py.Dataset, args: object, **kw: object) -> object:
        reads.append(self.name)
        return original(self, args, **kw)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
    cam_data = f"/streams/{written.keys['cam']}/data"
    with open_session(written.path) as s:
        cam = s.streams[written.keys["cam"]]
        assert isinstance(cam.data.ds, h5py.Dataset)
        assert cam.sample_count == 20 and cam.duration_s > 0
        assert len(cam.timestamps) == 20
        assert cam_data not in reads
        np.testing.assert_array_equal(cam.frames(2, 3), original(cam.data.ds, slice(2, 3)))
