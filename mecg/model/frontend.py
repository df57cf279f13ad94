"""The video front end: face crop, head-motion compensation, optical flow and per-ROI features.

For every frame ``i`` the front end computes the optical flow between the face crops of frames
``i`` and ``i + k`` (``k`` about half the expected expression length) and summarises it per ROI:

* ``du, dv`` (crop px): mean flow in the ROI minus the mean flow of the rigid nose bridge;
* ``mag`` (crop px): mean magnitude of that compensated flow;
* ``strain``: mean optical strain magnitude ``sqrt(exx^2 + eyy^2 + 2 exy^2)`` of the flow field;
* a ``patch x patch`` crop of the compensated flow (u, v) for the network's video branch;
* optionally (``image`` > 0, for networks that read the whole face, e.g. CMCL-Net's ``paper``
  preset) the compensated flow of the whole crop, area-averaged to ``image x image`` (u, v; crop px).

Head movement is compensated twice: each frame's crop follows the face (phase correlation with
the first frame's crop, smoothed over ~0.3 s), and the head's residual motion, a robust affine
fit of the flow over the whole crop (translation, rotation, scale), is subtracted from the flow
(the nose bridge, the classic rigid reference, picks up blinks through DIS's spatial smoothing
and cannot see rotation; the robust fit over the face does both).
Frames after ``n - k`` have no partner and get zeros. Results are cached in the session's derivatives
file under ``/features/frontend`` with the parameters that made them; other parameters recompute them.
Flow images are cached apart, under ``/features/frontend_image`` with the parameters plus their size,
so caches made without them stay valid and are not rewritten for them.
Work is split over processes (both cores by default).
"""

from __future__ import annotations

import functools
import itertools
import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, get_args

import cv2
import numpy as np

from mecg.model.face import REFERENCE_ROI, ROI_NAMES, FaceLayout, find_layout
from mecg.session import Session, StreamKind, can_store_derivatives, open_session

FlowMethod = Literal["dis", "farneback", "tvl1"]
FLOW_METHODS: tuple[FlowMethod, ...] = get_args(FlowMethod)
FEATURES = ("du", "dv", "mag", "strain")
CACHE_GROUP = "features/frontend"
#: Cache group of the whole-crop flow images (``image`` > 0).
IMAGE_GROUP = "features/frontend_image"
#: Bumped whenever the computation changes, so caches made by older code are recomputed.
FRONTEND_VERSION = 10
#: Frames decoded per read.
CHUNK = 32
#: Most processes one front-end run starts (None: as many as pieces); see :func:`limit_processes`.
_MAX_PROCESSES: int | None = None


# Processes started by the fork server inherit its imports: preloading this module there spares
# every front-end process the import of OpenCV and h5py (about 0.5 s each). No effect when the
# fork server is already running.
multiprocessing.get_context("forkserver").set_forkserver_preload([__name__])


def limit_processes(n: int | None) -> None:
    """Let each front-end run use at most ``n`` processes (None: no limit).

    The pieces a video is split into (``workers``) stay the same, so the features do too: with
    ``n = 1`` they are worked through one after another in this process. Workers of a session pool
    (:mod:`mecg.model.parallel`) set 1, so a pool of sessions never nests pools of pieces.
    """
    global _MAX_PROCESSES
    _MAX_PROCESSES = n


@dataclass(frozen=True)
class FrontEndParams:
    """Everything that changes the features (so it is part of the cache key).

    ``k_frames``: flow partner distance; ``method``: ``dis`` (default, fast), ``farneback`` or
    ``tvl1``; ``crop_size``: face crop side in px; ``patch``: flow crop side per ROI;
    ``compensate``: subtract head motion (crop re-centring + nose bridge); ``face_box``: a face
    box ``x, y, w, h`` given by hand instead of detection.
    """

    k_frames: int
    method: FlowMethod = "dis"
    crop_size: int = 128
    patch: int = 8
    compensate: bool = True
    face_box: tuple[int, int, int, int] | None = None

    def key(self) -> str:
        """Cache key: the parameters plus the front end's version."""
        return json.dumps({**asdict(self), "version": FRONTEND_VERSION}, sort_keys=True)


