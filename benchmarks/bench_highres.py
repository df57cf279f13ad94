"""The seed's camera, 2040x1080 mono (the MECG dataset: 150 fps, 330 MB/s): how far the recording chain gets.

Measures, on 2040x1080 grey frames of the synthetic face (2.2 MB each), on this machine:

1. **Components**, each alone: the disk (2.2 MB writes with an fsync every 0.5 s, as the session
   writer flushes), the frame codec (ISA-L deflate levels 0-3: CPU per frame, ratio), the session
   writer (``SessionWriter.append`` one frame at a time, levels 0-3, with its flusher), and LSL
   (an outlet here pushing 2.2 MB frames as fast as it can to an inlet in another process that
   pulls them as the recorder does; frames/s, MB/s, CPU of each side).
2. **(a) The normal chain**: ``benchmarks/bench_record.py``'s FPS ladder at 2040x1080 (camera
   driver replaying pre-rendered frames -> LSL -> ``mecg record`` in its own process -> HDF5, with the
   ECG and the trigger box beside it; the recorder writes video with the default codec, ISA-L
   level 2). It climbs while nothing is lost and the recorder keeps up (camera frames in the file
   within ``--keep-up-s``, default 1 s, p95), and reports apart the highest rate with nothing skipped
   at the camera either. CPU per process and the peak memory of the recorder process are stored
   with each rate.
3. **(b) The camera writing locally** (measured as a prototype; the mode is not built into
   ``mecg record``): the same pre-rendered camera, its frames appended to a session file by a
   writer thread of the camera's process (same writer and codec; what is queued, up to 16 frames
   per append, as the recorder appends what a pull returns), only frame number + time on a
   small LSL stream. Same criteria (nothing skipped at the camera, every frame in the file, frames
   in the file within ``--keep-up-s`` of their exposure start, p95).

The two ladders climb together, (a) then (b) at each rate, so that both see the same load; each
stops at its first rate where it loses a frame or falls behind. Latencies count from a frame's
exposure start, so they include one frame period (200 ms at 5 fps).

The machine's load average is stored with every number: the machine may be shared, and other
work takes CPU from the chain. Prints tables and writes benchmarks/results/highres.json.
Measures; asserts nothing.

    python benchmarks/bench_highres.py [--ladder 5,10,15,20,30,40,50,60,75,100,150] [--ladder-seconds 20]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import queue
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_record
import pylsl

from mecg.session import SessionWriter, open_session, video_codec
from mecg.session.format import StreamInfo, StreamKind

RESULTS = Path(__file__).parent / "results"
SIZE = (2040, 1080)  # width, height
FRAME_BYTES = SIZE[0] * SIZE[1]
#: The seed dataset's rate (fps) and the data rate it means (MB/s).
SEED_FPS = 150.0
#: Keeping up: frames in the file within this (s, 95th percentile; ``--keep-up-s``). Longer than
#: bench_record's 0.25 s: every 0.5 s the writer fsyncs what it appended, up to 0.5 s x 330 MB/s at
#: this size, and appends wait for it; the LSL buffers (about 6 s at 150 fps within their 2 GB cap)
#: are far from full at 1 s.
KEEP_UP_S = 1.0
#: (b): the writer thread appends what is queued, up to this many frames per call (the recorder pulls up
#: to 16 video frames at a time, ``StreamTask.max_samples``).
LOCAL_BATCH = 16


def load() -> list[float]:
    """The 1, 5 and 15 minute load averages."""
    return [round(x, 2) for x in os.getloadavg()]


def frame_bank(n: int = 8, seed: int = 1) -> np.ndarray:
    """``n`` grey 2040x1080 frames of the synthetic face (uint8, ``(n, 1080, 2040)``)."""
    from mecg.synth import Subject, Trial, TrialConfig

    trial = Trial(
        Subject.random("S01", seed),
        0,
        TrialConfig(duration_s=1.0, fps=SEED_FPS, width=SIZE[0], height=SIZE[1], color=False),
    )
    return np.stack([trial.frame(i) for i in range(0, 2 * n, 2)])


# -- components ------------------------------------------------------------------------------------
def bench_disk(folder: Path, mb: float = 1000.0) -> dict:
    """Write ``mb`` MB in frame-sized blocks with an fsync every 0.5 s and at the end: MB/s and CPU."""
    path = folder / "disk-test.bin"
    block = np.random.default_rng(0).integers(0, 256, FRAME_BYTES, dtype=np.uint8).tobytes()
    n = int(mb * 1e6 // FRAME_BYTES)
    la = load()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    cpu0, t0 = time.process_time(), time.perf_counter()
    last = t0
    try:
        for _ in range(n):
            os.write(fd, block)
            if time.perf_counter() - last >= 0.5:
                os.fsync(fd)
                last = time.perf_counter()
        os.fsync(fd)
    finally:
        os.close(fd)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    path.unlink(missing_ok=True)
    return {
        "mb": round(n * FRAME_BYTES / 1e6),
        "mb_per_s": round(n * FRAME_BYTES / 1e6 / wall, 1),
        "cpu_pct": round(100 * cpu / wall, 1),
        "fps_equivalent": round(n / wall, 1),
        "load_average": la,
    }


def bench_codec(bank: np.ndarray, reps: int = 3) -> list[dict]:
    """CPU per frame and ratio of :func:`mecg.session.video_codec.encode_frame` at ISA-L levels 0-3."""
    out = []
    for level in range(4):
        la = load()
        cpu0, size = time.process_time(), 0
        for _ in range(reps):
            for fr in bank:
                size += len(video_codec.encode_frame(fr, level)[0])
        cpu = (time.process_time() - cpu0) / (reps * len(bank))
        out.append(
            {
                "level": level,
                "backend": video_codec.backend(),
                "cpu_ms_per_frame": round(cpu * 1e3, 1),
                "mb_per_s_one_core": round(FRAME_BYTES / 1e6 / cpu, 1),
                "fps_one_core": round(1.0 / cpu, 1),
                "ratio": round(reps * bank.nbytes / size, 3),
                "load_average": la,
            }
        )
    return out


def _video_info(name: str = "FaceCamera") -> StreamInfo:
    return StreamInfo(
        name=name,
        type="VideoRaw",
        kind=StreamKind.VIDEO,
        nominal_srate_hz=SEED_FPS,
        channel_format="int8",
        frame_shape=(SIZE[1], SIZE[0]),
        can_drop_samples=True,
    )


def bench_writer(bank: np.ndarray, folder: Path, frames: int = 90) -> list[dict]:
    """``SessionWriter.append`` of one frame at a time at levels 0-3 (flusher running, closed at the end)."""
    out = []
    for level in range(4):
        path = folder / f"writer-{level}.h5"
        la = load()
        cpu0, t0 = time.process_time(), time.perf_counter()
        with SessionWriter(path, overwrite=True, video_level=level) as w:
            key = w.add_stream(_video_info())
            for i in range(frames):
                w.append(key, bank[i % len(bank)][None], [i / SEED_FPS])
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        size = path.stat().st_size
        path.unlink()
        out.append(
            {
                "level": level,
                "frames": frames,
                "fps": round(frames / wall, 1),
                "mb_per_s": round(frames * FRAME_BYTES / 1e6 / wall, 1),
                "cpu_pct": round(100 * cpu / wall, 1),
                "cpu_ms_per_frame": round(cpu / frames * 1e3, 1),
                "ratio": round(frames * FRAME_BYTES / size, 3),
                "load_average": la,
            }
        )
    return out


_LSL_PULLER = r"""
import json, os, sys, time
import numpy as np, pylsl
sid, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
info = pylsl.resolve_byprop("source_id", sid, timeout=30)[0]
inlet = pylsl.StreamInlet(info, max_buflen=10, max_chunklen=0)
inlet.open_stream(timeout=30)
buf = np.empty((16, size), dtype=np.int8)
print("ready", flush=True)
got, t0, cpu0, end = 0, None, 0.0, time.monotonic() + 120
while got < n and time.monotonic() < end:
    _, ts = inlet.pull_chunk(timeout=0.0, max_samples=16, dest_obj=buf)
    if ts:
        if t0 is None:
            t0, cpu0 = time.perf_counter(), time.process_time()
        got += len(ts)
    else:
        time.sleep(0.002)
