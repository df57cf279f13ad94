"""``mecg simulate``: virtual devices playing a synthetic participant, for the real drivers to open.

The amplifier and the trigger box appear as serial ports (pseudo-terminals behind stable links,
printed with the command that streams each); the camera is streamed to LSL from this process,
since a virtual camera cannot be a /dev/video device. All three share the participant, one
timeline and the trigger line, so pulses show on TRIG and in the LED, exposures on STROBE.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from mecg.cli.argtypes import DRIFT_PPM, FPS, LATENCY_MS, SECONDS, bounded, parse_size
from mecg.cli.stream import add_buffer_options, add_lsl_options, apply_lsl_options, live
from mecg.errors import MecgError


def _claim(folder: Path) -> Path:
    """Take ``folder`` for this run; refuse if another live ``mecg simulate`` holds it."""
    folder.mkdir(parents=True, exist_ok=True)
    pid_file = folder / "simulate.pid"
    try:
        other = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        other = None
    if other and other != os.getpid():
        try:
            os.kill(other, 0)
        except ProcessLookupError:
            pass  # a stale file from a run that was killed
        except PermissionError:
            raise MecgError(f"another user's mecg simulate (pid {other}) uses {folder}; pass --dir") from None
        else:
            raise MecgError(f"another mecg simulate (pid {other}) uses {folder}; stop it or pass --dir FOLDER")
    pid_file.write_text(f"{os.getpid()}\n")
    return pid_file


def _simulate(args: argparse.Namespace) -> int:
    cfg_name = apply_lsl_options(args)
    from mecg.acquire.simulation import Simulation, SimulationConfig, default_link_dir

    w, h = args.size
    folder = Path(args.dir) if args.dir else default_link_dir()
    pid_file = _claim(folder)
    cfg = SimulationConfig(
        seed=args.seed,
        duration_s=args.duration,
        fps=args.fps,
        width=w,
        height=h,
        color=args.color,
        protocol=args.protocol,
        rate_hz=args.rate,
        trigger_box=not args.no_trigger_box,
        trigger_autostart=args.trigger_autostart,
        camera=not args.no_camera,
        amp_drift_ppm=args.drift_ppm,
        amp_latency_s=args.latency_ms / 1000.0,
        amp_jitter_s=args.jitter_ms / 1000.0,
        camera_latency_s=None if args.camera_latency_ms is None else args.camera_latency_ms / 1000.0,
        camera_jitter_s=None if args.camera_jitter_ms is None else args.camera_jitter_ms / 1000.0,
        link_dir=str(folder),
    )
    try:
        sim = Simulation(cfg)
    except ValueError as exc:
        pid_file.unlink(missing_ok=True)
        raise MecgError(str(exc)) from None
    cam_drv = None
    try:
        sim.start()
        out = sys.stdout
        amp = sim.amplifier
        proto = f" --protocol {args.protocol}" if args.protocol != "mecg" else ""
        print(
            f"virtual amplifier ({args.protocol} protocol, {sim.amplifier_rate_hz:g} Hz, "
            f"subject {sim.trial.subject.subject_id}):"
            f" {amp.path}\n    mecg stream ecg --port {amp.path}{proto}",
            file=out,
        )
        if sim.trigger_box is not None:
            auto = " (running its own schedule)" if args.trigger_autostart else ""
            print(
                f"virtual trigger box{auto}: {sim.trigger_box.path}\n"
                f"    mecg stream trigger --port {sim.trigger_box.path}",
                file=out,
            )
        if sim.camera is not None:
            from mecg.acquire.camera_driver import CameraConfig, CameraDriver

            cam_cfg = CameraConfig(
                camera="virtual", name=args.camera_name, max_buffered_s=args.buffer_s, buffer_max_mb=args.buffer_max_mb
            )
            cam_drv = CameraDriver(cam_cfg, source=sim.camera)
            cam_drv.start()
            print(
                f"virtual camera: streaming to LSL as '{args.camera_name}' "
                f"(type VideoRaw, source_id {cam_drv.source_id}), "
                f"{args.fps:g} fps {w}x{h} {'RGB' if args.color else 'grey'}",
                file=out,
            )
        truth = sim.write_truth()
        print(f"ground truth of this run: {truth}   (LSL config: {cfg_name})", file=out)
        print("Ctrl-C to stop", file=out, flush=True)

        def status() -> str:
            parts = [f"t={sim.timeline.now():7.1f} s", f"amplifier {amp.samples_sent} samples sent"]
            if sim.trigger_box is not None:
                parts.append(f"trigger box {len(sim.trigger_box.pulses_fired)} pulses")
            if cam_drv is not None:
                parts.append(f"camera {cam_drv.frames} frames (skipped {sim.camera.frames_skipped})")
            return " | ".join(parts)

        t_truth = time.monotonic()

        def tick() -> bool:
            nonlocal t_truth
            if time.monotonic() - t_truth > 5.0:  # keep the pulse list of simulation.json current
                sim.write_truth()
                t_truth = time.monotonic()
            return False

        live(status, seconds=args.seconds, done=tick)
        sim.write_truth()
    finally:
        if cam_drv is not None:
            cam_drv.close()
        sim.stop()
        pid_file.unlink(missing_ok=True)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``simulate`` to the ``mecg`` parser."""
    p = sub.add_parser(
        "simulate",
        help="start virtual devices (amplifier, trigger box, camera) playing a synthetic participant",
        description="Start a virtual ECG amplifier and trigger box on pseudo-terminals (their paths are "
        "printed with the `mecg stream` command for each) and a virtual camera streamed to LSL, "
        "all playing one synthetic participant in real time, until Ctrl-C.",
    )
    p.add_argument("--seed", type=int, default=0, help="synthetic participant (default 0)")
    p.add_argument(
        "--duration",
        type=bounded(float, 0, 3600, lo_open=True, unit="s"),
        default=60.0,
        help="trial length in s, played in a loop (default 60)",
    )
    p.add_argument("--fps", type=FPS, default=150.0, help="camera frame rate in Hz, at most 1000 (default 150)")
    p.add_argument("--size", type=parse_size, default=(640, 480), help="frame size WxH (default 640x480)")
    p.add_argument("--color", action="store_true", help="RGB frames instead of grey")
    p.add_argument("--camera-name", default="FaceCamera", help="LSL name of the camera stream (default FaceCamera)")
    p.add_argument("--protocol", choices=("mecg", "cyton"), default="mecg", help="amplifier protocol (default mecg)")
    p.add_argument(
        "--rate",
        type=bounded(int, 1, 20000),
        default=None,
        help="amplifier rate in Hz at power-up (default 1000; Cyton 250)",
    )
    p.add_argument(
        "--drift-ppm", type=DRIFT_PPM, default=None, help="amplifier clock drift in ppm (default: the trial's, 0)"
    )
    p.add_argument("--latency-ms", type=LATENCY_MS, default=4.0, help="amplifier-to-host latency in ms (default 4)")
    p.add_argument(
        "--jitter-ms", type=LATENCY_MS, default=0.5, help="its jitter (half-normal s.d.) in ms (default 0.5)"
    )
    p.add_argument(
        "--camera-latency-ms", type=LATENCY_MS, default=None, help="camera exposure-to-host latency in ms (default 30)"
    )
    p.add_argument("--camera-jitter-ms", type=LATENCY_MS, default=None, help="its jitter in ms (default 2)")
    p.add_argument("--no-camera", action="store_true", help="no virtual camera")
    p.add_argument(
        "--no-trigger-box", action="store_true", help="no trigger box: the line carries the trial's own pulses"
    )
    p.add_argument("--trigger-autostart", action="store_true", help="the trigger box runs its schedule from power-up")
    p.add_argument(
        "--dir", default=None, help="folder for the port links and simulation.json (default: a per-user temp folder)"
    )
    p.add_argument("--seconds", type=SECONDS, default=None, help="stop after this many seconds (default: Ctrl-C)")
    add_buffer_options(p, "the camera's; default 15, shortened to stay under --buffer-max-mb")
    add_lsl_options(p)
    p.set_defaults(func=_simulate)
