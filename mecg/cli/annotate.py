"""``mecg annotate``: coder sheets in and out, each coder's set kept apart, agreement, merge, the reference set.

The reference set is what ``mecg train``, ``mecg eval`` and ``mecg stats`` read. Every change goes
to the session's derivatives file in one atomic update; on any error nothing is written. See
docs/annotate.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from mecg.errors import MecgError

if TYPE_CHECKING:
    from mecg.session import Annotation, Session

#: Units of bare sheet columns (mecg.interop.coder_sheets.UNITS) and merge rules
#: (mecg.model.agreement.MERGE_RULES), repeated here so that building the parser imports neither.
UNITS = ("auto", "frames", "s", "ms")
MERGE_RULES = ("consensus", "mean", "union")


def _open(args: argparse.Namespace, writable: bool = False) -> Session:
    from mecg.session import open_session

    return open_session(args.session, writable=writable)


def _kinds(anns: list[Annotation]) -> str:
    me = sum(a.type == "ME" for a in anns)
    return f"{me} ME, {len(anns) - me} MaE"


def _import(args: argparse.Namespace) -> int:
    from mecg.interop.coder_sheets import import_coder_sheet

    with _open(args, writable=True) as s:
        res = import_coder_sheet(
            s,
            args.sheet,
            coder=args.coder,
            video_stream=args.video,
            reference=args.reference,
            replace=args.replace,
            units=args.units,
            first_frame=args.first_frame,
            apex_mid=args.apex_mid,
            allow_empty=args.allow_empty,
        )
        target = s.derivatives_path.name
    for note in res.notes:
        print(f"note: {note}", file=sys.stderr)
    used = {f: u for f, u in res.units.items() if u != "none"}
    units = (
        next(iter(used.values())) if len(set(used.values())) == 1 else ", ".join(f"{f} in {u}" for f, u in used.items())
    )
    for coder, anns in res.sets.items():
        print(f"coder {coder}: {len(anns)} annotations ({_kinds(anns)}) from {res.path.name} ({units}) -> {target}")
    if args.reference:
        print(f"coder {next(iter(res.sets))} is now the reference set (train, eval and stats use it)")
    return 0


def _export(args: argparse.Namespace) -> int:
    from mecg.interop.coder_sheets import write_coder_sheet
    from mecg.session.coders import coder_set, coder_sets, coder_stream, reference_coder, video_fps

    with _open(args) as s:
        if args.all:
            sets = coder_sets(s)
            if not sets:
                raise MecgError(f"{s.path.name} has no annotations to export")
        else:
            coder = args.coder or reference_coder(s)
            if coder is None:
                raise MecgError(
                    f"{s.path.name} has no reference set; name the coder to export with --coder ID "
                    "(`mecg annotate SESSION list` shows them) or pass --all"
                )
            sets = {coder: coder_set(s, coder)}
        streams = {coder_stream(s, c) for c in sets}
        if len(streams) > 1:
            raise MecgError(f"the coders annotate different video streams ({', '.join(sorted(streams))}); export one")
        fps = video_fps(s, streams.pop())
    out = write_coder_sheet(args.out, sets, fps, units=args.units, overwrite=args.overwrite)
    n = sum(len(v) for v in sets.values())
    print(f"wrote {out}: {n} annotations of coder {', '.join(sets)} ({args.units})")
    return 0


def _list(args: argparse.Namespace) -> int:
    from mecg.session.coders import coder_sets, coder_source, coder_stream, reference_coder

    with _open(args) as s:
        sets = coder_sets(s)
        ref = reference_coder(s)
        rows = []
        for c, anns in sets.items():
            rows.append(
                {
                    "coder": c,
                    "me": sum(a.type == "ME" for a in anns),
                    "mae": sum(a.type == "MaE" for a in anns),
                    "video_stream": coder_stream(s, c),
                    "source": coder_source(s, c),
                    "reference": c == ref,
                }
            )
        unnamed = ref is None and bool(s.annotations)
    if args.json:
        print(json.dumps({"coders": rows, "reference": ref, "annotations_without_coder": unnamed}))
        return 0
    if not rows:
        print(
            f"{Path(args.session).name}: no annotations (import a sheet: mecg annotate SESSION import SHEET --coder ID)"
        )
        return 0
    print(f"{'coder':<16} {'ME':>5} {'MaE':>5}  {'video':<14} {'source':<24} ")
    for r in rows:
        mark = "reference" if r["reference"] else ""
        print(f"{r['coder']:<16} {r['me']:>5} {r['mae']:>5}  {r['video_stream']:<14} {r['source']:<24} {mark}")
    if unnamed:
        print("the session's annotations (what train/eval/stats read) match no coder set; set one: reference ID")
    elif ref is None:
        print("no reference set: train, eval and stats see no annotations; set one with: reference ID")
    return 0


def _reference(args: argparse.Namespace) -> int:
    from mecg.session.coders import coder_set, set_reference

    with _open(args, writable=True) as s:
        set_reference(s, args.coder)
        n = len(coder_set(s, args.coder))
    print(f"coder {args.coder} ({n} annotations) is now the reference set (train, eval and stats use it)")
    return 0


def _delete(args: argparse.Namespace) -> int:
    from mecg.session.coders import delete_coder_set

    with _open(args, writable=True) as s:
        delete_coder_set(s, args.coder)
    print(f"removed coder {args.coder}'s annotations")
    return 0


def _two(s: Session, coders: list[str]) -> tuple[list[Annotation], list[Annotation], str]:
    """The two coders' sets and the video stream they share; refuses one coder twice or two videos."""
    from mecg.session.coders import coder_set, coder_stream

    a, b = coders
    if a == b:
        raise MecgError(f"--coders names {a} twice; give two different coders")
    sa, sb = coder_set(s, a), coder_set(s, b)
    va, vb = coder_stream(s, a), coder_stream(s, b)
    if va != vb:
        raise MecgError(f"coder {a} annotated video stream {va!r} and coder {b} {vb!r}; compare coders of one video")
    return sa, sb, va


