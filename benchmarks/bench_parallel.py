"""Parallel spotting of many sessions: ``mecg spot --jobs 1`` versus ``--jobs 2`` on 48 synthetic sessions.

Makes 48 short synthetic sessions (12 subjects x 4 trials, 10 s each at 60 fps, 160x120), then times
``mecg spot`` over the folder with the baseline spotter and with a small CMCL-Net checkpoint trained
here, once with ``--jobs 1`` and once with ``--jobs 2``. Each baseline run starts from a fresh copy
of the recordings (no cached features); the CMCL-Net runs reuse the front-end caches their
baseline run left (same front-end parameters), so they time sync, ECG features and the network.
Peak memory is that of the whole process tree (the command, the forkserver and its workers),
sampled every 50 ms from /proc: the sum of RSS (shared pages counted in every process) and the sum
of PSS (shared pages split between the processes that share them). The outputs of both runs are
compared (they must be byte-identical). The load average is recorded: the machine may be shared.
Prints a table and writes benchmarks/results/parallel.json.

    python benchmarks/bench_parallel.py [--sessions 48] [--duration 10] [--no-cmclnet]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
PAGE = os.sysconf("SC_PAGE_SIZE")


def _children(pid: int) -> list[int]:
    out = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(c) for c in f.read().split()]
    except OSError:
        pass
    return out


def _tree(pid: int) -> list[int]:
    todo, seen = [pid], []
    while todo:
        p = todo.pop()
        seen.append(p)
        todo += _children(p)
    return seen


TICK = os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of one process so far (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except (OSError, ValueError, IndexError):
        return 0.0


def _memory(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of one process in bytes; zeros when it is gone."""
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/statm") as f:
            rss = int(f.read().split()[1]) * PAGE
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    return rss, pss


def run_measured(cmd: list[str]) -> dict:
    """Run ``cmd``; wall time, peak tree RSS/PSS and process count, CPU of the tree, load averages."""
    load0 = os.getloadavg()
    cpu: dict[int, float] = {}  # the last CPU time seen of every process of the tree
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak_rss = peak_pss = peak_procs = 0
    while proc.poll() is None:
        pids = _tree(proc.pid)
        mem = [_memory(p) for p in pids]
        peak_rss = max(peak_rss, sum(m[0] for m in mem))
        peak_pss = max(peak_pss, sum(m[1] for m in mem))
        peak_procs = max(peak_procs, len(pids))
        for p in pids:
            cpu[p] = max(cpu.get(p, 0.0), _cpu_s(p))
        time.sleep(0.05)
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err[-3000:]}")
    return {
        "wall_s": round(wall, 2),
        "cpu_s": round(sum(cpu.values()), 1),
        "peak_tree_rss_mb": round(peak_rss / 2**20, 1),
        "peak_tree_pss_mb": round(peak_pss / 2**20, 1),
        "peak_processes": peak_procs,
        "load_before": [round(x, 2) for x in load0],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "stdout_tail": out.strip().splitlines()[-1] if out.strip() else "",
    }


def _check(cmd: list[str]) -> None:
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stderr[-3000:]}")


#: Table columns: (title, width, format of the run's value).
COLUMNS = (
    ("method", 9, lambda r: r["method"]),
    ("jobs", 4, lambda r: r["jobs"]),
    ("workers", 7, lambda r: r["workers"]),
    ("wall s", 7, lambda r: f"{r['wall_s']:.1f}"),
    ("CPU s", 6, lambda r: f"{r['cpu_s']:.0f}"),
    ("frames/s", 8, lambda r: f"{r['frames_per_s']:.0f}"),
    ("speed-up", 8, lambda r: f"{r['speedup_vs_jobs_1']:.2f}"),
    ("peak RSS MB", 11, lambda r: f"{r['peak_tree_rss_mb']:.0f}"),
    ("peak PSS MB", 11, lambda r: f"{r['peak_tree_pss_mb']:.0f}"),
    ("procs", 5, lambda r: r["peak_processes"]),
    ("same CSV", 8, lambda r: {True: "yes", False: "NO", None: "-"}[r["output_identical_to_jobs_1"]]),
    ("load 1 min", 10, lambda r: f"{r['load_before'][0]:.2f}"),
)


def table(runs: list[dict]) -> str:
    """The runs as a text table."""
    head = " ".join(f"{t:>{w}}" if i else f"{t:<{w}}" for i, (t, w, _) in enumerate(COLUMNS))
    rows = [" ".join(f"{f(r)!s:>{w}}" if i else f"{f(r)!s:<{w}}" for i, (_, w, f) in enumerate(COLUMNS)) for r in runs]
    return "\n".join([head, *rows])


