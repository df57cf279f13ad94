"""How long `mecg sync`'s automatic mode takes per session, optionally against another checkout, same files.

Two synthetic sessions: one of the default LOSO benchmark's (90 s, 60 fps 320x240, realism paper) and
12 s of 640x480 at 150 fps. Each round syncs both with this checkout and (``--compare-with DIR``, a
folder holding another ``mecg`` package, e.g. from ``git archive``) with that one, alternately, each in
a fresh process on a fresh copy; it checks that every ``/sync`` dataset and attribute but the creation
time is equal. Prints a table and writes benchmarks/results/sync_speed.json.

    python benchmarks/bench_sync_speed.py [--rounds 2] [--compare-with DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine_speed import reference_loop_s

RESULTS = Path(__file__).parent / "results"
ONE = """
import sys, time
from mecg.model.ecg_features import ensure_synced
t = time.perf_counter(); ensure_synced(sys.argv[1], lambda m: None); print(time.perf_counter() - t)
"""


def _sessions(folder: Path) -> dict[str, Path]:
    from mecg.synth import DatasetSpec, Subject, Trial, TrialConfig, make_dataset, write_trial

    cfg = replace(TrialConfig(), duration_s=90.0, fps=60.0, width=320, height=240, realism="paper")
    make_dataset(DatasetSpec(str(folder / "loso"), 1, 1, 0, cfg), workers=1)
    big = replace(TrialConfig(), duration_s=12.0, fps=150.0, width=640, height=480)
    return {
        "90 s, 60 fps 320x240 (LOSO benchmark)": sorted((folder / "loso").glob("*.h5"))[0],
        "12 s, 150 fps 640x480": write_trial(Trial(Subject.random("S01", 1), 0, big), folder / "big.h5"),
    }


def _sync(src: Path, work: Path, code: str | None) -> tuple[float, dict]:
    """Sync a fresh copy of ``src`` in a new process (``code``: another checkout's folder); seconds and /sync."""
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    dst = work / src.name
    shutil.copy(src, dst)
    env = dict(os.environ, PYTHONPATH=code) if code else dict(os.environ)
    out = subprocess.run(
        [sys.executable, "-c", ONE, str(dst)], cwd=work, env=env, capture_output=True, text=True, check=True
    )
    with h5py.File(next(work.glob("*derivatives*")), "r") as f:
        g = f["sync"]
        result = {k: g[k][()] for k in g if isinstance(g[k], h5py.Dataset)}
        result.update({f"@{k}": g.attrs[k] for k in g.attrs if k != "created_time"})
    return float(out.stdout.strip().splitlines()[-1]), result


def _same(a: dict, b: dict) -> bool:
    """Equal results, NaN equal to NaN (a verdict without an uncertainty stores NaN)."""

    def eq(x: object, y: object) -> bool:
        x, y = np.asarray(x), np.asarray(y)
        return np.array_equal(x, y, equal_nan=x.dtype.kind == "f" and y.dtype.kind == "f")

    return a.keys() == b.keys() and all(eq(a[k], b[k]) for k in a)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--compare-with", default=None, metavar="DIR", help="a folder holding another mecg package")
    args = ap.parse_args()
    codes = {"this": None, **({"compare": str(Path(args.compare_with).resolve())} if args.compare_with else {})}
    ref = reference_loop_s()
    load0 = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory(prefix="mecg-bench-sync-") as d:
        tmp = Path(d)
        for name, src in _sessions(tmp / "data").items():
            times: dict[str, list[float]] = {c: [] for c in codes}
            results: dict[str, dict] = {}
            for _ in range(args.rounds):
                for c, path in codes.items():
                    t, res = _sync(src, tmp / "work", path)
                    times[c].append(round(t, 2))
                    results[c] = res
            same = _same(results["this"], results["compare"]) if "compare" in results else None
            rows.append({"session": name, "seconds": times, "same_sync": same})
            med = ", ".join(f"{c} {statistics.median(v):.2f} s" for c, v in times.items())
            print(f"{name}: {med} (median of {args.rounds}){'' if same is None else f'; same /sync: {same}'}")
    out = {
        "benchmark": "sync_speed",
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "reference_loop_s": ref,
        "load_before": round(load0, 2),
        "load_after": round(os.getloadavg()[0], 2),
        "compare_with": args.compare_with,
        "rows": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "sync_speed.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {RESULTS / 'sync_speed.json'}")


if __name__ == "__main__":
    main()
