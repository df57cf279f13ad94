"""``mecg synth``: write a synthetic dataset (one session per subject and trial, plus a manifest)."""

from __future__ import annotations

import argparse
import errno
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from mecg.cli.argtypes import DRIFT_PPM, FPS, LATENCY_MS, PER_MINUTE, WORKERS, bounded, parse_size
from mecg.cli.outputs import check_folder_writable
from mecg.cli.progress import Progress, add_quiet_option
from mecg.errors import MecgError
from mecg.synth.clocks import DeviceClock
from mecg.synth.dataset import DatasetSpec, make_dataset
from mecg.synth.face import Led
from mecg.synth.participant import TrialConfig
from mecg.synth.realism import DEFAULT_CLI_REALISM, REALISM_NAMES


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
        realism=args.realism,
    )


def write_dataset_atomically(
    out: Path, args: argparse.Namespace, config: TrialConfig, progress: Callable[[dict], None]
) -> dict:
    """Make the dataset in a hidden folder inside ``out`` and move it in only when every file is complete.

    A failed write (a full disk, a quota) removes the hidden folder, so no partial session file or
    manifest is ever left under a dataset's names, and is one :class:`MecgError` saying what to do.
    The manifest is moved last: a folder with a manifest holds a whole dataset.
    """
    try:
        stage = Path(tempfile.mkdtemp(prefix=".synth-partial-", dir=out))
    except OSError as exc:
        raise MecgError(f"cannot write in {out}: {exc.strerror or exc}; choose another folder") from None
    try:
        spec = DatasetSpec(str(stage), args.subjects, args.trials, args.seed, config)
        manifest = make_dataset(spec, workers=args.workers, progress=progress)
        for f in manifest["files"]:
            os.replace(stage / f["file"], out / f["file"])
        os.replace(stage / "manifest.json", out / "manifest.json")
    except Exception as exc:
        full = _disk_full(exc)
        if not full and (isinstance(exc, MecgError) or not isinstance(exc, OSError)):
            raise
        why = "the disk is full" if full else (exc.strerror or str(exc))
        raise MecgError(
            f"cannot write the dataset to {out}: {why}; no partial file was left. "
            "Free some space, choose another folder, or make less (--subjects, --trials, --duration, --size)"
        ) from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return manifest


def _disk_full(exc: BaseException | None) -> bool:
    """Whether ``exc`` or an exception it arose from is a full disk or quota (h5py reports it in the text)."""
    while exc is not None:
        if getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            return True
        if any(s in str(exc) for s in ("No space left", "errno = 28", "Disk quota")):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _synth(args: argparse.Namespace) -> int:
    out = Path(args.out_dir)
    if out.exists() and not out.is_dir():
        raise MecgError(f"{out} exists and is not a folder; choose a folder for the dataset")
    if (out / "manifest.json").exists() and not args.overwrite:
        raise MecgError(f"{out} already holds a dataset (manifest.json); pass --overwrite or choose another folder")
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MecgError(f"cannot create the dataset folder {out}: {exc.strerror or exc}") from None
    config = config_from_args(args)
    total = args.subjects * args.trials
    t0 = time.perf_counter()
    done = 0
    with Progress(total, "synth", "session", quiet=args.quiet) as bar:

        def progress(rec: dict) -> None:
            nonlocal done
            done += 1
            bar.update()
            bar.log(
                f"[{done}/{total}] {rec['file']}: {rec['frames']} frames, {rec['n_me']} ME, {rec['n_mae']} MaE "
                f"({time.perf_counter() - t0:.1f} s)"
            )

        try:
            check_folder_writable(out, f"synth {out}")  # before anything is rendered
            manifest = write_dataset_atomically(out, args, config, progress)
        except MecgError:
            if created:
                shutil.rmtree(out, ignore_errors=True)  # only the hidden staging folder could have been in it
            raise
    n_me = sum(f["n_me"] for f in manifest["files"])
    n_mae = sum(f["n_mae"] for f in manifest["files"])
    files = [str(out / f["file"]) for f in manifest["files"]]
    if args.json:
        print(
            json.dumps(
                {
                    "command": "synth",
                    "out_dir": str(out),
                    "manifest": str(out / "manifest.json"),
                    "files": [*files, str(out / "manifest.json")],
                    "sessions": [{**f, "path": str(out / f["file"])} for f in manifest["files"]],
                    "n_me": n_me,
                    "n_mae": n_mae,
                    "seed": args.seed,
                    "realism": args.realism,
                    "seconds": round(time.perf_counter() - t0, 3),
                },
                indent=2,
            )
        )
        return 0
    print(f"wrote {len(files)} sessions ({n_me} ME, {n_mae} MaE, realism {args.realism}) and manifest.json to {out}")
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
    p.add_argument("--subjects", type=bounded(int, 1, 1000), default=1, help="number of subjects (default 1)")
    p.add_argument("--trials", type=bounded(int, 1, 1000), default=1, help="trials per subject (default 1)")
    p.add_argument(
        "--duration",
        type=bounded(float, 0, 3600, lo_open=True, unit="s"),
        default=60.0,
        help="trial length in s (default 60)",
    )
    p.add_argument("--fps", type=FPS, default=150.0, help="camera frame rate in Hz, at most 1000 (default 150)")
    p.add_argument("--size", type=parse_size, default=(640, 480), help="frame size WxH (default 640x480)")
    p.add_argument("--color", action="store_true", help="RGB frames instead of grey")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--coupling",
        type=bounded(float, 0, 10),
        default=1.0,
        help="heart response to expressions, 0-10; 0 = none (default 1)",
    )
    p.add_argument(
        "--realism",
        choices=REALISM_NAMES,
        default=DEFAULT_CLI_REALISM,
        help="the participants' confounds: easy (every ME moves the heart alike, one face, clean ECG), "
        "paper (unreliable heart responses, unrelated accelerations, ECG artefacts, 8 faces, talking, "
        f"lighting changes, as in docs/synth.md) or hard (more of all; a stress test) (default {DEFAULT_CLI_REALISM})",
    )
    p.add_argument(
        "--me-per-min", type=PER_MINUTE, default=2.5, help="micro-expressions per minute, 0-60 (default 2.5)"
    )
    p.add_argument("--mae-per-min", type=PER_MINUTE, default=2.0, help="macro-expressions per minute, 0-60 (default 2)")
    p.add_argument(
        "--clock-offset-ms",
        type=bounded(float, -3.6e6, 3.6e6, unit="ms"),
        default=0.0,
        help="camera sender clock offset in ms, within an hour (default 0)",
    )
    p.add_argument("--drift-ppm", type=DRIFT_PPM, default=0.0, help="camera clock drift in ppm (default 0)")
    p.add_argument("--jitter-ms", type=LATENCY_MS, default=2.0, help="camera timestamp jitter in ms (default 2)")
    p.add_argument(
        "--camera-latency-ms", type=LATENCY_MS, default=30.0, help="exposure-to-host latency in ms (default 30)"
    )
    p.add_argument(
        "--led-occlusion",
        type=bounded(float, 0, 1, hi_open=True),
        default=0.0,
        help="fraction of the trigger LED hidden, in [0, 1) (default 0)",
    )
    p.add_argument("--no-strobe", action="store_true", help="do not record the camera strobe on the amplifier")
    p.add_argument("--workers", type=WORKERS, default=None, help="parallel processes (default: all cores)")
    p.add_argument("--overwrite", action="store_true", help="replace a dataset already in OUT_DIR")
    p.add_argument("--json", action="store_true", help="print one JSON object: the files written and their contents")
    add_quiet_option(p)
    p.set_defaults(func=_synth)
