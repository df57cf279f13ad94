"""Start-up time of the light ``mecg`` commands, and which heavy libraries they import.

Goal (issue #18): ``mecg --help`` <= 0.3 s and ``mecg stream ecg --help`` <= 0.5 s, and the light
commands (``--help``, ``info``, ``stream``, ``record``) import neither torch nor SciPy nor OpenCV.

Each command runs ``--runs`` times (default 5) as a fresh process through the installed console
script (``mecg``, ``mecg-record``), and the wall time of each run is measured from spawn to exit.
``mecg info`` runs on a small session written here (30 video frames, 2 s of ECG, markers). Each
command also runs once under ``python -X importtime`` to list which of torch, scipy and cv2 it
imported and how long its imports took in all. Last, "stream ecg: first sample": seconds from
spawning ``mecg stream ecg`` on a ``mecg simulate`` amplifier to its first sample arriving in an
inlet here (an upper bound on the goal "a device process publishes its first sample within 1 s").
Prints a table (median, min, max of the wall times) and writes benchmarks/results/cli_start.json,
one entry per ``--label`` (a rerun replaces its label's entry and keeps the others).

    python benchmarks/bench_cli_start.py [--runs N] [--label LABEL] [--no-device]

The "before" entry was measured on the tree before the lazy CLI (commit 6e22679), exported with
``git archive`` and put first on the path: run from outside the repository with
``PYTHONPATH=/tmp/before python benchmarks/bench_cli_start.py --label before``.
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
from pathlib import Path

import numpy as np

HEAVY = ("torch", "scipy", "cv2")
RESULTS = Path(__file__).resolve().parent / "results" / "cli_start.json"
BIN = Path(sys.executable).parent


def write_session(path: Path) -> Path:
    """A small closed session: 30 frames at 150 Hz, 2 s of 2-channel ECG at 500 Hz, two markers."""
    from mecg.session import SessionWriter, StreamInfo

    rng = np.random.default_rng(5)
    w = SessionWriter(path, subject_id="P-7", notes="bench")
    cam = w.add_stream(StreamInfo("cam", "Video", kind="video", nominal_srate_hz=150.0, frame_shape=(24, 32)))
    ecg = w.add_stream(
        StreamInfo("ecg", "ECG", nominal_srate_hz=500.0, channel_labels=["I", "II"], channel_units=["mV", "mV"])
    )
    mk = w.add_stream(StreamInfo("mk", "Markers", kind="markers"))
    w.append(cam, rng.integers(0, 256, (30, 24, 32), dtype=np.uint8), 10.0 + np.arange(30) / 150)
    w.append(ecg, rng.normal(0, 1, (1000, 2)), 10.0 + np.arange(1000) / 500)
    w.append(mk, ["start", "stop"], [10.0, 11.9])
    w.close()
    return path


def wall_times(cmd: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        times.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} exited with {proc.returncode}")
    return times


def command_code(entry: str, args: list[str]) -> str:
    """``python -c`` code that runs ``entry(args)`` (``module:function``) and exits with its code."""
    module, func = entry.split(":")
    return f"import sys; from {module} import {func}; sys.exit({func}({args!r}))"


def heavy_imports(code: str) -> tuple[list[str], float]:
    """Which of HEAVY ``code`` imports, and its total import time in seconds (``-X importtime``)."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, check=False)
    found: set[str] = set()
    total_us = 0
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        parts = line.split("|")
        name = parts[-1].strip()
        if name.split(".")[0] in HEAVY:
            found.add(name.split(".")[0])
        if not parts[-1].startswith("  ") and parts[1].strip().isdigit():  # top-level imports only
            total_us += int(parts[1])
    return sorted(found), total_us / 1e6


