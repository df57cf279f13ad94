"""Recording chain: simulated lab -> real drivers -> LSL -> ``mecg record`` (its own process) -> session file.

1. **Main run** (``--minutes``, default 10, the issue's length): a simulated lab in this process
   (synthetic face rendered live at 150 fps 640x480 grey, virtual ADS1292R at 1000 Hz on a pty,
   virtual trigger box pulsing every 2-8 s; device latency and jitter set to 0 so latency is the
   chain's own) with the real ECG, camera and trigger drivers; ``mecg record`` records them in a
   child process. Every timestamp the drivers push is logged, so losses are counted exactly:
   **lost** = pushed inside the recorded span but missing from the file (the chain's loss);
   **skipped at source** = frames the simulated camera never delivered because this process
   could not render them in time (a real camera's full buffer; not the recorder's doing).
   Also: recorder CPU (process time / wall time of the ``mecg record`` process, in % of one
   core), this process's CPU (devices + renderer), end-to-end latency (sample time -> appended
   by the recorder, for the oldest sample of each chunk pulled: median / p95 / max; the flush
   puts it on disk within 0.5 s more), file size, and with ``--sync`` ``mecg sync`` on the file.
2. **FPS ladder** (``--ladder``, ``--ladder-seconds`` each): the same chain with the camera
   replaying pre-rendered frames (a real camera renders nothing; ``--rt-priority`` gives its
   capture thread real-time priority, as docs/devices.md advises). It climbs while LSL and the
   recorder lose nothing and keep up (camera frames in the file within 0.25 s, 95th
   percentile) and reports two rates: the highest where they do, and the highest with nothing
   skipped at the camera either (the camera driver read every frame in time).

The machine's load average is stored with the results: other work on a 2-core machine takes
CPU from the chain and shows up first as frames skipped at the camera.

Prints a table and writes benchmarks/results/record.json. Measures; asserts nothing.

    python benchmarks/bench_record.py [--minutes 10] [--ladder 150,200,250,300,400] [--ladder-seconds 30] [--sync]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("LSLAPICFG", str(Path(__file__).resolve().parents[1] / "mecg" / "acquire" / "lsl_local.cfg"))

import pylsl  # after LSLAPICFG: liblsl reads it at first use

from mecg.acquire.camera_driver import CameraConfig, CameraDriver
from mecg.acquire.ecg_driver import EcgConfig, EcgDriver
from mecg.acquire.frames import Frame
from mecg.acquire.simulation import Simulation, SimulationConfig
from mecg.acquire.trigger_driver import TriggerConfig, TriggerDriver
from mecg.session import open_session

RESULTS = Path(__file__).parent / "results"
SIZE = (640, 480)
#: Frames a camera holds before it overwrites (V4L2 drivers typically queue 4 buffers).
CAMERA_BUFFERS = 4
#: A recorder keeps up when the 95th percentile of its camera latency stays below this (s).
KEEP_UP_S = 0.25


class LoggingOutlet:
    """Wraps a driver's LSL outlet and keeps every timestamp pushed through it."""

    def __init__(self, outlet: pylsl.StreamOutlet) -> None:
        self._outlet = outlet
        self.ts: list[float] = []

    def push_chunk(self, x, timestamp=0.0, pushthrough=True) -> None:
        self._outlet.push_chunk(x, timestamp, pushthrough)
        if isinstance(timestamp, (list, tuple, np.ndarray)):
            self.ts.extend(float(t) for t in timestamp)
        else:
            self.ts.append(float(timestamp))

    def push_sample(self, x, timestamp=0.0, pushthrough=True) -> None:
        self._outlet.push_sample(x, timestamp, pushthrough)
        self.ts.append(float(timestamp))

    def __getattr__(self, name: str):
        return getattr(self._outlet, name)


class BankCamera:
    """A camera at exactly ``fps`` replaying pre-rendered frames; frames it could not deliver in time are skipped.

    Frame ``i`` is exposed at ``t0 + i / fps`` and ready one period later; a frame still unread
    :data:`CAMERA_BUFFERS` periods after it was ready is overwritten (``skipped``), as in a camera.
    """

    kind = "virtual"
    timestamps = "exposure"

    def __init__(self, bank: np.ndarray, fps: float) -> None:
        self.bank, self.fps = bank, float(fps)
        self.name, self.uid = "pre-rendered frames", f"bench-bank-{os.getpid()}"
        self.skipped = 0
        self._t0: float | None = None
        self._next = 0

    def read(self) -> Frame:
        now = pylsl.local_clock()
        if self._t0 is None:
            self._t0 = now
        ready = math.floor((now - self._t0) * self.fps) - 1  # newest frame whose exposure has ended
        if ready - self._next >= CAMERA_BUFFERS:
            oldest = ready - CAMERA_BUFFERS + 1
            self.skipped += oldest - self._next
            self._next = oldest
        i = self._next
        self._next += 1
        wait = self._t0 + (i + 1) / self.fps - pylsl.local_clock()
        if wait > 0:
            time.sleep(wait)
        return Frame(self.bank[i % len(self.bank)], self._t0 + i / self.fps, i)

    def close(self) -> None:
        pass


