"""``mecg spot``: find expression intervals in one session or a folder of sessions."""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from mecg.cli.argtypes import JOBS, WORKERS, bounded
from mecg.cli.outputs import check_output_file
from mecg.cli.progress import Progress, add_quiet_option
from mecg.errors import MecgError
from mecg.model.baseline import BaselineParams, spot_baseline
from mecg.model.evaluate import write_predictions
from mecg.model.frontend import FLOW_METHODS, FrontEndParams, default_k, frontend_features
from mecg.model.parallel import map_sessions
from mecg.model.plot import plot_spots
from mecg.session import open_session


def session_paths(target: str) -> list[Path]:
    """A session file, or every ``*.h5`` in a folder (sorted)."""
    p = Path(target)
    if p.is_dir():
        files = sorted(p.glob("*.h5"))
        if not files:
            raise MecgError(f"{p} holds no .h5 session files")
        return files
    if not p.exists():
        raise MecgError(f"{p} does not exist; give a session file or a folder of sessions")
    return [p]


def parse_box(text: str | None) -> tuple[int, int, int, int] | None:
    if not text:
        return None
    try:
        x, y, w, h = (int(v) for v in text.split(","))
    except ValueError:
        raise MecgError(f"--face-box must be x,y,w,h in pixels, got {text!r}") from None
    if w <= 0 or h <= 0:
        raise MecgError(f"--face-box {text!r} needs a positive width and height")
    return x, y, w, h


def _plot_path(base: str, stem: str, many: bool) -> Path:
    p = Path(base)
    return p.with_name(f"{p.stem}_{stem}{p.suffix or '.png'}") if many else p


@dataclass(frozen=True)
class SpotOptions:
    """What one session's spotting needs (picklable: it travels to ``--jobs`` workers)."""

    method: str
    model: str | None
    p: float
    ccf_eta: float | None
    flow: str
    face_box: tuple[int, int, int, int] | None
    workers: int
    plot: str | None
    many: bool
    ecg_channel: str = ""


#: Checkpoints loaded in this process, by path (each ``--jobs`` worker loads the model once).
_MODELS: dict[str, tuple] = {}


def _model(path: str) -> tuple:
    if path not in _MODELS:
        from mecg.model.train import frontend_from_key, load_checkpoint

        model, window, fe_key, spot = load_checkpoint(path)
        _MODELS[path] = (model, window, frontend_from_key(fe_key), spot)
    return _MODELS[path]


def spot_one(opts: SpotOptions, path: Path, log: Callable[[str], None] | None = None) -> dict:
    """Spot one session: its rows, frames, summary line, the plot written (if any) and its log lines.

    ``log`` None collects the session's messages in ``"log"`` (a ``--jobs`` worker hands them back).
    """
    lines: list[str] = []
    say = log if log is not None else lines.append
    with open_session(path) as s:
        video = s.stream(kind="video")
        fps = video.info.nominal_srate_hz
        truth = [(a.onset_frame, a.offset_frame, a.type) for a in s.annotations]
        frames = video.sample_count
    plot = str(_plot_path(opts.plot, path.stem, opts.many)) if opts.plot else None
    if opts.method == "cmclnet":
        rows, line = _spot_model(opts, path, fps, truth, plot, say)
    else:
        params = FrontEndParams(k_frames=default_k(fps), method=opts.flow, face_box=opts.face_box)
        feats = frontend_features(path, params, workers=opts.workers)
        rows, curves = spot_baseline(feats, fps, path.stem, BaselineParams(p=opts.p))
        score = curves.pop("score")
        n_me, n_mae = sum(r["type"] == "ME" for r in rows), sum(r["type"] == "MaE" for r in rows)
        line = f"{path.name}: {n_me} ME, {n_mae} MaE spotted"
        if plot:
            plot_spots(plot, fps, score, curves, rows, truth, f"{path.name}: {opts.method} spotter")
    return {
        "session": path.stem,
        "file": str(path),
        "rows": rows,
        "frames": frames,
        "line": line,
        "plot": plot,
        "log": lines,
    }


def _spot_model(
    opts: SpotOptions, path: Path, fps: float, truth: list, plot: str | None, say: Callable[[str], None]
) -> tuple[list[dict], str]:
    from mecg.model.pipeline import ensure_synced, spot_rows
    from mecg.model.spotter import frame_scores
    from mecg.model.windows import SessionData

    assert opts.model is not None
    model, window, frontend, spot = _model(opts.model)
    if abs(default_k(fps) - frontend.k_frames) > 0:
        raise MecgError(
            f"{path.name} is {fps:g} fps but the model was trained on features for "
            f"k={frontend.k_frames} frames; train a model for this frame rate"
        )
    eta = opts.ccf_eta
    if model.config.mode != "video":
        ensure_synced(path, say, opts.ecg_channel)
    data = SessionData(str(path), window, frontend, workers=opts.workers, use_ecg=model.config.mode != "video")
    if model.config.mode == "ecg" and not data.has_ecg:
        raise MecgError(f"{path.name} has no (synced) ECG but the model is ECG-only")
    if not data.has_ecg and model.config.mode == "fusion":
        say(f"notice: {path.name} has no ECG; spotting video-only (the ECG inputs are zero) without the CCF")
    scores = frame_scores(model, data)
    found = spot_rows(model, data, spot, eta, scores=scores)
    kept = sum(r["kept_by_ccf"] for r in found)
    if plot:
        thr = (
            spot["threshold_ccf"]
            if eta is not None and data.has_ecg and spot.get("threshold_ccf")
            else spot["threshold"]
        )
        plot_spots(
            plot,
            fps,
            scores,
            {"CMCL-Net": (scores, thr)},
            found,
            truth,
            f"{path.name}: CMCL-Net" + ("" if eta is None else f" + CCF (eta {eta:g})"),
        )
    return found, f"{path.name}: {len(found)} ME candidates, {kept} kept by the CCF"


