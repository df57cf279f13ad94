"""ECG features on the video timeline (through sync): HR, HR slope, HRV, band-passed ECG, quality.

All times are on the ECG sample clock (sample k at k / rate s); frame times come from
``/sync/frame_time_ecg_s`` through :class:`mecg.sync.Timeline`, the only way model code indexes
ECG by video time. Definitions of HR and HRS are in :mod:`mecg.model.heart_rate`.

Per frame:

* ``hr_bpm``: the HR curve at the frame's exposure start;
* ``hrs_bpm_per_s``: the HR slope there;
* HRV over a ``hrv_window_s`` window centred on the frame (RR intervals whose both beats lie in
  it): ``rr_mean_s``, ``rr_std_s``, ``hr_mean_bpm`` (60 / RR mean), ``sdsd_s`` (s.d. of successive
  RR differences), ``rmssd_s`` (root mean square of successive differences);
* ``quality``: 1 where the RR intervals around the frame are plausible (0.33-1.5 s, i.e.
  40-180 bpm, and within 30 % of their neighbours' median), else 0.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy.signal import butter, sosfiltfilt

from mecg.model.heart_rate import EcgError, hr_curve, hr_slope, r_peaks
from mecg.session import Session, can_store_derivatives, open_session
from mecg.session.ecg_channel import find_ecg
from mecg.sync import SyncError, Timeline, synchronize, write_result
from mecg.sync.clocks import correct_timestamps, fit_clock_offsets

HRV_NAMES = ("rr_mean_s", "rr_std_s", "hr_mean_bpm", "sdsd_s", "rmssd_s")
CACHE_GROUP = "features/ecg"
ECG_FEATURES_VERSION = 1


@dataclass(frozen=True)
class EcgParams:
    """``peak_method``: NeuroKit2 R-peak detector; ``hrv_window_s``: HRV window; band-pass edges in Hz."""

    peak_method: str = "neurokit"
    hrv_window_s: float = 10.0
    band_hz: tuple[float, float] = (0.5, 40.0)

    def key(self) -> str:
        return json.dumps({**asdict(self), "version": ECG_FEATURES_VERSION}, sort_keys=True)


@dataclass
class EcgFeatures:
    """Per-frame ECG features of one session and the R-peaks (s, ECG clock) they came from."""

    params: EcgParams
    peaks_s: np.ndarray
    hr_bpm: np.ndarray
    hrs_bpm_per_s: np.ndarray
    hrv: np.ndarray  # (n_frames, 5) in HRV_NAMES order
    quality: np.ndarray  # (n_frames,) 0/1
    mean_hrs_bpm_per_s: float


def bandpass(ecg: np.ndarray, srate_hz: float, band_hz: tuple[float, float] = (0.5, 40.0)) -> np.ndarray:
    """Zero-phase 4th-order Butterworth band-pass (Hz) of a 1-D ECG."""
    lo, hi = band_hz
    hi = min(hi, 0.45 * srate_hz)
    sos = butter(4, [lo, hi], btype="bandpass", fs=srate_hz, output="sos")
    x = np.asarray(ecg, dtype=np.float64)
    return sosfiltfilt(sos, x) if x.size > 30 else x - x.mean()


def rr_quality(peaks_s: np.ndarray) -> np.ndarray:
    """Per RR interval: True when 0.33-1.5 s and within 30 % of the median of its 5 neighbours."""
    rr = np.diff(peaks_s)
    if rr.size == 0:
        return np.zeros(0, dtype=bool)
    from scipy.ndimage import median_filter

    med = median_filter(rr, size=min(5, rr.size), mode="nearest")
    return (rr > 0.33) & (rr < 1.5) & (np.abs(rr - med) < 0.3 * med)


def hrv_at(peaks_s: np.ndarray, t_s: np.ndarray, window_s: float) -> np.ndarray:
    """HRV features ``(len(t_s), 5)`` over windows centred on ``t_s`` (NaN where < 3 intervals)."""
    p = np.asarray(peaks_s, dtype=np.float64)
    rr = np.diff(p)
    out = np.full((len(t_s), len(HRV_NAMES)), np.nan)
    lo = np.searchsorted(p, np.asarray(t_s) - window_s / 2)
    hi = np.searchsorted(p, np.asarray(t_s) + window_s / 2, side="right")
    for i, (a, b) in enumerate(zip(lo, hi)):
        r = rr[a : max(a, b - 1)]  # intervals whose both beats are inside
        if r.size < 3:
            continue
        d = np.diff(r)
        out[i] = [r.mean(), r.std(ddof=1), 60.0 / r.mean(), d.std(ddof=1), np.sqrt(np.mean(d**2))]
    return out


def ensure_synced(path: str | os.PathLike, log: Callable[[str], None], ecg_channel: str = "") -> None:
    """Run sync (automatic mode) on a session with ECG that has none yet, and store it beside the recording.

    ``ecg_channel`` (``[STREAM:]LABEL|INDEX``) chooses the ECG (:mod:`mecg.session.ecg_channel`); a
    session already synced to another channel is refused. Raises :class:`SyncError` when it cannot:
    alignment failed, or the folder is read-only; ``EcgChannelError`` when the ECG is ambiguous.
    """
    path = Path(path)
    with open_session(path) as s:
        g = s.sync_group
        if "frame_time_ecg_s" in g:  # synced: sync chose the ECG; an explicit choice must agree
            ch = find_ecg(s, ecg_channel) if ecg_channel else None
            done = (str(g.attrs.get("ecg_stream", "")), int(g.attrs.get("ecg_column", ch.column if ch else 0)))
            if ch is not None and done != (ch.stream, ch.column):
                raise SyncError(
                    f"{path.name} was synced with the ECG in {done[0]} column {done[1]}, not {ch.describe()}: "
                    f"run `mecg sync --ecg-channel {ecg_channel} {path}` again first"
                )
            return
        if find_ecg(s, ecg_channel) is None:
            return
    if not can_store_derivatives(path):
        raise SyncError(
            f"{path} has not been synced and its folder is read-only (sync results go beside the recording); "
            "run `mecg sync` on a copy in a writable folder first"
        )
    with open_session(path, writable=True) as s:
        res = synchronize(s, "auto", ecg_channel=ecg_channel)
        if res.verdict == "failed":
            raise SyncError(f"{path}: sync failed ({'; '.join(res.reasons)}); run `mecg sync --plot` on it to see why")
        write_result(s, res)
    log(
        f"synced {path.name}: {res.mode}, verdict {res.verdict}, uncertainty "
        + ("n/a" if res.uncertainty_ms is None else f"{res.uncertainty_ms:.3f} ms")
        + ("" if res.verdict == "ok" else f" ({'; '.join(res.reasons)})")
    )


def compute_ecg_features(session: Session, params: EcgParams = EcgParams()) -> EcgFeatures:
    """ECG features at every frame of a synced session. Raises ``EcgError``/``SyncError`` with the reason."""
    tl = Timeline(session)
    fs = tl.srate_hz
    ecg = tl.ecg_signal()
    peaks_s = tl.clock.time_of(r_peaks(ecg, fs, params.peak_method))  # on the ECG clock, across gaps too
    peaks_s = peaks_s[np.isfinite(peaks_s)]
    if peaks_s.size < 3:
        raise EcgError(f"{session.path}: only {peaks_s.size} R-peaks found; check the ECG channel")
    t = tl.frame_time_s
    hr = hr_curve(peaks_s)(t)
    hrs = hr_slope(peaks_s, t)
    grid = np.arange(peaks_s[0], peaks_s[-1], 0.05)
    mean_hrs = float(np.nanmean(hr_slope(peaks_s, grid)))
    good = rr_quality(peaks_s)
    # quality of a frame = quality of the RR interval it falls in (outside the beats: 0)
    j = np.searchsorted(peaks_s, t) - 1
    inside = (j >= 0) & (j < good.size)
    quality = np.zeros(t.size, dtype=np.uint8)
    quality[inside] = good[j[inside]]
    return EcgFeatures(params, peaks_s, hr, hrs, hrv_at(peaks_s, t, params.hrv_window_s), quality, mean_hrs)


def ecg_features(session_path: str, params: EcgParams = EcgParams(), cache: bool = True) -> EcgFeatures:
    """Cached :func:`compute_ecg_features` (``/features/ecg``; recomputed when parameters or sync change)."""
    with open_session(session_path) as s:
        g = s.derived(CACHE_GROUP)
        sg = s.sync_group.attrs  # a sync to another ECG channel is a new sync too
        sync_time = f"{sg.get('created_time', '')}|{sg.get('ecg_stream', '')}|{sg.get('ecg_column', '')}"
        if cache and g is not None and g.attrs.get("params") == params.key() and g.attrs.get("sync_time") == sync_time:
            return EcgFeatures(
                params,
                g["peaks_s"][()],
                g["hr_bpm"][()],
                g["hrs_bpm_per_s"][()],
                g["hrv"][()],
                g["quality"][()],
                float(g.attrs["mean_hrs_bpm_per_s"]),
            )
        f = compute_ecg_features(s, params)
    if cache and can_store_derivatives(session_path):
        with open_session(session_path, writable=True) as s:
            s.write_group(
                CACHE_GROUP,
                {
                    "params": params.key(),
                    "sync_time": sync_time,
                    "hrv_names": list(HRV_NAMES),
                    "mean_hrs_bpm_per_s": f.mean_hrs_bpm_per_s,
                },
                {
                    "peaks_s": f.peaks_s,
                    "hr_bpm": f.hr_bpm,
                    "hrs_bpm_per_s": f.hrs_bpm_per_s,
                    "hrv": f.hrv,
                    "quality": f.quality,
                },
            )
    return f


#: Code of a rest period between stimuli (MECG: clips are 101-148, rest is 100).
REST_CODE = 100
_CODE = re.compile(r"[+-]?\d+")


@dataclass(frozen=True)
class StimulusSegment:
    """Frames ``[first_frame, stop_frame)`` of the video from one numeric stimulus marker to the next.

    ``code`` is the marker's number (:data:`REST_CODE` for rest); None for the frames before the first marker.
    """

    code: int | None
    first_frame: int
    stop_frame: int


def stimulus_segments(session: Session) -> list[StimulusSegment]:
    """The session's video cut at its numeric stimulus markers (empty when it has none).

    Markers of every markers stream whose text is an integer (a stimulus code; trigger-box
    ``pulse n`` markers and free text are not stimuli) start a segment that lasts until the next
    such marker or the end of the video. Marker and frame timestamps are both brought to the
    recorder's clock with their streams' clock offsets (:mod:`mecg.sync.clocks`), so a segment
    starts at the first frame exposed at or after its marker (within the streams' LSL latency,
    milliseconds). The frames before the first marker form a segment with code None.
    """
    video = session.stream(kind="video")
    n = video.sample_count
    if n == 0:
        return []
    vt = correct_timestamps(video.timestamps, fit_clock_offsets(video.clock_offsets))
    marks: list[tuple[float, int]] = []
    for s in session.find_streams(kind="markers"):
        texts = s.markers()
        if not texts:
            continue
        ts = correct_timestamps(s.timestamps, fit_clock_offsets(s.clock_offsets))
        marks += [(float(t), int(x)) for t, x in zip(ts, texts) if _CODE.fullmatch(x.strip())]
    if not marks:
        return []
    marks.sort(key=lambda m: m[0])
    starts = np.clip(np.searchsorted(vt, [t for t, _ in marks], side="left"), 0, n)
    cuts: dict[int, int | None] = {0: None}
    for f, (_, code) in zip(starts.tolist(), marks):
        cuts[f] = code  # a later marker at the same frame replaces an earlier one
    edges = sorted(f for f in cuts if f < n)
    return [StimulusSegment(cuts[a], a, b) for a, b in zip(edges, [*edges[1:], n]) if b > a]
