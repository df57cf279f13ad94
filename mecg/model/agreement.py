"""Inter-coder agreement as ME papers report it, and the merge of two coders' sets into a reference set.

Agreement of coder A with coder B on one video of ``n_frames`` frames at ``fps`` Hz:

* **intervals**: MEGC matching (:mod:`mecg.model.evaluate`: IoU >= 0.5 on inclusive frames, one-to-one
  greedy), A's intervals taken as "predictions" of B's. ``matched`` = TP, ``only_a`` = FP,
  ``only_b`` = FN; P = matched / #A, R = matched / #B, F1 = 2PR / (P + R), which is symmetric.
  Per type (ME with ME, MaE with MaE, ``overall`` pooling the two) as MEGC counts, and ``any_type``
  matching regardless of type (then ``type_agreement`` is the share of those pairs with one type);
* **frame-wise Cohen's kappa**: each frame is "expression" or "none" for each coder (frames inside
  any of its intervals), kappa = (p_o - p_e) / (1 - p_e) with p_o the share of frames on which
  they agree and p_e = p_A1 p_B1 + p_A0 p_B0 the agreement expected by chance; also ME-vs-not and
  MaE-vs-not. Undefined (None) when p_e = 1 (both coders mark every frame alike, all or nothing);
* **apex distance** of the ``any_type`` pairs: |apex_A - apex_B| in frames and ms (mean, median, max).

Merge rules (:data:`MERGE_RULES`), pairs being the ``any_type`` matches:

* ``consensus`` (default): each pair becomes one expression with onset, apex and offset the means
  of the two coders' frames, rounded half up; intervals only one coder marked are dropped;
* ``mean``: pairs as ``consensus``; unmatched intervals of both coders are kept as coded;
* ``union``: each pair spans from the earlier onset to the later offset, apex the rounded mean;
  unmatched intervals are kept as coded.

A merged pair's type follows the ME rule on the merged frames (:func:`mecg.session.coders.me_rule`);
its AUs are the union of both coders' (A's first), its emotion the shared one, else ``"A's/B's"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

from mecg.model.evaluate import Counts, Interval, evaluate, match_pairs
from mecg.session import Annotation
from mecg.session.coders import me_rule

#: Names of the merge rules (see the module docstring).
MergeRule = Literal["consensus", "mean", "union"]
MERGE_RULES: tuple[MergeRule, ...] = get_args(MergeRule)


def _intervals(anns: list[Annotation]) -> list[Interval]:
    return [Interval("", a.onset_frame, a.offset_frame, a.type, 1.0, a.apex_frame) for a in anns]


def frame_mask(anns: list[Annotation], n_frames: int, type: str | None = None) -> np.ndarray:
    """Boolean ``(n_frames,)``: frames inside any annotation (of ``type``, if given), inclusive."""
    m = np.zeros(n_frames, dtype=bool)
    for a in anns:
        if type is None or a.type == type:
            m[a.onset_frame : a.offset_frame + 1] = True
    return m


def cohen_kappa(x: np.ndarray, y: np.ndarray) -> float | None:
    """Cohen's kappa of two binary labelings of the same items; None when chance agreement is 1."""
    x, y = np.asarray(x, dtype=bool), np.asarray(y, dtype=bool)
    if x.shape != y.shape or x.size == 0:
        raise ValueError("kappa needs two labelings of the same, non-empty set of items")
    po = float(np.mean(x == y))
    pa, pb = float(x.mean()), float(y.mean())
    pe = pa * pb + (1 - pa) * (1 - pb)
    if pe >= 1.0 - 1e-12:
        return None
    return (po - pe) / (1 - pe)


def _counts(c: Counts) -> dict:
    return {
        "matched": c.tp,
        "only_a": c.fp,
        "only_b": c.fn,
        "precision": round(c.precision, 4),
        "recall": round(c.recall, 4),
        "f1": round(c.f1, 4),
    }


@dataclass
class Agreement:
    """Agreement of coder ``coders[0]`` (A) with ``coders[1]`` (B); see the module docstring."""

    coders: tuple[str, str]
    n_frames: int
    fps: float
    n_a: dict[str, int]  #: A's expressions by type: {"me", "mae", "all"}
    n_b: dict[str, int]
    intervals: dict[str, Counts]  #: me, mae, overall (MEGC, within type)
    any_type: Counts
    type_agreement: float | None
    kappa: dict[str, float | None]  #: expression, me, mae
    apex_frames: np.ndarray  #: |apex_A - apex_B| of the any-type pairs (frames)

    def apex_summary(self) -> dict[str, float | int | None]:
        """Pairs, and mean / median / max apex distance in frames and ms (None without pairs)."""
        d = self.apex_frames
        out: dict[str, float | int | None] = {"pairs": int(d.size)}
        for name, fn in (("mean", np.mean), ("median", np.median), ("max", np.max)):
            v = float(fn(d)) if d.size else None
            out[f"{name}_frames"] = None if v is None else round(v, 3)
            out[f"{name}_ms"] = None if v is None else round(v * 1000.0 / self.fps, 3)
        return out

    def as_dict(self) -> dict:
        return {
            "coders": list(self.coders),
            "n_frames": self.n_frames,
            "fps": self.fps,
            "count_a": self.n_a,
            "count_b": self.n_b,
            "intervals": {k: _counts(v) for k, v in self.intervals.items()},
            "any_type": _counts(self.any_type),
            "type_agreement": None if self.type_agreement is None else round(self.type_agreement, 4),
            "kappa": {k: None if v is None else round(v, 4) for k, v in self.kappa.items()},
            "apex": self.apex_summary(),
        }


