"""Cost of one live R-peak search (mecg.acquire.live_heart_rate.r_peaks) and its distance from offline peaks.

The app's live view searches its 8 s ECG window at most twice a second, on the UI thread, and the
recorder its last seconds for the heart rate; this measures one search of a ``--window-s`` window
(default 10 s) of synthetic ECG at 250, 500 and 1000 Hz: median and 95th percentile of ``--runs``
calls (after one warm call), and the largest distance (ms) of a live peak from the nearest offline
peak (NeuroKit2 on the whole 60 s signal, mecg.model.heart_rate.r_peaks). Also the one-off cost of
importing NeuroKit2 (a fresh process). Prints a table, writes benchmarks/results/live_rpeaks.json.

    python benchmarks/bench_live_rpeaks.py [--runs N] [--window-s S]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "live_rpeaks.json"


def _import_s() -> float:
    """Seconds to import NeuroKit2 in a fresh interpreter."""
    code = "import time; t = time.perf_counter(); import neurokit2; print(time.perf_counter() - t)"
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--window-s", type=float, default=10.0)
    args = ap.parse_args()

    from mecg.acquire.live_heart_rate import r_peaks
    from mecg.model.heart_rate import r_peaks as offline_r_peaks
    from mecg.synth import Subject, Trial, TrialConfig

    trial = Trial(Subject.random("B01", 11), 0, TrialConfig(duration_s=60.0, fps=30.0, width=32, height=24))
    rows = []
    for fs in (250.0, 500.0, 1000.0):
        ecg = trial.heart.ecg(np.arange(round(60 * fs)) / fs)
        offline = offline_r_peaks(ecg, fs)
        n = round(args.window_s * fs)
        starts = np.linspace(0, ecg.size - n, args.runs).astype(int)
        r_peaks(ecg[:n], fs)  # warm: NeuroKit2 imported, filters designed
        times, worst = [], 0.0
        for a in starts:
            t0 = time.perf_counter()
            live = a + r_peaks(ecg[a : a + n], fs)
            times.append(time.perf_counter() - t0)
            if live.size:
                worst = max(worst, float(np.max(np.min(np.abs(live[:, None] - offline[None, :]), axis=1))) / fs)
        rows.append(
            {
                "srate_hz": fs,
                "window_s": args.window_s,
                "median_ms": 1e3 * float(np.median(times)),
                "p95_ms": 1e3 * float(np.percentile(times, 95)),
                "max_offline_distance_ms": 1e3 * worst,
            }
        )
    result = {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "python": platform.python_version(),
        "runs": args.runs,
        "neurokit2_import_s": _import_s(),
        "rows": rows,
    }
    print(f"NeuroKit2 import (once, fresh process): {result['neurokit2_import_s']:.2f} s")
    print(f"{'rate Hz':>8} {'window s':>9} {'median ms':>10} {'p95 ms':>8} {'max |live-offline| ms':>22}")
    for r in rows:
        print(
            f"{r['srate_hz']:8.0f} {r['window_s']:9.1f} {r['median_ms']:10.2f} {r['p95_ms']:8.2f} "
            f"{r['max_offline_distance_ms']:22.1f}"
        )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
