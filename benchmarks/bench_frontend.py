"""Spotting speed (front end alone, and front end + CMCL-Net + CCF) and the classical baseline's accuracy.

1. Front end: frames/s of the default front end (decode, face crop + tracking, DIS flow, ROI
   features) at 150 fps 640x480 on all cores, the first run in a fresh process (it starts the
   fork server) and a second one, one process, and the same pipeline with TV-L1 flow as most
   papers use it, on the same frames (goal: default >= 750 frames/s, 5x real time).
2. Spotting: ``spot_file`` as ``mecg spot --method cmclnet`` runs it (front end, ECG features,
   windows, CMCL-Net ``small`` preset, CCF) on the same session, synced beforehand (sync is its own
   step); its network part alone on the loaded features (goal: >= 2x real time, 300 frames/s).
   The model is trained for one epoch on two short 150 fps sessions: speed does not depend on
   the weights.
3. Accuracy: MEGC P/R/F1 of the baseline spotter on a synthetic dataset (settings printed;
   the default 6 x 2 x 60 s set is most of the run's time, ``--no-accuracy`` skips it).

The machine's load average is printed and stored with the numbers (other work on the machine
slows every row). Prints tables and writes benchmarks/results/frontend.json.

With ``--codecs deflate,blosc-lz4,lz4`` it only compares video codecs instead: the same synthetic
video re-encoded in each codec (``SessionWriter(video_codec=...)``), the front end run on each,
one process (CPU ms a frame) and all cores (frames/s), codecs interleaved over ``--rounds``; it
writes benchmarks/results/frontend_codecs.json.

With ``--stages`` it only profiles where one process's CPU goes per frame (read + inflate,
crop + track, DIS flow, ROI features; reads in the same thread so every stage is attributable);
``--compare-with DIR`` runs each round also with the ``mecg`` package of another checkout (for
example ``git worktree add /tmp/old HEAD~1``), alternating, so before and after share one run and
one load; it writes benchmarks/results/frontend_stages.json.

    python benchmarks/bench_frontend.py [--quick] [--seconds 12] [--accuracy 6,2,60 | --no-accuracy]
    python benchmarks/bench_frontend.py --codecs deflate,blosc-lz4,lz4 [--seconds 6] [--rounds 2]
    python benchmarks/bench_frontend.py --stages [--compare-with DIR] [--seconds 6] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from mecg.model.frontend import FrontEndParams, default_k, frontend_features
from mecg.session import SessionWriter, StreamKind, open_session

# The front end's pool processes (forkserver) import this script again as their main module: what it
# imports at the top, each of them imports before its first frame. Only what `mecg spot`'s processes
# also have is imported here; the synthetic data and the baseline are imported where used (mecg.synth
# alone took 0.5 s a process, a sixth of a 12 s video's front-end time).

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine_speed import reference_loop_s

RESULTS = Path(__file__).parent / "results"
FPS = 150


def _result_header(benchmark: str, load_before: object, load_after: object, seconds: float) -> dict:
    """The fields every 640x480 result JSON of this file starts with."""
    return {
        "benchmark": benchmark,
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "reference_loop_s": reference_loop_s(),
        "load_average_before": load_before,
        "load_average_after": load_after,
        "video_s": seconds,
        "size": "640x480",
        "fps": FPS,
    }


def _row(name: str, method: str, procs: int, frames: int, dt: float, cpu: float | None = None) -> dict:
    return {
        "run": name,
        "method": method,
        "processes": procs,
        "frames": frames,
        "seconds": round(dt, 2),
        "frames_per_s": round(frames / dt, 1),
        "x_real_time_150fps": round(frames / dt / FPS, 2),
        # CPU time of this process (all its threads) per frame: less sensitive to other load than wall time
        "cpu_ms_per_frame": None if cpu is None else round(cpu / frames * 1e3, 2),
    }


def frontend_speed(path: Path, tmp: Path, tvl1_frames: int) -> list[dict]:
    """Front-end rows: all cores cold and warm, one process, TV-L1 (on the first frames only)."""
    from mecg.synth import Subject, Trial, TrialConfig, write_trial

    cores = os.cpu_count() or 1
    with open_session(path) as s:
        frames = s.stream(kind="video").sample_count
    p = FrontEndParams(k_frames=default_k(FPS))
    rows = []
    for name, workers in (("all cores, first run", cores), ("all cores, again", cores), ("one process", 1)):
        t0, c0 = time.perf_counter(), time.process_time()
        frontend_features(path, p, workers=workers, cache=False)
        cpu = time.process_time() - c0 if workers == 1 else None  # pool processes are not ours to count
        rows.append(_row(name, "dis", workers, frames, time.perf_counter() - t0, cpu))
    cfg = replace(TrialConfig(), duration_s=tvl1_frames / FPS + 0.1, fps=FPS, width=640, height=480)
    short = write_trial(Trial(Subject.random("S01", 1), 0, cfg), tmp / "tvl1.h5")
    with open_session(short) as s:
        n = s.stream(kind="video").sample_count
    t0 = time.perf_counter()
    frontend_features(short, replace(p, method="tvl1"), workers=cores, cache=False)
    rows.append(_row("all cores", "tvl1", cores, n, time.perf_counter() - t0))
    return rows


def recode(path: Path, out: Path, codec: str) -> Path:
    """Copy ``path``'s streams into a new session whose video is stored in ``codec`` (frames bit-identical)."""
    with open_session(path) as s, SessionWriter(out, s.subject_id, s.notes, video_codec=codec) as w:
        for st in s.streams.values():
            key = w.add_stream(st.info)
            if st.info.kind == StreamKind.VIDEO:
                for a in range(0, st.sample_count, 150):
                    b = min(a + 150, st.sample_count)
                    w.append(key, st.frames(a, b), st.timestamps[a:b])
            elif st.info.kind == StreamKind.MARKERS:
                w.append(key, st.markers(), st.timestamps)
            else:
                w.append(key, st.data[...], st.timestamps)
    return out


