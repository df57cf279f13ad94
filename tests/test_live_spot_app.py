"""The app's live view lists live-spotted candidates with the HR slope the filter saw (Qt offscreen)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("PySide6")

from PySide6.QtWidgets import QApplication

from mecg.acquire.live_analysis import LiveAnalysis
from mecg.app.lab import Lab
from mecg.app.live_view import LiveView
from mecg.app.main import dispose, quiet_qt_messages
from mecg.model.live_spotter import LiveCandidate, LiveSpotter
from mecg.model.spots import Spot
from mecg.session.live_events import LiveEvent


def _event(apex: int, kept: bool, hrs: float | None, t0: float = 100.0) -> LiveEvent:
    spot = Spot("s", apex - 4, apex, apex + 4, 0.3, "ME", kept, hrs)
    c = LiveCandidate(spot, t0 + apex / 30, t0 + (apex + 4) / 30, hrs, 2.0, 2.0, "applied", "baseline")
    return LiveEvent(c.to_json(), c.apex_time_s)


def test_live_view_lists_candidates_newest_first_with_their_hrs() -> None:
    app = QApplication.instance() or QApplication([])
    quiet_qt_messages()
    view = LiveView()
    try:
        assert not view.candidates.isVisibleTo(view)
        events = [(101.0, _event(30, True, 5.5)), (102.0, LiveEvent('{"event": "other"}', 0.0))]
        assert view.show_candidates(events, 100.0) == 1
        events.append((103.5, _event(75, False, 1.2)))
        assert view.show_candidates(events, 100.0) == 1 and view.show_candidates(events, 100.0) == 0
        first, second = view.candidates.item(0).text(), view.candidates.item(1).text()
        assert "ME at 2.50 s" in first and "HRS 1.20 bpm/s (mean 2.00)" in first and "rejected by the CCF" in first
        assert "ME at 1.00 s" in second and "HRS 5.50 bpm/s" in second and "kept (eta 2)" in second
        assert "after its offset" in first and "2 (newest first)" in view.candidates_label.text()
        assert view.show_candidates(events[:1], 100.0) == 1 and view.candidates.count() == 1  # a new recording
        app.processEvents()
    finally:
        view.shutdown()
        dispose(view)


def test_the_lab_builds_a_live_spotter_for_each_recording(tmp_path: Path) -> None:
    lab = Lab()
    assert lab._live_analysis(tmp_path / "a.h5") is None
    lab.live_spot, lab.ccf_eta = "baseline", 1.5
    live = lab._live_analysis(tmp_path / "P-01_x.h5")
    assert isinstance(live, LiveAnalysis) and isinstance(live.analyser, LiveSpotter)
    assert live.analyser.session == "P-01_x" and live.analyser.params.ccf_eta == 1.5
    assert lab._config(tmp_path / "a.h5", analysis=live).live.analysis is live
    assert live.process and live._proc is not None and live._proc.is_alive()  # started before recording
    live.finish()  # a recording that never began: its process ends
    assert not live._proc.is_alive()


def test_a_live_spotter_that_cannot_start_leaves_the_monitor_running(tmp_path: Path) -> None:
    """The model is loaded (and the analysis process started) before the monitor stops for recording: a bad
    model is a message, and the live view keeps showing the streams."""
    from mecg.acquire.recorder import StreamQuery
    from mecg.errors import MecgError

    lab = Lab()
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    lab.live_spot = str(bad)
    lab.selection = (StreamQuery(names=("ECG",)),)
    stopped: list[bool] = []
    lab._stop_engine = lambda: stopped.append(True)  # type: ignore[method-assign]
    with pytest.raises(MecgError):
        lab.start_recording(tmp_path / "r.h5")
    assert not stopped and not (tmp_path / "r.h5").exists()
