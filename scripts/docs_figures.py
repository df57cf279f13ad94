"""Draw the figures of docs/synth.md from a synthetic participant (run: python scripts/docs_figures.py)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import cv2
import matplotlib.pyplot as plt
import numpy as np

from mecg.model.heart_rate import hr_curve, hr_slope, mean_hr_slope, r_peaks
from mecg.synth import Subject, Trial, TrialConfig
from mecg.synth.expressions import Expression

OUT = Path(__file__).resolve().parent.parent / "docs" / "img"


def me_frames() -> None:
    me = Expression("ME", 3.0, 3.15, 3.4, (("AU12", 1.6), ("AU7", 1.2)), "RL", "happiness")
    mae = Expression("MaE", 6.0, 6.8, 8.5, (("AU1", 5.0), ("AU2", 5.0)), "RL", "surprise")
    cfg = replace(TrialConfig(), duration_s=10.0, fps=150, width=640, height=480)
    trial = Trial(Subject.random("S01", 7), 0, cfg, expressions=[me, mae])

    def frame(t: float) -> np.ndarray:
        return trial.frame(int(np.argmin(np.abs(trial.frame_times_s - t))))

    pairs = [
        (frame(2.99), frame(3.15), "ME apex (AU7+AU12, 1.6 px)"),
        (frame(5.99), frame(6.8), "MaE apex (AU1+AU2, 5 px)"),
    ]
    fig, ax = plt.subplots(2, 4, figsize=(14, 6.2))
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    for row, (a, b, name) in enumerate(pairs):
        flow = dis.calc(a, b, None)
        mag = np.hypot(flow[..., 0], flow[..., 1])
        ax[row, 0].imshow(a, cmap="gray", vmin=0, vmax=255)
        ax[row, 0].set_title("neutral (onset - 1 frame)")
        ax[row, 1].imshow(b, cmap="gray", vmin=0, vmax=255)
        ax[row, 1].set_title(name)
        ax[row, 2].imshow(np.abs(b.astype(int) - a.astype(int)), cmap="magma", vmin=0, vmax=30)
        ax[row, 2].set_title("|apex - neutral| (0-30 grey levels)")
        ax[row, 3].imshow(cv2.GaussianBlur(mag, (0, 0), 2), cmap="viridis", vmin=0, vmax=2 if row == 0 else 5)
        ax[row, 3].set_title("DIS optical-flow magnitude (px)")
        for a_ in ax[row]:
            a_.axis("off")
    fig.tight_layout()
    fig.savefig(OUT / "synth_me.png", dpi=80)
    plt.close(fig)


def ecg_panel() -> None:
    trial = Trial(Subject.random("S02", 11), 0, replace(TrialConfig(), duration_s=60.0, width=32, height=24))
    ecg = trial.ecg(0, trial.n_samples)
    t = trial.sample_times_s
    peaks = t[r_peaks(ecg[:, 0], 1000.0)]
    grid = np.arange(peaks[1], peaks[-1], 0.02)
    fig, ax = plt.subplots(3, 1, figsize=(12, 7), sharex=True)
    ax[0].plot(t, ecg[:, 0], lw=0.6)
    ax[0].plot(t, ecg[:, 1] * 0.8 - 0.6, lw=0.8, label="trigger line")
    ax[0].set_ylabel("ECG (mV)")
    ax[0].legend(loc="upper right")
    ax[1].plot(grid, hr_curve(peaks)(grid))
    ax[1].set_ylabel("HR (bpm)")
    ax[2].plot(grid, hr_slope(peaks, grid))
    ax[2].axhline(mean_hr_slope(peaks), color="k", ls="--", lw=0.8, label="trial mean HRS")
    ax[2].axhline(2 * mean_hr_slope(peaks), color="k", ls=":", lw=0.8, label="2 x mean (CCF eta = 2)")
    ax[2].set_ylabel("HRS (bpm/s)")
    for e in trial.expressions:
        for a_ in ax[1:]:
            a_.axvline(e.apex_s, color="r" if e.kind == "ME" else "orange", lw=1, alpha=0.7)
    ax[2].legend(loc="upper right")
    ax[2].set_xlabel("time (s); red = ME apex, orange = MaE apex")
    fig.tight_layout()
    fig.savefig(OUT / "synth_ecg.png", dpi=80)
    plt.close(fig)


def identities() -> None:
    """The face identities side by side, each in its default framing (colour, 160x120)."""
    from mecg.synth.face import Appearance, FaceRenderer
    from mecg.synth.identities import IDENTITY_NAMES

    tiles = [
        FaceRenderer(Appearance(identity=n), 160, 120, color=True, led=None).render(
            np.array([0.0, 0.0, 0.0, 1.0]), [], 1.0, 0.0, 0
        )
        for n in IDENTITY_NAMES
    ]
    half = len(tiles) // 2
    grid = np.vstack([np.hstack(tiles[:half]), np.hstack(tiles[half:])])
    bgr = cv2.cvtColor(grid, cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(OUT / "synth_identities.jpg"), bgr, [cv2.IMWRITE_JPEG_QUALITY, 85])


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    me_frames()
    ecg_panel()
    identities()
    print(f"wrote {OUT}/synth_me.png, synth_ecg.png and synth_identities.jpg")