def _spot(args: argparse.Namespace) -> int:
    check_output_file(args.out, f"--out {args.out}")  # before any model, session or feature is touched
    if args.plot:
        check_output_file(args.plot, f"--plot {args.plot}")
    paths = session_paths(args.target)
    if args.model:
        args.method = "cmclnet"
    if args.method == "cmclnet" and not args.model:
        raise MecgError("--method cmclnet needs --model MODEL.pt (train one with `mecg train`)")
    opts = SpotOptions(
        method=args.method,
        model=args.model,
        p=args.p,
        ccf_eta=None if args.no_ccf else args.ccf_eta,
        flow=args.flow,
        face_box=parse_box(args.face_box),
        # the front end's pieces depend on this number, so every --jobs gives the same features
        workers=args.workers or os.cpu_count() or 1,
        plot=args.plot,
        many=Path(args.target).is_dir(),
        ecg_channel=args.ecg_channel,
    )
    if opts.method == "cmclnet":
        _model(opts.model)  # a bad checkpoint fails here, once, before any worker starts
        if args.jobs == 1:
            import torch

            torch.set_num_threads(2)
    rows: list[dict] = []
    done: list[dict] = []
    t0 = time.perf_counter()
    with Progress(len(paths), "spot", "session", quiet=args.quiet) as bar:
        fn = partial(spot_one, opts, log=bar.log) if args.jobs == 1 else partial(spot_one, opts)
        for n, res in enumerate(map_sessions(fn, paths, args.jobs), 1):
            for line in res.pop("log"):
                (bar.warn if line.startswith(("notice", "warning")) else bar.log)(line)
            bar.log(f"[{n}/{len(paths)}] {res['line']}")
            bar.update()
            rows += res.pop("rows")
            done.append(res)
    write_predictions(args.out, rows)
    dt = time.perf_counter() - t0
    frames = sum(r["frames"] for r in done)
    plots = [r["plot"] for r in done if r["plot"]]
    if args.json:
        print(
            json.dumps(
                {
                    "command": "spot",
                    "method": opts.method,
                    "out": str(args.out),
                    "plots": plots,
                    "files": [str(args.out), *plots],
                    "spots": len(rows),
                    "kept_by_ccf": sum(bool(r.get("kept_by_ccf", True)) for r in rows),
                    "sessions": [
                        {k: r[k] for k in ("session", "file", "frames", "plot")}
                        | {"spots": sum(x["session"] == r["session"] for x in rows)}
                        for r in done
                    ],
                    "jobs": args.jobs,
                    "seconds": round(dt, 3),
                },
                indent=2,
            )
        )
        return 0
    for plot in plots:
        print(f"wrote {plot}")
    what = (
        f"{len(rows)} candidates ({sum(r['kept_by_ccf'] for r in rows)} kept)"
        if opts.method == "cmclnet"
        else f"{len(rows)} spots"
    )
    print(
        f"wrote {what} from {len(paths)} session(s) to {args.out} ({frames / dt:.0f} frames/s including the front end)"
    )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``spot`` to the ``mecg`` parser."""
    p = sub.add_parser(
        "spot",
        help="spot micro- and macro-expressions in sessions",
        description="Spot expression intervals; writes a CSV that `mecg eval` reads.",
    )
    p.add_argument("target", metavar="SESSION_OR_DIR", help="a session file or a folder of sessions")
    p.add_argument("--out", required=True, help="output CSV (session, onset, apex, offset, score, type, kept_by_ccf)")
    p.add_argument("--method", choices=("baseline", "cmclnet"), default="baseline", help="spotter (default baseline)")
    p.add_argument("--model", help="trained CMCL-Net checkpoint (for --method cmclnet)")
    p.add_argument("--plot", metavar="PNG", help="draw score curve, threshold, spots and ground truth")
    p.add_argument(
        "--p", type=bounded(float, 0, 1), default=0.55, help="baseline threshold fraction p, 0-1 (default 0.55)"
    )
    p.add_argument(
        "--ccf-eta",
        type=bounded(float, 0, 100),
        default=2.0,
        help="CCF: keep if HRS(apex) > eta x mean HRS, 0-100 (default 2.0)",
    )
    p.add_argument("--no-ccf", action="store_true", help="do not apply the candidate clip filter")
    p.add_argument(
        "--ecg-channel",
        metavar="[STREAM:]LABEL|INDEX",
        default="",
        help="the ECG channel when a session must be synced first, e.g. OpenBCI:ECG (INDEX 0-based; default: "
        "the choice stored by mecg record, else the one stream of type ECG or with a channel labelled ECG/EKG)",
    )
    p.add_argument("--flow", choices=FLOW_METHODS, default="dis", help="optical flow (default dis)")
    p.add_argument("--face-box", metavar="X,Y,W,H", help="face box in pixels when detection fails")
    p.add_argument(
        "--workers", type=WORKERS, default=None, help="pieces (processes) of one video's front end (default: all cores)"
    )
    p.add_argument(
        "--jobs",
        type=JOBS,
        default=1,
        metavar="N",
        help="sessions spotted at once, one per process (default 1); same output for every N",
    )
    p.add_argument(
        "--json", action="store_true", help="print one JSON object: the files written and per-session counts"
    )
    add_quiet_option(p)
    p.set_defaults(func=_spot)
