"""ECG features at expression apexes versus quiet moments: the paper's correlation analysis.

For every annotated ME and MaE apex, and for random non-expression moments drawn from the same
sessions, the ECG features around the moment are measured; each feature is then compared
between groups with a two-sided Mann-Whitney U test (ME vs non-ME, MaE vs non-ME).

* **Moments** are frames; a frame's time is its exposure start on the ECG clock
  (``/sync/frame_time_ecg_s`` via :class:`mecg.sync.Timeline`).
* **Features** (definitions in :mod:`mecg.model.heart_rate` and :mod:`mecg.model.ecg_features`):
  ``hr`` (HR curve, bpm), ``hrs`` (HR slope at the moment, bpm/s), ``hrs_ratio`` (HRS / the trial's
  mean HRS, what the candidate clip filter thresholds), ``rr_mean``, ``rr_std``, ``sdsd``, ``rmssd``
  (ms, over an ``hrv_window_s`` window centred on the moment), ``hr_change`` (bpm: mean HR over
  ``response_s`` after the moment minus mean HR over the ``baseline_s`` pre-window).
* **Non-expression moments**: per session ``round(k x expressions)`` frames drawn by a seeded RNG,
  at least ``min_distance_s`` from every annotated interval (any type, onset to offset), at least
  ``min_spacing_s`` from each other, and far enough from the first and last beat that every window
  fits.
* **Effect size**: rank-biserial correlation ``r = 2 U / (n1 n2) - 1`` with ``U`` the statistic of
  the expression group; it equals Cliff's delta, ``P(X > Y) - P(X < Y)``: positive when the
  expression group tends higher than the non-ME group, in [-1, 1].
* **Correction**: Holm over the whole family, every feature x both comparisons.
* **Per subject** (:func:`subject_level`), beside the pooled test, which treats every moment as
  independent: for each subject (sessions grouped by their ``subject_id``; a session without one is
  its own subject) the mean of the feature over its ME (MaE) moments minus the mean over its non-ME
  moments; across subjects, the mean of these differences with a t-based 95 % CI and a two-sided
  one-sample t test (the summary-statistics approach to a random subject effect), Holm-corrected
  over every feature x both comparisons, and a Wilcoxon signed-rank test as a check that needs no
  normality (raw p). Each subject weighs the same, however many moments it has.
"""

from __future__ import annotations

import math
import os
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy.stats import mannwhitneyu, ttest_1samp, wilcoxon
from scipy.stats import t as t_dist

from mecg.errors import MecgError
from mecg.model.ecg_features import EcgParams, ecg_features, ensure_synced
from mecg.model.heart_rate import hr_change
from mecg.session import open_session
from mecg.session.ecg_channel import find_ecg
from mecg.sync import Timeline

#: Feature name -> (unit, what it is). ``hrs`` is the paper's heart-rate slope at apex.
FEATURES: dict[str, tuple[str, str]] = {
    "hr": ("bpm", "heart rate at the moment"),
    "hrs": ("bpm/s", "heart-rate slope |dHR/dt| at the moment"),
    "hrs_ratio": ("x mean", "HRS / the trial's mean HRS"),
    "rr_mean": ("ms", "mean RR interval in the HRV window"),
    "rr_std": ("ms", "s.d. of RR intervals in the HRV window"),
    "sdsd": ("ms", "s.d. of successive RR differences in the HRV window"),
    "rmssd": ("ms", "RMS of successive RR differences in the HRV window"),
    "hr_change": ("bpm", "mean HR in the response window minus mean HR in the baseline pre-window"),
}
#: Groups of moments: ME apexes, MaE apexes, non-expression moments.
GROUPS = ("me", "mae", "non")
#: Fewest values per group for a rank test (fewer: p and effect size are null).
MIN_N = 3
#: Fewest subjects for the per-subject tests (fewer: the test's numbers are null).
MIN_SUBJECTS = 3


