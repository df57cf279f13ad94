"""A two-host recording through a cable outage and a device restart: what is lost, what is counted, how fast back.

The devices host (a Linux network namespace with its own hostname) runs ``mecg simulate`` (virtual
camera at 150 fps 640x480 grey, virtual amplifier and trigger box) with ``mecg stream ecg`` and
``mecg stream trigger`` on them; the recorder host (another namespace and hostname) runs ``mecg
record``; a veth link joins them and each side's LSL config names the other in ``KnownPeers``
(tests/netns.py). During the recording (``--minutes``, default 5; ``--quick``: 1):

- at 30 % of it the link goes down for ``--outage-s`` (3 s) and comes back (a pulled cable);
- at 60 % the ECG driver is killed (SIGKILL) and started again at once (a crashed device program).

Measured:

- **device start to first sample** (``--starts`` times, default 5): ``mecg stream ecg`` spawned ->
  its first sample received by an inlet on the recorder host (an observer process there resolving
  and reading the stream, as a recorder does); and spawned -> the driver says it streams (outlet
  made, device started);
- **reconnect delay** after the restart: the restarted driver says it streams (device started,
  outlet made; its first sample is stamped a little before) -> the timestamp of the first sample
  the recorder got from it (<= 0: it got the driver's first samples); kill -> driver streaming
  again; the recording's gap;
- **missing vs truly missing**: frames, samples and trigger pulses the recording lacks according to
  the simulator (device frame index from the camera's exposure stamps, amplifier sample index by
  matching the recorded values to the amplifier's index-seeded ones, the pulses it fired), against
  what the recorder counted (its ``missing``/gap table, else its gap lengths); **outside the outage
  and the restart** the truth must be zero;
- the frames the simulated camera could not render in time ("skipped at the source", a busy
  machine's doing, not the link's: the frames its driver pushed are logged by an inlet on the
  devices host, so the rest of the missing frames is what the link, LSL and the recorder lost);
- ``mecg sync`` on the file (verdict, mode, uncertainty; ``--no-sync`` skips it), and the
  machine's load average.

Needs root or CAP_NET_ADMIN (network namespaces). Writes a session of about 46 MB/s (deleted after).
Prints a table and writes benchmarks/results/multihost.json (one entry per length, e.g. ``1min``,
``5min``). Measures; asserts nothing.

    sudo python benchmarks/bench_multihost.py [--minutes 5 | --quick] [--outage-s 3] [--fps 150] [--size 640x480]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from netns import (  # tests/netns.py: the two-host lab and the simulator's truth
    DEVICES,
    RECORDER,
    TwoHosts,
    camera_truth,
    chain_lost,
    ecg_stamp_error,
    ecg_truth,
    namespace_problem,
    pulse_truth,
    read_truth,
    wait_for,
)

RESULTS = Path(__file__).resolve().parent / "results" / "multihost.json"
MECG = [sys.executable, "-m", "mecg"]

#: Runs on the recorder host: resolve the stream named argv[1], read it, print when the first sample came.
OBSERVER = r"""
import json, sys, time, pylsl
print("watching", flush=True)
found = pylsl.resolve_byprop("name", sys.argv[1], 1, float(sys.argv[2]))  # returns as soon as it answers
t_found = pylsl.local_clock()
inlet = pylsl.StreamInlet(found[0], max_buflen=10, recover=True)
inlet.open_stream(timeout=5.0)
while True:
    _, ts = inlet.pull_chunk(timeout=0.0)
    if ts:
        print(json.dumps({"found": t_found, "arrival": pylsl.local_clock(), "ts": ts[0]}), flush=True)
        break
    time.sleep(0.002)
