"""How sure an alignment is: ``ok``, ``suspect`` or ``failed``, with the reasons.

Checks are about physics and coverage, never about a fit agreeing with itself:

* drift beyond what crystal oscillators do (``max_drift_ppm``; real ones stay within ~100 ppm);
* the share of frames aligned, outside ECG gaps, and of pulses explained by the fit;
* the largest miss of the fitted line against half (failed) or a quarter (suspect) of a frame
  period: a miss that large means a frame or a pulse was numbered wrongly;
* the alignment's uncertainty (how far every clock line that meets all observations spreads, see
  :func:`mecg.sync.joint.feasible_range_s`) against ``max_uncertainty_ms``;
* camera segments that no trigger pulse reached, and trigger pulses that were on the amplifier
  while auto mode fell back to software clocks;
* software clocks alone (``lsl``) are never ``ok``: they cannot see the devices' latencies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Verdict = Literal["ok", "suspect", "failed"]
VERDICTS: tuple[Verdict, ...] = ("ok", "suspect", "failed")


@dataclass(frozen=True)
class VerdictRules:
    """Thresholds of the plausibility checks (see the module docstring)."""

    max_drift_ppm: float = 500.0
    min_share: float = 0.95
    min_share_failed: float = 0.5
    failed_miss_periods: float = 0.5
    suspect_miss_periods: float = 0.25
    max_uncertainty_ms: float = 1.0


@dataclass
class Judgement:
    """A verdict and why: ``reasons`` for anything short of ``ok``."""

    verdict: Verdict = "ok"
    reasons: list[str] = field(default_factory=list)

    def suspect(self, why: str) -> None:
        self.reasons.append(why)
        if self.verdict == "ok":
            self.verdict = "suspect"

    def fail(self, why: str) -> None:
        self.reasons.append(why)
        self.verdict = "failed"


def judge(
    *,
    hardware: bool,
    fps: float,
    drift_ppm: float,
    frames_total: int,
    frames_aligned: int,
    frames_in_ecg_gap: int,
    residual_max_ms: float | None,
    uncertainty_ms: float | None,
    pulses_explained: tuple[int, int] | None,
    unaligned_segments: list[str],
    strobe_shares: list[tuple[str, float]],
    fallback_with_pulses: bool,
    rules: VerdictRules = VerdictRules(),
) -> Judgement:
    """Apply the checks of the module docstring; ``pulses_explained`` is (matched, expected)."""
    j = Judgement()
    period_ms = 1e3 / fps
    if frames_aligned == 0:
        j.fail("no frame could be aligned")
        return j
    if hardware and drift_ppm == drift_ppm and abs(drift_ppm) >= 0.99 * rules.max_drift_ppm:
        j.suspect(
            f"drift {drift_ppm:.0f} ppm sits at the physical limit ({rules.max_drift_ppm:.0f} ppm): the trigger pulses "
            "do not pin it (too few, or too close together)"
        )
    elif drift_ppm == drift_ppm and abs(drift_ppm) > rules.max_drift_ppm:
        j.fail(
            f"drift {drift_ppm:.0f} ppm is beyond what clock crystals do (> {rules.max_drift_ppm:.0f} ppm): "
            "samples were assigned to the wrong time (a gap or reset the data does not show?)"
        )
    usable = max(frames_total - frames_in_ecg_gap, 1)
    share = frames_aligned / usable
    if share < rules.min_share_failed:
        j.fail(f"only {frames_aligned} of {usable} frames outside ECG gaps were aligned ({share:.0%})")
    elif share < rules.min_share:
        j.suspect(f"{usable - frames_aligned} of {usable} frames outside ECG gaps were not aligned ({1 - share:.1%})")
    for what in unaligned_segments:
        j.suspect(what)
    if hardware and residual_max_ms is not None and residual_max_ms == residual_max_ms:
        if residual_max_ms > rules.failed_miss_periods * period_ms:
            j.fail(
                f"the fitted line misses an observation by {residual_max_ms:.2f} ms, over half a frame period "
                f"({period_ms / 2:.2f} ms): frames or pulses are numbered wrongly"
            )
        elif residual_max_ms > rules.suspect_miss_periods * period_ms:
            j.suspect(f"the fitted line misses an observation by {residual_max_ms:.2f} ms (> a quarter frame period)")
    if not hardware:
        j.suspect(
            "software clocks only (LSL): the devices' latency difference is invisible to them, expect tens of ms; "
            "wire the trigger box (LED + TTL) or the camera's strobe output for a sure alignment"
        )
    if hardware and uncertainty_ms is not None and uncertainty_ms != uncertainty_ms:
        j.suspect(
            "no clock line meets all the pulse and strobe observations, even widened by 10 ms: how sure is unknown"
        )
    if hardware and uncertainty_ms is not None and uncertainty_ms == uncertainty_ms:
        if uncertainty_ms > rules.failed_miss_periods * period_ms:
            j.fail(
                f"alignment uncertainty {uncertainty_ms:.2f} ms is over half a frame period ({period_ms / 2:.2f} ms): "
                "frames cannot even be numbered surely; add trigger pulses or wire the strobe"
            )
        elif uncertainty_ms > rules.max_uncertainty_ms:
            j.suspect(
                f"alignment uncertainty {uncertainty_ms:.2f} ms (the spread of all clock lines the observations allow) "
                "exceeds "
                f"{rules.max_uncertainty_ms:g} ms: too few pulses, or their edges fall between exposures "
                "(use the strobe output, a longer exposure or more trigger pulses)"
            )
    if pulses_explained is not None:
        matched, expected = pulses_explained
        if expected and matched / expected < rules.min_share:
            j.suspect(f"only {matched} of {expected} trigger pulses are explained by the fit")
    for name, s in strobe_shares:
        if s < rules.min_share:
            j.suspect(f"{name}: only {s:.0%} of the frames have their strobe edge where the fit puts them")
    if fallback_with_pulses:
        j.suspect("the amplifier recorded trigger pulses but no hardware alignment succeeded; fell back to LSL clocks")
    return j