def codec_speed(path: Path, tmp: Path, codecs: list[str], rounds: int) -> list[dict]:
    """Front end on ``path`` re-encoded in each codec: one process (CPU ms a frame) and all cores, interleaved."""
    cores = os.cpu_count() or 1
    files = {c: recode(path, tmp / f"codec-{c}.h5", c) for c in codecs}
    with open_session(path) as s:
        frames = s.stream(kind="video").sample_count
    p = FrontEndParams(k_frames=default_k(FPS))
    frontend_features(files[codecs[0]], p, workers=cores, cache=False)  # starts the fork server, warms caches
    rows = []
    for r in range(rounds):
        for c in codecs:
            for name, workers in (("one process", 1), ("all cores", cores)):
                t0, c0 = time.perf_counter(), time.process_time()
                frontend_features(files[c], p, workers=workers, cache=False)
                cpu = time.process_time() - c0 if workers == 1 else None
                row = _row(name, "dis", workers, frames, time.perf_counter() - t0, cpu)
                row.update(codec=c, round=r + 1, file_MB=round(files[c].stat().st_size / 1e6, 2), load=_load()[0])
                rows.append(row)
                print(
                    f"{c:>10} {name:>12} round {r + 1}: {row['frames_per_s']:>7} frames/s, "
                    f"{row['cpu_ms_per_frame'] or '-':>5} ms CPU a frame (load {row['load']})",
                    flush=True,
                )
    return rows