@dataclass(frozen=True)
class StatsParams:
    """Windows (s, relative to the moment), non-expression sampling and the ECG feature parameters."""

    baseline_s: tuple[float, float] = (-5.0, -1.0)
    response_s: tuple[float, float] = (0.0, 2.0)
    non_per_expression: float = 2.0
    min_distance_s: float = 2.0
    min_spacing_s: float = 1.0
    seed: int = 0
    ecg: EcgParams = field(default_factory=EcgParams)

    def __post_init__(self) -> None:
        if not self.baseline_s[0] < self.baseline_s[1] <= 0:
            raise MecgError(f"baseline window must be before the moment (start < end <= 0 s), got {self.baseline_s}")
        if not 0 <= self.response_s[0] < self.response_s[1]:
            raise MecgError(f"response window must be after the moment (0 <= start < end s), got {self.response_s}")
        if self.non_per_expression <= 0 or self.min_distance_s < 0 or self.min_spacing_s < 0:
            raise MecgError("non-expression moments per expression must be > 0 and distances >= 0")

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class SessionMoments:
    """The moments of one session: ``group`` per moment (``GROUPS``), frame, ECG time (s) and features."""

    session: str
    group: np.ndarray
    frame: np.ndarray
    t_s: np.ndarray
    values: dict[str, np.ndarray]
    shortfall: int = 0  # non-expression moments wanted but not found room for
    subject: str = ""  # the session's subject_id; "" when it has none (then the session is its own subject)


def sample_quiet_frames(
    frame_t_s: np.ndarray,
    busy_s: list[tuple[float, float]],
    span_s: tuple[float, float],
    n: int,
    rng: np.random.Generator,
    min_distance_s: float,
    min_spacing_s: float,
) -> np.ndarray:
    """Up to ``n`` random frames (sorted) inside ``span_s``, ``min_distance_s`` from every busy interval.

    Frames are tried in random order and kept when at least ``min_spacing_s`` from those already kept.
    """
    t = np.asarray(frame_t_s, dtype=np.float64)
    ok = (t >= span_s[0]) & (t <= span_s[1]) & np.isfinite(t)
    for a, b in busy_s:
        ok &= (t < a - min_distance_s) | (t > b + min_distance_s)
    kept: list[int] = []
    for f in rng.permutation(np.flatnonzero(ok)):
        if len(kept) >= n:
            break
        if all(abs(t[f] - t[k]) >= min_spacing_s for k in kept):
            kept.append(int(f))
    return np.sort(np.array(kept, dtype=np.int64))


def _session_rng(seed: int, name: str) -> np.random.Generator:
    # one stream per (seed, session name): adding a session to a folder leaves the others' draws alone
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def session_moments(path: str | os.PathLike, params: StatsParams, log: Callable[[str], None]) -> SessionMoments:
    """Moments and their features for one annotated, synced (or syncable) session with ECG.

    Raises :class:`MecgError` (with the reason) when the session cannot be used.
    """
    path = Path(path)
    with open_session(path) as s:
        ann = s.annotations
        subject = s.subject_id
        has_ecg = "frame_time_ecg_s" in s.sync_group or find_ecg(s) is not None  # synced: sync chose the ECG
    if not ann:
        raise MecgError("no annotated expressions")
    if not has_ecg:
        raise MecgError("no ECG stream")
    ensure_synced(path, log)
    ef = ecg_features(str(path), params.ecg)
    with open_session(path) as s:
        ft = Timeline(s).frame_time_s
    bad = [a for a in ann if a.offset_frame >= ft.size]
    if bad:
        raise MecgError(f"annotation ending at frame {bad[0].offset_frame} is past the video's {ft.size} frames")
    # the HR curve spans the first to the last RR midpoint; every window must fit inside it
    p = ef.peaks_s
    lead = max(-params.baseline_s[0], params.ecg.hrv_window_s / 2)
    tail = max(params.response_s[1], params.ecg.hrv_window_s / 2)
    span = (0.5 * (p[0] + p[1]) + lead, 0.5 * (p[-2] + p[-1]) - tail)
    n_want = round(params.non_per_expression * len(ann))
    quiet = sample_quiet_frames(
        ft,
        [(ft[a.onset_frame], ft[a.offset_frame]) for a in ann],
        span,
        n_want,
        _session_rng(params.seed, path.stem),
        params.min_distance_s,
        params.min_spacing_s,
    )
    frame = np.concatenate([np.array([a.apex_frame for a in ann], dtype=np.int64), quiet])
    group = np.array([a.type.lower() for a in ann] + ["non"] * quiet.size)
    t = ft[frame]
    hrs = ef.hrs_bpm_per_s[frame]
    hrv = ef.hrv[frame]  # rr_mean_s, rr_std_s, hr_mean_bpm, sdsd_s, rmssd_s
    values = {
        "hr": ef.hr_bpm[frame],
        "hrs": hrs,
        "hrs_ratio": hrs / ef.mean_hrs_bpm_per_s,
        "rr_mean": hrv[:, 0] * 1e3,
        "rr_std": hrv[:, 1] * 1e3,
        "sdsd": hrv[:, 3] * 1e3,
        "rmssd": hrv[:, 4] * 1e3,
        "hr_change": hr_change(p, t, params.baseline_s, params.response_s),
    }
    return SessionMoments(path.stem, group, frame, t, values, shortfall=n_want - quiet.size, subject=subject)


