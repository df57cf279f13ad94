"""Leave-one-subject-out ME spotting on synthetic participants, over seeds, with subject-bootstrap intervals.

For every seed the benchmark makes its own synthetic dataset (data seed) twice: coupled (the heart
responds to expressions) and the null control (coupling 0: the heart does everything else it does, but
never answers the face). It syncs each, extracts features once per session (the front end's cache is
reused by every fold and variant), then per LOSO fold trains every variant on the other subjects
(training seed = the seed; thresholds chosen on a validation subject inside the training folds, never on
the test subject) and spots the held-out subject. Variants: classical baseline, video only, ECG only
(+ CCF), video + ECG, video + ECG + CCF (eta 2.0) and the CCF eta sweep.

Reported per variant: pooled TP/FP/FN/P/R/F1 (ME) per seed, mean +- sd of F1 over seeds, and a
subject-bootstrap 95 % CI of the pooled ME F1 (subjects resampled with replacement within each seed,
counts pooled over all seeds, 2000 resamples, seeded); paired differences (video + ECG minus video,
+ CCF minus video, ...) with their bootstrap CI on the same resamples. Also the filter's pass rate on
ME apexes, MaE apexes and random moments of the run's own datasets (benchmarks/ccf_passrate.py measures
it per realism on many more subjects). Writes benchmarks/results/spotting.json (``--quick``:
spotting_quick.json; or ``--out``).

    python benchmarks/spotting.py [--quick] [--seeds 3] [--subjects 6 --trials 1 --duration 90] [--jobs 2]
    python benchmarks/spotting.py --filter-pass-only --realism hard   # the filter's pass rates, no training
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import fields, replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine_speed import reference_loop_s

RESULTS = Path(__file__).parent / "results"
ETAS = (1.3, 1.5, 1.7, 2.0, 2.3)
#: variant label -> (CMCL-Net mode, key of mecg.model.pipeline.loso's predictions); the baseline is separate
VARIANTS: dict[str, tuple[str, str]] = {
    "video only": ("video", "plain"),
    "ECG only": ("ecg", "plain"),
    "ECG only + CCF": ("ecg", "ccf_2"),
    "video + ECG": ("fusion", "plain"),
    "video + ECG + CCF": ("fusion", "ccf_2"),
    **{f"video + ECG + CCF eta {e:g}": ("fusion", f"ccf_{e:g}") for e in ETAS if e != 2.0},
    "video + ECG + CCF, eta chosen on validation": ("fusion", "ccf_val"),
}
#: paired differences (a minus b) whose bootstrap CI says whether a gain is supported
DIFFERENCES = (
    ("video + ECG", "video only"),
    ("video + ECG + CCF", "video only"),
    ("video + ECG + CCF", "video + ECG"),
    ("ECG only", "baseline"),
    ("video only", "baseline"),
)
WORLDS = {"coupled": 1.0, "null": 0.0}


# -- statistics ---------------------------------------------------------------------------------
def f1_from_counts(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    """ME F1 = 2 TP / (2 TP + FP + FN), 0 where nothing was predicted or annotated (elementwise)."""
    tp, fp, fn = (np.asarray(x, dtype=np.float64) for x in (tp, fp, fn))
    den = 2 * tp + fp + fn
    return np.divide(2 * tp, den, out=np.zeros_like(den), where=den > 0)


def bootstrap_f1(
    strata: Sequence[np.ndarray],
    minus: Sequence[np.ndarray] | None = None,
    *,
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> dict:
    """Subject-bootstrap CI of a pooled F1 (or of the paired difference of two F1s).

    Parameters
    ----------
    strata : sequence of arrays (n_subjects, 3)
        Per stratum (one seed's dataset) each subject's ``tp, fp, fn``. Each resample draws every
        stratum's subjects with replacement (as many as it has) and pools the counts of all strata.
    minus : sequence of arrays, optional
        The same subjects' counts under another variant (same shapes and order); then the statistic is
        F1(strata) - F1(minus) on the same resampled subjects (a paired difference).
    n_boot : int
        Resamples.
    seed : int
        Seed of the resampling (same inputs and seed, same interval).
    level : float
        Coverage of the percentile interval (0-1).

    Returns
    -------
    dict
        ``estimate`` (the statistic on the data as observed), ``ci`` ``[low, high]`` (percentile
        interval), ``level``, ``n_boot``, ``subjects`` (over all strata) and, for a difference,
        ``share_le_0`` (the share of resamples whose difference is <= 0).
    """
    a = [np.asarray(s, dtype=np.int64).reshape(-1, 3) for s in strata]
    b = None if minus is None else [np.asarray(s, dtype=np.int64).reshape(-1, 3) for s in minus]
    if b is not None and [x.shape for x in a] != [x.shape for x in b]:
        raise ValueError("paired bootstrap: both variants need the same subjects in the same strata")
    if not a or sum(len(x) for x in a) == 0:
        raise ValueError("bootstrap needs at least one subject")
    rng = np.random.default_rng(seed)
    tot_a = np.zeros((n_boot, 3))
    tot_b = np.zeros((n_boot, 3))
    for i, s in enumerate(a):
        idx = rng.integers(0, len(s), size=(n_boot, len(s)))
        tot_a += s[idx].sum(axis=1)
        if b is not None:
            tot_b += b[i][idx].sum(axis=1)
    obs_a = np.sum([s.sum(axis=0) for s in a], axis=0)
    stat = f1_from_counts(*tot_a.T)
    est = float(f1_from_counts(*obs_a))
    if b is not None:
        stat = stat - f1_from_counts(*tot_b.T)
        est -= float(f1_from_counts(*np.sum([s.sum(axis=0) for s in b], axis=0)))
    lo, hi = np.quantile(stat, [(1 - level) / 2, (1 + level) / 2])
    out = {
        "estimate": round(est, 4),
        "ci": [round(float(lo), 4), round(float(hi), 4)],
        "level": level,
        "n_boot": n_boot,
        "subjects": int(sum(len(s) for s in a)),
    }
    if b is not None:
        out["share_le_0"] = round(float(np.mean(stat <= 0)), 4)
    return out


def subject_counts(preds: list, truth: list, subject_of: dict[str, str]) -> dict[str, list[int]]:
    """``{subject: [tp, fp, fn]}`` of ME spotting (one-to-one matching within each session, so they add up).

    ``preds``/``truth``: :class:`mecg.model.evaluate.Interval` lists; ``subject_of``: session name -> subject.
    """
    from mecg.model.evaluate import evaluate

    out = {}
    for subj in sorted(set(subject_of.values())):
        sessions = {s for s, k in subject_of.items() if k == subj}
        c = evaluate([p for p in preds if p.session in sessions], [g for g in truth if g.session in sessions])["me"]
        out[subj] = [c.tp, c.fp, c.fn]
    return out


def pooled(counts: dict[str, list[int]]) -> dict:
    """TP/FP/FN/P/R/F1 of per-subject counts pooled."""
    tp, fp, fn = (int(x) for x in np.sum(list(counts.values()), axis=0))
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "precision": round(p, 4),
        "recall": round(r, 4),
        "f1": round(float(f1_from_counts(tp, fp, fn)), 4),
    }


# -- one seed's dataset ----------------------------------------------------------------------------
def trial_config(settings: dict, coupling: float):
    """The synthetic world of the run: size, rate, duration, coupling, and the realism when mecg.synth has it."""
    from mecg.synth import TrialConfig

    kw = {
        "duration_s": settings["duration_s"],
        "fps": settings["fps"],
        "width": settings["width"],
        "height": settings["height"],
        "coupling": coupling,
    }
    if settings.get("realism"):
        kw["realism"] = settings["realism"]
    return replace(TrialConfig(), **kw)


def filter_pass(data: list, eta: float, seed: int, per_session: int = 200, clear_s: float = 1.0) -> dict:
    """Share of ME apexes, MaE apexes and random moments the candidate clip filter passes at ``eta``.

    The filter is :func:`mecg.model.spotter.apply_ccf` itself, given one-frame candidates at the moments.
    Random moments: ``per_session`` uniform frames per session (seeded) with no annotated apex within
    ``clear_s`` s. Sessions without ECG are skipped (the filter passes everything there).
    """
    from mecg.model.spots import Spot
    from mecg.model.spotter import apply_ccf

    rng = np.random.default_rng(seed)
    kept: dict[str, list[bool]] = {"ME": [], "MaE": [], "random": []}
    for d in data:
        if not d.has_ecg:
            continue
        apexes = np.array([a.apex_frame for a in d.annotations], dtype=np.int64)
        moments = [(a.type, a.apex_frame) for a in d.annotations]
        r = rng.integers(0, d.n, per_session * 3)
        if apexes.size:
            r = r[np.min(np.abs(r[:, None] - apexes[None, :]), axis=1) > clear_s * d.fps]
        moments += [("random", int(f)) for f in r[:per_session]]
        spots = [Spot(d.name, f, f, f, 1.0, "ME") for _, f in moments]
        for (kind, _), sp in zip(moments, apply_ccf(spots, d, eta), strict=True):
            kept[kind].append(bool(sp.kept_by_ccf))
    return {
        k: {"n": len(v), "passed": int(sum(v)), "rate": round(sum(v) / len(v), 4) if v else None}
        for k, v in kept.items()
    }


def _say(tag: str, msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {tag} {msg}", flush=True)


def run_world(job: dict) -> dict:
    """One seed's dataset in one world (coupled or null): make, sync + features, baseline, LOSO per mode.

    Returns per variant the per-subject ME counts, the filter's pass rates and the timings.
    """
    import torch

    from mecg.model.baseline import BaselineParams, spot_baseline
    from mecg.model.cmclnet import CMCLConfig
    from mecg.model.evaluate import Interval
    from mecg.model.frontend import frontend_features
    from mecg.model.pipeline import load_sessions, loso
    from mecg.model.train import TrainConfig
    from mecg.model.windows import WindowParams
    from mecg.synth import DatasetSpec, make_dataset

    st, seed, world = job["settings"], job["seed"], job["world"]
    threads = job["threads"]
    torch.set_num_threads(threads)
    tag = f"seed {seed} {world}:"
    t0, c0 = time.perf_counter(), _cpu_s()
    folder = Path(job["tmp"]) / f"seed{seed}-{world}"
    cfg = trial_config(st, WORLDS[world])
    manifest = make_dataset(DatasetSpec(str(folder), st["subjects"], st["trials"], seed, cfg), workers=threads)
    t_gen, c_gen = time.perf_counter() - t0, _cpu_s() - c0
    paths = sorted(folder.glob("*.h5"))
    data = load_sessions(paths, WindowParams(), workers=threads, log=lambda m: None)
    t_feat, c_feat = time.perf_counter() - t0 - t_gen, _cpu_s() - c0 - c_gen
    _say(tag, f"{len(data)} sessions made in {t_gen:.0f} s, synced + features in {t_feat:.0f} s")
    subject_of = {d.name: d.subject or d.name for d in data}
    truth = [
        Interval(d.name, a.onset_frame, a.offset_frame, "ME") for d in data for a in d.annotations if a.type == "ME"
    ]
    rows: dict[str, dict[str, list[int]]] = {}
    base_preds = []
    for d in data:
        feats = frontend_features(d.path, d.frontend_params)
        spots, _ = spot_baseline(feats, d.fps, d.name, BaselineParams())
        base_preds += [s.interval() for s in spots if s.type == "ME"]
    rows["baseline"] = subject_counts(base_preds, truth, subject_of)
    tc = TrainConfig(
        epochs=st["epochs"],
        pretrain_epochs=st["pretrain_epochs"],
        seed=seed,
        max_negatives_per_session=st["max_negatives_per_session"],
        log=False,
    )
    loso_s, loso_cpu = {}, {}
    for mode in ("video", "ecg", "fusion"):
        t1, c1 = time.perf_counter(), _cpu_s()
        res = loso(data, CMCLConfig(mode=mode), tc, etas=ETAS if mode != "video" else (2.0,), log=lambda m: None)
        loso_s[mode], loso_cpu[mode] = round(time.perf_counter() - t1, 1), round(_cpu_s() - c1, 1)
        for label, (m, key) in VARIANTS.items():
            if m == mode:
                rows[label] = subject_counts(res["preds"].get(key, []), truth, subject_of)
        _say(tag, f"{mode} LOSO in {loso_s[mode]:.0f} s: ME F1 {pooled(rows[_first_label(mode)])['f1']}")
    return {
        "seed": seed,
        "world": world,
        "sessions": len(data),
        "subjects": len(set(subject_of.values())),
        "n_me": sum(f["n_me"] for f in manifest["files"]),
        "n_mae": sum(f["n_mae"] for f in manifest["files"]),
        "rows": rows,
        "filter_pass_eta_2": filter_pass(data, 2.0, seed),
        "seconds": {
            "generate": round(t_gen, 1),
            "sync_features": round(t_feat, 1),
            "loso": loso_s,
            "total": round(time.perf_counter() - t0, 1),
        },
        "cpu_s": round(_cpu_s() - c0, 1),
        "cpu_seconds": {"generate": round(c_gen, 1), "sync_features": round(c_feat, 1), "loso": loso_cpu},
    }


def _first_label(mode: str) -> str:
    return next(label for label, (m, _) in VARIANTS.items() if m == mode)


def _cpu_s() -> float:
    """CPU seconds of this process and its waited-for children."""
    me, ch = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + ch.ru_utime + ch.ru_stime


def filter_pass_world(job: dict) -> dict:
    """The filter's pass rates on one seed's coupled dataset (no training): for ``--filter-pass-only``."""
    from mecg.model.pipeline import load_sessions
    from mecg.model.windows import WindowParams
    from mecg.synth import DatasetSpec, make_dataset

    st, seed = job["settings"], job["seed"]
    folder = Path(job["tmp"]) / f"pass-seed{seed}"
    make_dataset(
        DatasetSpec(str(folder), st["subjects"], st["trials"], seed, trial_config(st, 1.0)), workers=job["threads"]
    )
    data = load_sessions(sorted(folder.glob("*.h5")), WindowParams(), workers=job["threads"], log=lambda m: None)
    return {"seed": seed, "by_eta": {f"{e:g}": filter_pass(data, e, seed) for e in ETAS}}


# -- summary -------------------------------------------------------------------------------------
def summarise(units: list[dict], n_boot: int) -> dict:
    """Per world and variant: per-seed pooled counts, mean +- sd of F1 over seeds, pooled counts and bootstrap CI;
    paired differences with their CIs."""
    out: dict = {}
    for world in WORLDS:
        us = sorted((u for u in units if u["world"] == world), key=lambda u: u["seed"])
        if not us:
            continue
        labels = list(us[0]["rows"])
        variants = {}
        for label in labels:
            per_seed = [pooled(u["rows"][label]) for u in us]
            f1s = np.array([p["f1"] for p in per_seed])
            strata = [np.array([u["rows"][label][s] for s in sorted(u["rows"][label])]) for u in us]
            variants[label] = {
                "per_seed": {str(u["seed"]): p for u, p in zip(us, per_seed, strict=True)},
                "f1_mean": round(float(f1s.mean()), 4),
                "f1_sd": round(float(f1s.std(ddof=1)), 4) if len(f1s) > 1 else None,
                "pooled": pooled({f"{i}/{k}": v for i, u in enumerate(us) for k, v in u["rows"][label].items()}),
                "f1_ci": bootstrap_f1(strata, n_boot=n_boot, seed=1),
            }
        diffs = {}
        for a, b in DIFFERENCES:
            if a in labels and b in labels:
                sa = [np.array([u["rows"][a][s] for s in sorted(u["rows"][a])]) for u in us]
                sb = [np.array([u["rows"][b][s] for s in sorted(u["rows"][b])]) for u in us]
                per_seed = [pooled(u["rows"][a])["f1"] - pooled(u["rows"][b])["f1"] for u in us]
                diffs[f"{a} - {b}"] = {
                    **bootstrap_f1(sa, sb, n_boot=n_boot, seed=2),
                    "per_seed": [round(x, 4) for x in per_seed],
                    "supported": _verdict(bootstrap_f1(sa, sb, n_boot=n_boot, seed=2)["ci"]),
                }
        out[world] = {
            "seeds": [u["seed"] for u in us],
            "n_me": sum(u["n_me"] for u in us),
            "n_mae": sum(u["n_mae"] for u in us),
            "subjects": sum(u["subjects"] for u in us),
            "variants": variants,
            "differences": diffs,
            "filter_pass_eta_2": _pool_pass([u["filter_pass_eta_2"] for u in us]),
        }
    return out


def _verdict(ci: list[float]) -> str:
    if ci[0] > 0:
        return "gain (CI above 0)"
    if ci[1] < 0:
        return "loss (CI below 0)"
    return "not supported (CI covers 0)"


def _pool_pass(items: list[dict]) -> dict:
    out = {}
    for k in items[0]:
        n = sum(i[k]["n"] for i in items)
        p = sum(i[k]["passed"] for i in items)
        out[k] = {"n": n, "passed": p, "rate": round(p / n, 4) if n else None}
    return out


# -- output -------------------------------------------------------------------------------------
def _print(out: dict) -> None:
    st = out["settings"]
    print(
        f"\nLOSO ME spotting, synthetic (realism {st['realism'] or 'none: mecg.synth has no setting'}): "
        f"seeds {st['seeds']}, "
        f"{st['subjects']} subjects x {st['trials']} trials x {st['duration_s']:g} s, {st['fps']:g} fps "
        f"{st['width']}x{st['height']}, {st['pretrain_epochs']}+{st['epochs']} epochs; subject bootstrap "
        f"{st['n_boot']} resamples{' [QUICK SMOKE RUN]' if st['quick'] else ''}"
    )
    for world, s in out["summary"].items():
        head = "coupling 1" if world == "coupled" else "null control, coupling 0: the ECG must not help"
        print(f"\n{world} ({head}): {s['n_me']} MEs, {s['n_mae']} MaEs, {s['subjects']} subject-datasets")
        print(
            f"{'variant':44} {'TP':>4} {'FP':>4} {'FN':>4} {'P':>6} {'R':>6} {'F1':>6}  "
            f"{'F1 per seed':20} {'mean+-sd':14} 95% CI"
        )
        for label, v in s["variants"].items():
            c = v["pooled"]
            seeds = " ".join(f"{p['f1']:.3f}" for p in v["per_seed"].values())
            sd = f"{v['f1_sd']:.3f}" if v["f1_sd"] is not None else "-"
            lo, hi = v["f1_ci"]["ci"]
            print(
                f"{label:44} {c['tp']:>4} {c['fp']:>4} {c['fn']:>4} {c['precision']:>6.3f} {c['recall']:>6.3f} "
                f"{c['f1']:>6.3f}  {seeds:20} {v['f1_mean']:.3f}+-{sd:6} [{lo:.3f}, {hi:.3f}]"
            )
        print("paired differences of pooled ME F1 (same resampled subjects):")
        for k, d in s["differences"].items():
            print(f"  {k:40} {d['estimate']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}]  {d['supported']}")
        fp = s["filter_pass_eta_2"]
        print(
            "filter (eta 2.0) passes: "
            + ", ".join(f"{k} {v['rate']} ({v['passed']}/{v['n']})" for k, v in fp.items() if v["rate"] is not None)
        )
    print(f"\ntotal {out['total_minutes']} min wall, {out['cpu_minutes']} CPU min (units)")


def markdown(out: dict) -> str:
    """The results of a run as Markdown tables (what docs/spotting.md and the README quote)."""
    st = out["settings"]
    lines = [
        f"Seeds {', '.join(map(str, st['seeds']))}; per seed and world {st['subjects']} subjects x {st['trials']} "
        f"trial(s) x {st['duration_s']:g} s, {st['fps']:g} fps {st['width']}x{st['height']}, realism "
        f"{st['realism'] or 'none'}, {st['pretrain_epochs']}+{st['epochs']} epochs; commit {out['commit'][:7]}; "
        f"{out['total_minutes']} min wall, {out['cpu_minutes']} CPU min, load {out['load_at_start']:.1f} at the start"
        + (f", reference loop {out['reference_loop_s']} s" if "reference_loop_s" in out else "")
        + (" **(quick smoke run)**" if st["quick"] else ""),
        "",
    ]
    for world, s in out["summary"].items():
        lines += [
            f"**{world}** ({'coupling 1' if world == 'coupled' else 'null control, coupling 0'}; "
            f"{s['n_me']} MEs over {s['subjects']} subject-datasets):",
            "",
            "| variant | TP | FP | FN | P | R | F1 (pooled) | F1 per seed | mean +- sd | 95 % CI (subject bootstrap) |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for label, v in s["variants"].items():
            c = v["pooled"]
            seeds = ", ".join(f"{p['f1']:.3f}" for p in v["per_seed"].values())
            sd = f"{v['f1_sd']:.3f}" if v["f1_sd"] is not None else "-"
            lo, hi = v["f1_ci"]["ci"]
            lines.append(
                f"| {label} | {c['tp']} | {c['fp']} | {c['fn']} | {c['precision']:.3f} | {c['recall']:.3f} | "
                f"{c['f1']:.3f} | {seeds} | {v['f1_mean']:.3f} +- {sd} | [{lo:.3f}, {hi:.3f}] |"
            )
        lines += [
            "",
            "| paired difference of pooled ME F1 | estimate | 95 % CI | per seed | verdict |",
            "|---|---|---|---|---|",
        ]
        for k, d in s["differences"].items():
            per = ", ".join(f"{x:+.3f}" for x in d["per_seed"])
            lines.append(
                f"| {k} | {d['estimate']:+.3f} | [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}] | {per} | {d['supported']} |"
            )
        fp = s["filter_pass_eta_2"]
        lines += [
            "",
            "Filter (eta 2.0) passes "
            + ", ".join(f"{k} {v['rate']:.0%} ({v['passed']}/{v['n']})" for k, v in fp.items() if v["rate"] is not None)
            + ".",
            "",
        ]
    return "\n".join(lines)


def _has_realism() -> bool:
    from mecg.synth import TrialConfig

    return "realism" in {f.name for f in fields(TrialConfig)}


def _commit() -> str:
    """HEAD of the checkout the benchmark runs from (MECG_BENCH_COMMIT names it for an exported copy)."""
    if os.environ.get("MECG_BENCH_COMMIT"):
        return os.environ["MECG_BENCH_COMMIT"]
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "mecg"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent.parent,
        )
        return rev.stdout.strip() + (" (mecg/ with uncommitted changes)" if dirty.stdout.strip() else "")
    except OSError:
        return "unknown"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--quick", action="store_true", help="a smoke run: 2 seeds, 3 subjects x 1 trial x 20 s, 1+1 epochs"
    )
    ap.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1; each makes its own data and training")
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--subjects", type=int, default=6)
    ap.add_argument("--trials", type=int, default=1)
    ap.add_argument("--duration", type=float, default=90.0, help="s per trial")
    ap.add_argument("--fps", type=float, default=60.0)
    ap.add_argument("--size", default="320x240", help="WIDTHxHEIGHT of the synthetic video")
    ap.add_argument(
        "--realism", default="paper", help="the synthetic world's realism (easy|paper|hard), when mecg.synth has one"
    )
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--pretrain-epochs", type=int, default=2)
    ap.add_argument("--max-negatives", type=int, default=100, help="non-ME training windows per session")
    ap.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="seed x world units run at once")
    ap.add_argument("--no-null", action="store_true", help="skip the null-control datasets")
    ap.add_argument("--filter-pass-only", action="store_true", help="only the filter's pass rates (no training)")
    ap.add_argument("--out", type=Path, default=None, help="JSON to write (default benchmarks/results/spotting.json)")
    ap.add_argument(
        "--markdown", type=Path, default=None, help="print a results JSON's tables as Markdown; run nothing"
    )
    args = ap.parse_args()
    if args.markdown:
        print(markdown(json.loads(args.markdown.read_text())))
        return
    if args.quick:
        args.seeds, args.subjects, args.trials, args.duration = 2, 3, 1, 20.0
        args.epochs, args.pretrain_epochs, args.n_boot = 1, 1, 500
    width, height = (int(x) for x in args.size.lower().split("x"))
    settings = {
        "seeds": list(range(args.first_seed, args.first_seed + args.seeds)),
        "subjects": args.subjects,
        "trials": args.trials,
        "duration_s": args.duration,
        "fps": args.fps,
        "width": width,
        "height": height,
        "realism": args.realism if _has_realism() else "",
        "epochs": args.epochs,
        "pretrain_epochs": args.pretrain_epochs,
        "max_negatives_per_session": args.max_negatives,
        "n_boot": args.n_boot,
        "jobs": args.jobs,
        "quick": args.quick,
    }
    cores = os.cpu_count() or 1
    threads = max(1, cores // max(1, args.jobs))
    name = "spotting_filter_pass" if args.filter_pass_only else "spotting_quick" if args.quick else "spotting"
    out_path = args.out or RESULTS / f"{name}.json"
    t0 = time.perf_counter()
    out: dict = {
        "benchmark": name,
        "commit": _commit(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": platform.platform(),
        "cpus": cores,
        "load_at_start": os.getloadavg()[0],
        "reference_loop_s": reference_loop_s(),
        "settings": settings,
    }
    with tempfile.TemporaryDirectory(prefix="mecg-bench-spot-") as tmp:
        worlds = [w for w in WORLDS if not (args.no_null and w == "null")]
        if args.filter_pass_only:
            jobs = [{"settings": settings, "seed": s, "tmp": tmp, "threads": threads} for s in settings["seeds"]]
            units = _map(filter_pass_world, jobs, args.jobs)
        else:
            jobs = [
                {"settings": settings, "seed": s, "world": w, "tmp": tmp, "threads": threads}
                for s in settings["seeds"]
                for w in worlds
            ]
            units = _map(run_world, jobs, args.jobs)
    if args.filter_pass_only:
        out["filter_pass"] = {f"{e:g}": _pool_pass([u["by_eta"][f"{e:g}"] for u in units]) for e in ETAS}
        out["per_seed"] = units
        out["total_minutes"] = round((time.perf_counter() - t0) / 60, 1)
        print(
            f"\ncandidate clip filter pass rates (realism {settings['realism'] or 'none'}), seeds {settings['seeds']}:"
        )
        for e, r in out["filter_pass"].items():
            print(f"  eta {e}: " + ", ".join(f"{k} {v['rate']} ({v['passed']}/{v['n']})" for k, v in r.items()))
        _write(out, out_path)
        return
    out["units"] = units
    out["summary"] = summarise(units, args.n_boot)
    out["total_minutes"] = round((time.perf_counter() - t0) / 60, 1)
    out["cpu_minutes"] = round(sum(u["cpu_s"] for u in units) / 60, 1)
    out["cpu_note"] = (
        "CPU of each unit's process and the children it waited for; with fewer jobs than cores a unit's "
        "synthesis and front end run in forkserver pools whose CPU is not counted"
    )
    out["load_at_end"] = os.getloadavg()[0]
    _print(out)
    _write(out, out_path)


def _write(out: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")


def _map(fn, jobs: list[dict], n: int) -> list[dict]:
    """``fn`` over ``jobs``, ``n`` at a time in worker processes (forkserver, never fork), in order."""
    if n <= 1:
        return [fn(j) for j in jobs]
    with ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("forkserver")) as ex:
        return list(ex.map(fn, jobs))


if __name__ == "__main__":
    main()
