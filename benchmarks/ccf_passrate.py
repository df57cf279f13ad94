"""What the candidate clip filter (CCF) lets through in each realism setting of the synthetic world.

For every setting of ``mecg.synth`` (easy, paper, hard, and paper with coupling 0, the null
control) it synthesises subjects x 60 s trials, finds the R-peaks in the synthetic ECG with
NeuroKit2 (``mecg.model.heart_rate.r_peaks``, as ``mecg spot`` does), and asks at every ME apex,
every MaE apex and at random moments whether the filter passes: **HRS(t) > eta x trial mean HRS**
(eta 2.0 by default), with HRS taken exactly at the moment (the paper's rule) and as the largest
HRS within +-0.25 s (mecg's windowed variant). The trial is the whole 60 s session, which holds
one stimulus. Shares carry a 95 % interval from a bootstrap over subjects (moments of one subject
are not independent). Prints a table and writes benchmarks/results/ccf_passrate.json.

    python benchmarks/ccf_passrate.py [--quick] [--subjects N] [--eta 2.0]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from mecg.model.heart_rate import hr_slope, mean_hr_slope, r_peaks
from mecg.synth import Subject, Trial, TrialConfig

RESULTS = Path(__file__).parent / "results"
SETTINGS = (("easy", 1.0), ("paper", 1.0), ("hard", 1.0), ("paper", 0.0))
WINDOW_S = 0.25
RANDOM_PER_TRIAL = 30


def _hrs(peaks_s: np.ndarray, t: np.ndarray, window_s: float) -> np.ndarray:
    """HRS at ``t`` (window 0) or its largest value within +-``window_s`` (bpm/s)."""
    if t.size == 0:
        return np.zeros(0)
    if window_s <= 0:
        return hr_slope(peaks_s, t)
    offsets = np.linspace(-window_s, window_s, 21)
    grid = hr_slope(peaks_s, (t[:, None] + offsets[None, :]).ravel()).reshape(t.size, -1)
    out = np.full(t.size, np.nan)
    ok = np.isfinite(grid).any(axis=1)  # NaN where the window leaves the beats
    out[ok] = np.nanmax(grid[ok], axis=1)
    return out


def one_subject(args: tuple[str, float, int, float]) -> dict:
    """HRS / trial mean at the ME apexes, MaE apexes and random moments of one subject's trial."""
    realism, coupling, seed, duration_s = args
    cfg = TrialConfig(duration_s=duration_s, fps=30.0, width=32, height=24, realism=realism, coupling=coupling)
    trial = Trial(Subject.random(f"S{seed:03d}", seed), 0, cfg)
    ecg = trial.ecg(0, trial.n_samples)[:, 0]
    peaks = trial.sample_times_s[r_peaks(ecg, cfg.ecg_rate_hz)]
    mean = mean_hr_slope(peaks)
    rng = np.random.default_rng([seed, 0xCCF])
    moments = {
        "ME": np.array([e.apex_s for e in trial.expressions if e.kind == "ME"]),
        "MaE": np.array([e.apex_s for e in trial.expressions if e.kind == "MaE"]),
        "random": rng.uniform(1.0, duration_s - 1.0, RANDOM_PER_TRIAL),  # where expressions can be
    }
    responder = bool(trial.subject.heart.responder_rank < trial.realism.responder_share)
    out: dict = {"seed": seed, "trial_mean_hrs": mean, "responder": responder}
    for rule, w in (("apex", 0.0), ("window", WINDOW_S)):
        for kind, t in moments.items():
            ratio = _hrs(peaks, t, w) / mean
            out[f"{rule}_{kind}"] = [float(x) for x in ratio[np.isfinite(ratio)]]
    return out


def share_ci(per_subject: list[list[float]], eta: float, rng: np.random.Generator) -> tuple[float, float, float, int]:
    """Share of moments with ratio > eta, and its 95 % subject-bootstrap interval; and the number of moments."""
    groups = [np.asarray(g) for g in per_subject if len(g)]
    if not groups:
        return float("nan"), float("nan"), float("nan"), 0
    passed = np.array([(g > eta).sum() for g in groups], dtype=float)
    total = np.array([g.size for g in groups], dtype=float)
    boot = []
    for _ in range(2000):
        i = rng.integers(0, len(groups), len(groups))
        boot.append(passed[i].sum() / total[i].sum())
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return float(passed.sum() / total.sum()), float(lo), float(hi), int(total.sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="8 subjects per setting instead of the given number")
    ap.add_argument("--subjects", type=int, default=40, help="subjects (one 60 s trial each) per setting (default 40)")
    ap.add_argument("--eta", type=float, default=2.0, help="the filter's eta (default 2.0, the paper's)")
    ap.add_argument("--duration", type=float, default=60.0, help="trial length in s (default 60)")
    args = ap.parse_args()
    n = 8 if args.quick else args.subjects
    t0 = time.perf_counter()
    rows = []
    with ProcessPoolExecutor(os.cpu_count() or 1) as ex:
        for realism, coupling in SETTINGS:
            jobs = [(realism, coupling, 1000 + s, args.duration) for s in range(n)]
            subjects = list(ex.map(one_subject, jobs))
            rng = np.random.default_rng(0)
            row: dict = {
                "realism": realism,
                "coupling": coupling,
                "subjects": n,
                "responders": sum(s["responder"] for s in subjects),
                "median_trial_mean_hrs": round(float(np.median([s["trial_mean_hrs"] for s in subjects])), 2),
            }
            for rule in ("apex", "window"):
                for kind in ("ME", "MaE", "random"):
                    p, lo, hi, m = share_ci([s[f"{rule}_{kind}"] for s in subjects], args.eta, rng)
                    row[f"{rule}_{kind}"] = {"share": round(p, 3), "ci95": [round(lo, 3), round(hi, 3)], "n": m}
                me = np.concatenate([s[f"{rule}_ME"] for s in subjects])
                row[f"{rule}_ME_median_ratio"] = round(float(np.median(me)), 2)
            rows.append(row)
    wall = time.perf_counter() - t0
    print(f"CCF pass rate at eta {args.eta:g}: moments with HRS > eta x trial mean HRS (95 % CI over subjects)")
    print(f"{n} subjects x 1 trial x {args.duration:g} s per setting; R-peaks by NeuroKit2 from the synthetic ECG\n")
    head = f"{'realism':>8} {'coupl':>5} {'rule':>6} {'ME apexes':>19} {'MaE apexes':>19} {'random moments':>19}"
    print(head)
    for r in rows:
        for rule in ("apex", "window"):
            cells = []
            for kind in ("ME", "MaE", "random"):
                c = r[f"{rule}_{kind}"]
                cells.append(f"{c['share']:.2f} [{c['ci95'][0]:.2f}-{c['ci95'][1]:.2f}] n{c['n']:<4}")
            print(f"{r['realism']:>8} {r['coupling']:>5g} {rule:>6} " + " ".join(f"{x:>19}" for x in cells))
    print(f"\n({wall:.0f} s wall)")
    RESULTS.mkdir(exist_ok=True)
    out = {
        "benchmark": "ccf_passrate",
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "eta": args.eta,
        "window_s": WINDOW_S,
        "duration_s": args.duration,
        "random_moments_per_trial": RANDOM_PER_TRIAL,
        "subject_seeds": [1000, 1000 + n - 1],
        "rows": rows,
        "wall_s": round(wall, 1),
    }
    name = "ccf_passrate_quick.json" if args.quick else "ccf_passrate.json"
    (RESULTS / name).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {RESULTS / name}")


if __name__ == "__main__":
    main()
