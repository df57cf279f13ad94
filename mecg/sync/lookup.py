"""Index the ECG by video frames: the only way model code should do it.

After ``mecg sync``, ``/sync/frame_time_ecg_s`` holds every frame's exposure start on the ECG
sample clock. :class:`Timeline` reads it once and answers, for any frame range, which ECG
samples cover the same time span.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mecg.session import Session, Stream
from mecg.sync.pulses import SyncError


@dataclass(frozen=True)
class EcgSpan:
    """ECG samples covering a frame range: ``samples`` ``(n, channels)``, the first sample's index, and times."""

    samples: np.ndarray
    first_sample: int
    t_s: np.ndarray  # time of each sample on the ECG clock (s)
    srate_hz: float


class Timeline:
    """Frame <-> ECG mapping of one synced session.

    Raises :class:`SyncError` when the session has not been synced (run ``mecg sync`` first).
    """

    def __init__(self, session: Session) -> None:
        g = session.sync_group
        if "frame_time_ecg_s" not in g:
            raise SyncError(f"{session.path} has not been synced; run `mecg sync {session.path}` first")
        self.session = session
        self.mode = str(g.attrs.get("mode", ""))
        self.frame_time_s = g["frame_time_ecg_s"][()]
        ecg_key = g.attrs.get("ecg_stream", "")
        ecg_key = ecg_key.decode() if isinstance(ecg_key, bytes) else str(ecg_key)
        if ecg_key not in session.streams:
            raise SyncError(f"{session.path}: /sync refers to ECG stream {ecg_key!r}, which is not in the file")
        self.ecg: Stream = session.streams[ecg_key]
        self.srate_hz = float(self.ecg.info.nominal_srate_hz)

    @property
    def n_frames(self) -> int:
        return int(self.frame_time_s.size)

    def frame_times(self, start: int, stop: int) -> np.ndarray:
        """Exposure starts of frames ``[start, stop)`` on the ECG clock (s)."""
        return self.frame_time_s[start:stop]

    def sample_at(self, t_s: np.ndarray | float) -> np.ndarray:
        """ECG sample index (fractional) at ECG-clock times ``t_s``."""
        return np.asarray(t_s, dtype=np.float64) * self.srate_hz

    def ecg_span(self, start_frame: int, stop_frame: int, pad_s: float = 0.0, channel: str | None = None) -> EcgSpan:
        """ECG samples from frame ``start_frame``'s exposure to the end of frame ``stop_frame - 1``.

        ``pad_s`` widens the span on both sides (e.g. for filter edges). The span is clipped to
        the recording; ``channel`` selects one channel by label (all channels otherwise).
        """
        if not 0 <= start_frame < stop_frame <= self.n_frames:
            raise SyncError(f"frame range [{start_frame}, {stop_frame}) is outside the video (0-{self.n_frames})")
        t0 = self.frame_time_s[start_frame] - pad_s
        last = self.frame_time_s[stop_frame - 1]
        period = float(np.median(np.diff(self.frame_time_s))) if self.n_frames > 1 else 0.0
        t1 = last + period + pad_s
        n = self.ecg.sample_count
        k0 = int(np.clip(np.ceil(t0 * self.srate_hz), 0, n))
        k1 = int(np.clip(np.floor(t1 * self.srate_hz) + 1, k0, n))
        data = (
            self.ecg.data[k0:k1]
            if channel is None
            else self.ecg.data[k0:k1, self.ecg.info.channel_labels.index(channel)]
        )
        return EcgSpan(np.asarray(data), k0, np.arange(k0, k1) / self.srate_hz, self.srate_hz)
