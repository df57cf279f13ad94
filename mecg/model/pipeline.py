"""From session files to a trained, thresholded model; leave-one-subject-out evaluation.

Used by ``mecg train`` and by benchmarks/spotting.py. Sessions with ECG that have not been
synced are synced first (``mecg sync``'s automatic mode), and the result is stored in them.
"""

from __future__ import annotations

import os
import sys
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np

from mecg.errors import MecgError
from mecg.model.cmclnet import PRESETS, CMCLConfig, CMCLNet, preset_config
from mecg.model.ecg_features import ensure_synced
from mecg.model.evaluate import Interval, evaluate
from mecg.model.frontend import FrontEndParams
from mecg.model.spots import Spot
from mecg.model.spotter import (
    DEFAULT_ETAS,
    DEFAULT_RULE,
    LEGACY_RULE,
    MAX_CANDIDATES_PER_MIN,
    CcfRule,
    choose_threshold,
    frame_scores,
    parse_hrs_rule,
    spot_data,
)
from mecg.model.train import TrainConfig, save_checkpoint, train_config_dict, train_model
from mecg.model.windows import SessionData, WindowParams
from mecg.session.files import session_files

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


def eta_key(eta: float) -> str:
    """How an eta names its threshold in a checkpoint's ``thresholds_ccf`` (``"2"``, ``"1.3"``)."""
    return f"{eta:g}"


