"""``mecg spot``: find expression intervals in one session or a folder of sessions."""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from mecg.cli.argtypes import JOBS, WORKERS, bounded
from mecg.cli.outputs import check_output_file
from mecg.cli.progress import Progress, add_quiet_option
from mecg.errors import MecgError
from mecg.model.evaluate import write_predictions
from mecg.model.frontend import FLOW_METHODS
from mecg.model.parallel import map_sessions
from mecg.model.spots import Spot
from mecg.model.spotting import SpotOptions, SpotResult, load_spotter, spot_file
from mecg.session.files import session_files


def session_paths(target: str) -> list[Path]:
    """A session file, or every ``*.h5`` in a folder (sorted)."""
    return session_files(target)


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


def spot_one(
    opts: SpotOptions, plot: str | None, many: bool, path: Path, log: Callable[[str], None] | None = None
) -> tuple[SpotResult, str | None]:
    """Spot one session (a ``--jobs`` worker's task): its result and the plot written (if any)."""
    out = str(_plot_path(plot, path.stem, many)) if plot else None
    return spot_file(path, opts, plot=out, log=log), out


def _spot(args: argparse.Namespace) -> int:
    check_output_file(args.out, f"--out {args.out}")  # before any model, session or feature is touched
    if args.plot:
        check_output_file(args.plot, f"--plot {args.plot}")
    paths = session_paths(args.target)
    if args.model:
        args.method = "cmclnet"
    if args.method == "cmclnet" and not args.model:
        raise MecgError("--method cmclnet needs --model MODEL.pt (train one with `mecg train`)")
    if args.device == "cuda":  # refused before any work when this machine has no CUDA
        from mecg.model.pipeline import check_device

        check_device("cuda")
    opts = SpotOptions(
        method=args.method,
        model=args.model,
        p=args.p,
        ccf_eta=None if args.no_ccf else args.ccf_eta,
        flow=args.flow,
        face_box=parse_box(args.face_box),
        # the front end's pieces depend on this number, so every --jobs gives the same features
        workers=args.workers or os.cpu_count() or 1,
        ecg_channel=args.ecg_channel,
        device=args.device,
        ccf_hrs=args.ccf_hrs,
        ccf_trial=args.ccf_trial,
    )
    if opts.method == "cmclnet":
        ck = load_spotter(opts.model)  # a bad checkpoint fails here, once, before any worker starts
        if opts.ccf_eta is not None and ck.mode != "video":
            from mecg.model.pipeline import ccf_rule, ccf_threshold

            ccf_threshold(ck.spot, opts.ccf_eta)  # an eta the model holds no threshold for: refused before any work
            ccf_rule(ck.spot, opts.ccf_hrs, opts.ccf_trial)
        if args.jobs == 1:
            import torch

            torch.set_num_threads(2)
    if args.as_live:
        return _spot_as_live(args, paths, opts)
    spots: list[Spot] = []
    done: list[tuple[SpotResult, str | None]] = []
    t0 = time.perf_counter()
    many = Path(args.target).is_dir()
    with Progress(len(paths), "spot", "session", quiet=args.quiet) as bar:
        task = partial(spot_one, opts, args.plot, many)
        fn = partial(task, log=bar.log) if args.jobs == 1 else task
        for n, (res, plot) in enumerate(map_sessions(fn, paths, args.jobs), 1):
            for line in res.log:
                (bar.warn if line.startswith(("notice", "warning")) else bar.log)(line)
            bar.log(f"[{n}/{len(paths)}] {res.summary}")
            bar.update()
            spots += res.spots
            done.append((res, plot))
    write_predictions(args.out, spots)
    dt = time.perf_counter() - t0
    frames = sum(r.frames for r, _ in done)
    plots = [p for _, p in done if p]
    if args.json:
        print(
            json.dumps(
                {
                    "command": "spot",
                    "method": opts.method,
                    "out": str(args.out),
                    "plots": plots,
                    "files": [str(args.out), *plots],
                    "spots": len(spots),
                    "kept_by_ccf": sum(s.kept_by_ccf for s in spots),
                    "sessions": [
                        {
                            "session": r.session,
                            "file": str(r.file),
                            "frames": r.frames,
                            "plot": p,
                            "spots": len(r.spots),
                        }
                        for r, p in done
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
        f"{len(spots)} candidates ({sum(s.kept_by_ccf for s in spots)} kept)"
        if opts.method == "cmclnet"
        else f"{len(spots)} spots"
    )
    print(
        f"wrote {what} from {len(paths)} session(s) to {args.out} ({frames / dt:.0f} frames/s including the front end)"
    )
    return 0


def _spot_as_live(args: argparse.Namespace, paths: list[Path], opts: SpotOptions) -> int:
    """``--as-live``: each session replayed through the live spotter, as ``mecg record --live-spot`` spots."""
    from mecg.model.live_spotter import LiveSpotParams, LiveSpotter, replay_live

    ck = load_spotter(opts.model) if opts.method == "cmclnet" else None
    # as mecg record --live-spot: the CCF (--ccf-eta, --no-ccf) judges the baseline's MEs too
    params = LiveSpotParams(method=opts.method, p=opts.p, ccf_eta=opts.ccf_eta, face_box=opts.face_box)
    spots: list[Spot] = []
    t0 = time.perf_counter()
    with Progress(len(paths), "spot --as-live", "session", quiet=args.quiet) as bar:
        for n, path in enumerate(paths, 1):
            found = replay_live(path, LiveSpotter(path.stem, params, ck, args.ecg_channel))
            spots += [c.spot for c in found]
            bar.log(f"[{n}/{len(paths)}] {path.name}: {len(found)} candidates as live spotting decides them")
            bar.update()
    write_predictions(args.out, spots)
    kept = sum(s.kept_by_ccf for s in spots)
    if args.json:
        out = {"command": "spot", "method": opts.method, "as_live": True, "out": str(args.out)}
        out |= {"files": [str(args.out)], "spots": len(spots), "kept_by_ccf": kept}
        out["seconds"] = round(time.perf_counter() - t0, 3)
        print(json.dumps(out, indent=2))
    else:
        n = len(paths)
        print(f"wrote {len(spots)} candidates ({kept} kept), spotted as live, from {n} session(s) to {args.out}")
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
        help="CCF: keep if HRS(apex) > eta x trial mean HRS, 0-100 (default 2.0); the model must hold a "
        "threshold for it (mecg train --ccf-etas)",
    )
    p.add_argument(
        "--ccf-hrs",
        metavar="apex|window[:S]",
        default=None,
        help="CCF: HRS exactly at the spotted apex (apex, the paper's rule) or its max within +-S s (window, "
        "S default 0.25); default: the rule the model was trained with",
    )
    p.add_argument(
        "--ccf-trial",
        choices=("auto", "session", "stimulus"),
        default=None,
        help="CCF trial mean HRS: per stimulus segment (numeric stimulus markers), the whole session, or auto "
        "(segments when there are markers); default: the rule the model was trained with",
    )
    p.add_argument("--no-ccf", action="store_true", help="do not apply the candidate clip filter")
    p.add_argument(
        "--as-live",
        action="store_true",
        help="replay each session through the live spotter (what mecg record --live-spot decides while recording: "
        "running statistics instead of whole-session ones, the CCF on the baseline's MEs too; docs/spotting.md)",
    )
    p.add_argument(
        "--ecg-channel",
        metavar="[STREAM:]LABEL|INDEX",
        default="",
        help="the ECG channel when a session must be synced first, e.g. OpenBCI:ECG (INDEX 0-based; default: "
        "the choice stored by mecg record, else the one stream of type ECG or with a channel labelled ECG/EKG)",
    )
    p.add_argument("--flow", choices=FLOW_METHODS, default="dis", help="optical flow (default dis)")
    p.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default="cpu",
        help="where CMCL-Net runs (default cpu); cuda needs a CUDA build of PyTorch and a GPU; the front end "
        "always runs on the CPU",
    )
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
