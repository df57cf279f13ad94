"""Render face video frames from a real photograph: head pose, AU deformations, blinks, LED, noise.

The source is one of the face identities of :mod:`mecg.synth.identities` (real photographs that
ship inside installed packages, and faces generated from them; nothing is downloaded). Each
frame is one ``cv2.remap`` of the source: a similarity transform (the subject's crop and scale
plus the current head pose) followed by the sum of the active Gaussian displacement bumps (AUs,
eyelids, mouth movements). The trigger LED is drawn in a corner afterwards, then flicker and
sensor noise are applied.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from mecg.synth.expressions import Bump
from mecg.synth.identities import REF_MID, identity_image, identity_scale

#: Reference frame width for amplitudes quoted in pixels (the issue's 640x480).
REFERENCE_WIDTH = 640


@lru_cache(maxsize=4)
def source_image(color: bool, identity: str = "astronaut") -> np.ndarray:
    """The identity's photograph as float32 RGB ``(h, w, 3)`` or grey ``(h, w)``, values 0-255."""
    if identity == "astronaut":  # the original path, bit for bit
        from skimage import data

        rgb = data.astronaut()
        if color:
            return rgb.astype(np.float32)
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return identity_image(identity, color)


@dataclass(frozen=True)
class Appearance:
    """How one subject looks in the frame.

    ``identity``: the face (a name of :data:`~mecg.synth.identities.IDENTITIES`).
    ``crop_cx``/``crop_cy``: source point (px) at the frame centre; ``crop_width``: source px
    spanning the frame width (smaller = larger face), all three in the astronaut's reference
    pixels (other identities map them through their eye midpoint and inter-ocular distance);
    ``brightness``: global gain; ``colour_cast``: per-channel RGB gains (colour frames only).
    """

    crop_cx: float = 226.0
    crop_cy: float = 118.0
    crop_width: float = 200.0
    brightness: float = 1.0
    colour_cast: tuple[float, float, float] = (1.0, 1.0, 1.0)
    identity: str = "astronaut"

    def source_crop(self) -> tuple[float, float, float]:
        """``(cx, cy, width)`` of the crop in the identity's own source pixels."""
        k, (mx, my) = identity_scale(self.identity)
        return mx + (self.crop_cx - REF_MID[0]) * k, my + (self.crop_cy - REF_MID[1]) * k, self.crop_width * k

    @classmethod
    def random(cls, rng: np.random.Generator) -> Appearance:
        """A plausible subject: face 40-60 % of the frame width, off-centre, varied exposure and colour."""
        return cls(
            crop_cx=226.0 + rng.uniform(-18, 18),
            crop_cy=118.0 + rng.uniform(-12, 12),
            crop_width=rng.uniform(165, 235),
            brightness=rng.uniform(0.8, 1.15),
            colour_cast=tuple(float(x) for x in rng.uniform(0.92, 1.08, 3)),
        )


@dataclass(frozen=True)
class Led:
    """The trigger LED in the frame: a disc of ``size_frac`` x width in a corner, partly occludable.

    ``occlusion`` is the fraction of the LED's width hidden behind a dark object (0 = fully visible).
    """

    corner: str = "br"
    size_frac: float = 0.03
    occlusion: float = 0.0
    off_level: float = 25.0
    on_level: float = 250.0

    def box(self, width: int, height: int) -> tuple[int, int, int, int]:
        """``(x0, y0, x1, y1)`` of the LED square in a ``width`` x ``height`` frame."""
        s = max(4, round(self.size_frac * width))
        m = max(2, round(0.02 * width))
        x0 = width - m - s if "r" in self.corner else m
        y0 = height - m - s if "b" in self.corner else m
        return x0, y0, x0 + s, y0 + s


