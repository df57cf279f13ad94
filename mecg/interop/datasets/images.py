"""Numbered images -> a video-only session: reading, colour mode, resizing, writing in chunks."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from mecg.interop.datasets.base import ColorMode, DatasetError, VideoFolder
from mecg.session import Annotation, SessionWriter, StreamInfo

#: Bytes of decoded frames held in memory at once while a video is copied.
CHUNK_BYTES = 64 * 2**20


def frame_reader(video: VideoFolder, mode: ColorMode, size: tuple[int, int] | None) -> Callable[[Path], np.ndarray]:
    """A function reading one image as uint8 grey ``(h, w)`` or RGB ``(h, w, 3)``, resized to ``size`` (w, h)."""

    def read(p: Path) -> np.ndarray:
        img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        if img is None:
            raise DatasetError(f"cannot read image {p} (missing, damaged or not an image)")
        if img.dtype != np.uint8:
            raise DatasetError(f"{p}: {img.dtype} pixels; only 8-bit images are supported")
        if img.ndim == 3 and img.shape[2] == 4:
            img = img[:, :, :3]
        if img.ndim == 3 and img.shape[2] == 1:
            img = img[:, :, 0]
        if mode == ColorMode.GREY and img.ndim == 3:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        elif mode == ColorMode.RGB:
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB if img.ndim == 2 else cv2.COLOR_BGR2RGB)
        if size is not None and (img.shape[1], img.shape[0]) != size:
            img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
        return img

    return read


def colour_mode(first: Path, color: ColorMode | str) -> ColorMode:
    """``grey`` or ``rgb`` for a video: ``auto`` is grey when the first image has one channel or equal ones."""
    if color != ColorMode.AUTO:
        return ColorMode(color)
    img = cv2.imread(str(first), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DatasetError(f"cannot read image {first} (missing, damaged or not an image)")
    if img.ndim == 2 or img.shape[2] == 1:
        return ColorMode.GREY
    b, g, r = (img[::4, ::4, i].astype(np.int16) for i in range(3))
    return ColorMode.GREY if max(np.abs(b - g).max(), np.abs(g - r).max()) <= 2 else ColorMode.RGB


def write_session(
    video: VideoFolder,
    annotations: list[Annotation],
    path: Path,
    fps: float,
    notes: str,
    *,
    n_frames: int,
    color: ColorMode | str,
    size: tuple[int, int] | None,
    overwrite: bool,
    workers: int,
    progress: Callable[[str, int, int], None] | None,
) -> ColorMode:
    """Copy the first ``n_frames`` images of ``video`` into a session at ``path``; returns the colour mode."""
    mode = colour_mode(video.files[0], color)
    read = frame_reader(video, mode, size)
    first = read(video.files[0])
    shape = first.shape
    stamps = (video.numbers[:n_frames] - video.numbers[0]) / fps
    chunk = int(max(1, min(256, CHUNK_BYTES // max(1, first.nbytes))))
    info = StreamInfo(
        name="FaceCamera",
        type="Video",
        kind="video",
        source_id=f"{video.key}:{video.folder.name}",
        nominal_srate_hz=fps,
        frame_shape=shape,
        can_drop_samples=False,
    )
    writer = SessionWriter(path, video.subject_id, notes, overwrite=overwrite, start_time_lsl=0.0)
    try:
        key = writer.add_stream(info)
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            for i in range(0, n_frames, chunk):
                j = min(i + chunk, n_frames)
                frames = list(pool.map(read, video.files[i:j]))
                for p, fr in zip(video.files[i:j], frames):
                    if fr.shape != shape:
                        raise DatasetError(
                            f"{p}: image of shape {fr.shape} in a video of {shape} frames; pass --resize WxH"
                        )
                writer.append(key, np.stack(frames), stamps[i:j])
                if progress:
                    progress(video.key, j, n_frames)
        writer.set_annotations(annotations, key)
    except BaseException:
        writer.abort()
        path.unlink(missing_ok=True)
        raise
    writer.close()
    return mode
