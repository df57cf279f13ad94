"""``mecg stats``: ECG features at ME / MaE apexes versus non-expression moments (the paper's correlation analysis)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mecg.cli.argtypes import JOBS, bounded
from mecg.cli.outputs import check_output_file
from mecg.cli.progress import Progress, add_quiet_option
from mecg.cli.spot import session_paths
from mecg.errors import MecgError
from mecg.model.ecg_features import EcgParams
from mecg.model.heart_rate import PEAK_METHODS
from mecg.model.stats import (
    FEATURES,
    GROUP_LABELS,
    GROUPS,
    MIN_SUBJECTS,
    StatsParams,
    collect_moments,
    compare_groups,
    fmt_p,
    fmt_r,
    json_safe,
    plot_stats,
    subject_key,
)


def _num(v: float | None) -> str:
    if v is None:
        return "n/a"
    return f"{v:.3g}" if abs(v) < 1e4 else f"{v:.0f}"


def format_table(result: dict) -> str:
    """The human-readable report: a group table, then the tests."""
    feats = result["features"]
    meta = result["meta"]
    n = meta["moments"]
    lines = [
        f"ECG features at {n['me']} ME apexes, {n['mae']} MaE apexes and {n['non']} non-expression moments "
        f"in {len(meta['sessions'])} session(s)" + (f", {len(meta['skipped'])} skipped" if meta["skipped"] else ""),
        "",
        f"{'feature':<10} {'unit':<7}" + "".join(f" {GROUP_LABELS[g] + ' median [q25, q75] n':>32}" for g in GROUPS),
    ]
    for name, f in feats.items():
        cells = []
        for g in GROUPS:
            s = f["groups"][g]
            cells.append(f"{_num(s['median'])} [{_num(s['q25'])}, {_num(s['q75'])}] {s['n']}")
        lines.append(f"{name:<10} {f['unit']:<7}" + "".join(f" {c:>32}" for c in cells))
    lines += [
        "",
        f"Mann-Whitney U, two-sided; r = rank-biserial (+: group higher than non-ME); "
        f"p_holm: Holm over {meta['family_size']} tests",
        f"{'feature':<10} {'ME r':>7} {'p':>9} {'p_holm':>9}   {'MaE r':>7} {'p':>9} {'p_holm':>9}",
    ]
    for name, f in feats.items():
        a, b = f["me_vs_non"], f["mae_vs_non"]
        lines.append(
            f"{name:<10} {fmt_r(a['effect_size']):>7} {fmt_p(a['p']):>9} {fmt_p(a['p_corrected']):>9}   "
            f"{fmt_r(b['effect_size']):>7} {fmt_p(b['p']):>9} {fmt_p(b['p_corrected']):>9}"
        )
    subj = meta["subjects"]
    lines += [
        "",
        f"Per subject ({len(subj)} subject(s); each weighs the same): diff = subject's mean at ME (MaE) minus its "
        "mean at non-ME moments;",
        f"mean diff [95% CI] over subjects, n = subjects (higher/all), p = one-sample t, "
        f"p_holm: Holm over {meta['subject_family_size']} tests, p_W = Wilcoxon signed-rank",
        f"{'feature':<10} {'ME diff [95% CI]':>26} {'n':>6} {'p':>9} {'p_holm':>9} {'p_W':>9}   "
        f"{'MaE diff [95% CI]':>26} {'n':>6} {'p':>9} {'p_holm':>9} {'p_W':>9}",
    ]
    for name, f in feats.items():
        cells = []
        for t in (f["subject_level"]["me_vs_non"], f["subject_level"]["mae_vs_non"]):
            ci = t["ci95"]
            est = f"{_num(t['mean_diff'])} [{_num(ci[0])}, {_num(ci[1])}]" if ci else _num(t["mean_diff"])
            cells.append(
                f"{est:>26} {str(t['n_higher']) + '/' + str(t['n_subjects']):>6} {fmt_p(t['p']):>9} "
                f"{fmt_p(t['p_corrected']):>9} {fmt_p(t['p_wilcoxon']):>9}"
            )
        lines.append(f"{name:<10} " + "   ".join(cells))
    if len(subj) < MIN_SUBJECTS:
        lines.append(f"(fewer than {MIN_SUBJECTS} subjects: no per-subject test)")
    return "\n".join(lines)


def _subjects(moments: list) -> dict[str, list[str]]:
    """Subject -> its sessions (a session without ``subject_id`` is its own subject, ``session:NAME``)."""
    out: dict[str, list[str]] = {}
    for m in moments:
        out.setdefault(subject_key(m), []).append(m.session)
    return out


def _stats(args: argparse.Namespace) -> int:
    params = StatsParams(
        non_per_expression=args.non_per_expression,
        min_distance_s=args.min_distance,
        seed=args.seed,
        ecg=EcgParams(peak_method=args.peak_method, hrv_window_s=args.hrv_window),
    )
    if args.plot:
        plot = Path(args.plot)
        if plot.suffix.lower() not in (".png", ".pdf", ".svg"):
            raise MecgError(f"--plot {plot}: give a .png, .pdf or .svg file name")
        check_output_file(plot, f"--plot {plot}")  # a folder, no folder, a read-only folder: before the analysis
    paths = session_paths(args.target)
    with Progress(len(paths), "stats", "session", quiet=args.quiet) as bar:

        def log(line: str) -> None:
            (bar.warn if line.startswith(("warning", "notice")) else bar.log)(line)

        moments, skipped = collect_moments(paths, params, log, jobs=args.jobs, progress=bar.set)
    if not moments:
        reasons = "; ".join(f"{name}: {why}" for name, why in skipped[:5]) + ("; ..." if len(skipped) > 5 else "")
        raise MecgError(
            f"no usable sessions in {args.target} (each needs annotations, an ECG stream and a sync): {reasons}"
        )
    res = compare_groups(moments)
    res["meta"] = {
        "sessions": [m.session for m in moments],
        "skipped": [{"file": name, "reason": why} for name, why in skipped],
        "moments": {g: int(sum((m.group == g).sum() for m in moments)) for g in GROUPS},
        "test": "Mann-Whitney U, two-sided (scipy.stats.mannwhitneyu)",
        "effect_size": "rank-biserial r = 2U/(n1 n2) - 1 = Cliff's delta; > 0: the expression group is higher",
        "correction": "holm",
        "family_size": res.pop("family_size"),
        "subjects": _subjects(moments),
        "subject_level": "per subject: mean at ME (MaE) minus mean at non-ME moments; across subjects: mean "
        "with t 95% CI and two-sided one-sample t p (scipy.stats.ttest_1samp), Holm over subject_family_size; "
        "p_wilcoxon: two-sided Wilcoxon signed-rank (scipy.stats.wilcoxon), uncorrected",
        "subject_family_size": res.pop("subject_family_size"),
        "params": params.as_dict(),
    }
    if args.plot:
        try:
            plot_stats(args.plot, moments, res, f"{Path(args.target).name}: ECG features at apexes vs non-expression")
        except OSError as exc:
            raise MecgError(f"--plot {args.plot}: cannot write it: {exc.strerror or exc}") from None
    if args.json:
        res["files"] = [str(args.plot)] if args.plot else []  # what was written
        print(json.dumps(json_safe(res), allow_nan=False))
    else:
        print(format_table(res))
        if args.plot:
            print(f"\nwrote {args.plot}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``stats`` to the ``mecg`` parser."""
    p = sub.add_parser(
        "stats",
        help="ECG features at ME/MaE apexes vs non-expression moments (rank tests)",
        description="For every annotated ME and MaE apex and for seeded random non-expression moments of the "
        f"same sessions: {', '.join(FEATURES)}; per feature medians and IQR per group, Mann-Whitney U "
        "(ME vs non-ME, MaE vs non-ME) with rank-biserial effect size and Holm correction, on all moments pooled; "
        "beside it a per-subject analysis (each subject's mean difference, then a t test with a 95% CI and a "
        "Wilcoxon signed-rank test across subjects; subjects from the sessions' subject_id). Unsynced sessions "
        "are synced first (stored in the file).",
    )
    p.add_argument("target", metavar="DATA_DIR", help="a folder of sessions (or one session file)")
    p.add_argument("--json", action="store_true", help="print one JSON object: {features: {NAME: {...}}, meta}")
    p.add_argument("--plot", metavar="PNG", help="write boxplots, one panel per feature")
    p.add_argument(
        "--non-per-expression",
        type=bounded(float, 0, 100, lo_open=True),
        default=2.0,
        metavar="K",
        help="non-expression moments per annotated expression, per session (default 2)",
    )
    p.add_argument(
        "--min-distance",
        type=bounded(float, 0, 600, unit="s"),
        default=2.0,
        metavar="S",
        help="non-expression moments stay S seconds from any annotated interval (default 2)",
    )
    p.add_argument(
        "--hrv-window",
        type=bounded(float, 0, 600, lo_open=True, unit="s"),
        default=10.0,
        metavar="S",
        help="HRV window in s (default 10)",
    )
    p.add_argument("--peak-method", choices=PEAK_METHODS, default="neurokit", help="R-peak detector (default neurokit)")
    p.add_argument("--seed", type=int, default=0, help="seed for the non-expression moments (default 0)")
    p.add_argument(
        "--jobs",
        type=JOBS,
        default=1,
        metavar="N",
        help="sessions worked on at once, one per process (default 1); same result for every N",
    )
    add_quiet_option(p)
    p.set_defaults(func=_stats)