def rank_test(x: np.ndarray, y: np.ndarray, name: str = "me") -> dict:
    """Two-sided Mann-Whitney U of ``x`` (expression group ``name``) vs ``y`` (non-ME) and the rank-biserial r.

    NaNs are dropped; with fewer than ``MIN_N`` values in a group, ``u``, ``p`` and ``effect_size`` are None.
    Keys: ``u, p, effect_size, n_<name>, n_non``.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    out: dict = {"u": None, "p": None, "effect_size": None, f"n_{name}": int(x.size), "n_non": int(y.size)}
    if x.size < MIN_N or y.size < MIN_N:
        return out
    res = mannwhitneyu(x, y, alternative="two-sided")
    out["u"] = float(res.statistic)
    out["p"] = float(res.pvalue) if np.isfinite(res.pvalue) else None
    out["effect_size"] = 2.0 * float(res.statistic) / (x.size * y.size) - 1.0
    return out


def holm(p: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (same order), capped at 1."""
    m = len(p)
    adj = [0.0] * m
    running = 0.0
    for rank, i in enumerate(sorted(range(m), key=lambda k: p[k])):
        running = max(running, (m - rank) * p[i])
        adj[i] = min(1.0, running)
    return adj


def group_summary(x: np.ndarray) -> dict:
    """Median, quartiles, IQR and n of the finite values (None when empty)."""
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return {"median": None, "q25": None, "q75": None, "iqr": None, "n": 0}
    q25, med, q75 = np.percentile(x, [25, 50, 75])
    return {"median": float(med), "q25": float(q25), "q75": float(q75), "iqr": float(q75 - q25), "n": int(x.size)}


def subject_key(m: SessionMoments) -> str:
    """The subject a session's moments belong to: its ``subject_id``, else the session's own name."""
    return m.subject or f"session:{m.session}"


def subject_differences(moments: list[SessionMoments], feature: str, name: str = "me") -> dict[str, float]:
    """Per subject: mean of ``feature`` over its ``name`` moments minus the mean over its non-ME moments.

    NaN values are left out; a subject with no finite value in either group is left out.
    """
    by: dict[str, list[SessionMoments]] = {}
    for m in moments:
        by.setdefault(subject_key(m), []).append(m)
    out: dict[str, float] = {}
    for subj, ms in sorted(by.items()):
        v = np.concatenate([m.values[feature] for m in ms]).astype(np.float64)
        g = np.concatenate([m.group for m in ms])
        x, y = v[(g == name) & np.isfinite(v)], v[(g == "non") & np.isfinite(v)]
        if x.size and y.size:
            out[subj] = float(x.mean() - y.mean())
    return out


