"""``mecg sync``: align a session's video to its ECG, judge the result, and store it beside the recording.

Exit status: 0 when the verdict is ``ok``, 3 when it is ``suspect`` (stored, usable, but say why),
1 when it is ``failed`` (stored so ``mecg info`` shows it; model code refuses it), 2 for a user
error (no such mode for this recording, bad option).
"""

from __future__ import annotations

import argparse
import json
import sys

from mecg.session import open_session
from mecg.sync import MODES, LedRoi, SyncResult, synchronize, write_result

#: Exit status per verdict.
EXIT = {"ok": 0, "suspect": 3, "failed": 1}


def format_report(r: SyncResult) -> str:
    """The human-readable sync report."""
    rms = "n/a" if r.residual_rms_ms is None else f"{r.residual_rms_ms:.3f} ms"
    mx = "n/a" if r.residual_max_ms is None else f"{r.residual_max_ms:.3f} ms"
    unc = "n/a (software clocks: tens of ms)" if r.uncertainty_ms is None else f"+-{r.uncertainty_ms:.3f} ms"
    rep = r.report()
    by = ", ".join(f"{k} {v}" for k, v in rep["frames_by_method"].items() if v)
    seg = rep["video"], rep["ecg"]
    lines = [
        f"verdict         {r.verdict.upper()}" + ("" if not r.reasons else f"  ({len(r.reasons)} reason(s) below)"),
        f"mode            {r.mode}",
        f"uncertainty     {unc}",
        f"frames          {rep['frames_aligned']} of {rep['frames']} aligned ({by}); "
        f"{r.frames_in_ecg_gap} in ECG gaps (NaN)",
        f"segments        video {seg[0]['segments']} ({seg[0]['gaps']} gaps, {seg[0]['resets']} resets), "
        f"ECG {seg[1]['segments']} ({seg[1]['gaps']} gaps, {seg[1]['resets']} resets, {seg[1]['drops']} drops)",
        f"offset          {r.offset_ms:.3f} ms   (ECG clock at camera frame 0)",
        f"drift           {r.drift_ppm:.2f} ppm  (camera clock vs amplifier clock)",
        f"pulses          {r.pulses_video} in video, {r.pulses_ecg} on amplifier, {r.pulses_matched} matched",
        f"strobe edges    {r.strobe_edges} for {r.frame_time_ecg_s.size} frames",
        f"residuals       RMS {rms}, max {mx}",
    ]
    if r.exposure_s is not None:
        lines.append(f"exposure        {r.exposure_s * 1e3:.3f} ms")
    if r.led_roi is not None:
        lines.append(f"LED region      x={r.led_roi.x} y={r.led_roi.y} w={r.led_roi.w} h={r.led_roi.h}")
    lines += [f"reason: {w}" for w in r.reasons]
    lines += [f"warning: {w}" for w in r.warnings]
    return "\n".join(lines)


def _sync(args: argparse.Namespace) -> int:
    roi = LedRoi.parse(args.led_roi) if args.led_roi else None
    exposure = args.exposure_ms / 1000.0 if args.exposure_ms else None
    log = (lambda m: None) if args.json else (lambda m: print(m, file=sys.stderr, flush=True))
    with open_session(args.session, writable=not args.dry_run) as s:
        res = synchronize(
            s,
            args.mode,
            led_roi=roi,
            exposure_s=exposure,
            log=log,
            ecg_channel=args.ecg_channel,
            video_stream=args.video,
        )
        if not args.dry_run:
            write_result(s, res)
    if args.plot:
        from mecg.sync.plot import plot_sync

        plot_sync(res, args.plot)
    if args.json:
        print(json.dumps(res.report()))
    else:
        print(format_report(res))
        if not args.dry_run:
            print(f"stored as {args.session}:/sync")
    for w in res.warnings if args.json else ():
        print(f"warning: {w}", file=sys.stderr)
    if res.verdict != "ok":
        print(
            f"sync verdict {res.verdict}: "
            + "; ".join(res.reasons)
            + ("" if res.verdict == "failed" else " (exit 3: usable, but check the reasons)"),
            file=sys.stderr,
        )
    return EXIT[res.verdict]


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``sync`` to the ``mecg`` parser."""
    p = sub.add_parser(
        "sync",
        help="align video frames to the ECG clock (strobe, trigger pulses or LSL clocks), with a verdict",
        description="Put every video frame on the ECG clock and store the mapping and its quality in /sync. "
        "Modes: strobe (camera exposure output on the amplifier), pulses (LED + TTL trigger), "
        "lsl (software clocks only; tens of ms off). auto picks the best one the recording supports. "
        "Exit 0: verdict ok; 3: suspect; 1: failed; 2: user error.",
    )
    p.add_argument("session", help="session .h5 file")
    p.add_argument("--mode", choices=MODES, default="auto", help="alignment mode (default auto)")
    p.add_argument("--led-roi", metavar="X,Y,W,H", help="LED region in pixels (default: found automatically)")
    p.add_argument(
        "--exposure-ms", type=float, help="camera exposure in ms (default: from the stream header, or estimated)"
    )
    p.add_argument("--video", metavar="NAME", default="", help="the video stream to align, when there are several")
    p.add_argument(
        "--ecg-channel",
        metavar="[STREAM:]LABEL|INDEX",
        default="",
        help="the ECG channel, e.g. OpenBCI:ECG or EXG:3 (INDEX 0-based; default: the choice stored by mecg record, "
        "else the one stream of type ECG or with a channel labelled ECG/EKG)",
    )
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.add_argument("--plot", metavar="PNG", help="draw residuals and matched pulses to this PNG")
    p.add_argument("--dry-run", action="store_true", help="report only; do not write into the session")
    p.set_defaults(func=_sync)
