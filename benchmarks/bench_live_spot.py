"""Live spotting while recording: 150 fps 640x480 grey + ECG, loss and candidate latency.

Runs ``mecg record --simulate --fps 150 --size 640x480 --live-spot ...`` in its own process for
``--minutes`` (default 5; the issue's goal: zero loss, candidates <= 2 s after their offset) and reads
its JSON summary:

* **loss**: samples missing in the file per stream, and what the simulated devices never sent
  (frames the simulator skipped because this machine could not render them in time: not the
  recorder's doing) - the recorder's own loss is ``missing - skipped at source``;
* **live analysis**: candidates, samples the analysis skipped (queue full: analysis behind, the
  recording unaffected), and the **latency** of each candidate: the time it was produced minus the
  time of its offset frame (both on the recorder's LSL clock), median / p95 / max;
* with ``--replay``: the as-live replay of the file (:func:`mecg.model.live_spotter.replay_live`) and
  whether it equals what was stored while recording (it must when nothing was skipped);
* with ``--offline``: the standard offline spotting of the file (``mecg spot``'s) and how far the live
  candidates are from it (MEGC matching, offline as reference).

The machine's load average is stored with the results (the 2-core machine is shared). Prints a table
and writes benchmarks/results/live_spot.json. Measures; asserts nothing.

    python benchmarks/bench_live_spot.py [--minutes 5] [--model MODEL.pt] [--ccf-eta 2] [--replay] [--offline]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("LSLAPICFG", str(Path(__file__).resolve().parents[1] / "mecg" / "acquire" / "lsl_local.cfg"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine_speed import reference_loop_s

RESULTS = Path(__file__).parent / "results"


def record(out: Path, minutes: float, fps: float, size: str, live: str | None, eta: float | None, seed: int) -> dict:
    """One ``mecg record --simulate [--live-spot LIVE]`` run (``live`` None: without); its JSON summary, wall time."""
    cmd = [sys.executable, "-m", "mecg", "record", "--simulate", "--seed", str(seed), "--fps", f"{fps:g}"]
    cmd += ["--size", size, "--duration", f"{minutes * 60:g}", "--out", str(out), "--overwrite", "--quiet", "--json"]
    cmd += ["--me-per-min", "6", "--mae-per-min", "2"] + (["--live-spot", live] if live else [])
    if eta is not None and live:
        cmd += ["--ccf-eta", f"{eta:g}"]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise SystemExit(f"mecg record failed ({res.returncode}):\n{res.stderr[-3000:]}")
    d = json.loads(res.stdout.strip().splitlines()[-1])
    d["wall_s"] = time.perf_counter() - t0
    d["stderr_tail"] = res.stderr.strip().splitlines()[-6:]
    return d


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--fps", type=float, default=150.0)
    ap.add_argument("--size", default="640x480")
    ap.add_argument("--model", default=None, help="a CMCL-Net checkpoint (default: the baseline)")
    ap.add_argument("--ccf-eta", type=float, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--replay", action="store_true", help="replay the file as-live and compare with what was stored")
    ap.add_argument("--offline", action="store_true", help="also the standard offline spotting, and the distance")
    ap.add_argument("--keep", default=None, help="keep the session file here")
    ap.add_argument("--no-live", action="store_true", help="the same recording without live spotting (reference)")
    ap.add_argument("--out", default=str(RESULTS / "live_spot.json"))
    args = ap.parse_args()

    ref_loop = reference_loop_s()
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.keep) if args.keep else Path(tmp) / "live.h5"
        live_arg = None if args.no_live else args.model or "baseline"
        d = record(path, args.minutes, args.fps, args.size, live_arg, args.ccf_eta, args.seed)
        load1 = os.getloadavg()
        live = d.get("live_spot", {})
        streams = {s["key"]: s for s in d["streams"]}
        devices = d.get("devices", {})
        cam, ecg = streams.get("FaceCamera", {}), streams.get("ECG", {})
        skipped_src = devices.get("camera", {}).get("dropped", 0)  # frames the camera driver never got
        result: dict = {
            "what": "mecg record --simulate --live-spot while recording",
            "fps": args.fps,
            "size": args.size,
            "minutes": args.minutes,
            "method": "none (reference run)" if args.no_live else "cmclnet" if args.model else "baseline",
            "ccf_eta": args.ccf_eta,
            "complete": d["complete"],
            "frames": cam.get("samples"),
            "frames_missing": cam.get("missing"),
            "frames_dropped_short_steps": cam.get("dropped"),
            "frame_gaps": cam.get("gaps"),
            "frames_skipped_at_source": skipped_src,
            "frames_skipped_by_simulator": devices.get("camera", {}).get("skipped_by_simulator"),
            "recorder_frame_loss": max(0, (cam.get("missing") or 0) - skipped_src),
            "ecg_samples": ecg.get("samples"),
            "ecg_missing": ecg.get("missing"),
            "ecg_dropped_short_steps": ecg.get("dropped"),
            "ecg_gap_table": ecg.get("gap_table"),
            "ecg_lost_by_device": devices.get("ecg", {}).get("lost"),
            "recorder_cpu_s": d.get("cpu_s"),
            "live": live,
            "load_before": load0,
            "load_after": load1,
            "cpus": os.cpu_count(),
            "machine": platform.platform(),
            "reference_loop_s": ref_loop,
            "wall_s": d["wall_s"],
        }
        if (args.replay or args.offline) and not args.no_live:
            from mecg.model.live_spotter import (
                LiveSpotParams,
                LiveSpotter,
                compare_spots,
                replay_live,
                stored_live_spots,
            )

            stored, _ = stored_live_spots(path)
            ck = None
            if args.model:
                from mecg.model.spotting import load_spotter

                ck = load_spotter(args.model)
            eta = args.ccf_eta if args.ccf_eta is not None or not args.model else 2.0
            params = LiveSpotParams(method="cmclnet" if ck else "baseline", ccf_eta=eta)
            t0 = time.perf_counter()
            again = replay_live(path, LiveSpotter(path.stem, params, ck))
            result["replay_s"] = time.perf_counter() - t0
            result["replay_equal"] = len(again) == len(stored) and all(a.same_as(b) for a, b in zip(again, stored))
            result["replay_candidates"] = len(again)
            if args.offline:
                from mecg.model.spotting import spot_session

                t0 = time.perf_counter()
                off = spot_session(path, args.model, ccf_eta=eta if args.model else None).spots
                result["offline_s"] = time.perf_counter() - t0
                result["offline_candidates"] = len(off)
                # the offline baseline has no CCF: its live twin is compared with every candidate, verdict aside
                live_spots = [replace(c.spot, kept_by_ccf=True) if not args.model else c.spot for c in stored]
                result["live_vs_offline"] = compare_spots(live_spots, off)

    lat = live.get("latency_s") or {}
    rows = [
        ("video", f"{args.size} @ {args.fps:g} fps grey, {args.minutes:g} min, {result['method']}"),
        ("frames recorded / missing", f"{result['frames']} / {result['frames_missing']}"),
        ("frames skipped at the source", f"{skipped_src} (simulator could not render in time)"),
        ("ECG samples / missing", f"{result['ecg_samples']} / {result['ecg_missing']}"),
        ("recorder loss (frames missing - never sent)", f"{max(0, (result['frames_missing'] or 0) - skipped_src)}"),
        (
            "candidates (ME / MaE, kept)",
            f"{live.get('candidates')} ({live.get('me')} / {live.get('mae')}, {live.get('kept')})",
        ),
        ("analysis skipped samples", json.dumps(live.get("skipped_samples"))),
        (
            f"latency after offset (s, {live.get('in_warmup', 0)} of the warm-up apart)",
            f"median {lat.get('median', float('nan')):.2f}, p95 {lat.get('p95', float('nan')):.2f}, "
            f"max {lat.get('max', float('nan')):.2f}",
        ),
        ("load average before / after", f"{load0[0]:.1f} / {load1[0]:.1f} ({os.cpu_count()} CPUs)"),
        ("reference loop (10**7 additions)", f"{ref_loop} s"),
    ]
    if "replay_equal" in result:
        rows.append(("as-live replay equals stored", f"{result['replay_equal']} ({result['replay_s']:.0f} s)"))
    if "live_vs_offline" in result:
        o = result["live_vs_offline"]["overall"]
        rows.append(
            ("live vs offline (F1, offline = ref)", f"{o['f1']:.2f} (tp {o['tp']}, fp {o['fp']}, fn {o['fn']})")
        )
    w = max(len(a) for a, _ in rows)
    for a, b in rows:
        print(f"{a:<{w}}  {b}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
