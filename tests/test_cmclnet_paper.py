"""CMCL-Net's presets: the paper's network at its size beside the small default, from one configuration.

Parameter counts as documented, the inputs each preset reads, the whole-crop flow images of the
front end (cached apart from the small preset's features), checkpoints that record and check the
preset (old small checkpoints still load), and the paper preset trained and used end to end
through the CLI on a tiny input.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import mecg.model.frontend as frontend_module
from mecg.cli.main import main
from mecg.errors import MecgError
from mecg.model.cmclnet import (
    HAND_FEATURES,
    PAPER_HAND_FEATURES,
    CMCLConfig,
    CMCLNet,
    PlaneAttention,
    count_parameters,
    preset_config,
)
from mecg.model.frontend import FrontEndParams, default_k, frontend_features
from mecg.model.live_spotter import LiveSpotParams, LiveSpotter
from mecg.model.train import ModelError, load_checkpoint, save_checkpoint
from mecg.model.windows import N_HAND, WindowParams
from mecg.synth import Subject, Trial, TrialConfig, write_trial
from mecg.synth.expressions import Expression

torch.set_num_threads(1)  # as tests/conftest.py sets before every test
DOC = Path(__file__).resolve().parents[1] / "docs" / "spotting.md"
SPOT = {"me_rise_s": 0.1, "me_fall_s": 0.2, "threshold": 0.5, "threshold_ccf": 0.4, "eta": 2.0, "val_ap": 0.3}
#: The configuration keys checkpoints held before presets existed.
OLD_CONFIG_KEYS = (
    "mode n_rois n_roi_features patch time_steps ecg_len hr_len n_hand dim heads layers dropout embed_dim".split()
)


def _digest(model: torch.nn.Module) -> str:
    text = ";".join(f"{k}:{tuple(v.shape)}" for k, v in model.state_dict().items())
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def test_parameter_counts_are_the_documented_ones() -> None:
    counts = {p: count_parameters(preset_config(p)) for p in ("small", "paper")}
    assert counts == {"small": 356_061, "paper": 15_543_924}
    doc = DOC.read_text()
    for n in counts.values():
        assert f"{n:,}" in doc
    # the paper preset is I3D-sized: its video branch alone holds over 12 M parameters
    with torch.device("meta"):
        net = CMCLNet(preset_config("paper"))
    assert 12_000_000 < sum(p.numel() for p in net.video.parameters()) < 13_000_000
    # the small preset's weights keep the layout checkpoints were written with before presets
    with torch.device("meta"):
        assert _digest(CMCLNet(CMCLConfig())) == "2b65715d7e3e41e2"


@pytest.mark.parametrize("mode", ["fusion", "video", "ecg"])
def test_the_paper_preset_reads_flow_images_ecg_and_its_hand_features_only(mode: str) -> None:
    torch.manual_seed(0)
    c = preset_config("paper", mode, flow_image=8)
    model = CMCLNet(c)
    g = torch.Generator().manual_seed(0)
    b = 2
    batch = {
        "feats": torch.randn(b, c.time_steps, c.n_rois, c.n_roi_features, generator=g),
        "crops": torch.randn(b, c.time_steps, c.n_rois, 2, c.patch, c.patch, generator=g),
        "image": torch.randn(b, c.time_steps, 2, 8, 8, generator=g),
        "ecg": torch.randn(b, c.ecg_len, generator=g),
        "hr": torch.randn(b, c.hr_len, generator=g),
        "hand": torch.randn(b, N_HAND, generator=g),
    }
    batch = {k: v.requires_grad_(True) for k, v in batch.items()}
    logit, emb = model(batch)
    assert logit.shape == (b,) and emb.shape == (b, c.embed_dim)
    (logit.sum() + emb.sum()).backward()
    used = set(c.inputs)
    assert used == {"fusion": {"image", "ecg", "hand"}, "video": {"image"}, "ecg": {"ecg", "hand"}}[mode]
    for k, v in batch.items():
        assert (v.grad is not None and v.grad.abs().sum() > 0) == (k in used), k
    if "hand" in used:  # HRS and HRS / trial mean (what the CCF tests) are not inputs of the paper preset
        grad = batch["hand"].grad.abs().sum(dim=0)
        for i, name in enumerate(HAND_FEATURES):
            assert (grad[i] > 0) == (name in PAPER_HAND_FEATURES), name
    assert len(HAND_FEATURES) == N_HAND


def test_coordinate_attention_gates_rows_and_columns_of_the_image_plane() -> None:
    torch.manual_seed(0)
    ca = PlaneAttention(16).eval()
    x = torch.rand(1, 16, 3, 6, 5)
    with torch.no_grad():
        y = ca(x)
    assert y.shape == x.shape
    gate = y / x  # per position: the product of a row gate and a column gate, in (0, 1)
    assert bool(((gate > 0) & (gate < 1)).all())
    assert float(gate.std(dim=3).mean()) > 1e-4 and float(gate.std(dim=4).mean()) > 1e-4  # varies over H and W
    row, col = gate[..., :1], gate[..., :1, :]
    torch.testing.assert_close(gate, row * col / gate[..., :1, :1], rtol=1e-4, atol=1e-6)  # rows x columns


def test_configurations_the_presets_cannot_take_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 8 px"):
        preset_config("paper", flow_image=4)
    with pytest.raises(ValueError, match="reads no flow images"):
        CMCLConfig(flow_image=32)
    with pytest.raises(ValueError, match="preset must be one of"):
        preset_config("huge")


def _save(path: Path, model: CMCLNet, window: WindowParams, edit: dict | None = None) -> Path:
    save_checkpoint(path, model, window, FrontEndParams(k_frames=5), SPOT, {"note": "test"})
    if edit:
        ck = torch.load(path, weights_only=True)
        for key, fn in edit.items():
            ck[key] = json.dumps(fn(json.loads(ck[key])))
        torch.save(ck, path)
    return path


def test_a_checkpoint_from_before_presets_loads_as_small(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = CMCLNet(CMCLConfig(time_steps=8, dim=16, heads=2, layers=1, embed_dim=8)).eval()
    old = _save(
        tmp_path / "old.pt",
        model,
        WindowParams(time_steps=8),
        {
            "config": lambda d: {k: d[k] for k in OLD_CONFIG_KEYS},
            "window": lambda d: {k: v for k, v in d.items() if k != "flow_image"},
        },
    )
    assert set(json.loads(torch.load(old, weights_only=True)["config"])) == set(OLD_CONFIG_KEYS)
    ck = load_checkpoint(old)
    assert ck.preset == "small" and ck.window.flow_image == 0 and ck.mode == "fusion"
    for k, v in model.state_dict().items():
        torch.testing.assert_close(ck.model.state_dict()[k], v)


def test_a_paper_checkpoint_records_its_preset_and_bad_ones_are_refused(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = CMCLNet(preset_config("paper", "ecg", flow_image=8, tcn_levels=2, tcn_channels=8, dim=16, heads=2))
    good = _save(tmp_path / "p.pt", model, WindowParams())
    ck = load_checkpoint(good)
    assert ck.preset == "paper" and ck.model.config.tcn_levels == 2 and ck.window.flow_image == 0
    with pytest.raises(MecgError, match="live spotting runs small-preset models"):  # refused before recording
        LiveSpotter("unused", LiveSpotParams(method="cmclnet"), ck)
    cases = {
        "preset 'huge' is not one of": {"config": lambda d: {**d, "preset": "huge"}},
        "tcn_levels = 40 is out of bounds": {"config": lambda d: {**d, "tcn_levels": 40}},
        "flow images of at least 8 px": {"config": lambda d: {**d, "flow_image": 2}},
        "do not fit": {"config": lambda d: {**d, "preset": "small", "flow_image": 0}},
        "windows hold 16 px flow images but the network reads 0": {"window": lambda d: {**d, "flow_image": 16}},
    }
    for i, (message, edit) in enumerate(cases.items()):
        with pytest.raises(ModelError, match=message):
            load_checkpoint(_save(tmp_path / f"bad{i}.pt", model, WindowParams(), edit))
    video = CMCLNet(preset_config("paper", "video", flow_image=8, video_width=8, dim=16, heads=2))
    with pytest.raises(ModelError, match="windows hold 0 px flow images but the network reads 8"):
        load_checkpoint(_save(tmp_path / "v.pt", video, WindowParams()))
    assert load_checkpoint(_save(tmp_path / "v8.pt", video, WindowParams(flow_image=8))).window.flow_image == 8


def _sessions(folder: Path, duration_s: float) -> list[Path]:
    """Two subjects, one tiny session each, with an ME every 2 s from 1 s (1.5 s for the second)."""
    cfg = TrialConfig(duration_s=duration_s, fps=30.0, width=160, height=120, blinks_per_min=4.0)
    paths = []
    for s in range(2):
        mes = [
            Expression("ME", t, t + 0.15, t + 0.4, (("AU12", 4.0), ("AU4", 3.0)), "RL", "happiness")
            for t in np.arange(1.0 + s * 0.5, duration_s - 1.0, 2.0)
        ]
        trial = Trial(Subject.random(f"S0{s + 1}", 10 + s), 0, cfg, expressions=mes)
        paths.append(write_trial(trial, folder / f"sub-{s + 1:02d}.h5"))
    return paths


def test_flow_images_are_cached_apart_and_leave_the_small_cache_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _sessions(tmp_path, 2.0)[0]
    params = FrontEndParams(k_frames=default_k(30.0))
    small = frontend_features(path, params, workers=1)
    assert small.image is None
    deriv = path.with_name(path.stem + ".derivatives.hdf5")
    with h5py.File(deriv, "r") as f:
        small_key = f["features/frontend"].attrs["params"]
        assert "frontend_image" not in f["features"]
    paper = frontend_features(path, params, workers=1, image=8)
    assert paper.image.shape == (small.roi.shape[0], 2, 8, 8) and paper.image.dtype == np.float16
    assert float(np.abs(paper.image).max()) > 0
    np.testing.assert_array_equal(paper.roi, small.roi)
    with h5py.File(deriv, "r") as f:
        assert f["features/frontend"].attrs["params"] == small_key  # the small preset's cache is still valid
        assert json.loads(f["features/frontend_image"].attrs["params"])["image"] == 8

    def no_compute(*_a: object, **_k: object) -> None:
        raise AssertionError("computed again instead of read from the cache")

    monkeypatch.setattr(frontend_module, "compute_frontend", no_compute)
    np.testing.assert_array_equal(frontend_features(path, params, workers=1, image=8).image, paper.image)
    assert frontend_features(path, params, workers=1).image is None


def test_train_preset_errors_are_messages_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _sessions(tmp_path, 2.0)
    out = tmp_path / "m.pt"
    assert main(["train", str(tmp_path), "--out", str(out), "--flow-image", "16", "--workers", "1"]) == 2
    assert "the small preset reads none" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["train", str(tmp_path), "--out", str(out), "--preset", "paper", "--flow-image", "4"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["train", str(tmp_path), "--out", str(out), "--preset", "huge"])
    assert exc.value.code == 2
    assert not out.exists()


@pytest.mark.slow
def test_the_paper_preset_trains_on_cpu_and_spots_through_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    _sessions(folder, 3.0)
    model = tmp_path / "paper.pt"
    args = ["--preset", "paper", "--flow-image", "8", "--epochs", "1", "--pretrain-epochs", "0"]
    assert main(["train", str(folder), "--out", str(model), *args, "--workers", "1", "--threads", "1", "--quiet"]) == 0
    assert "(paper preset, fusion;" in capsys.readouterr().err
    ck = load_checkpoint(model)
    assert ck.preset == "paper" and ck.mode == "fusion" and ck.window.flow_image == 8
    assert sum(p.numel() for p in ck.model.parameters()) == count_parameters(preset_config("paper", flow_image=8))
    assert json.loads(torch.load(model, weights_only=True)["config"])["preset"] == "paper"
    out = tmp_path / "spots.csv"
    assert main(["spot", str(folder), "--model", str(model), "--out", str(out), "--workers", "1"]) == 0
    assert out.read_text().splitlines()[0] == "session,onset,apex,offset,score,type,kept_by_ccf"
    with h5py.File(folder / "sub-01.derivatives.hdf5", "r") as f:
        assert f["features/frontend_image/image"].shape[1:] == (2, 8, 8)
