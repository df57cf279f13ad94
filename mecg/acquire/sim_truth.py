"""What a simulated recording really showed: the synthetic participant's expressions on the recorded frames.

A virtual camera stamps frame ``i`` of its device clock with its exposure start on the host's
LSL clock, ``t0 + start + i / rate``, and plays the trial's frame ``i mod n_frames``. So every
recorded frame's device index follows from its timestamp, and each of the trial's annotated
expressions (repeated on every loop of the trial) lands on the recorded frames that showed it.
Expressions whose onset, apex or offset frame was not recorded are left out.

A recording that never closes cleanly (the process was killed) keeps its annotations through an
**expression journal** beside it, ``S.sim-annotations.jsonl``: the virtual camera appends one JSON
line per expression (type, AUs, emotion and the onset, apex and offset exposure times on the LSL
clock) as soon as it has shown the expression's last frame, and fsyncs it. After the clean close
the annotations are computed from the camera and the journal is removed;
:func:`recover_simulated_annotations` (``mecg record --recover-annotations S.h5``) maps a journal
left behind onto the frames the file holds.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from mecg.acquire.virtual_camera import VirtualCamera
from mecg.errors import MecgError
from mecg.session import Annotation, open_session

#: The journal of ``S.h5`` is ``S.sim-annotations.jsonl`` in the same folder.
JOURNAL_SUFFIX = ".sim-annotations.jsonl"


def recorded_annotations(camera: VirtualCamera, frame_stamps_s: np.ndarray) -> list[Annotation]:
    """The trial's annotations mapped onto recorded frames (indices into the recorded video stream)."""
    ts = np.asarray(frame_stamps_s, dtype=np.float64)
    if ts.size == 0:
        return []
    start = float(camera.frame_time(0))
    period = float(camera.frame_time(1)) - start
    device = np.rint((ts - camera.timeline.t0 - start) / period).astype(np.int64)
    where = {int(i): r for r, i in enumerate(device)}
    n = camera.trial.n_frames
    out = []
    for loop in range(int(device.min()) // n, int(device.max()) // n + 1):
        for a in camera.trial.annotations():
            idx = [loop * n + f for f in (a.onset_frame, a.apex_frame, a.offset_frame)]
            if all(i in where for i in idx):
                out.append(Annotation(where[idx[0]], where[idx[1]], where[idx[2]], a.type, a.aus, a.emotion))
    return out


def journal_path(recording: str | os.PathLike) -> Path:
    """The expression journal of a recording: ``S.h5`` -> ``S.sim-annotations.jsonl`` beside it."""
    p = Path(recording)
    return p.with_name(p.stem + JOURNAL_SUFFIX)


class ExpressionJournal:
    """Appends each expression the virtual ``camera`` shows to ``path`` (JSON lines, fsynced), as it happens.

    Install it with ``camera.on_frame = journal.frame_shown``; the camera calls it with the device
    index of every frame it delivers. An expression is written once its offset frame (or a later
    one, when frames were skipped) has been delivered; an entry holds the exposure times (s, LSL
    clock) of its onset, apex and offset frames.
    """

    def __init__(self, path: str | os.PathLike, camera: VirtualCamera) -> None:
        self.path = Path(path)
        self.camera = camera
        self._n = camera.trial.n_frames
        self._by_offset: dict[int, list[Annotation]] = {}
        for a in camera.trial.annotations():
            self._by_offset.setdefault(a.offset_frame, []).append(a)
        self._last: int | None = None
        self.written = 0
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)

    def _time(self, i: int) -> float:
        return float(self.camera.timeline.host(float(self.camera.frame_time(i))))

    def frame_shown(self, i: int) -> None:
        """The camera delivered device frame ``i``: journal every expression that ended since the last call."""
        if self._fd < 0:
            return
        first = i if self._last is None else self._last + 1
        self._last = max(i, self._last if self._last is not None else i)
        lines = []
        for k in range(first, i + 1):
            for a in self._by_offset.get(k % self._n, ()):
                base = k - a.offset_frame
                if base + a.onset_frame < 0:
                    continue
                entry = {
                    "type": a.type,
                    "aus": a.aus,
                    "emotion": a.emotion,
                    "onset_s": self._time(base + a.onset_frame),
                    "apex_s": self._time(base + a.apex_frame),
                    "offset_s": self._time(base + a.offset_frame),
                }
                lines.append(json.dumps(entry) + "\n")
        if lines:
            os.write(self._fd, "".join(lines).encode())
            os.fsync(self._fd)
            self.written += len(lines)

    def close(self, remove: bool = False) -> None:
        """Stop journaling; ``remove`` deletes the file (the annotations are stored elsewhere)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if remove:
            self.path.unlink(missing_ok=True)


def read_journal(path: str | os.PathLike) -> list[dict]:
    """The entries of an expression journal; a last line torn by a crash is ignored."""
    out = []
    for line in Path(path).read_text().splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and {"type", "onset_s", "apex_s", "offset_s"} <= entry.keys():
            out.append(entry)
    return out


def journal_annotations(entries: list[dict], frame_stamps_s: np.ndarray) -> list[Annotation]:
    """Journal entries as annotations on recorded frames: each time is matched to the recorded frame
    stamped within half a frame period of it; entries with a frame not recorded are left out."""
    ts = np.asarray(frame_stamps_s, dtype=np.float64)
    if ts.size < 2:
        return []
    half = 0.5 * float(np.median(np.diff(ts)))

    def frame(t: float) -> int | None:
        j = int(np.clip(np.searchsorted(ts, t), 1, ts.size - 1))
        j = j - 1 if abs(ts[j - 1] - t) <= abs(ts[j] - t) else j
        return j if abs(ts[j] - t) < half else None

    out = []
    for e in entries:
        idx = [frame(float(e[k])) for k in ("onset_s", "apex_s", "offset_s")]
        if None not in idx:
            out.append(Annotation(*idx, e["type"], e.get("aus", ""), e.get("emotion", "")))
    return out


def recover_simulated_annotations(recording: str | os.PathLike) -> int:
    """Write the annotations journaled beside a simulated ``recording`` into it; returns how many.

    The journal is removed once the annotations are stored. Raises :class:`~mecg.errors.MecgError`
    when there is no journal or no single video stream to put them on.
    """
    jp = journal_path(recording)
    if not jp.is_file():
        raise MecgError(f"{recording} has no expression journal ({jp.name}): only a simulated recording has one")
    with open_session(recording, writable=True) as s:
        videos = s.find_streams(kind="video")
        if len(videos) != 1:
            raise MecgError(f"{recording} holds {len(videos)} video streams; annotations need exactly one")
        ann = journal_annotations(read_journal(jp), videos[0].timestamps)
        s.write_annotations(ann, videos[0].key)
    jp.unlink()
    return len(ann)


def annotate_simulated(recording: str | os.PathLike, camera: VirtualCamera) -> tuple[int, int] | None:
    """Store the simulated participant's expressions as the recording's annotations (ground truth).

    Returns ``(n_me, n_mae)``, or None when the session has not exactly one video stream. The
    annotations go beside the recording (session API); the recording is not written.
    """
    with open_session(recording, writable=True) as s:
        videos = s.find_streams(kind="video")
        if len(videos) != 1:
            return None
        ann = recorded_annotations(camera, videos[0].timestamps)
        s.write_annotations(ann, videos[0].key)
    n_me = sum(a.type == "ME" for a in ann)
    return n_me, len(ann) - n_me


def start_journal(recording: str | os.PathLike, camera: VirtualCamera) -> ExpressionJournal:
    """Journal the simulated participant's expressions beside ``recording`` as the camera shows them.

    Raises :class:`~mecg.errors.MecgError` when the journal cannot be written.
    """
    path = journal_path(recording)
    try:
        journal = ExpressionJournal(path, camera)
    except OSError as exc:
        raise MecgError(f"cannot write {path}: {exc.strerror or exc}") from None
    camera.on_frame = journal.frame_shown
    return journal
