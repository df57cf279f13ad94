"""The sync figure: verdict, segments and gaps, fit residuals, and the matched pulse trains."""

from __future__ import annotations

import os

import numpy as np

from mecg.sync.align import METHOD_CODES, SyncResult

_COLOURS = {"strobe": "C2", "pulses": "C0", "lsl": "C1"}
_VERDICT_COLOURS = {"ok": "#1b7f3b", "suspect": "#b07800", "failed": "#b00020"}


def plot_sync(res: SyncResult, path: str | os.PathLike) -> None:
    """Write a PNG: frame times by method with camera segments and ECG gaps, residuals (ms), pulse trains."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(3, 1, figsize=(10, 8.5))
    unc = "n/a" if res.uncertainty_ms is None else f"+-{res.uncertainty_ms:.3f} ms"
    fig.suptitle(
        f"verdict {res.verdict.upper()} - mode {res.mode}, uncertainty {unc}, drift {res.drift_ppm:.1f} ppm",
        color=_VERDICT_COLOURS.get(res.verdict, "k"),
        fontweight="bold",
    )
    if res.reasons:
        import textwrap

        text = "\n".join(textwrap.fill(r, 150) for r in res.reasons[:3])
        fig.text(0.01, 0.005, text, fontsize=7, color=_VERDICT_COLOURS.get(res.verdict, "k"))

    # 1. frame times on the ECG clock, coloured by how each frame was aligned
    frames = np.arange(res.frame_time_ecg_s.size)
    for name, code in METHOD_CODES.items():
        m = res.frame_method == code
        if name != "none" and m.any():
            ax[0].plot(frames[m], res.frame_time_ecg_s[m], ".", ms=1.5, color=_COLOURS[name], label=name)
    nan = ~np.isfinite(res.frame_time_ecg_s)
    if nan.any():
        runs = np.flatnonzero(np.diff(np.r_[0, nan.astype(int), 0]))
        for a, b in zip(runs[::2], runs[1::2]):
            ax[0].axvspan(a, b - 1, color="#b00020", alpha=0.15, lw=0)
        ax[0].plot([], [], "s", color="#b00020", alpha=0.3, label=f"not aligned ({int(nan.sum())} frames: gap)")
    for start in np.asarray(res.video_segments)[1:, 0] if len(res.video_segments) > 1 else []:
        ax[0].axvline(start, color="k", lw=0.8, ls="--")
    ax[0].set_xlabel("frame (dashed: camera segment starts)")
    ax[0].set_ylabel("time on ECG clock (s)")
    ax[0].legend(loc="upper left", fontsize=7, markerscale=6)

    # 2. each matched pulse edge against the fitted line: the edge's middle, with the interval it may lie in
    if res.midpoint_residuals_s.size:
        n = res.matched_camera_s.size
        ax[1].errorbar(
            res.matched_camera_s,
            res.midpoint_residuals_s[:n] * 1e3,
            yerr=res.interval_halfwidth_s[:n] * 1e3,
            fmt="o",
            ms=3,
            lw=0.8,
            capsize=2,
        )
        ax[1].axhline(0, color="k", lw=0.6)
        ax[1].set_ylabel("edge - fit (ms)\nbar: where it may lie")
        rms = "n/a" if res.residual_rms_ms is None else f"{res.residual_rms_ms:.3f}"
        mx = "n/a" if res.residual_max_ms is None else f"{res.residual_max_ms:.3f}"
        ax[1].set_title(
            f"edges (rising and falling) of {res.pulses_matched} matched pulses; "
            f"the fit misses their intervals by RMS {rms} ms, max {mx} ms",
            fontsize=9,
        )
    else:
        ax[1].text(
            0.5, 0.5, f"mode {res.mode}: no hardware residuals", ha="center", va="center", transform=ax[1].transAxes
        )
    ax[1].set_xlabel("camera clock (s)")

    # 3. the two pulse trains, amplifier shifted by the fitted line
    if res.matched_camera_s.size:
        ax[2].eventplot(
            [res.matched_camera_s, res.matched_ecg_s - res.matched_ecg_s[0] + res.matched_camera_s[0]],
            lineoffsets=[1, 0],
            colors=["C0", "C1"],
            linelengths=0.8,
        )
        ax[2].set_yticks([0, 1], ["amplifier TTL\n(shifted)", "video LED"])
        ax[2].set_xlabel("camera clock (s)")
    else:
        ax[2].text(0.5, 0.5, "no matched trigger pulses", ha="center", va="center", transform=ax[2].transAxes)
    fig.tight_layout(rect=(0, 0.04, 1, 0.97))
    fig.savefig(path, dpi=90)
    plt.close(fig)
