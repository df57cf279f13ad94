"""CMCL-Net: branch shapes and gradients, learning, checkpoints, CCF, spot output, determinism."""

from __future__ import annotations

import pickle
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from mecg.cli.main import main
from mecg.model.cmclnet import CMCLConfig, CMCLNet
from mecg.model.evaluate import read_predictions
from mecg.model.frontend import limit_processes
from mecg.model.pipeline import fit, load_sessions, save
from mecg.model.spots import Spot
from mecg.model.spotter import CcfRule, apply_ccf
from mecg.model.train import ModelError, TrainConfig, average_precision, load_checkpoint, predict, train_model
from mecg.model.windows import SessionData, WindowParams
from mecg.synth import Subject, Trial, TrialConfig, write_trial
from mecg.synth.expressions import Expression

torch.set_num_threads(1)  # as tests/conftest.py sets before every test


def _batch(b: int = 4) -> dict[str, torch.Tensor]:
    c = CMCLConfig()
    g = torch.Generator().manual_seed(0)
    return {
        "feats": torch.randn(b, c.time_steps, c.n_rois, c.n_roi_features, generator=g),
        "crops": torch.randn(b, c.time_steps, c.n_rois, 2, c.patch, c.patch, generator=g),
        "ecg": torch.randn(b, c.ecg_len, generator=g),
        "hr": torch.randn(b, c.hr_len, generator=g),
        "hand": torch.randn(b, c.n_hand, generator=g),
    }


@pytest.mark.parametrize("mode", ["fusion", "video", "ecg"])
def test_shapes_and_gradients_of_every_branch(mode: str) -> None:
    torch.manual_seed(0)
    model = CMCLNet(CMCLConfig(mode=mode))
    batch = {k: v.requires_grad_(True) for k, v in _batch().items()}
    logit, emb = model(batch)
    assert logit.shape == (4,) and emb.shape == (4, 32)
    assert torch.allclose(emb.norm(dim=1), torch.ones(4), atol=1e-5)
    (logit.sum() + emb.sum()).backward()
    used = {
        "fusion": ["feats", "crops", "ecg", "hr", "hand"],
        "video": ["feats", "crops"],
        "ecg": ["ecg", "hr", "hand"],
    }[mode]
    for k in used:
        assert batch[k].grad is not None and batch[k].grad.abs().sum() > 0, k
    for k in set(batch) - set(used):
        assert batch[k].grad is None
    assert all(p.grad is not None for n, p in model.named_parameters() if p.requires_grad and "pos_" not in n)


@pytest.fixture(scope="module")
def separable(tmp_path_factory: pytest.TempPathFactory) -> list[SessionData]:
    """Two subjects whose MEs are large and frequent: a set a working learner must separate.

    15 s at 96 x 72 px (four MEs each): the held-out AP stays >= 0.97 against a chance level of 0.07
    (seeds 1-3), as with 30 s at 160 x 120, for half the CPU of the features and the training.
    """
    tmp = tmp_path_factory.mktemp("sep")
    cfg = TrialConfig(duration_s=15.0, fps=30.0, width=96, height=72, blinks_per_min=4.0)
    paths = []
    for s in range(2):
        mes = [
            Expression("ME", t, t + 0.15, t + 0.4, (("AU12", 4.0), ("AU4", 3.0)), "RL", "happiness")
            for t in np.arange(2.0 + s * 0.7, 13.0, 3.1)
        ]
        paths.append(
            write_trial(
                Trial(Subject.random(f"S0{s + 1}", 10 + s), 0, cfg, expressions=mes), tmp / f"sub-{s + 1:02d}.h5"
            )
        )
    # the front end's pieces one after another in this process: the same features, no pool of processes to start
    limit_processes(1)
    try:
        return load_sessions(paths, WindowParams(time_steps=8), log=lambda m: None)
    finally:
        limit_processes(None)


