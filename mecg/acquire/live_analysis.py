"""Live analysis while recording: a bounded hand-over from the recorder's pull threads to an analyser.

The recorder never waits for analysis. Each stream's pull thread, right after it has stored a chunk,
hands a copy to :meth:`LiveAnalysis.push`, which only puts it into a bounded queue: the analysis may
fall at most ``max_queue_s`` of **stream time** behind the video (its timestamps: a camera that
delivers a fifth of its nominal rate does not let the analysis fall five times further behind, and
the candidates come late by at most that much), five times that behind the other streams (so video
is skipped first), and hold at most that many samples at the nominal rate. Beyond either bound the
chunk is **not analysed** (counted in ``skipped`` per stream, the analyser told which samples it
missed) and the recording goes on untouched. One analysis thread
takes chunks from the queue and feeds the analyser (an object of the model room, given by the CLI or
the app: acquire never imports model). The analyser returns events (a text and a time on the
recorder's LSL clock), which go

* into the session being written, as a markers stream of their own (``events_name``, type
  :data:`~mecg.session.live_events.EVENTS_TYPE`), while the file is still open (a closed recording
  is never written again);
* to :meth:`LiveAnalysis.events` for a live display (with the LSL time each one was produced).

At :meth:`~mecg.acquire.recorder.Recorder.stop` the recorder calls :meth:`LiveAnalysis.finish`
before it closes the file: the queue is drained (at most ``finish_timeout_s``), the analyser's last
events are written, and its summary goes into the events stream's attributes.

With ``process=True`` the analyser runs in a process of its own (started with ``spawn``; the analyser is
pickled to it): the analysis thread only hands the chunks over a pipe, so the analysis has its own
interpreter lock and core, and the recorder's pull and writer threads (and simulated devices in the same
process) never wait for it. The bounds, the events and the summary are the same as in a thread; a process
that dies is reported in ``stats.error`` and the recording goes on.
"""

from __future__ import annotations

import collections
import math
import multiprocessing
import queue
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pylsl

from mecg.errors import MecgError
from mecg.session import StreamInfo, StreamKind
from mecg.session.live_events import EVENTS_TYPE, LiveEvent

__all__ = ["EVENTS_TYPE", "LiveAnalyser", "LiveAnalysis", "LiveAnalysisStats", "LiveEvent"]


class LiveAnalyser(Protocol):
    """What :class:`LiveAnalysis` feeds; every method runs in the analysis thread only.

    ``add_stream`` is told of each recorded stream before its data and says whether it wants it;
    ``feed`` gets the samples ``first .. first + len(ts) - 1`` (counted from the stream's first) with
    their LSL timestamps (sender clock); ``skip`` names samples that were recorded but not handed over
    (queue full); ``clock_offset`` gets each measured clock offset (s) of a stream; ``finish`` is
    called once at the end; ``summary`` is stored with the events.
    """

    def add_stream(self, key: str, info: StreamInfo) -> bool: ...

    def feed(self, key: str, first: int, data: np.ndarray | list, ts: np.ndarray) -> list[LiveEvent]: ...

    def skip(self, key: str, first: int, count: int) -> list[LiveEvent]: ...

    def clock_offset(self, key: str, offset_s: float) -> list[LiveEvent]: ...

    def finish(self) -> list[LiveEvent]: ...

    def summary(self) -> dict[str, object]: ...


@dataclass
class LiveAnalysisStats:
    """Counters of the hand-over: chunks and samples analysed and skipped per stream, events, errors."""

    fed_samples: dict[str, int] = field(default_factory=dict)
    skipped_samples: dict[str, int] = field(default_factory=dict)
    events: int = 0
    error: str = ""

    @property
    def skipped(self) -> int:
        """Samples of all streams recorded but not analysed (queue full)."""
        return sum(self.skipped_samples.values())