def default_k(fps: float, expression_s: float = 0.3) -> int:
    """``k`` = half the expected expression length, in frames (at least 1)."""
    return max(1, round(0.5 * expression_s * fps))


@dataclass
class FrontEndFeatures:
    """Per-frame features of one video: ``roi`` ``(n, 12, 4)``, ``crops`` ``(n, 12, 2, p, p)``, ``shift`` ``(n, 2)``;
    ``image`` ``(n, 2, s, s)`` float16 (crop px) when flow images were asked for, else None."""

    params: FrontEndParams
    roi: np.ndarray
    crops: np.ndarray
    shift: np.ndarray
    layout: FaceLayout
    image: np.ndarray | None = None

    def feature(self, name: str, roi: str | None = None) -> np.ndarray:
        """One feature column, ``(n, 12)`` or ``(n,)`` for one ROI."""
        f = self.roi[:, :, FEATURES.index(name)]
        return f if roi is None else f[:, ROI_NAMES.index(roi)]


def _flow_fn(method: str):
    if method == "dis":
        # ULTRAFAST stops at 1/4 resolution and misses sub-pixel motion; finest scale 1 (1/2
        # resolution) sees it at a third of the cost of full resolution.
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
        dis.setFinestScale(1)
        return lambda a, b: dis.calc(a, b, None)
    if method == "farneback":
        return lambda a, b: cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 15, 3, 5, 1.2, 0)
    if method == "tvl1":
        tv = cv2.optflow.DualTVL1OpticalFlow_create()
        return lambda a, b: tv.calc(a, b, None)
    raise ValueError(f"unknown flow method {method!r}; choose one of {', '.join(FLOW_METHODS)}")


