"""Put every video frame on the ECG clock, in one of three modes, and store the result in the session.

The ECG clock is the amplifier's sample clock: sample ``k`` is at ``k / nominal_rate`` seconds.
The camera clock is the camera's frame clock: frame ``i`` (counting dropped frames, see
:func:`mecg.sync.clocks.frame_indices`) starts its exposure at ``i / nominal_fps`` seconds.

* ``strobe``: the camera's exposure output is recorded on an amplifier channel, so every frame's
  exposure start is seen on the ECG clock. Trigger pulses pin which strobe edge is which frame;
  a robust line through all (frame, edge) pairs gives offset and drift.
* ``pulses``: the trigger box lights an LED in view and drives an amplifier input at the same
  time; LED onsets (to a fraction of a frame) are matched to the digital edges and a robust line
  gives offset and drift.
* ``lsl``: software clocks only (LSL clock offsets + dejittered timestamps, as LabRecorder +
  pyxdf). It cannot see the devices' latencies, so it is off by their difference (tens of ms).

``auto`` picks the best mode the recording supports and says why.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from mecg.session import Session, Stream
from mecg.sync.clocks import correct_timestamps, dejitter, fit_clock_offsets, frame_indices
from mecg.sync.match import LineFit, fit_line, match_pulses
from mecg.sync.pulses import (
    LedRoi,
    SyncError,
    edge_times,
    led_candidates,
    led_levels,
    led_onsets,
    led_signal,
    led_signals,
    level_noise,
)

MODES = ("auto", "strobe", "pulses", "lsl")
#: Frames read per chunk while scanning the video for the LED.
CHUNK_FRAMES = 256
#: Length of video (s) searched for the LED before the whole video is scanned.
LED_SEARCH_S = 60.0


@dataclass
class SyncResult:
    """The alignment of one session. Times in s unless the name says ms."""

    mode: str
    frame_time_ecg_s: np.ndarray
    offset_ms: float
    drift_ppm: float
    pulses_video: int
    pulses_ecg: int
    pulses_matched: int
    residual_rms_ms: float | None
    residual_max_ms: float | None
    video_stream: str
    ecg_stream: str
    exposure_s: float | None = None
    led_roi: LedRoi | None = None
    strobe_edges: int = 0
    warnings: list[str] = field(default_factory=list)
    matched_camera_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    matched_ecg_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    residuals_s: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def report(self) -> dict:
        """The JSON report: mode, offset_ms, drift_ppm, pulses_matched, residual_rms_ms, residual_max_ms, and more."""
        return {
            "mode": self.mode,
            "offset_ms": round(self.offset_ms, 4),
            "drift_ppm": round(self.drift_ppm, 3),
            "pulses_matched": self.pulses_matched,
            "residual_rms_ms": None if self.residual_rms_ms is None else round(self.residual_rms_ms, 4),
            "residual_max_ms": None if self.residual_max_ms is None else round(self.residual_max_ms, 4),
            "pulses_video": self.pulses_video,
            "pulses_ecg": self.pulses_ecg,
            "strobe_edges": self.strobe_edges,
            "exposure_ms": None if self.exposure_s is None else round(self.exposure_s * 1e3, 4),
            "led_roi": None
            if self.led_roi is None
            else [self.led_roi.x, self.led_roi.y, self.led_roi.w, self.led_roi.h],
            "video_stream": self.video_stream,
            "ecg_stream": self.ecg_stream,
            "frames": int(self.frame_time_ecg_s.size),
            "warnings": list(self.warnings),
        }


def _channel(ecg: Stream, name: str) -> np.ndarray | None:
    """The amplifier channel labelled or typed ``name`` (case-insensitive), or None."""
    labels = [x.lower() for x in ecg.info.channel_labels]
    types = [x.lower() for x in ecg.info.channel_types]
    for seq in (labels, types):
        if name.lower() in seq:
            return ecg.data[:, seq.index(name.lower())]
    return None


def _ecg_signal_column(ecg: Stream) -> int:
    return next((i for i, t in enumerate(ecg.info.channel_types) if t.upper() == "ECG"), 0)


def header_exposure_s(stream: Stream) -> float | None:
    """Exposure time (s) declared in a video stream's LSL header (``<exposure_s>``), if any."""
    m = re.search(r"<exposure_s>\s*([0-9.eE+-]+)\s*</exposure_s>", stream.info.lsl_header)
    return float(m.group(1)) if m else None