def subject_test(diffs: dict[str, float]) -> dict:
    """Across subjects: mean difference with a t-based 95 % CI and a one-sample t test of "mean 0"
    (``p``, two-sided), and the median difference with a Wilcoxon signed-rank test (``p_wilcoxon``).

    Keys: ``n_subjects, n_higher`` (subjects whose difference is > 0), ``mean_diff, ci95, p,
    median_diff, p_wilcoxon`` and ``per_subject`` (the differences). With fewer than ``MIN_SUBJECTS``
    subjects the tests' numbers are None; ``p`` is None when all differences are equal, ``p_wilcoxon``
    when all are 0. With n subjects the Wilcoxon p cannot go below ``2 / 2**n`` (0.0078 for 8).
    """
    d = np.array(list(diffs.values()), dtype=np.float64)
    out: dict = {
        "n_subjects": int(d.size),
        "n_higher": int((d > 0).sum()),
        "mean_diff": float(d.mean()) if d.size else None,
        "ci95": None,
        "p": None,
        "median_diff": float(np.median(d)) if d.size else None,
        "p_wilcoxon": None,
        "per_subject": dict(diffs),
    }
    if d.size < MIN_SUBJECTS:
        return out
    se = float(d.std(ddof=1)) / math.sqrt(d.size)
    half = float(t_dist.ppf(0.975, d.size - 1)) * se
    out["ci95"] = [out["mean_diff"] - half, out["mean_diff"] + half]
    if se > 0:
        p = float(ttest_1samp(d, 0.0).pvalue)
        out["p"] = p if math.isfinite(p) else None
    if np.any(d != 0):
        p = float(wilcoxon(d, alternative="two-sided").pvalue)
        out["p_wilcoxon"] = p if math.isfinite(p) else None
    return out


def subject_level(moments: list[SessionMoments]) -> tuple[dict[str, dict], int]:
    """Per-subject tests of every feature (ME vs non-ME, MaE vs non-ME), Holm over all of them.

    Returns ``({feature: {"me_vs_non": subject_test, "mae_vs_non": subject_test}}, family size)``;
    each test gains ``p_corrected`` (None where ``p`` is).
    """
    out = {
        f: {f"{g}_vs_non": subject_test(subject_differences(moments, f, g)) for g in ("me", "mae")} for f in FEATURES
    }
    tests = [t for f in out.values() for t in f.values()]
    family = [t for t in tests if t["p"] is not None]
    for t, adj in zip(family, holm([t["p"] for t in family])):
        t["p_corrected"] = adj
    for t in tests:
        t.setdefault("p_corrected", None)
    return out, len(family)


def compare_groups(moments: list[SessionMoments]) -> dict:
    """Group table and rank tests per feature, Holm-corrected over every feature x comparison, and
    the per-subject tests (:func:`subject_level`) beside them.

    Returns ``{"features": {name: {"me_vs_non": {...}, "mae_vs_non": {...}, "groups": {...}, "unit": ...,
    "subject_level": {"me_vs_non": {...}, "mae_vs_non": {...}}}}, "family_size", "subject_family_size"}``;
    ``me_vs_non`` counts its groups in ``n_me`` / ``n_non``, ``mae_vs_non`` in ``n_mae`` / ``n_non``.
    """
    group = np.concatenate([m.group for m in moments])
    feats: dict[str, dict] = {}
    for name, (unit, what) in FEATURES.items():
        v = np.concatenate([m.values[name] for m in moments])
        by = {g: v[group == g] for g in GROUPS}
        feats[name] = {
            "unit": unit,
            "description": what,
            "groups": {g: group_summary(by[g]) for g in GROUPS},
            "me_vs_non": rank_test(by["me"], by["non"]),
            "mae_vs_non": rank_test(by["mae"], by["non"], "mae"),
        }
    tests = [t for f in feats.values() for t in (f["me_vs_non"], f["mae_vs_non"])]
    family = [t for t in tests if t["p"] is not None]
    for t, adj in zip(family, holm([t["p"] for t in family])):
        t["p_corrected"] = adj
    for t in tests:
        t.setdefault("p_corrected", None)
    per_subject, n_subject_tests = subject_level(moments)
    for name, f in feats.items():
        f["subject_level"] = per_subject[name]
    return {"features": feats, "family_size": len(family), "subject_family_size": n_subject_tests}


def _moments_or_reason(params: StatsParams, path: Path) -> tuple[SessionMoments | None, str, list[str]]:
    """One session's moments, or why it was skipped; with the log lines it made (for a pool worker)."""
    lines: list[str] = []
    try:
        return session_moments(path, params, lines.append), "", lines
    except (MecgError, OSError, KeyError, ValueError) as exc:  # an unusable file must not stop the others
        return None, str(exc) if isinstance(exc, MecgError) else f"{type(exc).__name__}: {exc}", lines


