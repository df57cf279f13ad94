"""The review window's tracks: plots under the video on one time axis (video time, s), with a cursor.

From top to bottom: the marks (spotted candidates, stimulus markers, one row per coder, the draft
being marked), the spotter's score (with ``--model``), per-ROI motion of the front end (a heat
map, one row per ROI), the ECG with its R-peaks, heart rate and HR slope. The plots are linked on
x; a vertical line in each is the current frame. Clicking a plot moves the cursor there.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QWidget

from mecg.app.review_data import EcgTrack, Marker, MotionTrack, ScoreTrack, frames_to_s
from mecg.app.review_model import Candidate, Draft
from mecg.session import Annotation

pg.setConfigOptions(imageAxisOrder="row-major", antialias=False, background="w", foreground="k")

#: Seconds of video shown by default around the cursor.
VIEW_S = 12.0
ME_COLOR = (215, 48, 39)
MAE_COLOR = (49, 130, 189)
CANDIDATE_COLOR = (120, 120, 120)
DRAFT_COLOR = (255, 190, 0)
CURSOR_COLOR = (0, 160, 0)
TRIGGER_COLOR = (230, 120, 0)
STIMULUS_COLOR = (0, 140, 200)
AXIS_WIDTH = 92


def _brush(kind: str, alpha: int) -> pg.QtGui.QBrush:
    return pg.mkBrush(*(ME_COLOR if kind == "ME" else MAE_COLOR), alpha)


class ReviewTracks(pg.GraphicsLayoutWidget):
    """All tracks; ``seek_requested(frame)`` when a plot is clicked."""

    seek_requested = Signal(int)

    def __init__(self, fps_hz: float, n_frames: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.fps_hz, self.n_frames = fps_hz, n_frames
        self.duration_s = n_frames / fps_hz
        self.plots: dict[str, pg.PlotItem] = {}
        self.notes: dict[str, pg.TextItem] = {}
        self.cursors: list[pg.InfiniteLine] = []
        self._mark_items: list[pg.GraphicsObject] = []
        self.row_names: list[str] = []
        #: What the marks plot shows, by row: ``(onset, offset)`` frames of each bar.
        self.drawn: dict[str, list[tuple[int, int]]] = {}
        self.ci.setSpacing(2)
        self.marks = self._plot("marks", "marks", height=130)
        self.score = self._plot("score", "ME score", height=80)
        self.motion = self._plot("motion", "motion (ROI)", height=170)
        small = QFont()
        small.setPointSize(7)
        self.motion.getAxis("left").setStyle(tickFont=small)
        self.ecg = self._plot("ecg", "ECG (mV)", height=120)
        self.hr = self._plot("hr", "HR bpm", height=90)
        self.hrs = self._plot("hrs", "HRS bpm/s", height=110)
        self.hrs.setLabel("bottom", "video time (s)")
        self.hrs.getAxis("bottom").setStyle(showValues=True)
        self.score.hide()
        for p in self.plots.values():
            if p is not self.marks:
                p.setXLink(self.marks)
        self.marks.setXRange(0, min(VIEW_S, self.duration_s), padding=0)
        self.motion_image = pg.ImageItem()
        self.motion.addItem(self.motion_image)
        self.ecg_curve = self.ecg.plot(pen=pg.mkPen((30, 30, 30), width=1), connect="finite")
        self.ecg_curve.setClipToView(True)
        self.ecg_curve.setDownsampling(auto=True, method="peak")
        self.peaks = pg.ScatterPlotItem(size=8, brush=pg.mkBrush(220, 30, 30), pen=None, symbol="t")
        self.ecg.addItem(self.peaks)
        self.hr_curve = self.hr.plot(pen=pg.mkPen((176, 24, 24), width=1.5), connect="finite")
        self.hrs_curve = self.hrs.plot(pen=pg.mkPen((120, 60, 160), width=1.5), connect="finite")
        self.score_curve = self.score.plot(pen=pg.mkPen((20, 20, 20), width=1.5))
        self.threshold_line = pg.InfiniteLine(angle=0, pen=pg.mkPen((200, 0, 0), style=Qt.PenStyle.DashLine))
        self.score.addItem(self.threshold_line)
        self.scene().sigMouseClicked.connect(self._clicked)

    def _plot(self, key: str, label: str, height: int) -> pg.PlotItem:
        p = self.addPlot(row=len(self.plots), col=0)
        p.setLabel("left", label)
        p.getAxis("left").setWidth(AXIS_WIDTH)
        p.getAxis("bottom").setStyle(showValues=False)
        p.setMouseEnabled(x=True, y=False)
        p.hideButtons()
        p.setMenuEnabled(False)
        p.setPreferredHeight(height)
        p.setMinimumHeight(0.75 * height)
        p.setLimits(xMin=-1.0, xMax=self.duration_s + 1.0)
        cursor = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen(CURSOR_COLOR, width=2))
        cursor.setZValue(100)
        p.addItem(cursor, ignoreBounds=True)
        self.cursors.append(cursor)
        note = pg.TextItem("", color=(90, 90, 90), anchor=(0, 0))
        note.setParentItem(p.getViewBox())
        note.setPos(4, 2)
        self.notes[key] = note
        self.plots[key] = p
        return p

    def set_note(self, key: str, text: str) -> None:
        """A line of text in the corner of a track (a state: computing, not synced, an error)."""
        self.notes[key].setText(text)

    # -- cursor and view ---------------------------------------------------------------------
    def set_cursor(self, frame: int) -> None:
        """Move the cursor to ``frame``; the view follows when the cursor leaves it."""
        t = float(frames_to_s(frame, self.fps_hz))
        for c in self.cursors:
            c.setPos(t)
        lo, hi = self.marks.viewRange()[0]
        width = hi - lo
        if not lo <= t <= hi:
            start = min(max(0.0, t - 0.2 * width), max(0.0, self.duration_s - width))
            self.marks.setXRange(start, start + width, padding=0)

    def cursor_s(self) -> float:
        return float(self.cursors[0].value())

    def _clicked(self, event: object) -> None:
        pos = event.scenePos()
        for p in self.plots.values():
            if p.isVisible() and p.sceneBoundingRect().contains(pos):
                x = p.getViewBox().mapSceneToView(pos).x()
                self.seek_requested.emit(round(x * self.fps_hz))
                return

    # -- marks -------------------------------------------------------------------------------
    def set_marks(
        self,
        coders: dict[str, list[Annotation]],
        current: str,
        candidates: list[Candidate],
        draft: Draft | None,
        markers: list[Marker],
    ) -> None:
        """Redraw the marks: candidates, stimulus markers, one row per coder (``current`` bold), the draft."""
        p = self.marks
        for item in self._mark_items:
            p.removeItem(item)
        self._mark_items = []
        dt = 1.0 / self.fps_hz
        rows = ["spots", "stimulus", *coders]
        self.row_names = rows
        y_of = {name: len(rows) - 1 - i for i, name in enumerate(rows)}

        self.drawn = {name: [] for name in rows}

        def bars(on: list[int], off: list[int], y: float, brushes: list, pen: object = None) -> None:
            """Bars from frame ``on`` to the end of frame ``off`` in row ``y``."""
            self.drawn[rows[len(rows) - 1 - round(y)]] += list(zip(on, off))
            if not on:
                return
            item = pg.BarGraphItem(
                x0=np.array(on) * dt,
                x1=(np.array(off) + 1) * dt,
                y0=y - 0.35,
                height=0.7,
                brushes=brushes,
                pen=pen or pg.mkPen(None),
            )
            p.addItem(item)
            self._mark_items.append(item)

        def apexes(x: list[float], y: float) -> None:
            if x:
                item = pg.ScatterPlotItem(x=x, y=[y] * len(x), symbol="t", size=7, brush=pg.mkBrush(0, 0, 0), pen=None)
                p.addItem(item)
                self._mark_items.append(item)

        y = y_of["spots"]
        bars(
            [c.onset for c in candidates],
            [c.offset for c in candidates],
            y,
            [pg.mkBrush(*CANDIDATE_COLOR, 150) for _ in candidates],
            pg.mkPen((60, 60, 60), style=Qt.PenStyle.DashLine),
        )
        apexes([c.apex * dt for c in candidates], y)
        y = y_of["stimulus"]
        for m in markers:
            color = TRIGGER_COLOR if m.trigger else STIMULUS_COLOR
            line = pg.PlotCurveItem([m.t_s, m.t_s], [y - 0.4, y + 0.4], pen=pg.mkPen(color, width=2))
            p.addItem(line)
            self._mark_items.append(line)
            if not m.trigger:
                label = pg.TextItem(m.text, color=color, anchor=(0, 0.5))
                label.setPos(m.t_s + 0.02, y)
                p.addItem(label)
                self._mark_items.append(label)
        for coder, anns in coders.items():
            y = y_of[coder]
            alpha = 230 if coder == current else 120
            bars(
                [a.onset_frame for a in anns],
                [a.offset_frame for a in anns],
                y,
                [_brush(a.type, alpha) for a in anns],
                pg.mkPen((0, 0, 0), width=1.5) if coder == current else None,
            )
            apexes([a.apex_frame * dt for a in anns], y)
        if draft is not None and current in y_of:
            y = y_of[current]
            end = draft.offset if draft.offset is not None else (draft.apex if draft.apex is not None else draft.onset)
            bars([draft.onset], [end], y, [pg.mkBrush(*DRAFT_COLOR, 200)], pg.mkPen((150, 110, 0)))
            self.drawn["draft"] = self.drawn[current][-1:]
            del self.drawn[current][-1:]
            if draft.apex is not None:
                apexes([draft.apex * dt], y)
        labels = [(y_of[n], n + (" (editing)" if n == current else "")) for n in rows]
        p.getAxis("left").setTicks([labels])
        p.setYRange(-0.6, len(rows) - 0.4, padding=0)

    # -- data tracks -------------------------------------------------------------------------
    def set_motion(self, m: MotionTrack) -> None:
        """Heat map of per-ROI motion, each ROI scaled to its own 99th percentile."""
        mag = np.nan_to_num(m.mag.astype(np.float64))
        scale = np.percentile(mag, 99, axis=0) if mag.size else np.ones(mag.shape[1])
        img = np.clip(mag / np.maximum(scale, 1e-6), 0, 1).T[::-1]  # row 0 at the top: first ROI
        self.motion_image.setImage(img, levels=(0, 1), autoDownsample=True)
        self.motion_image.setColorMap(pg.colormap.get("viridis"))
        self.motion_image.setRect(0.0, -0.5, self.duration_s, float(len(m.rois)))
        n = len(m.rois)
        self.motion.getAxis("left").setTicks([[(n - 1 - i, r) for i, r in enumerate(m.rois)]])
        self.motion.setYRange(-0.5, n - 0.5, padding=0)
        self.set_note("motion", "")

    def set_ecg(self, e: EcgTrack) -> None:
        """ECG, R-peaks, HR and HRS; an ECG track without data shows its note in all three plots."""
        if not e.ok:
            for key in ("ecg", "hr", "hrs"):
                self.set_note(key, e.note)
            return
        self.ecg_curve.setData(e.t_s, e.ecg)
        self.peaks.setData(e.peaks_t_s, e.peaks_ecg)
        x = frames_to_s(np.arange(e.hr_bpm.size), self.fps_hz)
        self.hr_curve.setData(x, e.hr_bpm)
        self.hrs_curve.setData(x, e.hrs_bpm_per_s)
        for key in ("ecg", "hr", "hrs"):
            self.set_note(key, e.note)
        finite = e.ecg[np.isfinite(e.ecg)]
        if finite.size:
            lo, hi = np.percentile(finite, [0.5, 99.9])
            pad = 0.1 * (hi - lo + 1e-6)
            self.ecg.setYRange(lo - pad, hi + pad, padding=0)

    def set_score(self, s: ScoreTrack) -> None:
        self.score.show()
        self.score_curve.setData(frames_to_s(np.arange(s.score.size), self.fps_hz), s.score)
        self.threshold_line.setPos(s.threshold)
        self.score.setYRange(0, 1, padding=0.05)
        self.set_note("score", s.note)

    def shutdown(self) -> None:
        """Take the scene apart now (pyqtgraph's own cleanup)."""
        self.close()