def _chunks(video: Stream, stop: int | None = None) -> Iterator[np.ndarray]:
    n = video.sample_count if stop is None else min(stop, video.sample_count)
    for a in range(0, n, CHUNK_FRAMES):
        yield video.frames(a, min(a + CHUNK_FRAMES, n))


def estimate_exposure(levels: np.ndarray, fps: float) -> float:
    """Exposure (s) from the share of LED onsets that fall inside an exposure (partly lit first frame).

    Pulse edges fall uniformly over the frame period, so that share is exposure / period.
    """
    noise = level_noise(levels)
    first = np.flatnonzero((levels[:-1] <= noise) & (levels[1:] > noise)) + 1
    partial = float(np.mean(levels[first] < 1.0 - noise)) if first.size else 1.0
    return float(np.clip(partial, 0.1, 1.0)) / fps


def _pick_led(
    video: Stream, cam_t: np.ndarray, trig_s: np.ndarray, exposure_s: float | None
) -> tuple[LedRoi | None, str]:
    """The LED candidate whose flashes best match the amplifier's trigger pulses, or (None, reason)."""
    n_search = int(LED_SEARCH_S * video.info.nominal_srate_hz)
    fps = video.info.nominal_srate_hz
    tried = 0
    for stop in (n_search, None):  # the first minute, then the whole video
        best: tuple[int, LedRoi | None] = (0, None)
        cands = [roi for roi, _ in led_candidates(_chunks(video, stop))]
        tried += len(cands)
        for roi, sig in zip(cands, led_signals(_chunks(video, stop), cands)):
            try:
                levels, _, _ = led_levels(sig)
                onsets = led_onsets(
                    levels, cam_t[: levels.size], exposure_s or estimate_exposure(levels, fps), level_noise(levels)
                )
                n = match_pulses(onsets, trig_s).x.size
            except SyncError:
                continue
            if n > best[0]:
                best = (n, roi)
        if best[1] is not None:
            return best[1], ""
        if stop is None or stop >= video.sample_count:
            break
    if not tried:
        return None, "no flashing LED found in the video (pass --led-roi x,y,w,h if it is there)"
    return None, (
        f"none of the {tried} flashing regions of the video matches the amplifier's trigger pulses "
        "(is the LED in view? pass --led-roi x,y,w,h to point at it)"
    )


def _lsl_alignment(video: Stream, ecg: Stream) -> tuple[np.ndarray, float, float]:
    """Frame times on the ECG clock from LSL clocks only; returns (times, offset_s, drift_ppm)."""
    fs = ecg.info.nominal_srate_hz
    ecg_t = dejitter(correct_timestamps(ecg.timestamps, fit_clock_offsets(ecg.clock_offsets)), fs)
    vid_t = correct_timestamps(video.timestamps, fit_clock_offsets(video.clock_offsets))
    # recorder time -> ECG sample clock, by the dejittered line (linear beyond both ends)
    k = np.arange(ecg_t.size, dtype=np.float64)
    slope, intercept = np.polyfit(ecg_t - ecg_t[0], k, 1)
    inside = np.interp(vid_t, ecg_t, k)
    outside = intercept + slope * (vid_t - ecg_t[0])
    idx = np.where((vid_t < ecg_t[0]) | (vid_t > ecg_t[-1]), outside, inside)
    times = idx / fs
    cam_t = frame_indices(video.timestamps, video.info.nominal_srate_hz) / video.info.nominal_srate_hz
    line = fit_line(cam_t, times, scale_s=0.002) if times.size >= 2 else None
    return times, (line.offset_s if line else float("nan")), (line.drift_ppm if line else float("nan"))


