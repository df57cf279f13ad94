"""Video codecs of new recordings (issue #18): ``deflate`` (default) or an hdf5plugin codec.

A file written with ``blosc-lz4``, ``lz4`` or ``zstd`` is read identically by mecg's reader and by
plain h5py with ``import hdf5plugin`` (a fresh interpreter without mecg), records its codec, keeps
HDF5's Fletcher32 so damage is caught, and passes deep validation; deflate files stay as before.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from mecg.cli.main import main
from mecg.session import SessionError, SessionWriter, StreamInfo, check_session, open_session, video_codec

SHAPE = (48, 64)
PLUGINS = ("blosc-lz4", "lz4", "zstd")


def frames(n: int = 9, seed: int = 0) -> np.ndarray:
    """A smooth gradient plus small noise: compressible, and different in every frame."""
    rng = np.random.default_rng(seed)
    base = np.add.outer(np.arange(SHAPE[0]), np.arange(SHAPE[1])).astype(np.int16)
    return np.clip(base[None] + rng.integers(-2, 3, (n, *SHAPE)), 0, 255).astype(np.uint8)


def write(path: Path, codec: str | None, fr: np.ndarray) -> Path:
    kw = {} if codec is None else {"video_codec": codec}
    with SessionWriter(path, subject_id="P-1", **kw) as w:
        key = w.add_stream(StreamInfo("cam", "Video", kind="video", nominal_srate_hz=150.0, frame_shape=SHAPE))
        w.append(key, fr[:4], np.arange(4) / 150.0)  # two appends: chunks of a recorder
        w.append(key, fr[4:], np.arange(4, len(fr)) / 150.0)
    return path


@pytest.mark.parametrize("codec", PLUGINS)
def test_plugin_codec_reads_identically_in_mecg_and_plain_h5py(tmp_path: Path, codec: str) -> None:
    fr = frames()
    path = write(tmp_path / f"{codec}.h5", codec, fr)
    with open_session(path) as s:
        cam = s.stream(kind="video")
        assert cam.h5group.attrs["video_codec"] == codec
        assert video_codec.codec_of(cam.h5group["data"]) == codec
        assert cam.h5group["data"].fletcher32
        np.testing.assert_array_equal(cam.frames(), fr)
        np.testing.assert_array_equal(cam.frames(2, 7, rows=10, threads=2), fr[2:7, :10])
        fingerprint = s.checksum()  # what binds derivatives to the recording (chunk layout and Fletcher32s)
    other = write(tmp_path / f"{codec}-other.h5", codec, frames(seed=5))
    with open_session(path) as s, open_session(other) as s2:
        assert s.checksum() == fingerprint and len(fingerprint) >= 16 and s2.checksum() != fingerprint
    rep, s = check_session(path, deep=True)
    assert rep.valid and rep.streams[0].frames_decoded == len(fr)
    s.close()
    # plain h5py in a fresh interpreter (no mecg): readable after `import hdf5plugin`, not before
    code = (
        "import sys, h5py, numpy as np\n"
        "f = h5py.File(sys.argv[1], 'r')\n"
        "try:\n    f['streams/cam/data'][0]\n    before = 'read'\nexcept OSError:\n    before = 'refused'\n"
        "import hdf5plugin\n"
        "print(before, f['streams/cam/data'][...].astype(np.int64).sum())\n"
    )
    env = {"PATH": "/usr/bin:/bin", "HDF5_PLUGIN_PATH": str(tmp_path / "none")}
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, env=env, check=True)
    before, total = out.stdout.split()
    assert before == "refused" and int(total) == int(fr.astype(np.int64).sum())


def test_default_stays_deflate_and_reads_as_before(tmp_path: Path) -> None:
    fr = frames(seed=1)
    path = write(tmp_path / "deflate.h5", None, fr)
    with h5py.File(path, "r") as f:
        d = f["streams/cam/data"]
        assert d.compression == "gzip" and d.fletcher32 and video_codec.codec_of(d) == "deflate"
        assert f["streams/cam"].attrs["video_codec"] == "deflate"
    with open_session(path) as s:
        np.testing.assert_array_equal(s.stream(kind="video").frames(), fr)


def test_damaged_plugin_frame_is_caught(tmp_path: Path) -> None:
    fr = frames(seed=2)
    path = write(tmp_path / "bad.h5", "blosc-lz4", fr)
    with h5py.File(path, "r") as f:
        info = f["streams/cam/data"].id.get_chunk_info_by_coord((3, 0, 0))
    raw = bytearray(path.read_bytes())
    raw[info.byte_offset + info.size // 2] ^= 0x40
    path.write_bytes(bytes(raw))
    with open_session(path) as s:
        cam = s.stream(kind="video")
        np.testing.assert_array_equal(cam.frames(0, 3), fr[:3])  # the frames before it still read
        with pytest.raises(SessionError):
            cam.frames(3, 4)
    rep, s = check_session(path, deep=True)
    assert not rep.valid
    if s is not None:
        s.close()


def test_unknown_codec_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SessionError, match="unknown video codec 'png'; choose one of deflate, blosc-lz4"):
        SessionWriter(tmp_path / "x.h5", video_codec="png")
    assert not (tmp_path / "x.h5").exists()


def test_record_video_codec_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "rec.h5"
    argv = ["record", "--simulate", "--duration", "2", "--fps", "30", "--size", "64x48", "--out", str(out)]
    rc = main([*argv, "--video-codec", "lz4", "--quiet", "--json"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert json.loads(captured.out)["complete"]
    rep, s = check_session(out, deep=True)
    assert rep.valid and s is not None
    with s:
        cam = s.streams["FaceCamera"]
        assert cam.h5group.attrs["video_codec"] == "lz4" and cam.sample_count > 10
        assert cam.frames(0, 3).shape == (3, 48, 64)
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--overwrite", "--video-codec", "png"])
    assert exc.value.code == 2 and "invalid choice: 'png'" in capsys.readouterr().err


def test_cli_choices_match_the_codecs() -> None:
    import argparse

    from mecg.cli.record import add_arguments

    p = argparse.ArgumentParser()
    add_arguments(p)
    action = next(a for a in p._actions if a.dest == "video_codec")
    assert tuple(action.choices) == video_codec.CODECS and action.default == video_codec.DEFAULT_CODEC
