"""``mecg record --live-spot``: the lines and the summary it prints about live-spotted candidates."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

from mecg.cli.argtypes import bounded
from mecg.errors import MecgError

if TYPE_CHECKING:  # imported by `mecg record` / `mecg app` at start: the heavy modules only when live spotting runs
    from mecg.acquire.live_analysis import LiveAnalysis, LiveEvent


def add_live_spot_arguments(p: argparse.ArgumentParser) -> None:
    """``--live-spot [baseline|MODEL.pt]`` and ``--ccf-eta`` (``mecg record`` and ``mecg app``)."""
    s = p.add_argument_group("live spotting (docs/spotting.md 'Live spotting')")
    s.add_argument(
        "--live-spot",
        nargs="?",
        const="baseline",
        default=None,
        metavar="baseline|MODEL.pt",
        help="spot expressions while recording, with the baseline (default) or a CMCL-Net checkpoint; "
        "candidates are shown as they come and stored in the session as spotted-candidate events",
    )
    s.add_argument(
        "--ccf-eta",
        type=bounded(float, 0, 100, lo_open=True),
        default=None,
        metavar="ETA",
        help="candidate clip filter: reject an ME whose apex HR slope is not above ETA x the running mean "
        "(default: 2 with a model; the baseline only reports the HR slope unless given)",
    )


def check_live_spot(value: str | None) -> str | None:
    """The ``--live-spot`` value, checked: ``baseline`` or an existing model file (MecgError otherwise)."""
    if value is not None and value != "baseline" and not Path(value).is_file():
        raise MecgError(
            f"--live-spot {value}: no such model file; give a CMCL-Net checkpoint (.pt from `mecg train`) or 'baseline'"
        )
    return value


def _candidate(ev: LiveEvent) -> dict | None:
    try:
        d = json.loads(ev.text)
    except ValueError:
        return None
    return d if isinstance(d, dict) and d.get("event") == "spotted_candidate" else None


def candidate_line(ev: LiveEvent, produced_lsl: float, start_lsl: float) -> str:
    """One line for a spotted candidate ('' for other events): when, frames, score, HRS and the CCF's verdict."""
    if _candidate(ev) is None:
        return ""
    from mecg.model.live_spotter import LiveCandidate

    return "live: " + LiveCandidate.from_json(ev.text, "").describe(start_lsl, produced_lsl)


def live_summary(analysis: LiveAnalysis) -> dict:
    """Counts, skipped analysis work and latency (s after each candidate's offset: median, p95, max; candidates of
    the warm-up left out, their number in ``in_warmup``) and a text line."""
    import numpy as np

    cands = [(t, d) for t, ev in analysis.events() if (d := _candidate(ev)) is not None]
    # candidates of the warm-up are decided when it ends: their delay is by design, counted apart
    lat = np.array(
        [t - d["offset_time_s"] for t, d in cands if math.isfinite(d["offset_time_s"]) and not d.get("in_warmup")]
    )
    stats = analysis.stats
    out: dict = {
        "candidates": len(cands),
        "kept": sum(bool(d["kept_by_ccf"]) for _, d in cands),
        "me": sum(d["type"] == "ME" for _, d in cands),
        "mae": sum(d["type"] == "MaE" for _, d in cands),
        "latency_s": None,
        "in_warmup": sum(bool(d.get("in_warmup")) for _, d in cands),
        "skipped_samples": dict(stats.skipped_samples),
        "analysed_samples": dict(stats.fed_samples),
        "error": stats.error,
        "mode": analysis.mode,
    }
    if lat.size:
        out["latency_s"] = {
            "median": float(np.median(lat)),
            "p95": float(np.percentile(lat, 95)),
            "max": float(lat.max()),
        }
    when = (
        "no candidate"
        if not lat.size
        else f"shown {out['latency_s']['median']:.2f} s (median), {out['latency_s']['max']:.2f} s (max) after offset"
    )
    skipped = stats.skipped
    behind = f"{skipped} samples not analysed (analysis behind; not a recording loss)" if skipped else "nothing skipped"
    text = f"live spotting: {out['me']} ME and {out['mae']} MaE candidates ({out['kept']} kept), {when}; {behind}"
    text += f"; {stats.error}" if stats.error else ""
    out["text"] = text
    return out
