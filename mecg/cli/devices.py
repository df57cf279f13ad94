"""``mecg devices``: serial ports, cameras that open, virtual devices of ``mecg simulate``, LSL streams."""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
from pathlib import Path

from mecg.cli.argtypes import bounded
from mecg.cli.stream import add_lsl_options, apply_lsl_options


def _cameras(max_index: int) -> list[dict]:
    """Cameras OpenCV opens, probing only the /dev/videoN that exist (Linux) or indices 0..max (elsewhere)."""
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    import cv2

    if sys.platform.startswith("linux"):
        nodes = sorted(glob.glob("/dev/video*"), key=lambda p: int("".join(c for c in p if c.isdigit()) or 0))
        candidates = [(int(p[len("/dev/video") :]), p) for p in nodes if p[len("/dev/video") :].isdigit()]
        backend = cv2.CAP_V4L2
    else:
        candidates = [(i, str(i)) for i in range(max_index + 1)]
        backend = cv2.CAP_ANY
    out = []
    for index, name in candidates[: max_index + 1]:
        cap = cv2.VideoCapture(index, backend)
        try:
            if not cap.isOpened():
                continue
            ok, frame = cap.read()
            if not ok:
                continue
            out.append(
                {
                    "index": index,
                    "device": name,
                    "width": int(frame.shape[1]),
                    "height": int(frame.shape[0]),
                    "fps": float(cap.get(cv2.CAP_PROP_FPS) or 0.0),
                }
            )
        finally:
            cap.release()
    return out


def _virtual_ports() -> list[dict]:
    """Ports of running ``mecg simulate`` instances in the default folder."""
    from mecg.acquire.simulation import default_link_dir

    out = []
    folder = default_link_dir()
    for name in ("amplifier", "trigger"):
        link = folder / name
        if link.is_symlink() and Path(os.readlink(link)).exists():
            out.append({"device": str(link), "description": f"mecg simulate: virtual {name}"})
    return out


def _lsl_streams(wait_s: float) -> list[dict]:
    import pylsl

    return [
        {
            "name": s.name(),
            "type": s.type(),
            "channels": s.channel_count(),
            "rate_hz": s.nominal_srate(),
            "source_id": s.source_id(),
            "hostname": s.hostname(),
        }
        for s in pylsl.resolve_streams(wait_time=wait_s)
    ]


def _devices(args: argparse.Namespace) -> int:
    cfg_name = apply_lsl_options(args)
    from mecg.acquire.serial_port import list_serial_ports

    report = {
        "serial_ports": list_serial_ports(),
        "virtual_ports": _virtual_ports(),
        "cameras": [] if args.no_cameras else _cameras(args.max_camera_index),
        "lsl_streams": _lsl_streams(args.wait),
        "lsl_config": cfg_name,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print("Serial ports:")
    for p in report["serial_ports"]:
        print(f"  {p['device']:<24} {p['description']}  [{p['hwid']}]")
    for p in report["virtual_ports"]:
        print(f"  {p['device']:<24} {p['description']}")
    if not report["serial_ports"] and not report["virtual_ports"]:
        print("  (none)")
    print("Cameras that open:" if not args.no_cameras else "Cameras: not probed (--no-cameras)")
    for c in report["cameras"]:
        print(f"  {c['index']:<3} {c['device']:<14} {c['width']}x{c['height']} @ {c['fps']:g} fps")
    if not args.no_cameras and not report["cameras"]:
        print("  (none)")
    print(f"LSL streams (config: {cfg_name}):")
    for s in report["lsl_streams"]:
        rate = "irregular" if s["rate_hz"] == 0 else f"{s['rate_hz']:g} Hz"
        print(
            f"  {s['name']:<16} type={s['type']:<8} {s['channels']} ch @ {rate:<10} "
            f"source_id={s['source_id']}  host={s['hostname']}"
        )
    if not report["lsl_streams"]:
        print("  (none)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``devices`` to the ``mecg`` parser."""
    p = sub.add_parser(
        "devices",
        help="list serial ports, cameras that open, and LSL streams",
        description="List what can be streamed (serial ports, cameras, virtual devices of "
        "`mecg simulate`) and the LSL streams already on the network.",
    )
    p.add_argument(
        "--wait",
        type=bounded(float, 0, 60, lo_open=True, unit="s"),
        default=1.0,
        help="seconds to wait for LSL streams (default 1)",
    )
    p.add_argument(
        "--max-camera-index", type=bounded(int, 0, 63), default=9, help="highest camera index to probe (default 9)"
    )
    p.add_argument("--no-cameras", action="store_true", help="do not probe cameras")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    add_lsl_options(p)
    p.set_defaults(func=_devices)