def stage_profile(path: Path) -> dict:
    """CPU ms a frame of each front-end stage in this process (one OpenCV thread, as in a pool worker)."""
    import cv2
    import numpy as np

    import mecg.model.frontend as fe
    from mecg.model.face import REFERENCE_ROI, ROI_NAMES, find_layout

    cv2.setNumThreads(1)
    p = FrontEndParams(k_frames=default_k(FPS))
    clock = time.process_time
    cpu = dict.fromkeys(("read", "crop", "flow", "roi"), 0.0)
    with open_session(path) as s:
        video = s.stream(kind="video")
        n = video.sample_count
        c = clock()
        layout = find_layout([video.data[int(i)] for i in np.linspace(0, n - 1, 5)])
        detect = clock() - c
        flow_fn, boxes = fe._flow_fn(p.method), layout.rois_in_crop(p.crop_size)
        ref = ROI_NAMES.index(REFERENCE_ROI)
        cropper = fe._Cropper(layout, p.crop_size, p.compensate, alpha=min(1.0, 1.0 / (0.3 * FPS)))
        rows = cropper.rows_needed(video.data.shape[1])
        cropper(video.frames(0, 1, rows=rows)[0])
        cropper.shift = np.zeros(2)
        ring: dict[int, np.ndarray] = {}
        start = clock()
        for a in range(0, n, fe.CHUNK):
            c = clock()
            chunk = video.frames(a, min(a + fe.CHUNK, n), rows=rows)
            cpu["read"] += clock() - c
            for j, frame in enumerate(chunk):
                i = a + j
                c = clock()
                ring[i] = cropper(frame)
                cpu["crop"] += clock() - c
                if i - p.k_frames in ring:
                    c = clock()
                    flow = flow_fn(ring.pop(i - p.k_frames), ring[i])
                    cpu["flow"] += clock() - c
                    c = clock()
                    fe._roi_features(flow, boxes, ref, p.patch, p.compensate)
                    cpu["roi"] += clock() - c
        total = clock() - start
    out = {k: round(v / n * 1e3, 3) for k, v in cpu.items()}
    out.update(total=round(total / n * 1e3, 3), face_detection_s=round(detect, 3), frames=n, rows_inflated=rows)
    out["code"] = str(Path(fe.__file__).parents[2])
    return out


def stages_main(args: argparse.Namespace, seconds: float) -> None:
    """``--stages``: per-stage CPU a frame, rounds alternating with ``--compare-with``; writes frontend_stages.json."""
    from mecg.synth import Subject, Trial, TrialConfig, write_trial

    load_before = _load()
    t_start = time.perf_counter()
    checkouts = {"this": None, **({"compare": str(Path(args.compare_with).resolve())} if args.compare_with else {})}
    runs: dict[str, list[dict]] = {k: [] for k in checkouts}
    with tempfile.TemporaryDirectory(prefix="mecg-bench-fe-") as d:
        cfg = replace(TrialConfig(), duration_s=seconds, fps=FPS, width=640, height=480)
        path = write_trial(Trial(Subject.random("S01", 1), 0, cfg), Path(d) / "speed.h5")
        for r in range(args.rounds):
            for name, src in checkouts.items():
                env = dict(os.environ)
                if src:
                    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
                cmd = [sys.executable, __file__, "--stage-once", str(path)]
                res = json.loads(subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout)
                res.update(round=r + 1, load=_load()[0])
                runs[name].append(res)
                print(
                    f"round {r + 1} {name:>7} ({res['code']}): {res['total']} ms CPU a frame, "
                    f"{ {k: res[k] for k in ('read', 'crop', 'flow', 'roi')} } (load {res['load']})",
                    flush=True,
                )
    load_after = _load()
    summary = {
        name: {k: statistics.median(x[k] for x in rs) for k in ("read", "crop", "flow", "roi", "total")}
        for name, rs in runs.items()
    }
    print(f"\nmachine: {os.cpu_count()} cores, load average {load_before} before, {load_after} after")
    print(f"median of {args.rounds} rounds, CPU ms a frame, one process, 640x480 at {FPS} fps:")
    print(f"{'code':>8} {'read':>7} {'crop':>7} {'flow':>7} {'roi':>7} {'total':>7}")
    for name, m in summary.items():
        print(f"{name:>8} " + " ".join(f"{m[k]:>7.3f}" for k in ("read", "crop", "flow", "roi", "total")))
    RESULTS.mkdir(exist_ok=True)
    out = {
        **_result_header("frontend_stages", load_before, load_after, seconds),
        "note": "CPU ms a frame per stage, one process, one OpenCV thread, reads in the same thread; "
        "face detection (once a run) is not in total",
        "median": summary,
        "runs": runs,
        "seconds": round(time.perf_counter() - t_start, 1),
    }
    (RESULTS / "frontend_stages.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {RESULTS / 'frontend_stages.json'}")


