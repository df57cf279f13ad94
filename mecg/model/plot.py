"""The spot figure: score curve, threshold, spotted intervals and (when annotated) the ground truth."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from mecg.model.spots import Spot


def plot_spots(
    path: str | os.PathLike,
    fps: float,
    score: np.ndarray,
    curves: dict[str, tuple[np.ndarray, float]],
    spots: Sequence[Spot],
    truth: list[tuple[int, int, str]],
    title: str,
) -> None:
    """Write a PNG: raw score, smoothed curves, thresholds, spots (green kept, grey rejected), truth."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.arange(score.size) / fps
    fig, ax = plt.subplots(figsize=(14, 4.5))
    ax.plot(t, score, lw=0.5, color="0.6", label="score")
    for (name, (smooth, thr)), color in zip(curves.items(), ("C0", "C1", "C2")):
        ax.plot(t, smooth, lw=1.0, color=color, label=f"{name} smoothed")
        ax.axhline(thr, color=color, ls="--", lw=0.8, label=f"{name} threshold")
    top = float(np.nanmax(score)) if score.size else 1.0
    for sp in spots:
        color = "green" if sp.kept_by_ccf else "0.7"
        ax.axvspan(sp.onset_frame / fps, sp.offset_frame / fps, ymin=0.9, ymax=0.97, color=color, alpha=0.8)
    for on, off, kind in truth:
        ax.axvspan(on / fps, off / fps, ymin=0.0, ymax=0.07, color="red" if kind == "ME" else "orange", alpha=0.8)
    ax.set_xlabel(
        "time (s)   top bars: spotted (green kept, grey rejected by CCF); bottom bars: truth (red ME, orange MaE)"
    )
    ax.set_ylim(0, top * 1.15 if top > 0 else 1)
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
