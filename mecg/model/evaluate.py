"""MEGC spotting evaluation: IoU >= 0.5 on inclusive frames, under one of two counting protocols.

``one-to-one`` (the default) counts as below, with the duplicate rule made explicit:

* intervals are inclusive ``[onset, offset]`` frames; ``IoU = |A n B| / |A u B|`` in frames;
* predictions and ground truth are matched within one session and one type (ME with ME, MaE
  with MaE); predictions are taken in order of decreasing score (ties: earlier onset first),
  each takes the unmatched ground truth with the highest IoU if that IoU is >= 0.5;
* a ground truth matches at most one prediction: a **duplicate** prediction of an already matched
  expression is a false positive;
* TP, FP and FN are summed over the whole dataset, then ``P = TP / (TP + FP)``,
  ``R = TP / (TP + FN)``, ``F1 = 2PR / (P + R)`` (0 when undefined); ``overall`` pools the ME
  and MaE counts;
* prediction rows with ``kept_by_ccf`` false (rejected by the candidate clip filter) are skipped;
  a ``kept_by_ccf`` cell that is neither true nor false (blank included) is refused, never guessed.

``megc2020`` counts as the MEGC2020 spotting baseline's code does
(HeyingGithub/Baseline-project-for-MEGC2020_spotting, ``MDMD_results/result_helper.py``,
``pred_clips_analysis`` with ``calc_iou``), which produced its published table:

* per session and type, a ground truth is **found** (TP) when *any* prediction reaches IoU >= 0.5
  with it, so one prediction can find two overlapping intervals; scores play no part;
* ``FP = predictions - TP`` and ``FN = ground truths - TP`` (the baseline computes precision as
  found / predictions), summed over sessions; F1 and ``overall`` as above;
* its IoU is 0 for an interval whose offset is not after its onset (a one-frame interval never
  matches); otherwise it equals :func:`iou` at the 0.5 threshold.
"""

from __future__ import annotations

import csv
import math
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
#: Counting protocols (module docstring); the first is the default.
PROTOCOLS = ("one-to-one", "megc2020")


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


def iou_megc2020(a: Interval, b: Interval) -> float:
    """IoU as the MEGC2020 baseline's ``calc_iou``: 0 when either interval's offset is not after its onset.

    For intervals that overlap it equals :func:`iou`; for disjoint ones the baseline's formula gives at
    most 1/3 (it adds one frame to an empty intersection), which no threshold of 0.5 reaches, so 0 here.
    """
    if a.offset <= a.onset or b.offset <= b.onset:
        return 0.0
    return iou(a, b)


def found_truth(preds: list[Interval], truth: list[Interval]) -> set[int]:
    """Indices into ``truth`` found by at least one prediction of the same session (``megc2020``)."""
    by_session: dict[str, list[Interval]] = defaultdict(list)
    for p in preds:
        by_session[p.session].append(p)
    return {
        j
        for j, g in enumerate(truth)
        if any(iou_megc2020(p, g) >= IOU_THRESHOLD for p in by_session.get(g.session, []))
    }


def _check_protocol(protocol: str) -> None:
    if protocol not in PROTOCOLS:
        raise EvalError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")


def match(preds: list[Interval], truth: list[Interval], protocol: str = "one-to-one") -> Counts:
    """Counts of one type's predictions against its ground truth (all sessions) under ``protocol``."""
    _check_protocol(protocol)
    tp = len(match_pairs(preds, truth)) if protocol == "one-to-one" else len(found_truth(preds, truth))
    return Counts(tp, len(preds) - tp, len(truth) - tp)


def evaluate(preds: list[Interval], truth: list[Interval], protocol: str = "one-to-one") -> dict[str, Counts]:
    """``{"me": Counts, "mae": Counts, "overall": Counts}`` under ``protocol`` (:data:`PROTOCOLS`)."""
    out = {}
    for t in EXPRESSION_TYPES:
        out[t.lower()] = match([p for p in preds if p.type == t], [g for g in truth if g.type == t], protocol)
    out["overall"] = out["me"] + out["mae"]
    return out


