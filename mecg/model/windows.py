"""Sliding windows over sessions: the tensors CMCL-Net reads, and their labels.

A window is centred on a frame ``c`` and spans ``window_s`` of video (0.5 s, as the paper's 75
frames at 150 fps). Its inputs (see :mod:`mecg.model.cmclnet`):

* video: ``time_steps`` frames evenly spread over the window; per frame the 12 ROI features
  and flow crops of the front end, divided by the session's median flow magnitude (so faces of
  any size and cameras of any noise level look alike);
* ECG, on the ECG clock through sync: ``ecg_context_s`` of band-passed ECG at 100 Hz centred on
  the window (scaled by its 99th percentile), the HR curve over ``hr_context_s`` at 10 Hz (minus
  the session's mean HR, / 10 bpm), and 8 hand-made features at the centre: HR, HRS,
  HRS / trial mean HRS, RR mean, RR std, SDSD, RMSSD, signal quality;
* with ``ecg_lookahead_s`` set (a model trained for live spotting, ``mecg train --live-lookahead``), the
  ECG as a live spotter that waits that long after the centre sees it: samples past ``centre +
  ecg_lookahead_s`` repeat the last one before, the HR curve ends at the last beat found by then
  (:data:`mecg.model.heart_rate.LIVE_PEAK_MARGIN_S` before it) and is the mean HR beyond;
* with ``flow_image`` > 0 (CMCL-Net's ``paper`` preset), ``image``: the front end's whole-crop
  flow images ``(time_steps, 2, flow_image, flow_image)`` at the same time steps, divided by the
  same median flow magnitude.

Labels: a window is an ME window when an ME apex lies within ``window_s / 4`` of its centre and
a non-ME window when no ME apex lies within ``window_s / 2``; windows in between are ambiguous
and not used for training. MaE windows are non-ME windows.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from mecg.model.ecg_features import bandpass, ecg_features
from mecg.model.frontend import FrontEndParams, default_k, frontend_features
from mecg.model.heart_rate import LIVE_PEAK_MARGIN_S, hr_curve, instantaneous_hr
from mecg.session import Annotation, StreamKind, open_session
from mecg.sync import Timeline

#: Hand-made features per window, in the order named by ``mecg.model.cmclnet.HAND_FEATURES``.
N_HAND = 8


@dataclass(frozen=True)
class WindowParams:
    """Window geometry (s, steps), ECG context and flow-image side (px; 0: none); stored in checkpoints.

    ``ecg_lookahead_s``: None, a window sees ``ecg_context_s / 2`` of ECG after its centre (offline);
    a number, only that much, as a live spotter waiting that long sees it (see the module docstring).
    """

    window_s: float = 0.5
    time_steps: int = 16
    ecg_context_s: float = 4.0
    ecg_rate_hz: float = 100.0
    hr_context_s: float = 4.0
    hr_rate_hz: float = 10.0
    flow_image: int = 0
    ecg_lookahead_s: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)

    def frames(self, fps: float) -> int:
        """Window length in frames."""
        return max(self.time_steps, round(self.window_s * fps))


class SessionData:
    """Everything windows need from one session, held in memory (features, not frames)."""

    def __init__(
        self,
        path: str,
        params: WindowParams,
        frontend: FrontEndParams | None = None,
        workers: int | None = None,
        use_ecg: bool = True,
    ) -> None:
        self.path, self.params = str(path), params
        with open_session(path) as s:
            video = s.stream(kind=StreamKind.VIDEO)
            self.fps = float(video.info.nominal_srate_hz)
            self.n = video.sample_count
            self.subject = s.subject_id
            self.annotations: list[Annotation] = list(s.annotations)
            synced = "frame_time_ecg_s" in s.sync_group  # sync found the ECG (and chose its channel)
        self.name = str(path).rsplit("/", 1)[-1].removesuffix(".h5")
        fe = frontend_features(
            path, frontend or FrontEndParams(k_frames=default_k(self.fps)), workers=workers, image=params.flow_image
        )
        self.frontend_params = fe.params
        scale = float(np.median(fe.roi[:, :, 2])) + 1e-3
        strain = float(np.median(fe.roi[:, :, 3])) + 1e-4
        self.roi = fe.roi.astype(np.float32).copy()
        self.roi[:, :, :3] /= scale
        self.roi[:, :, 3] /= strain
        self.crops = (fe.crops.astype(np.float32) / scale).astype(np.float16)
        self.image = None if fe.image is None else (fe.image.astype(np.float32) / scale).astype(np.float16)
        self.has_ecg = use_ecg and synced
        if self.has_ecg:
            self._load_ecg()

    def _load_ecg(self) -> None:
        p = self.params
        ef = ecg_features(self.path)
        with open_session(self.path) as s:
            tl = Timeline(s)
            fs = tl.srate_hz
            raw = tl.ecg_signal()
            self.frame_t = tl.frame_time_s.copy()
            self.ecg_clock = tl.clock
        bp = bandpass(raw, fs)
        step = max(1, round(fs / p.ecg_rate_hz))
        self.ecg = (bp[::step] / (np.percentile(np.abs(bp), 99) + 1e-6)).astype(np.float32)
        self.ecg_rate = fs / step
        self.peaks_s = ef.peaks_s
        self.hr_fn = hr_curve(ef.peaks_s)
        self.hr_t = instantaneous_hr(ef.peaks_s)[0]  # where the HR curve has its points
        self.mean_hr = float(np.nanmean(ef.hr_bpm))
        self.hrs = np.nan_to_num(ef.hrs_bpm_per_s)
        self.mean_hrs = ef.mean_hrs_bpm_per_s
        hv = np.nan_to_num(ef.hrv, nan=0.0)
        self.hand = np.column_stack(
            [
                (np.nan_to_num(ef.hr_bpm, nan=self.mean_hr) - self.mean_hr) / 10.0,
                self.hrs / 10.0,
                self.hrs / max(self.mean_hrs, 1e-3),
                hv[:, 0],
                hv[:, 1] * 10,
                hv[:, 3] * 10,
                hv[:, 4] * 10,
                ef.quality.astype(np.float64),
            ]
        ).astype(np.float32)

    # -- labels ----------------------------------------------------------------------------
    def me_apexes(self) -> np.ndarray:
        return np.array([a.apex_frame for a in self.annotations if a.type == "ME"], dtype=np.int64)

    def labels(self, centers: np.ndarray) -> np.ndarray:
        """1 ME window, 0 non-ME window, -1 ambiguous (see module docstring)."""
        w = self.params.frames(self.fps)
        ap = self.me_apexes()
        if ap.size == 0:
            return np.zeros(len(centers), dtype=np.int64)
        d = np.min(np.abs(np.asarray(centers)[:, None] - ap[None, :]), axis=1)
        return np.where(d <= w / 4, 1, np.where(d > w / 2, 0, -1))

    # -- inputs ----------------------------------------------------------------------------
    def window(self, c: int) -> dict[str, np.ndarray]:
        """The network inputs of the window centred on frame ``c`` (numpy, no batch axis)."""
        p = self.params
        w = p.frames(self.fps)
        idx = np.clip(np.round(np.linspace(c - w / 2, c + w / 2 - 1, p.time_steps)).astype(int), 0, self.n - 1)
        out = {"feats": self.roi[idx], "crops": self.crops[idx].astype(np.float32)}
        if self.image is not None:
            out["image"] = self.image[idx].astype(np.float32)
        n_ecg = round(p.ecg_context_s * p.ecg_rate_hz)
        n_hr = round(p.hr_context_s * p.hr_rate_hz)
        tc = self.frame_t[min(max(c, 0), self.n - 1)] if self.has_ecg else np.nan
        kc = float(self.ecg_clock.sample_at(tc)) if np.isfinite(tc) else np.nan
        if np.isfinite(kc):  # frames in an ECG gap (NaN time) get no ECG, like a session without one
            k0 = round(kc * self.ecg_rate / self.ecg_clock.srate_hz - n_ecg / 2)
            k = np.clip(np.arange(k0, k0 + n_ecg), 0, self.ecg.size - 1)
            th = tc - p.hr_context_s / 2 + np.arange(n_hr) / p.hr_rate_hz
            hr = self.hr_fn(th)
            if p.ecg_lookahead_s is not None:  # as a live spotter waiting ecg_lookahead_s sees it
                k = np.minimum(
                    k, max(0, math.floor((kc / self.ecg_clock.srate_hz + p.ecg_lookahead_s) * self.ecg_rate))
                )
                seen = np.searchsorted(self.peaks_s, tc + p.ecg_lookahead_s - LIVE_PEAK_MARGIN_S, side="right")
                hr = np.where(th <= (self.hr_t[seen - 2] if seen >= 2 else -np.inf), hr, np.nan)
            out["ecg"] = self.ecg[k]
            out["hr"] = ((np.nan_to_num(hr, nan=self.mean_hr) - self.mean_hr) / 10.0).astype(np.float32)
            out["hand"] = self.hand[min(max(c, 0), self.n - 1)]
        else:
            out["ecg"] = np.zeros(n_ecg, dtype=np.float32)
            out["hr"] = np.zeros(n_hr, dtype=np.float32)
            out["hand"] = np.zeros(N_HAND, dtype=np.float32)
        return out

    def batch(self, centers: np.ndarray) -> dict[str, np.ndarray]:
        """Stacked inputs of several windows."""
        items = [self.window(int(c)) for c in centers]
        return {k: np.stack([it[k] for it in items]) for k in items[0]}
