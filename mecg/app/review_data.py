"""What the review window's tracks draw, computed without Qt (in worker threads where it is slow).

* :class:`FrameReader`: frames read one at a time through :meth:`Stream.frames` with a small
  cache, so opening a 10-minute video reads one frame, not the video.
* :func:`motion_track`: per-ROI motion magnitude of the front end (:mod:`mecg.model.frontend`,
  read from the derivatives' cache, computed and cached there when missing: slow).
* :func:`ecg_track`: ECG, R-peaks, HR and HR slope on the video's time axis through
  :class:`mecg.sync.Timeline` (:mod:`mecg.model.ecg_features`, cached); a session that is not
  synced gives a track that says so.
* :func:`score_track`: the spotter's per-frame ME score of a CMCL-Net checkpoint.
* :func:`stimulus_markers`: the markers streams placed on the video by their LSL timestamps.

The time axis of every track is video time ``frame / fps`` (s, nominal frame rate).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mecg.session import Session, Stream

#: Frames kept decoded by :class:`FrameReader` (a 640x480 grey frame is 300 kB).
FRAME_CACHE = 64
#: One lock for every write to a derivatives file from this process: each write copies the file,
#: changes the copy and renames it over the old one, so two at once would lose one of them.
STORE_LOCK = threading.Lock()


class FrameReader:
    """Frames of a video stream read on demand (one :meth:`Stream.frames` call per frame not cached)."""

    def __init__(self, stream: Stream, cache: int = FRAME_CACHE) -> None:
        self.stream = stream
        self.n_frames = stream.sample_count
        self.reads = 0  # frames read from the file
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._size = cache

    def frame(self, i: int) -> np.ndarray:
        """Frame ``i`` (uint8, ``(h, w)`` or ``(h, w, 3)``)."""
        img = self._cache.get(i)
        if img is not None:
            self._cache.move_to_end(i)
            return img
        img = self.stream.frames(i, i + 1)[0]
        self.reads += 1
        self._cache[i] = img
        while len(self._cache) > self._size:
            self._cache.popitem(last=False)
        return img


def frames_to_s(frames: np.ndarray | int, fps_hz: float) -> np.ndarray:
    """Video time (s) of frame indices at the nominal rate."""
    return np.asarray(frames, dtype=np.float64) / fps_hz


@dataclass
class MotionTrack:
    """Per-ROI motion magnitude ``mag`` ``(n_frames, n_rois)`` (crop px between frames i and i+k), ROI names."""

    mag: np.ndarray
    rois: list[str]
    k_frames: int


def motion_track(path: str | os.PathLike, fps_hz: float, workers: int = 1) -> MotionTrack:
    """The front end's per-ROI motion of the session at ``path`` (cached in its derivatives file).

    ``workers`` > 1 uses processes; the window keeps 1 because the processes are forked from a
    process whose UI thread may be reading the file.
    """
    from mecg.model.face import ROI_NAMES
    from mecg.model.frontend import FrontEndParams, default_k, frontend_features

    params = FrontEndParams(k_frames=default_k(fps_hz))
    with STORE_LOCK:  # the features are written to the derivatives file when not cached yet
        feats = frontend_features(path, params, workers=workers)
    return MotionTrack(feats.feature("mag").astype(np.float32), list(ROI_NAMES), params.k_frames)


@dataclass
class EcgTrack:
    """ECG on the video's time axis; ``note`` says why something is missing (e.g. not synced)."""

    note: str
    t_s: np.ndarray = field(default_factory=lambda: np.zeros(0))  # video time of each ECG sample (NaN breaks)
    ecg: np.ndarray = field(default_factory=lambda: np.zeros(0))  # mV
    peaks_t_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    peaks_ecg: np.ndarray = field(default_factory=lambda: np.zeros(0))
    hr_bpm: np.ndarray = field(default_factory=lambda: np.zeros(0))  # per frame
    hrs_bpm_per_s: np.ndarray = field(default_factory=lambda: np.zeros(0))  # per frame
    frame_time_ecg_s: np.ndarray | None = None  # each frame's time on the ECG clock (NaN: not aligned)

    @property
    def ok(self) -> bool:
        return self.ecg.size > 0


def _ecg_to_video_s(t_ecg: np.ndarray, frame_time_s: np.ndarray, fps_hz: float) -> np.ndarray:
    """Video time (s) of ECG-clock times: interpolated between aligned frames, NaN outside the video."""
    ok = np.isfinite(frame_time_s)
    idx = np.flatnonzero(ok)
    if idx.size < 2:
        return np.full(np.shape(t_ecg), np.nan)
    ft = frame_time_s[ok]
    x = np.interp(t_ecg, ft, idx.astype(np.float64)) / fps_hz
    return np.where((t_ecg >= ft[0]) & (t_ecg <= ft[-1]), x, np.nan)


