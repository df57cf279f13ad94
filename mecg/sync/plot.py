"""The sync figure: residuals over time and the matched pulse trains."""

from __future__ import annotations

import os

import numpy as np

from mecg.sync.align import SyncResult


def plot_sync(res: SyncResult, path: str | os.PathLike) -> None:
    """Write a PNG with the fit residuals (ms) over time and the matched pulses of both clocks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(2, 1, figsize=(10, 6))
    if res.residuals_s.size:
        ax[0].plot(res.matched_camera_s, res.residuals_s * 1e3, "o-", ms=3, lw=0.8)
        ax[0].axhline(0, color="k", lw=0.6)
        ax[0].set_ylabel("residual (ms)")
        ax[0].set_title(
            f"{res.mode}: offset {res.offset_ms:.2f} ms, drift {res.drift_ppm:.1f} ppm, "
            f"RMS {res.residual_rms_ms:.3f} ms, max {res.residual_max_ms:.3f} ms"
        )
    else:
        ax[0].text(
            0.5, 0.5, f"mode {res.mode}: no hardware residuals", ha="center", va="center", transform=ax[0].transAxes
        )
    ax[0].set_xlabel("camera clock (s)")
    if res.matched_camera_s.size and res.mode != "strobe":
        ax[1].eventplot(
            [res.matched_camera_s, res.matched_ecg_s - res.offset_ms / 1e3],
            lineoffsets=[1, 0],
            colors=["C0", "C1"],
            linelengths=0.8,
        )
        ax[1].set_yticks([0, 1], ["amplifier TTL\n(- offset)", "video LED"])
    else:
        t = np.arange(res.frame_time_ecg_s.size)
        ax[1].plot(t, res.frame_time_ecg_s, lw=0.8)
        ax[1].set_ylabel("frame time on ECG clock (s)")
    ax[1].set_xlabel("camera clock (s)" if res.mode != "strobe" else "frame")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