def _by_type(anns: list[Annotation]) -> dict[str, int]:
    me = sum(a.type == "ME" for a in anns)
    return {"me": me, "mae": len(anns) - me, "all": len(anns)}


def agreement(
    a: list[Annotation], b: list[Annotation], n_frames: int, fps: float, coders: tuple[str, str] = ("A", "B")
) -> Agreement:
    """Agreement of two coders' annotations of one video (``n_frames`` frames at ``fps`` Hz)."""
    if not (n_frames > 0 and fps > 0):
        raise ValueError(f"agreement needs a video with frames and a frame rate, got {n_frames} frames, {fps} fps")
    ia, ib = _intervals(a), _intervals(b)
    pairs = match_pairs(ia, ib)
    any_type = Counts(len(pairs), len(a) - len(pairs), len(b) - len(pairs))
    same = sum(a[i].type == b[j].type for i, j in pairs)
    kappa = {
        "expression": cohen_kappa(frame_mask(a, n_frames), frame_mask(b, n_frames)),
        "me": cohen_kappa(frame_mask(a, n_frames, "ME"), frame_mask(b, n_frames, "ME")),
        "mae": cohen_kappa(frame_mask(a, n_frames, "MaE"), frame_mask(b, n_frames, "MaE")),
    }
    apex = np.array([abs(a[i].apex_frame - b[j].apex_frame) for i, j in pairs], dtype=np.int64)
    return Agreement(
        coders,
        n_frames,
        fps,
        _by_type(a),
        _by_type(b),
        evaluate(ia, ib),
        any_type,
        same / len(pairs) if pairs else None,
        kappa,
        apex,
    )


def _half_up(x: int, y: int) -> int:
    """The mean of two frame numbers rounded half up."""
    return (x + y + 1) // 2


def _union_aus(x: str, y: str) -> str:
    out: list[str] = []
    for part in [*x.split("+"), *y.split("+")]:
        p = part.strip()
        if p and p not in out:
            out.append(p)
    return "+".join(out)


@dataclass
class MergeResult:
    """The merged set and how it came about."""

    annotations: list[Annotation]
    rule: MergeRule
    matched: int  #: pairs merged into one expression each
    kept_a: int  #: unmatched expressions of A kept
    kept_b: int
    dropped: int  #: unmatched expressions dropped (``consensus``) or exact duplicates


def merge(a: list[Annotation], b: list[Annotation], fps: float, rule: MergeRule = "consensus") -> MergeResult:
    """Merge two coders' sets of one video by ``rule`` (one of :data:`MERGE_RULES`; see the module docstring)."""
    if rule not in MERGE_RULES:
        raise ValueError(f"merge rule must be one of {', '.join(MERGE_RULES)}, got {rule!r}")
    pairs = match_pairs(_intervals(a), _intervals(b))
    out: list[Annotation] = []
    for i, j in pairs:
        x, y = a[i], b[j]
        if rule == "union":
            on, off = min(x.onset_frame, y.onset_frame), max(x.offset_frame, y.offset_frame)
        else:
            on, off = _half_up(x.onset_frame, y.onset_frame), _half_up(x.offset_frame, y.offset_frame)
        apex = min(max(_half_up(x.apex_frame, y.apex_frame), on), off)
        if x.emotion == y.emotion or not y.emotion:
            emotion = x.emotion
        else:
            emotion = y.emotion if not x.emotion else f"{x.emotion}/{y.emotion}"
        out.append(Annotation(on, apex, off, me_rule(on, apex, off, fps), _union_aus(x.aus, y.aus), emotion))
    ma, mb = {i for i, _ in pairs}, {j for _, j in pairs}
    rest_a = [x for i, x in enumerate(a) if i not in ma]
    rest_b = [y for j, y in enumerate(b) if j not in mb]
    dropped = 0
    if rule == "consensus":
        dropped = len(rest_a) + len(rest_b)
        kept_a = kept_b = 0
    else:
        out += rest_a + rest_b
        kept_a, kept_b = len(rest_a), len(rest_b)
    unique: dict[tuple[int, int], Annotation] = {}
    for x in out:
        unique.setdefault((x.onset_frame, x.offset_frame), x)
    dropped += len(out) - len(unique)
    rows = sorted(unique.values(), key=lambda x: (x.onset_frame, x.offset_frame))
    return MergeResult(rows, rule, len(pairs), kept_a, kept_b, dropped)
