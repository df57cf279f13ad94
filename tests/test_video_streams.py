"""Video streams as other software sends and stores them: the XDF ``VideoRaw`` convention, any stream size.

Another vendor's camera apps are played by pylsl outlets (``VideoRaw``, ``desc/encoding``; 64x64 and
640x480, grey and RGB) and recorded through the Recorder; the same streams written to an XDF file
(tests/xdf_writer.py) and to a gzip-compressed ``.xdfz`` are imported with ``mecg import-xdf``. A
pixel stream a session cannot hold as frames (BGR) and a wide signal are kept as signals whose
channel labels are datasets (session format v3); sessions written before (labels as attributes,
v2) still read. Loopback LSL only; every test selects its streams by a unique source_id.
"""

from __future__ import annotations

import gzip
import json
import sys
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import h5py
import numpy as np
import pylsl
import pytest

from mecg.acquire.camera_driver import CameraConfig, CameraDriver
from mecg.acquire.recorder import Recorder, RecorderConfig
from mecg.acquire.stream_metadata import StreamQuery, is_video, video_layout_of
from mecg.cli.main import main
from mecg.interop import XdfError, XdfTruncatedError, import_xdf
from mecg.session import SessionError, SessionWriter, StreamInfo, open_session, validate_session
from mecg.session.format import MAX_ATTR_CHANNELS
from mecg.session.lsl_video import video_layout

sys.path.insert(0, str(Path(__file__).parent))
from waiting import wait_until as _wait_for
from xdf_writer import XdfWriter, channels_desc, stream_header_xml, videoraw_desc

#: The vendor streams: name -> frame shape (h, w) grey or (h, w, 3) RGB.
SHAPES = {"Gray64": (64, 64), "Rgb64": (64, 64, 3), "Gray640": (480, 640), "Rgb640": (480, 640, 3)}
FPS = 30.0
N_FRAMES = 6


def _uid(tag: str) -> str:
    return f"test-video-{tag}-{uuid.uuid4().hex[:8]}"