class LiveAnalysis:
    """Runs a :class:`LiveAnalyser` beside a recorder: bounded queue, one thread, events to the session.

    Parameters
    ----------
    analyser : LiveAnalyser
        What to run (e.g. :class:`mecg.model.live_spotter.LiveSpotter`).
    events_name : str
        Name of the markers stream the events are stored in.
    max_queue_s : float
        How far (s of the stream's timestamps) the analysis may fall behind the video before its
        chunks are skipped; five times that for the other streams. The queue also holds at most that
        many samples at each stream's nominal rate.
    finish_timeout_s : float
        At stop, how long the analysis may take to catch up (s); what is left then is skipped.
    process : bool
        Run the analyser in a process of its own (it must pickle); :meth:`prepare` starts it early.
    start_timeout_s : float
        ``process``: how long :meth:`prepare` waits for the process to import and unpickle the analyser (s).
    """

    def __init__(
        self,
        analyser: LiveAnalyser,
        *,
        events_name: str = "mecg live spots",
        max_queue_s: float = 1.0,
        finish_timeout_s: float = 30.0,
        process: bool = False,
        start_timeout_s: float = 120.0,
    ) -> None:
        self.analyser = analyser
        self.process = process
        self.start_timeout_s = start_timeout_s
        self.events_name = events_name
        self.max_queue_s = max_queue_s
        self.finish_timeout_s = finish_timeout_s
        self.stats = LiveAnalysisStats()
        self._queue: queue.Queue = queue.Queue()
        self._pending: dict[str, int] = {}  # samples queued per video stream
        self._limit: dict[str, int] = {}
        self._limit_s: dict[str, float] = {}  # how far (s of stream time) the analysis may fall behind
        self._queued_t: dict[str, collections.deque[float]] = {}  # first timestamp of each queued chunk
        self._counts: dict[str, int] = {}  # samples seen per stream (the next one's index)
        self._wanted: dict[str, bool] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._store: Callable[[list[LiveEvent]], None] | None = None
        self._events: collections.deque[tuple[float, LiveEvent]] = collections.deque(maxlen=10_000)
        self._done = threading.Event()
        self._finished = False
        self._proc: multiprocessing.process.BaseProcess | None = None
        self._conn: multiprocessing.connection.Connection | None = None
        self._proc_summary: dict[str, object] | None = None  # the process's analyser's summary, once finished
        self.mode = "process" if process else "thread"  # where the analysis runs (said in the summary)

    def prepare(self) -> None:
        """``process``: start the analysis process now and wait until it is ready (imports done), so that
        recording does not start with the analysis behind. Called by :meth:`begin` when not called before.

        Raises :class:`~mecg.errors.MecgError` when the analyser cannot be pickled or the process does not start.
        """
        if not self.process or self._proc is not None:
            return
        ctx = multiprocessing.get_context("spawn")  # never fork a process whose threads may hold locks
        here, there = ctx.Pipe(duplex=True)
        proc = ctx.Process(target=_serve, args=(there, self.analyser), name="mecg-live-analysis", daemon=True)
        try:
            proc.start()
        except Exception as exc:
            here.close()
            raise MecgError(
                f"live analysis: cannot start its process ({type(exc).__name__}: {exc}); run it in a thread "
                "(LiveAnalysis(process=False))"
            ) from None
        finally:
            there.close()
        ready = False
        try:
            if here.poll(self.start_timeout_s):
                ready = here.recv() == ("ready",)
        except (EOFError, OSError):
            pass
        if not ready:
            proc.kill()
            proc.join(5)
            here.close()
            raise MecgError(
                f"live analysis: its process did not become ready within {self.start_timeout_s:g} s "
                f"(exit code {proc.exitcode}); run it in a thread (LiveAnalysis(process=False))"
            )
        self._proc, self._conn = proc, here

    # -- called by the recorder (any thread; never raises; only begin waits, for a process not prepared) --
    def begin(self, store: Callable[[list[LiveEvent]], None] | None) -> None:
        """Start the analysis (thread, and process if asked); ``store(events)`` writes events into the session
        (None: keep them here only). A process that cannot start leaves the analysis in a thread (``mode`` says why)."""
        self._store = store
        target = self._run
        if self.process:
            try:
                self.prepare()
                target = self._run_process
                threading.Thread(target=self._receive, name="live-analysis-events", daemon=True).start()
            except MecgError as exc:
                self.mode = f"thread ({exc})"
        self._thread = threading.Thread(target=target, name="live-analysis", daemon=True)
        self._thread.start()

    def add_stream(self, key: str, info: StreamInfo) -> None:
        """A stream the recorder records (before its first sample)."""
        with self._lock:
            self._counts[key] = 0
            self._pending[key] = 0
            rate = float(info.nominal_srate_hz)
            self._queued_t[key] = collections.deque()
            video = info.kind == StreamKind.VIDEO
            self._limit_s[key] = self.max_queue_s * (1 if video else 5)
            if video:
                self._limit[key] = max(8, math.ceil(self.max_queue_s * rate)) if rate > 0 else 64
            else:
                # signals are cheap to hold and costly to miss (a gap in the ECG hides beats): the video, which
                # costs the analysis most, is skipped first, even when the camera delivers a fifth of its rate
                self._limit[key] = max(1024, math.ceil(5 * self.max_queue_s * rate)) if rate > 0 else 1024
        self._queue.put(("stream", key, info))

    def push(self, key: str, data: np.ndarray | list, ts: np.ndarray) -> None:
        """Samples just recorded (``data`` may be the recorder's reused buffer: it is copied)."""
        n = len(ts)
        if n == 0:  # nothing to analyse (and an empty chunk at the head of the queue would hide how far behind it is)
            return
        with self._lock:
            if key not in self._counts or self._finished:
                return
            first = self._counts[key]
            self._counts[key] = first + n
            if self._wanted.get(key) is False:
                return
            queued = self._queued_t[key]
            # stream time from the oldest chunk still waiting to this one's last sample (0 with none waiting)
            behind = float(ts[-1]) - queued[0] if queued else 0.0
            if self._pending[key] + n > self._limit[key] or behind > self._limit_s[key]:
                self.stats.skipped_samples[key] = self.stats.skipped_samples.get(key, 0) + n
                item = ("skip", key, first, n)
            else:
                self._pending[key] += n
                queued.append(float(ts[0]))
                copy = list(data) if isinstance(data, list) else np.array(data, copy=True)
                item = ("data", key, first, copy, np.array(ts, dtype=np.float64, copy=True))
        self._queue.put(item)

    def clock_offset(self, key: str, offset_s: float) -> None:
        """A clock offset (s) just measured for stream ``key``."""
        self._queue.put(("clock", key, float(offset_s)))

    def finish(self) -> None:
        """Drain the queue (at most ``finish_timeout_s``), let the analyser finish and store its last events."""
        with self._lock:
            if self._finished:
                return
            self._finished = True
        if self._thread is None:  # never begun: a prepared process ends when its pipe closes
            if self._conn is not None and self._proc is not None:
                self._conn.close()
                self._proc.join(5)
            return
        self._queue.put(("finish",))
        if not self._done.wait(self.finish_timeout_s):
            self._store = None  # the file is about to close: what comes later stays in events() only
            self.stats.error = self.stats.error or f"analysis still behind {self.finish_timeout_s:g} s after stop"

    # -- for a display ------------------------------------------------------------------------
    def events(self) -> list[tuple[float, LiveEvent]]:
        """Every event so far, each with the LSL time (recorder's clock, s) it was produced."""
        return list(self._events)

    def summary(self) -> dict[str, object]:
        """The analyser's summary plus the hand-over's counters (as stored with the events)."""
        if self._conn is not None:  # the analyser that ran is the process's ({} until it has finished)
            out = dict(self._proc_summary or {})
        else:
            out = dict(self.analyser.summary())
        out["mode"] = self.mode
        out["analysed_samples"] = dict(self.stats.fed_samples)
        out["skipped_samples"] = dict(self.stats.skipped_samples)
        out["events"] = self.stats.events
        if self.stats.error:
            out["error"] = self.stats.error
        return out

    # -- the analysis thread --------------------------------------------------------------------
    def _emit(self, events: list[LiveEvent]) -> None:
        if not events:
            return
        now = pylsl.local_clock()
        for ev in events:
            self._events.append((now, ev))
        self.stats.events += len(events)
        if self._store is not None:
            try:
                self._store(events)
            except Exception as exc:  # storing must never stop the recording; the display still has them
                self.stats.error = f"cannot store live events ({type(exc).__name__}: {exc})"
                self._store = None

    def _run(self) -> None:
        _analyse(self.analyser, self._items(), self._on_message)
        self._done.set()

    def _items(self) -> Iterator[tuple]:
        """The queue's items up to "finish", each data chunk accounted for as it leaves the queue."""
        while True:
            item = self._queue.get()
            if item[0] == "data":
                self._dequeued(item)
            yield item
            if item[0] == "finish":
                return

    def _on_message(self, msg: tuple) -> None:
        """What :func:`_analyse` reports (in this thread, or from the analysis process)."""
        if msg[0] == "events":
            self._emit(msg[1])
        elif msg[0] == "wanted":
            self._answered(msg[1], msg[2])
        elif msg[0] == "error":
            self._stop_analysis(msg[1])
        elif msg[0] == "finished":
            self._emit(msg[1])
            self._proc_summary = msg[2]
            if msg[3]:
                self.stats.error = self.stats.error or msg[3]

    def _dequeued(self, item: tuple, analysed: bool | None = None) -> None:
        """A data chunk leaves the queue, for the analyser if ``analysed`` (None: unless the stream is unwanted)."""
        _, key, _, _, ts = item
        with self._lock:
            self._pending[key] -= len(ts)
            self._queued_t[key].popleft()
            if analysed or (analysed is None and self._wanted.get(key) is not False):
                self.stats.fed_samples[key] = self.stats.fed_samples.get(key, 0) + len(ts)

    def _answered(self, key: str, wanted: bool) -> None:
        """The analyser said whether it wants stream ``key``; what was queued of an unwanted one was not analysed."""
        with self._lock:
            self._wanted[key] = wanted
            if not wanted:
                self.stats.fed_samples.pop(key, None)

    def _stop_analysis(self, error: str) -> None:
        """No more chunks are queued (the analysis stopped); ``error`` says why."""
        self.stats.error = self.stats.error or error
        with self._lock:
            self._wanted = dict.fromkeys(self._wanted, False)

    # -- process mode: this thread hands chunks over the pipe, _receive takes the events ------------
    def _run_process(self) -> None:
        assert self._conn is not None
        broken = False
        while True:
            item = self._queue.get()
            if broken and item[0] != "finish":
                continue
            sent = False
            try:
                self._conn.send(item)  # blocks while the process works on the previous chunk
                sent = True
            except (OSError, ValueError):  # the process is gone: _receive says why
                broken = True
            except Exception as exc:  # a chunk that cannot be pickled: the analysis is off, the recording goes on
                self._stop_analysis(f"live analysis stopped (cannot hand a chunk over: {type(exc).__name__}: {exc})")
                broken = True
            if item[0] == "data":
                self._dequeued(item, None if sent else False)
            if item[0] == "finish":
                break

    def _receive(self) -> None:
        assert self._conn is not None and self._proc is not None
        try:
            while True:
                msg = self._conn.recv()
                self._on_message(msg)
                if msg[0] == "finished":
                    self._proc.join(5)  # it ends after its last message
                    break
        except (EOFError, OSError):
            self._proc.join(1.0)
            code = self._proc.exitcode
            self._stop_analysis(f"live analysis process ended unexpectedly (exit code {code})")
        except Exception as exc:  # a message that cannot be read: the analysis is off, the recording goes on
            self._stop_analysis(f"live analysis stopped ({type(exc).__name__}: {exc})")
        self._done.set()


