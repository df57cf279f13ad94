"""``mecg info`` and ``mecg validate``: what is in a session file, and is it sound."""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

from mecg.session import Session, Stream, check_session, open_session
from mecg.session.ecg_channel import EcgChannelError, find_ecg, stored_choice
from mecg.sync.clocks import correct_timestamps, fit_clock_offsets
from mecg.sync.segments import StreamTimebase, stream_timebase


def _plain(v: object) -> object:
    """An HDF5 attribute value as plain JSON-ready Python."""
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        v = v.item()
    return None if isinstance(v, float) and v != v else v


def _timebase(st: Stream) -> StreamTimebase | None:
    """The stream's segments as `mecg sync` cuts them (None for markers and streams without a rate or samples)."""
    rate = st.info.nominal_srate_hz
    if st.info.kind == "markers" or not rate > 0 or not st.sample_count:
        return None
    return stream_timebase(st.timestamps, st.clock_offsets, rate, regular=st.info.kind == "signal", number_frames=False)


def _span_s(st: Stream, tb: StreamTimebase | None) -> float:
    """Earliest to latest sample (s) on the recorder's clock (clock offsets applied, resets included): never < 0."""
    if st.sample_count < 2:
        return 0.0
    t = tb.corrected_s if tb is not None else correct_timestamps(st.timestamps, fit_clock_offsets(st.clock_offsets))
    t = t[np.isfinite(t)]
    return float(np.max(t) - np.min(t)) if t.size else 0.0


def recorded_loss(st: Stream) -> dict | None:
    """What the recorder counted missing in a stream (None for files written before it stored counts).

    ``missing``: all samples missing, ``dropped``: those in short steps, ``gap_count``: every gap,
    ``gaps``: ``[start_s, duration_s, missing]`` rows (start: the last timestamp before the gap, LSL
    seconds of the sender; at most the first 2,000 gaps).
    """
    a = st.group.attrs
    if "missing_samples" not in a:
        return None
    rows = np.asarray(a.get("gaps", np.zeros((0, 3))), dtype=np.float64).reshape(-1, 3)
    return {
        "missing": int(a["missing_samples"]),
        "dropped": int(a.get("dropped_samples", 0)),
        "gap_count": int(a.get("gap_count", rows.shape[0])),
        "gaps": [[float(t), float(d), int(m)] for t, d, m in rows],
    }


def summarize(s: Session) -> dict:
    """A JSON-ready summary of a session: streams, annotations, sync status."""
    streams = []
    for st in s.streams.values():
        tb = _timebase(st)
        span = _span_s(st, tb)
        d = {
            "key": st.key,
            "name": st.info.name,
            "type": st.info.type,
            "kind": st.info.kind,
            "source_id": st.info.source_id,
            "nominal_srate_hz": st.info.nominal_srate_hz,
            "effective_srate_hz": round(st.effective_srate_hz, 4),
            "samples": st.sample_count,
            "duration_s": round(span, 3),
            "clock_offsets": int(st.group["clock_offsets"].shape[0]),
        }
        if tb is not None:
            d["timebase"] = tb.summary()
        loss = recorded_loss(st)
        if loss is not None:
            d["loss"] = loss
        if st.info.kind == "video":
            d["frame_shape"] = list(st.info.frame_shape)
        elif st.info.kind == "signal":
            d["channels"] = [
                f"{lab} [{u}]" if u else lab for lab, u in zip(st.info.channel_labels, st.info.channel_units)
            ]
        streams.append(d)
    ann = s.annotations
    sync = dict(s.sync_group.attrs)
    try:  # which channel sync and the model take as the ECG (mecg.session.ecg_channel)
        ch = find_ecg(s)
        ecg = None if ch is None else {"stream": ch.stream, "column": ch.column, "label": ch.label}
    except EcgChannelError as exc:
        ecg = {"problem": str(exc)}
    return {
        "path": str(s.path),
        "format_version": s.format_version,
        "subject_id": s.subject_id,
        "start_time": s.attr("start_time"),
        "end_time": s.attr("end_time"),
        "software_version": s.attr("software_version"),
        "notes": s.notes,
        "complete": s.complete,
        "file_size_bytes": os.path.getsize(s.path),
        "streams": streams,
        "ecg": ecg,
        "ecg_channel_choice": stored_choice(s),
        "annotations": {
            "video_stream": s.annotated_stream,
            "ME": sum(a.type == "ME" for a in ann),
            "MaE": sum(a.type == "MaE" for a in ann),
        },
        "sync": {k: _plain(v) for k, v in sync.items()},
        "features": sorted(s.features_group.keys()),
        "derivatives": str(s.derivatives_path) if s.derivatives is not None else None,
    }


