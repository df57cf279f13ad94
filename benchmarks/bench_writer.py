"""Session writer throughput for 150 fps 640x480 mono face video.

Goal: keep up with 150 fps 640x480 mono (46 MB/s of raw frames) on <= 50% of one core, lossless.

Frames look like a face video: skimage's astronaut photo in grey, resized to 640x480, with a
small random-walk head motion (``cv2.warpAffine``), mild 100 Hz mains flicker and sensor noise
(sigma 2 grey levels); a second, smoother set (sigma 0.7, as a well-lit camera with less gain
gives) shows how the ratio depends on noise. They are appended in chunks of 5 frames, as a recorder
would, through :class:`SessionWriter` with deflate at ``video_level`` 0-3 and with each hdf5plugin
codec (``video_codec`` blosc-lz4, lz4, zstd), and for reference through plain h5py with its own
gzip level 1 and with no compression. Reported per variant: raw input MB/s (wall clock),
compression ratio (raw bytes / file size), CPU seconds per second of 150 fps video (process
time of the writing process, flush thread included: this is the fraction of one core it
needs), decode CPU ms per frame (mecg's ``Stream.frames``, one thread, Fletcher32 checked; plain
h5py for the h5py variants), and whether frames read back bit-exactly. Every mecg variant writes Fletcher32 checksums
(format v2). Prints a table and writes benchmarks/results/writer.json.

``--crash N`` also measures crash safety: N writer processes (video 96x128 at ~150 fps, ECG at
~1 kHz, markers) are killed with SIGKILL at seeded times between 1 and 3 s, and each file is
checked with ``validate --deep`` and for the seconds of data lost; max(10, 2N) more are ended inside
a background flush (a timer's SIGALRM 0-500 µs after it starts: the window a random SIGKILL rarely
hits, while the flush's metadata writes are under way); then the writer fills small
tmpfs disks (when mounting is allowed) until the disk is full, and each file is checked the same way.

    python benchmarks/bench_writer.py [--frames N] [--quick] [--dir DIR] [--crash N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import h5py
import hdf5plugin
import numpy as np
from skimage import color, data

from mecg.session import SessionError, SessionWriter, StreamInfo, check_session, open_session, video_codec

RESULTS = Path(__file__).parent / "results"
FPS = 150.0
SHAPE = (480, 640)  # (height, width)
CHUNK = 5  # frames per append
GOAL_MBPS = SHAPE[0] * SHAPE[1] * FPS / 1e6  # 46.08 MB/s
GOAL_CORE = 0.5  # fraction of one core


def face_frames(n: int, seed: int = 0, noise: float = 2.0) -> np.ndarray:
    """``n`` uint8 frames (480, 640): a grey face photo with head motion, flicker and sensor noise (sigma, grey)."""
    rng = np.random.default_rng(seed)
    face = cv2.resize(
        (color.rgb2gray(data.astronaut()) * 255.0).astype(np.float32), SHAPE[::-1], interpolation=cv2.INTER_LINEAR
    )
    shift = np.clip(np.cumsum(rng.normal(0.0, 0.15, (n, 2)), axis=0), -3.0, 3.0)  # px, sub-pixel random walk
    gain = 1.0 + 0.01 * np.sin(2 * np.pi * 100.0 * np.arange(n) / FPS + 0.3)  # mains flicker seen at 150 fps
    out = np.empty((n, *SHAPE), np.uint8)
    for i in range(n):
        m = np.float32([[1, 0, shift[i, 0]], [0, 1, shift[i, 1]]])
        moved = cv2.warpAffine(face, m, SHAPE[::-1], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
        noisy = moved * gain[i] + rng.standard_normal(SHAPE, dtype=np.float32) * noise
        out[i] = np.clip(np.rint(noisy), 0, 255)
    return out


def write_mecg(path: Path, frames: np.ndarray, n: int, level: int, codec: str = "deflate") -> None:
    """Append ``n`` frames (cycling ``frames``) in chunks of CHUNK through SessionWriter."""
    with SessionWriter(path, subject_id="bench", video_level=level, video_codec=codec) as w:
        key = w.add_stream(StreamInfo("cam", "Video", kind="video", nominal_srate_hz=FPS, frame_shape=SHAPE))
        for i in range(0, n, CHUNK):
            idx = np.arange(i, min(i + CHUNK, n))
            w.append(key, frames[idx % len(frames)], idx / FPS)


def write_h5py(path: Path, frames: np.ndarray, n: int, gzip_level: int | None) -> None:
    """The same appends through plain h5py: one frame per chunk, HDF5's own gzip (or none)."""
    opts = {"compression": "gzip", "compression_opts": gzip_level} if gzip_level is not None else {}
    with h5py.File(path, "w") as f:
        d = f.create_dataset(
            "data", shape=(0, *SHAPE), maxshape=(None, *SHAPE), chunks=(1, *SHAPE), dtype=np.uint8, **opts
        )
        t = f.create_dataset("timestamps", shape=(0,), maxshape=(None,), chunks=(1024,), dtype=np.float64)
        for i in range(0, n, CHUNK):
            idx = np.arange(i, min(i + CHUNK, n))
            d.resize(idx[-1] + 1, axis=0)
            d[idx[0] :] = frames[idx % len(frames)]
            t.resize(idx[-1] + 1, axis=0)
            t[idx[0] :] = idx / FPS


