"""``mecg export-nwb``: a session out to an NWB file (ECG in volts, video, markers, annotations, subject)."""

from __future__ import annotations

import argparse
import json
import sys

from mecg.cli.progress import Progress, add_quiet_option
from mecg.interop.nwb_export import SEXES, export_nwb, inspect_nwb


def _export(args: argparse.Namespace) -> int:
    log = (lambda m: None) if args.json or args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    err = sys.stderr  # the frames inside the NWB file are written by a forked child that swaps sys.stderr
    current: list[Progress] = []  # the bar of the video stream being written

    def progress(done: int, total: int) -> None:
        if not current:  # the first or the next video stream
            current.append(Progress(total, "export-nwb video", "frame", quiet=args.quiet, stream=err))
        current[0].set(done, total)
        if done >= total:  # draw the end here: in the forked writer nobody else will
            current.pop().close()

    rep = export_nwb(
        args.session,
        args.out,
        overwrite=args.overwrite,
        video_in_file=args.video_in_file,
        subject_id=args.subject,
        species=args.species,
        sex=args.sex,
        age=args.age,
        experimenter=args.experimenter,
        institution=args.institution,
        ecg_unit=args.ecg_unit,
        log=log,
        progress=progress,
    ).as_dict()
    for bar in current:
        bar.close()
    messages = inspect_nwb(args.out) if args.inspect else None
    if args.json:
        if messages is not None:
            rep["inspector"] = [dict(zip(("importance", "check", "location", "message"), m)) for m in messages]
        print(json.dumps(rep))
        return 0
    print(f"wrote {rep['out']} (identifier {rep['identifier']}; times on the {rep['clock']})")
    for o in rep["objects"]:
        print(f"  {o}")
    for v in rep["video_files"]:
        print(f"  video file {v} (referenced by a relative path: keep it beside the .nwb file)")
    for w in rep["warnings"]:
        print(f"warning: {w}")
    if messages is not None:
        print(f"NWB Inspector: {len(messages)} message(s)")
        for imp, check, loc, msg in messages:
            print(f"  {imp} {check} at {loc}: {msg}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``export-nwb`` to the ``mecg`` parser."""
    p = sub.add_parser(
        "export-nwb",
        help="write a session as an NWB file (ECG in volts, video, markers, ME/MaE annotations, subject)",
        description="Export a session to Neurodata Without Borders (pynwb): each signal stream as one "
        "(samples, channels) TimeSeries (voltage channels in volts, e.g. the ECG; other channels in one <name>_aux "
        "series) with a table of its channels, each video as an ImageSeries (a lossless .mkv beside the file by "
        "default, or inside it with --video-in-file), markers as AnnotationSeries, annotations as a time-interval "
        "table, the subject; only types that readers of any NWB 2.x version open. Times are on the ECG clock when "
        "`mecg sync` has run, else on the recorder's LSL clock. See docs/interop.md.",
    )
    p.add_argument("session", help="session .h5 file")
    p.add_argument("out", help="the NWB file to write (.nwb)")
    p.add_argument("--video-in-file", action="store_true", help="store the frames in the NWB file (gzip)")
    p.add_argument("--subject", help="subject id (default: the session's)")
    p.add_argument("--species", default="Homo sapiens", help="species, Latin binomial (default Homo sapiens)")
    p.add_argument("--sex", choices=SEXES, default="U", help="M, F, O (other) or U (unknown, default)")
    p.add_argument("--age", help="age as an ISO 8601 duration, e.g. P27Y")
    p.add_argument("--experimenter", help="who recorded (Last, First)")
    p.add_argument("--institution", help="where it was recorded")
    p.add_argument(
        "--ecg-unit", metavar="UNIT", help="unit of the ECG samples when the session does not say (mV, uV, V)"
    )
    p.add_argument("--inspect", action="store_true", help="run the NWB Inspector on the result and print its report")
    p.add_argument("--overwrite", action="store_true", help="replace OUT and its video files if they exist")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    add_quiet_option(p)
    p.set_defaults(func=_export)
