"""Lab app: CPU of the live view while recording 150 fps 640x480 + ECG 1000 Hz + trigger box, and what is lost.

The devices run in a child process (``bench_record.Lab``: virtual amplifier and trigger box on
ptys with the real drivers, a camera replaying pre-rendered 640x480 grey frames at exactly
``--fps``, every pushed timestamp logged), as real devices would: their CPU is not the app's.
This process records them twice, for ``--seconds`` each:

1. **headless**: the recorder engine alone (what ``mecg record`` runs);
2. **app**: the lab app's window (offscreen), recording the same streams through its Record
   action, with the live view (camera image, ECG with R-peaks, triggers) and the health table
   running at their normal rates (``--live-hz``, default 20 Hz).

Reported per phase: CPU of this process (% of one core), CPU of the UI thread (Qt's event loop:
the live view, the status table and the painting; app phase only), the live view's own refresh
time (ms per refresh), and per stream pushed / recorded / lost (pushed inside the recorded span
but not in the file, as bench_record.py counts), plus frames the camera could not deliver in time.
Prints a table and writes benchmarks/results/bench_app.json. Measures; asserts nothing.

    QT_QPA_PLATFORM=offscreen python benchmarks/bench_app.py [--seconds 30] [--fps 150] [--quick]
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
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("LSLAPICFG", str(Path(__file__).resolve().parents[1] / "mecg" / "acquire" / "lsl_local.cfg"))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np

RESULTS = Path(__file__).parent / "results"
KEYS = ("ECG", "FaceCamera", "TriggerBox")


# -- the devices, in a child process ----------------------------------------------------------------
def lab_child(out: str, fps: float) -> None:
    """Run the devices until 'stop' on stdin; then save every pushed timestamp to ``out`` (npz)."""
    from bench_record import SIZE, Lab

    from mecg.synth import Subject, Trial, TrialConfig

    trial = Trial(Subject.random("S01", 1), 0, TrialConfig(duration_s=2.0, fps=150.0, width=SIZE[0], height=SIZE[1]))
    bank = np.stack([trial.frame(i) for i in range(0, 48, 2)])
    lab = Lab(fps, bank)
    print(json.dumps({"source_ids": lab.source_ids}), flush=True)
    sys.stdin.readline()
    skipped = lab.skipped
    lab.close()
    np.savez(out, skipped=skipped, **{k: np.asarray(v.ts) for k, v in lab.logs.items()})


class Devices:
    """The child process running the devices."""

    def __init__(self, fps: float, folder: Path) -> None:
        self.npz = folder / "pushed.npz"
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--lab-child", str(self.npz), "--fps", str(fps)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.source_ids: list[str] = json.loads(self.proc.stdout.readline())["source_ids"]

    def stop(self) -> tuple[dict, int]:
        """Stop the devices; (pushed timestamps by stream, frames skipped at the camera)."""
        self.proc.stdin.write("stop\n")
        self.proc.stdin.flush()
        self.proc.wait(timeout=60)
        d = np.load(self.npz)
        return {k: SimpleNamespace(ts=d[k]) for k in KEYS}, int(d["skipped"])


def losses(logs: dict, path: Path) -> dict:
    """Per stream: pushed inside the recorded span, recorded, lost (bench_record.py's count)."""
    from bench_record import losses as count

    return count(SimpleNamespace(logs=logs), path)


# -- the two phases -----------------------------------------------------------------------------
def headless(source_ids: list[str], path: Path, seconds: float) -> dict:
    """The recorder engine alone."""
    from mecg.acquire.recorder import Recorder, RecorderConfig
    from mecg.acquire.stream_metadata import StreamQuery

    rec = Recorder(
        RecorderConfig(
            path=path,
            queries=(),
            required=tuple(StreamQuery(source_ids=(s,)) for s in source_ids),
            wait_s=15.0,
            min_free_mb=1000.0,
        )
    )
    rec.start()
    c0, t0 = time.process_time(), time.monotonic()
    time.sleep(seconds)
    cpu, wall = time.process_time() - c0, time.monotonic() - t0
    final = rec.stop()
    return {"process_cpu_pct": 100 * cpu / wall, "wall_s": wall, "complete": final.complete, "status": final}


def with_app(source_ids: list[str], folder: Path, seconds: float, live_hz: float) -> tuple[dict, Path]:
    """The app's window records the same streams through its Record action, live view running."""
    from PySide6.QtWidgets import QApplication

    from mecg.app.lab import find_streams
    from mecg.app.main import dispose, quiet_qt_messages
    from mecg.app.main_window import MainWindow
    from mecg.app.settings import AppSettings

    app = QApplication.instance() or QApplication([])
    quiet_qt_messages()
    win = MainWindow(AppSettings(folder / "settings.ini"), live_hz=live_hz, interactive=False)
    win.recording_panel.out_dir.setText(str(folder))
    win.recording_panel.subject.setText("bench")
    win.lab.min_free_mb = 1000.0
    win.check_file = lambda path: None  # the check after stopping reads the whole file: not part of this
    win.show()

    def pump(pred, timeout_s: float) -> bool:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end and not pred():
            app.processEvents()
            time.sleep(0.005)
        return pred()

    found = [s for s in find_streams(2.0) if s.source_id in source_ids]
    win.streams.set_devices([], set(source_ids))  # tick exactly the benchmark's streams
    win.streams.set_streams(found)
    win.watch_selection()
    assert pump(lambda: win.lab.engine is not None and not win.busy, 30), win.errors
    win.start_action.trigger()
    assert pump(lambda: win.lab.recording and not win.busy, 30), win.errors
    path = win.lab.last_path
    live0, n0 = win.live.cpu_s, win.live.refreshes
    c0, u0, t0 = time.process_time(), time.thread_time(), time.monotonic()
    end = t0 + seconds
    while time.monotonic() < end:  # the Qt event loop, as app.exec() would run it
        app.processEvents()
        time.sleep(0.002)
    cpu, ui, wall = time.process_time() - c0, time.thread_time() - u0, time.monotonic() - t0
    live, n = win.live.cpu_s - live0, win.live.refreshes - n0
    red = dict(win.recording_panel.levels)
    win.stop_action.trigger()
    pump(lambda: not win.busy and win.lab.engine is not None and win.lab.engine.monitoring, 60)
    win.close_without_asking()
    pump(lambda: not win.isVisible(), 30)
    dispose(win)
    return {
        "process_cpu_pct": 100 * cpu / wall,
        "ui_thread_cpu_pct": 100 * ui / wall,
        "live_view_cpu_pct": 100 * live / wall,
        "live_view_ms_per_refresh": 1e3 * live / max(n, 1),
        "live_refreshes_per_s": n / wall,
        "health_at_end": red,
        "wall_s": wall,
    }, path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30.0, help="recording length of each phase (default 30)")
    ap.add_argument("--fps", type=float, default=150.0, help="camera rate (default 150)")
    ap.add_argument("--live-hz", type=float, default=20.0, help="live view refreshes a second (default 20)")
    ap.add_argument("--quick", action="store_true", help="10 s per phase")
    ap.add_argument("--results", default="bench_app.json", help="file name under benchmarks/results")
    ap.add_argument("--lab-child", metavar="NPZ", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.lab_child:
        lab_child(args.lab_child, args.fps)
        return
    seconds = 10.0 if args.quick else args.seconds
    folder = Path(tempfile.mkdtemp(prefix="mecg-bench-app-"))
    load = os.getloadavg()
    print(f"devices in a child process: {args.fps:g} fps 640x480 grey (pre-rendered) + ECG 1000 Hz + trigger box")
    dev = Devices(args.fps, folder)
    time.sleep(1.0)
    try:
        print(f"phase 1: recorder engine alone, {seconds:g} s ...", flush=True)
        h = headless(dev.source_ids, folder / "headless.h5", seconds)
        print(f"phase 2: the app recording with its live view at {args.live_hz:g} Hz, {seconds:g} s ...", flush=True)
        a, app_path = with_app(dev.source_ids, folder, seconds, args.live_hz)
    finally:
        logs, skipped = dev.stop()
    phases = {"headless": (h, folder / "headless.h5"), "app": (a, app_path)}
    rows = {}
    for name, (m, path) in phases.items():
        loss = losses(logs, path)
        rows[name] = {
            **{k: v for k, v in m.items() if k != "status"},
            "streams": loss,
            "lost_total": sum(v["lost"] for v in loss.values()),
            "file_mb": round(path.stat().st_size / 1e6, 1),
        }
    result = {
        "benchmark": "app",
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "fps": args.fps,
        "size": [640, 480],
        "seconds_per_phase": seconds,
        "live_hz": args.live_hz,
        "skipped_at_camera_both_phases": skipped,
        "load_average_at_start": [round(x, 2) for x in load],
        "phases": rows,
    }
    print(
        f"\n{args.fps:g} fps 640x480 grey + ECG 1000 Hz + trigger box, {seconds:g} s per phase "
        f"(load average at start {load[0]:.1f}, {os.cpu_count()} CPUs)"
    )
    print(
        f"{'phase':<9} {'proc CPU %':>10} {'UI thread %':>11} {'live view %':>11} {'ms/refresh':>10} "
        f"{'ECG lost':>12} {'frames lost':>14} {'markers lost':>12}"
    )
    for name, r in rows.items():
        s = r["streams"]

        def cell(k: str, s: dict = s) -> str:
            return f"{s[k]['lost']}/{s[k]['pushed']}"

        ui = f"{r['ui_thread_cpu_pct']:.1f}" if "ui_thread_cpu_pct" in r else "-"
        lv = f"{r['live_view_cpu_pct']:.1f}" if "live_view_cpu_pct" in r else "-"
        ms = f"{r['live_view_ms_per_refresh']:.2f}" if "live_view_ms_per_refresh" in r else "-"
        print(
            f"{name:<9} {r['process_cpu_pct']:>10.1f} {ui:>11} {lv:>11} {ms:>10} {cell('ECG'):>12} "
            f"{cell('FaceCamera'):>14} {cell('TriggerBox'):>12}"
        )
    print(f"frames the camera could not deliver in time (both phases): {skipped}")
    if "health_at_end" in rows["app"]:
        print(f"app health at the end: {rows['app']['health_at_end']}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / args.results).write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(f"wrote {RESULTS / args.results}")
    for p in folder.glob("*.h5"):
        p.unlink()


if __name__ == "__main__":
    main()