@pytest.mark.slow
def test_training_lowers_the_loss_and_beats_chance(separable: list[SessionData]) -> None:
    cfg = CMCLConfig(mode="fusion", time_steps=8)
    tc = TrainConfig(epochs=4, pretrain_epochs=1, batch_size=32, seed=1, log=False, max_negatives_per_session=80)
    res = train_model(separable[:1], separable[1:], cfg, tc)
    losses = [h["loss"] for h in res.history if h["phase"] == "finetune"]
    assert losses[-1] < losses[0]
    d = separable[1]
    centers = np.arange(10, d.n - 10, 3)
    labels = d.labels(centers)
    keep = labels >= 0
    ap = average_precision(predict(res.model, d, centers[keep], "cpu"), labels[keep])
    assert ap > 2 * labels[keep].mean()  # well above chance on the held-out subject


@pytest.mark.slow
def test_checkpoint_round_trip_spot_eval_and_refusals(
    separable: list[SessionData], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    tc = TrainConfig(epochs=1, pretrain_epochs=0, batch_size=32, seed=0, log=False, max_negatives_per_session=40)
    model, spot = fit(separable, CMCLConfig(time_steps=8), tc)
    ck = tmp_path / "m.pt"
    save(ck, model, separable[0].params, separable[0].frontend_params, spot, tc, separable)
    loaded_ck = load_checkpoint(ck)
    loaded = loaded_ck.model
    assert loaded_ck.window == separable[0].params and loaded_ck.spot["threshold"] == spot["threshold"]
    assert loaded_ck.frontend == separable[0].frontend_params and loaded_ck.mode == "fusion"
    x = {k: torch.from_numpy(v).float() for k, v in separable[0].batch(np.array([50, 60])).items()}
    model.eval()
    torch.testing.assert_close(loaded(x)[0], model(x)[0])
    folder = Path(separable[0].path).parent
    out = tmp_path / "spots.csv"
    assert main(["spot", str(folder), "--model", str(ck), "--out", str(out)]) == 0
    header = out.read_text().splitlines()[0]
    assert header == "session,onset,apex,offset,score,type,kept_by_ccf"
    read_predictions(out)
    assert main(["eval", "--pred", str(out), "--truth", str(folder)]) == 0
    capsys.readouterr()
    # an unsafe pickle (arbitrary object) and a tampered file are refused with a clear error
    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"format": "mecg-cmclnet", "obj": Path("/")}))
    with pytest.raises(ModelError, match="unsafe"):
        load_checkpoint(evil)
    tampered = tmp_path / "t.pt"
    blob = torch.load(ck, weights_only=True)
    blob["state_dict"] = {k: v[:1] if v.ndim else v for k, v in blob["state_dict"].items()}
    torch.save(blob, tampered)
    with pytest.raises(ModelError, match="do not fit"):
        load_checkpoint(tampered)
    assert main(["spot", str(folder), "--model", str(evil), "--out", str(out)]) == 2
    assert "refusing" in capsys.readouterr().err


class _FakeData:
    has_ecg = True
    fps = 100.0
    mean_hrs = 2.0

    def __init__(self, hrs: np.ndarray) -> None:
        self.hrs = hrs


def test_ccf_on_hand_made_hrs_curves() -> None:
    hrs = np.full(1000, 1.0)
    hrs[300] = 4.5  # a sharp HRS peak 20 frames (0.2 s) from the first apex
    hrs[700] = 3.9
    rows = [Spot("s", a - 10, a, a + 20, 1.0, "ME") for a in (320, 700, 900)]
    windowed = CcfRule("window", 0.25, "session")
    out = apply_ccf(rows, _FakeData(hrs), eta=2.0, rule=windowed)  # threshold: 2 x 2.0 = 4.0 bpm/s
    assert [r.kept_by_ccf for r in out] == [True, False, False]
    assert [r.hrs_apex_bpm_per_s for r in out] == [4.5, 3.9, 1.0]
    assert [r.kept_by_ccf for r in apply_ccf(rows, _FakeData(hrs), eta=1.9, rule=windowed)] == [True, True, False]
    # the paper's rule reads the HRS at the apex frame only: the peak 0.2 s away no longer counts
    at_apex = apply_ccf(rows, _FakeData(hrs), eta=1.9, rule=CcfRule("apex", trial="session"))
    assert [r.hrs_apex_bpm_per_s for r in at_apex] == [1.0, 3.9, 1.0]
    assert [r.kept_by_ccf for r in at_apex] == [False, True, False]
    nodata = _FakeData(hrs)
    nodata.has_ecg = False
    assert apply_ccf(rows, nodata, eta=2.0) == rows


