"""``mecg stream ecg|camera|trigger``: run one device driver into LSL until Ctrl-C, with a live status line.

The LSL way: one small app per device, and any recorder (``mecg record``, LabRecorder) records
them. The drivers live in :mod:`mecg.acquire`; this module only parses options and shows status.
"""

from __future__ import annotations

import argparse
import math
import signal
import sys
import threading
import time
from collections.abc import Callable

from mecg.cli.argtypes import BAUD, FPS, LATENCY_MS, RATE_HZ, RT_PRIORITY, SECONDS, bounded, parse_size
from mecg.errors import MecgError


# -- shared by the device commands (stream, simulate, devices) ----------------------------------
def add_lsl_options(p: argparse.ArgumentParser) -> None:
    """``--lsl-local`` / ``--lsl-config``: which liblsl configuration to use."""
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--lsl-local",
        action="store_true",
        help="keep LSL on this machine (the shipped machine-scope config, or the file $MECG_LSL_LOCAL_CONFIG names)",
    )
    g.add_argument(
        "--lsl-config", metavar="FILE", help="liblsl configuration file (default: $LSLAPICFG, else liblsl's own search)"
    )


def apply_lsl_options(args: argparse.Namespace) -> str:
    """Apply the LSL options before anything touches LSL; returns the config in use."""
    from mecg.acquire.lsl_config import active_config, use_config

    if getattr(args, "lsl_local", False):
        use_config(None)
    elif getattr(args, "lsl_config", None):
        use_config(args.lsl_config)
    return active_config()


