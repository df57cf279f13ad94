"""``mecg spot``: find expression intervals in one session or a folder of sessions."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from mecg.cli.argtypes import WORKERS, bounded
from mecg.cli.outputs import check_output_file
from mecg.errors import MecgError
from mecg.model.baseline import BaselineParams, spot_baseline
from mecg.model.evaluate import write_predictions
from mecg.model.frontend import FLOW_METHODS, FrontEndParams, default_k, frontend_features
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


def _spot(args: argparse.Namespace) -> int:
    check_output_file(args.out, f"--out {args.out}")  # before any model, session or feature is touched
    if args.plot:
        check_output_file(args.plot, f"--plot {args.plot}")
    paths = session_paths(args.target)
    if args.model:
        args.method = "cmclnet"
    if args.method == "cmclnet" and not args.model:
        raise MecgError("--method cmclnet needs --model MODEL.pt (train one with `mecg train`)")
    if args.method == "cmclnet":
        return _spot_model(args, paths)
    rows: list[dict] = []
    t0 = time.perf_counter()
    frames = 0
    for n, path in enumerate(paths, 1):
        with open_session(path) as s:
            video = s.stream(kind="video")
            fps = video.info.nominal_srate_hz
            truth = [(a.onset_frame, a.offset_frame, a.type) for a in s.annotations]
            frames += video.sample_count
        params = FrontEndParams(k_frames=default_k(fps), method=args.flow, face_box=parse_box(args.face_box))
        feats = frontend_features(path, params, workers=args.workers)
        spots, curves = spot_baseline(feats, fps, path.stem, BaselineParams(p=args.p))
        score = curves.pop("score")
        rows += spots
        print(
            f"[{n}/{len(paths)}] {path.name}: {sum(r['type'] == 'ME' for r in spots)} ME, "
            f"{sum(r['type'] == 'MaE' for r in spots)} MaE spotted",
            file=sys.stderr,
            flush=True,
        )
        if args.plot:
            plot_spots(
                _plot_path(args.plot, path.stem, Path(args.target).is_dir()),
                fps,
                score,
                curves,
                spots,
                truth,
                f"{path.name}: {args.method} spotter",
            )
    write_predictions(args.out, rows)
    dt = time.perf_counter() - t0
    print(
        f"wrote {len(rows)} spots from {len(paths)} session(s) to {args.out} "
        f"({frames / dt:.0f} frames/s including the front end)"
    )
    return 0


def _spot_model(args: argparse.Namespace, paths: list[Path]) -> int:
    import torch

    from mecg.model.pipeline import ensure_synced, spot_rows
    from mecg.model.spotter import frame_scores
    from mecg.model.train import frontend_from_key, load_checkpoint
    from mecg.model.windows import SessionData

    torch.set_num_threads(2)
    model, window, fe_key, spot = load_checkpoint(args.model)
    frontend = frontend_from_key(fe_key)
    eta = None if args.no_ccf else args.ccf_eta
    rows: list[dict] = []
    t0, frames = time.perf_counter(), 0
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    for n, path in enumerate(paths, 1):
        with open_session(path) as s:
            fps = s.stream(kind="video").info.nominal_srate_hz
            truth = [(a.onset_frame, a.offset_frame, a.type) for a in s.annotations]
        if abs(default_k(fps) - frontend.k_frames) > 0:
            raise MecgError(
                f"{path.name} is {fps:g} fps but the model was trained on features for "
                f"k={frontend.k_frames} frames; train a model for this frame rate"
            )
        if model.config.mode != "video":
            ensure_synced(path, log)
        data = SessionData(str(path), window, frontend, workers=args.workers, use_ecg=model.config.mode != "video")
        if model.config.mode == "ecg" and not data.has_ecg:
            raise MecgError(f"{path.name} has no (synced) ECG but the model is ECG-only")
        if not data.has_ecg and model.config.mode == "fusion":
            log(f"notice: {path.name} has no ECG; spotting video-only (the ECG inputs are zero) without the CCF")
        scores = frame_scores(model, data)
        found = spot_rows(model, data, spot, eta, scores=scores)
        rows += found
        frames += data.n
        kept = sum(r["kept_by_ccf"] for r in found)
        log(f"[{n}/{len(paths)}] {path.name}: {len(found)} ME candidates, {kept} kept by the CCF")
        if args.plot:
            thr = (
                spot["threshold_ccf"]
                if eta is not None and data.has_ecg and spot.get("threshold_ccf")
                else spot["threshold"]
            )
            plot_spots(
                _plot_path(args.plot, path.stem, Path(args.target).is_dir()),
                fps,
                scores,
                {"CMCL-Net": (scores, thr)},
                found,
                truth,
                f"{path.name}: CMCL-Net" + ("" if eta is None else f" + CCF (eta {eta:g})"),
            )
    write_predictions(args.out, rows)
    dt = time.perf_counter() - t0
    print(
        f"wrote {len(rows)} candidates ({sum(r['kept_by_ccf'] for r in rows)} kept) from {len(paths)} session(s) "
        f"to {args.out} ({frames / dt:.0f} frames/s including the front end)"
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
    p.add_argument("--flow", choices=FLOW_METHODS, default="dis", help="optical flow (default dis)")
    p.add_argument("--face-box", metavar="X,Y,W,H", help="face box in pixels when detection fails")
    p.add_argument("--workers", type=WORKERS, default=None, help="processes for the front end (default: all cores)")
    p.set_defaults(func=_spot)