def _frames(shape: tuple[int, ...], n: int, seed: int) -> np.ndarray:
    """``n`` uint8 frames that differ from one another and between colour channels."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, shape, dtype=np.uint8)
    return np.stack([np.roll(base, 7 * i, axis=1) for i in range(n)])


def _desc(xml: str) -> ET.Element:
    return ET.fromstring(f"<desc>{xml}</desc>")


# -- recognition ---------------------------------------------------------------------------------
def test_video_layout_follows_the_xdf_convention_and_mecgs_older_layout() -> None:
    grey = video_layout("VideoRaw", "int8", 64 * 64, _desc(videoraw_desc(64, 64)))
    assert grey.storable and grey.frame_shape == (64, 64) and grey.convention == "VideoRaw"
    rgb = video_layout("videoraw", "int8", 640 * 480 * 3, _desc(videoraw_desc(640, 480, "RGB")))
    assert rgb.storable and rgb.frame_shape == (480, 640, 3)
    # no color_format: the channels per pixel decide; no codec: RAW
    bare = video_layout("VideoRaw", "int8", 8 * 6 * 3, _desc("<encoding><width>8</width><height>6</height></encoding>"))
    assert bare.frame_shape == (6, 8, 3)
    # mecg's camera streams before v3 of the format: type Video, desc/width, height, channels
    old = video_layout("Video", "int8", 32 * 24, _desc("<width>32</width><height>24</height><channels>1</channels>"))
    assert old.storable and old.frame_shape == (24, 32) and old.convention == "mecg"
    assert video_layout("EEG", "int8", 64 * 64, _desc(videoraw_desc(64, 64))) is None
    problems = {
        "RGBA": video_layout("VideoRaw", "int8", 64 * 64 * 4, _desc(videoraw_desc(64, 64, "RGBA"))),
        "BGR": video_layout("VideoRaw", "int8", 64 * 64 * 3, _desc(videoraw_desc(64, 64, "BGR"))),
        "codec": video_layout("VideoRaw", "int8", 64 * 64, _desc(videoraw_desc(64, 64, codec="H264"))),
        "float32": video_layout("VideoRaw", "float32", 64 * 64, _desc(videoraw_desc(64, 64))),
        "count": video_layout("VideoRaw", "int8", 64 * 63, _desc(videoraw_desc(64, 64))),
        "size": video_layout(
            "VideoRaw", "int8", 64 * 64, _desc("<encoding><color_format>GRAY</color_format></encoding>")
        ),
        "channels": video_layout("VideoRaw", "int8", 64 * 64, _desc(videoraw_desc(64, 64, "GRAY", color_channels=3))),
    }
    for what, layout in problems.items():
        assert layout is not None and not layout.storable and layout.frame_shape == (), what
    assert "RGBA" in problems["RGBA"].problem and "H264" in problems["codec"].problem
    assert "float32" in problems["float32"].problem and "4032" in problems["count"].problem


def test_mecgs_camera_stream_follows_the_convention(tmp_path: Path) -> None:
    path = tmp_path / "face.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (64, 48))
    for i in range(3):
        w.write(np.full((48, 64, 3), 40 * i, np.uint8))
    w.release()
    drv = CameraDriver(CameraConfig(camera=str(path), source_id=_uid("own")))
    assert drv.connect() == (48, 64, 3)
    try:
        found = pylsl.resolve_byprop("source_id", drv.source_id, timeout=5.0)
        inlet = pylsl.StreamInlet(found[0])
        info = inlet.info(timeout=5.0)
        enc = info.desc().child("encoding")
        assert info.type() == "VideoRaw" and info.channel_format() == pylsl.cf_int8
        assert [enc.child_value(k) for k in ("width", "height", "color_channels", "color_format", "codec")] == [
            "64",
            "48",
            "3",
            "RGB",
            "RAW",
        ]
        layout = video_layout_of(info)
        assert is_video(info) and layout.convention == "VideoRaw" and layout.frame_shape == (48, 64, 3)
        assert info.desc().child_value("can_drop_samples") == "true"  # mecg's own extra desc stays
        assert StreamQuery(types=("Video",)).matches(info)  # a query for Video still finds it
        inlet.close_stream()
    finally:
        drv.close()


# -- live: another vendor's apps -----------------------------------------------------------------
def _vendor_outlet(name: str, sid: str, shape: tuple[int, ...], color_format: str = "") -> pylsl.StreamOutlet:
    """A raw-video outlet as the XDF meta-data convention describes it (not mecg's camera driver)."""
    h, w = shape[:2]
    c = shape[2] if len(shape) == 3 else 1
    info = pylsl.StreamInfo(name, "VideoRaw", h * w * c, FPS, pylsl.cf_int8, sid)
    enc = info.desc().append_child("encoding")
    for k, v in (
        ("width", w),
        ("height", h),
        ("color_channels", c),
        ("color_format", color_format or ("GRAY" if c == 1 else "RGB")),
        ("codec", "RAW"),
    ):
        enc.append_child_value(k, str(v))
    info.desc().append_child("acquisition").append_child_value("manufacturer", "OtherVendor")
    return pylsl.StreamOutlet(info, chunk_size=1)


def test_vendor_videoraw_streams_are_recorded_as_frames(tmp_path: Path) -> None:
    sids = {name: _uid(name) for name in (*SHAPES, "Bgr64", "Old32")}
    outlets = {name: _vendor_outlet(name, sids[name], shape) for name, shape in SHAPES.items()}
    outlets["Bgr64"] = _vendor_outlet("Bgr64", sids["Bgr64"], (64, 64, 3), "BGR")  # kept as a signal
    old = pylsl.StreamInfo("Old32", "Video", 24 * 32, FPS, pylsl.cf_int8, sids["Old32"])  # mecg before v3
    for k, v in (("width", "32"), ("height", "24"), ("channels", "1")):
        old.desc().append_child_value(k, v)
    outlets["Old32"] = pylsl.StreamOutlet(old, chunk_size=1)
    shapes = {**SHAPES, "Bgr64": (64, 64, 3), "Old32": (24, 32)}
    sent = {name: _frames(shape, N_FRAMES, seed) for seed, (name, shape) in enumerate(shapes.items())}
    out = tmp_path / "vendor.h5"
    queries = tuple(StreamQuery(source_ids=(s,)) for s in sids.values())
    rec = Recorder(  # every stream required: recording starts once each has been seen
        RecorderConfig(
            path=out,
            queries=(),
            required=queries,
            wait_s=10.0,
            settle_s=0.3,
            min_free_mb=0.0,
        )
    )
    t0 = pylsl.local_clock()
    stamps = t0 + np.arange(N_FRAMES) / FPS
    try:
        rec.start()
        for name, outlet in outlets.items():
            assert _wait_for(lambda o=outlet: o.have_consumers(), 5.0), f"{name}: {rec.events()}"
            outlet.push_chunk(sent[name].reshape(N_FRAMES, -1).view(np.int8), stamps.tolist())
        assert _wait_for(lambda: sum(s.samples for s in rec.status().streams) == N_FRAMES * len(outlets), 10.0)
    finally:
        final = rec.stop()
    assert final.complete
    kinds = {s.name: s.kind for s in final.streams}
    assert kinds == {**dict.fromkeys(SHAPES, "video"), "Old32": "video", "Bgr64": "signal"}
    with validate_session(out) as s:
        assert s.format_version == 3  # the BGR stream has 12,288 channels: its labels are datasets
        by_name = {st.info.name: st for st in s.streams.values()}
        for name, shape in {**SHAPES, "Old32": (24, 32)}.items():
            st = by_name[name]
            assert st.info.kind == "video" and st.info.frame_shape == shape, name
            np.testing.assert_array_equal(st.frames(), sent[name], err_msg=name)
            np.testing.assert_array_equal(st.timestamps, stamps)
            assert st.info.can_drop_samples  # a camera: no dejitter
        assert by_name["Rgb640"].group.attrs["pixel_format"] == "rgb8"
        assert by_name["Gray640"].group.attrs["pixel_format"] == "mono8"
        bgr = by_name["Bgr64"]  # nothing lost: the pixels as channels, in the order sent
        assert bgr.info.kind == "signal" and len(bgr.info.channel_labels) == 64 * 64 * 3
        assert "channel_labels" in bgr.h5group and "channel_labels" not in bgr.h5group.attrs
        np.testing.assert_array_equal(bgr.data[()].view(np.uint8), sent["Bgr64"].reshape(N_FRAMES, -1))
        assert "<color_format>BGR</color_format>" in bgr.info.lsl_header


# -- XDF files -----------------------------------------------------------------------------------
def _write_xdf(path: Path, *, bgr: bool = False) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """A LabRecorder-style XDF with four VideoRaw streams (and a BGR one), an ECG and markers; returns the truth."""
    w = XdfWriter(path)
    truth = {}
    shapes = dict(SHAPES)
    if bgr:
        shapes["Bgr64"] = (64, 64, 3)
    for sid, (name, shape) in enumerate(shapes.items(), start=1):
        h, wd = shape[:2]
        c = shape[2] if len(shape) == 3 else 1
        fmt = "BGR" if name.startswith("Bgr") else "GRAY" if c == 1 else "RGB"
        desc = videoraw_desc(wd, h, fmt)
        w.stream(
            sid, "int8", h * wd * c, FPS, stream_header_xml(name, "VideoRaw", h * wd * c, FPS, "int8", name, desc=desc)
        )
        frames = _frames(shape, N_FRAMES, sid)
        ts = 50.0 + sid * 0.01 + np.arange(N_FRAMES) / FPS
        w.samples(sid, frames.reshape(N_FRAMES, -1).view(np.int8), ts)
        w.clock_offset(sid, 50.0, -0.25)
        truth[name] = (frames, ts)
    ecg_id = len(shapes) + 1
    hdr = stream_header_xml("ECG", "ECG", 1, 500.0, "float32", "amp", desc=channels_desc(["ECG"], ["mV"], ["ECG"]))
    w.stream(ecg_id, "float32", 1, 500.0, hdr)
    ecg = np.sin(np.arange(200) / 10.0).astype(np.float32)[:, None]
    w.samples(ecg_id, ecg, 50.0 + np.arange(200) / 500.0)
    w.clock_offset(ecg_id, 50.0, 0.1)
    truth["ECG"] = (ecg, 50.0 + np.arange(200) / 500.0)
    for sid, (_, ts) in enumerate(truth.values(), start=1):
        w.footer(sid, float(ts[0]), float(ts[-1]), ts.size)
    w.close()
    return truth


def _check_imported(out: Path, truth: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    with validate_session(out) as s:
        assert s.complete
        by_name = {st.info.name: st for st in s.streams.values()}
        for name, shape in SHAPES.items():
            st = by_name[name]
            assert st.info.kind == "video" and st.info.frame_shape == shape and st.info.type == "VideoRaw", name
            np.testing.assert_array_equal(st.frames(), truth[name][0], err_msg=name)
            np.testing.assert_array_equal(st.timestamps, truth[name][1])
            np.testing.assert_allclose(st.clock_offsets, [[49.75, -0.25]])
        np.testing.assert_array_equal(by_name["ECG"].data[()], truth["ECG"][0])


def test_xdf_with_videoraw_streams_imports_them_as_video(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    xdf = tmp_path / "vendor.xdf"
    truth = _write_xdf(xdf, bgr=True)
    out = tmp_path / "vendor.h5"
    assert main(["import-xdf", str(xdf), str(out), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    kinds = {r["name"]: r["kind"] for r in rep["streams"]}
    assert kinds == {**dict.fromkeys(SHAPES, "video"), "Bgr64": "signal", "ECG": "signal"}
    assert any("Bgr64" in w and "colour format BGR" in w for w in rep["warnings"])
    _check_imported(out, truth)
    with open_session(out) as s:  # the BGR pixels are kept, one channel each (labels: datasets, v3)
        bgr = next(st for st in s.streams.values() if st.info.name == "Bgr64")
        assert s.format_version == 3 and len(bgr.info.channel_labels) == 64 * 64 * 3
        np.testing.assert_array_equal(bgr.data[()].view(np.uint8), truth["Bgr64"][0].reshape(N_FRAMES, -1))
    # --streams Video picks the VideoRaw streams too (the type names are one family)
    assert main(["import-xdf", str(xdf), str(tmp_path / "sel.h5"), "--streams", "Video", "--json"]) == 0
    sel = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in sel["streams"] if r["imported_as"]} == {*SHAPES, "Bgr64"}
    # mecg info sees the video streams as it sees mecg's own camera
    assert main(["info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    text = json.dumps(info)
    assert "Rgb640" in text and "480" in text and "video" in text


def test_xdfz_is_imported_and_a_cut_one_needs_partial(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    xdf = tmp_path / "vendor.xdf"
    truth = _write_xdf(xdf)
    raw = xdf.read_bytes()
    xdfz = tmp_path / "vendor.xdfz"
    xdfz.write_bytes(gzip.compress(raw, compresslevel=1))
    out = tmp_path / "fromz.h5"
    rep = import_xdf(xdfz, out)
    assert rep.complete and rep.source == str(xdfz)
    _check_imported(out, truth)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fromz.h5", "vendor.xdf", "vendor.xdfz"]  # temp gone
    gz = tmp_path / "vendor.xdf.gz"  # the other name pyxdf reads
    gz.write_bytes(xdfz.read_bytes())
    assert main(["import-xdf", str(gz), str(tmp_path / "fromgz.h5")]) == 0
    capsys.readouterr()
    # a compressed file cut short (the recorder killed): refused, then imported in part with --partial
    cut = tmp_path / "cut.xdfz"
    cut.write_bytes(xdfz.read_bytes()[: int(xdfz.stat().st_size * 0.6)])
    with pytest.raises(XdfTruncatedError, match="--partial"):
        import_xdf(cut, tmp_path / "cut.h5")
    assert not (tmp_path / "cut.h5").exists()
    rep = import_xdf(cut, tmp_path / "cut.h5", partial=True)
    assert not rep.complete and any("cut" in w for w in rep.warnings)
    with open_session(tmp_path / "cut.h5") as s:
        assert not s.complete and s.streams  # the intact chunks before the cut
    # a file named .xdfz that is not gzip data: a clear error, nothing written
    bad = tmp_path / "plain.xdfz"
    bad.write_bytes(raw)
    with pytest.raises(XdfError, match="not gzip"):
        import_xdf(bad, tmp_path / "bad.h5")
    assert main(["import-xdf", str(bad), str(tmp_path / "bad.h5")]) == 2
    assert "not gzip" in capsys.readouterr().err
    assert not (tmp_path / "bad.h5").exists() and not list(tmp_path.glob(".*"))


# -- storage of any size, and sessions written before ---------------------------------------------
def test_wide_streams_store_labels_as_datasets_and_older_sessions_still_read(tmp_path: Path) -> None:
    narrow, wide = MAX_ATTR_CHANNELS, 64 * 64
    p = tmp_path / "wide.h5"
    with SessionWriter(p) as w:
        a = w.add_stream(
            StreamInfo("EXG", "EXG", channel_labels=[f"E{i}" for i in range(narrow)], nominal_srate_hz=250)
        )
        b = w.add_stream(
            StreamInfo(
                "Pixels",
                "Other",
                channel_labels=[f"px{i}" for i in range(wide)],
                channel_units=["au"] * wide,
                nominal_srate_hz=30,
            )
        )
        w.append(a, np.ones((5, narrow), np.float32), np.arange(5) / 250)
        w.append(b, np.arange(3 * wide, dtype=np.float32).reshape(3, wide), np.arange(3) / 30)
    with validate_session(p) as s:
        assert s.format_version == 3
        exg, px = s.streams["EXG"], s.streams["Pixels"]
        assert "channel_labels" in exg.h5group.attrs and "channel_labels" not in exg.h5group  # narrow: attributes
        assert px.info.channel_labels[-1] == f"px{wide - 1}" and px.info.channel_units[0] == "au"
        assert px.info.channel_types == ["Other"] * wide
        assert px.channel(f"px{wide - 1}")[2] == 3 * wide - 1
        with pytest.raises(SessionError, match=r"\.\.\. \(4096 channels\)"):
            px.channel("nope")  # the message does not list 4,096 labels
    # a session as mecg wrote it before (v2, labels as attributes) still reads, and a v2 file stays v2
    old = tmp_path / "old.h5"
    with SessionWriter(old) as w:
        k = w.add_stream(StreamInfo("ECG", "ECG", channel_labels=["ECG"], channel_units=["mV"], nominal_srate_hz=500))
        w.append(k, np.zeros((4, 1), np.float32), np.arange(4) / 500)
    with h5py.File(old, "r") as f:
        assert f.attrs["format_version"] == 2 and list(f["streams/ECG"].attrs["channel_labels"]) == ["ECG"]
        assert sorted(f["streams/ECG"]) == ["clock_offsets", "data", "timestamps"]
    with validate_session(old) as s:
        assert s.format_version == 2 and s.streams["ECG"].info.channel_units == ["mV"]
    # a damaged label dataset is an error naming it
    with h5py.File(p, "r+") as f:
        del f["streams/Pixels/channel_units"]
        f["streams/Pixels"].create_dataset("channel_units", data=np.zeros((2, 2)))
    with pytest.raises(SessionError, match="channel_units"):
        open_session(p)