def _fmt(v: float | None, digits: int = 3) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def _agree(args: argparse.Namespace) -> int:
    from mecg.model.agreement import agreement
    from mecg.session.coders import video_fps

    with _open(args) as s:
        a, b, video = _two(s, args.coders)
        res = agreement(a, b, s.streams[video].sample_count, video_fps(s, video), tuple(args.coders))
    if args.json:
        print(json.dumps(res.as_dict()))
        return 0
    ca, cb = res.coders
    print(
        f"agreement of coder {ca} ({res.n_a['all']}) with coder {cb} ({res.n_b['all']}) on {video}: {res.n_frames} "
        f"frames at {res.fps:g} fps"
    )
    wa, wb = max(9, len(ca) + 6), max(9, len(cb) + 6)
    only_a, only_b = f"only {ca}", f"only {cb}"
    print(f"intervals, IoU >= 0.5   {'matched':>7} {only_a:>{wa}} {only_b:>{wb}} {'P':>7} {'R':>7} {'F1':>7}")
    for name, c in [*res.intervals.items(), ("any type", res.any_type)]:
        print(f"  {name:<21} {c.tp:>7} {c.fp:>{wa}} {c.fn:>{wb}} {c.precision:>7.3f} {c.recall:>7.3f} {c.f1:>7.3f}")
    print(f"type agreement of matched pairs: {_fmt(res.type_agreement)}")
    k = res.kappa
    print(f"frame-wise Cohen's kappa: expression {_fmt(k['expression'])}, ME {_fmt(k['me'])}, MaE {_fmt(k['mae'])}")
    ap = res.apex_summary()
    if ap["pairs"]:
        print(
            f"apex distance over {ap['pairs']} pairs: mean {ap['mean_frames']:.2f} frames ({ap['mean_ms']:.1f} ms), "
            f"median {ap['median_frames']:g} ({ap['median_ms']:.1f} ms), "
            f"max {ap['max_frames']:g} ({ap['max_ms']:.1f} ms)"
        )
    else:
        print("apex distance: no matched pairs")
    return 0


