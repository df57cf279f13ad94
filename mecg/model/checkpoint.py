"""The checkpoint schema: what a CMCL-Net checkpoint must hold, checked before any network is built.

A checkpoint is a dict loaded with ``torch.load(weights_only=True)``::

    format "mecg-cmclnet", version int, state_dict {name: tensor}, train JSON (free),
    config JSON (CMCLConfig), window JSON (WindowParams), frontend JSON (FrontEndParams key),
    spot JSON (threshold, me_rise_s, me_fall_s; optional threshold_ccf, eta, thresholds_ccf {eta: threshold},
    eta_chosen, ccf {hrs, window_s, trial}, threshold_choice; checkpoints before per-eta thresholds
    hold threshold_ccf alone, tuned for their eta)

:func:`check_checkpoint` refuses, with one :class:`ModelError` naming the field and the fix: a
missing key, text that is not JSON, an unknown configuration key, a value of the wrong type, a
size or window parameter outside its bounds (zero, negative, or large enough to exhaust memory),
weights that are not finite, and weights whose names or shapes do not fit the network the
configuration describes. The shapes are compared on PyTorch's ``meta`` device, which allocates
nothing, so the real network is only built for a checkpoint whose weights fit it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields
from typing import Any

import torch

from mecg.errors import MecgError
from mecg.model.cmclnet import MODES, PRESETS, CMCLConfig, CMCLNet
from mecg.model.face import ROI_NAMES
from mecg.model.frontend import FEATURES, FLOW_METHODS, FrontEndParams
from mecg.model.windows import N_HAND, WindowParams

FORMAT = "mecg-cmclnet"
CHECKPOINT_VERSION = 1
REQUIRED_KEYS = ("format", "version", "state_dict", "config", "window", "frontend", "spot")

#: Inclusive bounds of the integer sizes of :class:`CMCLConfig` (the front end fixes three of them).
CONFIG_INTS: dict[str, tuple[int, int]] = {
    "n_rois": (len(ROI_NAMES), len(ROI_NAMES)),
    "n_roi_features": (len(FEATURES), len(FEATURES)),
    "patch": (1, 64),
    "time_steps": (2, 512),
    "ecg_len": (1, 100_000),
    "hr_len": (1, 10_000),
    "n_hand": (N_HAND, N_HAND),
    "dim": (8, 1024),
    "heads": (1, 64),
    "layers": (1, 32),
    "embed_dim": (1, 1024),
    "flow_image": (0, 128),
    "video_width": (4, 256),
    "tcn_channels": (4, 1024),
    "tcn_levels": (1, 12),
}
#: Bounds of :class:`WindowParams` (s, Hz, steps); the sample counts they imply are bounded too.
WINDOW_FLOATS: dict[str, tuple[float, float]] = {
    "window_s": (0.01, 10.0),
    "ecg_context_s": (0.1, 60.0),
    "ecg_rate_hz": (1.0, 2000.0),
    "hr_context_s": (0.1, 60.0),
    "hr_rate_hz": (0.5, 100.0),
}
WINDOW_TIME_STEPS = CONFIG_INTS["time_steps"]
MAX_CONTEXT_SAMPLES = 100_000
#: Front-end parameters (frames, px).
FRONTEND_INTS: dict[str, tuple[int, int]] = {"k_frames": (1, 1000), "crop_size": (16, 2048), "patch": (1, 64)}
#: Spotting parameters: probabilities and durations (s).
SPOT_FLOATS: dict[str, tuple[float, float]] = {
    "threshold": (0.0, 1.0),
    "me_rise_s": (0.0, 10.0),
    "me_fall_s": (0.0, 10.0),
}
#: Largest network accepted (parameters): far above any CMCL-Net mecg trains (0.36 M small, 15.5 M paper).
MAX_PARAMETERS = 200_000_000


class ModelError(MecgError):
    """A checkpoint cannot be used (missing, unsafe, malformed, or made for other features)."""


@dataclass
class CheckedCheckpoint:
    """The parts of a checkpoint that passed :func:`check_checkpoint`."""

    config: CMCLConfig
    window: WindowParams
    frontend: dict
    spot: dict
    state_dict: dict[str, torch.Tensor]


@dataclass(frozen=True)
class Checkpoint:
    """A loaded, checked CMCL-Net checkpoint: the network and everything needed to spot with it.

    Attributes
    ----------
    model : CMCLNet
        The network in eval mode, on the device it was loaded to.
    window : WindowParams
        The windows it reads (durations in s, rates in Hz).
    frontend : FrontEndParams
        The front-end parameters its video features were made with (``k_frames`` sets the frame rate it fits).
    frontend_key : dict
        The checkpoint's front-end record as stored (the parameters plus the front end's version).
    spot : dict
        Spotting parameters: ``threshold`` (no CCF) and ``thresholds_ccf`` ({eta: threshold}; probabilities,
        0-1; None for a video-only model; older checkpoints hold one ``threshold_ccf`` tuned for ``eta``),
        ``ccf`` (the CCF rule they were tuned with), ``me_rise_s`` and ``me_fall_s`` (apex to onset / offset,
        s), ``eta``, ``eta_chosen``, ``threshold_choice``, ``val_ap``.
    """

    model: CMCLNet
    window: WindowParams
    frontend: FrontEndParams
    frontend_key: dict
    spot: dict

    @property
    def mode(self) -> str:
        """The inputs it was trained on: ``"fusion"``, ``"video"`` or ``"ecg"``."""
        return self.model.config.mode

    @property
    def preset(self) -> str:
        """The architecture: ``"small"`` or ``"paper"`` (checkpoints from before presets are ``"small"``)."""
        return self.model.config.preset

    def features_notice(self) -> str | None:
        """A notice when the model was trained on features of another front-end version than this mecg
        computes (same parameters, slightly different numbers: its thresholds were tuned on the others)."""
        from mecg.model.frontend import FRONTEND_VERSION

        trained = self.frontend_key.get("version")
        if trained == FRONTEND_VERSION:
            return None
        return (
            f"notice: the model was trained on features of front-end version {trained if trained else 'unknown'}; "
            f"this mecg computes version {FRONTEND_VERSION} (same parameters, slightly different numbers): train "
            "it again for thresholds tuned on these features"
        )


def _json(ck: dict, key: str, where: str) -> dict:
    text = ck[key]
    if not isinstance(text, str):
        raise ModelError(f"{where}: '{key}' must be JSON text, got {type(text).__name__}; {_RETRAIN}")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelError(f"{where}: '{key}' is not valid JSON ({exc.msg} at character {exc.pos}); {_RETRAIN}") from None
    if not isinstance(value, dict):
        raise ModelError(f"{where}: '{key}' must be a JSON object, got {type(value).__name__}; {_RETRAIN}")
    return value


_RETRAIN = "the file is damaged or was not written by `mecg train`: train the model again"


def _int(value: Any, name: str, lo: int, hi: int, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ModelError(f"{where}: {name} must be an integer, got {value!r}; {_RETRAIN}")
    if not lo <= value <= hi:
        allowed = f"{lo}" if lo == hi else f"{lo}-{hi}"
        raise ModelError(f"{where}: {name} = {value} is out of bounds (allowed: {allowed}); {_RETRAIN}")
    return value


def _float(value: Any, name: str, lo: float, hi: float, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ModelError(f"{where}: {name} must be a number, got {value!r}; {_RETRAIN}")
    if not (math.isfinite(value) and lo <= value <= hi):
        raise ModelError(f"{where}: {name} = {value} is out of bounds (allowed: {lo:g} to {hi:g}); {_RETRAIN}")
    return float(value)


def _known_keys(d: dict, allowed: set[str], what: str, where: str) -> None:
    unknown = sorted(set(d) - allowed)
    if unknown:
        raise ModelError(
            f"{where}: unknown {what} key(s) {', '.join(map(repr, unknown))} (known: {', '.join(sorted(allowed))}); "
            "a newer mecg may have written it: upgrade mecg, or train the model again"
        )


def check_config(d: dict, where: str) -> CMCLConfig:
    """The network configuration, every size within :data:`CONFIG_INTS` (no ``preset``: ``small``, as before)."""
    _known_keys(d, {f.name for f in fields(CMCLConfig)}, "config", where)
    mode = d.get("mode", "fusion")
    if mode not in MODES:
        raise ModelError(f"{where}: config mode {mode!r} is not one of {', '.join(MODES)}; {_RETRAIN}")
    preset = d.get("preset", "small")
    if preset not in PRESETS:
        raise ModelError(f"{where}: config preset {preset!r} is not one of {', '.join(PRESETS)}; {_RETRAIN}")
    kw: dict[str, Any] = {"mode": mode, "preset": preset}
    for name, (lo, hi) in CONFIG_INTS.items():
        if name in d:
            kw[name] = _int(d[name], f"config {name}", lo, hi, where)
    if "dropout" in d:
        kw["dropout"] = _float(d["dropout"], "config dropout", 0.0, 0.99, where)
    try:
        c = CMCLConfig(**kw)
    except ValueError as exc:  # sizes that do not fit the preset (e.g. a paper network without flow images)
        raise ModelError(f"{where}: config: {exc}; {_RETRAIN}") from None
    if c.dim % c.heads:
        raise ModelError(f"{where}: config dim {c.dim} is not a multiple of heads {c.heads}; {_RETRAIN}")
    return c


def check_window(d: dict, config: CMCLConfig, where: str) -> WindowParams:
    """The window parameters, within :data:`WINDOW_FLOATS`, with as many steps as the network reads."""
    _known_keys(d, {f.name for f in fields(WindowParams)}, "window", where)
    kw: dict[str, Any] = {
        n: _float(d[n], f"window {n}", lo, hi, where) for n, (lo, hi) in WINDOW_FLOATS.items() if n in d
    }
    if "time_steps" in d:
        kw["time_steps"] = _int(d["time_steps"], "window time_steps", *WINDOW_TIME_STEPS, where)
    if "flow_image" in d:
        kw["flow_image"] = _int(d["flow_image"], "window flow_image", *CONFIG_INTS["flow_image"], where)
    if d.get("ecg_lookahead_s") is not None:  # a model trained for live spotting
        kw["ecg_lookahead_s"] = _float(d["ecg_lookahead_s"], "window ecg_lookahead_s", 0.05, 30.0, where)
    w = WindowParams(**kw)
    wanted = config.flow_image if "image" in config.inputs else 0
    if w.flow_image != wanted:
        raise ModelError(
            f"{where}: the windows hold {w.flow_image} px flow images but the network reads {wanted} px; {_RETRAIN}"
        )
    if w.time_steps != config.time_steps:
        raise ModelError(
            f"{where}: the window has {w.time_steps} time steps but the network reads {config.time_steps}; {_RETRAIN}"
        )
    for ctx, rate in (("ecg_context_s", "ecg_rate_hz"), ("hr_context_s", "hr_rate_hz")):
        n = round(getattr(w, ctx) * getattr(w, rate))
        if not 1 <= n <= MAX_CONTEXT_SAMPLES:
            raise ModelError(
                f"{where}: window {ctx} x {rate} = {n} samples is out of bounds (1-{MAX_CONTEXT_SAMPLES}); {_RETRAIN}"
            )
    return w


def check_frontend(d: dict, where: str) -> dict:
    """The front-end key (the parameters features were made with, plus the front end's version)."""
    _known_keys(d, {"k_frames", "method", "crop_size", "patch", "compensate", "face_box", "version"}, "frontend", where)
    if "k_frames" not in d:
        raise ModelError(f"{where}: frontend has no k_frames; {_RETRAIN}")
    for name, (lo, hi) in FRONTEND_INTS.items():
        if name in d:
            _int(d[name], f"frontend {name}", lo, hi, where)
    if "method" in d and d["method"] not in FLOW_METHODS:
        raise ModelError(
            f"{where}: frontend method {d['method']!r} is not one of {', '.join(FLOW_METHODS)}; {_RETRAIN}"
        )
    if "compensate" in d and not isinstance(d["compensate"], bool):
        raise ModelError(f"{where}: frontend compensate must be true or false; {_RETRAIN}")
    box = d.get("face_box")
    if box is not None:
        if not isinstance(box, list) or len(box) != 4:
            raise ModelError(f"{where}: frontend face_box must be [x, y, w, h] or null; {_RETRAIN}")
        for name, v in zip(("x", "y", "w", "h"), box):
            _int(v, f"frontend face_box {name}", 1 if name in "wh" else 0, 100_000, where)
    return d


def check_spot(d: dict, where: str) -> dict:
    """The spotting parameters: threshold in [0, 1], ME rise and fall durations (s)."""
    for name, (lo, hi) in SPOT_FLOATS.items():
        if name not in d:
            raise ModelError(f"{where}: spot has no {name}; {_RETRAIN}")
        _float(d[name], f"spot {name}", lo, hi, where)
    if d.get("threshold_ccf") is not None:
        _float(d["threshold_ccf"], "spot threshold_ccf", 0.0, 1.0, where)
    if d.get("eta") is not None:
        _float(d["eta"], "spot eta", 0.0, 100.0, where)
    if d.get("eta_chosen") is not None:
        _float(d["eta_chosen"], "spot eta_chosen", 0.0, 100.0, where)
    table = d.get("thresholds_ccf")
    if table is not None:
        if not isinstance(table, dict) or not table:
            raise ModelError(f"{where}: spot thresholds_ccf must map etas to thresholds; {_RETRAIN}")
        for k, v in table.items():
            try:
                eta = float(k)
            except ValueError:
                raise ModelError(f"{where}: spot thresholds_ccf key {k!r} is not an eta; {_RETRAIN}") from None
            _float(eta, "spot thresholds_ccf eta", 0.0, 100.0, where)
            _float(v, f"spot thresholds_ccf[{k}]", 0.0, 1.0, where)
    rule = d.get("ccf")
    if rule is not None:
        from mecg.model.spotter import CcfRule

        if not isinstance(rule, dict):
            raise ModelError(f"{where}: spot ccf must be a JSON object; {_RETRAIN}")
        _known_keys(rule, {"hrs", "window_s", "trial"}, "spot ccf", where)
        try:
            CcfRule.from_dict(rule)
        except (MecgError, TypeError, ValueError) as exc:
            raise ModelError(f"{where}: spot ccf: {exc}; {_RETRAIN}") from None
    return d


def check_weights(state: object, config: CMCLConfig, where: str) -> dict[str, torch.Tensor]:
    """Weights that are finite tensors with exactly the names and shapes of the network (checked on ``meta``)."""
    if not isinstance(state, dict) or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in state.items()):
        raise ModelError(f"{where}: 'state_dict' must map parameter names to tensors; {_RETRAIN}")
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in CMCLNet(config).state_dict().items()}
    n_params = sum(math.prod(s) for s in shapes.values())
    if n_params > MAX_PARAMETERS:
        raise ModelError(f"{where}: the network described has {n_params:,} parameters (at most {MAX_PARAMETERS:,})")
    missing, unexpected = sorted(set(shapes) - set(state)), sorted(set(state) - set(shapes))
    if missing or unexpected:
        raise ModelError(
            f"{where}: weights do not fit the network described in it (missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}); {_RETRAIN}"
        )
    for k, shape in shapes.items():
        if tuple(state[k].shape) != shape:
            raise ModelError(
                f"{where}: weights do not fit the network described in it ({k} is {tuple(state[k].shape)}, "
                f"the network needs {shape}); {_RETRAIN}"
            )
        v = state[k]
        if v.is_floating_point() and not bool(torch.isfinite(v).all()):
            raise ModelError(
                f"{where}: weight {k} holds NaN or infinite values (training diverged): train again, e.g. with "
                "a lower learning rate"
            )
    return state


def check_checkpoint(ck: object, where: str) -> CheckedCheckpoint:
    """Check a loaded checkpoint against the schema (module docstring); ``where`` names it in messages."""
    if not isinstance(ck, dict) or ck.get("format") != FORMAT:
        raise ModelError(f"{where} is not a CMCL-Net checkpoint written by mecg")
    missing = [k for k in REQUIRED_KEYS if k not in ck]
    if missing:
        raise ModelError(f"{where}: the checkpoint has no {', '.join(map(repr, missing))}; {_RETRAIN}")
    version = ck["version"]
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ModelError(f"{where}: checkpoint version {version!r} is not a version mecg wrote; {_RETRAIN}")
    if version > CHECKPOINT_VERSION:
        raise ModelError(f"{where} was written by a newer mecg (checkpoint v{version}); upgrade mecg")
    config = check_config(_json(ck, "config", where), where)
    window = check_window(_json(ck, "window", where), config, where)
    frontend = check_frontend(_json(ck, "frontend", where), where)
    spot = check_spot(_json(ck, "spot", where), where)
    state = check_weights(ck["state_dict"], config, where)
    return CheckedCheckpoint(config, window, frontend, spot, state)
