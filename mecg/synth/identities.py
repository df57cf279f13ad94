"""Face identities: the photographs synthetic participants are rendered from, and their landmarks.

Two real photographs ship inside installed packages (nothing is downloaded):

* ``astronaut``: scikit-image's ``data.astronaut()`` (Eileen Collins, NASA portrait, public domain);
* ``hopper``: Matplotlib's ``mpl-data/sample_data/grace_hopper.jpg`` (Grace Hopper, US Navy portrait,
  public domain).

Further identities are *generated* from them: a smooth thin-plate-spline morph moves the face's
landmarks (eye spacing, face width, face length, nose length, mouth width, eye and mouth height),
and a soft mask over the face changes skin tone and contrast; the background and hair stay
where they were. Every identity carries its landmarks in its own source pixels, so the
action-unit bumps (:func:`au_bumps`) sit on its own brows, eyes, nose, mouth and chin.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from mecg.synth.expressions import AUS, BLINK, LANDMARKS, TALK, Bump

#: Landmarks of Grace Hopper's photograph (600x512, x right, y down; the participant's right eye is image-left).
HOPPER_LANDMARKS = {
    "eye_R": (221.0, 190.0),
    "eye_L": (308.0, 188.0),
    "brow_inner_R": (250.0, 175.0),
    "brow_inner_L": (282.0, 175.0),
    "brow_outer_R": (190.0, 180.0),
    "brow_outer_L": (340.0, 177.0),
    "nose_bridge": (266.0, 200.0),
    "nose_tip": (270.0, 245.0),
    "mouth_R": (232.0, 277.0),
    "mouth_L": (302.0, 277.0),
    "chin": (270.0, 327.0),
}

#: The astronaut's inter-ocular distance (source px) and eye midpoint: the reference all sizes are quoted in.
REF_IOD = 46.0
REF_MID = (224.0, 101.0)


@dataclass(frozen=True)
class FaceIdentity:
    """One face: a base photograph, a morph of its proportions, and a skin tone.

    Morph factors scale distances from the face's midline / eye line (1 = unchanged):
    ``eye_spacing`` (eyes and brows apart), ``face_width`` (cheeks and jaw), ``face_length``
    (mouth and chin below the eyes), ``nose_length``, ``mouth_width``. ``tone`` multiplies the
    R, G, B values of the face's skin; ``contrast`` scales them about their mean (older, more
    lined skin keeps more contrast). ``licence`` credits the photograph.
    """

    name: str
    base: str  # "astronaut" or "hopper"
    eye_spacing: float = 1.0
    face_width: float = 1.0
    face_length: float = 1.0
    nose_length: float = 1.0
    mouth_width: float = 1.0
    tone: tuple[float, float, float] = (1.0, 1.0, 1.0)
    contrast: float = 1.0
    licence: str = ""
    surround: tuple[float, float, float] = (1.0, 1.0, 1.0)
    mirror: bool = False

    @property
    def is_plain(self) -> bool:
        """True when the identity is its photograph unchanged."""
        return (
            (self.eye_spacing, self.face_width, self.face_length, self.nose_length, self.mouth_width) == (1,) * 5
            and self.tone == (1.0, 1.0, 1.0)
            and self.surround == (1.0, 1.0, 1.0)
            and self.contrast == 1.0
            and not self.mirror
        )


_ASTRO = "Eileen Collins, NASA (public domain), via scikit-image data.astronaut()"
_HOPPER = "Grace Hopper, US Navy (public domain), via Matplotlib sample_data/grace_hopper.jpg"

#: The identities, in the order subjects are given them (subject seed modulo the count).
IDENTITIES: tuple[FaceIdentity, ...] = (
    FaceIdentity("astronaut", "astronaut", licence=_ASTRO),
    FaceIdentity("hopper", "hopper", licence=_HOPPER),
    FaceIdentity(
        "astronaut-broad",
        "astronaut",
        eye_spacing=1.08,
        face_width=1.15,
        face_length=0.88,
        nose_length=0.88,
        mouth_width=1.18,
        tone=(0.72, 0.56, 0.44),
        contrast=1.1,
        licence=_ASTRO,
        surround=(0.5, 0.45, 0.45),
        mirror=True,
    ),
    FaceIdentity(
        "hopper-narrow",
        "hopper",
        eye_spacing=0.9,
        face_width=0.84,
        face_length=1.12,
        nose_length=1.1,
        mouth_width=0.86,
        tone=(0.95, 0.86, 0.82),
        contrast=0.75,
        licence=_HOPPER,
        mirror=True,
    ),
    FaceIdentity(
        "astronaut-long",
        "astronaut",
        eye_spacing=0.92,
        face_width=0.88,
        face_length=1.16,
        nose_length=1.14,
        mouth_width=0.9,
        tone=(1.08, 1.0, 0.93),
        contrast=0.9,
        licence=_ASTRO,
        surround=(1.15, 0.72, 0.45),
    ),
    FaceIdentity(
        "hopper-short",
        "hopper",
        eye_spacing=1.1,
        face_length=0.88,
        nose_length=0.9,
        mouth_width=1.12,
        tone=(0.68, 0.52, 0.40),
        licence=_HOPPER,
        surround=(0.8, 0.9, 1.0),
    ),
    FaceIdentity(
        "astronaut-small-features",
        "astronaut",
        eye_spacing=0.88,
        face_width=1.06,
        face_length=1.06,
        nose_length=0.86,
        mouth_width=0.84,
        tone=(0.88, 0.72, 0.60),
        contrast=1.2,
        licence=_ASTRO,
        surround=(0.55, 0.5, 0.5),
        mirror=True,
    ),
    FaceIdentity(
        "hopper-wide-set",
        "hopper",
        eye_spacing=1.16,
        face_width=1.04,
        face_length=0.94,
        nose_length=1.06,
        mouth_width=1.22,
        tone=(1.05, 0.97, 0.9),
        contrast=0.9,
        licence=_HOPPER,
        surround=(1.1, 1.0, 0.8),
        mirror=True,
    ),
)
IDENTITY_NAMES = tuple(i.name for i in IDENTITIES)


def identity(name: str) -> FaceIdentity:
    """The identity called ``name``; raises ``KeyError`` naming the choices."""
    for ident in IDENTITIES:
        if ident.name == name:
            return ident
    raise KeyError(f"unknown face identity {name!r}; choose one of {', '.join(IDENTITY_NAMES)}")


@lru_cache(maxsize=2)
def _photo(base: str) -> np.ndarray:
    """The base photograph as float32 RGB, values 0-255."""
    if base == "astronaut":
        from skimage import data

        return data.astronaut().astype(np.float32)
    if base == "hopper":  # found without importing Matplotlib (slow to import)
        import importlib.util
        from pathlib import Path

        spec = importlib.util.find_spec("matplotlib")
        if spec is None or not spec.submodule_search_locations:  # pragma: no cover - Matplotlib is a dependency
            raise FileNotFoundError("Matplotlib is not installed: its sample photograph grace_hopper.jpg is needed")
        path = Path(next(iter(spec.submodule_search_locations))) / "mpl-data" / "sample_data" / "grace_hopper.jpg"
        bgr = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_COLOR)
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32)
    raise KeyError(f"unknown base photograph {base!r}")


def _base_landmarks(base: str, mirror: bool = False, width: int = 0) -> dict[str, tuple[float, float]]:
    """The photograph's landmarks; mirrored (``width`` px wide) the sides swap: image-left is still the right eye."""
    lm = dict(LANDMARKS) if base == "astronaut" else dict(HOPPER_LANDMARKS)
    if not mirror:
        return lm
    swap = {"_R": "_L", "_L": "_R"}
    return {k[:-2] + swap[k[-2:]] if k[-2:] in swap else k: (width - 1 - x, y) for k, (x, y) in lm.items()}


