"""Which HRS rule should the candidate clip filter use: HRS exactly at the spotted apex, or windowed?

The paper reads the heart-rate slope at the apex; a spotted apex is off the true one by the
spotter's apex error, so mecg also offers the largest HRS within +-S s. This benchmark measures,
on synthetic subjects (``--realism``, default paper as ``mecg synth``; coupling 1), with CMCL-Net trained
leave-one-subject-out (thresholds and everything else chosen on the training folds):

* the spotter's apex error (spotted minus annotated apex, s) of candidates that hit an ME
  (IoU >= 0.5), before the filter;
* for each rule, the share of those hits the filter keeps and the share of the other candidates
  (false positives) it keeps, at eta 2.0 (trial = the session; the sessions hold one stimulus);
* the same shares at the annotated apexes themselves and at random moments (no spotter error).

A rule is better when it keeps more hits for the false positives it keeps. Prints a table and
writes benchmarks/results/ccf_hrs_rule.json.

``--offsets`` measures instead, without video or training, how each rule's pass rate at ME apexes
falls as the apex is moved by a spotter-like error (0 to 0.3 s either way), beside random moments:
synthetic trials in memory (as benchmarks/ccf_passrate.py), R-peaks by NeuroKit2; writes
benchmarks/results/ccf_hrs_offsets.json.

    python benchmarks/ccf_hrs_rule.py [--subjects 6] [--duration 40] [--epochs 6] [--seed 0]
    python benchmarks/ccf_hrs_rule.py --offsets [--subjects 40] [--duration 60]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"
RULES = {"apex": ("apex", 0.25), "window:0.1": ("window", 0.1), "window:0.25": ("window", 0.25)}


def _iou(a: tuple[int, int], b: tuple[int, int]) -> float:
    inter = min(a[1], b[1]) - max(a[0], b[0]) + 1
    union = max(a[1], b[1]) - min(a[0], b[0]) + 1
    return max(0, inter) / union


OFFSETS_S = (0.0, 0.033, 0.067, 0.1, 0.15, 0.2, 0.3)


def _offset_subject(job: tuple[str, int, float, float]) -> dict:
    """Per rule and |offset|: pass flags at ME apexes moved by +-offset, and at random moments."""
    from mecg.model.heart_rate import hr_slope, mean_hr_slope, r_peaks
    from mecg.synth import Subject, Trial, TrialConfig

    realism, seed, duration_s, eta = job
    cfg = TrialConfig(duration_s=duration_s, fps=30.0, width=32, height=24, realism=realism)
    trial = Trial(Subject.random(f"S{seed:03d}", seed), 0, cfg)
    peaks = trial.sample_times_s[r_peaks(trial.ecg(0, trial.n_samples)[:, 0], cfg.ecg_rate_hz)]
    mean = mean_hr_slope(peaks)
    me = np.array([e.apex_s for e in trial.expressions if e.kind == "ME"])
    rng = np.random.default_rng([seed, 7])
    rand = rng.uniform(2.0, duration_s - 2.0, 60)

    def passes(t: np.ndarray, window_s: float) -> list[bool]:
        if t.size == 0:
            return []
        if window_s == 0:
            v = hr_slope(peaks, t)
        else:
            grid = t[:, None] + np.arange(-round(window_s * cfg.fps), round(window_s * cfg.fps) + 1)[None, :] / cfg.fps
            v = np.nanmax(np.nan_to_num(hr_slope(peaks, grid.ravel()), nan=0.0).reshape(grid.shape), axis=1)
        return [bool(x > eta * mean) for x in np.nan_to_num(v, nan=0.0)]

    out: dict = {}
    for name, (hrs, w) in RULES.items():
        ws = 0.0 if hrs == "apex" else w
        out[name] = {"random": passes(rand, ws)}
        for off in OFFSETS_S:
            out[name][f"{off:g}"] = passes(me + off, ws) + (passes(me - off, ws) if off else [])
    return out


def offsets_main(args: argparse.Namespace) -> None:
    from concurrent.futures import ProcessPoolExecutor

    t0 = time.perf_counter()
    jobs = [(args.realism, 2000 + s, args.duration, args.eta) for s in range(args.subjects)]
    with ProcessPoolExecutor(os.cpu_count() or 1) as ex:
        subjects = list(ex.map(_offset_subject, jobs))
    rows = {}
    for name in RULES:
        row = {}
        for key in ["random", *(f"{o:g}" for o in OFFSETS_S)]:
            v = [x for s in subjects for x in s[name][key]]
            row[key] = {"n": len(v), "share": round(sum(v) / len(v), 3) if v else None}
        rows[name] = row
    print(f"CCF pass rate at eta {args.eta:g} at ME apexes moved by +-offset (s), {args.realism} realism")
    print(f"{args.subjects} subjects x {args.duration:g} s; trial = the session\n")
    print(f"{'rule':>12} " + " ".join(f"{o:>6g}" for o in OFFSETS_S) + f" {'random':>7}")
    for name, row in rows.items():
        cells = " ".join(f"{row[f'{o:g}']['share']:>6.2f}" for o in OFFSETS_S)
        print(f"{name:>12} {cells} {row['random']['share']:>7.2f}")
    RESULTS.mkdir(exist_ok=True)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent)
    out = {
        "benchmark": "ccf_hrs_offsets",
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "commit": commit.stdout.strip(),
        "args": vars(args),
        "offsets_s": list(OFFSETS_S),
        "rules": rows,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    (RESULTS / "ccf_hrs_offsets.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nwrote {RESULTS / 'ccf_hrs_offsets.json'} ({out['seconds']:.0f} s)")


def main() -> None:
    import torch

    from mecg.model.cmclnet import CMCLConfig
    from mecg.model.pipeline import by_subject, fit, load_sessions, spot_candidates
    from mecg.model.spots import Spot
    from mecg.model.spotter import CcfRule, apply_ccf, frame_scores
    from mecg.model.train import TrainConfig
    from mecg.model.windows import WindowParams
    from mecg.synth import DatasetSpec, TrialConfig, make_dataset

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subjects", type=int, default=6)
    ap.add_argument("--duration", type=float, default=40.0, help="s per session (default 40)")
    ap.add_argument("--me-per-min", type=float, default=8.0)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eta", type=float, default=2.0)
    ap.add_argument("--realism", choices=("easy", "paper", "hard"), default="paper")
    ap.add_argument("--offsets", action="store_true", help="pass rate vs apex error, no video or training")
    args = ap.parse_args()
    if args.offsets:
        offsets_main(args)
        return
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrialConfig(
            duration_s=args.duration,
            fps=30.0,
            width=160,
            height=120,
            me_per_min=args.me_per_min,
            realism=args.realism,
        )
        make_dataset(DatasetSpec(tmp, subjects=args.subjects, trials=1, seed=args.seed, config=cfg), workers=2)
        paths = sorted(Path(tmp).glob("*.h5"))
        data = load_sessions(paths, WindowParams(), log=lambda m: None, workers=2)
        tc = TrainConfig(epochs=args.epochs, pretrain_epochs=2, seed=args.seed, log=False)
        hits: dict[str, list[bool]] = {r: [] for r in RULES}
        misses: dict[str, list[bool]] = {r: [] for r in RULES}
        oracle: dict[str, dict[str, list[bool]]] = {r: {"ME": [], "random": []} for r in RULES}
        errors: list[float] = []
        groups = by_subject(data)
        for fold, (subj, test) in enumerate(groups.items(), 1):
            train = [d for k, g in groups.items() if k != subj for d in g]
            model, spot = fit(train, CMCLConfig(), replace(tc, seed=args.seed + fold), log=lambda m: None)
            for d in test:
                found = spot_candidates(model, d, spot, None, "cpu", frame_scores(model, d))
                mes = [a for a in d.annotations if a.type == "ME"]
                hit_of = []
                for c in found:
                    ious = [_iou((c.onset_frame, c.offset_frame), (a.onset_frame, a.offset_frame)) for a in mes]
                    ok = bool(ious) and max(ious) >= 0.5
                    hit_of.append(ok)
                    if ok:
                        errors.append((c.apex_frame - mes[int(np.argmax(ious))].apex_frame) / d.fps)
                apexes = [a.apex_frame for a in mes]
                all_apex = np.array([a.apex_frame for a in d.annotations])
                r = rng.integers(0, d.n, 300)
                r = r[np.min(np.abs(r[:, None] - all_apex[None, :]), axis=1) > d.fps] if all_apex.size else r
                for name, (hrs, w) in RULES.items():
                    rule = CcfRule(hrs, w, "session")  # type: ignore[arg-type]
                    for c, ok in zip(apply_ccf(found, d, args.eta, rule), hit_of):
                        (hits if ok else misses)[name].append(c.kept_by_ccf)
                    for kind, frames in (("ME", apexes), ("random", r[:100].tolist())):
                        spots = [Spot(d.name, f, f, f, 1.0, "ME") for f in frames]
                        oracle[name][kind] += [s.kept_by_ccf for s in apply_ccf(spots, d, args.eta, rule)]
            print(f"fold {fold}/{len(groups)} done ({time.perf_counter() - t0:.0f} s)", flush=True)

    def share(v: list[bool]) -> dict:
        return {"n": len(v), "kept": int(sum(v)), "share": round(sum(v) / len(v), 3) if v else None}

    err = np.abs(np.asarray(errors))
    rows = {
        name: {
            "spotted_hits": share(hits[name]),
            "spotted_false_positives": share(misses[name]),
            "annotated_me_apexes": share(oracle[name]["ME"]),
            "random_moments": share(oracle[name]["random"]),
        }
        for name in RULES
    }
    print(f"\nCCF at eta {args.eta:g}, trial = session; {args.subjects} subjects x {args.duration:g} s, LOSO")
    if err.size:
        print(
            f"spotter apex error of {err.size} hits: median |error| {np.median(err):.3f} s, "
            f"90th percentile {np.percentile(err, 90):.3f} s, max {err.max():.3f} s"
        )
    print(f"{'rule':>12} {'hits kept':>12} {'FPs kept':>12} {'ME apexes':>12} {'random':>12}")
    for name, row in rows.items():
        cells = [row[k] for k in ("spotted_hits", "spotted_false_positives", "annotated_me_apexes", "random_moments")]
        print(f"{name:>12} " + " ".join(f"{c['kept']}/{c['n']} {c['share'] or 0:.2f}".rjust(12) for c in cells))
    RESULTS.mkdir(exist_ok=True)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent)
    out = {
        "benchmark": "ccf_hrs_rule",
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "commit": commit.stdout.strip(),
        "args": vars(args),
        "apex_error_s": {
            "n": int(err.size),
            "median_abs": round(float(np.median(err)), 4) if err.size else None,
            "p90_abs": round(float(np.percentile(err, 90)), 4) if err.size else None,
            "signed": [round(float(e), 4) for e in errors],
        },
        "rules": rows,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    (RESULTS / "ccf_hrs_rule.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nwrote {RESULTS / 'ccf_hrs_rule.json'} ({out['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