def first_sample_times(runs: int) -> list[float]:
    """Seconds from spawning ``mecg stream ecg`` (on a ``mecg simulate`` amplifier) to its first sample in an inlet.

    The inlet here resolves the outlet and pulls from it, so the figure is an upper bound on when the
    device process published its first sample (LSL resolution adds up to a few hundred ms).
    """
    from mecg.acquire.lsl_config import LOCAL_CONFIG, use_config

    use_config(LOCAL_CONFIG)  # localhost only, inherited by the processes started here
    import pylsl

    times = []
    with tempfile.TemporaryDirectory() as tmp:
        sim = subprocess.Popen(
            [str(BIN / "mecg"), "simulate", "--seconds", "600", "--no-camera", "--dir", tmp, "--seed", "1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            lines: list[str] = []
            while not any("Ctrl-C" in x for x in lines):
                line = sim.stdout.readline()
                if not line:
                    raise SystemExit("mecg simulate stopped before its devices were ready")
                lines.append(line)
            amp = next(x.split() for x in lines if x.strip().startswith("mecg stream ecg"))
            for i in range(runs):
                sid = f"bench-cli-start-{os.getpid()}-{i}"
                t0 = time.perf_counter()
                proc = subprocess.Popen(
                    [str(BIN / "mecg"), *amp[1:], "--seconds", "4", "--source-id", sid],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                found = pylsl.resolve_byprop("source_id", sid, timeout=30.0)
                if not found:
                    raise SystemExit("mecg stream ecg published no outlet within 30 s")
                inlet = pylsl.StreamInlet(found[0])
                inlet.open_stream(timeout=10.0)
                sample, _ = inlet.pull_sample(timeout=10.0)
                times.append(time.perf_counter() - t0)
                if sample is None:
                    raise SystemExit("mecg stream ecg published no sample within 10 s of its outlet")
                inlet.close_stream()
                proc.wait(timeout=30)
        finally:
            sim.terminate()
            sim.wait(timeout=30)
    return times


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="runs per command (default 5)")
    ap.add_argument("--no-device", action="store_true", help="skip the first-sample time of mecg stream ecg")
    ap.add_argument("--label", default="", help="a label stored with the results (e.g. 'before', 'after')")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        session = str(write_session(Path(tmp) / "s.h5"))
        commands = [
            ("mecg --help", "mecg.cli.main:main", ["--help"]),
            ("mecg stream ecg --help", "mecg.cli.main:main", ["stream", "ecg", "--help"]),
            ("mecg info --help", "mecg.cli.main:main", ["info", "--help"]),
            ("mecg record --help", "mecg.cli.main:main", ["record", "--help"]),
            ("mecg-record --help", "mecg.cli.record:main", ["--help"]),
            ("mecg info SESSION", "mecg.cli.main:main", ["info", session]),
            ("mecg validate SESSION", "mecg.cli.main:main", ["validate", session]),
        ]
        rows = []
        baseline = wall_times([sys.executable, "-c", "pass"], args.runs)
        rows.append({"command": "python -c pass", "times_s": baseline, "heavy": [], "import_s": 0.0})
        for label, entry, cmd_args in commands:
            script = "mecg-record" if entry.startswith("mecg.cli.record") else "mecg"
            times = wall_times([str(BIN / script), *cmd_args], args.runs)
            heavy, import_s = heavy_imports(command_code(entry, cmd_args))
            rows.append({"command": label, "times_s": times, "heavy": heavy, "import_s": import_s})

    if not args.no_device:
        rows.append(
            {
                "command": "stream ecg: first sample",
                "times_s": first_sample_times(args.runs),
                "heavy": heavy_imports("import mecg.cli.stream, mecg.acquire.ecg_driver")[0],
                "import_s": 0.0,
            }
        )

    print(f"{'command':<26} {'median s':>9} {'min s':>7} {'max s':>7} {'imports s':>10}  heavy modules")
    for r in rows:
        t = r["times_s"]
        r["median_s"] = statistics.median(t)
        heavy = ", ".join(r["heavy"]) or "-"
        print(f"{r['command']:<26} {r['median_s']:9.3f} {min(t):7.3f} {max(t):7.3f} {r['import_s']:10.3f}  {heavy}")

    result = {
        "label": args.label,
        "runs": args.runs,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_avg": os.getloadavg(),
        "commands": rows,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    old = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    runs = {k: v for k, v in old.items() if isinstance(v, dict)} if "commands" not in old else {}
    runs[args.label or "latest"] = result
    RESULTS.write_text(json.dumps(runs, indent=2) + "\n")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
