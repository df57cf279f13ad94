"""Checkpoints are checked against a schema before any network is built: each malformed kind is one clear error."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

import mecg.model.train as train_module
from mecg.cli.main import main
from mecg.model.cmclnet import CMCLConfig, CMCLNet
from mecg.model.frontend import FrontEndParams
from mecg.model.train import ModelError, load_checkpoint, save_checkpoint
from mecg.model.windows import WindowParams

SPOT = {"me_rise_s": 0.1, "me_fall_s": 0.2, "threshold": 0.5, "threshold_ccf": 0.4, "eta": 2.0, "val_ap": 0.3}


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ck") / "good.pt"
    model = CMCLNet(CMCLConfig(time_steps=8, dim=16, heads=2, layers=1, embed_dim=8))
    save_checkpoint(path, model, WindowParams(time_steps=8), FrontEndParams(k_frames=5), SPOT, {"note": "test"})
    return path


@pytest.fixture()
def built(monkeypatch: pytest.MonkeyPatch) -> list[CMCLConfig]:
    """Every network load_checkpoint builds for real (the schema check's own ``meta`` build is not one)."""
    made: list[CMCLConfig] = []

    class Spy(CMCLNet):
        def __init__(self, config: CMCLConfig) -> None:
            made.append(config)
            super().__init__(config)

    monkeypatch.setattr(train_module, "CMCLNet", Spy)
    return made


def _json_edit(key: str, **changes: object) -> Callable[[dict], None]:
    def edit(ck: dict) -> None:
        d = json.loads(ck[key])
        d.update(changes)
        ck[key] = json.dumps(d)

    return edit


def _set(key: str, value: object) -> Callable[[dict], None]:
    return lambda ck: ck.__setitem__(key, value)


def _first_weight(fill: float) -> Callable[[dict], None]:
    def edit(ck: dict) -> None:
        k = next(k for k, v in ck["state_dict"].items() if v.is_floating_point() and v.numel() > 1)
        ck["state_dict"][k] = ck["state_dict"][k].clone()
        ck["state_dict"][k].view(-1)[0] = fill

    return edit


MALFORMED: dict[str, tuple[Callable[[dict], None], str]] = {
    "missing spot": (lambda ck: ck.pop("spot"), "has no 'spot'"),
    "missing state_dict": (lambda ck: ck.pop("state_dict"), "has no 'state_dict'"),
    "config not JSON": (_set("config", "{dim: 64"), "'config' is not valid JSON"),
    "config a list": (_set("config", "[1, 2]"), "'config' must be a JSON object"),
    "window not text": (_set("window", 5), "'window' must be JSON text"),
    "unknown config key": (_json_edit("config", wings=2), "unknown config key(s) 'wings'"),
    "negative dim": (_json_edit("config", dim=-16), "config dim = -16 is out of bounds"),
    "dim of 1 TiB": (_json_edit("config", dim=2**20), "config dim = 1048576 is out of bounds"),
    "huge layers": (_json_edit("config", layers=10**9), "config layers = 1000000000 is out of bounds"),
    "zero time steps": (_json_edit("config", time_steps=0), "config time_steps = 0 is out of bounds"),
    "float size": (_json_edit("config", dim=16.5), "config dim must be an integer"),
    "heads do not divide": (_json_edit("config", heads=3), "not a multiple of heads"),
    "bad mode": (_json_edit("config", mode="audio"), "config mode 'audio'"),
    "zero window": (_json_edit("window", window_s=0), "window window_s = 0 is out of bounds"),
    "zero hr rate": (_json_edit("window", hr_rate_hz=0.0), "window hr_rate_hz = 0.0 is out of bounds"),
    "NaN context": (_json_edit("window", ecg_context_s=math.nan), "window ecg_context_s = nan"),
    "steps mismatch": (_json_edit("window", time_steps=16), "the window has 16 time steps but the network reads 8"),
    "unknown window key": (_json_edit("window", stride=3), "unknown window key(s) 'stride'"),
    "frontend zero k": (_json_edit("frontend", k_frames=0), "frontend k_frames = 0 is out of bounds"),
    "frontend method": (_json_edit("frontend", method="magic"), "frontend method 'magic'"),
    "spot without threshold": (lambda ck: ck.__setitem__("spot", json.dumps({"me_rise_s": 0.1})), "spot has no"),
    "spot threshold 7": (_json_edit("spot", threshold=7), "spot threshold = 7 is out of bounds"),
    "version text": (_set("version", "one"), "checkpoint version 'one'"),
    "newer version": (_set("version", 99), "newer mecg"),
    "weights not a dict": (_set("state_dict", [1, 2]), "'state_dict' must map parameter names to tensors"),
    "NaN weights": (_first_weight(math.nan), "holds NaN or infinite values"),
    "inf weights": (_first_weight(math.inf), "holds NaN or infinite values"),
    "weights of another shape": (
        lambda ck: ck["state_dict"].update({k: v[:1] for k, v in ck["state_dict"].items() if v.ndim}),
        "weights do not fit",
    ),
    "weights missing": (lambda ck: ck["state_dict"].pop(next(iter(ck["state_dict"]))), "weights do not fit"),
    "not a mecg checkpoint": (_set("format", "something-else"), "not a CMCL-Net checkpoint"),
}


def test_the_good_checkpoint_loads(good: Path, built: list[CMCLConfig]) -> None:
    ck = load_checkpoint(good)
    assert len(built) == 1 and ck.window == WindowParams(time_steps=8) and ck.spot == SPOT
    assert ck.frontend_key["k_frames"] == 5 and ck.frontend.k_frames == 5
    assert not ck.model.training


@pytest.mark.parametrize("kind", list(MALFORMED))
def test_each_malformed_checkpoint_is_refused_before_a_model_is_built(
    kind: str, good: Path, tmp_path: Path, built: list[CMCLConfig]
) -> None:
    edit, message = MALFORMED[kind]
    ck = torch.load(good, weights_only=True)
    edit(ck)
    bad = tmp_path / "bad.pt"
    torch.save(ck, bad)
    with pytest.raises(ModelError) as err:
        load_checkpoint(bad)
    assert message in str(err.value)
    assert built == []  # refused before any network was built


def test_a_folder_or_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="is a folder"):
        load_checkpoint(tmp_path)
    with pytest.raises(ModelError, match="does not exist"):
        load_checkpoint(tmp_path / "none.pt")


def test_spot_with_a_malformed_checkpoint_is_a_message_and_exit_2(
    good: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from mecg.synth import Subject, Trial, TrialConfig, write_trial

    write_trial(
        Trial(Subject.random("S01", 1), 0, TrialConfig(duration_s=1.0, fps=30.0, width=64, height=48)),
        tmp_path / "s.h5",
    )
    ck = torch.load(good, weights_only=True)
    _json_edit("config", dim=2**20)(ck)
    bad = tmp_path / "bad.pt"
    torch.save(ck, bad)
    assert main(["spot", str(tmp_path / "s.h5"), "--model", str(bad), "--out", str(tmp_path / "o.csv")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mecg: error:") and "Traceback" not in err and "out of bounds" in err
    assert not (tmp_path / "o.csv").exists()