def _sigterm_as_interrupt() -> object:
    """Make SIGTERM stop a live loop like Ctrl-C (so devices are stopped and ports closed); returns the old handler."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, handler)


def live(
    status: Callable[[], str],
    *,
    seconds: float | None = None,
    done: Callable[[], bool] | None = None,
    every_s: float = 0.25,
) -> None:
    """Show ``status()`` on one refreshed line (a new line every 5 s when not a terminal) until Ctrl-C,
    ``seconds`` have passed or ``done()`` is true; the last status is printed on its own line."""
    tty = sys.stderr.isatty()
    t0 = last_print = time.monotonic()
    width = 0
    old_term = _sigterm_as_interrupt()
    try:
        while True:
            time.sleep(every_s)
            now = time.monotonic()
            if (seconds is not None and now - t0 >= seconds) or (done is not None and done()):
                break
            line = status()
            if tty:
                print("\r" + line.ljust(width), end="", file=sys.stderr, flush=True)
                width = len(line)
            elif now - last_print >= 5.0:
                print(line, file=sys.stderr, flush=True)
                last_print = now
    except KeyboardInterrupt:
        pass
    finally:
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
    if tty:
        print("\r" + " " * width + "\r", end="", file=sys.stderr)
    print(status(), file=sys.stderr, flush=True)


def _roi(text: str) -> tuple[int, int, int, int]:
    try:
        x, y, w, h = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--roi must look like X,Y,W,H in pixels, got {text!r}") from None
    return x, y, w, h


#: A camera exposure time (ms): more than 0, at most 10 s.
EXPOSURE_MS = bounded(float, 0, 10000, lo_open=True, unit="ms")

#: Largest trigger gap (s): pulses at least once an hour.
MAX_GAP_S = 3600.0


def gap_range(text: str) -> tuple[float, float]:
    """``MIN:MAX`` -> seconds between trigger pulses, ``0 < MIN <= MAX <=`` :data:`MAX_GAP_S` (argparse type)."""
    try:
        lo, hi = (float(v) for v in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--gap must look like MIN:MAX in seconds, got {text!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo <= hi <= MAX_GAP_S):
        raise argparse.ArgumentTypeError(f"--gap MIN:MAX must satisfy 0 < MIN <= MAX <= {MAX_GAP_S:g} s, got {text}")
    return lo, hi


# -- commands -----------------------------------------------------------------------------------
def add_buffer_options(p: argparse.ArgumentParser, default: str) -> None:
    """``--buffer-s`` / ``--buffer-max-mb``: what the outlet keeps through an outage (docs/recording.md)."""
    p.add_argument(
        "--buffer-s",
        type=bounded(float, 0, 86400, lo_open=True, unit="s"),
        default=None,
        help=f"what the outlet keeps for each receiver while the network or the recorder is behind, s ({default})",
    )
    p.add_argument(
        "--buffer-max-mb",
        type=bounded(float, 1, 1e7, unit="MB"),
        default=2000.0,
        help="memory cap of the outlet buffer, MB (default 2000): a default buffer shrinks to fit, a larger "
        "--buffer-s is refused",
    )


def _brainflow_ecg(args: argparse.Namespace, cfg_name: str) -> int:
    from mecg.acquire.brainflow_source import BrainFlowConfig, BrainFlowDriver, parse_params

    drv = BrainFlowDriver(
        BrainFlowConfig(
            board=args.brainflow,
            params=parse_params(args.brainflow_param or []),
            ecg_channels=args.channels,
            name=args.name,
            source_id=args.source_id,
            latency_s=args.latency_ms / 1000.0,
        )
    )
    info = drv.connect()
    print(
        f"BrainFlow {drv.layout.name} on {drv.where}: {info.rate_hz:g} Hz, channels {', '.join(info.labels)} "
        f"({drv.trigger_source}) -> LSL '{args.name}' (type ECG, source_id {drv.source_id}; "
        f"LSL config: {cfg_name}). Ctrl-C to stop.",
        file=sys.stderr,
    )
    drv.start()
    try:
        live(drv.status_line, seconds=args.seconds, done=lambda: drv.failed.is_set() or drv.finished.is_set())
    finally:
        drv.close()
    if drv.error:
        raise MecgError(f"the BrainFlow board stopped: {drv.error}")
    return 0


def _ecg(args: argparse.Namespace) -> int:
    cfg_name = apply_lsl_options(args)
    if args.brainflow_param and not args.brainflow:
        raise MecgError("--brainflow-param needs --brainflow BOARD")
    if args.brainflow:
        if args.buffer_s is not None:
            raise MecgError("--buffer-s is not available with --brainflow yet (its outlet keeps 60 s); drop it")
        if args.port or args.protocol != "mecg" or args.rate or args.baud:
            raise MecgError(
                "--brainflow takes the board's port and settings as --brainflow-param (e.g. serial_port=/dev/ttyUSB0); "
                "drop --port/--protocol/--rate/--baud"
            )
        return _brainflow_ecg(args, cfg_name)
    if not args.port:
        raise MecgError("give --port PORT (a serial amplifier) or --brainflow BOARD (a BrainFlow board)")
    from mecg.acquire.ecg_driver import EcgConfig, EcgDriver

    drv = EcgDriver(
        EcgConfig(
            port=args.port,
            protocol=args.protocol,
            rate_hz=args.rate,
            baud=args.baud,
            name=args.name,
            source_id=args.source_id,
            latency_s=args.latency_ms / 1000.0,
            ecg_channels=args.channels,
            max_buffered_s=args.buffer_s,
            buffer_max_mb=args.buffer_max_mb,
        )
    )
    info = drv.connect()
    print(
        f"{info.manufacturer} {info.model} ({info.firmware}, #{info.uid}) on {args.port}: {info.rate_hz:g} Hz, "
        f"channels {', '.join(info.labels)} -> LSL '{args.name}' (type ECG, source_id {drv.source_id}; "
        f"LSL config: {cfg_name}). Ctrl-C to stop.",
        file=sys.stderr,
    )
    drv.start()
    try:
        live(drv.status_line, seconds=args.seconds, done=drv.failed.is_set)
    finally:
        drv.close()
    if drv.error:
        raise MecgError(f"the ECG driver stopped: {drv.error}")
    return 0


def _camera(args: argparse.Namespace) -> int:
    cfg_name = apply_lsl_options(args)
    from mecg.acquire.camera_driver import CameraConfig, CameraDriver, exposure_of

    drv = CameraDriver(
        CameraConfig(
            camera=args.camera,
            fps=args.fps,
            size=args.size,
            roi=args.roi,
            gray=args.gray,
            name=args.name,
            source_id=args.source_id,
            loop=args.loop,
            latency_s=args.latency_ms / 1000.0,
            rt_priority=args.rt_priority,
            exposure_s=args.exposure_ms / 1000.0 if args.exposure_ms is not None else None,
            trigger_line=args.trigger_line,
            strobe_line=args.strobe_line,
            max_buffered_s=args.buffer_s,
            buffer_max_mb=args.buffer_max_mb,
        )
    )
    shape = drv.connect()
    src = drv.source
    exposure, exposure_from = exposure_of(src, drv.config)
    exposure_text = (
        f"exposure {exposure * 1e3:g} ms ({exposure_from})"
        if exposure is not None
        else "exposure unknown (not published; pass --exposure-ms)"
    )
    print(
        f"{src.name} ({src.kind}): {shape[1]}x{shape[0]} {'RGB' if len(shape) == 3 else 'grey'} at "
        f"{args.fps or src.fps:g} fps, {exposure_text} -> LSL '{args.name}' (type VideoRaw, source_id {drv.source_id}; "
        f"LSL config: {cfg_name}). Ctrl-C to stop.",
        file=sys.stderr,
    )
    drv.start()
    try:
        live(drv.status_line, seconds=args.seconds, done=drv.finished.is_set)
    finally:
        drv.close()
    if drv.error:
        raise MecgError(f"camera stopped: {drv.error}")
    return 0


def _trigger(args: argparse.Namespace) -> int:
    cfg_name = apply_lsl_options(args)
    from mecg.acquire.trigger_driver import TriggerConfig, TriggerDriver

    drv = TriggerDriver(
        TriggerConfig(
            port=args.port,
            baud=args.baud,
            name=args.name,
            source_id=args.source_id,
            width_ms=args.width_ms,
            gap_s=args.gap,
            count=args.count,
            box_schedule=args.box_schedule,
            seed=args.seed,
            max_buffered_s=args.buffer_s,
            buffer_max_mb=args.buffer_max_mb,
        )
    )
    info = drv.connect()
    who = "the box's own schedule" if args.box_schedule else "commands from this driver"
    print(
        f"{info.name} (#{info.uid:08x}) on {args.port}: {args.width_ms} ms pulses "
        f"every {args.gap[0]:g}-{args.gap[1]:g} s "
        f"by {who} -> LSL '{args.name}' (type Markers, source_id {drv.source_id}; LSL config: {cfg_name}). "
        "Ctrl-C to stop.",
        file=sys.stderr,
    )
    drv.start()
    try:
        live(drv.status_line, seconds=args.seconds, done=lambda: drv.done.is_set() or drv.failed.is_set())
    finally:
        drv.close()
    if drv.error:
        raise MecgError(f"the trigger driver stopped: {drv.error}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``stream`` (with ``ecg``, ``camera``, ``trigger``) to the ``mecg`` parser."""
    p = sub.add_parser(
        "stream",
        help="stream one device (ECG amplifier, camera, trigger box) to LSL",
        description="Run one device driver into Lab Streaming Layer until Ctrl-C.",
    )
    devs = p.add_subparsers(dest="device", metavar="DEVICE", parser_class=type(p))
    devs.required = True

    e = devs.add_parser(
        "ecg",
        help="an ECG amplifier (mecg protocol, OpenBCI Cyton, or any BrainFlow board)",
        description="Stream an ECG amplifier to an LSL outlet of type ECG (ECG in mV, TRIG, STROBE): a serial "
        "board (--port) or a BrainFlow board (--brainflow).",
    )
    e.add_argument("--port", default=None, help="serial port, e.g. /dev/ttyUSB0 (see `mecg devices`)")
    e.add_argument(
        "--brainflow",
        metavar="BOARD",
        default=None,
        help="a BrainFlow board by name or id (SYNTHETIC_BOARD, CYTON_BOARD, PLAYBACK_FILE_BOARD, ...; "
        "needs pip install 'mecg[devices]')",
    )
    e.add_argument(
        "--brainflow-param",
        metavar="KEY=VALUE",
        action="append",
        default=None,
        help="a BrainFlowInputParams field, repeatable: serial_port=/dev/ttyUSB0, file=rec.csv, "
        "master_board=CYTON_BOARD, ip_address=..., mac_address=..., serial_number=..., timeout=...",
    )
    e.add_argument("--protocol", choices=("mecg", "cyton"), default="mecg", help="device protocol (default mecg)")
    e.add_argument("--rate", type=RATE_HZ, default=None, help="sampling rate in Hz (default: the device's)")
    e.add_argument("--baud", type=BAUD, default=None, help="baud rate (default 921600 mecg, 115200 cyton)")
    e.add_argument(
        "--channels",
        type=bounded(int, 1, 64),
        default=1,
        help="Cyton / BrainFlow: ECG channels to publish, from the first (default 1; Cyton 1-8)",
    )
    e.add_argument(
        "--latency-ms", type=LATENCY_MS, default=0.0, help="constant transport latency to subtract, ms (default 0)"
    )
    e.add_argument("--name", default="ECG", help="LSL stream name (default ECG)")
    e.add_argument("--source-id", default=None, help="LSL source_id (default: from the board's serial number)")
    e.add_argument("--seconds", type=SECONDS, default=None, help="stop after this many seconds (default: Ctrl-C)")
    add_buffer_options(e, "default 60")
    add_lsl_options(e)
    e.set_defaults(func=_ecg)

    c = devs.add_parser(
        "camera",
        help="a camera or video file (OpenCV), or a virtual camera",
        description="Stream frames to an LSL outlet of type VideoRaw (the XDF convention; one int8 sample per frame).",
    )
    c.add_argument(
        "--camera",
        required=True,
        help="device index (0), /dev/videoN, a video file, sim[:SEED], or pylon[:SERIAL] (a Basler/GenICam camera "
        "through pypylon; PYLON_CAMEMU=1 for pylon's emulator)",
    )
    c.add_argument(
        "--trigger-line",
        metavar="LINE",
        default=None,
        help="pylon: expose one frame per rising edge on this input (TriggerSource, e.g. Line1; default free run)",
    )
    c.add_argument(
        "--strobe-line",
        metavar="LINE",
        default=None,
        help="pylon: drive this output with the exposure (LineSource ExposureActive, e.g. Line2) for the STROBE input",
    )
    c.add_argument("--fps", type=FPS, default=None, help="frame rate to request / to play a file at (at most 1000)")
    c.add_argument("--size", type=parse_size, default=None, help="output size WxH in px (default: as captured)")
    c.add_argument("--roi", type=_roi, default=None, help="crop X,Y,W,H (px) before resizing")
    c.add_argument("--gray", action="store_true", help="one grey channel instead of RGB")
    c.add_argument("--loop", action="store_true", help="replay a video file forever")
    c.add_argument("--latency-ms", type=LATENCY_MS, default=0.0, help="subtract from grab-time stamps, ms (default 0)")
    c.add_argument(
        "--rt-priority",
        type=RT_PRIORITY,
        default=None,
        metavar="N",
        help="capture thread at real-time priority N (Linux SCHED_FIFO 1-99; needs root or CAP_SYS_NICE)",
    )
    c.add_argument(
        "--exposure-ms",
        type=EXPOSURE_MS,
        default=None,
        help="the camera's exposure time in ms as set on it, published in the stream header for `mecg sync` "
        "(OpenCV cameras: not changed, declare what is set; pylon: set on the camera; default: the camera's own "
        "when it reports it in known units, else none)",
    )
    c.add_argument("--name", default="FaceCamera", help="LSL stream name (default FaceCamera)")
    c.add_argument("--source-id", default=None, help="LSL source_id (default: from the camera)")
    c.add_argument("--seconds", type=SECONDS, default=None, help="stop after this many seconds (default: Ctrl-C)")
    add_buffer_options(c, "default 15, shortened to stay under --buffer-max-mb")
    add_lsl_options(c)
    c.set_defaults(func=_camera)

    t = devs.add_parser(
        "trigger",
        help="the mecg trigger box (TTL + LED pulses)",
        description="Command trigger pulses at irregular intervals and publish each on an LSL Markers stream.",
    )
    t.add_argument("--port", required=True, help="serial port of the trigger box")
    t.add_argument("--width-ms", type=bounded(int, 1, 1000), default=50, help="pulse width in ms, 1-1000 (default 50)")
    t.add_argument(
        "--gap", type=gap_range, default=(2.0, 8.0), help="rise-to-rise gap range MIN:MAX in s (default 2:8)"
    )
    t.add_argument(
        "--count", type=bounded(int, 1, 10**9), default=None, help="stop after this many pulses (default: Ctrl-C)"
    )
    t.add_argument("--box-schedule", action="store_true", help="let the box run the schedule itself")
    t.add_argument("--seed", type=int, default=None, help="seed of the host schedule (default random)")
    t.add_argument("--baud", type=BAUD, default=115200, help="baud rate (default 115200)")
    t.add_argument("--name", default="TriggerBox", help="LSL stream name (default TriggerBox)")
    t.add_argument("--source-id", default=None, help="LSL source_id (default: from the box's serial number)")
    t.add_argument("--seconds", type=SECONDS, default=None, help="stop after this many seconds (default: Ctrl-C)")
    add_buffer_options(t, "markers count in hundreds: default 360 = 36,000 markers")
    add_lsl_options(t)
    t.set_defaults(func=_trigger)
