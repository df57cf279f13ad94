"""``mecg import-dataset``: CAS(ME)^2 or SAMM Long Videos, as distributed, into video-only sessions."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

from mecg.cli.argtypes import parse_size
from mecg.cli.progress import Progress, add_quiet_option
from mecg.interop.datasets import COLOR_MODES, DATASETS, OFFSET_RULES, ImportReport, import_dataset

#: Problem lines printed before "see the manifest".
MAX_PRINTED = 15


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


def _import(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    last = [0.0]
    bars: dict[str, Progress] = {}  # the video being imported: its bar

    def progress(name: str, done: int, total: int) -> None:
        if name not in bars:
            for old in bars.values():
                old.close()
            bars.clear()
            bars[name] = Progress(total, name, "frame", quiet=args.quiet)
        bar = bars[name]
        bar.set(done, total)
        now = time.perf_counter()
        if not bar.shown and (done == total or now - last[0] > 2.0):
            last[0] = now
            bar.log(f"{name}: {done}/{total} frames ({now - t0:.1f} s)")

    try:
        report = _run(args, progress)
    finally:
        for bar in bars.values():
            bar.close()
    manifest = f"import_{args.dataset.replace('-', '')}.json"
    for title, lines in (("rows naming a missing video", report.missing_videos), ("notes", report.problems)):
        if lines:
            print(f"{len(lines)} {title}:", file=sys.stderr)
            for line in lines[:MAX_PRINTED]:
                print(f"  {line}", file=sys.stderr)
            if len(lines) > MAX_PRINTED:
                print(f"  ... {len(lines) - MAX_PRINTED} more in {manifest}", file=sys.stderr)
    n_me = sum(s["n_me"] for s in report.sessions)
    n_mae = sum(s["n_mae"] for s in report.sessions)
    frames = sum(s["frames"] for s in report.sessions)
    print(
        f"wrote {len(report.sessions)} sessions ({frames} frames, {n_me} ME, {n_mae} MaE) and {manifest} "
        f"to {args.out_dir}"
    )
    return 0


def _run(args: argparse.Namespace, progress: Callable[[str, int, int], None]) -> ImportReport:
    return import_dataset(
        args.dataset,
        args.root,
        args.out_dir,
        annotations=args.annotations,
        images=args.images,
        max_frames=args.max_frames,
        resize=args.resize,
        videos=args.videos,
        color=args.color,
        missing_offset=args.missing_offset,
        strict=args.strict,
        overwrite=args.overwrite,
        workers=args.workers,
        progress=progress,
    )


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``import-dataset`` to the ``mecg`` parser."""
    p = sub.add_parser(
        "import-dataset",
        help="convert CAS(ME)^2 or SAMM Long Videos into sessions (video + annotations, no ECG)",
        description="Read a public ME dataset as distributed (image folders + annotation spreadsheet) and "
        "write one session per long video, so `mecg spot` and `mecg eval` run on it. Frame numbers become "
        "0-based indices from the first image; timestamps are image number / fps (no device clock, no ECG). "
        "See docs/datasets.md.",
    )
    p.add_argument("dataset", choices=DATASETS, help="casme2 (CAS(ME)^2, 30 fps) or samm-lv (SAMM-LV, 200 fps)")
    p.add_argument("root", help="folder the dataset was unpacked into (with rawpic/ or SAMM_longvideos/)")
    p.add_argument("out_dir", help="folder for the session files (created if missing)")
    p.add_argument("--annotations", metavar="FILE", help="annotation .xlsx or .csv (default: found in ROOT)")
    p.add_argument("--images", metavar="DIR", help="image folder instead of rawpic / SAMM_longvideos")
    p.add_argument("--max-frames", type=_positive_int, metavar="N", help="keep the first N frames of each video")
    p.add_argument("--resize", type=parse_size, metavar="WxH", help="resize frames, e.g. 320x240")
    p.add_argument(
        "--videos",
        action="append",
        metavar="LIST",
        help="only these videos, comma-separated (s15_0101 / 15_0101, 006_1); may be repeated",
    )
    p.add_argument("--color", choices=COLOR_MODES, default="auto", help="frame colour (default auto: as the images)")
    p.add_argument(
        "--missing-offset",
        choices=OFFSET_RULES,
        default="mirror",
        help="uncoded offset: apex + (apex - onset) (mirror, default) or the apex",
    )
    p.add_argument("--strict", action="store_true", help="fail when an annotation row names a missing video")
    p.add_argument("--workers", type=_positive_int, default=2, help="threads decoding images (default 2)")
    p.add_argument("--overwrite", action="store_true", help="replace session files that exist")
    add_quiet_option(p)
    p.set_defaults(func=_import)
