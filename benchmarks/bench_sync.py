"""Alignment error against ground truth, per recording fault, frame rate and sync mode, with verdicts.

For each fault of :data:`mecg.synth.FAULTS` (none, ECG gap, camera gap, camera clock reset, LED edge
between exposures) and each frame rate, synthesises recordings with random camera start
(-2..+2 s), drift (-100..+100 ppm on both devices), a sender clock offset, 30 ms camera / 4 ms
amplifier latency and timestamp jitter; aligns each with ``auto`` (strobe wired: strobe mode),
``pulses`` and ``lsl``; and compares every aligned frame's ECG-clock time with the truth.

The error is the frame's position among the recorded ECG samples against the true one, in ms at the
ECG rate: what every consumer looks up. ``ecg_clock_max_ms`` is the largest error of the absolute
ECG-clock time, which across an ECG gap also carries the later segment's placement.

A **silent wrong result** is a verdict ``ok`` whose error is over 1 ms at any frame (software-clock
``lsl`` results are never ``ok``; they are judged against their stated tens of ms: wrong over 50 ms).
Prints a table and writes benchmarks/results/sync.json.

    python benchmarks/bench_sync.py [--quick] [--recordings N] [--duration S]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from mecg.session import open_session
from mecg.sync import synchronize
from mecg.synth import FAULTS, Subject, Trial, TrialConfig, random_clocks, with_fault, write_trial

RESULTS = Path(__file__).parent / "results"
MODES = ("auto", "pulses", "lsl")


def _config(rng: np.random.Generator, fps: float, dur: float) -> TrialConfig:
    cam, amp = random_clocks(rng)
    return TrialConfig(
        duration_s=dur, fps=fps, width=96, height=72, me_per_min=0, mae_per_min=0, camera=cam, amplifier=amp
    )


def _wrong(mode: str, verdict: str, rms: float, mx: float, fps: float) -> bool:
    if verdict != "ok" or not np.isfinite(rms):
        return False
    if mode == "lsl":
        return mx > 50.0
    return rms > 1.0 or mx > min(1.0, 500.0 / fps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1 recording of 30 s per cell")
    ap.add_argument("--recordings", type=int, default=3, help="recordings per fault and rate (default 3)")
    ap.add_argument("--duration", type=float, default=60.0, help="recording length in s (default 60)")
    args = ap.parse_args()
    n, dur = (1, 30.0) if args.quick else (args.recordings, args.duration)
    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory(prefix="mecg-bench-sync-") as tmp:
        for fault in FAULTS:
            for fps in (30.0, 150.0):
                cells: dict[str, dict] = {
                    m: {"errors": [], "verdicts": [], "flagged": 0, "frames": 0, "wrong": 0, "s": 0.0} for m in MODES
                }
                for r in range(n):
                    cfg = with_fault(_config(rng, fps, dur), fault, rng)
                    path = write_trial(
                        Trial(Subject.random("S", 100 + r), 0, cfg), Path(tmp) / f"{fault}_{fps:g}_{r}.h5"
                    )
                    with open_session(path) as s:
                        truth = s.ground_truth("frame_ecg_sample_position")
                        truth_t = s.ground_truth("frame_time_on_ecg_clock_s")
                        fs = s.streams["ECG"].info.nominal_srate_hz
                        for mode in MODES:
                            t0 = time.perf_counter()
                            res = synchronize(s, mode)
                            c = cells[mode]
                            c["s"] += time.perf_counter() - t0
                            err = (res.frame_sample_position() - truth) / fs * 1e3
                            c["abs_max"] = max(
                                c.get("abs_max", 0.0), float(np.nanmax(np.abs(res.frame_time_ecg_s - truth_t))) * 1e3
                            )
                            ok = np.isfinite(err)
                            c["errors"].append(err[ok])
                            c["verdicts"].append(res.verdict)
                            c["flagged"] += int((~ok).sum())
                            c["frames"] += int(err.size)
                            c["mode"] = res.mode
                            rms1 = float(np.sqrt(np.mean(err[ok] ** 2))) if ok.any() else float("nan")
                            mx1 = float(np.max(np.abs(err[ok]))) if ok.any() else float("nan")
                            c["wrong"] += _wrong(res.mode, res.verdict, rms1, mx1, fps)
                    path.unlink()
                for mode, c in cells.items():
                    e = np.concatenate(c["errors"]) if c["errors"] else np.zeros(0)
                    rows.append(
                        {
                            "fault": fault,
                            "fps": fps,
                            "mode_asked": mode,
                            "mode": c.get("mode"),
                            "recordings": n,
                            "rms_ms": round(float(np.sqrt(np.mean(e**2))), 4) if e.size else None,
                            "max_ms": round(float(np.max(np.abs(e))), 4) if e.size else None,
                            "ecg_clock_max_ms": round(c.get("abs_max", float("nan")), 4),
                            "half_period_ms": round(500.0 / fps, 2),
                            "verdicts": {v: c["verdicts"].count(v) for v in ("ok", "suspect", "failed")},
                            "frames": c["frames"],
                            "frames_flagged": c["flagged"],
                            "silent_wrong": c["wrong"],
                            "seconds_per_recording": round(c["s"] / n, 2),
                        }
                    )
    print(f"Sync error vs ground truth over aligned frames ({n} recordings of {dur:g} s per cell, 96x72)")
    print(
        f"{'fault':>12} {'fps':>4} {'mode':>7} {'RMS ms':>8} {'max ms':>8} {'clock max':>9} {'ok/sus/fail':>11} "
        f"{'flagged':>8} {'wrong':>5} {'s/rec':>6}"
    )
    for r in rows:
        v = r["verdicts"]
        print(
            f"{r['fault']:>12} {r['fps']:>4g} {r['mode'] or '-':>7} {r['rms_ms']!s:>8} {r['max_ms']!s:>8} "
            f"{r['ecg_clock_max_ms']!s:>9} "
            f"{v['ok']:>3}/{v['suspect']}/{v['failed']:<5} {r['frames_flagged']:>8} {r['silent_wrong']:>5} "
            f"{r['seconds_per_recording']:>6}"
        )
    hw = [r for r in rows if r["mode"] in ("strobe", "pulses") and r["rms_ms"] is not None]
    wrong = sum(r["silent_wrong"] for r in rows)
    print(
        f"hardware cells with RMS <= 1 ms and max <= half a frame period: "
        f"{sum(r['rms_ms'] <= 1.0 and r['max_ms'] <= r['half_period_ms'] for r in hw)} of {len(hw)}; "
        f"silent wrong results: {wrong}"
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "sync.json").write_text(
        json.dumps(
            {"benchmark": "sync", "machine": platform.platform(), "recordings": n, "duration_s": dur, "rows": rows},
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {RESULTS / 'sync.json'}")


if __name__ == "__main__":
    main()
