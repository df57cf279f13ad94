"""The quick check after a recording: is the file valid and complete, what does it hold, how well does it sync.

:func:`check_session` runs :func:`mecg.session.validate_session` (every chunk inside the file,
timestamps readable, the last frame decodes) and :func:`mecg.sync.synchronize` read-only (the
report of ``mecg sync --dry-run``: mode, residual RMS / max, pulses matched). It reads the whole
video once for the LED (about 1 s per recorded second at 150 fps 640x480), so the app runs it in a
worker thread. ``mecg sync FILE`` stores the alignment in the file afterwards.
"""

from __future__ import annotations

import os
from pathlib import Path

from mecg.errors import MecgError


def check_session(path: str | os.PathLike) -> dict:
    """``{"path", "valid", "problem", "complete", "streams": [...], "sync": {...} | None, "sync_error"}``."""
    from mecg.session import SessionError, validate_session
    from mecg.sync import synchronize

    out: dict = {"path": str(path), "valid": False, "problem": "", "complete": False, "streams": []}
    out["sync"], out["sync_error"] = None, ""
    try:
        s = validate_session(path)
    except (SessionError, OSError) as exc:
        out["problem"] = str(exc)
        return out
    with s:
        out["valid"], out["complete"] = True, s.complete
        out["streams"] = [
            {
                "key": st.key,
                "type": st.info.type,
                "kind": st.info.kind,
                "samples": st.sample_count,
                "rate_hz": round(st.effective_srate_hz, 2),
                "duration_s": round(st.duration_s, 2),
            }
            for st in s.streams.values()
        ]
        out["annotations"] = len(s.annotations)
        try:
            out["sync"] = synchronize(s, "auto").report()
        except (MecgError, ValueError, KeyError) as exc:
            out["sync_error"] = str(exc)
    return out


def format_check(r: dict) -> str:
    """The check as a short HTML text for the app."""
    name = Path(r["path"]).name
    if not r["valid"]:
        return f"<b style='color:#b00'>{name}: INVALID</b> — {r['problem']}"
    state = "complete" if r["complete"] else "<b style='color:#b00'>NOT closed cleanly</b>"
    lines = [f"<b>{name}</b>: valid, {state}"]
    for st in r["streams"]:
        what = "frames" if st["kind"] == "video" else "markers" if st["kind"] == "markers" else "samples"
        lines.append(f"&nbsp;&nbsp;{st['key']} ({st['type']}): {st['samples']} {what}, {st['rate_hz']:g} Hz measured")
    if r.get("annotations"):
        lines.append(f"&nbsp;&nbsp;{r['annotations']} annotations (the simulated participant's expressions)")
    sy = r["sync"]
    if sy is not None:
        rms = "n/a" if sy["residual_rms_ms"] is None else f"{sy['residual_rms_ms']:.3f} ms"
        mx = "n/a" if sy["residual_max_ms"] is None else f"{sy['residual_max_ms']:.3f} ms"
        colour = {"ok": "#070", "suspect": "#a60", "failed": "#b00"}.get(sy.get("verdict", ""), "#000")
        unc = "n/a" if sy.get("uncertainty_ms") is None else f"+-{sy['uncertainty_ms']:.3f} ms"
        lines.append(
            f"sync: <b style='color:{colour}'>{str(sy.get('verdict', '')).upper()}</b>, mode <b>{sy['mode']}</b>, "
            f"uncertainty {unc}, residuals RMS {rms}, max {mx}; pulses {sy['pulses_video']} in video, "
            f"{sy['pulses_ecg']} on the amplifier, {sy['pulses_matched']} matched; {sy['strobe_edges']} strobe edges"
        )
        lines += [f"&nbsp;&nbsp;<b style='color:{colour}'>reason:</b> {w}" for w in sy.get("reasons", [])]
        lines += [f"&nbsp;&nbsp;warning: {w}" for w in sy["warnings"]]
    else:
        lines.append(f"sync: not possible — {r['sync_error']}")
    return "<br>".join(lines)