def format_summary(d: dict) -> str:
    """The human-readable form of :func:`summarize`."""
    lines = [
        f"{d['path']}  (mecg session v{d['format_version']}, {d['file_size_bytes'] / 1e6:.1f} MB)",
        f"  subject {d['subject_id'] or '-'}   started {d['start_time']}   "
        + (f"ended {d['end_time']}" if d["complete"] else "NOT CLOSED CLEANLY (recording crashed or is running)"),
    ]
    if d["notes"]:
        lines.append(f"  notes: {d['notes']}")
    lines.append(f"  streams ({len(d['streams'])}):")
    for st in d["streams"]:
        rate = f"{st['nominal_srate_hz']:g} Hz nominal, {st['effective_srate_hz']:.3f} Hz measured"
        extra = ""
        if st["kind"] == "video":
            extra = "  frames " + "x".join(str(x) for x in st["frame_shape"])
        elif st["kind"] == "signal":
            chans = st["channels"]  # a pixel stream kept as a signal has thousands: the first 16
            more = f", ... ({len(chans)} channels)" if len(chans) > 16 else ""
            extra = "  channels " + ", ".join(chans[:16]) + more
        lines.append(
            f"    {st['key']:<16} {st['type']:<8} {st['kind']:<7} {st['samples']:>9} samples  "
            f"{st['duration_s']:9.2f} s  {rate}{extra}"
        )
        loss = st.get("loss")
        if loss and (loss["missing"] or loss["gap_count"]):
            unit = "frames" if st["kind"] == "video" else "samples"
            lines.append(
                f"    {'':<16} recorder: {loss['missing']} {unit} missing ({loss['dropped']} dropped, "
                f"{loss['gap_count']} gaps)"
            )
            for t, dur, miss in loss["gaps"][:20]:
                lines.append(f"    {'':<16}   gap at {t:.3f} s: {dur:.3f} s, {miss} {unit} missing")
            if loss["gap_count"] > 20:
                lines.append(f"    {'':<16}   ... {loss['gap_count'] - 20} more (mecg info --json lists them)")
        tb = st.get("timebase")
        if tb and (tb["segments"] > 1 or tb["nan_timestamps"]):
            lines.append(
                f"    {'':<16} {tb['segments']} segments: {tb['gaps']} gaps ({tb['gap_total_s']:.2f} s, "
                f"~{tb['samples_lost']} samples missing), {tb['resets']} clock resets, {tb['drops']} runs of lost "
                f"samples, {tb['nan_timestamps']} NaN timestamps"
            )
    ecg, choice = d["ecg"], d["ecg_channel_choice"]
    chosen = f" (chosen at recording: --ecg-channel {choice})" if choice else ""
    if ecg is None:
        lines.append("  ECG: none (no stream of type ECG, no channel labelled ECG/EKG)")
    elif "problem" in ecg:
        lines.append(f"  ECG: {ecg['problem']}")
    else:
        lines.append(f"  ECG: {ecg['stream']}:{ecg['label']} (column {ecg['column']}){chosen}")
    a = d["annotations"]
    if a["ME"] or a["MaE"]:
        lines.append(f"  annotations: {a['ME']} ME, {a['MaE']} MaE on stream {a['video_stream']}")
    else:
        lines.append("  annotations: none")
    sync = d["sync"]
    if sync.get("mode"):
        unc = sync.get("uncertainty_ms")
        verdict = sync.get("verdict") or "not judged (synced before verdicts)"
        lines.append(
            f"  sync: {sync['mode']}, verdict {verdict}, uncertainty "
            + ("n/a" if unc is None else f"+-{unc:.3f} ms")
            + f", offset {sync.get('offset_ms', float('nan')):.3f} ms"
            + f", drift {sync.get('drift_ppm', float('nan')):.2f} ppm"
            + (f", residual RMS {rms:.3f} ms" if (rms := sync.get("residual_rms_ms")) is not None else "")
        )
        if sync.get("frames") is not None and sync.get("frames_aligned") is not None:
            lines.append(
                f"        {sync['frames_aligned']} of {sync['frames']} frames aligned, "
                f"{sync.get('frames_in_ecg_gap', 0)} in ECG gaps"
            )
        for r in str(sync.get("reasons") or "").splitlines():
            lines.append(f"        reason: {r}")
    else:
        lines.append("  sync: not run (use `mecg sync`)")
    if d["features"]:
        lines.append("  cached features: " + ", ".join(d["features"]))
    return "\n".join(lines)