"""


def _ready(proc, text: str = "Ctrl-C to stop") -> bool:
    if proc.popen.poll() is not None:
        raise SystemExit(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.text()[-3000:]}")
    return text in proc.text()


def _at(t0: float, offset_s: float) -> None:
    time.sleep(max(0.0, t0 + offset_s - time.monotonic()))


def _counted(stream: dict, t0: float, t1: float) -> int | None:
    """What the recorder counted missing in gaps that began between LSL times t0 and t1 (None: no gap table)."""
    table = stream.get("gap_table")
    if table is None:
        return None
    return int(sum(row[2] for row in table if t0 <= row[0] <= t1))


def _counted_total(stream: dict) -> int:
    """Everything the recorder counted missing (its ``missing``; before it had one: from gap lengths)."""
    if "missing" in stream:
        return int(stream["missing"])
    return round(stream["gap_s"] * stream["nominal_srate_hz"]) - stream["gaps"] + stream["dropped"]


def run(args: argparse.Namespace, folder: Path) -> dict:
    duration = args.minutes * 60.0
    t_outage, t_restart = 0.3 * duration, 0.6 * duration
    life = duration + 900.0  # device programs end by themselves even if this benchmark is killed
    lives = ["--seconds", f"{life:g}"]
    w, h = args.size.split("x")
    load0 = os.getloadavg()
    with TwoHosts(folder / "lab") as lab:
        sim_dir = lab.folder / "sim"
        sim_cmd = [*MECG, "simulate", "--dir", str(sim_dir), "--fps", str(args.fps), "--size", args.size, *lives]
        sim = lab.start(DEVICES, "simulate", sim_cmd)
        wait_for("mecg simulate ready", lambda: _ready(sim), 120)
        # what the device programs push, logged on their own host (the link's losses told from the devices' own)
        pushed = {name: lab.folder / f"pushed-{name}.npy" for name in ("FaceCamera", "ECG")}
        loggers = [lab.log_pushed(DEVICES, "FaceCamera", pushed["FaceCamera"], life)]
        trig = lab.start(DEVICES, "trigger", [*MECG, "stream", "trigger", "--port", str(sim_dir / "trigger"), *lives])
        wait_for("trigger driver ready", lambda: _ready(trig), 60)

        # device start -> first sample seen on the recorder host, args.starts times (the last driver stays)
        ecg_cmd = [*MECG, "stream", "ecg", "--port", str(sim_dir / "amplifier"), *lives]
        if args.ecg_buffer_s is not None:
            ecg_cmd += ["--buffer-s", f"{args.ecg_buffer_s:g}"]
        starts = []
        for i in range(args.starts):
            obs = lab.start(RECORDER, f"observer-{i}", [sys.executable, "-c", OBSERVER, "ECG", "60"])
            wait_for("observer ready", lambda o=obs: _ready(o, "watching"), 60)
            ecg = lab.start(DEVICES, f"ecg-start-{i}", ecg_cmd)
            wait_for("ECG driver ready", lambda e=ecg: _ready(e), 60)
            t_ready = time.monotonic()
            wait_for("observer saw a sample", lambda o=obs: o.popen.poll() is not None, 60)
            seen = json.loads(obs.out.read_text().splitlines()[-1])
            starts.append((t_ready - ecg.started, seen["found"] - ecg.started, seen["arrival"] - ecg.started))
            if i < args.starts - 1:
                lab.stop(ecg)
        a = np.asarray(starts)
        start = {
            "runs": len(starts),
            "spawn_to_streaming_s": a[:, 0].tolist(),
            "spawn_to_found_s": a[:, 1].tolist(),
            "spawn_to_first_sample_at_inlet_s": a[:, 2].tolist(),
            "median_spawn_to_streaming_s": float(np.median(a[:, 0])),
            "median_spawn_to_first_sample_at_inlet_s": float(np.median(a[:, 2])),
            "max_spawn_to_first_sample_at_inlet_s": float(a[:, 2].max()),
        }

        loggers.append(lab.log_pushed(DEVICES, "ECG", pushed["ECG"], life))

        out = folder / "two_hosts.h5"
        rec = lab.start(
            RECORDER,
            "record",
            [*MECG, "record", "--out", str(out), "--duration", f"{duration:g}", "--wait", "20", "--quiet", "--json"]
            + [a for name in ("ECG", "FaceCamera", "TriggerBox") for a in ("--stream", name)],
        )
        wait_for("recording started", lambda: _ready(rec, "recording for"), 60)
        t0 = time.monotonic()
        print(f"recording {duration:g} s; outage at {t_outage:.0f} s, ECG driver restart at {t_restart:.0f} s")
        _at(t0, t_outage)
        lab.link(False)
        t_down = time.monotonic()
        _at(t0, t_outage + args.outage_s)
        lab.link(True)
        t_up = time.monotonic()
        _at(t0, t_restart)
        t_kill = time.monotonic()
        lab.stop(ecg, signal.SIGKILL)
        ecg2 = lab.start(DEVICES, "ecg-restarted", ecg_cmd)
        wait_for("restarted ECG driver ready", lambda: _ready(ecg2), 60)
        t_ready2 = time.monotonic()
        rec.popen.wait(timeout=duration + 120)
        if rec.popen.returncode != 0:
            raise SystemExit(f"mecg record exited with {rec.popen.returncode}:\n{rec.text()[-3000:]}")
        summary = json.loads(rec.out.read_text())
        for logger in loggers:
            lab.stop(logger, timeout_s=60)
        cam_pushed, ecg_pushed = np.load(pushed["FaceCamera"]), np.load(pushed["ECG"])
        lab.stop(sim)
        skipped = [int(x) for x in re.findall(r"skipped (\d+)", sim.text())]
        truth = read_truth(sim_dir / "simulation.json")
        hostnames = dict(lab.hostname)
    load1 = os.getloadavg()

    from mecg.session import open_session

    with open_session(out) as s:
        ecg_s, cam_s, mk_s = s.stream(name="ECG"), s.stream(name="FaceCamera"), s.stream(name="TriggerBox")
        ecg_ts, ecg_v = ecg_s.timestamps, np.asarray(ecg_s.data[:, 0], dtype=np.float64)
        cam_ts, mk_ts = cam_s.timestamps, mk_s.timestamps
        hosts_in_file = sorted({x.info.hostname for x in (ecg_s, cam_s, mk_s)})
        complete = s.complete
    size = out.stat().st_size
    sync = None
    if args.sync:
        t = time.monotonic()
        p = subprocess.run([*MECG, "sync", "--json", str(out)], capture_output=True, text=True, check=False)
        rep = json.loads(p.stdout) if p.stdout.strip().startswith("{") else {}
        keys = ("verdict", "reasons", "mode", "uncertainty_ms", "residual_rms_ms", "frames_aligned")
        sync = {k: rep.get(k) for k in keys}
        sync.update(exit=p.returncode, seconds=time.monotonic() - t)
    out.unlink()
    cam = camera_truth(truth, cam_ts)
    ecg_l = ecg_truth(truth, ecg_v, ecg_ts)
    pulses = pulse_truth(truth, mk_ts, ecg_ts[0] + 0.2, ecg_ts[-1] - 0.2)
    outage_win, restart_win = (t_down - 1.0, t_up + 1.0), (t_kill - 1.0, t_kill + 3.0)
    after = ecg_ts[ecg_ts > t_kill]
    before = ecg_ts[ecg_ts <= t_kill]
    streams = {x["name"]: x for x in summary["streams"]}

    def loss(name: str, truth_loss, window, lost_ts: np.ndarray) -> dict:
        """``lost_ts``: exposure/sample times of what the chain lost (pushed by the device program, not recorded)."""
        st = streams[name]
        inside = (lost_ts >= window[0]) & (lost_ts <= window[1])
        return {
            "recorded": truth_loss.recorded,
            "true_missing": truth_loss.missing,
            "counted_missing": _counted_total(st),
            "chain_lost": int(lost_ts.size),
            "chain_lost_in_window": int(inside.sum()),
            "chain_lost_outside_window": int((~inside).sum()),
            "not_pushed_by_the_device_program": truth_loss.missing - int(lost_ts.size),
            "counted_in_gaps_in_window": _counted(st, *window),
            "runs": [[int(a), int(n)] for a, n, _ in truth_loss.runs],
            "recorder": {k: st.get(k) for k in ("gaps", "gap_s", "dropped", "missing", "gap_table", "restarts")},
        }

    # what the device programs pushed inside the recorded span and the recording lacks: lost on the way. (The
    # ECG logger's inlet finds the restarted driver by liblsl's own recovery, 1-2 s late: at the restart the
    # ECG's chain loss is a lower bound.)
    cam_lost_ts = chain_lost(cam_pushed, cam_ts)
    ecg_lost_ts = chain_lost(ecg_pushed, ecg_ts)
    logger_missed = int(chain_lost(cam_ts, cam_pushed).size)  # recorded but not logged: the log is incomplete
    # the restarted ECG driver's first stamps against the simulator's truth: the recorder counts from them
    err = ecg_stamp_error(truth, ecg_v, ecg_ts)
    i_after = int(np.searchsorted(ecg_ts, t_kill))
    stamp_jump_ms = float(err[i_after] - np.median(err[max(0, i_after - 2000) : i_after])) * 1e3 if after.size else None

    return {
        "config": {
            "minutes": args.minutes,
            "fps": args.fps,
            "size": [int(w), int(h)],
            "outage_s": args.outage_s,
            "outage_at_s": t_outage,
            "restart_at_s": t_restart,
            "ecg_buffer_s": args.ecg_buffer_s,
        },
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_avg_start": load0,
            "load_avg_end": load1,
        },
        "hosts": {"devices": hostnames[DEVICES], "recorder": hostnames[RECORDER], "in_file": hosts_in_file},
        "complete": complete,
        "file_mb": size / 1e6,
        "device_start": start,
        "restart": {
            "spawn_to_streaming_s": t_ready2 - t_kill,
            "reconnect_delay_s": float(after[0] - t_ready2) if after.size else None,
            "gap_s": float(after[0] - before[-1]) if after.size and before.size else None,
            "first_stamps_late_by_ms": stamp_jump_ms,
        },
        "outage": {"down_s": t_up - t_down},
        "camera": {**loss("FaceCamera", cam, outage_win, cam_lost_ts), "pushed_log_incomplete_by": logger_missed},
        "ecg": loss("ECG", ecg_l, restart_win, ecg_lost_ts),
        "sync": sync,
        "pulses": {"fired": pulses.recorded + pulses.missing, "missing": pulses.missing},
        "camera_skipped_by_simulator_whole_run": skipped[-1] if skipped else None,
    }


def table(r: dict) -> str:
    c, e = r["camera"], r["ecg"]
    st, rs = r["device_start"], r["restart"]
    rows = [
        ("frames recorded", f"{c['recorded']}"),
        ("frames missing: true / counted by the recorder", f"{c['true_missing']} / {c['counted_missing']}"),
        ("  skipped at the source (simulator could not render)", f"{c['not_pushed_by_the_device_program']}"),
        ("  lost by link + LSL + recorder", f"{c['chain_lost']}"),
        ("    in the outage / outside it", f"{c['chain_lost_in_window']} / {c['chain_lost_outside_window']}"),
        ("ECG samples recorded", f"{e['recorded']}"),
        ("ECG missing: true / counted by the recorder", f"{e['true_missing']} / {e['counted_missing']}"),
        ("  not pushed (driver down) / lost on the way at the restart / elsewhere",
         f"{e['not_pushed_by_the_device_program']} / {e['chain_lost_in_window']} / {e['chain_lost_outside_window']}"),
        ("trigger pulses fired / missing", f"{r['pulses']['fired']} / {r['pulses']['missing']}"),
        (f"ECG driver spawn -> streaming (median of {st['runs']})", f"{st['median_spawn_to_streaming_s']:.2f} s"),
        ("ECG driver spawn -> first sample at an inlet on the other host (median, max)",
         f"{st['median_spawn_to_first_sample_at_inlet_s']:.2f} s, {st['max_spawn_to_first_sample_at_inlet_s']:.2f} s"),
        ("restart: kill -> restarted driver streaming", f"{rs['spawn_to_streaming_s']:.2f} s"),
        ("restart: driver streaming -> first sample recorded (<= 0: from its first)",
         f"{rs['reconnect_delay_s']:.2f} s"),
        ("restart: gap in the recording", f"{rs['gap_s']:.2f} s"),
        ("restart: the new driver's first stamps late by (count high by as much)",
         f"{rs['first_stamps_late_by_ms']:.1f} ms"),
        ("mecg sync: verdict, mode, uncertainty",
         "skipped" if r["sync"] is None else
         f"{r['sync']['verdict']}, {r['sync']['mode']}, {r['sync']['uncertainty_ms']} ms"),
        ("hosts in the file", ", ".join(r["hosts"]["in_file"])),
        ("load average start / end",
         f"{r['machine']['load_avg_start'][0]:.1f} / {r['machine']['load_avg_end'][0]:.1f}"),
    ]  # fmt: skip
    wl = max(len(a) for a, _ in rows)
    head = (
        f"two hosts, {r['config']['minutes']:g} min, {r['config']['fps']:g} fps "
        f"{r['config']['size'][0]}x{r['config']['size'][1]} + ECG + trigger; "
        f"{r['config']['outage_s']:g} s outage, one ECG driver restart"
    )
    return "\n".join([head, *(f"  {a:<{wl}}  {b}" for a, b in rows)])


def markdown(runs: dict) -> str:
    """The docs' table (docs/recording.md, "Several computers") of the stored runs, one column per run."""
    keys = sorted(runs, key=lambda k: float(k[:-3]))

    def cells(f) -> str:
        return " | ".join(f(runs[k]) for k in keys)

    def sync(r: dict) -> str:
        s = r["sync"]
        return "not run" if s is None else f"{s['verdict']}, {s['mode']}, {s['uncertainty_ms']:.2f} ms"

    head = " | ".join(
        f"{runs[k]['config']['minutes']:g} min, load {runs[k]['machine']['load_avg_start'][0]:.0f} / "
        f"{runs[k]['machine']['load_avg_end'][0]:.0f} (start / end)"
        for k in keys
    )
    rows = [
        ("frames recorded; missing: true (simulator) / counted by the recorder",
         lambda r: f"{r['camera']['recorded']}; {r['camera']['true_missing']} / {r['camera']['counted_missing']}"),
        ("of these, skipped at the source (the simulator could not render them in time)",
         lambda r: f"{r['camera']['not_pushed_by_the_device_program']}"),
        ("frames lost on the way (link, LSL, recorder): in the outage / elsewhere",
         lambda r: f"{r['camera']['chain_lost_in_window']} / {r['camera']['chain_lost_outside_window']}"),
        ("ECG samples recorded; missing: true / counted",
         lambda r: f"{r['ecg']['recorded']}; {r['ecg']['true_missing']} / {r['ecg']['counted_missing']}"),
        ("ECG samples lost on the way outside the restart", lambda r: f"{r['ecg']['chain_lost_outside_window']}"),
        ("trigger pulses fired / missing", lambda r: f"{r['pulses']['fired']} / {r['pulses']['missing']}"),
        ("`mecg stream ecg` spawned -> streaming (median); -> first sample at an inlet on the other host "
         "(median, max)",
         lambda r: f"{r['device_start']['median_spawn_to_streaming_s']:.2f} s; "
         f"{r['device_start']['median_spawn_to_first_sample_at_inlet_s']:.2f} s, "
         f"{r['device_start']['max_spawn_to_first_sample_at_inlet_s']:.2f} s"),
        ("restart: driver killed -> new one streaming; gap in the recording",
         lambda r: f"{r['restart']['spawn_to_streaming_s']:.2f} s; {r['restart']['gap_s']:.2f} s"),
        ("restart: new driver streaming -> its first sample recorded (<= 0: from its first)",
         lambda r: f"{r['restart']['reconnect_delay_s']:.2f} s"),
        ("restart: the new driver's first stamps late by",
         lambda r: f"{r['restart']['first_stamps_late_by_ms']:.1f} ms"),
        ("`mecg sync`: verdict, mode, uncertainty", sync),
    ]  # fmt: skip
    lines = [
        f"| 150 fps 640x480 grey + 1000 Hz ECG + trigger; 3 s outage; ECG driver killed and restarted | {head} |",
        "|---|" + "---|" * len(keys),
    ]
    lines += [f"| {label} | {cells(f)} |" for label, f in rows]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=5.0, help="recording length (default 5)")
    ap.add_argument("--quick", action="store_true", help="1 minute")
    ap.add_argument("--outage-s", type=float, default=3.0, help="link outage in s (default 3)")
    ap.add_argument("--fps", type=float, default=150.0, help="camera frame rate (default 150)")
    ap.add_argument("--size", default="640x480", help="frame size WxH (default 640x480)")
    ap.add_argument(
        "--ecg-buffer-s", type=float, default=None, help="the ECG driver's outlet buffer, s (default: the driver's)"
    )
    ap.add_argument("--starts", type=int, default=5, help="ECG driver starts timed before the recording (default 5)")
    ap.add_argument("--no-sync", dest="sync", action="store_false", help="do not run mecg sync on the file")
    ap.add_argument("--json", type=Path, default=RESULTS, help=f"results file (default {RESULTS})")
    ap.add_argument("--markdown", action="store_true", help="only print the docs' table of the stored results")
    args = ap.parse_args()
    if args.markdown:
        print(markdown(json.loads(args.json.read_text())))
        return 0
    if args.quick:
        args.minutes = 1.0
    problem = namespace_problem()
    if problem:
        print(f"bench_multihost needs network namespaces: {problem}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="mecg-multihost-") as tmp:
        r = run(args, Path(tmp))
    print(table(r))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    runs = json.loads(args.json.read_text()) if args.json.exists() else {}
    runs = runs if isinstance(runs, dict) and all(k.endswith("min") for k in runs) else {}
    runs[f"{args.minutes:g}min"] = r  # one entry per length: the quick and the full run side by side
    args.json.write_text(json.dumps(runs, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