def spotting_speed(path: Path, tmp: Path) -> dict:
    """Front end + ECG features + CMCL-Net + CCF on ``path`` (the ``mecg spot`` path), and the network alone."""
    import torch

    from mecg.model.ecg_features import ensure_synced
    from mecg.model.pipeline import train_spotter
    from mecg.model.spotter import frame_scores
    from mecg.model.spotting import SpotOptions, load_spotter, spot_file
    from mecg.model.windows import SessionData
    from mecg.synth import DatasetSpec, TrialConfig, make_dataset

    torch.set_num_threads(2)  # what `mecg spot` sets
    cfg = replace(TrialConfig(), duration_s=12.0, fps=FPS, width=320, height=240)
    make_dataset(DatasetSpec(str(tmp / "train"), 2, 1, 0, cfg))
    model = tmp / "speed.pt"
    t0 = time.perf_counter()
    train_spotter(tmp / "train", model, epochs=1, pretrain_epochs=0, log=lambda m: None)
    train_s = time.perf_counter() - t0
    ensure_synced(path, lambda m: None)  # sync is its own step (mecg sync); not part of spotting speed
    opts = SpotOptions(method="cmclnet", model=str(model), workers=os.cpu_count() or 1)
    t0 = time.perf_counter()
    res = spot_file(path, opts)
    dt = time.perf_counter() - t0
    ck = load_spotter(model)
    data = SessionData(str(path), ck.window, ck.frontend, workers=opts.workers)  # features now cached
    t0 = time.perf_counter()
    frame_scores(ck.model, data)
    net = time.perf_counter() - t0
    return {
        "frames": res.frames,
        "seconds": round(dt, 2),
        "frames_per_s": round(res.frames / dt, 1),
        "x_real_time": round(res.frames / dt / FPS, 2),
        "network_seconds": round(net, 2),
        "network_frames_per_s": round(res.frames / net, 1),
        "candidates": len(res.spots),
        "preset": "small",
        "size": "640x480",
        "fps": FPS,
        "model_training_s": round(train_s, 1),
        "torch_threads": torch.get_num_threads(),
    }