def lossless(path: Path, dataset: str, frames: np.ndarray, n: int) -> bool:
    """Read a few frames back with plain h5py and compare them bit for bit."""
    with h5py.File(path, "r") as f:
        d = f[dataset]
        if d.shape[0] != n:
            return False
        check = sorted({0, 1, len(frames) - 1, n // 2, n - 1})
        return all(np.array_equal(d[i], frames[i % len(frames)]) for i in check)


def decode_ms(path: Path, dataset: str) -> float:
    """CPU ms to decode one frame: mecg's reader for a session, plain h5py otherwise (one thread)."""
    if dataset.startswith("streams/"):
        with open_session(path) as s:
            st = s.stream(kind="video")
            n = st.sample_count
            c0 = time.process_time()
            for a in range(0, n, 50):
                st.frames(a, min(a + 50, n))
            return (time.process_time() - c0) / n * 1e3
    with h5py.File(path, "r") as f:
        d = f[dataset]
        c0 = time.process_time()
        for i in range(d.shape[0]):
            d[i]
        return (time.process_time() - c0) / d.shape[0] * 1e3


def measure(name: str, write: Callable[[Path], None], path: Path, dataset: str, frames: np.ndarray, n: int) -> dict:
    """Run one variant and return its row of the table."""
    t0, c0 = time.perf_counter(), time.process_time()
    write(path)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    raw = n * SHAPE[0] * SHAPE[1]
    size = path.stat().st_size
    video_s = n / FPS
    row = {
        "variant": name,
        "frames": n,
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "raw_MBps": round(raw / wall / 1e6, 1),
        "ratio": round(raw / size, 3),
        "file_MB": round(size / 1e6, 2),
        "cpu_s_per_video_s": round(cpu / video_s, 3),
        "core_fraction": round(cpu / video_s, 3),
        "realtime_x": round(video_s / wall, 2),
        "lossless": lossless(path, dataset, frames, n),
        "decode_ms_per_frame": round(decode_ms(path, dataset), 3),
    }
    row["meets_goal"] = bool(row["raw_MBps"] >= GOAL_MBPS and row["core_fraction"] <= GOAL_CORE and row["lossless"])
    path.unlink()
    return row


CRASH_WRITER = """
import signal, sys, time
import numpy as np
from mecg.session import SessionWriter, StreamInfo
H, W = 96, 128
BASE = np.arange(H * W, dtype=np.int64).reshape(H, W)
KILL_FLUSH, KILL_DELAY_S = (int(sys.argv[3]), float(sys.argv[4])) if len(sys.argv) > 4 else (0, 0.0)


class Writer(SessionWriter):
    flushes = 0

    def flush(self):
        Writer.flushes += 1
        if Writer.flushes == KILL_FLUSH:  # SIGALRM's default action ends the process at once, even inside HDF5
            signal.setitimer(signal.ITIMER_REAL, KILL_DELAY_S)
        super().flush()


w = Writer(sys.argv[1], subject_id="crash", video_codec=sys.argv[2])
cam = w.add_stream(StreamInfo("cam", "Video", kind="video", frame_shape=(H, W), nominal_srate_hz=150))
ecg = w.add_stream(StreamInfo("ecg", "ECG", channel_labels=["ECG"], channel_format="int32", nominal_srate_hz=1000))
mk = w.add_stream(StreamInfo("mk", "Markers", kind="markers"))
print("ready", flush=True)
nf = ne = 0
while True:
    idx = np.arange(nf, nf + 3)
    w.append(cam, ((BASE[None] + 7 * idx[:, None, None]) % 256).astype(np.uint8), idx / 150)
    w.append(ecg, np.arange(ne, ne + 20, dtype=np.int32), np.arange(ne, ne + 20) / 1000)
    nf, ne = nf + 3, ne + 20
    if nf % 30 == 0:
        w.append(mk, ["mark"], [nf / 150])
    print(f"{time.monotonic():.6f} {nf} {ne}", flush=True)
    time.sleep(0.016)
"""


def _check(path: Path) -> tuple[bool, int, int, str]:
    """``validate --deep`` the file: (valid, frames, ECG samples, first error)."""
    rep, s = check_session(path, deep=True)
    if s is None:
        return False, 0, 0, rep.errors[0]
    with s:
        n = {k: st.sample_count for k, st in s.streams.items()}
    return rep.valid, n.get("cam", 0), n.get("ecg", 0), rep.errors[0] if rep.errors else ""


def crash_trials(n: int, folder: Path, codec: str = "deflate") -> dict:
    """SIGKILL ``n`` writers (video in ``codec``) at seeded times; how many files validate, what each lost (s)."""
    rng = np.random.default_rng(15)
    script = folder / "crash_writer.py"
    script.write_text(CRASH_WRITER)
    kills = []
    for i, after_s in enumerate(rng.uniform(1.0, 3.0, n)):
        path = folder / f"crash{i}.h5"
        proc = subprocess.Popen([sys.executable, str(script), str(path), codec], stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        lines: list[str] = []
        reader = threading.Thread(target=lambda p=proc, out=lines: out.extend(p.stdout), daemon=True)
        reader.start()
        time.sleep(after_s)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        reader.join(timeout=10)
        last = [ln.split() for ln in lines if ln.strip()][-1]
        appended_frames, appended_samples = int(last[1]), int(last[2])
        valid, nf, ne, err = _check(path)
        kills.append(
            {
                "kill_after_s": round(float(after_s), 3),
                "valid": valid,
                "error": err,
                "video_lost_s": round((appended_frames - nf) / 150, 3),
                "ecg_lost_s": round((appended_samples - ne) / 1000, 3),
            }
        )
        path.unlink(missing_ok=True)
    lost = [max(k["video_lost_s"], k["ecg_lost_s"]) for k in kills]
    return {
        "codec": codec,
        "kills": n,
        "valid_after_kill": sum(k["valid"] for k in kills),
        "lost_s_median": round(float(np.median(lost)), 3),
        "lost_s_max": round(float(np.max(lost)), 3),
        "trials": kills,
    }


def in_flush_trials(n: int, folder: Path, max_delay_us: float = 500.0) -> dict:
    """End ``n`` writers inside a background flush: the 2nd-4th flush, a seeded 0-``max_delay_us`` µs after it starts.

    The kill is the default action of SIGALRM from a timer armed as the flush starts, so it lands inside
    the flush, which a SIGKILL at a random moment rarely hits (it takes ~0.2-0.5 ms of every 0.5 s).
    How many files still validate (``validate --deep``), and the first error of each.
    """
    rng = np.random.default_rng(16)
    script = folder / "crash_writer.py"
    script.write_text(CRASH_WRITER)
    kills = []
    for i in range(n):
        k, delay_us = int(rng.integers(2, 5)), float(rng.uniform(0.0, max_delay_us))
        path = folder / f"inflush{i}.h5"
        args = [sys.executable, str(script), str(path), "deflate", str(k), str(delay_us * 1e-6)]
        proc = subprocess.run(args, capture_output=True, timeout=60)
        valid, _, _, err = _check(path)
        kills.append(
            {"flush": k, "delay_us": round(delay_us, 1), "returncode": proc.returncode, "valid": valid, "error": err}
        )
        path.unlink(missing_ok=True)
    return {
        "kills": n,
        "max_delay_us": max_delay_us,
        "valid_after_kill": sum(k["valid"] for k in kills),
        "trials": kills,
    }


def full_disk_trials(sizes_kib: list[int], folder: Path) -> dict:
    """Fill tmpfs disks of ``sizes_kib`` with one recording each; is each file valid after the disk is full?"""
    disk = folder / "small"
    disk.mkdir()
    base = np.arange(96 * 128).reshape(96, 128)[None] + np.arange(3)[:, None, None] * 7  # int64
    trials = []
    for size in sizes_kib:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}k", "tmpfs", str(disk)], capture_output=True)
        if r.returncode != 0:
            return {"skipped": f"cannot mount a tmpfs here: {r.stderr.decode().strip()}"}
        try:
            path = disk / "full.h5"
            w = SessionWriter(path, subject_id="full", flush_interval_s=0.05)
            cam = w.add_stream(StreamInfo("cam", "Video", kind="video", frame_shape=(96, 128), nominal_srate_hz=150))
            ecg = w.add_stream(StreamInfo("ecg", "ECG", channel_labels=["ECG"], nominal_srate_hz=1000))
            nf = 0
            try:
                while True:
                    w.append(cam, ((base + nf) % 256).astype(np.uint8), np.arange(nf, nf + 3) / 150)
                    w.append(ecg, np.zeros((20, 1)), np.arange(nf * 20 // 3, nf * 20 // 3 + 20) / 1000)
                    nf += 3
                    if w.flush_error is not None:
                        break
            except (OSError, SessionError):
                pass
            finally:
                w.abort()
            valid, kept, _, err = _check(path)
            trials.append({"disk_kib": size, "appended_frames": nf, "kept_frames": kept, "valid": valid, "error": err})
        finally:
            subprocess.run(["umount", str(disk)], check=False)
    return {"disks": len(trials), "valid_when_full": sum(t["valid"] for t in trials), "trials": trials}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=900, help="frames to write per variant (default 900 = 6 s)")
    ap.add_argument("--quick", action="store_true", help="150 frames from 60 precomputed, for a smoke run")
    ap.add_argument("--dir", default=None, help="folder for the temporary files (default: system temp)")
    ap.add_argument("--out", default=str(RESULTS / "writer.json"), help="JSON output path")
    ap.add_argument("--crash", type=int, default=0, help="also SIGKILL N writers and fill small disks (crash safety)")
    args = ap.parse_args()
    if args.dir is not None and not Path(args.dir).is_dir():
        ap.error(f"--dir {args.dir}: no such folder; create it or leave --dir out (system temp)")
    n = 150 if args.quick and args.frames == 900 else args.frames
    frames = face_frames(60 if args.quick else 300)
    smooth = face_frames(60 if args.quick else 300, noise=0.7)

    print(
        f"Goal: keep up with {FPS:g} fps {SHAPE[1]}x{SHAPE[0]} mono ({GOAL_MBPS:.1f} MB/s raw) "
        f"on <= {GOAL_CORE:.0%} of one core, lossless."
    )
    print(
        f"{n} frames ({n / FPS:.1f} s of video) in appends of {CHUNK}, cycling {len(frames)} precomputed frames; "
        f"deflate backend {video_codec.backend()}, h5py {h5py.__version__}, HDF5 {h5py.version.hdf5_version}\n"
    )

    def mecg_variants(fr: np.ndarray, tag: str) -> list[tuple[str, Callable[[Path], None], str, np.ndarray]]:
        deflate = [
            (f"{tag} deflate level {lv}", lambda p, lv=lv: write_mecg(p, fr, n, lv), "streams/cam/data", fr)
            for lv in (0, 1, 2, 3)
        ]
        plugins = [
            (f"{tag} {c}", lambda p, c=c: write_mecg(p, fr, n, video_codec.DEFAULT_LEVEL, c), "streams/cam/data", fr)
            for c in video_codec.CODECS
            if c != "deflate"
        ]
        return deflate + plugins

    variants = [
        *mecg_variants(frames, "noisy"),
        ("noisy h5py gzip 1", lambda p: write_h5py(p, frames, n, 1), "data", frames),
        ("noisy h5py raw", lambda p: write_h5py(p, frames, n, None), "data", frames),
        *mecg_variants(smooth, "smooth"),
    ]
    rows = []
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        write_mecg(Path(tmp) / "warmup.h5", frames, 2 * CHUNK, video_codec.DEFAULT_LEVEL)  # imports, page cache
        for name, write, dataset, fr in variants:
            rows.append(measure(name, write, Path(tmp) / "bench.h5", dataset, fr, n))
            r = rows[-1]
            if len(rows) == 1:
                print(
                    f"{'variant':<25} {'raw MB/s':>9} {'ratio':>6} {'CPU s / video s':>15} {'x real time':>11} "
                    f"{'decode ms':>9} {'lossless':>8} {'goal':>5}"
                )
            print(
                f"{r['variant']:<25} {r['raw_MBps']:>9.1f} {r['ratio']:>6.2f} {r['cpu_s_per_video_s']:>15.3f} "
                f"{r['realtime_x']:>11.2f} {r['decode_ms_per_frame']:>9.3f} {r['lossless']!s:>8} "
                f"{'yes' if r['meets_goal'] else 'no':>5}"
            )
    print("\nCPU s / video s is the fraction of one core the writer needs at 150 fps (flush thread included);")
    print("decode ms is CPU per frame read back (mecg's reader, one thread; plain h5py for the h5py rows).")
    print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    crash: dict = {}
    if args.crash:
        with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
            crash["sigkill"] = crash_trials(args.crash, Path(tmp))
            crash["sigkill_blosc_lz4"] = crash_trials(args.crash, Path(tmp), "blosc-lz4")
            crash["sigkill_in_flush"] = in_flush_trials(max(10, 2 * args.crash), Path(tmp))
            crash["full_disk"] = full_disk_trials([512, 1024, 2048, 4096, 8192][: max(1, args.crash)], Path(tmp))
        for k in (crash["sigkill"], crash["sigkill_blosc_lz4"]):
            print(
                f"\nSIGKILL x{k['kills']} ({k['codec']}): {k['valid_after_kill']} file(s) valid (validate --deep); "
                f"data lost median {k['lost_s_median']:.3f} s, max {k['lost_s_max']:.3f} s"
            )
        k = crash["sigkill_in_flush"]
        print(
            f"killed inside a flush (0-{k['max_delay_us']:.0f} µs after it starts) x{k['kills']}: "
            f"{k['valid_after_kill']} file(s) valid"
        )
        d = crash["full_disk"]
        if "skipped" in d:
            print(f"full disk: skipped ({d['skipped']})")
        else:
            print(f"full disk x{d['disks']}: {d['valid_when_full']} file(s) valid after the disk filled up")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": "writer",
        "goal": {
            "raw_MBps": GOAL_MBPS,
            "core_fraction_max": GOAL_CORE,
            "lossless": True,
            "text": "keep up with 150 fps 640x480 mono on <= 50% of one core, lossless",
        },
        "config": {
            "frames": n,
            "precomputed": len(frames),
            "shape": list(SHAPE),
            "fps": FPS,
            "append_frames": CHUNK,
            "default_video_level": video_codec.DEFAULT_LEVEL,
            "default_video_codec": video_codec.DEFAULT_CODEC,
            "noise_sigma": {"noisy": 2.0, "smooth": 0.7},
            "load_average_1min_end": round(os.getloadavg()[0], 2),
            "hdf5plugin": hdf5plugin.version,
            "backend": video_codec.backend(),
            "h5py": h5py.__version__,
            "hdf5": h5py.version.hdf5_version,
            "cpu_count": os.cpu_count(),
            "machine": platform.machine(),
            "python": platform.python_version(),
        },
        "results": rows,
        "crash_safety": crash,
    }
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
