"""Outages against the outlet buffer: frames lost and counted when the recorder stops taking data for a while.

A device process pushes 640x480 frames (grey or RGB) at 150 fps on a fixed schedule, the frame's index
in its first bytes, through an outlet with the buffer under test; ``mecg record`` (another process)
records it. After 3 s the recorder process is frozen (SIGSTOP) for the outage, which to the outlet
is a link outage: TCP backs up, then the outlet's buffer fills. Then it goes on (SIGCONT) and stops
after ``--seconds`` while the device still pushes. The truth is in the file: the indices missing
between the first and the last recorded frame; the recorder's count is its summary's ``missing``. The device's peak
RSS shows what the buffer cost. Loopback only, so it measures the buffers, not a network.

    .venv/bin/python benchmarks/bench_outage.py                      # 2 s vs the default, 10 s outage
    .venv/bin/python benchmarks/bench_outage.py --outage 10 20 --rgb

Writes benchmarks/results/outage.json.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CFG = ROOT / "mecg" / "acquire" / "lsl_local.cfg"

DEVICE = r"""
import json, resource, sys, time
import numpy as np, pylsl
a = json.loads(sys.argv[1])
w, h, ch, fps = a["w"], a["h"], a["ch"], a["fps"]
info = pylsl.StreamInfo("OutageCam", "Video", w * h * ch, fps, pylsl.cf_int8, a["sid"])
for k, v in (("width", w), ("height", h), ("channels", ch), ("pixel_format", "mono8" if ch == 1 else "rgb8")):
    info.desc().append_child_value(k, str(v))
info.desc().append_child_value("can_drop_samples", "true")
kw = {} if a["buffer_s"] is None else {"max_buffered": a["buffer_s"]}
if a["buffer_s"] is None:
    from mecg.acquire.buffers import DEFAULT_BUFFER_S, buffer_seconds
    kw = {"max_buffered": buffer_seconds(None, default_s=DEFAULT_BUFFER_S, srate_hz=fps, sample_bytes=w * h * ch)}
outlet = pylsl.StreamOutlet(info, chunk_size=1, **kw)
frame = np.random.default_rng(0).integers(0, 255, (1, w * h * ch), dtype=np.uint8)
print(json.dumps({"buffer_s": kw["max_buffered"]}), flush=True)
sys.stdin.readline()  # go
t0 = pylsl.local_clock()
import threading
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
n = 0
for i in range(1 << 30):
    if stop.is_set():
        break
    n = i + 1
    t = t0 + i / fps
    while pylsl.local_clock() < t:
        time.sleep(min(0.002, max(0.0, t - pylsl.local_clock())))
    frame[0, :3] = [i & 255, (i >> 8) & 255, (i >> 16) & 255]
    outlet.push_chunk(frame.view(np.int8), t)
print(json.dumps({"pushed": n, "t0": t0, "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}),
      flush=True)
"""


def run(buffer_s: int | None, outage_s: float, rgb: bool, seconds: float, fps: float) -> dict:
    env = {**os.environ, "LSLAPICFG": str(CFG)}
    sid = f"bench-outage-{uuid.uuid4().hex[:8]}"
    args = {"w": 640, "h": 480, "ch": 3 if rgb else 1, "fps": fps, "sid": sid, "buffer_s": buffer_s, "seconds": seconds}
    dev = subprocess.Popen(
        [sys.executable, "-c", DEVICE, json.dumps(args)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    got = json.loads(dev.stdout.readline())
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "s.h5"
        rec = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mecg",
                "record",
                "--source-id",
                sid,
                "--out",
                str(out),
                "--json",
                "--quiet",
                "--duration",
                f"{seconds:g}",
                "--lsl-local",
                "--min-free-mb",
                "50",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
        )
        while not out.exists():
            time.sleep(0.05)
        dev.stdin.write("\n")
        dev.stdin.flush()
        time.sleep(3.0)
        os.kill(rec.pid, signal.SIGSTOP)
        time.sleep(outage_s)
        os.kill(rec.pid, signal.SIGCONT)
        summary_out, _ = rec.communicate(timeout=seconds + 120)
        dev.stdin.write("\n")  # stop pushing
        dev.stdin.flush()
        done = json.loads(dev.stdout.readline())
        dev.stdin.close()
        dev.wait(10)
        final = json.loads(summary_out)
        import h5py

        with h5py.File(out, "r") as f:
            g = next(iter(f["streams"].values()))
            d = g["data"]
            head = np.stack([d[k, 0].reshape(-1)[:3] for k in range(d.shape[0])]).astype(np.int64)
            idx = head[:, 0] | (head[:, 1] << 8) | (head[:, 2] << 16)
    s = final["streams"][0]
    # the truth: frames between the first and the last recorded one that are not in the file
    truth = int(idx.max() - idx.min() + 1 - np.unique(idx).size)
    return {
        "frame": f"640x480{'x3' if rgb else ''}",
        "fps": fps,
        "outlet_buffer_s": got["buffer_s"],
        "outage_s": outage_s,
        "recorded": int(idx.size),
        "missing_truth": truth,
        "missing_counted": s["missing"],
        "gaps": s["gaps"],
        "device_peak_rss_mb": round(done["maxrss_mb"], 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--outage", type=float, nargs="+", default=[10.0])
    ap.add_argument("--buffers", type=int, nargs="+", default=[2, 0, 30], help="outlet buffers (s); 0 = the default")
    ap.add_argument("--rgb", action="store_true")
    ap.add_argument("--seconds", type=float, default=20.0, help="recording length (s; at least outage + 8)")
    ap.add_argument("--fps", type=float, default=150.0)
    a = ap.parse_args()
    rows = [run(b or None, o, a.rgb, max(a.seconds, o + 8), a.fps) for o in a.outage for b in a.buffers]
    cols = list(rows[0])
    print(" ".join(f"{c:>18}" for c in cols))
    for r in rows:
        print(" ".join(f"{r[c]!s:>18}" for c in cols))
    res = ROOT / "benchmarks" / "results" / "outage.json"
    res.parent.mkdir(exist_ok=True)
    res.write_text(json.dumps({"machine": os.uname().nodename, "cpus": os.cpu_count(), "rows": rows}, indent=2))
    print(f"wrote {res}")


if __name__ == "__main__":
    main()
