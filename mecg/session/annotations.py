"""The annotations table: expert-coded expression intervals on a session's video frames."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import h5py
import numpy as np

from mecg.session.format import SessionError

#: Expression types: micro-expression and macro-expression (as stored in /annotations).
ExpressionType = Literal["ME", "MaE"]
EXPRESSION_TYPES: tuple[ExpressionType, ...] = get_args(ExpressionType)
#: The columns of /annotations, in order (see docs/session-format.md).
COLUMNS = ("onset_frame", "apex_frame", "offset_frame", "type", "aus", "emotion")
_STR = h5py.string_dtype("utf-8")


@dataclass(frozen=True)
class Annotation:
    """One coded expression; frames are 0-based indices into the video stream, inclusive.

    ``type`` is ``"ME"`` or ``"MaE"``; ``aus`` a FACS string such as ``"AU1+AU2"``;
    ``emotion`` one of the dataset's emotion labels (free text, may be empty).
    """

    onset_frame: int
    apex_frame: int
    offset_frame: int
    type: ExpressionType
    aus: str = ""
    emotion: str = ""

    def __post_init__(self) -> None:
        if self.type not in EXPRESSION_TYPES:
            raise SessionError(f"annotation type must be one of {EXPRESSION_TYPES}, got {self.type!r}")
        if not (0 <= self.onset_frame <= self.apex_frame <= self.offset_frame):
            raise SessionError(
                "annotation frames must satisfy 0 <= onset <= apex <= offset, got "
                f"{self.onset_frame}, {self.apex_frame}, {self.offset_frame}"
            )

    @property
    def length_frames(self) -> int:
        """Number of frames from onset to offset, both counted."""
        return self.offset_frame - self.onset_frame + 1


def write_annotations(group: h5py.Group, annotations: list[Annotation], video_stream: str) -> None:
    """Replace the columns of ``group`` with ``annotations`` (sorted by onset)."""
    rows = sorted(annotations, key=lambda a: (a.onset_frame, a.offset_frame))
    for name in COLUMNS:
        if name in group:
            del group[name]
    n = len(rows)
    for name in COLUMNS[:3]:  # chunked (Fletcher32 needs chunks), extendible so that 0 rows are allowed
        ds = group.create_dataset(name, shape=(n,), maxshape=(None,), dtype=np.int64, chunks=(256,), fletcher32=True)
        if n:
            ds[:] = np.array([getattr(a, name) for a in rows], dtype=np.int64)
    for name in COLUMNS[3:]:
        ds = group.create_dataset(name, shape=(n,), maxshape=(None,), dtype=_STR, chunks=(256,))  # no filters on str
        if n:
            ds[:] = [getattr(a, name) for a in rows]
    group.attrs["video_stream"] = video_stream
    group.attrs["count"] = len(rows)


def read_annotations(group: h5py.Group) -> list[Annotation]:
    """Read the table written by :func:`write_annotations`; an empty group gives ``[]``."""
    if "onset_frame" not in group:
        return []
    cols = {}
    for name in COLUMNS:
        if name not in group:
            raise SessionError(f"annotations table has no column {name!r}")
        ds = group[name]
        cols[name] = ds.asstr()[()] if h5py.check_string_dtype(ds.dtype) else ds[()]
    lengths = {len(v) for v in cols.values()}
    if len(lengths) != 1:
        raise SessionError(f"annotations columns have different lengths {sorted(lengths)}")
    return [
        Annotation(
            int(cols["onset_frame"][i]),
            int(cols["apex_frame"][i]),
            int(cols["offset_frame"][i]),
            str(cols["type"][i]),
            str(cols["aus"][i]),
            str(cols["emotion"][i]),
        )
        for i in range(lengths.pop())
    ]