class _Cropper:
    """Cuts the face crop of a frame, re-centred on the reference crop by phase correlation."""

    def __init__(self, layout: FaceLayout, size: int, compensate: bool, alpha: float = 1.0) -> None:
        self.cx, self.cy, self.side = layout.crop_box()
        self.size, self.compensate = size, compensate
        self.scale = size / self.side
        #: whole factor the box is first shrunk by (area averaging; 1: none)
        self.decimate = max(1, int(self.side / size))
        self.ref: np.ndarray | None = None
        #: phase correlation runs on the crop shrunk by this factor (area averaging; with its smoothing 0.04
        #: instead of 0.15 ms a frame)
        self.pc = 2 if size >= 64 else 1
        self.window = cv2.createHanningWindow((size // self.pc, size // self.pc), cv2.CV_32F)
        self.shift = np.zeros(2)
        self.alpha = alpha
        self._cropped_at = np.zeros(2)  # the shift the crops are currently cut at

    def crop(self, frame: np.ndarray, dx: float = 0.0, dy: float = 0.0) -> np.ndarray:
        """The ``size`` x ``size`` grey crop of the face box moved by ``(dx, dy)`` frame px.

        Cut the box (integer bounds, a margin of ``m`` px, sides multiples of ``m``), shrink it with
        area averaging (which anti-aliases); then one small affine warp applies the sub-pixel
        remainder. A box ``m`` >= 2 times the crop is area-averaged by the whole factor ``m`` (OpenCV's
        fast path, a third of the cost of one fractional step from the whole box) and the warp also
        scales by what is left (2/3 to 1, after the averaging's low-pass).
        """
        g = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) if frame.ndim == 3 else frame
        cx, cy, half = self.cx + dx, self.cy + dy, self.side / 2
        m = self.decimate
        x0, y0 = int(np.floor(cx - half)) - m, int(np.floor(cy - half)) - m
        x1 = x0 + m * -(-(int(np.ceil(cx + half)) + m + 1 - x0) // m)
        y1 = y0 + m * -(-(int(np.ceil(cy + half)) + m + 1 - y0) // m)
        h, w = g.shape
        if x0 < 0 or y0 < 0 or x1 > w or y1 > h:  # near the border: pad by replication
            top, left = max(0, -y0), max(0, -x0)
            pads = top, max(0, y1 - h), left, max(0, x1 - w)
            if x0 < w and y0 < h and x1 > 0 and y1 > 0:  # pad only the part of the frame the box covers
                box = cv2.copyMakeBorder(g[y0 + top : y1, x0 + left : x1], *pads, cv2.BORDER_REPLICATE)
            else:  # the box is wholly outside the frame: pad the frame
                box = cv2.copyMakeBorder(g, *pads, cv2.BORDER_REPLICATE)[y0 + top : y1 + top, x0 + left : x1 + left]
        else:
            box = g[y0:y1, x0:x1]
        if m > 1:
            # pixel j of the shrunk box is box px (j + 0.5) m - 0.5; the warp scales by what is left (r, 2/3 to 1)
            small = cv2.resize(box, (box.shape[1] // m, box.shape[0] // m), interpolation=cv2.INTER_AREA)
            r = m * self.scale
            tx = 0.5 * r - 0.5 + self.size / 2 - (cx - x0) * self.scale
            ty = 0.5 * r - 0.5 + self.size / 2 - (cy - y0) * self.scale
            a = np.array([[r, 0.0, tx], [0.0, r, ty]])
        else:
            sw, sh = max(1, round(box.shape[1] * self.scale)), max(1, round(box.shape[0] * self.scale))
            small = cv2.resize(box, (sw, sh), interpolation=cv2.INTER_AREA if self.scale < 1 else cv2.INTER_LINEAR)
            fx, fy = sw / box.shape[1], sh / box.shape[0]
            a = np.array([[1.0, 0.0, self.size / 2 - (cx - x0) * fx], [0.0, 1.0, self.size / 2 - (cy - y0) * fy]])
        return cv2.warpAffine(small, a, (self.size, self.size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    def rows_needed(self, height: int) -> int:
        """Frame rows (from the top) that any crop of this cropper can touch: the box, its margin
        (see :meth:`crop`) and the largest shift :meth:`_follow` accepts (a quarter of the box side)."""
        return min(height, int(np.ceil(self.cy + self.side / 2 + 0.25 * self.side)) + 2 * self.decimate + 2)

    def _smooth(self, crop: np.ndarray) -> np.ndarray:
        """The crop as phase correlation sees it: shrunk by ``pc`` and blurred (sigma 2 crop px)."""
        if self.pc > 1:
            n = self.size // self.pc
            crop = cv2.resize(crop, (n, n), interpolation=cv2.INTER_AREA)
        return cv2.GaussianBlur(crop.astype(np.float32), (0, 0), 2.0 / self.pc)

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """The face crop of ``frame``, lightly blurred (sigma 1 px) against sensor noise."""
        return cv2.GaussianBlur(self._follow(frame), (0, 0), 1.0)

    def _follow(self, frame: np.ndarray) -> np.ndarray:
        if self.ref is None:
            first = self.crop(frame)
            self.ref = self._smooth(first)
            return first
        if not self.compensate:
            return self.crop(frame)
        first = self.crop(frame, *self._cropped_at)
        # phaseCorrelate applies the window to its inputs in place: hand it a copy of the reference
        (sx, sy), response = cv2.phaseCorrelate(self.ref.copy(), self._smooth(first), self.window)
        sx, sy = sx * self.pc, sy * self.pc  # crop px
        # Trust only a clear peak and a plausible step (heads do not jump 2 % of the crop in a frame).
        if response < 0.05 or np.hypot(sx, sy) > 0.03 * self.size:
            return first
        # Follow the measured position slowly (time constant ~0.3 s): a blink or an expression
        # shifts the correlation peak briefly and must not move the crop; the nose-bridge
        # subtraction takes out what the crop has not followed yet.
        measured = self._cropped_at + np.array([sx, sy]) / self.scale  # crop px -> frame px
        new = self.shift + self.alpha * (measured - self.shift)
        if np.max(np.abs(new)) > 0.25 * self.side:
            return first
        self.shift = new
        if np.hypot(*(self.shift - self._cropped_at)) * self.scale < 0.25:  # < 1/4 crop px: keep this crop
            return first
        self._cropped_at = self.shift.copy()
        return self.crop(frame, *self.shift)


@functools.lru_cache(maxsize=4)
def _grids(h: int, w: int, step: int) -> tuple[np.ndarray, np.ndarray]:
    """Design matrices ``[x, y, 1]`` of the subsampled grid (float64) and of every pixel (float32)."""
    ys, xs = np.mgrid[0:h:step, 0:w:step]
    a = np.column_stack([xs.ravel(), ys.ravel(), np.ones(xs.size)]).astype(np.float64)
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    g = np.column_stack([gx.ravel(), gy.ravel(), np.ones(gx.size, np.float32)])
    return a, g


def head_motion(flow: np.ndarray, step: int = 4, iterations: int = 3) -> np.ndarray:
    """The head's own motion in a face-crop flow field: a robust affine fit (translation, rotation,
    scale, shear), evaluated at every pixel. Local motion (blinks, expressions) covers a small part
    of the face and is down-weighted as outliers (points beyond 2.5 median residuals are dropped)."""
    h, w = flow.shape[:2]
    a, g = _grids(h, w, step)
    f = flow[::step, ::step].reshape(-1, 2).astype(np.float64)
    keep = np.ones(len(a), dtype=bool)
    coef = np.zeros((3, 2))
    for _ in range(iterations):
        ak = a[keep]
        # least squares by the 3 x 3 normal equations (the grid's x, y, 1 are well conditioned);
        # a degenerate set (all points dropped) falls back to SVD
        try:
            coef = np.linalg.solve(ak.T @ ak, ak.T @ f[keep])
        except np.linalg.LinAlgError:
            coef, *_ = np.linalg.lstsq(ak, f[keep], rcond=None)
        r = f - a @ coef
        res = np.sqrt(np.einsum("ij,ij->i", r, r))
        keep = res <= 2.5 * max(_median(res), 1e-6)
    return (g @ coef.astype(np.float32)).reshape(h, w, 2)


def _median(x: np.ndarray) -> float:
    """``np.median`` of a 1-d float64 array without NaNs, bit for bit, at a third of its overhead."""
    m = x.size // 2
    if x.size % 2:
        return float(np.partition(x, m)[m])
    part = np.partition(x, (m - 1, m))
    return float((part[m - 1] + part[m]) / 2)


def _roi_features(
    flow: np.ndarray, boxes: np.ndarray, ref: int, patch: int, compensate: bool, image: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Per-ROI (du, dv, mag, strain), flow patches and (``image`` > 0) the whole-crop flow image of one flow field."""
    # Head motion: a robust affine fit over the whole face crop (the nose bridge alone picks up
    # blinks through DIS's spatial smoothing, and misses rotation and scale).
    comp = flow - head_motion(flow) if compensate else flow
    # Sobel's kernel scaled by 1/8 (a power of two: the same floats as dividing afterwards)
    dux, dvx = cv2.split(cv2.Sobel(comp, cv2.CV_32F, 1, 0, ksize=3, scale=0.125))  # du/dx, dv/dx
    duy, dvy = cv2.split(cv2.Sobel(comp, cv2.CV_32F, 0, 1, ksize=3, scale=0.125))  # du/dy, dv/dy
    strain = np.sqrt(dux**2 + dvy**2 + 0.5 * (duy + dvx) ** 2)
    u, v = cv2.split(comp)
    mag = cv2.magnitude(u, v)
    # ROI means of (u, v, mag, strain): one 4-channel mean per ROI (an integral image of the whole crop
    # wrote 0.5 MB a frame for 12 small boxes)
    uvms = cv2.merge([u, v, mag, strain])
    feats = np.array([cv2.mean(uvms[b:d, a:c]) for a, b, c, d in boxes], dtype=np.float32)
    crops = np.empty((len(boxes), 2, patch, patch), dtype=np.float16)
    for r, (a, b, c, d) in enumerate(boxes):
        small = cv2.resize(comp[b:d, a:c], (patch, patch), interpolation=cv2.INTER_AREA)
        crops[r] = small.transpose(2, 0, 1)
    img = cv2.resize(comp, (image, image), interpolation=cv2.INTER_AREA).transpose(2, 0, 1) if image else None
    return feats, crops, img


def _process(
    args: tuple[str, str, FrontEndParams, FaceLayout, int, int, float, int],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Worker: features of frames ``[start, stop)`` (reads frames up to ``stop + k``)."""
    path, key, params, layout, start, stop, fps, image = args
    k = params.k_frames
    flow_fn = _flow_fn(params.method)
    boxes = layout.rois_in_crop(params.crop_size)
    ref = ROI_NAMES.index(REFERENCE_ROI)
    cropper = _Cropper(layout, params.crop_size, params.compensate, alpha=min(1.0, 1.0 / (0.3 * fps)))
    n_out = stop - start
    roi = np.zeros((n_out, len(ROI_NAMES), 4), dtype=np.float32)
    crops = np.zeros((n_out, len(ROI_NAMES), 2, params.patch, params.patch), dtype=np.float16)
    shift = np.zeros((n_out, 2), dtype=np.float32)
    images = np.zeros((n_out, 2, image, image), dtype=np.float16) if image else None
    # the next chunk of frames is read and inflated in a thread while this one is worked on
    with open_session(path) as s, ThreadPoolExecutor(1) as reader:
        video = s.streams[key]
        n = video.sample_count
        read = functools.partial(video.frames, rows=cropper.rows_needed(video.data.shape[1]))
        cropper(read(0, 1)[0])  # the reference crop is always frame 0's
        cropper.shift = np.zeros(2)
        end = min(n, stop + k)
        ring: dict[int, np.ndarray] = {}
        ahead = reader.submit(read, start, min(start + CHUNK, end))
        for a in range(start, end, CHUNK):
            chunk = ahead.result()
            if a + CHUNK < end:
                ahead = reader.submit(read, a + CHUNK, min(a + 2 * CHUNK, end))
            for j, frame in enumerate(chunk):
                i = a + j
                ring[i] = cropper(frame)
                if i < stop:
                    shift[i - start] = cropper.shift
                src = i - k
                if src >= start and src in ring:
                    flow = flow_fn(ring.pop(src), ring[i])
                    roi[src - start], crops[src - start], img = _roi_features(
                        flow, boxes, ref, params.patch, params.compensate, image
                    )
                    if images is not None:
                        images[src - start] = img
    return roi, crops, shift, images


def _pool_worker() -> None:
    """Pool process set-up: one OpenCV thread (the pool's processes already fill the cores)."""
    cv2.setNumThreads(1)


def _start_pool(processes: int) -> ProcessPoolExecutor:
    """A forkserver pool of ``processes`` processes, started now (they come up in the background)."""
    ctx = multiprocessing.get_context("forkserver")
    pool = ProcessPoolExecutor(processes, mp_context=ctx, initializer=_pool_worker)
    for _ in range(processes):
        pool.submit(int)  # each submit with no idle process starts one
    return pool


def compute_frontend(
    session: Session,
    params: FrontEndParams,
    *,
    video_key: str | None = None,
    workers: int | None = None,
    probe_frames: int = 5,
    image: int = 0,
) -> FrontEndFeatures:
    """Compute the front-end features of a session's video (no caching; see :func:`frontend_features`).

    ``image`` > 0 also computes the whole-crop flow images, ``image x image`` px (see the module docstring).
    """
    video = session.streams[video_key] if video_key else session.stream(kind=StreamKind.VIDEO)
    n = video.sample_count
    workers = max(1, min(workers or os.cpu_count() or 1, max(1, n // (4 * params.k_frames + 64))))
    processes = min(workers, _MAX_PROCESSES or workers)
    # forkserver, not fork: a fork of a process whose other threads use HDF5 (a recorder, an app's
    # workers, an open session) can crash the child inside HDF5. The processes start (and import
    # OpenCV) while this one looks for the face.
    pool = _start_pool(processes) if processes > 1 else None
    try:
        if params.face_box is not None:
            layout = FaceLayout.from_face_box(*params.face_box)
        else:
            probes = [video.data[int(i)] for i in np.linspace(0, max(n - 1, 0), min(probe_frames, max(n, 1)))]
            layout = find_layout(probes)
        bounds = np.linspace(0, n, workers + 1).astype(int)
        fps = video.info.nominal_srate_hz or 30.0
        spans = itertools.pairwise(bounds)
        jobs = [(str(session.path), video.key, params, layout, int(a), int(b), fps, image) for a, b in spans]
        parts = list(pool.map(_process, jobs)) if pool is not None else [_process(j) for j in jobs]
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    roi = np.concatenate([p[0] for p in parts])
    crops = np.concatenate([p[1] for p in parts])
    shift = np.concatenate([p[2] for p in parts])
    images = np.concatenate([p[3] for p in parts]) if image else None
    return FrontEndFeatures(params, roi, crops, shift, layout, images)


def image_key(params: FrontEndParams, image: int) -> str:
    """Cache key of the flow images: the front end's key plus the image side (px)."""
    return json.dumps({**json.loads(params.key()), "image": image}, sort_keys=True)


def frontend_features(
    path: str | os.PathLike,
    params: FrontEndParams,
    *,
    workers: int | None = None,
    cache: bool = True,
    image: int = 0,
) -> FrontEndFeatures:
    """Front-end features of the session at ``path``, from its cache when the parameters match.

    Computed features are stored in ``/features/frontend`` of the session's derivatives file
    (replacing older ones) when ``cache`` is true and its folder is writable; the recording itself
    is never written. Without a writable folder they are computed without caching. ``image`` > 0
    also returns the whole-crop flow images (``image x image`` px), cached in ``/features/frontend_image``;
    when only they are missing, the flow is computed again and only they are written.
    """
    path = Path(path)
    with open_session(path) as s:
        g = s.derived(CACHE_GROUP)
        have = cache and g is not None and g.attrs.get("params") == params.key()
        gi = s.derived(IMAGE_GROUP) if image else None
        have_image = not image or (cache and gi is not None and gi.attrs.get("params") == image_key(params, image))
        if have and have_image:
            lay = g.attrs["eyes"]
            return FrontEndFeatures(
                params,
                g["roi"][()],
                g["crops"][()],
                g["shift"][()],
                FaceLayout((float(lay[0]), float(lay[1])), (float(lay[2]), float(lay[3]))),
                gi["image"][()] if image else None,
            )
        feats = compute_frontend(s, params, workers=workers, image=image)
    if cache and can_store_derivatives(path):
        with open_session(path, writable=True) as s:
            if not have:
                s.write_group(
                    CACHE_GROUP,
                    {
                        "params": params.key(),
                        "features": list(FEATURES),
                        "rois": list(ROI_NAMES),
                        "eyes": np.array([*feats.layout.eye_r, *feats.layout.eye_l]),
                        "doc": "roi[i] summarises the flow between frames i and i + k_frames (see mecg.model.frontend)",
                    },
                    {"roi": feats.roi, "crops": feats.crops, "shift": feats.shift},
                )
            if not have_image:
                s.write_group(
                    IMAGE_GROUP,
                    {
                        "params": image_key(params, image),
                        "doc": "image[i]: compensated flow (u, v; crop px) between frames i and i + k_frames over "
                        "the whole face crop, area-averaged (see mecg.model.frontend)",
                    },
                    {"image": feats.image},
                )
    return feats
