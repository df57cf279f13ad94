"""MEGC spotting evaluation: IoU >= 0.5 on inclusive frames, one-to-one greedy matching by score.

Counting rules (as the MEGC challenges count, with the duplicate rule made explicit):

* intervals are inclusive ``[onset, offset]`` frames; ``IoU = |A n B| / |A u B|`` in frames;
* predictions and ground truth are matched within one session and one type (ME with ME, MaE
  with MaE); predictions are taken in order of decreasing score (ties: earlier onset first),
  each takes the unmatched ground truth with the highest IoU if that IoU is >= 0.5;
* a ground truth matches at most one prediction: a **duplicate** prediction of an already matched
  expression is a false positive;
* TP, FP and FN are summed over the whole dataset, then ``P = TP / (TP + FP)``,
  ``R = TP / (TP + FN)``, ``F1 = 2PR / (P + R)`` (0 when undefined); ``overall`` pools the ME
  and MaE counts;
* prediction rows with ``kept_by_ccf`` false (rejected by the candidate clip filter) are skipped.
"""

from __future__ import annotations

import csv
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mecg.errors import MecgError
from mecg.session import EXPRESSION_TYPES, SessionError, open_session

if TYPE_CHECKING:
    from mecg.model.spots import Spot

IOU_THRESHOLD = 0.5


class EvalError(MecgError):
    """Predictions or ground truth cannot be read."""


@dataclass(frozen=True)
class Interval:
    """One spotted or annotated interval (inclusive frames) of a session."""

    session: str
    onset: int
    offset: int
    type: str
    score: float = 1.0
    apex: int = -1


def iou(a: Interval, b: Interval) -> float:
    """Intersection over union of two inclusive frame intervals."""
    inter = min(a.offset, b.offset) - max(a.onset, b.onset) + 1
    if inter <= 0:
        return 0.0
    return inter / ((a.offset - a.onset + 1) + (b.offset - b.onset + 1) - inter)


@dataclass(frozen=True)
class Counts:
    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def as_dict(self) -> dict:
        return {
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
        }

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)


def match_pairs(preds: list[Interval], truth: list[Interval]) -> list[tuple[int, int]]:
    """Greedy one-to-one matching: ``(index into preds, index into truth)`` of every matched pair.

    Predictions are taken by decreasing score (ties: session, then earlier onset); each takes the
    unmatched ground truth of its session with the highest IoU, if that IoU is >= 0.5. Types are
    not compared here (:func:`match` is called with one type at a time).
    """
    by_session: dict[str, list[int]] = defaultdict(list)
    for j, g in enumerate(truth):
        by_session[g.session].append(j)
    used: set[int] = set()
    pairs = []
    for i in sorted(range(len(preds)), key=lambda i: (-preds[i].score, preds[i].session, preds[i].onset)):
        p = preds[i]
        best, best_iou = None, IOU_THRESHOLD
        for j in by_session.get(p.session, []):
            if j in used:
                continue
            v = iou(p, truth[j])
            if v >= best_iou:
                best, best_iou = j, v
        if best is not None:
            used.add(best)
            pairs.append((i, best))
    return pairs


def match(preds: list[Interval], truth: list[Interval]) -> Counts:
    """Greedy one-to-one matching of one type's predictions to its ground truth (all sessions)."""
    tp = len(match_pairs(preds, truth))
    return Counts(tp, len(preds) - tp, len(truth) - tp)


def evaluate(preds: list[Interval], truth: list[Interval]) -> dict[str, Counts]:
    """``{"me": Counts, "mae": Counts, "overall": Counts}``."""
    out = {}
    for t in EXPRESSION_TYPES:
        out[t.lower()] = match([p for p in preds if p.type == t], [g for g in truth if g.type == t])
    out["overall"] = out["me"] + out["mae"]
    return out


def _truthy(text: str) -> bool:
    return text.strip().lower() not in ("false", "0", "no", "")


