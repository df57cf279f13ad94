"""What the live spotter's ECG waits buy: accuracy and latency against ``LiveSpotParams``' lookaheads.

A live candidate is decided once the ECG has reached ``ecg_lookahead_s`` after its apex (the CCF's HR
slope there needs the next beats), and a CMCL-Net window is scored once the ECG has reached
``window_lookahead_s`` after its centre (offline, each window sees 2 s of ECG each side; live, samples
past the lookahead repeat the last one). A shorter wait spots sooner and sees less. This benchmark
measures both on a synthetic coupled dataset (the LOSO benchmark's world: 60 fps 320x240, 90 s trials):

1. makes ``--train`` + ``--test`` subjects (one trial each), trains a small CMCL-Net (video + ECG,
   ``mecg train``'s pipeline; its last training subject chooses the thresholds) on the training ones;
2. spots each test session offline (``mecg spot``: CMCL-Net + CCF at eta 2) and as-live
   (:func:`mecg.model.live_spotter.replay_live`, the same code as while recording): CMCL-Net + CCF at
   each ``--lookaheads`` as its window wait (the CCF's wait at its default), the baseline + CCF at each
   ``--baseline-lookaheads`` as its CCF wait;
3. reports per lookahead and method: ME P/R/F1 of the kept candidates against the ground truth (with a
   subject-bootstrap CI of the difference to the longest lookahead, paired on the same sessions);
   CMCL-Net's distance from offline spotting (MEGC matching, offline as reference); how often the
   CCF's verdict and HRS equal those at the longest lookahead (same candidate); and the **design
   latency**: the time of the latest sample the spotter had when it decided a candidate minus the
   candidate's offset (no computing time in it; warm-up candidates apart).

With ``--train-lookahead S[,S2...]`` a second model (per value) is trained on the same data and seed for live spotting
(``mecg train --live-lookahead S``: its windows see only S s of ECG after their centre, as live) and
spotted live with that wait; it is compared with the plain model at the reference wait and with its
own offline spotting.

Prints a table and writes benchmarks/results/live_lookahead.json. Measures; asserts nothing.

    python benchmarks/bench_live_lookahead.py [--quick] [--lookaheads 1.0,1.25,1.5,2.0,3.0] [--jobs 2]
    python benchmarks/bench_live_lookahead.py --train-lookahead 1.25 --baseline-lookaheads "" --train 6 --test 10
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine_speed import reference_loop_s
from spotting import bootstrap_f1, f1_from_counts, subject_counts, trial_config

RESULTS = Path(__file__).parent / "results"
ETA = 2.0


def replay_job(job: dict) -> dict:
    """One as-live replay: the candidates (interval, kept, HRS, warm-up) and each one's design latency."""
    import torch

    from mecg.model.live_spotter import LiveSpotParams, LiveSpotter, replay_live
    from mecg.model.spotting import load_spotter

    torch.set_num_threads(1)
    path = Path(job["path"])
    net = job["method"].startswith("cmclnet")
    ck = load_spotter(job["model"]) if net else None
    # CMCL-Net: the window's wait varies, the CCF's stays at its default; the baseline: the CCF's wait; a model
    # trained for live spotting: the wait it was trained for (its own)
    wait = {} if job.get("own_wait") else {"window_lookahead_s" if net else "ecg_lookahead_s": job["lookahead"]}
    params = LiveSpotParams(method="cmclnet" if net else "baseline", ccf_eta=ETA, **wait)
    t0 = time.perf_counter()
    decided: list[float] = []
    cands = replay_live(path, LiveSpotter(path.stem, params, ck), chunk_s=0.02, decided_at=decided)
    return {
        **{k: job[k] for k in ("session", "method", "lookahead")},
        "seconds": round(time.perf_counter() - t0, 1),
        "candidates": [
            {
                "type": c.spot.type,
                "onset": c.spot.onset_frame,
                "apex": c.spot.apex_frame,
                "offset": c.spot.offset_frame,
                "kept": bool(c.spot.kept_by_ccf),
                "hrs": c.hrs_apex_bpm_per_s,
                "ccf": c.ccf,
                "warmup": c.in_warmup,
                "latency_s": d - c.offset_time_s if np.isfinite(d) else None,
            }
            for c, d in zip(cands, decided, strict=True)
        ],
    }


