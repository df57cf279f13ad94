"""From session files to a trained, thresholded model; leave-one-subject-out evaluation.

Used by ``mecg train`` and by benchmarks/spotting.py. Sessions with ECG that have not been
synced are synced first (``mecg sync``'s automatic mode), and the result is stored in them.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from mecg.errors import MecgError
from mecg.model.cmclnet import CMCLConfig, CMCLNet
from mecg.model.ecg_features import ensure_synced
from mecg.model.evaluate import Interval, evaluate
from mecg.model.frontend import FrontEndParams
from mecg.model.spotter import choose_threshold, frame_scores, spot_session
from mecg.model.train import TrainConfig, save_checkpoint, train_config_dict, train_model
from mecg.model.windows import SessionData, WindowParams

DEFAULT_ETA = 2.0


def load_sessions(
    paths: list[Path],
    window: WindowParams,
    frontend: FrontEndParams | None = None,
    use_ecg: bool = True,
    workers: int | None = None,
    log: Callable[[str], None] = lambda m: print(m, file=sys.stderr, flush=True),
    ecg_channel: str = "",
) -> list[SessionData]:
    """Sync (if needed; ``ecg_channel`` chooses the ECG, see :mod:`mecg.session.ecg_channel`) and load features."""
    out = []
    for i, p in enumerate(paths, 1):
        if use_ecg:
            ensure_synced(p, log, ecg_channel)
        out.append(SessionData(str(p), window, frontend, workers=workers, use_ecg=use_ecg))
        log(f"[{i}/{len(paths)}] features of {p.name}: {out[-1].n} frames" + ("" if out[-1].has_ecg else " (no ECG)"))
    return out


def by_subject(data: list[SessionData]) -> dict[str, list[SessionData]]:
    groups: dict[str, list[SessionData]] = defaultdict(list)
    for d in data:
        groups[d.subject or d.name].append(d)
    return dict(sorted(groups.items()))


def split_validation(data: list[SessionData]) -> tuple[list[SessionData], list[SessionData]]:
    """Hold out the last subject (or, with one subject, its last session) for validation."""
    groups = by_subject(data)
    if len(groups) >= 2:
        val_key = list(groups)[-1]
        return [d for k, g in groups.items() if k != val_key for d in g], groups[val_key]
    if len(data) >= 2:
        return data[:-1], data[-1:]
    return data, []


def me_shape_s(data: list[SessionData]) -> tuple[float, float]:
    """Mean onset->apex and apex->offset durations (s) of the annotated MEs (0.1, 0.2 without any)."""
    rise = [(a.apex_frame - a.onset_frame) / d.fps for d in data for a in d.annotations if a.type == "ME"]
    fall = [(a.offset_frame - a.apex_frame) / d.fps for d in data for a in d.annotations if a.type == "ME"]
    return (float(np.mean(rise)), float(np.mean(fall))) if rise else (0.1, 0.2)


def fit(data: list[SessionData], config: CMCLConfig, tc: TrainConfig, eta: float = DEFAULT_ETA) -> tuple[CMCLNet, dict]:
    """Train on ``data`` (validation subject held out) and choose spotting thresholds on it."""
    train, val = split_validation(data)
    res = train_model(train, val, config, tc)
    rise, fall = me_shape_s(train)
    sets = [(d, frame_scores(res.model, d, tc.device)) for d in (val or train)]
    spot = {
        "me_rise_s": rise,
        "me_fall_s": fall,
        "threshold": choose_threshold(sets, rise, fall),
        "threshold_ccf": choose_threshold(sets, rise, fall, eta) if config.mode != "video" else None,
        "eta": eta,
        "val_ap": res.best_val_ap,
    }
    return res.model, spot


def spot_rows(
    model: CMCLNet,
    data: SessionData,
    spot: dict,
    ccf_eta: float | None,
    device: str = "cpu",
    scores: np.ndarray | None = None,
) -> list[dict]:
    """Spot one session; with ``ccf_eta`` the CCF threshold set is used and candidates filtered."""
    use_ccf = ccf_eta is not None and data.has_ecg and spot.get("threshold_ccf") is not None
    params = {**spot, "threshold": spot["threshold_ccf"] if use_ccf else spot["threshold"]}
    rows, _ = spot_session(model, data, params, ccf_eta if use_ccf else None, device, scores)
    return rows


def save(
    path: Path,
    model: CMCLNet,
    window: WindowParams,
    frontend: FrontEndParams,
    spot: dict,
    tc: TrainConfig,
    sessions: list[SessionData],
) -> None:
    save_checkpoint(
        path,
        model,
        window,
        frontend,
        spot,
        {
            "train": train_config_dict(tc),
            "sessions": [d.name for d in sessions],
            "subjects": sorted(by_subject(sessions)),
        },
    )


def loso(
    data: list[SessionData],
    config: CMCLConfig,
    tc: TrainConfig,
    etas: tuple[float, ...] = (DEFAULT_ETA,),
    log: Callable[[str], None] = lambda m: print(m, file=sys.stderr, flush=True),
) -> dict:
    """Leave-one-subject-out: per fold train, choose thresholds on the training folds, spot the test subject.

    Returns predictions without CCF (``"plain"``) and with CCF at each eta, plus the truth.
    """
    groups = by_subject(data)
    if len(groups) < 2:
        raise MecgError("LOSO needs sessions of at least two subjects")
    preds: dict[str, list[Interval]] = defaultdict(list)
    truth: list[Interval] = []
    for fold, (subj, test) in enumerate(groups.items(), 1):
        train = [d for k, g in groups.items() if k != subj for d in g]
        log(f"fold {fold}/{len(groups)}: test subject {subj} ({len(test)} session(s)), {config.mode}")
        model, spot = fit(train, config, replace(tc, seed=tc.seed + fold))
        # spot parameters per eta, chosen once per fold on the same validation data as the default
        per_eta = {}
        if config.mode != "video":
            val_sets = None
            for eta in etas:
                if eta == spot["eta"]:
                    per_eta[eta] = spot
                    continue
                if val_sets is None:
                    _, val = split_validation(train)
                    val_sets = [(v, frame_scores(model, v, tc.device)) for v in (val or train)]
                thr = choose_threshold(val_sets, spot["me_rise_s"], spot["me_fall_s"], eta)
                per_eta[eta] = {**spot, "threshold_ccf": thr}
        for d in test:
            scores = frame_scores(model, d, tc.device)
            truth += [Interval(d.name, a.onset_frame, a.offset_frame, "ME") for a in d.annotations if a.type == "ME"]
            for r in spot_rows(model, d, spot, None, tc.device, scores):
                preds["plain"].append(Interval(r["session"], r["onset"], r["offset"], "ME", r["score"]))
            for eta, params in per_eta.items():
                for r in spot_rows(model, d, params, eta, tc.device, scores):
                    if r["kept_by_ccf"]:
                        preds[f"ccf_{eta:g}"].append(Interval(r["session"], r["onset"], r["offset"], "ME", r["score"]))
    return {
        "preds": dict(preds),
        "truth": truth,
        "results": {k: evaluate(v, truth)["me"].as_dict() for k, v in preds.items()},
    }
