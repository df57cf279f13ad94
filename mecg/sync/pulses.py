"""Trigger pulses as the two devices saw them: digital edges on the amplifier, LED onsets in the video.

Amplifier edges are sample-accurate: a rising edge between samples k-1 and k is placed at
``(k - 0.5) / rate`` on the ECG clock (the middle of the interval where it happened).

LED onsets are estimated to a fraction of a frame. A frame integrates light over its exposure
``[t_i, t_i + E]``; the LED's brightness in the frame where the pulse starts is the lit fraction
``l`` of that exposure, so the edge lies at ``t_i + E * (1 - l)``. An edge that falls between two
exposures (the first lit frame is fully lit) is placed in the middle of that dead time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from mecg.errors import MecgError


class SyncError(MecgError):
    """Alignment is impossible or ambiguous; the message says what was found and what to do."""


def rising_edges(channel: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Sample indices ``k`` where the channel crosses ``threshold`` upward between ``k - 1`` and ``k``."""
    x = np.asarray(channel, dtype=np.float64).reshape(-1) >= threshold
    return np.flatnonzero(~x[:-1] & x[1:]) + 1


def falling_edges(channel: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Sample indices ``k`` where the channel crosses ``threshold`` downward between ``k - 1`` and ``k``."""
    x = np.asarray(channel, dtype=np.float64).reshape(-1) >= threshold
    return np.flatnonzero(x[:-1] & ~x[1:]) + 1


def edge_times(channel: np.ndarray, srate_hz: float) -> np.ndarray:
    """Rising-edge times on the device's sample clock (s): ``(k - 0.5) / srate_hz``."""
    return (rising_edges(channel) - 0.5) / srate_hz


@dataclass(frozen=True)
class LedRoi:
    """LED region in frame pixels: ``x, y, width, height``."""

    x: int
    y: int
    w: int
    h: int

    @classmethod
    def parse(cls, text: str) -> LedRoi:
        """``"x,y,w,h"`` -> :class:`LedRoi`."""
        try:
            x, y, w, h = (int(v) for v in text.split(","))
        except ValueError:
            raise SyncError(f"LED region must be x,y,w,h in pixels, got {text!r}") from None
        if w <= 0 or h <= 0 or x < 0 or y < 0:
            raise SyncError(f"LED region {text!r} must have x, y >= 0 and positive width and height")
        return cls(x, y, w, h)


def _blocks(frames: np.ndarray, block: int) -> np.ndarray:
    """Mean brightness per ``block`` x ``block`` tile: ``(n, H // block, W // block)`` float32.

    Summed a row of tiles at a time, then across each tile: for grey uint8 frames the same floats as
    the mean over both tile axes (sums of at most 16 integers are exact), about 15 times faster.
    """
    n, h, w = frames.shape[:3]
    hb, wb = h // block, w // block
    f = frames[:, : hb * block, : wb * block]
    if f.ndim == 4:
        f = f.astype(np.float32).mean(axis=3)
    rows = f.reshape(n, hb, block, wb * block).sum(axis=2, dtype=np.float32).reshape(n, hb, wb, block)
    out = rows[..., 0].copy()
    for j in range(1, block):
        out += rows[..., j]
    out /= np.float32(block * block)
    return out


def led_candidates(frame_chunks: Iterator[np.ndarray], block: int = 4, k: int = 24) -> list[tuple[LedRoi, np.ndarray]]:
    """Regions that could be the trigger LED, best first, each with its brightness per frame.

    Each ``block`` x ``block`` tile is scored by (99.5th percentile - median) / (median absolute
    frame-to-frame change + 0.5): the LED is steady and then jumps far above its usual level for
    a few frames. Blinking eyes score high too, so up to ``k`` separate candidates are returned
    (each the connected tiles scoring at least half its best tile) and the caller keeps the one
    whose flashes match the amplifier's trigger pulses.
    """
    import cv2  # here, not at the top: `import mecg.sync` and `mecg info` start without OpenCV

    series = np.concatenate([_blocks(c, block) for c in frame_chunks])
    if series.shape[0] < 10:
        return []
    med = np.median(series, axis=0)
    jump = np.percentile(series, 99.5, axis=0) - med
    score = jump / (np.median(np.abs(np.diff(series, axis=0)), axis=0) + 0.5)
    score[jump < 20] = 0  # an LED flash is bright: at least 20 grey levels over the tile's mean
    out: list[tuple[LedRoi, np.ndarray]] = []
    taken = np.zeros(score.shape, dtype=bool)
    for flat in np.argsort(score, axis=None)[::-1]:
        by, bx = np.unravel_index(int(flat), score.shape)
        if len(out) >= k or score[by, bx] <= 0:
            break
        if taken[by, bx]:
            continue
        mask = (score >= 0.5 * score[by, bx]) & ~taken
        _, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
        member = labels == labels[by, bx]
        taken |= cv2.dilate(member.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        ys, xs = np.nonzero(member)
        roi = LedRoi(
            int(xs.min()) * block, int(ys.min()) * block, int(np.ptp(xs) + 1) * block, int(np.ptp(ys) + 1) * block
        )
        out.append((roi, series[:, member].mean(axis=1)))
    return out


def led_signals(frame_chunks: Iterator[np.ndarray], rois: list[LedRoi], max_pixels: int = 4096) -> list[np.ndarray]:
    """Brightness of the LED in every frame, for each candidate region, in one pass over the video.

    A region found from tiles (or given by hand) also holds background around the LED, which
    would dilute its contrast: only the pixels whose flashes reach at least half the strongest
    pixel's (99.5th percentile minus median, over the recording) are averaged.
    """
    parts: list[list[np.ndarray]] = [[] for _ in rois]
    for c in frame_chunks:
        g = c.mean(axis=3, dtype=np.float32) if c.ndim == 4 else c
        for j, roi in enumerate(rois):
            r = g[:, roi.y : roi.y + roi.h, roi.x : roi.x + roi.w].astype(np.float32)
            parts[j].append(r.reshape(r.shape[0], -1))
    out = []
    for p in parts:
        if not p:
            out.append(np.zeros(0))
            continue
        px = np.concatenate(p)
        if px.shape[1] > max_pixels:  # a huge hand-drawn region: plain mean
            out.append(px.mean(axis=1))
            continue
        jump = np.percentile(px, 99.5, axis=0) - np.median(px, axis=0)
        keep = jump >= 0.5 * jump.max() if jump.max() > 0 else np.ones(px.shape[1], dtype=bool)
        out.append(px[:, keep].mean(axis=1))
    return out


def led_signal(frame_chunks: Iterator[np.ndarray], roi: LedRoi) -> np.ndarray:
    """:func:`led_signals` for one region."""
    return led_signals(frame_chunks, [roi])[0]


def level_noise(levels: np.ndarray) -> float:
    """Detection threshold for a lit frame: 6 robust s.d. of the off-frame levels, at least 0.04."""
    off = levels[levels < 0.5]
    if off.size < 10:
        return 0.04
    mad = float(np.median(np.abs(off - np.median(off))))
    return float(np.clip(6 * 1.4826 * mad, 0.04, 0.3))


def _otsu(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold: the cut that maximises the between-class variance of ``values``."""
    hist, edges = np.histogram(values, bins=bins)
    centers = 0.5 * (edges[1:] + edges[:-1])
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centers)
    mu0 = m0 / np.maximum(w0, 1)
    mu1 = (m0[-1] - m0) / np.maximum(w1, 1)
    between = w0 * w1 * (mu0 - mu1) ** 2
    return float(centers[int(np.argmax(between[:-1]))])


def led_levels(signal: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Lit fraction per frame in [0, 1], with the off and fully-on brightness it was scaled by.

    Off = median brightness; on = median of the frames above Otsu's threshold (a pulse spans
    several fully lit frames, so they dominate that set, and a few brighter spurious flashes
    such as a reflection do not move it).
    """
    s = np.asarray(signal, dtype=np.float64)
    off = float(np.median(s))
    if float(np.max(s)) - off < 10:
        raise SyncError("the LED region never lights up: no trigger pulse is visible in the video")
    on = float(np.median(s[s > max(_otsu(s), off + 5.0)]))
    return np.clip((s - off) / (on - off), 0.0, 1.0), off, on


def led_onsets(levels: np.ndarray, frame_time_s: np.ndarray, exposure_s: float, noise: float = 0.04) -> np.ndarray:
    """Pulse start times (s, camera clock) from per-frame lit fractions.

    A pulse starts at a frame whose level rises above ``noise`` after a frame at or below it.
    ``frame_time_s`` is each frame's exposure start on the camera clock.
    """
    lv = np.asarray(levels, dtype=np.float64)
    t = np.asarray(frame_time_s, dtype=np.float64)
    lit = lv > noise
    starts = np.flatnonzero(~lit[:-1] & lit[1:]) + 1
    out = []
    for i in starts:
        # require the pulse to reach at least half brightness within the next frames (not a glitch)
        if lv[i : i + 3].max() < 0.5:
            continue
        if lv[i] >= 1.0 - noise:  # fully lit: the edge was in the dead time before this exposure
            out.append(0.5 * (t[i - 1] + exposure_s + t[i]) if t[i] - t[i - 1] > exposure_s else t[i])
        else:
            out.append(t[i] + exposure_s * (1.0 - lv[i]))
    return np.asarray(out, dtype=np.float64)


@dataclass(frozen=True)
class LedEdges:
    """LED pulses on the camera clock (s): where each rose (``rise_lo..rise_hi``) and fell (``fall_*``, NaN if unseen).

    ``frame``: the first lit frame of each pulse; ``last``: its last lit frame (-1 if unseen).
    """

    rise_lo: np.ndarray
    rise_hi: np.ndarray
    fall_lo: np.ndarray
    fall_hi: np.ndarray
    frame: np.ndarray
    last: np.ndarray


def led_edge_intervals(
    levels: np.ndarray, frame_time_s: np.ndarray, exposure_s: float, noise: float = 0.04
) -> LedEdges:
    """Where each LED pulse may have started and ended, as intervals of camera time (s).

    The LED edge model: frame ``i`` integrates light over ``[t_i, t_i + E]``.

    * A partly lit first frame (level ``l``) holds the rising edge, at ``t_i + E (1 - l)``, known
      to about ``E * noise / 2``; a partly lit last frame holds the falling edge, at ``t_j + E l``.
    * A fully lit first frame: the edge fell after the previous recorded frame's exposure ended
      (less what a level under the noise threshold could hide) and before this exposure began.
      Likewise a fully lit last frame: the LED went off after its exposure and before the next.
      At 25-30 fps with a few ms of exposure that is most of a frame period; the interval says so
      instead of guessing its middle, and the clock fit uses it as such.
    """
    lv = np.asarray(levels, dtype=np.float64)
    t = np.asarray(frame_time_s, dtype=np.float64)
    e = exposure_s
    lit = lv > noise
    starts = np.flatnonzero(~lit[:-1] & lit[1:]) + 1
    ends = np.flatnonzero(lit[:-1] & ~lit[1:])  # last lit frames
    cols: list[list[float]] = [[], [], [], [], [], []]
    for i in starts:
        if lv[i : i + 3].max() < 0.5:
            continue
        if lv[i] >= 1.0 - noise:
            rlo, rhi = t[i - 1] + e * (1.0 - noise), t[i] + e * noise
        else:
            c = t[i] + e * (1.0 - lv[i])
            rlo, rhi = c - 0.5 * e * noise, c + 0.5 * e * noise
        k = int(np.searchsorted(ends, i))
        flo = fhi = np.nan
        j = -1
        if k < ends.size and ends[k] + 1 < lv.size:
            j = int(ends[k])
            if lv[j] >= 1.0 - noise:
                flo, fhi = t[j] + e * (1.0 - noise), t[j + 1] + e * noise
            else:
                c = t[j] + e * lv[j]
                flo, fhi = c - 0.5 * e * noise, c + 0.5 * e * noise
        for col, v in zip(cols, (rlo, rhi, flo, fhi, i, j)):
            col.append(v)
    a = [np.asarray(c, dtype=np.float64) for c in cols]
    return LedEdges(a[0], a[1], a[2], a[3], a[4].astype(np.int64), a[5].astype(np.int64))