def accuracy(tmp: Path, subjects: int, trials: int, duration: float, seed: int) -> dict:
    from mecg.model.baseline import BaselineParams, spot_baseline
    from mecg.model.evaluate import Interval, evaluate
    from mecg.synth import DatasetSpec, TrialConfig, make_dataset

    cfg = replace(TrialConfig(), duration_s=duration, fps=60, width=320, height=240)
    spec = DatasetSpec(str(tmp / "ds"), subjects, trials, seed, cfg)
    make_dataset(spec)
    preds, truth = [], []
    for f in sorted((tmp / "ds").glob("*.h5")):
        feats = frontend_features(f, FrontEndParams(k_frames=default_k(60)))
        rows, _ = spot_baseline(feats, 60.0, f.stem, BaselineParams())
        preds += [r.interval() for r in rows]
        with open_session(f) as s:
            truth += [Interval(f.stem, a.onset_frame, a.offset_frame, a.type) for a in s.annotations]
    res = evaluate(preds, truth)
    return {
        "settings": {
            "subjects": subjects,
            "trials": trials,
            "duration_s": duration,
            "fps": 60,
            "size": "320x240",
            "seed": seed,
            "p": BaselineParams().p,
        },
        "results": {k: v.as_dict() for k, v in res.items()},
    }


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main() -> None:
    from mecg.synth import Subject, Trial, TrialConfig, write_trial

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a 4 s video, a smaller dataset")
    ap.add_argument("--seconds", type=float, default=12.0, help="length of the 640x480 150 fps video (default 12)")
    ap.add_argument(
        "--accuracy",
        default="6,2,60",
        metavar="SUBJECTS,TRIALS,SECONDS",
        help="the baseline's synthetic set (default 6,2,60; --quick: 2,1,20)",
    )
    ap.add_argument("--no-accuracy", action="store_true", help="time only (no baseline accuracy)")
    ap.add_argument("--codecs", default=None, help="only compare video codecs, e.g. deflate,blosc-lz4,lz4")
    ap.add_argument("--rounds", type=int, default=None, help="rounds of --codecs (default 2) or --stages (5)")
    ap.add_argument("--stages", action="store_true", help="only profile CPU a frame per stage, one process")
    ap.add_argument("--compare-with", default=None, metavar="DIR", help="--stages: also run another checkout's mecg")
    ap.add_argument("--stage-once", default=None, help=argparse.SUPPRESS)  # one profile of a session, as JSON
    args = ap.parse_args()
    if args.stage_once:
        print(json.dumps(stage_profile(Path(args.stage_once))))
        return
    seconds = 4.0 if args.quick else args.seconds
    if args.stages:
        args.rounds = args.rounds or 5
        stages_main(args, 6.0 if args.seconds == 12.0 and not args.quick else seconds)
        return
    args.rounds = args.rounds or 2
    if args.codecs:
        codecs_main(args, seconds)
        return
    t_start = time.perf_counter()
    load_before = _load()
    with tempfile.TemporaryDirectory(prefix="mecg-bench-fe-") as d:
        tmp = Path(d)
        cfg = replace(TrialConfig(), duration_s=seconds, fps=FPS, width=640, height=480)
        path = write_trial(Trial(Subject.random("S01", 1), 0, cfg), tmp / "speed.h5")
        sp = frontend_speed(path, tmp, 30 if args.quick else 150)
        spot = spotting_speed(path, tmp)
        subjects, trials, secs = (2, 1, 20.0) if args.quick else (int(v) for v in args.accuracy.split(","))
        acc = None if args.no_accuracy else accuracy(tmp, int(subjects), int(trials), float(secs), seed=0)
    load_after = _load()
    print(f"machine: {os.cpu_count()} cores, load average (1, 5, 15 min) {load_before} before, {load_after} after")
    print(f"\nFront end, 640x480 mono at {FPS} fps (decode + crop/track + flow + ROI features):")
    print(f"{'run':>22} {'flow':>5} {'procs':>5} {'frames':>7} {'s':>7} {'frames/s':>9} {'x real time':>11}")
    for r in sp:
        print(
            f"{r['run']:>22} {r['method']:>5} {r['processes']:>5} {r['frames']:>7} {r['seconds']:>7} "
            f"{r['frames_per_s']:>9} {r['x_real_time_150fps']:>11}"
        )
    dis, tv = sp[1]["frames_per_s"], sp[-1]["frames_per_s"]
    cpu = sp[2]["cpu_ms_per_frame"]
    print(f"goal: dis on all cores >= 750 frames/s; dis is {dis / tv:.0f}x TV-L1 in this run")
    print(
        f"one process used {cpu} ms of CPU a frame: {os.cpu_count()} free cores would carry at most "
        f"{(os.cpu_count() or 1) * 1e3 / cpu:.0f} frames/s"
    )
    print(
        f"\nSpotting, 640x480 at {FPS} fps, CPU (front end + ECG features + CMCL-Net {spot['preset']} + CCF, "
        f"as `mecg spot --method cmclnet`):\n"
        f"  {spot['frames']} frames in {spot['seconds']} s = {spot['frames_per_s']} frames/s = "
        f"{spot['x_real_time']}x real time (goal >= 2x); the network alone: {spot['network_frames_per_s']} frames/s"
    )
    if acc is not None:
        st = acc["settings"]
        print(
            f"\nBaseline spotter on synthetic data ({st['subjects']} subjects x {st['trials']} trials x "
            f"{st['duration_s']:g} s, {st['fps']} fps {st['size']}, seed {st['seed']}, p={st['p']}):"
        )
        print(f"{'':8} {'TP':>5} {'FP':>5} {'FN':>5} {'P':>7} {'R':>7} {'F1':>7}")
        for name, c in acc["results"].items():
            print(f"{name:8} {c['tp']:>5} {c['fp']:>5} {c['fn']:>5} {c['precision']:>7} {c['recall']:>7} {c['f1']:>7}")
    total = time.perf_counter() - t_start
    print(f"\nbenchmark took {total:.0f} s")
    RESULTS.mkdir(exist_ok=True)
    out = {
        "benchmark": "frontend",
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "reference_loop_s": reference_loop_s(),
        "load_average_before": load_before,
        "load_average_after": load_after,
        "video_s": seconds,
        "frontend": sp,
        "spotting": spot,
        "baseline": acc,
        "seconds": round(total, 1),
    }
    (RESULTS / "frontend.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {RESULTS / 'frontend.json'}")