@pytest.mark.slow
def test_training_is_deterministic_with_a_seed(separable: list[SessionData]) -> None:
    cfg = CMCLConfig(mode="video", time_steps=8)
    tc = TrainConfig(epochs=1, pretrain_epochs=1, batch_size=32, seed=7, log=False, max_negatives_per_session=40)
    a = train_model(separable[:1], [], cfg, tc).model.state_dict()
    b = train_model(separable[:1], [], cfg, replace(tc)).model.state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k])


def test_train_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["train", str(tmp_path), "--out", str(tmp_path / "m.pt")]) == 2
    assert "no .h5" in capsys.readouterr().err
    assert main(["spot", str(tmp_path), "--model", str(tmp_path / "none.pt"), "--out", "x.csv"]) == 2


@pytest.mark.slow
def test_torchrun_ddp_trains_on_two_processes(separable: list[SessionData], tmp_path: Path) -> None:
    """Multi-process training (DDP, gloo on CPU) through torchrun, as a lab would run it on GPUs."""
    import subprocess
    import sys

    folder = Path(separable[0].path).parent
    out = tmp_path / "ddp.pt"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "mecg",
        "train",
        str(folder),
        "--out",
        str(out),
        "--epochs",
        "1",
        "--pretrain-epochs",
        "1",
        "--threads",
        "1",
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "on 2 processes" in r.stderr
    assert load_checkpoint(out).mode == "fusion"


def test_windows_for_live_spotting_see_the_ecg_only_up_to_their_lookahead(separable: list[SessionData]) -> None:
    """``WindowParams(ecg_lookahead_s=S)`` (``mecg train --live-lookahead S``) gives the windows a live spotter waiting
    S s sees: the ECG up to S s after the centre, then the last sample repeated; the HR curve up to the last beat
    found by then, the mean HR after; the video inputs unchanged."""
    import copy

    from mecg.model.checkpoint import check_window

    d = separable[0]
    live = copy.copy(d)
    live.params = replace(d.params, ecg_lookahead_s=1.0)
    rate, n_hr = d.params.ecg_rate_hz, round(d.params.hr_context_s * d.params.hr_rate_hz)
    cut_hr = 0
    for c in range(60, d.n - 60, 37):
        full, cut = d.window(c), live.window(c)
        for k in ("feats", "crops", "hand"):
            np.testing.assert_array_equal(cut[k], full[k])
        n = len(full["ecg"])
        seen = n // 2 + round(1.0 * rate)
        np.testing.assert_array_equal(cut["ecg"][: seen - 2], full["ecg"][: seen - 2])
        assert np.all(cut["ecg"][seen + 1 :] == cut["ecg"][-1]) and not np.all(
            full["ecg"][seen + 1 :] == full["ecg"][-1]
        )
        # the HR curve ends at its last point (the middle of the last two beats found 0.15 s before centre + 1 s)
        tc = d.frame_t[c]
        th = tc - d.params.hr_context_s / 2 + np.arange(n_hr) / d.params.hr_rate_hz
        seen_beats = d.peaks_s[d.peaks_s <= tc + 1.0 - 0.15]
        after = th > 0.5 * (seen_beats[-1] + seen_beats[-2])
        np.testing.assert_array_equal(cut["hr"][~after], full["hr"][~after])
        assert np.all(cut["hr"][after] == 0.0)  # the mean HR, as the live spotter fills it
        cut_hr += bool(after.any())
    assert cut_hr > 0
    # the checkpoint keeps it (older checkpoints have none), within bounds
    cfg = CMCLConfig(time_steps=8)
    assert check_window({**live.params.as_dict()}, cfg, "m.pt").ecg_lookahead_s == 1.0
    assert (
        check_window({k: v for k, v in d.params.as_dict().items() if k != "ecg_lookahead_s"}, cfg, "m.pt") == d.params
    )
    with pytest.raises(ModelError, match="ecg_lookahead_s"):
        check_window({**live.params.as_dict(), "ecg_lookahead_s": -1.0}, cfg, "m.pt")