def eval_notices(preds: list[Interval], truth: list[Interval], protocol: str = "one-to-one") -> list[str]:
    """What a reader of the counts should know: predictions of sessions absent from the ground truth
    (all false positives) and, under ``megc2020``, one-frame intervals (they can never match)."""
    notes = []
    known = {g.session for g in truth}
    stray = [p for p in preds if p.session not in known]
    if stray:
        names = sorted({p.session for p in stray})
        shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        notes.append(
            f"notice: {len(stray)} prediction(s) from {len(names)} session(s) with no ground truth ({shown}) "
            "count as false positives (right for sessions with nothing annotated; otherwise check that --truth "
            "holds those sessions)"
        )
    if protocol == "megc2020":
        n_pred = sum(p.offset <= p.onset for p in preds)
        n_truth = sum(g.offset <= g.onset for g in truth)
        if n_pred or n_truth:
            notes.append(
                f"notice: {n_pred} prediction(s) and {n_truth} ground truth interval(s) are one frame long; "
                "the megc2020 IoU is 0 for them, so they never match"
            )
    return notes


_KEPT = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _kept(p: Path, line: int, text: str) -> bool:
    try:
        return _KEPT[text.strip().lower()]
    except KeyError:
        raise EvalError(
            f"{p} line {line}: kept_by_ccf is {text!r}, neither true nor false; write true (kept) or false "
            "(rejected by the candidate clip filter) in every row, or delete the kept_by_ccf column to "
            "evaluate every row"
        ) from None


def read_predictions(path: str | os.PathLike) -> list[Interval]:
    """Read a spot CSV: ``session, onset, offset, score, type`` (+ optional ``apex``, ``kept_by_ccf``).

    Rows with ``kept_by_ccf`` false (``false``/``0``/``no``) are skipped; a blank or other value is an
    :class:`EvalError` naming the line (never a silent drop). Every other row is read or refused.
    """
    p = Path(path)
    rows = _read_csv(p, ("session", "onset", "offset", "type"))
    out = []
    for n, r in enumerate(rows, start=2):
        iv = _interval(p, n, r)  # a malformed row is refused whether or not the filter kept it
        if "kept_by_ccf" in r and not _kept(p, n, r["kept_by_ccf"]):
            continue
        out.append(iv)
    return out


def _read_csv(p: Path, required: tuple[str, ...]) -> list[dict[str, str]]:
    if not p.is_file():
        raise EvalError(f"{p} does not exist or is not a file")
    try:
        with p.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            fields = [f.strip() for f in (reader.fieldnames or [])]
            missing = [c for c in required if c not in fields]
            if missing:
                raise EvalError(f"{p} lacks column(s) {', '.join(missing)}; it has {', '.join(fields) or 'none'}")
            rows = []
            for row in reader:
                if None in row:  # cells beyond the header: a shifted row, not to be read as something else
                    raise EvalError(
                        f"{p} line {reader.line_num}: more cells than the header's {len(fields)} columns; "
                        "fix that row (a comma inside a value needs quotes)"
                    )
                rows.append({k.strip(): (v or "").strip() for k, v in row.items() if k})
            return rows
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
    if not math.isfinite(iv.score):
        raise EvalError(f"{p} line {line}: score is {iv.score}; give a finite number (or leave it blank for 1)")
    if not iv.session:
        raise EvalError(f"{p} line {line}: the session cell is blank; name the session (its file stem)")
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
    protocol: str = "one-to-one",
) -> dict[str, Counts]:
    """MEGC evaluation (module docstring) of spots against annotations.

    Parameters
    ----------
    predictions : str, PathLike or sequence of Spot / Interval
        A spot CSV (``mecg spot --out``) or spots; spots the CCF rejected (``kept_by_ccf`` False) are skipped.
    truth : str, PathLike or sequence of Interval
        A session file, a folder of sessions (their annotations), an annotation CSV, or intervals.
    protocol : {"one-to-one", "megc2020"}
        How matches are counted (module docstring): ``one-to-one`` (default) or as the MEGC2020 baseline.

    Returns
    -------
    dict of str to Counts
        ``"me"``, ``"mae"`` and ``"overall"``: TP, FP, FN and precision, recall, F1 (0-1).

    Raises
    ------
    EvalError
        A file cannot be read or holds malformed rows, or the protocol is unknown.
    """
    _check_protocol(protocol)
    if isinstance(predictions, str | os.PathLike):
        preds = read_predictions(predictions)
    else:
        preds = [p if isinstance(p, Interval) else p.interval() for p in predictions if getattr(p, "kept_by_ccf", True)]
    gt = read_truth(truth) if isinstance(truth, str | os.PathLike) else list(truth)
    return evaluate(preds, gt, protocol)
