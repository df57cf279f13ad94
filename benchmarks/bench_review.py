"""Review window: time to the first frame on long sessions (150 fps 640x480 grey + ECG 1000 Hz).

Goal: ``mecg review`` shows the first frame of a 10-minute 150 fps 640x480 session within 2 s.

For each duration a session is written once (one second of a synthetic participant's 640x480
frames rendered by mecg.synth and appended over and over, the ECG of the whole duration, through
:class:`SessionWriter`, so frames are stored as a recording stores them), then opened in the
review window offscreen. Measured: seconds from constructing the window to the first frame on
screen (``show`` and one pass of the event loop; the tracks are still being computed in their
worker threads), the frames read to get there, and the time until every track is ready
(``--tracks``: the front end over the whole video, slow). Prints a table and writes
benchmarks/results/review.json.

    python benchmarks/bench_review.py [--minutes 0.5 2 10] [--quick] [--dir DIR] [--tracks]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np

from mecg.session import SessionWriter, StreamInfo
from mecg.synth import Subject, Trial, TrialConfig
from mecg.synth.participant import ECG_CHANNELS, ECG_UNITS

RESULTS = Path(__file__).parent / "results"
FPS = 150.0
ECG_HZ = 1000.0
SHAPE = (480, 640)


def write_session(path: Path, minutes: float) -> dict:
    """A session of ``minutes`` of 150 fps 640x480 grey video and 1000 Hz ECG; returns its size and write time."""
    cfg = TrialConfig(duration_s=1.2, fps=FPS, width=SHAPE[1], height=SHAPE[0])
    trial = Trial(Subject.random("S01", 1), 0, cfg)
    second = trial.frames(0, int(FPS))  # one second of frames, appended again and again
    n = int(minutes * 60 * FPS)
    t0 = time.perf_counter()
    with SessionWriter(path, "bench", "bench_review", overwrite=True) as w:
        cam = w.add_stream(
            StreamInfo(
                name="FaceCamera",
                type="Video",
                kind="video",
                nominal_srate_hz=FPS,
                frame_shape=SHAPE,
                source_id="bench-camera",
            )
        )
        ecg = w.add_stream(
            StreamInfo(
                name="ECG",
                type="ECG",
                nominal_srate_hz=ECG_HZ,
                channel_format="float32",
                channel_labels=list(ECG_CHANNELS),
                channel_units=list(ECG_UNITS),
                channel_types=list(ECG_CHANNELS),
                source_id="bench-ecg",
            )
        )
        for a in range(0, n, 30):
            b = min(a + 30, n)
            idx = np.arange(a, b) % second.shape[0]
            w.append(cam, second[idx], np.arange(a, b) / FPS)
        total = int(minutes * 60 * ECG_HZ)
        rng = np.random.default_rng(0)
        for a in range(0, total, int(ECG_HZ)):
            b = min(a + int(ECG_HZ), total)
            t = np.arange(a, b) / ECG_HZ
            x = np.zeros((b - a, 3), np.float32)
            x[:, 0] = (np.mod(t, 0.8) < 0.02) + 0.02 * rng.standard_normal(b - a)
            w.append(ecg, x, t)
    return {"frames": n, "write_s": round(time.perf_counter() - t0, 1), "file_gb": round(path.stat().st_size / 1e9, 2)}


def first_frame(path: Path, tracks: bool) -> dict:
    """Open the review window on ``path``: seconds to frame 0 on screen, frames read, and (optionally) to all tracks."""
    from PySide6.QtWidgets import QApplication

    from mecg.app.main import dispose, quiet_qt_messages
    from mecg.app.review_window import ReviewWindow

    app = QApplication.instance() or QApplication([])
    quiet_qt_messages()
    t0 = time.perf_counter()
    win = ReviewWindow(path, "bench", motion=tracks, interactive=False)
    win.show()
    app.processEvents()
    shown = time.perf_counter() - t0
    out = {"first_frame_s": round(shown, 3), "frames_read": win.reader.reads, "shown_frame": win.frame}
    if tracks:
        while not win.idle:
            app.processEvents()
            time.sleep(0.05)
        out["tracks_s"] = round(time.perf_counter() - t0, 1)
        out["track_errors"] = win.errors
    win.close_without_asking()
    dispose(win)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, nargs="+", default=[0.5, 2.0, 10.0], help="session lengths (min)")
    ap.add_argument("--quick", action="store_true", help="0.1 and 0.5 minutes only")
    ap.add_argument("--tracks", action="store_true", help="also time the tracks (the front end over the video)")
    ap.add_argument("--dir", default=None, help="folder for the session files (default: a temporary folder)")
    ap.add_argument("--out", default=str(RESULTS / "review.json"), help="JSON output path")
    args = ap.parse_args()
    minutes = [0.1, 0.5] if args.quick else args.minutes
    rows = []
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for m in minutes:
            path = Path(tmp) / f"review_{m:g}min.h5"
            made = write_session(path, m)
            row = {"minutes": m, **made, **first_frame(path, args.tracks)}
            rows.append(row)
            print(
                f"{m:6.1f} min {row['frames']:6d} frames {row['file_gb']:6.2f} GB  written in {row['write_s']:6.1f} s "
                f" first frame {row['first_frame_s']:.3f} s ({row['frames_read']} frame read)"
                + (f"  tracks {row['tracks_s']} s" if "tracks_s" in row else ""),
                flush=True,
            )
            path.unlink()
    print()
    print("| session | frames | file | first frame on screen | frames read |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['minutes']:g} min 150 fps 640x480 | {r['frames']} | {r['file_gb']} GB | "
            f"{r['first_frame_s']:.3f} s | {r['frames_read']} |"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": "bench_review",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "goal": "first frame of a 10-minute 150 fps 640x480 session within 2 s",
        "results": rows,
    }
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