def synchronize(
    session: Session,
    mode: str = "auto",
    *,
    led_roi: LedRoi | None = None,
    exposure_s: float | None = None,
    log: Callable[[str], None] = lambda _m: None,
) -> SyncResult:
    """Align the session's video to its ECG. See the module docstring for the modes.

    ``led_roi`` overrides LED detection; ``exposure_s`` overrides the exposure in the video
    header (otherwise estimated from the share of pulse onsets that fall inside an exposure).
    ``log`` receives progress lines. Raises :class:`SyncError` when the requested mode is impossible.
    """
    if mode not in MODES:
        raise SyncError(f"unknown sync mode {mode!r}; choose one of {', '.join(MODES)}")
    video = session.stream(kind="video")
    ecg = session.stream(type="ECG")
    if video.sample_count < 2 or ecg.sample_count < 2:
        raise SyncError(f"{session.path}: the video or the ECG stream is (nearly) empty; nothing to align")
    fps, fs = video.info.nominal_srate_hz, ecg.info.nominal_srate_hz
    if fps <= 0 or fs <= 0:
        raise SyncError(f"{session.path}: the video and ECG streams must declare their nominal rates")
    cam_t = frame_indices(video.timestamps, fps) / fps
    warnings: list[str] = []
    base = {"video_stream": video.key, "ecg_stream": ecg.key}

    # -- trigger pulses: amplifier edges and LED onsets -------------------------------------
    trig = _channel(ecg, "TRIG")
    trig_s = edge_times(trig, fs) if trig is not None else np.zeros(0)
    strobe = _channel(ecg, "STROBE")
    strobe_s = edge_times(strobe, fs) if strobe is not None else np.zeros(0)
    pulse_fit: LineFit | None = None
    cam_onsets = np.zeros(0)
    roi = led_roi
    exp = exposure_s if exposure_s is not None else header_exposure_s(video)
    pulse_problem = ""
    if mode in ("auto", "pulses", "strobe") and trig_s.size:
        if roi is None:
            log("looking for the trigger LED in the video ...")
            roi, pulse_problem = _pick_led(video, cam_t, trig_s, exp)
        if roi is not None:
            log(
                f"LED at x={roi.x} y={roi.y} {roi.w}x{roi.h}; reading its brightness in {video.sample_count} frames ..."
            )
            levels, _, _ = led_levels(led_signal(_chunks(video), roi))
            if exp is None:
                exp = estimate_exposure(levels, fps)
                warnings.append(f"camera exposure unknown; estimated {exp * 1e3:.2f} ms from the LED onsets")
            cam_onsets = led_onsets(levels, cam_t, exp, level_noise(levels))
            try:
                pulse_fit = match_pulses(cam_onsets, trig_s)
                pulse_problem = ""
            except SyncError as e:
                pulse_problem = str(e)
    elif mode in ("auto", "pulses", "strobe"):
        pulse_problem = (
            f"the ECG stream has no TRIG channel with pulses (channels: {', '.join(ecg.info.channel_labels)})"
        )

    def result(mode_: str, times: np.ndarray, fit: LineFit | None, offset_s: float, drift: float) -> SyncResult:
        return SyncResult(
            mode=mode_,
            frame_time_ecg_s=times,
            offset_ms=offset_s * 1e3,
            drift_ppm=drift,
            pulses_video=int(cam_onsets.size),
            pulses_ecg=int(trig_s.size),
            pulses_matched=int(pulse_fit.x.size) if pulse_fit else 0,
            residual_rms_ms=fit.rms_s * 1e3 if fit else None,
            residual_max_ms=fit.max_s * 1e3 if fit else None,
            exposure_s=exp,
            led_roi=roi,
            strobe_edges=int(strobe_s.size),
            warnings=warnings,
            matched_camera_s=fit.x if fit else np.zeros(0),
            matched_ecg_s=fit.y if fit else np.zeros(0),
            residuals_s=fit.residuals_s if fit else np.zeros(0),
            **base,
        )

    # -- strobe -------------------------------------------------------------------------------
    strobe_ok = strobe_s.size >= 0.5 * cam_t.size
    if mode in ("auto", "strobe") and strobe_ok:
        if pulse_fit is not None:
            predicted = pulse_fit(cam_t)
        elif strobe_s.size == cam_t.size and mode == "strobe":
            predicted = strobe_s  # one edge per frame: take them in order
            warnings.append("no trigger pulses to pin the strobe; assumed one strobe edge per recorded frame")
        else:
            predicted = None
        if predicted is not None:
            j = np.clip(np.searchsorted(strobe_s, predicted), 1, strobe_s.size - 1)
            j = np.where(np.abs(strobe_s[j - 1] - predicted) < np.abs(strobe_s[j] - predicted), j - 1, j)
            ok = np.abs(strobe_s[j] - predicted) < 0.4 / fps
            if ok.sum() >= 0.5 * cam_t.size:
                fit = fit_line(cam_t[ok], strobe_s[j[ok]])
                # Exposure start = strobe edge; the edge estimate (k - 0.5)/fs is unbiased.
                return result("strobe", fit(cam_t), fit, fit.offset_s, fit.drift_ppm)
            warnings.append(f"only {int(ok.sum())} of {cam_t.size} frames have a strobe edge where expected")
        elif mode == "strobe":
            raise SyncError(f"strobe mode needs trigger pulses to number the strobe edges: {pulse_problem}")
    elif mode == "strobe":
        raise SyncError(
            f"strobe mode needs the camera's exposure output on an amplifier channel named STROBE; found "
            f"{strobe_s.size} edges for {cam_t.size} frames"
        )

    # -- pulses -------------------------------------------------------------------------------
    if pulse_fit is not None and mode in ("auto", "pulses", "strobe"):
        return result("pulses", pulse_fit(cam_t), pulse_fit, pulse_fit.offset_s, pulse_fit.drift_ppm)
    if mode == "pulses":
        raise SyncError(f"cannot align with trigger pulses: {pulse_problem}")

    # -- LSL clocks only ------------------------------------------------------------------------
    if mode == "auto":
        warnings.append(f"no hardware alignment ({pulse_problem}); fell back to LSL clocks")
    warnings.append(
        "LSL-only alignment cannot see device latencies: expect errors of tens of ms, "
        "too coarse for 0.5 s ME windows at 150 fps"
    )
    times, off, drift = _lsl_alignment(video, ecg)
    return result("lsl", times, None, off, drift)


def write_result(session: Session, res: SyncResult) -> None:
    """Store ``res`` in the session's /sync group (the session must be open writable)."""
    rep = res.report()
    attrs = {k: (np.nan if v is None else v) for k, v in rep.items() if k not in ("led_roi", "warnings")}
    attrs["warnings"] = "\n".join(res.warnings)
    attrs["led_roi"] = np.array(rep["led_roi"] or [-1, -1, -1, -1], dtype=np.int64)
    attrs["created_time"] = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    attrs["clock"] = "ECG sample clock: sample k at k / nominal_srate_hz seconds"
    arrays = {
        "frame_time_ecg_s": res.frame_time_ecg_s,
        "matched_pulses_s": np.column_stack([res.matched_camera_s, res.matched_ecg_s])
        if res.matched_camera_s.size
        else np.zeros((0, 2)),
        "residuals_s": res.residuals_s,
    }
    session.write_group("sync", attrs, arrays)
