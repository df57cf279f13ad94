"""``mecg import-xdf``: a LabRecorder XDF recording (or .xdfz) into a session file (raw timestamps, offsets kept)."""

from __future__ import annotations

import argparse
import json
import os

from mecg.cli.progress import Progress, add_quiet_option
from mecg.interop.xdf_import import import_xdf
from mecg.interop.xdf_scan import XdfError


def _video_arg(values: list[str] | None) -> str | dict[str, str] | None:
    if not values:
        return None
    named = {}
    for v in values:
        name, sep, path = v.partition("=")
        if sep and name and not os.path.exists(v):
            named[name] = path
        elif len(values) == 1:
            return v
        else:
            raise XdfError(f"--video {v}: with several --video options write each as STREAM=PATH")
    return named


def format_report(rep: dict) -> str:
    """The stream table and warnings of an import report."""
    lines = [
        f"{'xdf id':>6}  {'stream':<18} {'type':<10} {'stored as':<18} {'rate Hz':>8} {'samples':>9} "
        f"{'offsets':>7} {'resets':>6}"
    ]
    for s in rep["streams"]:
        stored = f"{s['imported_as']} ({s['kind']})" if s["imported_as"] else f"- ({s['skipped']})"
        lines.append(
            f"{s['stream_id']:>6}  {s['name'][:18]:<18} {s['type'][:10]:<10} {stored:<18} "
            f"{s['nominal_srate_hz']:>8.1f} {s['samples']:>9} {s['clock_offsets']:>7} {s['clock_resets']:>6}"
        )
    lines += [f"warning: {w}" for w in rep["warnings"]]
    return "\n".join(lines)


def _import(args: argparse.Namespace) -> int:
    streams = [t for v in args.streams or [] for t in v.split(",")] or None
    bar = Progress(None, "import-xdf", "chunk", quiet=args.quiet)
    log = (lambda m: None) if args.json else bar.log
    with bar:
        rep = _run_import(args, streams, log, bar)
        bar.set(bar.done, bar.done)  # the file's other chunks (headers, clock offsets, ...) are read too: done
    if args.json:
        print(json.dumps(rep))
        return 0
    print(format_report(rep))
    state = "complete" if rep["complete"] else "INCOMPLETE (marked so in the session)"
    print(f"wrote {rep['out']} ({os.path.getsize(rep['out']) / 1e6:.1f} MB), recording {state}")
    print(f"next: mecg validate {rep['out']} && mecg sync {rep['out']}")
    return 0


def _run_import(args: argparse.Namespace, streams: list[str] | None, log, bar: Progress) -> dict:
    return import_xdf(
        args.xdf,
        args.out,
        subject_id=args.subject,
        notes=args.notes,
        overwrite=args.overwrite,
        partial=args.partial,
        streams=streams,
        video=_video_arg(args.video),
        ecg=args.ecg,
        log=log,
        progress=bar.set,
    ).as_dict()


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``import-xdf`` to the ``mecg`` parser."""
    p = sub.add_parser(
        "import-xdf",
        help="convert a LabRecorder .xdf recording into a session file (raw timestamps and clock offsets kept)",
        description="Read an XDF file (LabRecorder; gzip-compressed .xdfz or .xdf.gz too) with pyxdf, without clock "
        "sync or dejittering, and write a session as `mecg record` would have: ECG and other signals, video frames "
        "(VideoRaw pixel streams by the XDF convention, or frame numbers + a video file), markers, each with its "
        "raw LSL timestamps and clock offsets, so `mecg sync` works on it. A cut file (LabRecorder killed) is "
        "refused unless --partial. See docs/interop.md.",
    )
    p.add_argument("xdf", help="the .xdf file (or .xdfz / .xdf.gz)")
    p.add_argument("out", help="the session file to write (.h5)")
    p.add_argument("--subject", default="", help="pseudonymous participant id (never a name: stored in clear)")
    p.add_argument("--notes", default="", help="free text stored with the session")
    p.add_argument(
        "--streams",
        action="append",
        metavar="LIST",
        help="only these streams: names, types or XDF stream ids, comma-separated (default: all a session can hold)",
    )
    p.add_argument(
        "--video",
        action="append",
        metavar="[STREAM=]PATH",
        help="the video file whose frames a frame-number stream counts (default: the file its header names)",
    )
    p.add_argument("--ecg", metavar="STREAM", help="the signal stream to store as type ECG (default: found by type)")
    p.add_argument(
        "--partial",
        action="store_true",
        help="import the intact part of a cut or damaged file (the session is marked incomplete)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists (only after a successful import)")
    p.add_argument("--json", action="store_true", help="print the import report as one JSON object")
    add_quiet_option(p)
    p.set_defaults(func=_import)
