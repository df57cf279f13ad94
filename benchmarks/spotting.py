"""Leave-one-subject-out ME spotting on synthetic participants: the paper's Table 3, eta sweep, null control.

Generates two synthetic datasets with one seed (coupling 1, and coupling 0 as the null control),
syncs them, extracts features, then per LOSO fold trains every variant on the other subjects
(thresholds chosen on a validation subject inside the training folds, never on the test
subject) and spots the held-out subject. Prints TP/FP/FN/P/R/F1 (ME) for: baseline, video only,
ECG only, video + ECG, video + ECG + CCF; the CCF eta sweep (1.3-2.3); the null control; and the
spotting speed at 150 fps 640x480 including the front end. Writes benchmarks/results/spotting.json.

    python benchmarks/spotting.py [--quick] [--subjects 6 --trials 2 --duration 60 --seed 0]
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

import torch

from mecg.model.baseline import BaselineParams, spot_baseline
from mecg.model.cmclnet import CMCLConfig
from mecg.model.evaluate import Interval, evaluate
from mecg.model.frontend import FrontEndParams, default_k, frontend_features
from mecg.model.pipeline import ensure_synced, fit, load_sessions, loso
from mecg.model.spotter import frame_scores
from mecg.model.train import TrainConfig
from mecg.model.windows import SessionData, WindowParams
from mecg.synth import DatasetSpec, Subject, Trial, TrialConfig, make_dataset, write_trial

RESULTS = Path(__file__).parent / "results"
ETAS = (1.3, 1.5, 1.7, 2.0, 2.3)


def baseline_loso(data: list[SessionData]) -> dict:
    """The classical spotter needs no training (fixed p = 0.55); its ME rows over all subjects."""
    preds, truth = [], []
    for d in data:
        feats = frontend_features(d.path, d.frontend_params)
        rows, _ = spot_baseline(feats, d.fps, d.name, BaselineParams())
        preds += [r.interval() for r in rows if r.type == "ME"]
        truth += [Interval(d.name, a.onset_frame, a.offset_frame, "ME") for a in d.annotations if a.type == "ME"]
    return evaluate(preds, truth)["me"].as_dict()


def spotting_speed(tmp: Path, data: list[SessionData], tc: TrainConfig, seconds: float) -> dict:
    """Frames/s of CMCL-Net spotting (front end + ECG features + windows + network) at 150 fps 640x480,
    on a session already synced."""
    model, _ = fit(data[: min(3, len(data))], CMCLConfig(), replace(tc, epochs=1, pretrain_epochs=0, log=False))
    cfg = replace(TrialConfig(), duration_s=seconds, fps=150, width=640, height=480)
    path = write_trial(Trial(Subject.random("S99", 99), 0, cfg), tmp / "speed.h5")
    ensure_synced(path, lambda m: None)  # sync is its own step (mecg sync); not part of spotting speed
    t0 = time.perf_counter()
    [d] = load_sessions([path], WindowParams(), FrontEndParams(k_frames=default_k(150)), log=lambda m: None)
    scores = frame_scores(model, d)
    dt = time.perf_counter() - t0
    return {
        "frames": int(scores.size),
        "seconds": round(dt, 2),
        "frames_per_s": round(scores.size / dt, 1),
        "x_real_time": round(scores.size / dt / 150, 2),
        "size": "640x480",
        "fps": 150,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 subjects x 1 trial x 40 s, 3 epochs (a smoke run)")
    ap.add_argument("--subjects", type=int, default=6)
    ap.add_argument("--trials", type=int, default=2)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--pretrain-epochs", type=int, default=3)
    ap.add_argument("--no-null", action="store_true", help="skip the null-control dataset")
    args = ap.parse_args()
    if args.quick:
        args.subjects, args.trials, args.duration, args.epochs, args.pretrain_epochs = 3, 1, 40.0, 3, 1
    torch.set_num_threads(2)
    tc = TrainConfig(
        epochs=args.epochs,
        pretrain_epochs=args.pretrain_epochs,
        seed=args.seed,
        max_negatives_per_session=150,
        log=False,
    )
    settings = {
        "subjects": args.subjects,
        "trials": args.trials,
        "duration_s": args.duration,
        "fps": 60,
        "size": "320x240",
        "seed": args.seed,
        "epochs": args.epochs,
        "pretrain_epochs": args.pretrain_epochs,
    }
    t_start = time.perf_counter()
    out: dict = {"benchmark": "spotting", "machine": platform.platform(), "cpus": os.cpu_count(), "settings": settings}
    with tempfile.TemporaryDirectory(prefix="mecg-bench-spot-") as d:
        tmp = Path(d)
        datasets = {"coupled": 1.0} if args.no_null else {"coupled": 1.0, "null": 0.0}
        for name, coupling in datasets.items():
            cfg = replace(TrialConfig(), duration_s=args.duration, fps=60, width=320, height=240, coupling=coupling)
            make_dataset(DatasetSpec(str(tmp / name), args.subjects, args.trials, args.seed, cfg))
            t0 = time.perf_counter()
            data = load_sessions(sorted((tmp / name).glob("*.h5")), WindowParams(), log=lambda m: None)
            prep = time.perf_counter() - t0
            print(f"[{name}] {len(data)} sessions ready ({prep:.0f} s: sync + features)", flush=True)
            rows: dict = {"baseline": baseline_loso(data)}
            modes = ("video", "ecg", "fusion") if name == "coupled" else ("video", "fusion")
            for mode in modes:
                t0 = time.perf_counter()
                res = loso(
                    data, CMCLConfig(mode=mode), tc, etas=ETAS if mode == "fusion" else (2.0,), log=lambda m: None
                )
                print(f"[{name}] {mode}: LOSO in {time.perf_counter() - t0:.0f} s", flush=True)
                label = {"video": "video only", "ecg": "ECG only", "fusion": "video + ECG"}[mode]
                rows[label] = res["results"]["plain"]
                if mode == "ecg":
                    rows["ECG only + CCF"] = res["results"].get("ccf_2", {})
                if mode == "fusion":
                    rows["video + ECG + CCF"] = res["results"].get("ccf_2", {})
                    rows["eta sweep"] = {f"{e:g}": res["results"].get(f"ccf_{e:g}", {}) for e in ETAS}
            out[name] = rows
            _print_section(name, rows)
        out["speed"] = spotting_speed(tmp, data, tc, 10.0)
    out["total_minutes"] = round((time.perf_counter() - t_start) / 60, 1)
    _print(out)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "spotting.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {RESULTS / 'spotting.json'}")


def _print_section(name: str, rows: dict) -> None:
    print(f"\n{name} ({'coupling 1' if name == 'coupled' else 'coupling 0: the ECG must not help'})")
    print(f"{'variant':22} {'TP':>4} {'FP':>4} {'FN':>4} {'P':>7} {'R':>7} {'F1':>7}")
    for k, c in rows.items():
        if k == "eta sweep" or not c:
            continue
        print(f"{k:22} {c['tp']:>4} {c['fp']:>4} {c['fn']:>4} {c['precision']:>7} {c['recall']:>7} {c['f1']:>7}")
    if "eta sweep" in rows:
        print(
            "eta sweep (video + ECG + CCF): "
            + ", ".join(f"{e}: F1 {c.get('f1', float('nan'))}" for e, c in rows["eta sweep"].items())
        )
    print("", flush=True)


def _print(out: dict) -> None:
    st = out["settings"]
    print(
        f"\nLOSO ME spotting, synthetic: {st['subjects']} subjects x {st['trials']} trials x {st['duration_s']:g} s, "
        f"{st['fps']} fps {st['size']}, seed {st['seed']}, {st['pretrain_epochs']}+{st['epochs']} epochs"
    )
    for name in ("coupled", "null"):
        if name in out:
            _print_section(name, out[name])
    sp = out["speed"]
    print(
        f"spotting speed at {sp['fps']} fps {sp['size']} (front end + ECG features + network): "
        f"{sp['frames_per_s']} frames/s = {sp['x_real_time']}x real time"
    )
    print(f"total {out['total_minutes']} min")


if __name__ == "__main__":
    main()