def choose_spot_params(
    sets: list[tuple[SessionData, np.ndarray]],
    rise: float,
    fall: float,
    mode: str,
    eta: float = DEFAULT_ETA,
    etas: Sequence[float] = DEFAULT_ETAS,
    ccf: CcfRule = DEFAULT_RULE,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Spotting thresholds chosen on validation ``(session, frame scores)`` sets: without the CCF and per eta.

    Returns the checkpoint's ``spot`` fields: ``threshold`` (no CCF), ``thresholds_ccf`` ({eta: threshold}
    over ``etas`` and ``eta``; None for a video-only model), ``threshold_ccf`` (the one for ``eta``),
    ``eta`` (the default at spot time), ``eta_chosen`` (the eta with the best validation F1, ties to the
    one nearest ``eta``), ``ccf`` (the rule), ``threshold_choice`` (per setting, where in its grid the
    choice sits: :class:`~mecg.model.spotter.ThresholdChoice`). A choice at an edge of its grid, or
    with validation F1 0 everywhere, is logged as a warning.
    """
    say = log if log is not None else _stderr
    choices = {"none": choose_threshold(sets, rise, fall)}
    table: dict[str, float] | None = None
    chosen = None
    if mode != "video":
        grid = sorted({float(e) for e in etas} | {float(eta)})
        per = {e: choose_threshold(sets, rise, fall, e, ccf) for e in grid}
        choices.update({eta_key(e): c for e, c in per.items()})
        table = {eta_key(e): c.threshold for e, c in per.items()}
        chosen = max(grid, key=lambda e: (round(per[e].f1, 9), -abs(e - eta)))
    untuned = [name for name, c in choices.items() if c.f1 <= 0]
    if untuned:
        what = ", ".join("without the CCF" if n == "none" else f"eta {n}" for n in untuned)
        say(
            f"warning: spotting thresholds ({what}): validation ME F1 is 0 at every threshold tried, so each is "
            "the middle of its grid, not a tuned value (too few or too weak validation MEs)"
        )
    for name, c in choices.items():
        if c.f1 > 0 and c.edge:
            what = "without the CCF" if name == "none" else f"at eta {name}"
            beyond = (
                "no validation peak is higher"
                if c.edge == "high"
                else f"lower thresholds give over {MAX_CANDIDATES_PER_MIN:g} candidates/min"
                if c.capped
                else "it keeps every validation peak"
            )
            say(
                f"warning: spotting threshold {what} = {c.threshold:.3g} sits at the {c.edge} edge of the grid "
                f"({c.grid_low:.3g}-{c.grid_high:.3g}; {beyond}); validation F1 {c.f1:.3f}"
            )
    return {
        "me_rise_s": rise,
        "me_fall_s": fall,
        "threshold": choices["none"].threshold,
        "threshold_ccf": None if table is None else table[eta_key(eta)],
        "eta": eta,
        "thresholds_ccf": table,
        "eta_chosen": chosen,
        "ccf": ccf.as_dict(),
        "threshold_choice": {k: c.as_dict() for k, c in choices.items()},
    }


def fit(
    data: list[SessionData],
    config: CMCLConfig,
    tc: TrainConfig,
    eta: float = DEFAULT_ETA,
    *,
    etas: Sequence[float] = DEFAULT_ETAS,
    ccf: CcfRule = DEFAULT_RULE,
    progress: Callable[[int, int], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> tuple[CMCLNet, dict]:
    """Train on ``data`` (validation subject held out) and choose spotting thresholds on it.

    Thresholds: :func:`choose_spot_params` on the validation subject (``etas``, default eta ``eta``,
    CCF rule ``ccf``). ``progress`` and ``log``: per epoch, as :func:`mecg.model.train.train_model` takes them.
    """
    train, val = split_validation(data)
    res = train_model(train, val, config, tc, progress=progress, log=log)
    rise, fall = me_shape_s(train)
    sets = [(d, frame_scores(res.model, d, tc.device)) for d in (val or train)]
    spot = choose_spot_params(sets, rise, fall, config.mode, eta, etas, ccf, log)
    spot["val_ap"] = res.best_val_ap
    return res.model, spot


def ccf_threshold(spot: dict, eta: float) -> tuple[float, str | None]:
    """The score threshold a checkpoint's ``spot`` holds for the CCF at ``eta``, and a notice (or None).

    A checkpoint with per-eta thresholds (``thresholds_ccf``) refuses an eta it holds none for
    (:class:`MecgError` naming the ones it has): a threshold tuned for another eta would be silently
    wrong. An older checkpoint holds one threshold, tuned for its ``eta``: it is used, with a notice.
    """
    table = spot.get("thresholds_ccf")
    if table:
        for k, thr in table.items():
            if abs(float(k) - eta) < 1e-9:
                return float(thr), None
        have = ", ".join(sorted(table, key=float))
        raise MecgError(
            f"the model holds CCF thresholds for eta {have}, not for {eta:g}: spot with one of them "
            f"(--ccf-eta), or train again with --ccf-etas including {eta:g}"
        )
    stored = float(spot.get("eta", DEFAULT_ETA))
    note = f"notice: the model predates per-eta thresholds; its one CCF threshold was tuned for eta {stored:g}"
    return float(spot["threshold_ccf"]), note + ("" if abs(stored - eta) < 1e-9 else f" and is used for eta {eta:g}")


def ccf_rule(spot: dict, hrs: str | None = None, trial: str | None = None) -> tuple[CcfRule, list[str]]:
    """The CCF rule to spot with: the checkpoint's, with ``hrs`` (``apex``/``window[:S]``) or ``trial`` overriding.

    Checkpoints written before the rule was stored get :data:`~mecg.model.spotter.LEGACY_RULE` (windowed
    HRS, whole session), the rule their threshold was tuned under. Returns the rule and notices.
    """
    notes = []
    if "ccf" in spot:
        base = CcfRule.from_dict(spot["ccf"])
    else:
        base = LEGACY_RULE
        notes.append(
            f"notice: the model predates stored CCF rules; using the one it was tuned with ({base.describe()})"
        )
    rule = base
    if hrs is not None:
        h, w = parse_hrs_rule(hrs)
        rule = replace(rule, hrs=h, window_s=w)
    if trial is not None:
        rule = replace(rule, trial=trial)  # type: ignore[arg-type]
    if rule != base:
        notes.append(
            f"notice: CCF rule {rule.describe()} differs from the one the model's thresholds were tuned under "
            f"({base.describe()}); train with the same --ccf-hrs/--ccf-trial for tuned thresholds"
        )
    return rule, notes


def spot_candidates(
    model: CMCLNet,
    data: SessionData,
    spot: dict,
    ccf_eta: float | None,
    device: str = "cpu",
    scores: np.ndarray | None = None,
    rule: CcfRule | None = None,
) -> list[Spot]:
    """Spot one session; with ``ccf_eta`` (and ECG) the CCF threshold for that eta is used and candidates filtered.

    ``rule``: the CCF rule (None: the checkpoint's, :func:`ccf_rule`). An eta the checkpoint holds no
    threshold for is refused (:func:`ccf_threshold`).
    """
    use_ccf = ccf_eta is not None and data.has_ecg and spot.get("threshold_ccf") is not None
    thr = ccf_threshold(spot, ccf_eta)[0] if use_ccf and ccf_eta is not None else spot["threshold"]
    rule = rule if rule is not None else ccf_rule(spot)[0]
    spots, _ = spot_data(model, data, {**spot, "threshold": thr}, ccf_eta if use_ccf else None, device, scores, rule)
    return spots


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
    ccf: CcfRule = DEFAULT_RULE,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Leave-one-subject-out: per fold train, choose thresholds and eta on the training folds, spot the test subject.

    Returns predictions without CCF (``"plain"``), with CCF at each eta (``"ccf_<eta>"``, each with the
    threshold chosen for it) and at the eta each fold chose on its validation subject (``"ccf_val"``),
    plus the truth and ``"folds"`` (per fold: test subject, the spot parameters chosen). Everything
    chosen (weights, early stopping, thresholds, eta) sees the training folds only.
    ``progress(folds_done, folds)`` is called after each fold; ``log`` also gets the epoch lines.
    """
    groups = by_subject(data)
    if len(groups) < 2:
        raise MecgError("LOSO needs sessions of at least two subjects")
    preds: dict[str, list[Interval]] = defaultdict(list)
    truth: list[Interval] = []
    folds = []
    for fold, (subj, test) in enumerate(groups.items(), 1):
        train = [d for k, g in groups.items() if k != subj for d in g]
        log(f"fold {fold}/{len(groups)}: test subject {subj} ({len(test)} session(s)), {config.mode}")
        # thresholds for every eta asked, chosen on the fold's validation subject
        model, spot = fit(train, config, replace(tc, seed=tc.seed + fold), etas=etas, ccf=ccf, log=log)
        folds.append({"test_subject": subj, "spot": spot})
        runs: list[tuple[str, float | None]] = [("plain", None)]
        if config.mode != "video":
            runs += [(f"ccf_{eta:g}", eta) for eta in etas] + [("ccf_val", spot["eta_chosen"])]
        for d in test:
            scores = frame_scores(model, d, tc.device)
            truth += [Interval(d.name, a.onset_frame, a.offset_frame, "ME") for a in d.annotations if a.type == "ME"]
            for name, eta in runs:
                found = spot_candidates(model, d, spot, eta, tc.device, scores, ccf)
                preds[name] += [sp.interval() for sp in found if sp.kept_by_ccf]
        if progress:
            progress(fold, len(groups))
    return {
        "preds": dict(preds),
        "truth": truth,
        "folds": folds,
        "results": {k: evaluate(v, truth)["me"].as_dict() for k, v in preds.items()},
    }


_loso = loso  # train_spotter's ``loso`` argument hides the function's name


@dataclass
class TrainResult:
    """What :func:`train_spotter` made.

    Attributes
    ----------
    model : CMCLNet
        The trained network (eval mode).
    spot : dict
        Spotting parameters chosen on the validation subject: ``threshold`` (no CCF), ``thresholds_ccf``
        ({eta: threshold}; None for a video-only model), ``threshold_ccf`` (at ``eta``), ``eta_chosen``,
        ``ccf`` (the rule), ``threshold_choice`` (where each sits in its grid), ``me_rise_s``, ``me_fall_s``
        (s), ``val_ap`` (see :func:`choose_spot_params`).
    out : Path or None
        The checkpoint written (None when none was asked for, or on a torchrun rank other than 0).
    sessions : list of str
        Names of the sessions trained on.
    loso : dict or None
        With ``loso=True``: ME counts per setting (``"plain"``, ``"ccf_2"``, ...), each a dict of tp, fp,
        fn, precision, recall, f1.
    seconds : float
        Wall time of training (and LOSO), s.
    rank, world : int
        This process's rank and the number of processes (torchrun; 0 and 1 otherwise).
    """

    model: CMCLNet
    spot: dict
    out: Path | None
    sessions: list[str]
    loso: dict | None
    seconds: float
    rank: int = 0
    world: int = 1


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def check_device(name: str) -> str:
    """``name`` (``"cpu"`` or ``"cuda"``) when this machine has it; MecgError otherwise."""
    import torch

    if name not in ("cpu", "cuda"):
        raise MecgError(f"device {name!r} is not one of cpu, cuda")
    if name == "cuda" and not torch.cuda.is_available():
        raise MecgError("--device cuda: no CUDA device is available here; use --device cpu")
    return name


def network_config(preset: str, mode: str, flow_image: int | None = None) -> CMCLConfig:
    """The network of ``preset`` in ``mode``; ``flow_image`` (px) sets the ``paper`` preset's image side.

    Raises :class:`MecgError` for an unknown preset or mode, or a flow image the preset cannot take.
    """
    from mecg.model.cmclnet import MIN_FLOW_IMAGE, MODES

    if preset not in PRESETS:
        raise MecgError(f"preset {preset!r} is not one of {', '.join(PRESETS)}")
    if mode not in MODES:
        raise MecgError(f"mode {mode!r} is not one of {', '.join(MODES)}")
    if flow_image is None:
        return preset_config(preset, mode)
    if preset != "paper":
        raise MecgError(f"--flow-image sets the paper preset's flow images; the {preset} preset reads none: drop it")
    if not MIN_FLOW_IMAGE <= flow_image <= 128:
        raise MecgError(f"--flow-image {flow_image}: give a side of {MIN_FLOW_IMAGE}-128 px")
    return preset_config(preset, mode, flow_image=flow_image)


def train_spotter(
    sessions: str | os.PathLike | Sequence[str | os.PathLike],
    out: str | os.PathLike | None = None,
    *,
    mode: str = "fusion",
    preset: str = "small",
    flow_image: int | None = None,
    epochs: int = 12,
    pretrain_epochs: int = 4,
    contrastive: str = "triplet",
    seed: int = 0,
    device: str = "cpu",
    threads: int | None = None,
    workers: int | None = None,
    jobs: int = 1,
    ecg_channel: str = "",
    loso: bool = False,
    ccf_hrs: str = "apex",
    ccf_trial: str = "auto",
    ccf_etas: Sequence[float] = DEFAULT_ETAS,
    live_lookahead_s: float | None = None,
    log: Callable[[str], None] = _stderr,
    progress: Callable[[str, int, int], None] | None = None,
) -> TrainResult:
    """Train CMCL-Net on annotated sessions and choose its spotting thresholds (what ``mecg train`` runs).

    Sessions with ECG not synced yet are synced first (stored beside each recording). The last
    subject is held out for early stopping and the thresholds; training is seeded. Under torchrun
    the processes share the epochs and rank 0 writes ``out``.

    Parameters
    ----------
    sessions : str, PathLike or sequence of them
        A folder of annotated sessions (its ``*.h5``), one session, or a list of session files.
    out : str or PathLike, optional
        The checkpoint to write (``.pt``); None keeps the model in memory only.
    mode : str
        ``"fusion"`` (video + ECG), ``"video"`` or ``"ecg"``.
    preset : str
        The network: ``"small"`` (CPU-sized, the default) or ``"paper"`` (CA-I3D over whole-face flow
        images, residual TCN, the paper's hand-made features; see :mod:`mecg.model.cmclnet`). The
        checkpoint records it.
    flow_image : int, optional
        ``paper`` only: side of the face-crop flow images, px (8-128; None: 32).
    epochs, pretrain_epochs : int
        Fine-tuning and contrastive pre-training epochs.
    contrastive : str
        Pre-training loss, ``"triplet"`` or ``"infonce"``.
    seed : int
        Random seed (same seed and data, same model).
    device : str
        ``"cpu"`` or ``"cuda"``.
    threads : int, optional
        torch CPU threads (None: unchanged).
    workers : int, optional
        Processes for one video's front end (None: all cores).
    jobs : int
        Sessions whose features are extracted at once (same features for every value).
    ecg_channel : str
        ``[STREAM:]LABEL|INDEX`` of the ECG when a session must be synced and its ECG is ambiguous.
    loso : bool
        Also run leave-one-subject-out evaluation (needs two subjects or more).
    ccf_hrs : str
        CCF HRS rule: ``"apex"`` (the paper's), ``"window"`` or ``"window:S"`` (max within +-S s).
    ccf_trial : str
        CCF trial mean: ``"auto"``, ``"session"`` or ``"stimulus"`` (see :mod:`mecg.model.spotter`).
    ccf_etas : sequence of float
        The etas a CCF threshold is chosen and stored for (2.0, the default at spot time, always is).
    live_lookahead_s : float, optional
        Train for live spotting: windows see only this much ECG after their centre (s), as a live
        spotter that waits that long sees it (:class:`WindowParams` ``ecg_lookahead_s``, stored in the
        checkpoint; live spotting then waits that long). None: the whole context, as offline.
    log : callable
        Receives notices and per-epoch lines (default: standard error).
    progress : callable, optional
        ``progress(phase, done, total)``, with ``done`` 0 when a phase starts and after each step:
        ``"features"`` (sessions), ``"LOSO"`` (folds) and ``"train"`` (epochs).

    Returns
    -------
    TrainResult

    Raises
    ------
    MecgError
        No sessions, sessions of different frame rates, an unavailable device, fewer than two
        subjects for ``loso``, an unknown preset or a ``flow_image`` it cannot take (checked before
        any feature is extracted); ``SyncError`` when a session's ECG cannot be aligned.
    """
    import time

    import torch

    from mecg.model.frontend import default_k
    from mecg.model.train import init_distributed

    hrs, window_s = parse_hrs_rule(ccf_hrs)
    rule = CcfRule(hrs, window_s, ccf_trial)  # type: ignore[arg-type]
    etas = sorted({round(float(e), 6) for e in ccf_etas} | {DEFAULT_ETA})
    paths = session_files(sessions)
    if threads:
        torch.set_num_threads(max(1, threads))
    rank, world, dev = init_distributed(check_device(device))

    def step(phase: str) -> Callable[[int, int], None]:
        return lambda done, total: progress(phase, done, total) if progress and rank == 0 else None

    say = log if rank == 0 else (lambda _m: None)
    config = network_config(preset, mode, flow_image)
    window = WindowParams(
        flow_image=config.flow_image if "image" in config.inputs else 0, ecg_lookahead_s=live_lookahead_s
    )
    if rank != 0:  # rank 0 computes and caches the features first; the others then read the caches
        torch.distributed.barrier()
    step("features")(0, len(paths))
    data = load_sessions(
        paths,
        window,
        use_ecg=mode != "video",
        workers=workers,
        log=say,
        ecg_channel=ecg_channel,
        jobs=jobs if rank == 0 else 1,
        progress=step("features"),
    )
    if rank == 0 and world > 1:
        torch.distributed.barrier()
    rates = {d.fps for d in data}
    if len(rates) > 1:
        raise MecgError(f"sessions have different frame rates {sorted(rates)}; train one model per frame rate")
    frontend = FrontEndParams(k_frames=default_k(rates.pop()))
    # on a GPU, batches are assembled in DataLoader processes while it trains (same model either way)
    loader_workers = min(4, (os.cpu_count() or 1) - 1) if dev.startswith("cuda") else 0
    tc = TrainConfig(
        epochs=epochs,
        pretrain_epochs=pretrain_epochs,
        seed=seed,
        contrastive=contrastive,
        device=dev,
        loader_workers=loader_workers,
    )
    t0 = time.perf_counter()
    results = None
    if loso:
        step("LOSO")(0, len(by_subject(data)))
        results = _loso(data, config, tc, tuple(etas), log=say, ccf=rule, progress=step("LOSO"))["results"]
    step("train")(0, tc.pretrain_epochs + tc.epochs)
    model, spot = fit(data, config, tc, etas=etas, ccf=rule, progress=step("train"), log=say)
    written = None
    if rank == 0 and out is not None:  # one process writes the checkpoint
        written = Path(out)
        save(written, model, window, frontend, spot, tc, data)
    return TrainResult(model, spot, written, [d.name for d in data], results, time.perf_counter() - t0, rank, world)