def fresh_copy(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True)
    for f in src.glob("*.h5"):
        shutil.copy2(f, dst / f.name)
    return dst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=48, help="sessions to spot (a multiple of 4; default 48)")
    ap.add_argument("--duration", type=float, default=10.0, help="session length in s (default 10)")
    ap.add_argument("--no-cmclnet", action="store_true", help="baseline spotter only")
    ap.add_argument("--out", default=str(RESULTS / "parallel.json"), help="JSON to write")
    args = ap.parse_args()
    mecg = [sys.executable, "-m", "mecg"]
    tmp = Path(tempfile.mkdtemp(prefix="mecg-bench-parallel-"))
    try:
        data = tmp / "data"
        synth = [*mecg, "synth", str(data), "--subjects", str(args.sessions // 4), "--trials", "4"]
        synth += ["--duration", f"{args.duration:g}", "--fps", "60", "--size", "160x120", "--me-per-min", "6"]
        t0 = time.perf_counter()
        _check([*synth, "--seed", "21", "--quiet"])
        synth_s = time.perf_counter() - t0
        frames = json.loads((data / "manifest.json").read_text())["files"]
        n_frames = sum(f["frames"] for f in frames)
        model = None
        train_s = None
        if not args.no_cmclnet:  # a small checkpoint: 8 sessions, 1 + 2 epochs
            tr = fresh_copy(data, tmp / "train")
            for f in sorted(tr.glob("*.h5"))[8:]:
                f.unlink()
            model = tmp / "cmclnet.pt"
            t0 = time.perf_counter()
            _check([*mecg, "train", str(tr), "--out", str(model), "--epochs", "2", "--pretrain-epochs", "1", "--quiet"])
            train_s = time.perf_counter() - t0
        runs = []
        outputs: dict[tuple[str, int], str] = {}
        # (method, jobs, workers): "--workers 1" spots each session in one process, no pool per session
        plan = [("baseline", 1, None), ("cmclnet", 1, None), ("baseline", 2, None), ("cmclnet", 2, None)]
        plan.append(("baseline", 1, 1))
        for method, jobs, workers in plan:
            if method == "cmclnet" and model is None:
                continue
            folder = tmp / f"jobs{jobs}_w{workers}"
            if not folder.exists():  # the cmclnet run follows the baseline run on the same copy
                fresh_copy(data, folder)
            csv = tmp / f"{method}_{jobs}_{workers}.csv"
            cmd = [*mecg, "spot", str(folder), "--out", str(csv), "--jobs", str(jobs), "--quiet"]
            cmd += ["--model", str(model)] if method == "cmclnet" else []
            cmd += ["--workers", str(workers)] if workers else []
            print(f"spot {method} --jobs {jobs}" + (f" --workers {workers}" if workers else ""), file=sys.stderr)
            r = run_measured(cmd)
            r.update(method=method, jobs=jobs, workers=workers or os.cpu_count())
            r["frames_per_s"] = round(n_frames / r["wall_s"], 1)
            outputs[(method, jobs, workers)] = csv.read_text()
            runs.append(r)
        for r in runs:
            one = next(x for x in runs if x["method"] == r["method"] and x["jobs"] == 1)
            r["speedup_vs_jobs_1"] = round(one["wall_s"] / r["wall_s"], 2)
            key = (r["method"], r["jobs"], None if r["workers"] == os.cpu_count() else r["workers"])
            # other --workers split the videos into other pieces: other features, not compared
            r["output_identical_to_jobs_1"] = (
                outputs[key] == outputs[(r["method"], 1, None)] if key[2] is None else None
            )
        result = {
            "what": "mecg spot over a folder of synthetic sessions, --jobs 1 vs --jobs 2",
            "sessions": len(frames),
            "session": {"duration_s": args.duration, "fps": 60, "size": "160x120"},
            "frames": n_frames,
            "synth_s": round(synth_s, 1),
            "cmclnet_checkpoint": None
            if model is None
            else {"trained_on_sessions": 8, "epochs": 2, "pretrain_epochs": 1, "train_s": round(train_s, 1)},
            "cmclnet_note": "the CMCL-Net runs reuse the front-end caches of the baseline run on the same copy "
            "(same front-end parameters): they time sync, ECG features and the network",
            "runs": runs,
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
                "note": "a shared machine: see each run's load averages (1, 5, 15 min)",
            },
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        print(
            f"\n{len(frames)} sessions x {args.duration:g} s at 60 fps 160x120 ({n_frames} frames), "
            f"{os.cpu_count()} CPUs\n"
        )
        print(table(runs))
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"\nwrote {out}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
