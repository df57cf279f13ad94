"""The features the spotters read, for one session file: video (optical flow per face region) and ECG."""

from __future__ import annotations

import os
from dataclasses import dataclass

from mecg.model.ecg_features import EcgFeatures, EcgParams, ecg_features
from mecg.model.frontend import FrontEndFeatures, FrontEndParams, default_k, frontend_features
from mecg.session import open_session


@dataclass
class SessionFeatures:
    """Per-frame features of one session.

    Attributes
    ----------
    session : str
        The session's name.
    fps : float
        The video's nominal frame rate (Hz).
    video : FrontEndFeatures
        ``roi`` ``(frames, 12, 4)`` optical-flow features per face region (px per ``k_frames``
        frames), ``crops`` ``(frames, 12, 2, p, p)`` flow patches, ``shift`` ``(frames, 2)`` head motion (px).
    ecg : EcgFeatures or None
        R-peaks (s, ECG clock), heart rate (bpm), its slope (bpm/s), HRV and quality per frame; None
        when the session has not been synced (run :func:`mecg.sync_session` first) or ``ecg`` was False.
    """

    session: str
    fps: float
    video: FrontEndFeatures
    ecg: EcgFeatures | None


def load_features(
    path: str | os.PathLike,
    *,
    ecg: bool = True,
    flow: str = "dis",
    face_box: tuple[int, int, int, int] | None = None,
    workers: int | None = None,
    cache: bool = True,
) -> SessionFeatures:
    """Compute (or read from the derivatives cache) a session's video and ECG features.

    Parameters
    ----------
    path : str or PathLike
        The session file.
    ecg : bool
        Also the ECG features, when the session has been synced.
    flow : str
        Optical-flow method (:data:`mecg.model.frontend.FLOW_METHODS`).
    face_box : (x, y, w, h), optional
        Face box in pixels when face detection fails.
    workers : int, optional
        Processes for the video front end (None: all cores).
    cache : bool
        Read and store the features in the session's derivatives file (the recording is never written).

    Returns
    -------
    SessionFeatures

    Raises
    ------
    SessionError
        The file is not a readable session.
    SyncError, EcgError
        The session's sync failed, or its ECG holds too few R-peaks.
    """
    with open_session(path) as s:
        fps = float(s.stream(kind="video").info.nominal_srate_hz)
        synced = "frame_time_ecg_s" in s.sync_group
        name = s.path.stem
    params = FrontEndParams(k_frames=default_k(fps), method=flow, face_box=face_box)
    video = frontend_features(path, params, workers=workers or os.cpu_count() or 1, cache=cache)
    ecg_feats = ecg_features(str(path), EcgParams(), cache=cache) if ecg and synced else None
    return SessionFeatures(name, fps, video, ecg_feats)
