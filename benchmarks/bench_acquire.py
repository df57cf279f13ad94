"""Acquisition speed: parsers, the camera outlet, and device-to-inlet latency.

1. **Parser throughput**: the mecg frame parser + DATA decoder (1 and 2 channels) and the Cyton
   parser + decoder on a stream of encoded packets fed in 4 kB reads: packets/s and MB/s.
2. **Camera outlet**: the highest frame rate at 640x480 grey that an inlet in another process
   receives without losing a frame, through the real camera driver (a paced source of
   pre-rendered synthetic frames carrying a frame counter; a frame the driver reads more than 4
   frame periods late counts as lost, as a camera's 4 buffers would have overflowed), with the
   capture thread at normal and at real-time priority (``--rt-priority``). Each rate of the
   ladder runs for ``--camera-seconds`` (default 5; the MECG goal, 150 fps, is stated for 60).
3. **End-to-end latency** from the device to an inlet, with the real programs: ``mecg simulate``
   (amplifier and camera with their own transport latency set to 0) and ``mecg stream ecg``, each
   its own process, read by an inlet here: ECG sample time -> inlet, camera exposure start ->
   inlet (a frame cannot leave before its exposure, 4 ms at 150 fps, ends).

Prints a table and writes benchmarks/results/acquire.json (``--out``). Each part records when it
ran and the machine's load average: timings on a shared 2-core machine depend on what else runs.

    python benchmarks/bench_acquire.py [--quick]
    python benchmarks/bench_acquire.py --parts camera --camera-seconds 60 --ladder 150,300 \
        --out benchmarks/results/acquire_60s.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("LSLAPICFG", str(Path(__file__).resolve().parents[1] / "mecg" / "acquire" / "lsl_local.cfg"))

import pylsl  # after LSLAPICFG: liblsl reads it at first use

from mecg.acquire import cyton
from mecg.acquire.camera_driver import CameraConfig, CameraDriver
from mecg.acquire.frames import Frame
from mecg.acquire.protocol import Data, FrameParser, decode_data, encode

RESULTS = Path(__file__).parent / "results"


# -- 1. parsers ---------------------------------------------------------------------------------
def _feed_all(feed, data: bytes, chunk: int = 4096) -> list:
    out = []
    for i in range(0, len(data), chunk):
        out += feed(data[i : i + chunk])
    return out


def bench_parsers(n: int) -> list[dict]:
    rows = []
    rng = np.random.default_rng(0)
    for n_ch in (1, 2):
        counts = rng.integers(-(1 << 23), 1 << 23, (n, n_ch))
        data = b"".join(
            encode(Data(i & 0xFFFF, i * 1000 & 0xFFFFFFFF, i & 3, 0, tuple(map(int, counts[i])))) for i in range(n)
        )
        best = np.inf
        for _ in range(3):
            parser = FrameParser.for_host()
            t0 = time.perf_counter()
            frames = _feed_all(parser.feed, data)
            block = decode_data([f.payload for f in frames], n_ch)
            best = min(best, time.perf_counter() - t0)
        assert len(block) == n and np.array_equal(block.counts, counts)
        rows.append(
            {
                "parser": f"mecg DATA, {n_ch} ch",
                "packet_bytes": len(data) // n,
                "packets": n,
                "packets_per_s": round(n / best),
                "mb_per_s": round(len(data) / best / 1e6, 2),
                "x_realtime_at_1kHz": round(n / best / 1000.0),
            }
        )
    ch = rng.integers(-(1 << 23), 1 << 23, (n, 8))
    data = cyton.encode_packets(np.arange(n), ch, np.zeros((n, 6), np.uint8), cyton.FOOTER_ACCEL) + b"\xa0"
    best = np.inf
    for _ in range(3):
        parser = cyton.CytonParser()
        t0 = time.perf_counter()
        block = cyton.decode_packets(_feed_all(parser.feed, data))
        best = min(best, time.perf_counter() - t0)
    assert len(block) == n and np.array_equal(block.counts, ch)
    rows.append(
        {
            "parser": "Cyton, 8 ch",
            "packet_bytes": cyton.PACKET_SIZE,
            "packets": n,
            "packets_per_s": round(n / best),
            "mb_per_s": round(len(data) / best / 1e6, 2),
            "x_realtime_at_1kHz": round(n / best / 1000.0),
        }
    )
    return rows


# -- 2. camera outlet ---------------------------------------------------------------------------
#: Frames a camera holds before it overwrites (V4L2 drivers typically queue 4 buffers).
CAMERA_BUFFERS = 4


class PacedBank:
    """A frame source at exactly ``fps``: pre-rendered synthetic frames, each stamped with its counter.

    ``late`` counts frames read more than one period after they were due; ``overrun`` those read
    more than :data:`CAMERA_BUFFERS` periods late, which a real camera would have overwritten.
    """

    kind = "virtual"

    def __init__(self, bank: np.ndarray, fps: float, n_frames: int) -> None:
        self.bank, self.fps, self.n_frames = bank, fps, n_frames
        self.name, self.uid = "paced bank", "bench"
        self._i = 0
        self._t0: float | None = None
        self._buf = np.empty_like(bank[0])
        self.late = 0
        self.overrun = 0

    def read(self) -> Frame | None:
        if self._i >= self.n_frames:
            return None
        if self._t0 is None:
            self.restart_clock()
        due = self._t0 + self._i / self.fps
        wait = due - pylsl.local_clock()
        if wait > 0:
            time.sleep(wait)  # block like a camera's grab(); spinning would starve others at real-time priority
            wait = due - pylsl.local_clock()
        if -wait > 1.0 / self.fps:
            self.late += 1
        if -wait > CAMERA_BUFFERS / self.fps:
            self.overrun += 1
        np.copyto(self._buf, self.bank[self._i % len(self.bank)])
        self._buf.reshape(-1)[:8].view(np.uint64)[0] = self._i
        f = Frame(self._buf, due, self._i)
        self._i += 1
        return f

    def restart_clock(self) -> None:
        """Frame ``i`` is due ``i / fps`` after now (the driver reads frame 0 at connect)."""
        self._t0 = pylsl.local_clock() + 0.01 - self._i / self.fps

    def close(self) -> None:
        pass


def _receiver(source_id: str, expect: int, seconds: float, q: mp.Queue) -> None:
    """Child process: pull every frame, check the counters, report what arrived."""
    found = pylsl.resolve_byprop("source_id", source_id, timeout=10.0)
    if not found:
        q.put({"error": "stream not found"})
        return
    inlet = pylsl.StreamInlet(found[0], max_buflen=5, max_chunklen=1)
    inlet.open_stream(timeout=10.0)
    n_ch = inlet.channel_count
    buf = np.empty((64, n_ch), np.int8)
    q.put({"ready": True})
    seen = []
    end = time.monotonic() + seconds
    while time.monotonic() < end and len(seen) < expect:
        _, ts = inlet.pull_chunk(timeout=0.2, max_samples=64, dest_obj=buf)
        if ts:
            seen += buf[: len(ts), :8].copy().view(np.uint64).ravel().tolist()
    seen_arr = np.array(seen, dtype=np.int64)
    q.put(
        {
            "received": len(seen),
            "unique": int(np.unique(seen_arr).size),
            "in_order": bool(np.all(np.diff(seen_arr) > 0)) if len(seen) > 1 else True,
        }
    )


def camera_run(bank: np.ndarray, fps: float, seconds: float, rt_priority: int | None = None) -> dict:
    n = round(fps * seconds)
    src = PacedBank(bank, fps, n)
    sid = f"bench-cam-{os.getpid()}-{int(fps)}"
    cfg = CameraConfig(camera="bench", source_id=sid, max_buffered_s=2.0, rt_priority=rt_priority)
    drv = CameraDriver(cfg, source=src)
    drv.connect()
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    proc = ctx.Process(target=_receiver, args=(sid, n, seconds + 15.0, q))
    proc.start()
    ready = q.get(timeout=30)
    if "error" in ready:
        raise RuntimeError(ready["error"])
    time.sleep(0.3)
    t0 = time.perf_counter()
    src.restart_clock()
    drv.start()
    drv.finished.wait(seconds + 30)
    elapsed = time.perf_counter() - t0
    res = q.get(timeout=seconds + 30)
    proc.join(timeout=10)
    drv.close()
    ok = res["received"] == n and res["unique"] == n and res["in_order"] and src.overrun == 0
    return {
        "fps": fps,
        "seconds": seconds,
        "frames_sent": drv.frames,
        "frames_received": res["received"],
        "lost": n - res["unique"],
        "late_at_source": src.late,
        "overrun_at_source": src.overrun,
        "achieved_fps": round(drv.frames / elapsed, 1),
        "capture_thread": drv.priority,
        "no_drop": bool(ok),
    }


def bench_camera(seconds: float, ladder: list[float], rt_priority: int | None) -> tuple[list[dict], float]:
    from mecg.synth import Subject, Trial, TrialConfig

    trial = Trial(Subject.random("S01", 1), 0, TrialConfig(duration_s=2.0, fps=150.0, width=640, height=480))
    bank = np.stack([trial.frame(i) for i in range(0, 32, 2)])
    rows, best = [], 0.0
    for fps in ladder:
        r = camera_run(bank, fps, seconds, rt_priority)
        rows.append(r)
        print(
            f"  camera ({r['capture_thread']}) {fps:6.0f} fps x {seconds:g} s: "
            f"received {r['frames_received']}/{r['frames_sent']}, "
            f"lost {r['lost']}, late {r['late_at_source']}, overrun {r['overrun_at_source']} "
            f"-> {'ok' if r['no_drop'] else 'DROPS'}",
            flush=True,
        )
        if not r["no_drop"]:
            break
        best = fps
    return rows, best


# -- 3. end-to-end latency ----------------------------------------------------------------------
def _stats_ms(x: np.ndarray) -> dict:
    x = np.asarray(x) * 1000.0
    return {
        "n": int(x.size),
        "median_ms": round(float(np.median(x)), 2),
        "p95_ms": round(float(np.percentile(x, 95)), 2),
        "max_ms": round(float(x.max()), 2),
    }


def bench_latency(seconds: float) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="mecg-bench-acq-"))
    env = dict(os.environ)
    py = [sys.executable, "-m", "mecg"]
    sim = subprocess.Popen(
        [
            *py,
            "simulate",
            "--no-trigger-box",
            "--fps",
            "150",
            "--size",
            "640x480",
            "--latency-ms",
            "0",
            "--jitter-ms",
            "0",
            "--camera-latency-ms",
            "0",
            "--camera-jitter-ms",
            "0",
            "--dir",
            str(tmp),
            "--seconds",
            str(seconds + 20),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    drv = None
    try:
        lines = []
        while not any("Ctrl-C" in x for x in lines):
            line = sim.stdout.readline()
            if not line:
                raise RuntimeError("mecg simulate ended early")
            lines.append(line)
        cam_sid = next(x for x in lines if "virtual camera" in x).split("source_id ")[1].split(")")[0]
        truth = json.loads((tmp / "simulation.json").read_text())
        t0, rate = truth["t0_lsl_s"], truth["amplifier"]["rate_hz"]
        drv = subprocess.Popen(
            [
                *py,
                "stream",
                "ecg",
                "--port",
                str(tmp / "amplifier"),
                "--source-id",
                "bench-ecg",
                "--seconds",
                str(seconds + 10),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        inlets = {}
        for key, sid in (("ecg", "bench-ecg"), ("camera", cam_sid)):
            found = pylsl.resolve_byprop("source_id", sid, timeout=15.0)
            if not found:
                raise RuntimeError(f"no stream {sid}")
            inlets[key] = pylsl.StreamInlet(found[0], max_buflen=10)
            inlets[key].open_stream(timeout=10.0)
        time.sleep(2.0)  # let the ECG clock fit settle
        for inlet in inlets.values():
            inlet.flush()
        cam_buf = np.empty((16, inlets["camera"].channel_count), np.int8)
        ecg_lat, ecg_err, cam_lat = [], [], []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            _, ts = inlets["ecg"].pull_chunk(timeout=0.0, max_samples=1024)
            now = pylsl.local_clock()
            if ts:
                ts = np.asarray(ts)
                true = (
                    t0 + np.floor((ts - t0) * rate + 0.05) / rate
                )  # the sample grid (drift 0): the stamp is at most 1 sample late
                ecg_lat.append(now - true)
                ecg_err.append(ts - true)
            _, ts = inlets["camera"].pull_chunk(timeout=0.0, max_samples=16, dest_obj=cam_buf)
            now = pylsl.local_clock()
            if ts:
                cam_lat.append(now - np.asarray(ts))  # camera stamps are the exposure starts
            time.sleep(0.0005)
    finally:
        for p in (drv, sim):
            if p is not None:
                p.terminate()
                p.wait(timeout=15)
    ecg = np.concatenate(ecg_lat)
    return {
        "seconds": seconds,
        "ecg_sample_to_inlet": _stats_ms(ecg),
        "ecg_timestamp_error": _stats_ms(np.concatenate(ecg_err)),
        "camera_exposure_to_inlet": _stats_ms(np.concatenate(cam_lat)),
        "setup": "mecg simulate (amplifier + camera, own latency 0) and mecg stream ecg as separate processes; "
        "inlet polled every 0.5 ms; camera 150 fps 640x480 grey (exposure 4 ms)",
    }


def _stamp(part: dict) -> dict:
    """Add when a part ran and how busy the machine was (1-min load average) when it ended."""
    part["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    part["load_average_1min"] = round(os.getloadavg()[0], 2)
    return part


def print_parsers(p: dict) -> None:
    print(f"\nParser throughput (4 kB reads, parse + decode; {p['measured_at']}, load {p['load_average_1min']}):")
    print(f"{'parser':<16} {'bytes/pkt':>9} {'packets/s':>11} {'MB/s':>7} {'x real time @1 kHz':>19}")
    for r in p["rows"]:
        print(
            f"{r['parser']:<16} {r['packet_bytes']:>9} {r['packets_per_s']:>11,} {r['mb_per_s']:>7} "
            f"{r['x_realtime_at_1kHz']:>19,}"
        )


def print_camera(c: dict) -> None:
    print(
        f"\nCamera outlet, 640x480 grey, {c['seconds_per_rate']:g} s per rate, inlet in another process "
        f"({c['measured_at']}, load {c['load_average_1min']}):"
    )
    print(
        f"{'capture thread':<16} {'fps':>6} {'sent':>7} {'received':>9} {'lost':>5} {'late':>5} {'overrun':>7} "
        f"{'achieved':>9}  result"
    )
    for mode in c["modes"].values():
        for r in mode["runs"]:
            print(
                f"{r['capture_thread'][:16]:<16} {r['fps']:>6g} {r['frames_sent']:>7} {r['frames_received']:>9} "
                f"{r['lost']:>5} {r['late_at_source']:>5} {r['overrun_at_source']:>7} {r['achieved_fps']:>9}  "
                f"{'no drop' if r['no_drop'] else 'drops'}"
            )
    print(
        f"(late: read > 1 frame period after due; overrun: > {CAMERA_BUFFERS} periods, a real camera's buffers "
        "would have overflowed: counted as a drop)"
    )
    for name, mode in c["modes"].items():
        print(
            f"highest rate with no drop, {name} capture thread: {mode['highest_fps_no_drop']:g} fps (goal >= 150 fps)"
        )


def print_latency(lat: dict) -> None:
    print(f"\nEnd-to-end latency ({lat['seconds']:g} s; {lat['measured_at']}, load {lat['load_average_1min']}):")
    print(f"  {lat['setup']}")
    print(f"{'path':<34} {'median ms':>9} {'p95 ms':>7} {'max ms':>7} {'n':>7}")
    for key, label in (
        ("ecg_sample_to_inlet", "ECG sample -> inlet"),
        ("camera_exposure_to_inlet", "camera exposure start -> inlet"),
        ("ecg_timestamp_error", "ECG timestamp - true sample time"),
    ):
        s = lat[key]
        print(f"{label:<34} {s['median_ms']:>9} {s['p95_ms']:>7} {s['max_ms']:>7} {s['n']:>7}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--camera-seconds", type=float, default=5.0, help="run length per camera rate (the goal states 60)")
    ap.add_argument("--ladder", default="150,300,600,1000,1500,2000,3000", help="camera rates to try, fps")
    ap.add_argument("--latency-seconds", type=float, default=10.0, help="latency measurement length (s)")
    ap.add_argument("--packets", type=int, default=200_000, help="packets per parser run")
    ap.add_argument(
        "--priority",
        choices=("normal", "rt", "both"),
        default="both",
        help="capture thread scheduling: normal, real-time (SCHED_FIFO 10, `--rt-priority 10`), or both (default)",
    )
    ap.add_argument(
        "--parts",
        default="parsers,camera,latency",
        help="what to measure (default all); the others keep their results from --out",
    )
    ap.add_argument("--quick", action="store_true", help="short runs: 50k packets, 2 s per camera rate, 4 s latency")
    ap.add_argument("--out", type=Path, default=RESULTS / "acquire.json", help="JSON results file")
    args = ap.parse_args()
    if args.quick:
        args.packets, args.camera_seconds, args.latency_seconds = 50_000, 2.0, 4.0
    parts = {p.strip() for p in args.parts.split(",")}
    if not parts <= {"parsers", "camera", "latency"}:
        ap.error(f"--parts takes parsers, camera, latency; got {args.parts}")
    ladder = [float(x) for x in args.ladder.split(",")]
    out = json.loads(args.out.read_text()) if args.out.exists() and parts != {"parsers", "camera", "latency"} else {}
    out.update(
        {
            "benchmark": "acquire",
            "machine": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "pylsl": pylsl.__version__,
            "liblsl": pylsl.library_version(),
        }
    )

    if "parsers" in parts:
        print("Parsers ...", flush=True)
        out["parsers"] = _stamp({"rows": bench_parsers(args.packets)})
    if "camera" in parts:
        print("Camera outlet, 640x480 grey ...", flush=True)
        modes = {}
        for prio in {"normal": [None], "rt": [10], "both": [None, 10]}[args.priority]:
            rows, best = bench_camera(args.camera_seconds, ladder, prio)
            modes["normal" if prio is None else "rt"] = {"runs": rows, "highest_fps_no_drop": best}
        out["camera_outlet"] = _stamp(
            {
                "size": "640x480",
                "pixel_format": "mono8",
                "goal_fps": 150,
                "seconds_per_rate": args.camera_seconds,
                "modes": modes,
            }
        )
    if "latency" in parts:
        print("End-to-end latency ...", flush=True)
        out["latency"] = _stamp(bench_latency(args.latency_seconds))

    if "parsers" in out:
        print_parsers(out["parsers"])
    if "camera_outlet" in out:
        print_camera(out["camera_outlet"])
    if "latency" in out:
        print_latency(out["latency"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
