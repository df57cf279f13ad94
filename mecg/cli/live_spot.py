"""``mecg record --live-spot``: the lines and the summary it prints about live-spotted candidates."""

from __future__ import annotations

import json
import math

import numpy as np

from mecg.acquire.live_analysis import LiveAnalysis, LiveEvent


def _candidate(ev: LiveEvent) -> dict | None:
    try:
        d = json.loads(ev.text)
    except ValueError:
        return None
    return d if isinstance(d, dict) and d.get("event") == "spotted_candidate" else None


def candidate_line(ev: LiveEvent, produced_lsl: float, start_lsl: float) -> str:
    """One line for a spotted candidate ('' for other events): when, frames, score, HRS and the CCF's verdict."""
    d = _candidate(ev)
    if d is None:
        return ""
    at = d["apex_time_s"] - start_lsl
    hrs = d["hrs_apex_bpm_per_s"]
    mean = d["mean_hrs_bpm_per_s"]
    heart = "no HRS" if hrs is None else f"HRS {hrs:.2f} bpm/s" + ("" if mean is None else f" (mean {mean:.2f})")
    if d["ccf"] == "applied" and d["type"] == "ME":
        verdict = f"kept (eta {d['eta']:g})" if d["kept_by_ccf"] else f"rejected by the CCF (eta {d['eta']:g})"
    else:
        verdict = {"off": "no filter", "no ECG": "no ECG", "warm-up": "CCF warming up"}.get(d["ccf"], d["ccf"])
    late = produced_lsl - d["offset_time_s"]
    return (
        f"live: {d['type']} at {at:.2f} s (frames {d['onset']}-{d['offset']}, score {d['score']:.3g}), "
        f"{heart}, {verdict}; shown {late:.2f} s after its offset"
    )


def live_summary(analysis: LiveAnalysis) -> dict:
    """Counts, skipped analysis work and latency (s after each candidate's offset: median, p95, max; candidates of
    the warm-up left out, their number in ``in_warmup``) and a text line."""
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
