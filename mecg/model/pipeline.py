"""From session files to a trained, thresholded model; leave-one-subject-out evaluation.

Used by ``mecg train`` and by benchmarks/spotting.py. Sessions with ECG that have not been
synced are synced first (``mecg sync``'s automatic mode), and the result is stored in them.
"""

from __future__ import annotations

import os
import sys
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from functools import partial
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


def _load_one(
    window: WindowParams,
    frontend: FrontEndParams | None,
    use_ecg: bool,
    workers: int | None,
    ecg_channel: str,
    path: Path,
    log: Callable[[str], None] | None = None,
) -> tuple[SessionData, list[str]]:
    """Sync (if needed) and load one session; ``log`` None collects its lines (a pool worker hands them back)."""
    lines: list[str] = []
    say = log if log is not None else lines.append
    if use_ecg:
        ensure_synced(path, say, ecg_channel)
    return SessionData(str(path), window, frontend, workers=workers, use_ecg=use_ecg), lines


def load_sessions(
    paths: list[Path],
    window: WindowParams,
    frontend: FrontEndParams | None = None,
    use_ecg: bool = True,
    workers: int | None = None,
    log: Callable[[str], None] = lambda m: print(m, file=sys.stderr, flush=True),
    ecg_channel: str = "",
    *,
    jobs: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> list[SessionData]:
    """Sync (if needed; ``ecg_channel`` chooses the ECG, see :mod:`mecg.session.ecg_channel`) and load features.

    ``jobs`` > 1 extracts that many sessions' features at once in worker processes
    (:func:`mecg.model.parallel.map_sessions`; same features, as the front end's pieces are set by
    ``workers``, default all cores, whatever ``jobs`` is); ``progress(done, total)`` after each session.
    """
    from mecg.model.parallel import map_sessions

    workers = workers or os.cpu_count() or 1
    one = partial(_load_one, window, frontend, use_ecg, workers, ecg_channel)
    fn = partial(one, log=log) if jobs <= 1 else one
    out = []
    for i, (d, lines) in enumerate(map_sessions(fn, paths, jobs), 1):
        for line in lines:
            log(line)
        out.append(d)
        log(f"[{i}/{len(paths)}] features of {paths[i - 1].name}: {d.n} frames" + ("" if d.has_ecg else " (no ECG)"))
        if progress:
            progress(i, len(paths))
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


def fit(
    data: list[SessionData],
    config: CMCLConfig,
    tc: TrainConfig,
    eta: float = DEFAULT_ETA,
    *,
    progress: Callable[[int, int], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> tuple[CMCLNet, dict]:
    """Train on ``data`` (validation subject held out) and choose spotting thresholds on it.

    ``progress`` and ``log``: per epoch, as :func:`mecg.model.train.train_model` takes them.
    """
    train, val = split_validation(data)
    res = train_model(train, val, config, tc, progress=progress, log=log)
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
    *,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Leave-one-subject-out: per fold train, choose thresholds on the training folds, spot the test subject.

    Returns predictions without CCF (``"plain"``) and with CCF at each eta, plus the truth.
    ``progress(folds_done, folds)`` is called after each fold; ``log`` also gets the epoch lines.
    """
    groups = by_subject(data)
    if len(groups) < 2:
        raise MecgError("LOSO needs sessions of at least two subjects")
    preds: dict[str, list[Interval]] = defaultdict(list)
    truth: list[Interval] = []
    for fold, (subj, test) in enumerate(groups.items(), 1):
        train = [d for k, g in groups.items() if k != subj for d in g]
        log(f"fold {fold}/{len(groups)}: test subject {subj} ({len(test)} session(s)), {config.mode}")
        model, spot = fit(train, config, replace(tc, seed=tc.seed + fold), log=log)
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
        if progress:
            progress(fold, len(groups))
    return {
        "preds": dict(preds),
        "truth": truth,
        "results": {k: evaluate(v, truth)["me"].as_dict() for k, v in preds.items()},
    }