def offline_job(job: dict) -> dict:
    """``mecg spot`` of one session with the model and the CCF at eta 2."""
    import torch

    from mecg.model.spotting import spot_session

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    spots = spot_session(job["path"], job["model"], ccf_eta=ETA, workers=1).spots
    return {
        "session": job["session"],
        "model": job["label"],
        "seconds": round(time.perf_counter() - t0, 1),
        "spots": [
            {
                "type": s.type,
                "onset": s.onset_frame,
                "apex": s.apex_frame,
                "offset": s.offset_frame,
                "kept": bool(s.kept_by_ccf),
            }
            for s in spots
        ],
    }


def _intervals(session: str, items: list[dict]) -> list:
    """The kept candidates of one session as evaluation intervals."""
    from mecg.model.evaluate import Interval

    return [Interval(session, c["onset"], c["offset"], c["type"]) for c in items if c["kept"]]


def _counts(spots: dict[str, list[dict]], truth: dict[str, list]) -> np.ndarray:
    """``(sessions, 3)`` ME tp, fp, fn per session (sorted by name), each session its own bootstrap unit."""
    preds = [i for s, items in spots.items() for i in _intervals(s, items)]
    per = subject_counts(preds, [g for v in truth.values() for g in v], {s: s for s in truth})
    return np.array([per[s] for s in sorted(truth)])


def _f1(c: np.ndarray) -> float:
    return round(float(f1_from_counts(*c)), 4)


def _iou(a: dict, b: dict) -> float:
    inter = min(a["offset"], b["offset"]) - max(a["onset"], b["onset"]) + 1
    union = max(a["offset"], b["offset"]) - min(a["onset"], b["onset"]) + 1
    return max(0, inter) / union


def _pair(x: dict, ref: list[dict]) -> dict | None:
    """The reference candidate of the same type that overlaps ``x`` most, if by IoU >= 0.5 (MEGC's match)."""
    best = max((y for y in ref if y["type"] == x["type"]), key=lambda y: _iou(x, y), default=None)
    return best if best is not None and _iou(x, best) >= 0.5 else None


def summarise(replays: list[dict], offline: dict[str, dict], truth: dict[str, list], ref: float) -> dict:
    """Per method and lookahead: F1 vs truth (and the paired CI against ``ref``), distance from offline,
    candidates and CCF verdicts as at ``ref`` and the design latency.

    ``offline``: per model label (``cmclnet``, ``cmclnet live S``) its offline spots per session. A model
    trained for live spotting is compared with the plain model's ``ref`` and with its own offline spotting.
    """
    from mecg.model.evaluate import evaluate

    if offline and "spots" in next(iter(offline.values())):  # results written before there were two models
        offline = {"cmclnet": offline}
    sessions = sorted(truth)
    by = {(r["method"], r["lookahead"], r["session"]): r["candidates"] for r in replays}
    out: dict[str, dict] = {}
    for method in sorted({r["method"] for r in replays}):
        las = sorted({r["lookahead"] for r in replays if r["method"] == method})
        base = "cmclnet" if method.startswith("cmclnet") else method  # whose wait ``ref`` is the reference
        counts = {
            (m, la): _counts({s: by[m, la, s] for s in sessions}, truth)
            for m, la in {(method, la) for la in las} | {(base, ref)}
        }
        rows = {}
        for la in las:
            c = counts[method, la]
            tot = c.sum(axis=0)
            lat = [
                x["latency_s"]
                for s in sessions
                for x in by[method, la, s]
                if x["latency_s"] is not None and not x["warmup"]
            ]
            paired = verdict = 0
            dh: list[float] = []
            for s in sessions:
                for x in by[method, la, s]:
                    m = _pair(x, by[base, ref, s])
                    if m is None:
                        continue
                    paired += 1
                    verdict += x["kept"] == m["kept"]
                    if x["hrs"] is not None and m["hrs"] is not None:
                        dh.append(abs(x["hrs"] - m["hrs"]))
            n_cand = sum(len(by[method, la, s]) for s in sessions)
            row = {
                "me_tp_fp_fn": tot.tolist(),
                "me_f1": _f1(tot),
                "candidates": n_cand,
                "kept": sum(x["kept"] for s in sessions for x in by[method, la, s]),
                "candidates_matching_ref": paired,
                "ref_candidates": sum(len(by[base, ref, s]) for s in sessions),
                "ccf_verdict_as_ref": verdict,
                "hrs_abs_diff_to_ref_median": round(statistics.median(dh), 4) if dh else None,
                "hrs_abs_diff_to_ref_max": round(max(dh), 4) if dh else None,
                "design_latency_s": {
                    "n": len(lat),
                    "median": round(statistics.median(lat), 3) if lat else None,
                    "p95": round(float(np.percentile(lat, 95)), 3) if lat else None,
                    "max": round(max(lat), 3) if lat else None,
                },
            }
            if (method, la) != (base, ref):
                row["me_f1_minus_ref"] = bootstrap_f1([counts[method, la]], [counts[base, ref]])
            if method in offline:
                live = [i for s in sessions for i in _intervals(s, by[method, la, s])]
                off = [i for s in sessions for i in _intervals(s, offline[method][s]["spots"])]
                o = evaluate(live, off)["overall"]
                row["vs_offline"] = o.as_dict()
            rows[f"{la:g}"] = row
        out[method] = rows
    for label, res in offline.items():
        off_counts = _counts({s: res[s]["spots"] for s in sessions}, truth).sum(axis=0)
        out[f"offline {label}"] = {"me_tp_fp_fn": off_counts.tolist(), "me_f1": _f1(off_counts)}
    return out