def codecs_main(args: argparse.Namespace, seconds: float) -> None:
    """``--codecs``: the front end on the same video in each codec; writes results/frontend_codecs.json."""
    from mecg.synth import Subject, Trial, TrialConfig, write_trial

    codecs = args.codecs.split(",")
    load_before = _load()
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mecg-bench-fe-") as d:
        tmp = Path(d)
        cfg = replace(TrialConfig(), duration_s=seconds, fps=FPS, width=640, height=480)
        path = write_trial(Trial(Subject.random("S01", 1), 0, cfg), tmp / "speed.h5")
        rows = codec_speed(path, tmp, codecs, args.rounds)
    load_after = _load()
    print(f"\nmachine: {os.cpu_count()} cores, load average {load_before} before, {load_after} after")
    print(f"{'codec':>10} {'file MB':>8} {'CPU ms/frame (1 proc)':>22} {'frames/s 1 proc':>16} {'frames/s all':>13}")
    summary = {}
    for c in codecs:
        one = [r for r in rows if r["codec"] == c and r["processes"] == 1]
        many = [r for r in rows if r["codec"] == c and r["processes"] > 1]
        cpu = min(r["cpu_ms_per_frame"] for r in one)
        summary[c] = {
            "file_MB": one[0]["file_MB"],
            "cpu_ms_per_frame_best": cpu,
            "frames_per_s_one_process_best": max(r["frames_per_s"] for r in one),
            "frames_per_s_all_cores_best": max(r["frames_per_s"] for r in many),
            "bound_frames_per_s_on_idle_cores": round((os.cpu_count() or 1) * 1e3 / cpu),
        }
        s = summary[c]
        print(
            f"{c:>10} {s['file_MB']:>8} {cpu:>22} {s['frames_per_s_one_process_best']:>16} "
            f"{s['frames_per_s_all_cores_best']:>13}"
        )
    print("best of the rounds; CPU ms a frame bounds what idle cores could carry: cores * 1000 / ms")
    RESULTS.mkdir(exist_ok=True)
    out = {
        **_result_header("frontend_codecs", load_before, load_after, seconds),
        "summary": summary,
        "runs": rows,
        "seconds": round(time.perf_counter() - t_start, 1),
    }
    (RESULTS / "frontend_codecs.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {RESULTS / 'frontend_codecs.json'}")


if __name__ == "__main__":
    main()