class Lab:
    """The simulated devices and the real drivers, in this process, with logging outlets."""

    def __init__(self, fps: float, bank: np.ndarray | None, seed: int = 1, rt_priority: int | None = None) -> None:
        tag = f"{os.getpid()}-{int(fps)}-{time.monotonic_ns() % 100000}"
        self.dir = tempfile.mkdtemp(prefix="mecg-bench-rec-")
        self.sim = Simulation(
            SimulationConfig(
                seed=seed,
                fps=fps,
                width=SIZE[0],
                height=SIZE[1],
                camera=bank is None,
                amp_latency_s=0.0,
                amp_jitter_s=0.0,
                camera_latency_s=0.0,
                camera_jitter_s=0.0,
                link_dir=self.dir,
            )
        ).start()
        self.source = self.sim.camera if bank is None else BankCamera(bank, fps)
        self.ecg = EcgDriver(EcgConfig(port=self.sim.amplifier.path, source_id=f"bench-rec-ecg-{tag}")).start()
        self.trigger = TriggerDriver(
            TriggerConfig(port=self.sim.trigger_box.path, seed=seed, source_id=f"bench-rec-trig-{tag}")
        ).start()
        self.camera = CameraDriver(
            CameraConfig(camera="bench", name="FaceCamera", source_id=f"bench-rec-cam-{tag}", rt_priority=rt_priority),
            source=self.source,
        ).start()
        self.logs = {}
        for key, drv in (("ECG", self.ecg), ("TriggerBox", self.trigger), ("FaceCamera", self.camera)):
            drv.outlet = LoggingOutlet(drv.outlet)
            self.logs[key] = drv.outlet

    @property
    def source_ids(self) -> list[str]:
        return [self.ecg.source_id, self.trigger.source_id, self.camera.source_id]

    @property
    def skipped(self) -> int:
        return int(getattr(self.source, "skipped", getattr(self.source, "frames_skipped", 0)))

    def close(self) -> None:
        for d in (self.camera, self.trigger, self.ecg):
            d.close()
        self.sim.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def record(lab: Lab, out: Path, seconds: float) -> dict:
    """Run ``mecg record`` on the lab's streams for ``seconds``; returns its JSON summary and this process's CPU."""
    args = [
        sys.executable,
        "-m",
        "mecg",
        "record",
        "--out",
        str(out),
        "--overwrite",
        "--duration",
        f"{seconds:g}",
        "--json",
        "--quiet",
        "--wait",
        "15",
        "--min-free-mb",
        "1000",
    ]
    for sid in lab.source_ids:
        args += ["--source-id", sid]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    err: list[str] = []

    def read_err() -> None:
        for line in proc.stderr:
            err.append(line)
            lines.put(line)

    threading.Thread(target=read_err, daemon=True).start()
    end = time.monotonic() + 60
    while time.monotonic() < end:
        try:
            if lines.get(timeout=0.2).startswith("recording"):
                break
        except queue.Empty:
            if proc.poll() is not None:
                break
    cpu0, t0 = time.process_time(), time.monotonic()
    out_text = proc.stdout.read()
    proc.wait(timeout=120)
    cpu, wall = time.process_time() - cpu0, time.monotonic() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"mecg record failed ({proc.returncode}):\n{''.join(err)}")
    summary = json.loads(out_text)
    summary["devices_cpu_pct"] = round(100 * cpu / wall, 1)
    return summary


def losses(lab: Lab, path: Path) -> dict[str, dict]:
    """Per stream: pushed inside the recorded span, recorded, lost (pushed but missing)."""
    out = {}
    with open_session(path) as s:
        for key, log in lab.logs.items():
            got = np.sort(s.streams[key].timestamps) if key in s.streams else np.zeros(0)
            sent = np.sort(np.asarray(log.ts))
            if got.size == 0:
                out[key] = {"pushed": 0, "recorded": 0, "lost": 0}
                continue
            span = sent[(sent >= got[0] - 1e-6) & (sent <= got[-1] + 1e-6)]
            i = np.clip(np.searchsorted(got, span), 1, got.size - 1) if got.size > 1 else np.zeros(span.size, int)
            near = (
                np.minimum(np.abs(got[i] - span), np.abs(got[i - 1] - span)) if got.size > 1 else np.abs(got[0] - span)
            )
            out[key] = {"pushed": int(span.size), "recorded": int(got.size), "lost": int((near > 1e-5).sum())}
    return out