def _print(summary: dict, ref: float) -> None:
    head = f"{'method':<17} {'wait s':>6} {'ME F1':>6} {'F1 - ref [95% CI]':>26} {'cands':>5} {'kept':>5} "
    head += f"{'as ref':>9} {'CCF same':>8} {'|dHRS| med':>10} {'vs offline F1':>13} {'latency med/p95/max s':>22}"
    print(head)
    for method, rows in summary.items():
        if method.startswith("offline"):
            print(f"{method}: ME F1 {rows['me_f1']} (tp, fp, fn {rows['me_tp_fp_fn']})")
            continue
        for la, r in rows.items():
            d = r.get("me_f1_minus_ref")
            diff = f"{d['estimate']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}]" if d else f"(ref {ref:g})"
            lat = r["design_latency_s"]
            off = r.get("vs_offline", {}).get("f1", "-")
            dh = r["hrs_abs_diff_to_ref_median"]
            print(
                f"{method:<17} {la:>6} {r['me_f1']:>6.3f} {diff:>26} {r['candidates']:>5} {r['kept']:>5} "
                f"{r['candidates_matching_ref']:>4}/{r['ref_candidates']:<4} {r['ccf_verdict_as_ref']:>8} "
                f"{dh if dh is not None else '-':>10} "
                f"{off:>13} {lat['median']}/{lat['p95']}/{lat['max']:>7}"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 + 2 subjects of 40 s, 1 + 1 epochs")
    ap.add_argument("--train", type=int, default=5, help="training subjects (the last one chooses thresholds)")
    ap.add_argument("--test", type=int, default=4, help="test subjects")
    ap.add_argument("--duration", type=float, default=90.0, help="s per trial")
    ap.add_argument("--fps", type=float, default=60.0)
    ap.add_argument("--size", default="320x240")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--pretrain-epochs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lookaheads", default="1.0,1.25,1.5,2.0,3.0", help="CMCL-Net window waits, s; longest: reference")
    ap.add_argument("--baseline-lookaheads", default="1.0,1.25,1.5,2.0,3.0", help="CCF waits, s; '' skips the baseline")
    ap.add_argument(
        "--train-lookahead",
        default=None,
        metavar="S[,S2...]",
        help="also train a model for live spotting with S s of ECG after each window (mecg train --live-lookahead) "
        "per value, and spot live with each (its own wait)",
    )
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--keep", type=Path, default=None, help="keep the dataset and model in this folder")
    ap.add_argument("--out", type=Path, default=RESULTS / "live_lookahead.json")
    ap.add_argument("--summary-of", type=Path, default=None, help="only summarise the replays a result JSON holds")
    args = ap.parse_args()
    if args.summary_of:
        from mecg.model.evaluate import Interval

        d = json.loads(args.summary_of.read_text())
        truth = {k: [Interval(k, *t) for t in v] for k, v in d["truth"].items()}
        d["summary"] = summarise(d["replays"], d["offline"], truth, d["reference_lookahead_s"])
        _print(d["summary"], d["reference_lookahead_s"])
        args.summary_of.write_text(json.dumps(d, indent=2, default=float) + "\n")
        return
    if args.quick:
        args.train, args.test, args.duration, args.epochs, args.pretrain_epochs = 3, 2, 40.0, 1, 1
    las = [float(x) for x in args.lookaheads.split(",") if x]
    base_las = [float(x) for x in args.baseline_lookaheads.split(",") if x]
    ref = max(las)
    if base_las and max(base_las) != ref:
        raise SystemExit("the baseline's lookaheads need the same longest one (the reference) as CMCL-Net's")
    w, h = (int(v) for v in args.size.split("x"))
    settings = {"duration_s": args.duration, "fps": args.fps, "width": w, "height": h}
    load0, t_start = list(os.getloadavg()), time.perf_counter()
    from mecg.model.pipeline import train_spotter
    from mecg.session import open_session
    from mecg.synth import DatasetSpec, make_dataset

    with tempfile.TemporaryDirectory(prefix="mecg-bench-lookahead-") as tmp:
        folder = args.keep or Path(tmp)
        cfg = trial_config(settings, 1.0)
        make_dataset(DatasetSpec(str(folder / "data"), args.train + args.test, 1, args.seed, cfg), workers=args.jobs)
        paths = sorted((folder / "data").glob("*.h5"))
        train, test = paths[: args.train], paths[args.train :]
        t_data = time.perf_counter() - t_start
        print(f"{len(paths)} sessions made in {t_data:.0f} s; training on {len(train)}", flush=True)
        models = {"cmclnet": (folder / "model.pt", None)}
        for la in (float(x) for x in (args.train_lookahead or "").split(",") if x):
            models[f"cmclnet live {la:g}"] = (folder / f"model-live-{la:g}.pt", la)
        for path, live_la in models.values():
            train_spotter(
                train,
                path,
                epochs=args.epochs,
                pretrain_epochs=args.pretrain_epochs,
                seed=args.seed,
                jobs=args.jobs,
                live_lookahead_s=live_la,
                log=lambda m: None,
            )
        t_train = time.perf_counter() - t_start - t_data
        print(f"trained in {t_train:.0f} s; replaying {len(test)} test sessions", flush=True)
        truth = {}
        from mecg.model.evaluate import Interval

        for p in test:
            with open_session(p) as s:
                truth[p.stem] = [Interval(p.stem, a.onset_frame, a.offset_frame, a.type) for a in s.annotations]
        model = str(models["cmclnet"][0])
        jobs = [
            {"path": str(p), "session": p.stem, "method": m, "lookahead": la, "model": model}
            for p in test
            for m, ls in (("cmclnet", las), ("baseline", base_las))
            for la in ls
        ]
        for label, (path, live_la) in models.items():
            if live_la is not None:  # spotted live with the wait it was trained for
                jobs += [
                    {"path": str(p), "session": p.stem, "method": label, "lookahead": live_la, "model": str(path)}
                    | {"own_wait": True}
                    for p in test
                ]
        ctx = multiprocessing.get_context("forkserver")
        with ProcessPoolExecutor(args.jobs, mp_context=ctx) as pool:
            off_futs = [
                pool.submit(offline_job, {"path": str(p), "session": p.stem, "model": str(path), "label": label})
                for label, (path, _) in models.items()
                for p in test
            ]
            replays = list(pool.map(replay_job, jobs))
            offline: dict[str, dict] = {}
            for f in off_futs:
                offline.setdefault(f.result()["model"], {})[f.result()["session"]] = f.result()
    summary = summarise(replays, offline, truth, ref)
    load1 = list(os.getloadavg())
    n_truth = sum(len(v) for v in truth.values())
    print(f"\n{len(test)} test sessions, {n_truth} annotated expressions; reference lookahead {ref:g} s")
    _print(summary, ref)
    out = {
        "benchmark": "live_lookahead",
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "reference_loop_s": reference_loop_s(),
        "load_average_before": load0,
        "load_average_after": load1,
        "settings": {
            **settings,
            **{k: getattr(args, k) for k in ("train", "test", "epochs", "pretrain_epochs", "seed", "train_lookahead")},
        },
        "eta": ETA,
        "reference_lookahead_s": ref,
        "truth_me": sum(1 for v in truth.values() for a in v if a.type == "ME"),
        "truth": {k: [[a.onset, a.offset, a.type] for a in v] for k, v in truth.items()},
        "summary": summary,
        "replays": replays,
        "offline": offline,
        "seconds": {
            "data": round(t_data, 1),
            "train": round(t_train, 1),
            "total": round(time.perf_counter() - t_start, 1),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2, default=float) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
