"""The live view: the camera image, the ECG scrolling with its R-peaks, heart rate and HR slope,
trigger pulses and stimulus markers as ticks, and the trigger/LED state.

It draws what the engine's :class:`~mecg.acquire.preview.StreamPreview` objects hold (no inlet
of its own): :meth:`LiveView.refresh` is called by the window's timer (20 Hz by default) and
costs a few ms of the UI thread (see benchmarks/bench_app.py). R-peaks are found at most twice a
second by the recorder's live detector (:mod:`mecg.acquire.live_heart_rate`): NeuroKit2's, as offline
analysis, so a mark sits on the R wave where the offline peak will be (a few ms per search; NeuroKit2
is imported in the background when the view is made). The HR slope is the offline definition
(:func:`mecg.model.heart_rate.hr_slope`, ``|d hr/dt|`` of the PCHIP through 60/RR) at the last beat
but one.

With live spotting on (``mecg app --live-spot``), the candidates the spotter decides while recording
are listed under the ECG as they come (:meth:`LiveView.show_candidates`), each with the HR slope the
filter saw and its verdict, the newest first, and marked on the ECG trace at their apex.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGridLayout, QHBoxLayout, QLabel, QListWidget, QVBoxLayout, QWidget

from mecg.acquire.live_heart_rate import ecg_channel, hr_from_peaks_bpm, r_peaks, warm_up
from mecg.acquire.preview import StreamPreview
from mecg.session.ecg_channel import stream_ecg_column
from mecg.session.live_events import LiveEvent

pg.setConfigOptions(imageAxisOrder="row-major", antialias=False, background="w", foreground="k")

#: Seconds of ECG on screen.
WINDOW_S = 8.0
#: Seconds between R-peak searches.
PEAKS_EVERY_S = 0.5
TRIGGER_COLOR = (230, 120, 0)
STIMULUS_COLOR = (0, 140, 200)
CANDIDATE_COLOR = (150, 0, 170)
#: Live-spotted candidates kept in the list.
MAX_CANDIDATES = 200


def _ecg_columns(p: StreamPreview) -> tuple[int, int | None]:
    """(ECG column, TRIG column or None) of a signal stream."""
    trig = next((i for i, lab in enumerate(p.info.channel_labels) if lab.upper() == "TRIG"), None)
    return ecg_channel(p.info), trig


def min_max_decimate(t: np.ndarray, y: np.ndarray, n_blocks: int = 800) -> tuple[np.ndarray, np.ndarray]:
    """At most ``2 * n_blocks`` points that draw like ``(t, y)``: each block's minimum and maximum.

    A trace of 8000 samples on a plot a few hundred pixels wide looks the same and costs a tenth
    to draw; QRS spikes are kept (unlike plain subsampling).
    """
    if y.size <= 2 * n_blocks:
        return t, y
    k = y.size // n_blocks
    m = k * n_blocks
    yb = y[-m:].reshape(n_blocks, k)
    out_y = np.empty(2 * n_blocks)
    out_y[0::2], out_y[1::2] = yb.min(axis=1), yb.max(axis=1)
    return np.repeat(t[-m:].reshape(n_blocks, k)[:, 0], 2), out_y


def heart_rate_and_slope(peaks_s: np.ndarray) -> tuple[float | None, float | None]:
    """``(hr_bpm, hrs_bpm_per_s)``: median plausible RR of ``peaks_s`` (s); ``|d hr/dt|`` at the last beat but one."""
    if peaks_s.size < 3:
        return None, None
    hr = hr_from_peaks_bpm(peaks_s)
    if peaks_s.size < 4 or not np.all(np.diff(peaks_s) > 0):
        return hr, None
    from mecg.model.heart_rate import hr_slope

    # at the last beat but one: inside the HR curve (its end point has only a one-sided, often flat, slope)
    hrs = float(hr_slope(peaks_s, np.array([peaks_s[-2]]))[0])
    return hr, (hrs if math.isfinite(hrs) else None)


class LiveView(QWidget):
    """Camera image, ECG with R-peaks, HR / HR slope, trigger and stimulus ticks, LED state."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        warm_up()  # NeuroKit2 for the R-peaks, so the first search does not freeze the window for a second
        self.cpu_s = 0.0  # UI-thread CPU spent in refresh (s)
        self.refreshes = 0
        self._frame_ts = math.nan
        self._peaks_at = -math.inf
        self._peaks_s = np.zeros(0)
        self.hr_bpm: float | None = None
        self.hrs_bpm_per_s: float | None = None
        self.trigger_high = False
        self.n_triggers = 0

        # camera
        self.camera_widget = pg.GraphicsLayoutWidget()
        self.camera_box = self.camera_widget.addViewBox(lockAspect=True, invertY=True, enableMouse=False)
        self.image = pg.ImageItem()
        self.camera_box.addItem(self.image)
        self.camera_label = QLabel("camera: no video stream")
        self.led = QLabel()
        self.led.setFixedSize(18, 18)
        self.led_text = QLabel("trigger: --")
        self._led_on: bool | None = None
        self._set_led(False)

        # ECG + trigger
        self.ecg_plot = pg.PlotWidget()
        self.ecg_plot.setLabel("bottom", "time (s, 0 = newest sample)")
        self.ecg_plot.setLabel("left", "ECG (mV)")
        self.ecg_plot.setXRange(-WINDOW_S, 0, padding=0)
        self.ecg_plot.setMouseEnabled(x=False, y=False)
        self.ecg_plot.hideButtons()
        self.ecg_curve = self.ecg_plot.plot(pen=pg.mkPen((20, 20, 20), width=1))
        self.peaks_item = pg.ScatterPlotItem(size=9, brush=pg.mkBrush(220, 30, 30), pen=None, symbol="t")
        self.ecg_plot.addItem(self.peaks_item)
        self.trig_plot = pg.PlotWidget()
        self.trig_plot.setMaximumHeight(110)
        self.trig_plot.setXLink(self.ecg_plot)
        self.trig_plot.setYRange(-0.1, 1.3, padding=0)
        self.trig_plot.setMouseEnabled(x=False, y=False)
        self.trig_plot.hideButtons()
        self.trig_plot.setLabel("left", "TRIG")
        self.trig_plot.getAxis("left").setTicks([[(0, "0"), (1, "1")]])
        self.trig_curve = self.trig_plot.plot(pen=pg.mkPen(TRIGGER_COLOR, width=1.5))
        self._ticks: list[pg.InfiniteLine] = []
        self._tick_styles: list[tuple[tuple[int, int, int], str] | None] = []  # (colour, label) each tick shows
        self.ecg_label = QLabel("ECG: no ECG stream")

        self.hr_label = QLabel("-- bpm")
        self.hr_label.setStyleSheet("font-size: 22pt; font-weight: bold; color: #b01818;")
        self.hrs_label = QLabel("HR slope -- bpm/s")
        self.hrs_label.setStyleSheet("font-size: 12pt;")
        self.markers_label = QLabel("")
        self.markers_label.setWordWrap(True)
        self.candidates_label = QLabel("")
        self.candidates = QListWidget()
        self.candidates.setMaximumHeight(120)
        self.candidates.setVisible(False)
        self.candidates_label.setVisible(False)
        self._n_events = 0
        self._apexes: list[tuple[float, str]] = []  # (apex time on the LSL clock, type) of the candidates shown

        left = QVBoxLayout()
        left.addWidget(self.camera_widget, 1)
        row = QHBoxLayout()
        row.addWidget(self.led)
        row.addWidget(self.led_text, 1)
        left.addLayout(row)
        left.addWidget(self.camera_label)
        right = QVBoxLayout()
        head = QGridLayout()
        head.addWidget(self.hr_label, 0, 0)
        head.addWidget(self.hrs_label, 0, 1)
        head.addWidget(self.ecg_label, 1, 0, 1, 2)
        right.addLayout(head)
        right.addWidget(self.ecg_plot, 3)
        right.addWidget(self.trig_plot, 1)
        right.addWidget(self.markers_label)
        right.addWidget(self.candidates_label)
        right.addWidget(self.candidates, 1)
        lay = QHBoxLayout(self)
        lay.addLayout(left, 2)
        lay.addLayout(right, 3)

    # -- drawing ----------------------------------------------------------------------------------
    def _set_led(self, on: bool) -> None:
        if self._led_on is on:  # a style sheet re-polishes the widget: set it only on a change
            return
        self._led_on = on
        color = "#ffb000" if on else "#505050"
        self.led.setStyleSheet(f"background: {color}; border-radius: 9px; border: 1px solid #222;")

    def _tick(self, i: int, x: float, color: tuple[int, int, int], label: str) -> None:
        while len(self._ticks) <= i:
            line = pg.InfiniteLine(angle=90, movable=False, label="", labelOpts={"position": 0.92})
            # the label is the marker's text, not the line's value: not rewritten (to "") at every move
            line.sigPositionChanged.disconnect(line.label.valueChanged)
            self.ecg_plot.addItem(line)
            self._ticks.append(line)
            self._tick_styles.append(None)
        line = self._ticks[i]
        if self._tick_styles[i] != (color, label):  # pen and label only when they change: the refresh moves the line
            line.setPen(pg.mkPen(color, width=2, style=Qt.PenStyle.DashLine))
            line.label.setText(label)
            line.label.setColor(color)
            self._tick_styles[i] = (color, label)
        line.setPos(x)
        line.setVisible(True)

    def show_candidates(self, events: list[tuple[float, LiveEvent]], start_lsl: float) -> int:
        """List the live-spotted candidates among ``events`` (``(produced_lsl, event)``, as
        :meth:`mecg.acquire.live_analysis.LiveAnalysis.events` gives them) not shown yet; the number added.

        ``start_lsl``: the recording's start (s, LSL clock), times are shown from it.
        """
        from mecg.model.live_spotter import LiveCandidate

        if len(events) < self._n_events:  # a new recording: a new list
            self.candidates.clear()
            self._apexes = []
            self._n_events = 0
        added = 0
        for produced, ev in events[self._n_events :]:
            if '"spotted_candidate"' not in ev.text:
                continue
            c = LiveCandidate.from_json(ev.text, "")
            self.candidates.insertItem(0, c.describe(start_lsl, produced))
            self._apexes.append((c.apex_time_s, c.spot.type))
            added += 1
        self._n_events = len(events)
        while self.candidates.count() > MAX_CANDIDATES:
            self.candidates.takeItem(self.candidates.count() - 1)
        self._apexes = self._apexes[-MAX_CANDIDATES:]
        self.candidates.setVisible(True)
        self.candidates_label.setVisible(True)
        self.candidates_label.setText(f"live-spotted candidates: {len(self._apexes)} (newest first)")
        return added

    def clear(self) -> None:
        """Forget what is drawn (no engine)."""
        self.ecg_curve.setData([], [])
        self.trig_curve.setData([], [])
        self.peaks_item.setData([], [])
        for line in self._ticks:
            line.setVisible(False)
        self.image.clear()
        self._frame_ts = math.nan

    def shutdown(self) -> None:
        """Take the plots' scenes apart now (pyqtgraph's own cleanup), so nothing of them outlives Qt at exit."""
        for view in (self.camera_widget, self.ecg_plot, self.trig_plot):
            view.close()

    def refresh(self, previews: dict[str, StreamPreview], now_lsl: float) -> None:
        """Draw the newest data of ``previews`` (by stream key); ``now_lsl``: the LSL clock now (s)."""
        c0 = time.thread_time()
        try:
            self._refresh(previews, now_lsl)
        finally:
            self.cpu_s += time.thread_time() - c0
            self.refreshes += 1

    def _refresh(self, previews: dict[str, StreamPreview], now_lsl: float) -> None:
        video = next((p for p in previews.values() if p.kind == "video"), None)
        signals = [p for p in previews.values() if p.kind == "signal"]
        ecg = next((p for p in signals if stream_ecg_column(p.info) is not None), signals[0] if signals else None)
        markers = [p for p in previews.values() if p.kind == "markers"]

        if video is not None:
            got = video.frame()
            if got is not None and got[0] != self._frame_ts:
                self._frame_ts, img = got
                self.image.setImage(img, autoLevels=False, levels=(0, 255))
                h, w = video.frame_shape[:2]
                age = (now_lsl - self._frame_ts) * 1e3
                self.camera_label.setText(
                    f"{video.info.name}: {w}x{h} shown at 1/{video.step}, frame {age:.0f} ms old, "
                    f"{video.received} frames"
                )
        else:
            self.camera_label.setText("camera: no video stream")

        t_ref = now_lsl
        if ecg is not None:
            t, x = ecg.signal(WINDOW_S)
            if t.size:
                t_ref = float(t[-1])
                col, trig = _ecg_columns(ecg)
                y = x[:, col].astype(np.float64)
                self.ecg_curve.setData(*min_max_decimate(t - t_ref, y))
                if trig is not None:
                    self.trig_curve.setData(*min_max_decimate(t - t_ref, x[:, trig].astype(np.float64)))
                    self.trigger_high = bool(x[-1, trig] > 0.5)
                now = time.monotonic()
                if now - self._peaks_at >= PEAKS_EVERY_S:
                    self._peaks_at = now
                    srate = ecg.info.nominal_srate_hz or (t.size - 1) / max(t[-1] - t[0], 1e-9)
                    idx = r_peaks(y, srate)
                    self._peaks_s = t[idx] if idx.size else np.zeros(0)
                    self.hr_bpm, self.hrs_bpm_per_s = heart_rate_and_slope(self._peaks_s)
                    self.hr_label.setText(f"{self.hr_bpm:.0f} bpm" if self.hr_bpm else "-- bpm")
                    self.hrs_label.setText(
                        f"HR slope {self.hrs_bpm_per_s:.2f} bpm/s" if self.hrs_bpm_per_s is not None else "HR slope --"
                    )
                pk = self._peaks_s[self._peaks_s >= t[0]]
                if pk.size:
                    self.peaks_item.setData(pk - t_ref, np.interp(pk, t, y))
                else:
                    self.peaks_item.setData([], [])
                lag = (now_lsl - t_ref) * 1e3
                self.ecg_label.setText(
                    f"{ecg.info.name}: {ecg.info.nominal_srate_hz:g} Hz, {len(self._peaks_s)} R-peaks on screen, "
                    f"newest sample {lag:.0f} ms old"
                )
        else:
            self.ecg_label.setText("ECG: no ECG stream")

        n, lines = 0, []
        self.n_triggers = 0
        last_trigger = -math.inf
        for p in markers:
            for ts, text in p.markers(t_ref - WINDOW_S):
                is_trigger = text.startswith("pulse")
                if ts <= t_ref + 0.5:
                    self._tick(n, ts - t_ref, TRIGGER_COLOR if is_trigger else STIMULUS_COLOR, text)
                    n += 1
                if not is_trigger:
                    lines.append(f"{p.info.name}: {text}")
            trig = [ts for ts, text in p.markers() if text.startswith("pulse")]
            self.n_triggers += len(trig)
            if trig:
                last_trigger = max(last_trigger, trig[-1])
        for apex, kind in self._apexes:  # live-spotted candidates on the trace, at their apex
            if t_ref - WINDOW_S <= apex <= t_ref + 0.5:
                self._tick(n, apex - t_ref, CANDIDATE_COLOR, f"{kind} (live)")
                n += 1
        for line in self._ticks[n:]:
            line.setVisible(False)
        self._set_led(self.trigger_high)
        since = f", last {now_lsl - last_trigger:.1f} s ago" if math.isfinite(last_trigger) else ""
        state = "HIGH (LED on)" if self.trigger_high else "low"
        self.led_text.setText(f"trigger line {state}; {self.n_triggers} pulses seen{since}")
        self.markers_label.setText(("stimulus markers: " + "; ".join(lines[-4:])) if lines else "")