def _stream(summary: dict, key: str) -> dict:
    return next(s for s in summary["streams"] if s["key"] == key)


def run(
    fps: float,
    seconds: float,
    folder: Path,
    bank: np.ndarray | None,
    sync: bool = False,
    keep: bool = False,
    rt_priority: int | None = None,
) -> dict:
    lab = Lab(fps, bank, rt_priority=rt_priority)
    out = folder / f"bench-record-{int(fps)}fps.h5"
    try:
        time.sleep(1.0)  # let the ECG clock fit settle
        summary = record(lab, out, seconds)
        skipped = lab.skipped
    finally:
        lab.close()
    loss = losses(lab, out)
    cam = _stream(summary, "FaceCamera")
    res = {
        "fps": fps,
        "seconds": round(summary["elapsed_s"], 1),
        "camera": "live synthetic render" if bank is None else "pre-rendered frames",
        "streams": {
            k: {
                **loss[k],
                "latency_ms": [round(x, 1) for x in _stream(summary, k)["latency_ms"]],
                "gaps": _stream(summary, k)["gaps"],
            }
            for k in loss
        },
        "lost_total": sum(v["lost"] for v in loss.values()),
        "skipped_at_source": skipped,
        "recorder_cpu_pct": round(100 * summary["cpu_s"] / summary["elapsed_s"], 1),
        "devices_cpu_pct": summary["devices_cpu_pct"],
        "file_mb": round(summary["file_bytes"] / 1e6, 1),
        "file_mb_per_min": round(summary["file_bytes"] / 1e6 / summary["elapsed_s"] * 60, 1),
        "frames": cam["samples"],
        "complete": summary["complete"],
    }
    # keeping up: nothing lost, and the camera's frames reach the file within KEEP_UP_S (p95); a recorder
    # that lags more is eating into the inlet's buffer and would lose frames in a longer run
    res["recorder_no_loss"] = res["lost_total"] == 0 and res["complete"]
    res["keeps_up"] = res["recorder_no_loss"] and res["streams"]["FaceCamera"]["latency_ms"][1] < KEEP_UP_S * 1e3
    res["no_loss"] = res["recorder_no_loss"] and skipped == 0
    if sync:
        t0 = time.perf_counter()
        p = subprocess.run(
            [sys.executable, "-m", "mecg", "sync", str(out), "--json", "--dry-run"], capture_output=True, text=True
        )
        rep = json.loads(p.stdout) if p.returncode == 0 else {"error": p.stderr.strip()[-300:]}
        res["sync"] = {k: rep.get(k) for k in ("mode", "residual_rms_ms", "pulses_matched", "error") if k in rep}
        res["sync"]["seconds"] = round(time.perf_counter() - t0, 1)
    if not keep:
        out.unlink(missing_ok=True)
    return res