class FaceRenderer:
    """Renders frames of one subject at one frame size.

    Parameters
    ----------
    appearance
        The subject's crop, scale and colour.
    width, height
        Frame size in pixels.
    color
        RGB frames when true, grey when false.
    led
        Trigger LED placement; ``None`` for no LED.
    noise_sigma
        Sensor noise standard deviation in grey levels.
    rng
        Seeds the bank of noise frames.
    """

    def __init__(
        self,
        appearance: Appearance,
        width: int,
        height: int,
        *,
        color: bool = False,
        led: Led | None = Led(),
        noise_sigma: float = 2.0,
        rng: np.random.Generator | None = None,
    ) -> None:
        self.appearance = appearance
        self.width, self.height, self.color = int(width), int(height), bool(color)
        self.led = led
        self.src = source_image(self.color, appearance.identity)
        if self.color:
            self.src = self.src * np.asarray(appearance.colour_cast, dtype=np.float32)
        #: The crop centre and width in the identity's source px.
        self.crop_cx, self.crop_cy, crop_width = appearance.source_crop()
        #: Output px per source px.
        self.scale = self.width / crop_width
        #: Output px per 640x480-reference px (amplitudes are quoted at 640 wide).
        self.px_per_ref = self.width / REFERENCE_WIDTH
        ys, xs = np.mgrid[0 : self.height, 0 : self.width].astype(np.float32)
        self._xs, self._ys = xs - self.width / 2, ys - self.height / 2
        rng = rng or np.random.default_rng(0)
        shape = (self.height, self.width, 3) if self.color else (self.height, self.width)
        self._noise = (rng.standard_normal((16, *shape)) * noise_sigma).astype(np.float32)
        self._led_mask = self._make_led_mask()

    def _make_led_mask(self) -> tuple[tuple[int, int, int, int], np.ndarray, np.ndarray] | None:
        if self.led is None:
            return None
        x0, y0, x1, y1 = self.led.box(self.width, self.height)
        s = x1 - x0
        yy, xx = np.mgrid[0:s, 0:s].astype(np.float32) + 0.5
        r = np.hypot(xx - s / 2, yy - s / 2) / (s / 2)
        glow = np.clip(1.2 - r, 0, 1).astype(np.float32)  # soft disc
        occluded = np.zeros((s, s), dtype=bool)
        occluded[:, : round(self.led.occlusion * s)] = True
        return (x0, y0, x1, y1), glow, occluded

    def landmark_to_frame(self, x: float, y: float, pose: np.ndarray | None = None) -> tuple[float, float]:
        """Where source point ``(x, y)`` appears in the frame for head ``pose`` (tx, ty, rot, scale)."""
        tx, ty, rot, sc = pose if pose is not None else (0.0, 0.0, 0.0, 1.0)
        k = self.scale * sc
        c, s = np.cos(rot), np.sin(rot)
        dx, dy = x - self.crop_cx, y - self.crop_cy
        return (
            self.width / 2 + k * (c * dx - s * dy) + tx * self.px_per_ref,
            self.height / 2 + k * (s * dx + c * dy) + ty * self.px_per_ref,
        )

    def render(
        self,
        pose: np.ndarray,
        bumps: list[tuple[Bump, float]],
        gain: float,
        led_level: float,
        noise_index: int,
    ) -> np.ndarray:
        """One uint8 frame.

        ``pose`` = (tx, ty in 640-reference px, rotation in rad, relative scale); ``bumps`` =
        active (bump, amplitude in 640-reference px); ``gain`` multiplies brightness;
        ``led_level`` in [0, 1] is the fraction of the exposure the LED was lit.
        """
        a = self.appearance
        crop_cx, crop_cy = self.crop_cx, self.crop_cy
        tx, ty, rot, sc = (float(v) for v in pose)
        k = self.scale * sc
        c, s = np.cos(rot), np.sin(rot)
        # Output pixel q -> face-centred output coordinates, minus head translation.
        qx = self._xs - tx * self.px_per_ref
        qy = self._ys - ty * self.px_per_ref
        if bumps:
            qx, qy = qx.copy(), qy.copy()
            tpx, tpy = self.width / 2 + tx * self.px_per_ref, self.height / 2 + ty * self.px_per_ref
            for bump, amp in bumps:
                # Bump centre in q-space (face-centred output px), and its box in pixel space.
                ex, ey = bump.x - crop_cx, bump.y - crop_cy
                bqx, bqy = k * (c * ex - s * ey), k * (s * ex + c * ey)
                sx, sy = bump.sigma_x * k, bump.sigma_y * k
                x0, x1 = int(max(0, tpx + bqx - 3.5 * sx)), int(min(self.width, tpx + bqx + 3.5 * sx + 1))
                y0, y1 = int(max(0, tpy + bqy - 3.5 * sy)), int(min(self.height, tpy + bqy + 3.5 * sy + 1))
                if x0 >= x1 or y0 >= y1:
                    continue
                gx, gy = qx[y0:y1, x0:x1], qy[y0:y1, x0:x1]
                w = np.exp(-0.5 * (((gx - bqx) / sx) ** 2 + ((gy - bqy) / sy) ** 2))
                dx, dy = bump.direction
                d = amp * self.px_per_ref
                # Backward warp: the skin moved by +d, so the pixel shows what was at q - d.
                gx -= w * d * (c * dx - s * dy)
                gy -= w * d * (s * dx + c * dy)
        mx = (crop_cx + (c * qx + s * qy) / k).astype(np.float32)
        my = (crop_cy + (-s * qx + c * qy) / k).astype(np.float32)
        img = cv2.remap(self.src, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        img *= a.brightness * gain
        img += self._noise[noise_index % len(self._noise)]
        if self._led_mask is not None:
            (x0, y0, x1, y1), glow, occluded = self._led_mask
            led = self.led
            val = led.off_level + (led.on_level - led.off_level) * float(led_level) * glow
            val = np.where(occluded, 40.0, val).astype(np.float32)
            if self.color:
                img[y0:y1, x0:x1] = np.stack([val, val * 0.35, val * 0.25], axis=-1)  # a red LED
            else:
                img[y0:y1, x0:x1] = val
        return np.clip(img, 0, 255).astype(np.uint8)