def ecg_track(path: str | os.PathLike, fps_hz: float) -> EcgTrack:
    """ECG with R-peaks, HR and HR slope of a synced session; a note instead when it cannot be had."""
    from mecg.model.ecg_features import ecg_features
    from mecg.model.heart_rate import EcgError
    from mecg.session import open_session
    from mecg.session.ecg_channel import EcgChannelError, find_ecg
    from mecg.sync import SyncError, Timeline

    with open_session(path) as s:
        if "frame_time_ecg_s" not in s.sync_group:
            try:
                if find_ecg(s) is None:
                    return EcgTrack("no ECG stream in this session")
            except EcgChannelError as exc:  # several streams carry ECG: sync must be told which
                return EcgTrack(f"not synced: {exc}")
            return EcgTrack(f"not synced: no ECG on the video's time axis (run `mecg sync {Path(path).name}`)")
        try:
            tl = Timeline(s)
        except SyncError as exc:
            return EcgTrack(f"not synced: {exc}")
        raw = tl.ecg_signal()
        t_ecg = tl.ecg_time_s
        frame_t = tl.frame_time_s.copy()
        verdict = tl.verdict
    try:
        with STORE_LOCK:  # cached in the derivatives file
            feats = ecg_features(str(path))
    except (EcgError, SyncError) as exc:
        return EcgTrack(f"ECG features: {exc}")
    x = _ecg_to_video_s(t_ecg, frame_t, fps_hz)
    fs = 1.0 / np.median(np.diff(t_ecg)) if t_ecg.size > 1 else 1.0
    gaps = np.flatnonzero(np.diff(t_ecg) > 1.5 / fs) + 1  # break the line across ECG gaps
    xs, ys = np.insert(x, gaps, np.nan), np.insert(raw, gaps, np.nan)
    k = np.clip(np.searchsorted(t_ecg, feats.peaks_s), 0, max(raw.size - 1, 0))
    note = f"sync {verdict}" if verdict != "ok" else ""
    return EcgTrack(
        note,
        xs,
        ys,
        _ecg_to_video_s(feats.peaks_s, frame_t, fps_hz),
        raw[k],
        np.asarray(feats.hr_bpm, dtype=np.float64),
        np.asarray(feats.hrs_bpm_per_s, dtype=np.float64),
        frame_t,
    )


@dataclass
class ScoreTrack:
    """The spotter's ME score per frame (0-1) and its threshold."""

    score: np.ndarray
    threshold: float
    note: str


def score_track(path: str | os.PathLike, model_path: str | os.PathLike) -> ScoreTrack:
    """Per-frame ME score of the CMCL-Net checkpoint ``model_path`` (as ``mecg spot --model``, without syncing)."""
    import torch

    from mecg.errors import MecgError
    from mecg.model.frontend import default_k
    from mecg.model.spotter import frame_scores
    from mecg.model.train import load_checkpoint
    from mecg.model.windows import SessionData
    from mecg.session import open_session

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    ck = load_checkpoint(model_path)
    model, window, frontend, spot = ck.model, ck.window, ck.frontend, ck.spot
    with open_session(path) as s:
        fps = s.stream(kind="video").info.nominal_srate_hz
        synced = "frame_time_ecg_s" in s.sync_group
    if default_k(fps) != frontend.k_frames:
        raise MecgError(
            f"{Path(path).name} is {fps:g} fps but the model was trained on features for k={frontend.k_frames} frames"
        )
    use_ecg = model.config.mode != "video"
    with STORE_LOCK:  # features are cached in the derivatives file
        data = SessionData(str(path), window, frontend, workers=1, use_ecg=use_ecg)
    if model.config.mode == "ecg" and not data.has_ecg:
        raise MecgError(f"the model is ECG-only and {Path(path).name} has no synced ECG (run `mecg sync` first)")
    note = "" if data.has_ecg or not use_ecg else ("video only: not synced" if not synced else "video only")
    return ScoreTrack(frame_scores(model, data).astype(np.float32), float(spot["threshold"]), note)


@dataclass(frozen=True)
class Marker:
    """A marker at video time ``t_s`` (s); ``trigger``: a trigger-box pulse rather than a stimulus."""

    t_s: float
    text: str
    trigger: bool


def stimulus_markers(session: Session, video: Stream) -> list[Marker]:
    """Markers of every markers stream, placed on the video by LSL timestamps (within the streams' latency)."""
    vt = video.timestamps
    fps = video.info.nominal_srate_hz or 30.0
    if vt.size < 2:
        return []
    out = []
    for s in session.find_streams(kind="markers"):
        texts, ts = s.markers(), s.timestamps
        x = np.interp(ts, vt, np.arange(vt.size, dtype=np.float64)) / fps
        inside = (ts >= vt[0]) & (ts <= vt[-1])
        is_trigger = s.info.type.lower() in ("trigger", "triggers") or "trigger" in s.info.name.lower()
        for xi, text, ok in zip(x, texts, inside):
            if ok:
                out.append(Marker(float(xi), text, is_trigger or text.startswith("pulse")))
    return sorted(out, key=lambda m: m.t_s)