def _print_main(m: dict) -> None:
    """The main run's table."""
    print(
        f"\nMain run: {m['seconds']:g} s at {m['fps']:g} fps {SIZE[0]}x{SIZE[1]} grey ({m['camera']}), ECG 1000 Hz, "
        "trigger box; mecg record in its own process"
    )
    print(
        f"{'stream':<11} {'pushed':>8} {'recorded':>9} {'lost':>5} {'gaps':>5}  {'latency ms median / p95 / max':>30}"
    )
    for k, v in m["streams"].items():
        lat = " / ".join(f"{x:g}" for x in v["latency_ms"])
        print(f"{k:<11} {v['pushed']:>8} {v['recorded']:>9} {v['lost']:>5} {v['gaps']:>5}  {lat:>30}")
    print(f"frames skipped at the source (renderer too slow): {m['skipped_at_source']}")
    print(f"recorder CPU {m['recorder_cpu_pct']:g}% of one core; devices + renderer process {m['devices_cpu_pct']:g}%")
    print(f"file {m['file_mb']:g} MB ({m['file_mb_per_min']:g} MB/min), closed complete: {m['complete']}")
    if "sync" in m:
        print(f"mecg sync: {m['sync']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="length of the main run (default 10; 0: skip it)")
    ap.add_argument("--fps", type=float, default=150.0, help="camera rate of the main run (default 150)")
    ap.add_argument("--ladder", default="150,200,250,300,400,500", help="camera rates to try, fps ('' to skip)")
    ap.add_argument("--ladder-seconds", type=float, default=30.0, help="run length per rate of the ladder (default 30)")
    ap.add_argument("--dir", default=None, help="folder for the session files (default: a temp folder)")
    ap.add_argument("--keep", action="store_true", help="keep the session files")
    ap.add_argument("--results", default="record.json", help="file name under benchmarks/results (default record.json)")
    ap.add_argument(
        "--rt-priority",
        type=int,
        default=None,
        help="ladder: camera capture thread real-time priority (not in the main run, whose capture thread renders)",
    )
    ap.add_argument("--sync", action="store_true", help="run mecg sync on the main run's file (slow: ~1 s per s)")
    args = ap.parse_args()
    folder = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="mecg-bench-record-"))
    folder.mkdir(parents=True, exist_ok=True)

    print(
        f"Main run: {args.minutes:g} min at {args.fps:g} fps {SIZE[0]}x{SIZE[1]} grey + ECG 1000 Hz + trigger box ...",
        flush=True,
    )
    load = os.getloadavg()
    main_run = (
        run(args.fps, args.minutes * 60.0, folder, None, sync=args.sync, keep=args.keep) if args.minutes > 0 else None
    )
    ladder, best, best_recorder = [], 0.0, 0.0
    if args.ladder:
        from mecg.synth import Subject, Trial, TrialConfig

        trial = Trial(
            Subject.random("S01", 1), 0, TrialConfig(duration_s=2.0, fps=150.0, width=SIZE[0], height=SIZE[1])
        )
        bank = np.stack([trial.frame(i) for i in range(0, 48, 2)])
        fps_prev = 0.0
        for fps in (float(x) for x in args.ladder.split(",")):
            print(f"Ladder: {fps:g} fps for {args.ladder_seconds:g} s ...", flush=True)
            r = run(fps, args.ladder_seconds, folder, bank, keep=args.keep, rt_priority=args.rt_priority)
            ladder.append(r)
            if not r["keeps_up"]:
                break
            best_recorder = fps
            if r["no_loss"] and best == fps_prev:
                best = fps
            fps_prev = fps
    if not args.keep and not args.dir:
        shutil.rmtree(folder, ignore_errors=True)

    m = main_run
    if m is not None:
        _print_main(m)
    if ladder:
        print(
            f"\nFPS ladder ({args.ladder_seconds:g} s per rate, {SIZE[0]}x{SIZE[1]} grey pre-rendered frames + ECG + "
            "trigger box):"
        )
        print(
            f"{'fps':>5} {'frames':>7} {'lost':>5} {'skipped':>7} {'rec CPU %':>9} {'dev CPU %':>9} {'MB/min':>7} "
            f"{'cam latency p95 ms':>18}  result"
        )
        for r in ladder:
            print(
                f"{r['fps']:>5g} {r['frames']:>7} {r['lost_total']:>5} {r['skipped_at_source']:>7} "
                f"{r['recorder_cpu_pct']:>9g} {r['devices_cpu_pct']:>9g} {r['file_mb_per_min']:>7g} "
                f"{r['streams']['FaceCamera']['latency_ms'][1]:>18g}  "
                f"{'no loss' if r['no_loss'] else 'skipped at camera' if r['recorder_no_loss'] else 'LOST'}"
                f"{'' if r['keeps_up'] or not r['recorder_no_loss'] else ', falling behind'}"
            )
        print(
            f"highest camera rate with nothing lost by LSL + recorder, keeping up: {best_recorder:g} fps; "
            f"with nothing skipped at the camera either: {best:g} fps"
        )

    RESULTS.mkdir(exist_ok=True)
    result = {
        "benchmark": "record",
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "pylsl": pylsl.__version__,
        "minutes": args.minutes,
        "main_run": main_run,
        "ladder_seconds": args.ladder_seconds,
        "camera_rt_priority": args.rt_priority,
        "ladder": ladder,
        "highest_fps_recorder_no_loss": best_recorder,
        "highest_fps_no_loss_incl_camera": best,
        "load_average_at_start": [round(x, 2) for x in load],
        "goal": "0 frames and samples lost over 10 min at 150 fps 640x480 mono + 1000 Hz ECG + triggers",
    }
    (RESULTS / args.results).write_text(json.dumps(result, indent=1) + "\n")
    print(f"\nwrote {RESULTS / args.results}")


if __name__ == "__main__":
    main()
