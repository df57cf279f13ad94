"""Spotting front end speed and the classical baseline's accuracy.

1. Speed: frames/s of the default front end (decode, face crop + tracking, DIS flow, ROI
   features) on all cores at 150 fps 640x480, and of the same pipeline with TV-L1 flow as most
   papers use it, on the same frames (goal: default >= 750 frames/s, 5x real time).
2. Accuracy: MEGC P/R/F1 of the baseline spotter on a synthetic dataset (settings printed).
Prints tables and writes benchmarks/results/frontend.json.

    python benchmarks/bench_frontend.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from mecg.model.baseline import BaselineParams, spot_baseline
from mecg.model.evaluate import Interval, evaluate
from mecg.model.frontend import FrontEndParams, default_k, frontend_features
from mecg.session import open_session
from mecg.synth import DatasetSpec, Subject, Trial, TrialConfig, make_dataset, write_trial

RESULTS = Path(__file__).parent / "results"


def speed(tmp: Path, seconds: float, tvl1_frames: int) -> list[dict]:
    cfg = replace(TrialConfig(), duration_s=seconds, fps=150, width=640, height=480)
    path = write_trial(Trial(Subject.random("S01", 1), 0, cfg), tmp / "speed.h5")
    rows = []
    for method, workers in (("dis", os.cpu_count()), ("dis", 1), ("tvl1", os.cpu_count())):
        p = FrontEndParams(k_frames=default_k(150), method=method)
        target = path
        if method == "tvl1":  # TV-L1 is slow: time it on the first frames only
            short = replace(cfg, duration_s=tvl1_frames / 150 + 0.1)
            target = write_trial(Trial(Subject.random("S01", 1), 0, short), tmp / "tvl1.h5")
        with open_session(target) as s:
            frames = s.stream(kind="video").sample_count
        t0 = time.perf_counter()
        frontend_features(target, p, workers=workers, cache=False)
        dt = time.perf_counter() - t0
        rows.append(
            {
                "method": method,
                "workers": workers,
                "frames": frames,
                "seconds": round(dt, 2),
                "frames_per_s": round(frames / dt, 1),
                "x_real_time_150fps": round(frames / dt / 150, 2),
            }
        )
    return rows


def accuracy(tmp: Path, subjects: int, trials: int, duration: float, seed: int) -> dict:
    cfg = replace(TrialConfig(), duration_s=duration, fps=60, width=320, height=240)
    spec = DatasetSpec(str(tmp / "ds"), subjects, trials, seed, cfg)
    make_dataset(spec)
    preds, truth = [], []
    for f in sorted((tmp / "ds").glob("*.h5")):
        feats = frontend_features(f, FrontEndParams(k_frames=default_k(60)))
        rows, _ = spot_baseline(feats, 60.0, f.stem, BaselineParams())
        preds += [r.interval() for r in rows]
        with open_session(f) as s:
            truth += [Interval(f.stem, a.onset_frame, a.offset_frame, a.type) for a in s.annotations]
    res = evaluate(preds, truth)
    return {
        "settings": {
            "subjects": subjects,
            "trials": trials,
            "duration_s": duration,
            "fps": 60,
            "size": "320x240",
            "seed": seed,
            "p": BaselineParams().p,
        },
        "results": {k: v.as_dict() for k, v in res.items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="shorter video and a smaller dataset")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="mecg-bench-fe-") as d:
        tmp = Path(d)
        sp = speed(tmp, 4.0 if args.quick else 20.0, 30 if args.quick else 150)
        acc = accuracy(tmp, *((2, 1, 30.0) if args.quick else (6, 2, 60.0)), seed=0)
    print("Front end speed, 640x480 mono at 150 fps (decode + crop/track + flow + ROI features):")
    print(f"{'flow':>6} {'procs':>5} {'frames':>7} {'s':>7} {'frames/s':>9} {'x real time':>11}")
    for r in sp:
        print(
            f"{r['method']:>6} {r['workers']:>5} {r['frames']:>7} {r['seconds']:>7} {r['frames_per_s']:>9} "
            f"{r['x_real_time_150fps']:>11}"
        )
    print("goal: default (dis, all cores) >= 750 frames/s")
    st = acc["settings"]
    print(
        f"\nBaseline spotter on synthetic data ({st['subjects']} subjects x {st['trials']} trials x "
        f"{st['duration_s']:g} s, {st['fps']} fps {st['size']}, seed {st['seed']}, p={st['p']}):"
    )
    print(f"{'':8} {'TP':>5} {'FP':>5} {'FN':>5} {'P':>7} {'R':>7} {'F1':>7}")
    for name, c in acc["results"].items():
        print(f"{name:8} {c['tp']:>5} {c['fp']:>5} {c['fn']:>5} {c['precision']:>7} {c['recall']:>7} {c['f1']:>7}")
    RESULTS.mkdir(exist_ok=True)
    out = {
        "benchmark": "frontend",
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "speed": sp,
        "baseline": acc,
    }
    (RESULTS / "frontend.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {RESULTS / 'frontend.json'}")


if __name__ == "__main__":
    main()
