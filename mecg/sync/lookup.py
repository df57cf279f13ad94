"""Index the ECG by video frames: the only way model code should do it.

After ``mecg sync``, ``/sync/frame_time_ecg_s`` holds every frame's exposure start on the ECG
clock (NaN for frames that were not aligned) and ``/sync/ecg_segments`` where each ECG segment
sits on that clock (see :mod:`mecg.sync.segments`). :class:`Timeline` reads both once and
answers, for any frame range, which ECG samples cover the same time span. A sync result whose
verdict is ``failed`` is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mecg.session import Session, Stream
from mecg.session.ecg_channel import column_in
from mecg.sync.pulses import SyncError
from mecg.sync.segments import EcgClock


@dataclass(frozen=True)
class EcgSpan:
    """ECG samples covering a frame range: ``samples`` ``(n, channels)``, the first sample's index, and times."""

    samples: np.ndarray
    first_sample: int
    t_s: np.ndarray  # time of each sample on the ECG clock (s)
    srate_hz: float


class Timeline:
    """Frame <-> ECG mapping of one synced session.

    ``ecg`` is the stream sync aligned to and ``ecg_column`` its ECG channel (0-based; an EXG
    stream's ECG channel, see :mod:`mecg.session.ecg_channel`). Raises :class:`SyncError` when the
    session has not been synced (run ``mecg sync`` first).
    """

    def __init__(self, session: Session, *, allow_failed: bool = False) -> None:
        g = session.sync_group
        if "frame_time_ecg_s" not in g:
            raise SyncError(f"{session.path} has not been synced; run `mecg sync {session.path}` first")
        self.session = session
        self.mode = _text(g.attrs.get("mode", ""))
        self.verdict = _text(g.attrs.get("verdict", "ok")) or "ok"
        self.reasons = _text(g.attrs.get("reasons", ""))
        if self.verdict == "failed" and not allow_failed:
            why = self.reasons.splitlines()[0] if self.reasons else "see mecg info"
            raise SyncError(
                f"{session.path}: its sync failed ({why}); "
                "fix the recording's sync (mecg sync --plot shows why) before using its ECG"
            )
        self.frame_time_s = np.asarray(g["frame_time_ecg_s"][()], dtype=np.float64)
        ecg_key = _text(g.attrs.get("ecg_stream", ""))
        if ecg_key not in session.streams:
            raise SyncError(f"{session.path}: /sync refers to ECG stream {ecg_key!r}, which is not in the file")
        self.ecg: Stream = session.streams[ecg_key]
        col = g.attrs.get("ecg_column", None)  # results from before it was stored: the session's rule
        self.ecg_column = int(col) if col is not None else column_in(session, ecg_key)
        if not 0 <= self.ecg_column < self.ecg.info.channel_count:
            raise SyncError(f"{session.path}: /sync names ECG column {self.ecg_column} of {ecg_key!r}, which has none")
        self.srate_hz = float(self.ecg.info.nominal_srate_hz)
        table = g["ecg_segments"][()] if "ecg_segments" in g else np.zeros((0, 3))
        self.clock = (
            EcgClock.from_table(table, self.srate_hz)
            if len(table)
            else EcgClock.plain(self.ecg.sample_count, self.srate_hz)  # results from before segments
        )

    @property
    def n_frames(self) -> int:
        return int(self.frame_time_s.size)

    def frame_times(self, start: int, stop: int) -> np.ndarray:
        """Exposure starts of frames ``[start, stop)`` on the ECG clock (s)."""
        return self.frame_time_s[start:stop]

    def sample_at(self, t_s: np.ndarray | float) -> np.ndarray:
        """ECG sample index (fractional) at ECG-clock times ``t_s``; NaN inside an ECG gap."""
        return self.clock.sample_at(t_s)

    def ecg_signal(self) -> np.ndarray:
        """The ECG channel (``ecg_column`` of the ECG stream) as float64, every recorded sample."""
        return np.asarray(self.ecg.data[:, self.ecg_column], dtype=np.float64)

    @property
    def ecg_time_s(self) -> np.ndarray:
        """ECG-clock time (s) of every recorded ECG sample (continuous across gaps, see the module docstring)."""
        return self.clock.sample_times(self.ecg.sample_count)

    def ecg_span(self, start_frame: int, stop_frame: int, pad_s: float = 0.0, channel: str | None = None) -> EcgSpan:
        """ECG samples from frame ``start_frame``'s exposure to the end of frame ``stop_frame - 1``.

        ``pad_s`` widens the span on both sides (e.g. for filter edges). The span is clipped to
        the recording; ``channel`` selects one channel by label (all channels otherwise). Raises
        :class:`SyncError` when the end frames were not aligned (they fall in an ECG gap).
        """
        if not 0 <= start_frame < stop_frame <= self.n_frames:
            raise SyncError(f"frame range [{start_frame}, {stop_frame}) is outside the video (0-{self.n_frames})")
        t0 = self.frame_time_s[start_frame] - pad_s
        last = self.frame_time_s[stop_frame - 1]
        if not (np.isfinite(t0) and np.isfinite(last)):
            raise SyncError(
                f"frames {start_frame} or {stop_frame - 1} were not aligned (an ECG gap or a camera segment "
                "without trigger pulses); no ECG belongs to them"
            )
        ft = self.frame_time_s[np.isfinite(self.frame_time_s)]
        period = float(np.median(np.diff(ft))) if ft.size > 1 else 0.0
        t1 = last + period + pad_s
        n = self.ecg.sample_count
        lo, hi = self.clock.sample_at(np.array([t0, t1]))
        lo = 0.0 if np.isnan(lo) else lo
        hi = float(n) if np.isnan(hi) else hi
        k0 = int(np.clip(np.ceil(lo), 0, n))
        k1 = int(np.clip(np.floor(hi) + 1, k0, n))
        data = (
            self.ecg.data[k0:k1]
            if channel is None
            else self.ecg.data[k0:k1, self.ecg.info.channel_labels.index(channel)]
        )
        return EcgSpan(np.asarray(data), k0, self.clock.time_of(np.arange(k0, k1)), self.srate_hz)


def _text(v: object) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)
