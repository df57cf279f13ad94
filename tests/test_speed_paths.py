"""The fast paths give the same answers as the plain ones: partial and threaded frame decoding,
the head-motion fit, the front end's forkserver pool; ``mecg spot --device`` without CUDA."""

from __future__ import annotations

from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest

from mecg.cli.main import main
from mecg.model.face import FaceLayout
from mecg.model.frontend import FrontEndParams, _Cropper, _median, compute_frontend, head_motion, limit_processes
from mecg.session import SessionError, open_session
from mecg.session.checksum import fletcher32
from mecg.synth import Subject, Trial, TrialConfig, write_trial

TINY = TrialConfig(duration_s=6.0, fps=30.0, width=160, height=120, me_per_min=0, mae_per_min=0)


@pytest.fixture(scope="module")
def trial(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_trial(Trial(Subject.random("S01", 3), 0, TINY), tmp_path_factory.mktemp("speed") / "t.h5")


def test_top_rows_and_threads_decode_the_same_pixels(trial: Path) -> None:
    with open_session(trial) as s:
        video = s.stream(kind="video")
        full = video.frames(0, 40)
        assert full.shape == (40, 120, 160)
        top = video.frames(0, 40, rows=50)
        assert top.shape == (40, 50, 160)
        np.testing.assert_array_equal(top, full[:, :50])
        np.testing.assert_array_equal(video.frames(0, 40, threads=3), full)
        np.testing.assert_array_equal(video.frames(5, 40, rows=1000, threads=2), full[5:])
        np.testing.assert_array_equal(video.frames(0, 40), video.data[0:40])  # h5py's own filters agree


def test_a_damaged_frame_is_refused_when_only_its_top_is_read(trial: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.h5"
    bad.write_bytes(trial.read_bytes())
    with h5py.File(bad, "r") as f:
        [key] = [k for k in f["streams"] if f["streams"][k]["data"].ndim == 3]
        info = f["streams"][key]["data"].id.get_chunk_info_by_coord((7, 0, 0))
    with open(bad, "r+b") as fh:  # a flipped byte near the end of frame 7: below the rows read
        fh.seek(info.byte_offset + info.size - 20)
        b = fh.read(1)
        fh.seek(-1, 1)
        fh.write(bytes([b[0] ^ 0xFF]))
    with open_session(bad) as s:
        video = s.stream(kind="video")
        for kwargs in ({"rows": 10}, {"threads": 2}, {}):
            with pytest.raises(SessionError, match="frame 7 fails its checksum"):
                video.frames(0, 20, **kwargs)


def test_head_motion_recovers_an_affine_field_despite_a_local_expression() -> None:
    gy, gx = np.mgrid[0:64, 0:64].astype(np.float32)
    u = 0.3 + 0.01 * gx - 0.02 * gy
    v = -0.2 + 0.02 * gx + 0.01 * gy
    head = np.stack([u, v], axis=-1)
    flow = head.copy()
    flow[10:18, 40:50] += 3.0  # a brow raise: an outlier patch, not head motion
    np.testing.assert_allclose(head_motion(flow), head, atol=1e-4)


def test_pooled_front_end_equals_the_in_process_one(trial: Path) -> None:
    p = FrontEndParams(k_frames=3, face_box=(50, 25, 60, 70))
    with open_session(trial) as s:
        n = s.stream(kind="video").sample_count
        assert n >= 2 * (4 * p.k_frames + 64)  # long enough for two pieces
        pooled = compute_frontend(s, p, workers=2)
        limit_processes(1)
        try:
            serial = compute_frontend(s, p, workers=2)
        finally:
            limit_processes(None)
    np.testing.assert_array_equal(pooled.roi, serial.roi)
    np.testing.assert_array_equal(pooled.crops, serial.crops)
    assert pooled.roi.shape == (n, 12, 4) and np.abs(pooled.roi[: n - 3]).sum() > 0


def test_spot_on_cuda_without_cuda_says_so(trial: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    out = tmp_path / "spots.csv"
    assert main(["spot", str(trial), "--out", str(out), "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert "--device cuda" in err and "CUDA" in err and "--device cpu" in err and "Traceback" not in err
    assert not out.exists()


def _fletcher32_by_definition(buf: bytes) -> int:
    """HDF5's Fletcher32 as its definition reads: running sums of big-endian 16-bit words, folded mod 65535."""
    if len(buf) % 2:
        buf += b"\0"
    w = np.frombuffer(buf, ">u2").astype(np.uint64)
    prefix = np.cumsum(w, dtype=np.uint64)  # exact here: < 2**16 * 2**21 words
    s1, s2 = int(prefix[-1]) if w.size else 0, int(prefix.sum(dtype=np.uint64))
    return (((s2 - 1) % 65535 + 1 if s2 else 0) << 16) | ((s1 - 1) % 65535 + 1 if s1 else 0)


def test_fletcher32_matches_its_definition_at_every_size_and_block_edge() -> None:
    rng = np.random.default_rng(5)
    sizes = [*range(0, 40), 511, 512, 513, 270_001, (1 << 21) - 1, (1 << 21) + 3]
    for n in sizes:
        for buf in (rng.integers(0, 256, n, dtype=np.uint8).tobytes(), b"\xff" * n):
            assert fletcher32(buf) == _fletcher32_by_definition(buf), n


def test_median_helper_is_numpys_median() -> None:
    rng = np.random.default_rng(6)
    for n in range(1, 12):
        x = rng.integers(0, 4, n).astype(np.float64) * 0.1 + rng.random(n) * (n % 3 == 0)
        assert _median(x) == np.median(x)


def test_crop_near_the_border_equals_the_crop_of_a_padded_frame() -> None:
    rng = np.random.default_rng(7)
    frame = rng.integers(0, 256, (120, 160), dtype=np.uint8)
    cropper = _Cropper(FaceLayout.from_face_box(40, 20, 80, 90), 32, compensate=True)
    margin = 400  # the reference pads the whole frame by replication first, so its box never leaves it
    padded = cv2.copyMakeBorder(frame, margin, margin, margin, margin, cv2.BORDER_REPLICATE)
    ref = _Cropper(FaceLayout.from_face_box(40 + margin, 20 + margin, 80, 90), 32, compensate=True)
    assert (ref.cx, ref.cy, ref.side) == (cropper.cx + margin, cropper.cy + margin, cropper.side)
    # inside, past each edge and corner, and wholly outside the frame
    for dx, dy in [
        (0, 0),
        (-70.3, 0),
        (75.6, 0),
        (0, -50.2),
        (0, 61.7),
        (-70, -50),
        (80.4, 60.1),
        (300, 5),
        (-5, -280),
    ]:
        np.testing.assert_array_equal(cropper.crop(frame, dx, dy), ref.crop(padded, dx, dy), err_msg=f"{dx}, {dy}")


def test_a_large_face_shrunk_in_two_steps_matches_the_one_step_crop() -> None:
    """A face box three times the crop is area-averaged by 3 first (OpenCV's fast path) and the warp scales
    by the rest: the same picture as one fractional area resize, at the same place to a tiny fraction of a px."""
    rng = np.random.default_rng(8)
    frame = cv2.GaussianBlur(rng.integers(0, 256, (480, 640), dtype=np.uint8), (0, 0), 4.0)
    frame = cv2.normalize(frame, None, 0, 255, cv2.NORM_MINMAX)  # a face-like range of texture scales
    layout = FaceLayout.from_face_box(150, 40, 350, 380)
    fast = _Cropper(layout, 128, compensate=True)
    plain = _Cropper(layout, 128, compensate=True)
    plain.decimate = 1  # the one-step path
    assert fast.decimate == 3
    for dx, dy in [(0, 0), (3.3, -1.7), (-20.6, 12.2), (200.0, 0.0)]:  # the last one past the frame's edge
        a, b = fast.crop(frame, dx, dy), plain.crop(frame, dx, dy)
        inner = (slice(4, -4), slice(4, -4))
        diff = np.abs(a[inner].astype(float) - b[inner].astype(float)).mean()
        assert diff < 0.08 * b[inner].std(), (dx, dy, diff)  # interpolation differences only (about 1.5 grey levels)
        (sx, sy), _ = cv2.phaseCorrelate(a.astype(np.float32), b.astype(np.float32))
        assert np.hypot(sx, sy) < 0.05, (dx, dy, sx, sy)
    assert fast.rows_needed(480) >= 40 + 380  # rows the box, its margin and the largest shift can touch