def _iod(lm: dict[str, tuple[float, float]]) -> float:
    return float(np.hypot(lm["eye_L"][0] - lm["eye_R"][0], lm["eye_L"][1] - lm["eye_R"][1]))


def _mid(lm: dict[str, tuple[float, float]]) -> tuple[float, float]:
    return (0.5 * (lm["eye_R"][0] + lm["eye_L"][0]), 0.5 * (lm["eye_R"][1] + lm["eye_L"][1]))


def _morphed_landmarks(ident: FaceIdentity) -> tuple[dict[str, tuple[float, float]], np.ndarray, np.ndarray]:
    """The identity's landmarks, and the (source, target) control points of its morph (cheeks and anchors too)."""
    lm = _base_landmarks(ident.base, ident.mirror, _photo(ident.base).shape[1])
    d = _iod(lm)
    mx, my = _mid(lm)
    src = dict(lm)
    # cheeks and jaw: not landmarks of the AUs, but they carry the face-width change
    for side, sx in (("R", -1.0), ("L", 1.0)):
        src[f"cheek_{side}"] = (mx + sx * 0.95 * d, my + 0.45 * d)
        src[f"jaw_{side}"] = (mx + sx * 0.75 * d, my + 1.25 * d)
    dst = {}
    for name, (x, y) in src.items():
        dx, dy = x - mx, y - my
        if name.startswith(("eye_", "brow_")):
            dx *= ident.eye_spacing
        if name.startswith(("cheek_", "jaw_")):
            dx *= ident.face_width
        if name.startswith("mouth_"):
            dx = (x - 0.5 * (lm["mouth_R"][0] + lm["mouth_L"][0])) * ident.mouth_width + (
                0.5 * (lm["mouth_R"][0] + lm["mouth_L"][0]) - mx
            ) * ident.face_width
        if name == "nose_tip":
            dy *= ident.nose_length
        if name.startswith(("mouth_", "chin", "jaw_")):
            dy *= ident.face_length
        dst[name] = (mx + dx, my + dy)
    # fixed anchors on a ring well outside the face, so hair and background stay put
    ring = [
        (mx + 2.4 * d * np.cos(a), my + 0.5 * d + 2.6 * d * np.sin(a)) for a in np.linspace(0, 2 * np.pi, 16, False)
    ]
    s = np.array([*src.values(), *ring], dtype=np.float64)
    t = np.array([*dst.values(), *ring], dtype=np.float64)
    return {k: dst[k] for k in lm}, s, t


