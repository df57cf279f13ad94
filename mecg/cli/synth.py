"""``mecg synth``: write a synthetic dataset (one session per subject and trial, plus a manifest)."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

from mecg.cli.argtypes import nonneg_float, parse_size, positive
from mecg.errors import MecgError
from mecg.synth.clocks import DeviceClock
from mecg.synth.dataset import DatasetSpec, make_dataset
from mecg.synth.face import Led
from mecg.synth.participant import TrialConfig


def config_from_args(args: argparse.Namespace) -> TrialConfig:
    """The trial configuration the options describe."""
    w, h = args.size
    base = TrialConfig()
    cam = replace(
        base.camera,
        offset_s=args.clock_offset_ms / 1000.0,
        drift_ppm=args.drift_ppm,
        jitter_s=args.jitter_ms / 1000.0,
        latency_s=args.camera_latency_ms / 1000.0,
    )
    amp: DeviceClock = base.amplifier
    return TrialConfig(
        duration_s=args.duration,
        fps=args.fps,
        width=w,
        height=h,
        color=args.color,
        coupling=args.coupling,
        me_per_min=args.me_per_min,
        mae_per_min=args.mae_per_min,
        strobe=not args.no_strobe,
        led=Led(occlusion=args.led_occlusion),
        camera=cam,
        amplifier=amp,
    )


def _synth(args: argparse.Namespace) -> int:
    out = Path(args.out_dir)
    if out.exists() and not out.is_dir():
        raise MecgError(f"{out} exists and is not a folder; choose a folder for the dataset")
    if (out / "manifest.json").exists() and not args.overwrite:
        raise MecgError(f"{out} already holds a dataset (manifest.json); pass --overwrite or choose another folder")
    if not 0 <= args.led_occlusion < 1:
        raise MecgError(f"--led-occlusion must be in [0, 1), got {args.led_occlusion}")
    if args.coupling < 0:
        raise MecgError(f"--coupling must be >= 0, got {args.coupling}")
    spec = DatasetSpec(str(out), args.subjects, args.trials, args.seed, config_from_args(args))
    total = args.subjects * args.trials
    t0 = time.perf_counter()
    done = 0

    def progress(rec: dict) -> None:
        nonlocal done
        done += 1
        print(
            f"[{done}/{total}] {rec['file']}: {rec['frames']} frames, {rec['n_me']} ME, {rec['n_mae']} MaE "
            f"({time.perf_counter() - t0:.1f} s)",
            file=sys.stderr,
            flush=True,
        )

    manifest = make_dataset(spec, workers=args.workers, progress=progress)
    n_me = sum(f["n_me"] for f in manifest["files"])
    n_mae = sum(f["n_mae"] for f in manifest["files"])
    print(f"wrote {len(manifest['files'])} sessions ({n_me} ME, {n_mae} MaE) and manifest.json to {out}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``synth`` to the ``mecg`` parser."""
    p = sub.add_parser(
        "synth",
        help="generate synthetic participants (video + ECG + triggers + annotations)",
        description="Write one session file per subject and trial, with annotations and a manifest. "
        "Same seed, same bytes.",
    )
    p.add_argument("out_dir", help="folder for the session files and manifest.json")
    p.add_argument("--subjects", type=positive(int), default=1, help="number of subjects (default 1)")
    p.add_argument("--trials", type=positive(int), default=1, help="trials per subject (default 1)")
    p.add_argument("--duration", type=positive(float), default=60.0, help="trial length in s (default 60)")
    p.add_argument("--fps", type=positive(float), default=150.0, help="camera frame rate in Hz (default 150)")
    p.add_argument("--size", type=parse_size, default=(640, 480), help="frame size WxH (default 640x480)")
    p.add_argument("--color", action="store_true", help="RGB frames instead of grey")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--coupling", type=float, default=1.0, help="heart response to expressions; 0 = none (default 1)")
    p.add_argument("--me-per-min", type=nonneg_float, default=2.5, help="micro-expressions per minute (default 2.5)")
    p.add_argument("--mae-per-min", type=nonneg_float, default=2.0, help="macro-expressions per minute (default 2)")
    p.add_argument("--clock-offset-ms", type=float, default=0.0, help="camera sender clock offset in ms (default 0)")
    p.add_argument("--drift-ppm", type=float, default=0.0, help="camera clock drift in ppm (default 0)")
    p.add_argument("--jitter-ms", type=float, default=2.0, help="camera timestamp jitter in ms (default 2)")
    p.add_argument("--camera-latency-ms", type=float, default=30.0, help="exposure-to-host latency in ms (default 30)")
    p.add_argument("--led-occlusion", type=float, default=0.0, help="fraction of the trigger LED hidden (default 0)")
    p.add_argument("--no-strobe", action="store_true", help="do not record the camera strobe on the amplifier")
    p.add_argument("--workers", type=positive(int), default=None, help="parallel processes (default: all cores)")
    p.add_argument("--overwrite", action="store_true", help="replace a dataset already in OUT_DIR")
    p.set_defaults(func=_synth)