def read_predictions(path: str | os.PathLike) -> list[Interval]:
    """Read a spot CSV: ``session, onset, offset, score, type`` (+ optional ``apex``, ``kept_by_ccf``)."""
    p = Path(path)
    rows = _read_csv(p, ("session", "onset", "offset", "type"))
    out = []
    for n, r in enumerate(rows, start=2):
        if "kept_by_ccf" in r and not _truthy(r["kept_by_ccf"]):
            continue
        out.append(_interval(p, n, r))
    return out


def _read_csv(p: Path, required: tuple[str, ...]) -> list[dict[str, str]]:
    if not p.is_file():
        raise EvalError(f"{p} does not exist or is not a file")
    try:
        with p.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            fields = [f.strip() for f in (reader.fieldnames or [])]
            missing = [c for c in required if c not in fields]
            if missing:
                raise EvalError(f"{p} lacks column(s) {', '.join(missing)}; it has {', '.join(fields) or 'none'}")
            return [{k.strip(): (v or "").strip() for k, v in row.items() if k} for row in reader]
    except UnicodeDecodeError:
        raise EvalError(f"{p} is not a UTF-8 CSV file") from None


def _interval(p: Path, line: int, r: dict[str, str]) -> Interval:
    try:
        iv = Interval(
            r["session"],
            int(r["onset"]),
            int(r["offset"]),
            r["type"],
            float(r.get("score") or 1.0),
            int(r.get("apex") or -1),
        )
    except ValueError:
        raise EvalError(f"{p} line {line}: onset/offset must be integers and score a number") from None
    if iv.type not in EXPRESSION_TYPES:
        raise EvalError(f"{p} line {line}: type must be ME or MaE, got {iv.type!r}")
    if iv.offset < iv.onset:
        raise EvalError(f"{p} line {line}: offset {iv.offset} is before onset {iv.onset}")
    return iv


def read_truth(path: str | os.PathLike) -> list[Interval]:
    """Ground truth from a session file, a folder of sessions, or an annotation CSV
    (``session, onset, offset, type``). A session is named by its file stem."""
    p = Path(path)
    if p.is_dir():
        files = sorted(p.glob("*.h5"))
        if not files:
            raise EvalError(f"{p} holds no .h5 session files")
        return [iv for f in files for iv in read_truth(f)]
    if p.suffix.lower() == ".csv":
        return [_interval(p, n, r) for n, r in enumerate(_read_csv(p, ("session", "onset", "offset", "type")), 2)]
    try:
        with open_session(p) as s:
            return [Interval(p.stem, a.onset_frame, a.offset_frame, a.type, 1.0, a.apex_frame) for a in s.annotations]
    except SessionError as exc:
        raise EvalError(str(exc)) from None


def write_predictions(path: str | os.PathLike, spots: Sequence[Spot]) -> None:
    """Write spots as the spot CSV (columns :data:`mecg.model.spots.SPOT_COLUMNS`)."""
    from mecg.model.spots import SPOT_COLUMNS

    with Path(path).open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(SPOT_COLUMNS))
        w.writeheader()
        for sp in spots:
            w.writerow(sp.as_row())


def evaluate_spots(
    predictions: str | os.PathLike | Sequence[Spot | Interval],
    truth: str | os.PathLike | Sequence[Interval],
) -> dict[str, Counts]:
    """MEGC evaluation (module docstring) of spots against annotations.

    Parameters
    ----------
    predictions : str, PathLike or sequence of Spot / Interval
        A spot CSV (``mecg spot --out``) or spots; spots the CCF rejected (``kept_by_ccf`` False) are skipped.
    truth : str, PathLike or sequence of Interval
        A session file, a folder of sessions (their annotations), an annotation CSV, or intervals.

    Returns
    -------
    dict of str to Counts
        ``"me"``, ``"mae"`` and ``"overall"``: TP, FP, FN and precision, recall, F1 (0-1).

    Raises
    ------
    EvalError
        A file cannot be read or holds malformed rows.
    """
    if isinstance(predictions, str | os.PathLike):
        preds = read_predictions(predictions)
    else:
        preds = [p if isinstance(p, Interval) else p.interval() for p in predictions if getattr(p, "kept_by_ccf", True)]
    gt = read_truth(truth) if isinstance(truth, str | os.PathLike) else list(truth)
    return evaluate(preds, gt)
