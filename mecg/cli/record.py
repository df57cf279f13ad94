"""``mecg record`` / ``mecg-record``: record LSL streams into one session file, with a live status.

The engine is :class:`mecg.acquire.recorder.Recorder`; device options start the drivers in this
process (:class:`mecg.acquire.rig.Rig`), ``--simulate`` a whole simulated lab. Ctrl-C or SIGTERM
stops cleanly (the file is closed and marked complete, exit 0); a second Ctrl-C hurries. User
errors (no stream, missing port or camera, output exists, disk full) print one message and exit 2.
See docs/recording.md.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from mecg.acquire.naming import auto_session_path
from mecg.acquire.readable import hms, size_text
from mecg.cli.argtypes import FPS, PER_MINUTE, RATE_HZ, RT_PRIORITY, bounded, parse_size
from mecg.cli.live_spot import add_live_spot_arguments, check_live_spot
from mecg.cli.outputs import check_folder_writable
from mecg.cli.stream import add_lsl_options, apply_lsl_options, gap_range
from mecg.errors import MecgError

if TYPE_CHECKING:
    from mecg.acquire.live_analysis import LiveAnalysis
    from mecg.acquire.recorder import Recorder, RecorderConfig
    from mecg.acquire.rig import Rig, RigConfig
    from mecg.acquire.sim_truth import ExpressionJournal
    from mecg.acquire.stream_metadata import StreamQuery

#: Longest --duration (s): a week.
MAX_DURATION_S = 7 * 86400.0


# -- options -----------------------------------------------------------------------------------
def parse_duration(text: str) -> float:
    """``"90"`` / ``"90s"`` / ``"10m"`` / ``"1h30m"`` -> seconds (> 0)."""
    t = text.strip().lower()
    m = re.fullmatch(r"(?:(\d+(?:\.\d*)?)h)?(?:(\d+(?:\.\d*)?)m)?(?:(\d+(?:\.\d*)?)s?)?", t)
    if not t or not m or not any(m.groups()):
        raise argparse.ArgumentTypeError(f"duration must look like 90, 90s, 10m or 1h30m, got {text!r}")
    h, mi, s = (float(g) if g else 0.0 for g in m.groups())
    v = h * 3600 + mi * 60 + s
    if not 0 < v <= MAX_DURATION_S:
        raise argparse.ArgumentTypeError(f"duration must be > 0 and at most 7 days, got {text!r}")
    return v


# -- the live status ----------------------------------------------------------------------------
def format_status(st, duration_s: float | None, width: int = 20) -> list[str]:
    """The one-screen status of a :class:`~mecg.acquire.recorder.RecorderStatus`, as lines."""
    head = f"REC {Path(st.path).name}  {hms(st.elapsed_s)}"
    if duration_s:
        frac = min(1.0, st.elapsed_s / duration_s)
        fill = round(frac * width)
        head += (
            f" / {hms(duration_s)}  [{'#' * fill}{'-' * (width - fill)}] {frac * 100:3.0f}%  "
            f"{hms(duration_s - st.elapsed_s)} left"
        )
    hr = f"{st.heart_rate_bpm:.0f} bpm" if st.heart_rate_bpm else "--"
    lines = [
        head,
        f"file {size_text(st.file_bytes)} ({size_text(st.free_mb * 1e6)} free)   "
        f"heart rate {hr}   triggers {st.markers}",
        f"{'stream':<18} {'type':<8} {'rate Hz':>8} {'samples':>9} {'missing':>7} {'gaps':>4} "
        f"{'last timestamp':>15}  state",
    ]
    for s in st.streams:
        regular = s.nominal_srate_hz > 0
        last = "-" if math.isnan(s.last_ts) else f"{s.last_ts:.3f}"
        lines.append(
            f"{s.key[:18]:<18} {s.type[:8]:<8} {s.rate_hz:8.1f} {s.samples:9d} "
            f"{s.missing if regular else '-':>7} {s.gaps if regular else '-':>4} {last:>15}  {s.state}"
        )
    return lines


def loss_text(s) -> str:
    """``missing N (dropped a, k gaps b)`` of a regular stream that lost samples, else ``""``."""
    if not s.missing and not s.gaps:
        return ""
    parts = [f"dropped {s.dropped}"] + (
        [f"{s.gaps} gap{'s' if s.gaps != 1 else ''} {s.missing - s.dropped}"] if s.gaps else []
    )
    return f"missing {s.missing} ({', '.join(parts)})"


def status_line(st, duration_s: float | None) -> str:
    """A compact one-line status (for logs that are not a terminal)."""
    parts = [f"{hms(st.elapsed_s)}" + (f"/{hms(duration_s)}" if duration_s else "")]
    for s in st.streams:
        extra = f" {loss}" if (loss := loss_text(s)) else ""
        parts.append(f"{s.key} {s.samples} ({s.rate_hz:.1f} Hz{extra}, {s.state})")
    if st.heart_rate_bpm:
        parts.append(f"HR {st.heart_rate_bpm:.0f} bpm")
    parts.append(f"triggers {st.markers}")
    parts.append(size_text(st.file_bytes))
    return " | ".join(parts)


class _Display:
    """Redraws the status block on a terminal (throttled); prints a line every ``every_s`` otherwise."""

    def __init__(self, stream, duration_s: float | None, every_s: float | None, quiet: bool) -> None:
        self.out, self.duration_s, self.quiet = stream, duration_s, quiet
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.every_s = every_s if every_s is not None else (0.5 if self.tty else 10.0)
        self._lines = 0
        self._last = -math.inf

    def _clear(self) -> None:
        if self.tty and self._lines:
            self.out.write(f"\x1b[{self._lines}A\x1b[J")
            self._lines = 0

    def events(self, messages: list[str]) -> None:
        if not messages:
            return
        self._clear()
        for m in messages:
            self.out.write(m + "\n")
        self.out.flush()
        self._last = -math.inf  # redraw the block under them

    def update(self, st, force: bool = False) -> None:
        now = time.monotonic()
        if self.quiet or (not force and now - self._last < self.every_s):
            return
        self._last = now
        if self.tty:
            self._clear()
            lines = format_status(st, self.duration_s)
            self.out.write("\n".join(lines) + "\n")
            self._lines = len(lines)
        else:
            self.out.write(status_line(st, self.duration_s) + "\n")
        self.out.flush()

    def finish(self) -> None:
        self._clear()
        self.out.flush()


def format_summary(st) -> str:
    """The end-of-recording summary."""
    state = "complete" if st.complete else "NOT complete (recording failed; data up to the failure is kept)"
    lines = [
        f"recorded {hms(st.elapsed_s)} ({st.elapsed_s:.1f} s) to {st.path} ({size_text(st.file_bytes)}), file {state}",
        f"{'stream':<18} {'type':<8} {'samples':>9} {'mean Hz':>9} {'missing':>7} {'dropped':>7} {'gaps':>4} "
        f"{'gap s':>6} {'offsets':>7} {'latency ms (median/p95)':>24}",
    ]
    for s in st.streams:
        span = s.last_ts - s.first_ts
        mean = (s.samples - 1) / span if s.samples > 1 and span > 0 else 0.0
        lat = "-" if math.isnan(s.latency_ms[0]) else f"{s.latency_ms[0]:.1f} / {s.latency_ms[1]:.1f}"
        lines.append(
            f"{s.key[:18]:<18} {s.type[:8]:<8} {s.samples:9d} {mean:9.2f} {s.missing:7d} {s.dropped:7d} {s.gaps:4d} "
            f"{s.gap_s:6.2f} {s.clock_offsets:7d} {lat:>24}" + (f"  [{s.state}]" if s.state != "ok" else "")
        )
        for start, dur, miss in s.gap_table[:10]:
            lines.append(f"{'':<18} gap at {start:.3f} s: {dur:.2f} s, {miss} missing")
        if len(s.gap_table) > 10:
            lines.append(f"{'':<18} ... {len(s.gap_table) - 10} more gaps (mecg info lists them)")
    hr = f"{st.heart_rate_bpm:.0f} bpm" if st.heart_rate_bpm else "n/a"
    lines.append(f"heart rate at the end {hr}; {st.markers} markers")
    return "\n".join(lines)


def visible_streams(wait_s: float, hosts: tuple[str, ...] = ()) -> list[dict]:
    """The LSL streams this computer sees within ``wait_s`` (s), one dict each, sorted by type and name."""
    import pylsl

    seen = {}
    for i in pylsl.resolve_streams(wait_time=wait_s):
        if hosts and i.hostname() not in hosts:
            continue
        seen[(i.source_id() or i.uid(), i.name(), i.type(), i.hostname())] = {
            "name": i.name(),
            "type": i.type(),
            "host": i.hostname(),
            "source_id": i.source_id(),
            "channels": i.channel_count(),
            "rate_hz": i.nominal_srate(),
        }
    return sorted(seen.values(), key=lambda d: (d["type"].lower(), d["name"], d["host"], d["source_id"]))


def format_streams(streams: list[dict]) -> str:
    """A table of :func:`visible_streams`: name, type, host, source id, channels, rate."""
    rows = [("name", "type", "host", "source id", "channels", "rate Hz")] + [
        (
            s["name"],
            s["type"],
            s["host"],
            s["source_id"] or "-",
            str(s["channels"]),
            "irregular" if s["rate_hz"] == 0 else f"{s['rate_hz']:g}",
        )
        for s in streams
    ]
    width = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, width)).rstrip() for r in rows)


def _nothing_chosen(hosts: tuple[str, ...], wait_s: float) -> str:
    """The message of ``mecg record`` without a choice: what it sees, and how to choose."""
    streams = visible_streams(wait_s, hosts)
    seen = (
        f"LSL streams seen{' on ' + ', '.join(hosts) if hosts else ''}:\n{format_streams(streams)}\n"
        if streams
        else f"no LSL stream is visible{' on ' + ', '.join(hosts) if hosts else ''} (LSL looked for {wait_s:g} s)\n"
    )
    return (
        "no streams chosen, nothing recorded: another experiment's streams on the same network would be "
        f"recorded too.\n{seen}"
        "Choose with --stream NAME|TYPE|SOURCE_ID (repeatable), e.g. --stream ECG --stream FaceCamera, or "
        "record every visible stream with --all; device options (--simulate, --ecg-port, --camera, ...) "
        "record the devices they start"
    )


# -- the command --------------------------------------------------------------------------------
@dataclass(frozen=True)
class RecordOptions:
    """One ``mecg record`` run's choices, from its parsed options; the output file is already checked.

    Times in s, sizes in MB. ``rig``: the devices started here (empty: none). ``wanted``: the LSL
    streams chosen by ``--stream``/``--type``/``--name``/``--source-id``/``--all`` (within ``hosts``).
    """

    path: Path
    rig: RigConfig
    wanted: tuple[StreamQuery, ...]
    hosts: tuple[str, ...]
    lsl_config: str
    subject: str = ""
    notes: str = ""
    overwrite: bool = False
    duration_s: float | None = None
    wait_s: float = 5.0
    min_free_mb: float = 500.0
    buffer_s: float | None = None
    buffer_max_mb: float = 2000.0
    ecg_channel: str = ""
    status_every_s: float | None = None
    quiet: bool = False
    json: bool = False
    live_spot: str | None = None
    ccf_eta: float | None = None
    video_codec: str = "deflate"

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> RecordOptions:
        """Choose the LSL configuration and the output file, and check the file can be written (before any device)."""
        lsl_config = apply_lsl_options(args)
        from mecg.acquire.recorder import check_output

        path = _output_path(args.out, args.session_dir, args.subject or "")
        live = check_live_spot(getattr(args, "live_spot", None))
        check_output(path, args.overwrite, args.min_free_mb)
        check_folder_writable(path.parent, f"--out {path}")  # a read-only disk too (permission bits do not show it)
        hosts = tuple(args.host or ())
        return cls(
            path=path,
            rig=rig_config(args),
            wanted=_wanted(args, hosts),
            hosts=hosts,
            lsl_config=lsl_config,
            subject=args.subject or "",
            notes=args.notes or "",
            overwrite=args.overwrite,
            duration_s=args.duration,
            wait_s=args.wait,
            min_free_mb=args.min_free_mb,
            buffer_s=args.buffer_s,
            buffer_max_mb=args.buffer_max_mb,
            ecg_channel=args.ecg_channel or "",
            status_every_s=args.status_every,
            quiet=args.quiet,
            json=args.json,
            live_spot=live,
            ccf_eta=getattr(args, "ccf_eta", None),
            video_codec=getattr(args, "video_codec", "deflate"),
        )

    def live_analysis(self) -> LiveAnalysis | None:
        """``--live-spot``: the live spotter beside the recorder, in a process of its own, started now (with the
        model loaded), before recording."""
        if self.live_spot is None:
            return None
        from mecg.acquire.live_analysis import LiveAnalysis
        from mecg.model.live_spotter import LiveSpotParams, LiveSpotter

        ck = None
        eta = self.ccf_eta
        if self.live_spot != "baseline":
            from mecg.model.spotting import DEFAULT_ETA, load_spotter

            ck = load_spotter(self.live_spot)
            eta = DEFAULT_ETA if eta is None else eta
            fps = self.rig.fps or (150.0 if self.rig.simulate else None)  # the camera started here, when known
            from mecg.model.frontend import default_k

            if fps and default_k(fps) != ck.frontend.k_frames:
                raise MecgError(
                    f"--live-spot {self.live_spot}: the model was trained on features for k={ck.frontend.k_frames} "
                    f"frames, not for {fps:g} fps video; give --fps of the model's rate or spot live with the baseline"
                )
        params = LiveSpotParams(method="baseline" if ck is None else "cmclnet", ccf_eta=eta)
        live = LiveAnalysis(LiveSpotter(self.path.stem, params, ck, self.ecg_channel), process=True)
        live.prepare()
        return live

    def recorder_config(
        self, required: tuple[StreamQuery, ...], analysis: LiveAnalysis | None = None
    ) -> RecorderConfig:
        """The recorder's configuration: the wanted streams, plus ``required`` ones (the rig's devices);
        ``analysis`` runs beside it (``--live-spot``)."""
        from mecg.acquire.recorder import RecorderConfig

        return RecorderConfig(
            path=self.path,
            subject_id=self.subject,
            notes=self.notes,
            overwrite=self.overwrite,
            queries=self.wanted,
            required=required,
            wait_s=self.wait_s,
            min_free_mb=self.min_free_mb,
            buffer_s=self.buffer_s,
            buffer_max_mb=self.buffer_max_mb,
            ecg_channel=self.ecg_channel,
            video_codec=self.video_codec,
            analysis=analysis,
        )


def _output_path(out: str | None, session_dir: str | None, subject: str) -> Path:
    """``--out``, or a new automatically named file in ``--session-dir`` (created; default: here)."""
    if out:
        return Path(out)
    folder = Path(session_dir or ".")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MecgError(f"cannot create the session folder {folder}: {exc.strerror or exc}") from None
    return auto_session_path(folder, subject)


def _wanted(args: argparse.Namespace, hosts: tuple[str, ...]) -> tuple[StreamQuery, ...]:
    """The streams the selection options choose (empty: none chosen)."""
    from mecg.acquire.stream_metadata import StreamQuery

    if args.all:
        return (StreamQuery(hosts=hosts),)
    wanted: tuple[StreamQuery, ...] = ()
    if args.type or args.name or args.source_id:
        sel = StreamQuery(
            types=tuple(args.type or ()),
            names=tuple(args.name or ()),
            source_ids=tuple(args.source_id or ()),
            hosts=hosts,
        )
        wanted += (sel,)
    return wanted + tuple(StreamQuery(streams=(w,), hosts=hosts) for w in args.stream or ())


class _Run:
    """One recording: its devices, recorder and journal, and how it stops.

    Until recording runs, Ctrl-C and SIGTERM abort the start (nothing is written); afterwards the
    first one stops cleanly and a second hurries (the file is still closed).
    """

    def __init__(self, opts: RecordOptions, err: TextIO) -> None:
        self.opts, self.err = opts, err
        self.rig: Rig | None = None
        self.rec: Recorder | None = None
        self.journal: ExpressionJournal | None = None
        self.stop = threading.Event()
        self.stop_reason = ""
        self.recording = False
        self.live: LiveAnalysis | None = None
        self.live_shown = 0
        self.live_error_shown = False

    def _on_signal(self, signum: int, _frame: object) -> None:
        if not self.recording or self.stop_reason:
            raise KeyboardInterrupt
        self.stop_reason = "Ctrl-C" if signum == signal.SIGINT else "SIGTERM"
        self.stop.set()

    @property
    def _writing(self) -> bool:
        return self.rec is not None and self.rec.writer is not None

    def record(self) -> str | None:
        """Start and record until a stop; why it stopped, or None when stopped before anything was written."""
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            self._start()
            return self._watch()
        except KeyboardInterrupt:
            if self._writing:
                return "interrupted twice"
            if self.rig is not None:
                self.rig.close()
            print("stopped before recording started; nothing written", file=self.err)
            return None
        finally:
            for s, h in old.items():
                signal.signal(s, h)
            if not self._writing:
                if self.rig is not None:
                    self.rig.close()
                if self.journal is not None:
                    self.journal.close(remove=True)

    def _start(self) -> None:
        """Start the devices, find the streams and start writing; tell what is recorded."""
        from mecg.acquire.recorder import Recorder
        from mecg.acquire.rig import Rig

        o, err = self.opts, self.err
        self.live = o.live_analysis()
        if not o.rig.empty:
            self.rig = Rig(o.rig).start()
            for line in self.rig.describe():
                print(line, file=err)
            self.journal = _start_journal(self.rig, o.path)
        if self.rig is None and not o.wanted:
            raise MecgError(_nothing_chosen(o.hosts, min(o.wait_s, 2.0)))
        rec = self.rec = Recorder(o.recorder_config(self.rig.queries() if self.rig is not None else (), self.live))
        if not o.quiet:
            looking = (
                f"required: {', '.join(self.rig.source_ids.values())}"
                if self.rig is not None
                else f"wanted: {', '.join(q.describe() for q in o.wanted)}"
            )
            print(f"looking for LSL streams ({looking}; LSL config: {o.lsl_config})", file=err, flush=True)
        rec.start()
        self.recording = True
        st = rec.status()
        for m in rec.events():
            print(m, file=err)
        streams = ", ".join(
            f"{s.key} ({s.type}, {s.nominal_srate_hz:g} Hz, source_id {s.source_id})" for s in st.streams
        )
        dur = f" for {hms(o.duration_s)}" if o.duration_s else " until Ctrl-C"
        print(f"recording{dur} to {o.path}: {streams}", file=err, flush=True)
        if o.duration_s:
            need_mb = rec.bytes_per_s() * o.duration_s / 1e6
            if need_mb > st.free_mb - o.min_free_mb:
                print(
                    f"warning: this recording needs about {need_mb:.0f} MB but only {st.free_mb:.0f} MB are free: "
                    f"it will stop when {o.min_free_mb:.0f} MB are left",
                    file=err,
                )

    def _watch(self) -> str:
        """Show the status and the news until a signal, the duration or a failure stops the recording; why."""
        o, rec, rig = self.opts, self.rec, self.rig
        display = _Display(self.err, o.duration_s, o.status_every_s, o.quiet)
        shown: set[str] = set()
        while True:
            # the duration is checked on the clock, not through status() (which a loaded machine can make slow)
            left = o.duration_s - rec.elapsed_s() if o.duration_s else math.inf
            if self.stop.wait(min(0.1, max(0.0, left))):
                reason = self.stop_reason
                break
            if o.duration_s and rec.elapsed_s() >= o.duration_s:
                reason = "duration reached"
                break
            st = rec.status()
            if rec.failure is not None:
                reason = "failure"
                break
            news = rec.events() + [f"device problem: {m}" for m in (rig.problems() if rig else []) if m not in shown]
            news += self._live_news()
            shown.update(m[len("device problem: ") :] for m in news if m.startswith("device problem: "))
            display.events(news)
            display.update(st)
        display.finish()
        return reason

    def _live_news(self) -> list[str]:
        """One line per live-spotted candidate not shown yet."""
        if self.live is None:
            return []
        from mecg.cli.live_spot import candidate_line

        events = self.live.events()
        lines = [candidate_line(ev, produced, self.rec.start_lsl) for produced, ev in events[self.live_shown :]]
        self.live_shown = len(events)
        error = self.live.stats.error
        if error and not self.live_error_shown:  # e.g. a model for another frame rate: said at once, not at the end
            self.live_error_shown = True
            lines.append(f"live spotting: {error}; the recording goes on")
        return [x for x in lines if x]

    def finish(self, reason: str) -> int:
        """Stop in order (the recorder drains what the drivers sent, then the drivers stop); print the results."""
        o, err, rec, rig, journal = self.opts, self.err, self.rec, self.rig, self.journal
        try:
            final = rec.stop()
        finally:
            if rig is not None:
                rig.close()
        for m in rec.events() + self._live_news():
            print(m, file=err)
        if not o.quiet:
            print(f"stopped: {reason}", file=err)
        print(format_summary(final), file=err)
        live = None
        if self.live is not None:
            from mecg.cli.live_spot import live_summary

            live = live_summary(self.live)
            print(live["text"], file=err)
        camera = rig.simulation.camera if rig is not None and rig.simulation is not None else None
        if final.complete and camera is not None:
            from mecg.acquire.sim_truth import annotate_simulated

            counts = annotate_simulated(o.path, camera)
            if counts is not None:
                print(f"annotations of the simulated participant written: {counts[0]} ME, {counts[1]} MaE", file=err)
        if journal is not None:
            journal.close(remove=final.complete)
            if not final.complete:
                print(
                    f"the simulated participant's expressions are kept in {journal.path.name}: after the failure is "
                    f"fixed, `mecg record --recover-annotations {o.path}` writes them as annotations",
                    file=err,
                )
        if final.complete:
            print(f"next: mecg validate {o.path} && mecg sync {o.path}", file=err, flush=True)
        if o.json:
            d = final.as_dict()
            d["stopped_by"] = reason
            d["devices"] = rig.stats() if rig is not None else {}
            if live is not None:
                d["live_spot"] = {k: v for k, v in live.items() if k != "text"}
            print(json.dumps(d))
        if rec.failure is not None:
            raise rec.failure
        return 0


def _record(args: argparse.Namespace) -> int:
    """``mecg record``: parse, record, print."""
    if args.recover_annotations:
        return _recover_annotations(Path(args.recover_annotations))
    run = _Run(RecordOptions.from_args(args), sys.stderr)
    reason = run.record()
    return 130 if reason is None else run.finish(reason)


def _start_journal(rig: Rig, path: Path) -> ExpressionJournal | None:
    """Journal the simulated participant's expressions beside ``path`` as they happen (see sim_truth)."""
    if rig.simulation is None or rig.simulation.camera is None:
        return None
    from mecg.acquire.sim_truth import start_journal

    return start_journal(path, rig.simulation.camera)