def collect_moments(
    paths: list[Path],
    params: StatsParams,
    log: Callable[[str], None],
    *,
    jobs: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[SessionMoments], list[tuple[str, str]]]:
    """Moments of every usable session, and ``(file name, reason)`` for each session skipped.

    ``jobs`` > 1 works on that many sessions at once (:func:`mecg.model.parallel.map_sessions`;
    same result); ``progress(done, total)`` is called after each session.
    """
    from functools import partial

    from mecg.model.parallel import map_sessions

    used: list[SessionMoments] = []
    skipped: list[tuple[str, str]] = []
    for i, (p, (m, reason, lines)) in enumerate(
        zip(paths, map_sessions(partial(_moments_or_reason, params), paths, jobs)), 1
    ):
        for line in lines:
            log(line)
        if m is None:
            skipped.append((p.name, reason))
            log(f"warning: [{i}/{len(paths)}] skipping {p.name}: {reason}")
        else:
            used.append(m)
            n = {g: int((m.group == g).sum()) for g in GROUPS}
            short = m.shortfall
            note = f" (room for only {n['non']} of {n['non'] + short} non-expression moments)" if short else ""
            log(f"[{i}/{len(paths)}] {p.name}: {n['me']} ME, {n['mae']} MaE, {n['non']} non-expression moments{note}")
        if progress:
            progress(i, len(paths))
    return used, skipped


def json_safe(obj: object) -> object:
    """``obj`` with NaN/inf floats replaced by None (strict JSON)."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


#: How the groups are called in tables and plots.
GROUP_LABELS = {"me": "ME", "mae": "MaE", "non": "non-ME"}


def fmt_p(p: float | None) -> str:
    """A p value for people: 3 decimals, scientific below 0.001; ``n/a`` when undefined."""
    return "n/a" if p is None else (f"{p:.1e}" if p < 1e-3 else f"{p:.3f}")


def fmt_r(r: float | None) -> str:
    """An effect size with its sign, 2 decimals; ``n/a`` when undefined."""
    return "n/a" if r is None else f"{r:+.2f}"


def plot_stats(path: str | os.PathLike, moments: list[SessionMoments], result: dict, title: str = "") -> None:
    """Write a PNG of boxplots, one panel per feature, groups ME / MaE / non-ME (points overlaid)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    group = np.concatenate([m.group for m in moments]) if moments else np.zeros(0, dtype=str)
    names = list(FEATURES)
    ncol = 4
    nrow = math.ceil(len(names) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.6 * ncol, 3.4 * nrow), squeeze=False)
    rng = np.random.default_rng(0)  # jitter of the points only
    colors = {"me": "tab:red", "mae": "tab:orange", "non": "tab:blue"}
    for ax, name in zip(axes.flat, names):
        v = np.concatenate([m.values[name] for m in moments]) if moments else np.zeros(0)
        data = [v[(group == g) & np.isfinite(v)] for g in GROUPS]
        ax.boxplot(data, showfliers=False, widths=0.55, medianprops={"color": "k"})
        for i, (g, d) in enumerate(zip(GROUPS, data), 1):
            ax.scatter(i + rng.uniform(-0.18, 0.18, d.size), d, s=6, alpha=0.5, color=colors[g], lw=0)
        ax.set_xticks(range(1, len(GROUPS) + 1), [f"{GROUP_LABELS[g]}\nn={d.size}" for g, d in zip(GROUPS, data)])
        f = result["features"][name]
        me, mae = f["me_vs_non"], f["mae_vs_non"]
        ax.set_title(
            f"{name} ({f['unit']})\nME: r {fmt_r(me['effect_size'])}, p_holm {fmt_p(me['p_corrected'])}\n"
            f"MaE: r {fmt_r(mae['effect_size'])}, p_holm {fmt_p(mae['p_corrected'])}",
            fontsize=8,
        )
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(names) :]:
        ax.set_visible(False)
    fig.suptitle(title or "ECG features at expression apexes vs non-expression moments", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