def _merge(args: argparse.Namespace) -> int:
    from mecg.model.agreement import merge
    from mecg.session.coders import RECORDING, check_coder_id, coder_ids, video_fps, write_coder_sets

    check_coder_id(args.into)
    if args.into == RECORDING:
        raise MecgError(f"--into {RECORDING}: that is the recording's own, read-only set; choose another id")
    with _open(args, writable=True) as s:
        a, b, video = _two(s, args.coders)
        if args.into in coder_ids(s) and not args.replace:
            raise MecgError(
                f"coder {args.into} exists already; pass --replace to replace its set, or choose another --into"
            )
        res = merge(a, b, video_fps(s, video), args.rule)
        write_coder_sets(
            s,
            {args.into: res.annotations},
            video,
            source=f"merge {args.rule} of {args.coders[0]} and {args.coders[1]}",
            reference=args.into if args.reference else None,
        )
    print(
        f"coder {args.into}: {len(res.annotations)} annotations ({_kinds(res.annotations)}) = {res.matched} matched "
        f"pairs merged ({args.rule}), {res.kept_a} only-{args.coders[0]} and {res.kept_b} only-{args.coders[1]} kept, "
        f"{res.dropped} dropped"
    )
    if args.reference:
        print(f"coder {args.into} is now the reference set (train, eval and stats use it)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``annotate`` to the ``mecg`` parser."""
    p = sub.add_parser(
        "annotate",
        help="import coder sheets, compare and merge coders, choose the reference set",
        description="Each coder's annotations are kept apart in the session's derivatives file; one set "
        "is the reference that train, eval and stats use. Nothing is written on any error. See docs/annotate.md.",
    )
    p.add_argument("session", metavar="SESSION", help="session file (.h5)")
    acts = p.add_subparsers(dest="action", metavar="ACTION", required=True, parser_class=type(p))

    q = acts.add_parser("import", help="import a coder sheet (.csv or .xlsx)")
    q.add_argument("sheet", help="the sheet: one row per expression (docs/annotate.md lists the columns read)")
    q.add_argument("--coder", help="whose annotations these are (needed when the sheet has no coder column)")
    q.add_argument("--video", help="video stream the frames count (default: the session's only one)")
    q.add_argument(
        "--units",
        choices=UNITS,
        default="auto",
        help="unit of bare onset/apex/offset columns (default auto: frames, refused when they look like seconds)",
    )
    q.add_argument(
        "--first-frame",
        type=int,
        choices=(0, 1),
        default=None,
        help="number the sheet gives the first frame (default 0; 1 for a CAS(ME)^2 sheet without header)",
    )
    q.add_argument("--apex-mid", action="store_true", help="take a missing apex as the middle frame")
    q.add_argument("--allow-empty", action="store_true", help="accept a sheet with a header and no rows")
    q.add_argument("--replace", action="store_true", help="replace a coder's existing set")
    q.add_argument("--reference", action="store_true", help="make the imported coder the reference set")
    q.set_defaults(func=_import)

    q = acts.add_parser("export", help="write a coder's set as a sheet (.csv or .xlsx)")
    q.add_argument("out", help="output sheet (.csv or .xlsx)")
    g = q.add_mutually_exclusive_group()
    g.add_argument("--coder", help="coder to export (default: the reference set)")
    g.add_argument("--all", action="store_true", help="every coder's set, with a coder column")
    q.add_argument("--units", choices=("frames", "s"), default="frames", help="frames (0-based, default) or seconds")
    q.add_argument("--overwrite", action="store_true", help="replace an existing file")
    q.set_defaults(func=_export)

    q = acts.add_parser("list", help="the coder sets and which one is the reference")
    q.add_argument("--json", action="store_true", help="print one JSON object")
    q.set_defaults(func=_list)

    q = acts.add_parser("reference", help="make a coder's set the reference (used by train, eval, stats)")
    q.add_argument("coder", help="coder id (`list` shows them; 'recording' is the recording's own set)")
    q.set_defaults(func=_reference)

    q = acts.add_parser("delete", help="remove a coder's set (not the reference)")
    q.add_argument("coder", help="coder id")
    q.set_defaults(func=_delete)

    q = acts.add_parser("agree", help="inter-coder agreement: IoU matching, F1, frame-wise kappa, apex distance")
    q.add_argument("--coders", nargs=2, required=True, metavar=("A", "B"), help="the two coders to compare")
    q.add_argument("--json", action="store_true", help="print one JSON object")
    q.set_defaults(func=_agree)

    q = acts.add_parser("merge", help="merge two coders' sets into a new set")
    q.add_argument("--coders", nargs=2, required=True, metavar=("A", "B"), help="the two coders to merge")
    q.add_argument("--into", required=True, help="id of the merged set")
    q.add_argument(
        "--rule",
        choices=MERGE_RULES,
        default="consensus",
        help="consensus: matched pairs only, mean frames (default); mean: also keep unmatched; union: pairs span "
        "both intervals, unmatched kept",
    )
    q.add_argument("--replace", action="store_true", help="replace an existing set of that id")
    q.add_argument("--reference", action="store_true", help="make the merged set the reference")
    q.set_defaults(func=_merge)