def _recover_annotations(path: Path) -> int:
    """``--recover-annotations``: annotations of a killed simulated recording, from its journal."""
    from mecg.acquire.sim_truth import recover_simulated_annotations

    n = recover_simulated_annotations(path)
    print(f"annotations of the simulated participant recovered from its journal: {n} written for {path}")
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``mecg record`` (shared with ``mecg-record``)."""
    o = p.add_argument_group("output")
    g = o.add_mutually_exclusive_group()
    g.add_argument("--out", metavar="FILE.h5", help="session file to write")
    g.add_argument(
        "--session-dir",
        metavar="DIR",
        help="folder (created if needed) for an automatically named file SUBJECT_YYYYmmdd-HHMMSS.h5 "
        "(default: the current folder)",
    )
    o.add_argument(
        "--recover-annotations",
        metavar="FILE.h5",
        help="only write the annotations journaled beside a simulated recording that was killed before "
        "its clean close (FILE.sim-annotations.jsonl), then exit",
    )
    o.add_argument("--subject", default="", help="pseudonymous participant id, e.g. P-0042 (never a name)")
    o.add_argument("--notes", default="", help="free text kept with the session")
    o.add_argument(
        "--duration",
        type=parse_duration,
        default=None,
        help="stop after this long: 90, 90s, 10m, 1h30m (default: until Ctrl-C)",
    )
    o.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    o.add_argument(
        "--video-codec",
        choices=("deflate", "blosc-lz4", "lz4", "zstd"),
        default="deflate",
        help="lossless video codec (default deflate: any HDF5 reader; blosc-lz4/lz4/zstd decode 3-5x faster "
        "but other tools need hdf5plugin or the HDF5 filter plugin; docs/session-format.md)",
    )
    o.add_argument(
        "--min-free-mb",
        type=bounded(float, 0, 1e9, unit="MB"),
        default=500.0,
        help="refuse to start, or stop, when the disk has less free space (MB, default 500)",
    )

    s = p.add_argument_group(
        "which LSL streams (choose with --stream or --all: without, mecg record lists what it sees and "
        "stops; with device options: the devices started here, plus what these options select)"
    )
    s.add_argument(
        "--stream",
        action="append",
        metavar="NAME|TYPE|ID",
        help="record the streams with this name, type or source_id (repeatable)",
    )
    s.add_argument(
        "--all", action="store_true", help="record every stream this computer sees (with --host: sent from there)"
    )
    s.add_argument("--type", action="append", metavar="TYPE", help="record streams of this type (repeatable)")
    s.add_argument("--name", action="append", metavar="NAME", help="record streams of this name (repeatable)")
    s.add_argument(
        "--source-id", action="append", metavar="ID", help="record the stream with this source_id (repeatable)"
    )
    s.add_argument("--host", action="append", metavar="HOST", help="only streams sent from this host (repeatable)")
    s.add_argument(
        "--ecg-channel",
        metavar="[STREAM:]LABEL|INDEX",
        default="",
        help="the ECG channel, e.g. OpenBCI:ECG or EXG:3 (INDEX 0-based), stored in the session for sync and "
        "the model (default: the one stream of type ECG or with a channel labelled ECG/EKG)",
    )
    s.add_argument(
        "--wait",
        type=bounded(float, 0, 3600, lo_open=True, unit="s"),
        default=5.0,
        help="seconds to wait for the streams (default 5)",
    )

    add_device_arguments(p)

    b = p.add_argument_group("buffers (ride out outages; docs/recording.md 'Buffers and outages')")
    b.add_argument(
        "--buffer-s",
        type=bounded(float, 0, 86400, lo_open=True, unit="s"),
        default=None,
        help="what each inlet may hold while the recorder is behind, s (default: 15 for video within "
        "--buffer-max-mb, 360 for signals; markers count in hundreds)",
    )
    b.add_argument(
        "--buffer-max-mb",
        type=bounded(float, 1, 1e7, unit="MB"),
        default=2000.0,
        help="memory cap of one inlet buffer, MB (default 2000): the default video buffer shrinks to fit, "
        "a larger --buffer-s is refused",
    )

    add_live_spot_arguments(p)

    v = p.add_argument_group("display")
    v.add_argument(
        "--status-every",
        type=bounded(float, 0, 3600, lo_open=True, unit="s"),
        default=None,
        help="seconds between status updates (default 0.5 on a terminal, 10 otherwise)",
    )
    v.add_argument("--quiet", action="store_true", help="no live status; only the summary")
    v.add_argument("--json", action="store_true", help="print the summary as one JSON object on stdout")
    add_lsl_options(p)


def add_device_arguments(p: argparse.ArgumentParser) -> None:
    """The device options (``--simulate``, ``--ecg-port``, ``--camera``, ...), shared with ``mecg app``."""
    d = p.add_argument_group("devices started by this command (instead of separate `mecg stream` commands)")
    d.add_argument(
        "--simulate",
        action="store_true",
        help="start a simulated amplifier, trigger box and camera, and the real drivers on them",
    )
    d.add_argument("--seed", type=int, default=0, help="--simulate: synthetic participant (default 0)")
    d.add_argument(
        "--me-per-min",
        type=PER_MINUTE,
        default=2.5,
        help="--simulate: micro-expressions per minute, 0-60 (default 2.5)",
    )
    d.add_argument(
        "--mae-per-min", type=PER_MINUTE, default=2.0, help="--simulate: macro-expressions per minute, 0-60 (default 2)"
    )
    d.add_argument("--ecg-port", metavar="PORT", help="serial port of the ECG amplifier, e.g. /dev/ttyUSB0")
    d.add_argument(
        "--ecg-protocol", choices=("mecg", "cyton"), default="mecg", help="amplifier protocol (default mecg)"
    )
    d.add_argument("--ecg-rate", type=RATE_HZ, default=None, help="amplifier rate in Hz (default: the device's)")
    d.add_argument("--camera", metavar="CAM", help="camera: device index (0), /dev/videoN, a video file, or sim[:SEED]")
    d.add_argument(
        "--fps", type=FPS, default=None, help="camera frame rate, at most 1000 (default: the camera's; 150 simulated)"
    )
    d.add_argument(
        "--size", type=parse_size, default=None, help="frame size WxH (default: as captured; 640x480 simulated)"
    )
    d.add_argument("--color", action="store_true", help="record RGB frames (default grey)")
    d.add_argument(
        "--camera-rt-priority",
        type=RT_PRIORITY,
        default=None,
        metavar="N",
        help="run the camera's capture thread with real-time priority N (Linux; needs the right to)",
    )
    d.add_argument("--trigger-port", metavar="PORT", help="serial port of the trigger box")
    d.add_argument(
        "--trigger-gap",
        type=gap_range,
        default=(2.0, 8.0),
        metavar="MIN:MAX",
        help="seconds between trigger pulses, drawn at random (default 2:8)",
    )


def rig_config(args: argparse.Namespace) -> RigConfig:
    """The :class:`~mecg.acquire.rig.RigConfig` of the options of :func:`add_device_arguments`."""
    from mecg.acquire.rig import RigConfig

    return RigConfig(
        simulate=args.simulate,
        seed=args.seed,
        me_per_min=args.me_per_min,
        mae_per_min=args.mae_per_min,
        ecg_port=args.ecg_port,
        ecg_protocol=args.ecg_protocol,
        ecg_rate_hz=args.ecg_rate,
        camera=args.camera,
        fps=args.fps,
        size=args.size,
        color=args.color,
        trigger_port=args.trigger_port,
        trigger_gap_s=args.trigger_gap,
        camera_rt_priority=args.camera_rt_priority,
    )


_DESCRIPTION = (
    "Record LSL streams (ECG, camera, markers) into one crash-safe session file, with a live status. "
    "Ctrl-C or SIGTERM stops and closes the file; a crash loses at most about 1 s."
)


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``record`` to the ``mecg`` parser."""
    p = sub.add_parser(
        "record", help="record LSL streams (or devices started here) into a session file", description=_DESCRIPTION
    )
    add_arguments(p)
    p.set_defaults(func=_record)


def main(argv: Sequence[str] | None = None) -> int:
    """``mecg-record``: the same as ``mecg record``."""
    from mecg.cli.main import standalone

    return standalone("mecg-record", _DESCRIPTION, add_arguments, _record, argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