def _apply(analyser: LiveAnalyser, item: tuple, wanted: dict[str, bool]) -> tuple[list[LiveEvent], bool | None]:
    """Give one queue item to ``analyser``: its events, and for a new stream whether it is wanted (kept in
    ``wanted``: chunks of an unwanted stream that were queued before the answer are dropped here)."""
    what = item[0]
    if what == "stream":
        wanted[item[1]] = ok = bool(analyser.add_stream(item[1], item[2]))
        return [], ok
    if not wanted.get(item[1], False):
        return [], None
    if what == "data":
        _, key, first, data, ts = item
        return analyser.feed(key, first, data, ts), None
    if what == "skip":
        return analyser.skip(item[1], item[2], item[3]), None
    if what == "clock":
        return analyser.clock_offset(item[1], item[2]), None
    raise ValueError(f"unknown live analysis item {what!r}")


def _analyse(analyser: LiveAnalyser, items: Iterable[tuple], report: Callable[[tuple], None]) -> None:
    """Feed ``items`` to ``analyser`` until "finish"; ``report`` gets ("wanted", key, bool), ("events", list),
    ("error", text) (the analysis stops: later items are passed over) and at the end ("finished", events,
    summary, error)."""
    broken = False
    answered: dict[str, bool] = {}
    for item in items:
        if item[0] == "finish":
            break
        if broken:
            continue
        try:
            events, wanted = _apply(analyser, item, answered)
        except Exception as exc:  # analysis must never cost the recording: turn it off, say why
            broken = True
            report(("error", f"live analysis stopped ({type(exc).__name__}: {exc})"))
            continue
        if wanted is not None:
            report(("wanted", item[1], wanted))
        if events:
            report(("events", events))
    events, error = [], ""
    if not broken:
        try:
            events = analyser.finish()
        except Exception as exc:
            error = f"live analysis failed at the end ({type(exc).__name__}: {exc})"
    report(("finished", events, dict(analyser.summary()), error))


def _received(conn: multiprocessing.connection.Connection) -> Iterator[tuple]:
    while True:
        yield conn.recv()


def _serve(conn: multiprocessing.connection.Connection, analyser: LiveAnalyser) -> None:
    """The analysis process: items from ``conn`` to ``analyser``, its reports back, until "finish" or EOF."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the recorder's to handle: it stops us in order
    conn.send(("ready",))
    try:
        _analyse(analyser, _received(conn), conn.send)
    except (EOFError, OSError):  # the recorder is gone
        pass
