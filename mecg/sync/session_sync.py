"""Sync a session file and read its ECG by video frames: the sync room's two calls for library users.

:func:`sync_session` is ``mecg sync`` as a function (align, store beside the recording);
:func:`ecg_for_frames` answers "which ECG samples belong to these frames" on one clock.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mecg.session import Session, can_store_derivatives, open_session
from mecg.sync.align import SyncParams, SyncResult, synchronize, write_result
from mecg.sync.lookup import Timeline
from mecg.sync.pulses import LedRoi, SyncError


def sync_session(
    path: str | os.PathLike,
    mode: str = "auto",
    *,
    store: bool = True,
    ecg_channel: str = "",
    video_stream: str = "",
    led_roi: LedRoi | None = None,
    exposure_s: float | None = None,
    params: SyncParams | None = None,
    log: Callable[[str], None] = lambda _m: None,
) -> SyncResult:
    """Align a session's video to its ECG and store the result beside the recording.

    Parameters
    ----------
    path : str or PathLike
        The session file (``.h5``); the recording is never written, the result goes to its derivatives file.
    mode : str
        One of :data:`mecg.sync.MODES` (``"auto"``: trigger pulses when there are any, else LSL clocks).
    store : bool
        Write the result to the session's ``/sync`` (False: only return it, like ``mecg sync --dry-run``).
    ecg_channel : str
        ``[STREAM:]LABEL|INDEX`` (INDEX 0-based) when the ECG is ambiguous; "" uses the recording's choice or rule.
    video_stream : str
        The video stream's key or name when the session has several.
    led_roi : LedRoi, optional
        The LED's box in pixels, overriding detection.
    exposure_s : float, optional
        Exposure time (s), overriding the video header.
    params : SyncParams, optional
        Every threshold of the alignment.
    log : callable
        Receives progress lines.

    Returns
    -------
    SyncResult
        Per-frame exposure starts on the ECG clock (``frame_time_ecg_s``, s; NaN where not aligned),
        offset (ms), drift (ppm), the ``verdict`` (``"ok"``, ``"suspect"`` or ``"failed"``) and its ``reasons``.

    Raises
    ------
    SyncError
        The mode is impossible for this session, or ``store`` is asked for in a read-only folder.
    SessionError
        The file is not a readable session.
    """
    if store and not can_store_derivatives(path):
        raise SyncError(
            f"{path}: its folder is read-only and sync results go beside the recording; "
            "sync a copy in a writable folder, or pass store=False"
        )
    with open_session(path, writable=store) as s:
        res = synchronize(
            s,
            mode,
            led_roi=led_roi,
            exposure_s=exposure_s,
            params=params,
            log=log,
            ecg_channel=ecg_channel,
            video_stream=video_stream,
        )
        if store:
            write_result(s, res)
    return res


@dataclass(frozen=True)
class FrameEcg:
    """The ECG of a range of video frames, on the ECG clock.

    Attributes
    ----------
    t_s : ndarray
        ``(n,)`` time of each ECG sample on the ECG clock (s).
    values : ndarray
        ``(n,)`` the ECG channel's samples (float64, in ``unit``).
    frame_t_s : ndarray
        ``(stop_frame - start_frame,)`` each frame's exposure start on the same clock (s).
    first_sample : int
        Index of the first sample in the ECG stream.
    srate_hz : float
        The ECG stream's nominal sampling rate (Hz).
    unit : str
        The ECG channel's unit as recorded (e.g. ``"microvolts"``; "" when none was given).
    channel : str
        ``"STREAM:LABEL"`` of the ECG channel sync aligned to.
    verdict : str
        The stored sync verdict: ``"ok"`` or ``"suspect"`` (``"failed"`` only with ``allow_failed``).
    reasons : tuple of str
        Why the verdict is not ``"ok"`` (empty when it is).
    """

    t_s: np.ndarray
    values: np.ndarray
    frame_t_s: np.ndarray
    first_sample: int
    srate_hz: float
    unit: str
    channel: str
    verdict: str
    reasons: tuple[str, ...]


def ecg_for_frames(
    session: str | os.PathLike | Session,
    start_frame: int,
    stop_frame: int,
    *,
    pad_s: float = 0.0,
    allow_failed: bool = False,
) -> FrameEcg:
    """The ECG samples covering video frames ``[start_frame, stop_frame)`` of a synced session.

    Parameters
    ----------
    session : str, PathLike or Session
        A session file, or a session opened with :func:`mecg.open_session`.
    start_frame, stop_frame : int
        Frame range, 0-based, ``stop_frame`` excluded.
    pad_s : float
        Widen the span by this many seconds on both sides (e.g. for filter edges).
    allow_failed : bool
        Also answer when the stored sync verdict is ``"failed"`` (the times are then not to be trusted).

    Returns
    -------
    FrameEcg
        Sample times (s) and values, the frames' times on the same clock, and the sync verdict.

    Raises
    ------
    SyncError
        The session has not been synced (run :func:`sync_session`), its sync failed, the range is
        outside the video, or its end frames were not aligned (an ECG gap).
    """
    if not isinstance(session, Session):
        with open_session(session) as s:
            return ecg_for_frames(s, start_frame, stop_frame, pad_s=pad_s, allow_failed=allow_failed)
    tl = Timeline(session, allow_failed=allow_failed)
    span = tl.ecg_span(int(start_frame), int(stop_frame), pad_s=pad_s)
    info = tl.ecg.info
    col = tl.ecg_column
    label = info.channel_labels[col] if col < len(info.channel_labels) else str(col)
    return FrameEcg(
        t_s=np.asarray(span.t_s, dtype=np.float64),
        values=np.asarray(span.samples, dtype=np.float64).reshape(span.samples.shape[0], -1)[:, col],
        frame_t_s=tl.frame_times(int(start_frame), int(stop_frame)).copy(),
        first_sample=span.first_sample,
        srate_hz=span.srate_hz,
        unit=info.channel_units[col] if col < len(info.channel_units) else "",
        channel=f"{tl.ecg.key}:{label}",
        verdict=tl.verdict,
        reasons=tuple(r for r in tl.reasons.splitlines() if r),
    )
