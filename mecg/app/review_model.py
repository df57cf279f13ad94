"""What the review window edits, without Qt: one coder's annotations, the spotted candidates, undo.

:class:`ReviewState` holds the current coder's annotations, a draft being marked (onset, apex,
offset keys), which spotted candidates were accepted or rejected, and an undo stack of whole
snapshots (the sets are small: tens to hundreds of intervals). Frames are 0-based video frame
indices, intervals inclusive ``[onset, offset]`` as everywhere in mecg.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from mecg.errors import MecgError
from mecg.session import EXPRESSION_TYPES, Annotation
from mecg.session.coders import me_rule

#: Undo steps kept.
UNDO_DEPTH = 500


class ReviewError(MecgError):
    """A user error of the review window (bad spots CSV, a coder id that cannot be used)."""


def expression_type(onset: int, apex: int, offset: int, fps_hz: float) -> str:
    """The type by the ME rule (:func:`mecg.session.coders.me_rule`: onset->offset <= 500 ms or
    onset->apex <= 250 ms is an ``"ME"``); ``"ME"`` when the frame rate is unknown."""
    return me_rule(onset, apex, offset, fps_hz) if fps_hz > 0 else "ME"


@dataclass(frozen=True)
class Candidate:
    """One spotted interval of a spots CSV (``mecg spot --out``); frames inclusive."""

    onset: int
    apex: int
    offset: int
    score: float
    type: str

    @property
    def key(self) -> tuple[int, int, int]:
        """Identity of a candidate within a session (its frames)."""
        return (self.onset, self.apex, self.offset)


def read_candidates(path: str | os.PathLike, session_name: str, n_frames: int) -> tuple[list[Candidate], str]:
    """The candidates of session ``session_name`` (a file stem) in a spots CSV, and a note for the track.

    Rows rejected by the candidate clip filter (``kept_by_ccf`` false) are skipped, as ``mecg eval``
    skips them; a missing apex becomes the interval's middle. Raises :class:`ReviewError` for a file
    that is not a spots CSV or a candidate outside the video's ``n_frames`` frames.
    """
    from mecg.model.evaluate import EvalError, read_predictions

    p = Path(path)
    try:
        rows = read_predictions(p)
    except EvalError as exc:
        raise ReviewError(f"--spots: {exc}") from None
    except OSError as exc:
        raise ReviewError(f"--spots {p} cannot be read: {exc.strerror or exc}") from None
    mine = [r for r in rows if r.session == session_name]
    out = []
    for r in mine:
        apex = r.apex if r.onset <= r.apex <= r.offset else (r.onset + r.offset) // 2
        if r.onset < 0 or r.offset >= n_frames:
            raise ReviewError(
                f"--spots {p}: candidate {r.onset}-{r.offset} of {session_name} lies outside the video's "
                f"{n_frames} frames (0-{n_frames - 1}); was it spotted on another session?"
            )
        out.append(Candidate(r.onset, apex, r.offset, r.score, r.type))
    if mine:
        note = f"{len(out)} candidates from {p.name}"
    elif rows:
        others = sorted({r.session for r in rows})
        more = "..." if len(others) > 3 else ""
        note = f"{p.name} has no rows for {session_name} (it has {', '.join(others[:3])}{more})"
    else:
        note = f"{p.name} has no candidates"
    return sorted(out, key=lambda c: (c.onset, c.offset)), note


@dataclass(frozen=True)
class Draft:
    """An expression being marked: onset, then apex, then offset (None until set); type None = the ME rule."""

    onset: int
    apex: int | None = None
    offset: int | None = None
    type: str | None = None


@dataclass(frozen=True)
class Snapshot:
    """Everything undo restores."""

    annotations: tuple[Annotation, ...]
    decided: tuple[tuple[tuple[int, int, int], str], ...]  # candidate key -> "accepted" / "rejected"
    draft: Draft | None


def _contains(a: Annotation | Candidate, frame: int) -> bool:
    lo, hi = (a.onset_frame, a.offset_frame) if isinstance(a, Annotation) else (a.onset, a.offset)
    return lo <= frame <= hi


class ReviewState:
    """One coder's set under review: edits return a message for the status bar (``""`` when nothing to say).

    ``fps_hz`` decides the default type (:func:`expression_type`); ``n_frames`` bounds the marks.
    """

    def __init__(
        self, annotations: list[Annotation], candidates: list[Candidate], fps_hz: float, n_frames: int
    ) -> None:
        self.fps_hz, self.n_frames = fps_hz, n_frames
        self.candidates = list(candidates)
        self._now = Snapshot(tuple(sorted(annotations, key=_order)), (), None)
        self._saved = self._now.annotations
        self._undo: list[Snapshot] = []

    # -- reading -----------------------------------------------------------------------------
    @property
    def annotations(self) -> list[Annotation]:
        """The current coder's annotations, sorted by onset."""
        return list(self._now.annotations)

    @property
    def draft(self) -> Draft | None:
        return self._now.draft

    @property
    def decided(self) -> dict[tuple[int, int, int], str]:
        """Candidates accepted or rejected so far, by key."""
        return dict(self._now.decided)

    @property
    def rejected(self) -> list[Candidate]:
        d = self.decided
        return [c for c in self.candidates if d.get(c.key) == "rejected"]

    @property
    def open_candidates(self) -> list[Candidate]:
        """Candidates neither accepted nor rejected (the ones drawn)."""
        d = self.decided
        return [c for c in self.candidates if c.key not in d]

    @property
    def dirty(self) -> bool:
        """True when the annotations differ from the last saved (or loaded) set."""
        return self._now.annotations != self._saved

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    def annotation_at(self, frame: int) -> Annotation | None:
        """The annotation under ``frame`` (the shortest when several overlap), or None."""
        hits = [a for a in self._now.annotations if _contains(a, frame)]
        return min(hits, key=lambda a: (a.length_frames, a.onset_frame)) if hits else None

    def candidate_at(self, frame: int) -> Candidate | None:
        """The open candidate under ``frame`` (the highest score when several overlap), or None."""
        hits = [c for c in self.open_candidates if _contains(c, frame)]
        return max(hits, key=lambda c: (c.score, -c.onset)) if hits else None

    def mark_saved(self, annotations: tuple[Annotation, ...] | None = None) -> None:
        """Remember ``annotations`` (default: the current ones) as what is on disk."""
        self._saved = self._now.annotations if annotations is None else annotations

    # -- editing -----------------------------------------------------------------------------
    def _push(self, new: Snapshot) -> None:
        self._undo.append(self._now)
        del self._undo[:-UNDO_DEPTH]
        self._now = new

    def _with(self, **changes: object) -> Snapshot:
        return replace(self._now, **changes)

    def undo(self) -> str:
        """Go back one edit."""
        if not self._undo:
            return "nothing to undo"
        self._now = self._undo.pop()
        return "undone"

    def set_onset(self, frame: int) -> str:
        """Start a new draft at ``frame`` (replaces an unfinished draft)."""
        self._push(self._with(draft=Draft(self._clip(frame))))
        return f"onset at frame {frame}: now the apex (A) and the offset (F)"

    def set_apex(self, frame: int) -> str:
        """Set the draft's apex; it must not come before the onset."""
        d = self._now.draft
        if d is None:
            return "set the onset first (O)"
        if frame < d.onset:
            return f"the apex ({frame}) cannot come before the onset ({d.onset})"
        self._push(self._with(draft=replace(d, apex=frame)))
        return f"apex at frame {frame}"

    def set_offset(self, frame: int, aus: str = "", emotion: str = "") -> str:
        """Set the draft's offset and turn the draft into an annotation (needs onset <= apex <= offset)."""
        d = self._now.draft
        if d is None:
            return "set the onset first (O)"
        if d.apex is None:
            return "set the apex (A) before the offset"
        if frame < d.apex:
            return f"the offset ({frame}) cannot come before the apex ({d.apex})"
        kind = d.type or expression_type(d.onset, d.apex, frame, self.fps_hz)
        a = Annotation(d.onset, d.apex, frame, kind, aus, emotion)
        self._push(self._with(annotations=_sorted((*self._now.annotations, a)), draft=None))
        return f"added {kind} {a.onset_frame}-{a.offset_frame} (apex {a.apex_frame})"

    def toggle_type(self, frame: int) -> str:
        """ME <-> MaE of the draft, else of the annotation under ``frame``."""
        d = self._now.draft
        if d is not None:
            current = d.type or (
                expression_type(d.onset, d.apex, d.offset, self.fps_hz)
                if d.apex is not None and d.offset is not None
                else "ME"
            )
            new = _other(current)
            self._push(self._with(draft=replace(d, type=new)))
            return f"draft type {new}"
        a = self.annotation_at(frame)
        if a is None:
            return "no annotation or draft to change the type of"
        self._replace(a, replace(a, type=_other(a.type)))
        return f"{a.onset_frame}-{a.offset_frame} is now {_other(a.type)}"

    def set_labels(self, frame: int, aus: str, emotion: str) -> str:
        """Set the AUs and the emotion of the annotation under ``frame``."""
        a = self.annotation_at(frame)
        if a is None:
            return "no annotation under the cursor"
        if (a.aus, a.emotion) == (aus, emotion):
            return ""
        self._replace(a, replace(a, aus=aus, emotion=emotion))
        return f"{a.onset_frame}-{a.offset_frame}: AUs {aus or '-'}, emotion {emotion or '-'}"

    def delete_at(self, frame: int) -> str:
        """Remove the annotation under ``frame``."""
        a = self.annotation_at(frame)
        if a is None:
            if self._now.draft is not None:
                self._push(self._with(draft=None))
                return "draft discarded"
            return "no annotation under the cursor"
        self._push(self._with(annotations=tuple(x for x in self._now.annotations if x is not a)))
        return f"deleted {a.type} {a.onset_frame}-{a.offset_frame}"

    def accept_at(self, frame: int, aus: str = "", emotion: str = "") -> str:
        """The candidate under ``frame`` becomes an annotation (its frames and type)."""
        c = self.candidate_at(frame)
        if c is None:
            return "no spotted candidate under the cursor"
        kind = c.type if c.type in EXPRESSION_TYPES else expression_type(c.onset, c.apex, c.offset, self.fps_hz)
        a = Annotation(c.onset, c.apex, c.offset, kind, aus, emotion)
        self._push(
            self._with(
                annotations=_sorted((*self._now.annotations, a)), decided=(*self._now.decided, (c.key, "accepted"))
            )
        )
        return f"accepted candidate {c.onset}-{c.offset} as {kind}"

    def reject_at(self, frame: int) -> str:
        """Hide the candidate under ``frame`` and remember it as rejected."""
        c = self.candidate_at(frame)
        if c is None:
            return "no spotted candidate under the cursor"
        self._push(self._with(decided=(*self._now.decided, (c.key, "rejected"))))
        return f"rejected candidate {c.onset}-{c.offset}"

    def _replace(self, old: Annotation, new: Annotation) -> None:
        rest = tuple(x for x in self._now.annotations if x is not old)
        self._push(self._with(annotations=_sorted((*rest, new))))

    def _clip(self, frame: int) -> int:
        return max(0, min(int(frame), self.n_frames - 1))


def _order(a: Annotation) -> tuple[int, int, int]:
    return (a.onset_frame, a.offset_frame, a.apex_frame)


def _sorted(items: tuple[Annotation, ...]) -> tuple[Annotation, ...]:
    return tuple(sorted(items, key=_order))


def _other(kind: str) -> str:
    return "MaE" if kind == "ME" else "ME"
