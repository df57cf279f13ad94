"""Alignment error against ground truth, per sync mode, at 150 fps and 30 fps.

For each frame rate, synthesises recordings with random camera start offsets (-2..+2 s), drift
(-100..+100 ppm), a sender clock offset, 30 ms camera / 4 ms amplifier latency and timestamp
jitter, then aligns them with each mode and compares every frame's ECG-clock time with the
truth. ``lsl`` is the LSL-clock-only alignment as LabRecorder + pyxdf compute it (offsets every
5 s, robust line fit, dejittered ECG). Prints a table and writes benchmarks/results/sync.json.

    python benchmarks/bench_sync.py [--quick] [--recordings N] [--duration S]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from mecg.session import open_session
from mecg.sync import synchronize
from mecg.synth import DeviceClock, Subject, Trial, TrialConfig, write_trial

RESULTS = Path(__file__).parent / "results"
GOALS_MS = {"strobe": 0.5, "pulses": 1.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 short recordings per rate")
    ap.add_argument("--recordings", type=int, default=4, help="recordings per frame rate (default 4)")
    ap.add_argument("--duration", type=float, default=120.0, help="recording length in s (default 120)")
    args = ap.parse_args()
    n, dur = (2, 30.0) if args.quick else (args.recordings, args.duration)
    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory(prefix="mecg-bench-sync-") as tmp:
        for fps in (150.0, 30.0):
            errs: dict[str, list[np.ndarray]] = {"strobe": [], "pulses": [], "lsl": []}
            secs: dict[str, float] = dict.fromkeys(errs, 0.0)
            for r in range(n):
                cam = DeviceClock(
                    drift_ppm=float(rng.uniform(-100, 100)),
                    offset_s=float(rng.uniform(-2, 2)),
                    latency_s=0.030,
                    jitter_s=0.002,
                    start_s=float(rng.uniform(-2, 2)),
                )
                cfg = replace(TrialConfig(), duration_s=dur, fps=fps, width=160, height=120, camera=cam)
                path = write_trial(Trial(Subject.random("S", 100 + r), 0, cfg), Path(tmp) / f"r{fps:g}_{r}.h5")
                with open_session(path) as s:
                    truth = s.file["ground_truth"]["frame_time_on_ecg_clock_s"][()]
                    for mode in errs:
                        t0 = time.perf_counter()
                        res = synchronize(s, mode)
                        secs[mode] += time.perf_counter() - t0
                        errs[mode].append((res.frame_time_ecg_s - truth) * 1e3)
                path.unlink()
            lsl_rms = float(np.sqrt(np.mean(np.concatenate(errs["lsl"]) ** 2)))
            for mode, e in errs.items():
                all_e = np.concatenate(e)
                rms = float(np.sqrt(np.mean(all_e**2)))
                rows.append(
                    {
                        "fps": fps,
                        "mode": mode,
                        "recordings": n,
                        "frames": int(all_e.size),
                        "rms_ms": round(rms, 4),
                        "max_ms": round(float(np.max(np.abs(all_e))), 4),
                        "lsl_rms_over_mode_rms": round(lsl_rms / rms, 1),
                        "goal_rms_ms": GOALS_MS.get(mode) if fps == 150 else None,
                        "seconds_per_recording": round(secs[mode] / n, 2),
                    }
                )
    print(f"Alignment error vs ground truth ({n} recordings of {dur:g} s per rate, 160x120)")
    print(f"{'fps':>5} {'mode':>7} {'RMS ms':>9} {'max ms':>9} {'LSL/mode':>9} {'goal':>6} {'s/rec':>6}")
    for r in rows:
        goal = f"{r['goal_rms_ms']}" if r["goal_rms_ms"] else "-"
        print(
            f"{r['fps']:>5g} {r['mode']:>7} {r['rms_ms']:>9} {r['max_ms']:>9} {r['lsl_rms_over_mode_rms']:>9} "
            f"{goal:>6} {r['seconds_per_recording']:>6}"
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "sync.json").write_text(
        json.dumps({"benchmark": "sync", "machine": platform.platform(), "rows": rows}, indent=2) + "\n"
    )
    print(f"wrote {RESULTS / 'sync.json'}")


if __name__ == "__main__":
    main()
