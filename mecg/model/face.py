"""Find the face and lay out the regions of interest (ROIs) that ME spotting watches.

Detection uses OpenCV's Haar cascades (``haarcascade_frontalface_default`` and
``haarcascade_eye``, shipped inside opencv-contrib-python-headless 4.x; nothing is downloaded).
The two eyes fix the face's scale and centre: every ROI sits at a fixed offset from the eye
midpoint in units of the inter-ocular distance ``d`` (offsets measured on a neutral frontal
face). When the eyes are not found, they are placed where they sit in a typical Haar face box.

The 12 ROIs: outer/inner brows (AU1, AU2, AU4), lower eyelids (AU7), nose sides (AU9), mouth
corners (AU12, AU15), chin (AU17), and the nose bridge, a rigid region whose motion is
subtracted from the others to cancel head movement.

If no face is found in any of the probed frames, :class:`FaceNotFoundError` tells the user to
check the video or to give the face box by hand (``--face-box x,y,w,h``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from mecg.errors import MecgError

#: ROI centres relative to the eye midpoint, in inter-ocular distances (x right, y down in the image).
ROI_OFFSETS: dict[str, tuple[float, float]] = {
    "brow_outer_r": (-0.72, -0.27),
    "brow_inner_r": (-0.28, -0.31),
    "brow_inner_l": (0.30, -0.31),
    "brow_outer_l": (0.74, -0.27),
    "eye_r": (-0.50, 0.09),
    "eye_l": (0.50, 0.09),
    "nose_r": (-0.17, 0.39),
    "nose_l": (0.26, 0.39),
    "mouth_r": (-0.41, 0.90),
    "mouth_l": (0.57, 0.92),
    "chin": (0.09, 1.37),
    "nose_bridge": (0.02, 0.22),
}
ROI_NAMES = tuple(ROI_OFFSETS)
#: The rigid reference region.
REFERENCE_ROI = "nose_bridge"
#: ROI half-size in inter-ocular distances.
ROI_HALF = 0.13
#: The face crop: a square of this many inter-ocular distances, centred this far below the eyes.
CROP_SIDE_D = 2.8
CROP_CENTER_BELOW_D = 0.55


class FaceNotFoundError(MecgError):
    """No face could be found in the video."""


@dataclass(frozen=True)
class FaceLayout:
    """Where the face is in the frame: eye centres (px) and everything derived from them."""

    eye_r: tuple[float, float]
    eye_l: tuple[float, float]

    @property
    def d(self) -> float:
        """Inter-ocular distance in frame pixels."""
        return float(np.hypot(self.eye_l[0] - self.eye_r[0], self.eye_l[1] - self.eye_r[1]))

    @property
    def mid(self) -> tuple[float, float]:
        return (0.5 * (self.eye_r[0] + self.eye_l[0]), 0.5 * (self.eye_r[1] + self.eye_l[1]))

    def crop_box(self) -> tuple[float, float, float]:
        """Face crop as ``(centre_x, centre_y, side)`` in frame pixels."""
        mx, my = self.mid
        return mx, my + CROP_CENTER_BELOW_D * self.d, CROP_SIDE_D * self.d

    def rois_in_crop(self, crop_size: int) -> np.ndarray:
        """ROI boxes ``(12, 4)`` as ``x0, y0, x1, y1`` integer pixels of a ``crop_size`` square face crop."""
        scale = crop_size / CROP_SIDE_D  # crop px per inter-ocular distance
        cx = crop_size / 2.0
        cy = crop_size / 2.0 - CROP_CENTER_BELOW_D * scale
        half = ROI_HALF * scale
        boxes = []
        for ox, oy in ROI_OFFSETS.values():
            x, y = cx + ox * scale, cy + oy * scale
            boxes.append([round(x - half), round(y - half), round(x + half), round(y + half)])
        return np.clip(np.asarray(boxes, dtype=np.int64), 0, crop_size)

    @classmethod
    def from_face_box(cls, x: float, y: float, w: float, h: float) -> FaceLayout:
        """Typical eye positions inside a Haar face box (eyes at 30 % / 70 % of the width, 40 % down)."""
        return cls((x + 0.30 * w, y + 0.40 * h), (x + 0.70 * w, y + 0.40 * h))


@lru_cache(maxsize=1)
def _cascades() -> tuple[cv2.CascadeClassifier, cv2.CascadeClassifier]:
    root = cv2.data.haarcascades
    face = cv2.CascadeClassifier(root + "haarcascade_frontalface_default.xml")
    eye = cv2.CascadeClassifier(root + "haarcascade_eye.xml")
    if face.empty() or eye.empty():  # pragma: no cover - only with a broken OpenCV install
        raise FaceNotFoundError("OpenCV's Haar cascades are missing; install opencv-contrib-python-headless 4.x")
    return face, eye


def _gray(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) if frame.ndim == 3 else frame


#: Frames are searched shrunk to about this many px on their short side (whole factors; smaller ones as
#: they are): the cascades' 24 px window is a tenth of it, and a 640x480 frame costs a quarter.
DETECT_SIDE = 240


def detect_layout(frame: np.ndarray) -> FaceLayout | None:
    """Face and eyes in one frame (uint8 grey or RGB); None when no face is found.

    A frame larger than :data:`DETECT_SIDE` is area-averaged by a whole factor first; positions come back
    in the frame's pixels (box edges scale exactly).
    """
    g = _gray(frame)
    f = max(1, min(g.shape) // DETECT_SIDE)
    if f > 1:
        g = cv2.resize(g, (g.shape[1] // f, g.shape[0] // f), interpolation=cv2.INTER_AREA)
    g = cv2.equalizeHist(g)
    face_c, eye_c = _cascades()
    min_side = max(24, min(g.shape) // 8)
    faces = face_c.detectMultiScale(g, 1.1, 5, minSize=(min_side, min_side))
    if len(faces) == 0:
        return None
    x, y, w, h = max(faces, key=lambda b: b[2] * b[3])  # the largest face is the participant
    upper = g[y : y + h // 2 + h // 10, x : x + w]
    eyes = eye_c.detectMultiScale(upper, 1.1, 5, minSize=(max(8, w // 10), max(8, w // 10)))
    centres = sorted(((ex + ew / 2 + x) * f, (ey + eh / 2 + y) * f) for ex, ey, ew, eh in eyes)
    if len(centres) >= 2:
        r, left = centres[0], centres[-1]
        if 0.25 * w * f < left[0] - r[0] < 0.65 * w * f and abs(left[1] - r[1]) < 0.15 * h * f:
            return FaceLayout(r, left)
    return FaceLayout.from_face_box(x * f, y * f, w * f, h * f)


def find_layout(frames: list[np.ndarray]) -> FaceLayout:
    """Median layout over the frames in which a face was found; raises :class:`FaceNotFoundError`."""
    found = [lay for lay in (detect_layout(f) for f in frames) if lay is not None]
    if not found:
        raise FaceNotFoundError(
            f"no face found in {len(frames)} probed frames; check that the camera sees the participant's face, "
            "or give the face box by hand with --face-box x,y,w,h"
        )
    er = np.median([lay.eye_r for lay in found], axis=0)
    el = np.median([lay.eye_l for lay in found], axis=0)
    return FaceLayout((float(er[0]), float(er[1])), (float(el[0]), float(el[1])))