wall = time.perf_counter() - (t0 or time.perf_counter())
print(json.dumps({"frames": got, "seconds": wall, "cpu_s": time.process_time() - cpu0}), flush=True)
"""


def bench_lsl(bank: np.ndarray, frames: int = 300) -> dict:
    """LSL alone: push ``frames`` 2.2 MB frames as fast as possible; an inlet in another process pulls them."""
    sid = f"bench-highres-lsl-{os.getpid()}"
    info = pylsl.StreamInfo("HighresLSL", "VideoRaw", FRAME_BYTES, SEED_FPS, pylsl.cf_int8, sid)
    outlet = pylsl.StreamOutlet(info, chunk_size=1, max_buffered=10)
    env = dict(os.environ)
    proc = subprocess.Popen(
        [sys.executable, "-c", _LSL_PULLER, sid, str(frames), str(FRAME_BYTES)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"LSL puller did not start: {proc.stderr.read()[-500:]}")
        if not outlet.wait_for_consumers(30):
            raise RuntimeError("LSL puller did not connect")
        flat = [fr.reshape(1, -1).view(np.int8) for fr in bank]
        la = load()
        cpu0, t0 = time.process_time(), time.perf_counter()
        for i in range(frames):
            outlet.push_chunk(flat[i % len(flat)], pylsl.local_clock())
        push_wall, push_cpu = time.perf_counter() - t0, time.process_time() - cpu0
        res = json.loads(proc.stdout.readline())
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        del outlet
    fps = res["frames"] / res["seconds"] if res["seconds"] > 0 else 0.0
    return {
        "frames_pushed": frames,
        "frames_received": res["frames"],
        "push_fps": round(frames / push_wall, 1),
        "push_cpu_pct": round(100 * push_cpu / push_wall, 1),
        "push_cpu_ms_per_frame": round(push_cpu / frames * 1e3, 1),
        "pull_cpu_ms_per_frame": round(res["cpu_s"] / max(res["frames"], 1) * 1e3, 1),
        "pull_fps": round(fps, 1),
        "pull_mb_per_s": round(fps * FRAME_BYTES / 1e6, 1),
        "pull_cpu_pct": round(100 * res["cpu_s"] / res["seconds"], 1) if res["seconds"] > 0 else None,
        "load_average": la,
    }


# -- (a) the normal chain -------------------------------------------------------------------------
def chain_step(fps: float, seconds: float, folder: Path, bank: np.ndarray, rt_priority: int | None) -> dict:
    """One rate of bench_record's ladder at 2040x1080, with the load average and the recorder's peak memory."""
    la = load()
    try:
        r = bench_record.run(fps, seconds, folder, bank, rt_priority=rt_priority)
    except Exception as exc:  # the recorder failed (e.g. out of memory): a result, not a crash
        return {"fps": fps, "error": str(exc)[-500:], "no_loss": False, "keeps_up": False, "load_average": la}
    r["load_average"] = la
    r["load_average_after"] = load()
    # ru_maxrss of the children waited for so far: the largest mecg record process (kB on Linux)
    r["children_max_rss_mb"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)
    r["mb_per_s_raw"] = round(r["frames"] * FRAME_BYTES / 1e6 / max(r["seconds"], 1e-9), 1)
    return r


# -- (b) the camera writing locally -----------------------------------------------------------------
def local_step(fps: float, seconds: float, folder: Path, bank: np.ndarray, rt_priority: int | None) -> dict:
    """The camera process writes its own frames (writer thread, same codec) and sends number + time on LSL."""
    la = load()
    cam = bench_record.BankCamera(bank, fps)
    sid = f"bench-highres-local-{os.getpid()}-{int(fps)}"
    info = pylsl.StreamInfo("FaceCameraFrames", "VideoFrames", 1, fps, pylsl.cf_double64, sid)
    outlet = pylsl.StreamOutlet(info)
    path = folder / f"local-{int(fps)}fps.h5"
    q: queue.Queue = queue.Queue()
    lags: list[float] = []
    writer_cpu = [0.0]
    stop = threading.Event()
    sent: list[float] = []

    def write_loop(w: SessionWriter, key: str) -> None:
        c0 = time.thread_time()
        done = False
        while not done:
            items = [q.get()]  # what is queued, up to LOCAL_BATCH frames: one append, as the recorder's pulls
            while len(items) < LOCAL_BATCH and not q.empty():
                items.append(q.get_nowait())
            done = items[-1] is None
            items = [x for x in items if x is not None]
            if items:
                w.append(key, np.stack([x[0] for x in items]), [x[1] for x in items])
                now = pylsl.local_clock()
                lags.extend(now - x[1] for x in items)  # from the exposure start, as the recorder's latency
        writer_cpu[0] = time.thread_time() - c0

    def capture_loop() -> None:
        if rt_priority:
            try:
                os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(rt_priority))
            except (AttributeError, OSError):
                pass
        while not stop.is_set():
            f = cam.read()
            q.put((f.image, f.t_s))
            outlet.push_sample([float(f.number)], f.t_s)
            sent.append(f.t_s)

    cpu0, t0 = time.process_time(), time.perf_counter()
    with SessionWriter(path, overwrite=True) as w:
        key = w.add_stream(_video_info())
        wt = threading.Thread(target=write_loop, args=(w, key), daemon=True)
        ct = threading.Thread(target=capture_loop, daemon=True)
        wt.start()
        ct.start()
        time.sleep(seconds)
        stop.set()
        ct.join()
        backlog = q.qsize()
        q.put(None)
        wt.join()
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    with open_session(path) as s:
        recorded = int(s.streams["FaceCamera"].timestamps.size)
    size = path.stat().st_size
    path.unlink()
    lag = np.asarray(lags) if lags else np.zeros(1)
    r = {
        "fps": fps,
        "seconds": round(wall, 1),
        "frames_sent": len(sent),
        "frames_recorded": recorded,
        "lost": len(sent) - recorded,
        "skipped_at_source": cam.skipped,
        "backlog_at_stop": backlog,
        "append_max_frames": LOCAL_BATCH,
        "lag_ms": [round(float(np.percentile(lag, p)) * 1e3, 1) for p in (50, 95)] + [round(float(lag.max()) * 1e3, 1)],
        "process_cpu_pct": round(100 * cpu / wall, 1),
        "writer_thread_cpu_pct": round(100 * writer_cpu[0] / wall, 1),
        "file_mb_per_min": round(size / 1e6 / wall * 60, 1),
        "mb_per_s_raw": round(len(sent) * FRAME_BYTES / 1e6 / wall, 1),
        "load_average": la,
        "load_average_after": load(),
    }
    r["keeps_up"] = r["lost"] == 0 and r["lag_ms"][1] < bench_record.KEEP_UP_S * 1e3
    r["no_loss"] = r["keeps_up"] and cam.skipped == 0
    return r


def ladders(
    steps: dict, rates: list[float], seconds: float, folder: Path, bank: np.ndarray, rt: int | None
) -> dict[str, dict]:
    """Climb ``rates`` with every mode of ``steps`` (name -> step function), the modes one after the other at
    each rate so they see the same load; a mode stops at its first rate where it loses frames or falls behind.

    Per mode: the steps, the highest rate at which it kept up with nothing lost, and the highest
    rate up to which nothing was skipped at the camera either (0 if none).
    """
    out = {name: {"ladder": [], "highest_fps_kept_up": 0.0, "highest_fps_no_loss": 0.0} for name in steps}
    climbing = set(steps)
    for fps in rates:
        for name, step in steps.items():
            if name not in climbing:
                continue
            m = out[name]
            print(f"{name}: {fps:g} fps for {seconds:g} s (load {load()[0]:g}) ...", flush=True)
            r = step(fps, seconds, folder, bank, rt)
            m["ladder"].append(r)
            if not r["keeps_up"]:
                climbing.discard(name)
                continue
            if r["no_loss"] and m["highest_fps_no_loss"] == m["highest_fps_kept_up"]:
                m["highest_fps_no_loss"] = fps
            m["highest_fps_kept_up"] = fps
        if not climbing:
            break
    return out


def _print_best(m: dict) -> None:
    print(
        f"highest rate kept up with nothing lost: {m['highest_fps_kept_up']:g} fps; "
        f"with nothing skipped at the camera either: {m['highest_fps_no_loss']:g} fps"
    )


def _chain_result(r: dict) -> str:
    if "error" in r:
        return "recorder failed"
    if r["no_loss"] and r["keeps_up"]:
        return "no loss"
    if r["recorder_no_loss"]:
        return "skipped at camera" if r["keeps_up"] else "falling behind"
    return "LOST"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ladder", default="5,10,15,20,30,40,50,60,75,100,150", help="camera rates to try, fps")
    ap.add_argument("--ladder-seconds", type=float, default=20.0, help="run length per rate (default 20)")
    ap.add_argument("--modes", default="components,chain,local", help="what to run (comma-separated)")
    ap.add_argument("--keep-up-s", type=float, default=KEEP_UP_S, help="keeping up: p95 latency below this (s)")
    ap.add_argument("--disk-reps", type=int, default=3, help="repeats of the disk test (default 3)")
    ap.add_argument("--rt-priority", type=int, default=None, help="camera capture thread real-time priority")
    ap.add_argument("--dir", default=None, help="folder for the temporary files (default: a temp folder)")
    ap.add_argument("--results", default="highres.json", help="file name under benchmarks/results")
    args = ap.parse_args()
    modes = set(args.modes.split(","))
    rates = [float(x) for x in args.ladder.split(",") if x]
    folder = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="mecg-bench-highres-"))
    folder.mkdir(parents=True, exist_ok=True)
    bench_record.SIZE = SIZE  # the chain's simulated lab at the seed's frame size
    bench_record.KEEP_UP_S = args.keep_up_s  # bench_record.run and local_step read it

    la0 = load()
    print(f"Rendering 8 synthetic {SIZE[0]}x{SIZE[1]} grey frames (load {la0[0]:g}) ...", flush=True)
    bank = frame_bank()
    res: dict = {
        "benchmark": "highres",
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9, 1),
        "python": platform.python_version(),
        "pylsl": pylsl.__version__,
        "frame": {"width": SIZE[0], "height": SIZE[1], "bytes": FRAME_BYTES, "content": "synthetic face, grey"},
        "seed_rate": {"fps": SEED_FPS, "mb_per_s": round(SEED_FPS * FRAME_BYTES / 1e6, 1)},
        "ladder_seconds": args.ladder_seconds,
        "camera_rt_priority": args.rt_priority,
        "keep_up_s": args.keep_up_s,
        "load_average_at_start": la0,
    }
    try:
        if "components" in modes:
            print("Components: disk, codec, writer, LSL ...", flush=True)
            disks = [bench_disk(folder) for _ in range(max(1, args.disk_reps))]
            res["disk"] = {**sorted(disks, key=lambda d: d["mb_per_s"])[len(disks) // 2], "runs": disks}
            res["codec"] = bench_codec(bank)
            res["writer"] = bench_writer(bank, folder)
            res["lsl"] = bench_lsl(bank)
        steps = {name: fn for name, fn in (("chain", chain_step), ("local", local_step)) if name in modes}
        if steps:
            res.update(ladders(steps, rates, args.ladder_seconds, folder, bank, args.rt_priority))
    finally:
        if not args.dir:
            shutil.rmtree(folder, ignore_errors=True)
    res["load_average_at_end"] = load()
    if "disk" in res:
        res["ceilings_from_components"] = ceilings(res)
    report(res)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / args.results
    out.write_text(json.dumps(res, indent=1) + "\n")
    out.with_suffix(".txt").write_text(report_text(res))
    print(f"\nwrote {out} and {out.with_suffix('.txt').name}")


def ceilings(res: dict, level: int = video_codec.DEFAULT_LEVEL) -> dict:
    """Highest frame rate (fps) each component allows at 2040x1080, from its measured speed and CPU cost.

    ``disk``: disk MB/s over the stored bytes per frame (the default codec's ratio); ``writer``: the
    writer's measured rate (one thread, encoding included); ``*_cpu``: one core divided by the CPU
    per frame of the work that process does (a) the recorder: LSL pull + writer, the camera: LSL push;
    (b) the camera: writer only (its LSL sample is a few bytes). What an idle core could do: on a
    loaded machine the measured ladders reach less.
    """
    w = next(x for x in res["writer"] if x["level"] == level)
    stored_mb = FRAME_BYTES / 1e6 / w["ratio"]
    lsl = res["lsl"]
    return {
        "level": level,
        "disk_fps": round(res["disk"]["mb_per_s"] / stored_mb, 1),
        "writer_fps": w["fps"],
        "chain_recorder_cpu_fps": round(1e3 / (lsl["pull_cpu_ms_per_frame"] + w["cpu_ms_per_frame"]), 1),
        "chain_camera_cpu_fps": round(1e3 / max(lsl["push_cpu_ms_per_frame"], 1e-3), 1),
        "chain_lsl_fps": lsl["pull_fps"],
        "local_camera_cpu_fps": round(1e3 / w["cpu_ms_per_frame"], 1),
    }


def report_text(res: dict) -> str:
    """The printed tables as text (kept beside the JSON), with the load averages of the run."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        report(res)
    start, end = res.get("load_average_at_start"), res.get("load_average_at_end")
    return f"bench_highres.py on {res['machine']}, {res['cpus']} CPUs, load average {start} -> {end}\n{buf.getvalue()}"


def report(res: dict) -> None:
    """Print the tables."""
    seed = res["seed_rate"]
    print(
        f"\n{SIZE[0]}x{SIZE[1]} grey, {FRAME_BYTES / 1e6:.2f} MB/frame; "
        f"seed rate {seed['fps']:g} fps = {seed['mb_per_s']:g} MB/s"
    )
    if "disk" in res:
        d = res["disk"]
        runs = ", ".join(f"{x['mb_per_s']:g}" for x in d.get("runs", [d]))
        print(
            f"disk: median {d['mb_per_s']:g} MB/s (runs: {runs}; {d['fps_equivalent']:g} frames/s), "
            "fsync every 0.5 s, "
            f"CPU {d['cpu_pct']:g}% (load {d['load_average'][0]:g})"
        )
        print(f"{'codec level':>11} {'ms/frame':>9} {'MB/s 1 core':>11} {'fps 1 core':>10} {'ratio':>6} {'load':>5}")
        for c in res["codec"]:
            print(
                f"{c['level']:>11} {c['cpu_ms_per_frame']:>9g} {c['mb_per_s_one_core']:>11g} {c['fps_one_core']:>10g} "
                f"{c['ratio']:>6g} {c['load_average'][0]:>5g}"
            )
        print(f"{'writer level':>12} {'fps':>6} {'MB/s':>6} {'CPU %':>6} {'ratio':>6} {'load':>5}")
        for c in res["writer"]:
            print(
                f"{c['level']:>12} {c['fps']:>6g} {c['mb_per_s']:>6g} {c['cpu_pct']:>6g} {c['ratio']:>6g} "
                f"{c['load_average'][0]:>5g}"
            )
        s = res["lsl"]
        print(
            f"LSL alone (other process pulls): {s['frames_received']}/{s['frames_pushed']} frames, "
            f"{s['pull_fps']:g} fps = {s['pull_mb_per_s']:g} MB/s; push CPU {s['push_cpu_pct']:g}%, "
            f"pull CPU {s['pull_cpu_pct']}% (load {s['load_average'][0]:g})"
        )
    if "ceilings_from_components" in res:
        c = res["ceilings_from_components"]
        print(
            f"ceilings from the components (fps, level {c['level']}): disk {c['disk_fps']:g}, writer "
            f"{c['writer_fps']:g}, LSL {c['chain_lsl_fps']:g}; CPU of one core: (a) recorder "
            f"{c['chain_recorder_cpu_fps']:g}, camera {c['chain_camera_cpu_fps']:g}; "
            f"(b) camera {c['local_camera_cpu_fps']:g}"
        )
    if "chain" in res:
        print("\n(a) camera driver -> LSL -> mecg record -> HDF5 (+ ECG 1000 Hz + trigger box):")
        print(
            f"{'fps':>5} {'MB/s':>6} {'frames':>7} {'lost':>5} {'skipped':>7} {'rec CPU %':>9} {'dev CPU %':>9} "
            f"{'rec RSS MB':>10} {'p95 ms':>7} {'load':>5}  result"
        )
        for r in res["chain"]["ladder"]:
            if "error" in r:
                print(f"{r['fps']:>5g}  recorder failed: {r['error'][-120:]}")
                continue
            print(
                f"{r['fps']:>5g} {r['mb_per_s_raw']:>6g} {r['frames']:>7} {r['lost_total']:>5} "
                f"{r['skipped_at_source']:>7} {r['recorder_cpu_pct']:>9g} {r['devices_cpu_pct']:>9g} "
                f"{r['children_max_rss_mb']:>10g} {r['streams']['FaceCamera']['latency_ms'][1]:>7g} "
                f"{r['load_average'][0]:>5g}  {_chain_result(r)}"
            )
        _print_best(res["chain"])
    if "local" in res:
        print("\n(b) camera process writes its frames itself, number + time over LSL:")
        print(
            f"{'fps':>5} {'MB/s':>6} {'frames':>7} {'lost':>5} {'skipped':>7} {'proc CPU %':>10} {'writer %':>8} "
            f"{'lag p95 ms':>10} {'load':>5}  result"
        )
        for r in res["local"]["ladder"]:
            ok = "no loss" if r["no_loss"] else "skipped at camera" if r["keeps_up"] else "falling behind"
            print(
                f"{r['fps']:>5g} {r['mb_per_s_raw']:>6g} {r['frames_recorded']:>7} {r['lost']:>5} "
                f"{r['skipped_at_source']:>7} {r['process_cpu_pct']:>10g} {r['writer_thread_cpu_pct']:>8g} "
                f"{r['lag_ms'][1]:>10g} {r['load_average'][0]:>5g}  {ok}"
            )
        _print_best(res["local"])


if __name__ == "__main__":
    main()
