"""Synthetic data generation speed.

Measures (1) rendering + writing speed of one trial at 150 fps 640x480 mono and at the test
size, in frames/s and x real time, on one process; (2) the wall time of the issue's goal
dataset, 10 subjects x 4 trials x 60 s at 60 fps 320x240, on all cores (goal < 5 min on 2).
Prints a table and writes benchmarks/results/synth.json.

    python benchmarks/bench_synth.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from mecg.synth import DatasetSpec, Subject, Trial, TrialConfig, make_dataset, write_trial

RESULTS = Path(__file__).parent / "results"


def one_trial(cfg: TrialConfig, tmp: Path) -> dict:
    """Render and write one trial; frames/s counts the whole path into the session file."""
    trial = Trial(Subject.random("S01", 1), 0, cfg)
    t0, c0 = time.perf_counter(), time.process_time()
    path = write_trial(trial, tmp / f"t_{cfg.width}x{cfg.height}_{cfg.fps:g}.h5", overwrite=True)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    size = path.stat().st_size
    path.unlink()
    return {
        "realism": cfg.realism,
        "size": f"{cfg.width}x{cfg.height}",
        "fps": cfg.fps,
        "duration_s": cfg.duration_s,
        "frames": trial.n_frames,
        "wall_s": round(wall, 2),
        "frames_per_s": round(trial.n_frames / wall, 1),
        "x_real_time": round(cfg.duration_s / wall, 2),
        "cpu_s": round(cpu, 2),
        "file_mb": round(size / 1e6, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short trials and a 2x1x20 s dataset instead of 10x4x60 s")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="mecg-bench-synth-"))
    try:
        dur = 4.0 if args.quick else 10.0
        rows = [
            one_trial(TrialConfig(duration_s=dur, fps=150, width=640, height=480), tmp),
            one_trial(TrialConfig(duration_s=dur, fps=60, width=320, height=240), tmp),
            one_trial(TrialConfig(duration_s=dur, fps=30, width=96, height=72), tmp),
            # mecg synth's default world: another face, mouth movements, ECG artefacts, lighting
            one_trial(TrialConfig(duration_s=dur, fps=60, width=320, height=240, realism="paper"), tmp),
        ]
        subjects, trials, dsec = (2, 1, 20.0) if args.quick else (10, 4, 60.0)
        spec = DatasetSpec(
            str(tmp / "ds"),
            subjects,
            trials,
            seed=0,
            config=replace(TrialConfig(), duration_s=dsec, fps=60, width=320, height=240),
        )
        t0 = time.perf_counter()
        manifest = make_dataset(spec)
        ds_wall = time.perf_counter() - t0
        ds_bytes = sum(p.stat().st_size for p in (tmp / "ds").glob("*.h5"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    dataset = {
        "subjects": subjects,
        "trials": trials,
        "duration_s": dsec,
        "fps": 60,
        "size": "320x240",
        "workers": os.cpu_count(),
        "sessions": len(manifest["files"]),
        "wall_s": round(ds_wall, 1),
        "gb_written": round(ds_bytes / 1e9, 2),
        "goal_s": 300 if not args.quick else None,
    }
    print("Single trial, one process (render + ECG + compress + write):")
    print(
        f"{'realism':>7} {'size':>9} {'fps':>5} {'frames':>7} {'wall s':>7} {'frames/s':>9} {'x real time':>11} "
        f"{'file MB':>8}"
    )
    for r in rows:
        print(
            f"{r['realism']:>7} {r['size']:>9} {r['fps']:>5g} {r['frames']:>7} {r['wall_s']:>7} {r['frames_per_s']:>9} "
            f"{r['x_real_time']:>11} {r['file_mb']:>8}"
        )
    print(
        f"\nDataset {subjects} subjects x {trials} trials x {dsec:g} s, 60 fps 320x240, {os.cpu_count()} processes: "
        f"{ds_wall:.1f} s wall, {dataset['gb_written']} GB" + ("  (goal: < 300 s)" if not args.quick else "")
    )
    RESULTS.mkdir(exist_ok=True)
    out = {
        "benchmark": "synth",
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "trials": rows,
        "dataset": dataset,
    }
    (RESULTS / "synth.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {RESULTS / 'synth.json'}")


if __name__ == "__main__":
    main()