@lru_cache(maxsize=16)
def _identity_image(name: str) -> tuple[np.ndarray, tuple[tuple[str, tuple[float, float]], ...]]:
    """The identity's RGB image (float32, 0-255) and its landmarks (as a hashable tuple)."""
    ident = identity(name)
    img = _photo(ident.base)
    if ident.mirror:
        img = np.ascontiguousarray(img[:, ::-1])
    if ident.is_plain:
        return img, tuple(_base_landmarks(ident.base).items())
    from scipy.interpolate import RBFInterpolator

    lm, src, dst = _morphed_landmarks(ident)
    h, w = img.shape[:2]
    d = _iod(lm)
    mx, my = _mid(lm)
    # backward map: for each output pixel, where to read in the photograph (exact at every control point)
    tps = RBFInterpolator(dst, src, kernel="thin_plate_spline")
    x0, x1 = int(max(0, mx - 3 * d)), int(min(w, mx + 3 * d))
    y0, y1 = int(max(0, my - 2.5 * d)), int(min(h, my + 3.5 * d))
    # the map is smooth: evaluate it every 4 px and interpolate (exact enough, 16x cheaper)
    step = 4
    ys, xs = np.mgrid[y0 : y1 + step : step, x0 : x1 + step : step].astype(np.float64)
    m = tps(np.column_stack([xs.ravel(), ys.ravel()])).astype(np.float32).reshape(*xs.shape, 2)
    fine = cv2.resize(m, ((xs.shape[1] - 1) * step + 1, (xs.shape[0] - 1) * step + 1), interpolation=cv2.INTER_LINEAR)
    mapx, mapy = fine[: y1 - y0, : x1 - x0, 0], fine[: y1 - y0, : x1 - x0, 1]
    out = img.copy()
    out[y0:y1, x0:x1] = cv2.remap(img, mapx, mapy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    # skin tone and contrast under a soft ellipse over the face
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cy = my + 0.55 * d * ident.face_length
    ell = ((xx - mx) / (1.15 * d * ident.face_width)) ** 2 + ((yy - cy) / (1.45 * d * ident.face_length)) ** 2
    mask = np.clip(1.6 - ell, 0.0, 1.0)[..., None] ** 1.5
    face = out * np.asarray(ident.tone, dtype=np.float32)
    mean = face[mask[..., 0] > 0.9].mean(axis=0)
    face = mean + (face - mean) * ident.contrast
    out = np.clip(out * np.asarray(ident.surround, dtype=np.float32) * (1 - mask) + face * mask, 0, 255)
    out = out.astype(np.float32)
    return out, tuple(lm.items())


def identity_image(name: str, color: bool) -> np.ndarray:
    """The identity's source image: float32 RGB ``(h, w, 3)`` or grey ``(h, w)``, values 0-255."""
    rgb, _ = _identity_image(name)
    return rgb if color else cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def identity_landmarks(name: str) -> dict[str, tuple[float, float]]:
    """The identity's landmarks in its own source pixels (same keys as :data:`~mecg.synth.expressions.LANDMARKS`)."""
    return dict(_identity_image(name)[1])


def identity_scale(name: str) -> tuple[float, tuple[float, float]]:
    """``(k, (mx, my))``: the identity's inter-ocular distance over the astronaut's, and its eye midpoint (px)."""
    lm = identity_landmarks(name)
    return _iod(lm) / REF_IOD, _mid(lm)


def _nearest_landmark(x: float, y: float) -> str:
    return min(LANDMARKS, key=lambda k: (LANDMARKS[k][0] - x) ** 2 + (LANDMARKS[k][1] - y) ** 2)


def _move(b: Bump, lm: dict[str, tuple[float, float]], k: float) -> Bump:
    """``b`` (defined on the astronaut) anchored to its nearest landmark on another face, sizes scaled by ``k``."""
    anchor = _nearest_landmark(b.x, b.y)
    ax, ay = LANDMARKS[anchor]
    nx, ny = lm[anchor]
    return Bump(nx + (b.x - ax) * k, ny + (b.y - ay) * k, b.sigma_x * k, b.sigma_y * k, b.direction, b.side)


@lru_cache(maxsize=16)
def au_bumps(name: str) -> tuple[dict[str, tuple[Bump, ...]], tuple[Bump, ...], tuple[Bump, ...]]:
    """``(AUs, blink, talk)``: the action-unit, eyelid and mouth-movement bumps on identity ``name``'s own face."""
    if name == "astronaut":
        return AUS, BLINK, TALK
    lm = identity_landmarks(name)
    k = _iod(lm) / REF_IOD

    def move(bumps: tuple[Bump, ...]) -> tuple[Bump, ...]:
        return tuple(_move(b, lm, k) for b in bumps)

    return {au: move(bumps) for au, bumps in AUS.items()}, move(BLINK), move(TALK)
