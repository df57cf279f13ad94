"""Spot one session file: the baseline (optical-flow) spotter or a trained CMCL-Net with the CCF.

What ``mecg spot`` runs per session and :func:`mecg.spot_session` returns. Front-end features are
cached in the session's derivatives file; a session with ECG that a CMCL-Net needs is synced first
(automatic mode, stored beside the recording); the recording itself is never written.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from mecg.errors import MecgError
from mecg.model.spots import Spot
from mecg.session import open_session

if TYPE_CHECKING:
    from mecg.model.checkpoint import Checkpoint

#: The spotters: the training-free optical-flow baseline, or a trained CMCL-Net checkpoint.
METHODS = ("baseline", "cmclnet")
Method = Literal["baseline", "cmclnet"]
#: Default CCF factor: a candidate is kept if its apex HRS exceeds ``eta`` x the session's mean HRS.
DEFAULT_ETA = 2.0


@dataclass(frozen=True)
class SpotOptions:
    """How to spot (picklable: it travels to ``mecg spot --jobs`` workers).

    ``method`` one of :data:`METHODS`; ``model`` the CMCL-Net checkpoint path (``cmclnet``); ``p``
    the baseline's threshold fraction (0-1); ``ccf_eta`` the CCF factor (None: no filter);
    ``flow`` the optical-flow method; ``face_box`` ``(x, y, w, h)`` px when face detection fails;
    ``workers`` processes for one video's front end (None: all cores; the features do not depend
    on how many sessions run at once); ``ecg_channel`` ``[STREAM:]LABEL|INDEX`` for a session
    that must be synced first; ``ccf_hrs`` (``apex``, ``window``, ``window:S``) and ``ccf_trial``
    (``auto``, ``session``, ``stimulus``) override the checkpoint's CCF rule (None: the one its
    thresholds were tuned with); ``device`` where CMCL-Net runs, ``cpu`` or ``cuda`` (the front
    end always runs on the CPU).
    """

    method: Method = "baseline"
    model: str | None = None
    p: float = 0.55
    ccf_eta: float | None = DEFAULT_ETA
    flow: str = "dis"
    face_box: tuple[int, int, int, int] | None = None
    workers: int | None = None
    ecg_channel: str = ""
    ccf_hrs: str | None = None
    ccf_trial: str | None = None
    device: str = "cpu"


@dataclass
class SpotResult:
    """The spots of one session.

    Attributes
    ----------
    session : str
        The session's name (file name without ``.h5``).
    file : Path
        The session file.
    method : str
        ``"baseline"`` or ``"cmclnet"``.
    spots : list of Spot
        Spotted intervals by onset (CMCL-Net: every candidate, ``kept_by_ccf`` False for those the CCF rejected).
    frames : int
        Video frames in the session.
    fps : float
        The video's nominal frame rate (Hz).
    scores : ndarray
        ``(frames,)`` the score per frame the spotter thresholded (baseline: flow score; CMCL-Net: smoothed
        ME probability).
    summary : str
        One line saying what was found.
    log : list of str
        Notices produced on the way (a sync run, a model spotting video-only) when no ``log`` callback took them.
    """

    session: str
    file: Path
    method: Method
    spots: list[Spot]
    frames: int
    fps: float
    scores: np.ndarray
    summary: str
    log: list[str] = field(default_factory=list)

    @property
    def kept(self) -> list[Spot]:
        """The spots not rejected by the CCF (what ``mecg eval`` scores)."""
        return [s for s in self.spots if s.kept_by_ccf]


#: Checkpoints loaded in this process, by path (each ``--jobs`` worker loads a model once).
_LOADED: dict[str, Checkpoint] = {}


def load_spotter(path: str | os.PathLike, device: str = "cpu") -> Checkpoint:
    """Load (once per process and path) a CMCL-Net checkpoint that ``mecg train`` wrote.

    Parameters
    ----------
    path : str or PathLike
        The ``.pt`` file.
    device : str
        ``"cpu"`` or ``"cuda"``.

    Returns
    -------
    Checkpoint
        The network and its window, front-end and spotting parameters.

    Raises
    ------
    ModelError
        The file is missing, unsafe, malformed, or holds weights that do not fit its network.
    """
    key = f"{os.fspath(path)}|{device}"
    if key not in _LOADED:
        from mecg.model.train import load_checkpoint

        _LOADED[key] = load_checkpoint(path, device)
    return _LOADED[key]


def spot_file(
    path: str | os.PathLike,
    opts: SpotOptions = SpotOptions(),
    *,
    plot: str | os.PathLike | None = None,
    log: Callable[[str], None] | None = None,
    checkpoint: Checkpoint | None = None,
) -> SpotResult:
    """Spot one session file with ``opts``; write the spot figure to ``plot`` (PNG) when given.

    ``log`` receives notices as they happen (None: they are only collected in the result's
    ``log``); ``checkpoint`` is an already loaded model (otherwise ``opts.model`` is loaded).
    Raises :class:`MecgError` (or a subclass) naming the problem: an unknown method, a missing
    model, a frame rate the model was not trained for, an ECG-only model on a session without ECG.
    """
    path = Path(path)
    if opts.method not in METHODS:
        raise MecgError(f"unknown spotting method {opts.method!r}; choose one of {', '.join(METHODS)}")
    lines: list[str] = []
    say = log if log is not None else lines.append

    with open_session(path) as s:
        video = s.stream(kind="video")
        fps = float(video.info.nominal_srate_hz)
        truth = [(a.onset_frame, a.offset_frame, a.type) for a in s.annotations]
        frames = video.sample_count
    if opts.method == "cmclnet":
        if checkpoint is None:
            if not opts.model:
                raise MecgError("spotting with CMCL-Net needs a model (a .pt checkpoint; train one with `mecg train`)")
            checkpoint = load_spotter(opts.model, opts.device)
        spots, scores, summary = _spot_model(checkpoint, opts, path, fps, truth, plot, say)
    else:
        spots, scores, summary = _spot_baseline(opts, path, fps, truth, plot)
    return SpotResult(path.stem, path, opts.method, spots, frames, fps, scores, summary, lines)


def _spot_baseline(
    opts: SpotOptions, path: Path, fps: float, truth: list, plot: str | os.PathLike | None
) -> tuple[list[Spot], np.ndarray, str]:
    from mecg.model.baseline import BaselineParams, spot_baseline
    from mecg.model.frontend import FrontEndParams, default_k, frontend_features

    params = FrontEndParams(k_frames=default_k(fps), method=opts.flow, face_box=opts.face_box)
    feats = frontend_features(path, params, workers=opts.workers or os.cpu_count() or 1)
    spots, curves = spot_baseline(feats, fps, path.stem, BaselineParams(p=opts.p))
    score = curves.pop("score")
    n_me, n_mae = sum(s.type == "ME" for s in spots), sum(s.type == "MaE" for s in spots)
    if plot:
        from mecg.model.plot import plot_spots

        plot_spots(plot, fps, score, curves, spots, truth, f"{path.name}: {opts.method} spotter")
    return spots, score, f"{path.name}: {n_me} ME, {n_mae} MaE spotted"


def _spot_model(
    ck: Checkpoint,
    opts: SpotOptions,
    path: Path,
    fps: float,
    truth: list,
    plot: str | os.PathLike | None,
    say: Callable[[str], None],
) -> tuple[list[Spot], np.ndarray, str]:
    from mecg.model.ecg_features import ensure_synced
    from mecg.model.frontend import default_k
    from mecg.model.pipeline import ccf_rule, ccf_threshold, spot_candidates
    from mecg.model.spotter import frame_scores, trial_reference
    from mecg.model.windows import SessionData

    mode = ck.mode
    if default_k(fps) != ck.frontend.k_frames:
        raise MecgError(
            f"{path.name} is {fps:g} fps but the model was trained on features for "
            f"k={ck.frontend.k_frames} frames; train a model for this frame rate"
        )
    features = ck.features_notice()
    if features:
        say(features)
    eta = opts.ccf_eta
    rule, notes = ccf_rule(ck.spot, opts.ccf_hrs, opts.ccf_trial)
    thr = ck.spot["threshold"]
    if eta is not None and mode != "video":
        thr, note = ccf_threshold(ck.spot, eta)  # an eta the model holds no threshold for is refused here
        notes += [note] if note else []
    if mode != "video":
        ensure_synced(path, say, opts.ecg_channel)
    workers = opts.workers or os.cpu_count() or 1
    data = SessionData(str(path), ck.window, ck.frontend, workers=workers, use_ecg=mode != "video")
    if mode == "ecg" and not data.has_ecg:
        raise MecgError(f"{path.name} has no (synced) ECG but the model is ECG-only")
    if not data.has_ecg and mode == "fusion":
        say(f"notice: {path.name} has no ECG; spotting video-only (the ECG inputs are zero) without the CCF")
    use_ccf = eta is not None and data.has_ecg and ck.spot.get("threshold_ccf") is not None
    if use_ccf:
        for line in notes:
            say(line)
        _, reference = trial_reference(data, rule.trial)  # refuses --ccf-trial stimulus without markers
        say(f"{path.name}: CCF at eta {eta:g}, {rule.describe()}: {reference}")
    else:
        thr = ck.spot["threshold"]
    scores = frame_scores(ck.model, data, opts.device)
    found = spot_candidates(ck.model, data, ck.spot, eta, scores=scores, rule=rule)
    kept = sum(s.kept_by_ccf for s in found)
    if plot:
        from mecg.model.plot import plot_spots

        plot_spots(
            plot,
            fps,
            scores,
            {"CMCL-Net": (scores, thr)},
            found,
            truth,
            f"{path.name}: CMCL-Net" + ("" if eta is None else f" + CCF (eta {eta:g})"),
        )
    return found, scores, f"{path.name}: {len(found)} ME candidates, {kept} kept by the CCF"


def spot_session(
    path: str | os.PathLike,
    model: str | os.PathLike | Checkpoint | None = None,
    *,
    method: Method | None = None,
    p: float = 0.55,
    ccf_eta: float | None = DEFAULT_ETA,
    flow: str = "dis",
    face_box: tuple[int, int, int, int] | None = None,
    workers: int | None = None,
    ecg_channel: str = "",
    ccf_hrs: str | None = None,
    ccf_trial: str | None = None,
    plot: str | os.PathLike | None = None,
    log: Callable[[str], None] | None = None,
) -> SpotResult:
    """Spot micro- and macro-expressions in one session (what ``mecg spot`` does per session).

    Parameters
    ----------
    path : str or PathLike
        The session file.
    model : str, PathLike or Checkpoint, optional
        A CMCL-Net checkpoint (``.pt`` from :func:`mecg.train_spotter`, or one loaded with
        :func:`mecg.load_spotter`); None spots with the training-free baseline.
    method : str, optional
        ``"baseline"`` or ``"cmclnet"``; default: ``"cmclnet"`` when a model is given.
    p : float
        Baseline threshold fraction, 0-1.
    ccf_eta : float or None
        CCF: keep a CMCL-Net candidate if the heart-rate slope at its apex exceeds ``ccf_eta`` x the
        session's mean (None: no filter). Needs synced ECG; the session is synced first when it has ECG.
        The model must hold a threshold for this eta (``mecg train --ccf-etas``; refused otherwise).
    flow : str
        Optical-flow method for the baseline (``"dis"`` or ``"farneback"``).
    face_box : (x, y, w, h), optional
        Face box in pixels when face detection fails.
    workers : int, optional
        Processes for the video front end (None: all cores).
    ecg_channel : str
        ``[STREAM:]LABEL|INDEX`` of the ECG when a session must be synced and its ECG is ambiguous.
    ccf_hrs, ccf_trial : str, optional
        Override the model's CCF rule: ``"apex"``, ``"window"`` or ``"window:S"`` (S in s), and ``"auto"``,
        ``"session"`` or ``"stimulus"`` (None: the rule the model's thresholds were tuned with).
    plot : str or PathLike, optional
        Write the score curve, thresholds, spots and annotations as a PNG here.
    log : callable, optional
        Receives notices as they happen (otherwise they are kept in the result's ``log``).

    Returns
    -------
    SpotResult
        The spots (:class:`~mecg.model.spots.Spot`, frames inclusive), per-frame scores, frame rate.

    Raises
    ------
    MecgError
        A missing or damaged model (``ModelError``), an unreadable session (``SessionError``), a failed
        sync (``SyncError``), a frame rate the model was not trained for.
    """
    checkpoint = None
    if model is not None and not isinstance(model, str | os.PathLike):
        checkpoint, model = model, None
    chosen = method or ("cmclnet" if model is not None or checkpoint is not None else "baseline")
    opts = SpotOptions(
        method=chosen,
        model=None if model is None else os.fspath(model),
        p=p,
        ccf_eta=ccf_eta,
        flow=flow,
        face_box=face_box,
        workers=workers,
        ecg_channel=ecg_channel,
        ccf_hrs=ccf_hrs,
        ccf_trial=ccf_trial,
    )
    return spot_file(path, opts, plot=plot, log=log, checkpoint=checkpoint)