def _info(args: argparse.Namespace) -> int:
    with open_session(args.session) as s:
        d = summarize(s)
    print(json.dumps(d, indent=2) if args.json else format_summary(d))
    return 0


def time_anomalies(s: Session) -> tuple[dict, list[str]]:
    """Each stream's segments (gaps, clock resets, runs of lost samples, NaN times) and a line per anomaly.

    The segments are those `mecg sync` cuts (mecg.sync.segments): a recording with them is valid, but
    its sample index is not its time across them.
    """
    table, lines = {}, []
    for st in s.streams.values():
        tb = _timebase(st)
        if tb is None:
            continue
        d = tb.summary()
        table[st.key] = d
        if d["segments"] > 1 or d["nan_timestamps"]:
            lines.append(
                f"{st.key}: time runs in {d['segments']} segments: {d['gaps']} gaps ({d['gap_total_s']:.2f} s, "
                f"~{d['samples_lost']} samples missing), {d['resets']} clock resets, {d['drops']} runs of lost "
                f"samples, {d['nan_timestamps']} NaN timestamps (mecg sync aligns each segment; see mecg info)"
            )
    return table, lines


def _validate(args: argparse.Namespace) -> int:
    rep, s = check_session(args.session, deep=args.deep)
    times: dict = {}
    if s is not None:
        try:
            if rep.valid:
                times, lines = time_anomalies(s)
                rep.warnings.extend(lines)
        finally:
            s.close()
    if args.json:
        print(json.dumps({**rep.as_dict(), "time": times}, indent=2))
        return 0 if rep.valid else 1
    if not rep.valid:
        print(f"invalid: {rep.errors[0]}", file=sys.stderr)
        return 1
    note = "" if rep.complete else " (not closed cleanly: readable up to the last flush)"
    deep = ""
    if args.deep:
        chunks = sum(st.chunks_read for st in rep.streams)
        frames = sum(st.frames_decoded for st in rep.streams)
        deep = f"; deep: {chunks} chunk(s) read and checked, {frames} frame(s) decoded"
    print(f"valid: {rep.path}, {len(rep.streams)} stream(s), format v{rep.format_version}{note}{deep}")
    for w in rep.warnings if args.deep else [w for w in rep.warnings if "segments" in w]:
        print(f"warning: {w}", file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``info`` and ``validate`` to the ``mecg`` parser."""
    p = sub.add_parser("info", help="summarize a session file", description="Summarize a session file.")
    p.add_argument("session", help="session .h5 file")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.set_defaults(func=_info)
    p = sub.add_parser(
        "validate",
        help="check a session file (exit 0 valid, 1 invalid)",
        description="Check structure, schema, version and integrity of a session file and its derivatives. "
        "Exit 0 if valid, 1 with a reason if not. --deep reads every chunk (checksums), decodes every frame "
        "and checks every timestamp.",
    )
    p.add_argument("session", help="session .h5 file")
    p.add_argument(
        "--deep", action="store_true", help="read and check every chunk, frame and timestamp (slow: reads the file)"
    )
    p.add_argument("--json", action="store_true", help="print the report as one JSON object (errors, warnings)")
    p.set_defaults(func=_validate)
