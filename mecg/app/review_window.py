"""The review window (``mecg review``): scrub a session's video frame by frame, see its tracks, and code.

The video is read lazily, one frame per step (:class:`~mecg.app.review_data.FrameReader`): opening
a 10-minute 150 fps session reads its first frame, not the video. Tracks that take long (per-ROI
motion of the front end, the ECG's R-peaks, the spotter's score) are computed in worker threads,
one after another, while the window stays usable. The current coder's annotations are edited
in a :class:`~mecg.app.review_model.ReviewState` (undo stack) and saved through the coder-set API
(:func:`mecg.session.coders.write_coder_set`) into the derivatives file beside the recording; the
recording itself is never written. Keys: :data:`mecg.app.review_panel.KEYS`.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import QElapsedTimer, Qt, QTimer
from PySide6.QtGui import QCloseEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSlider,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from mecg.app.review_data import (
    STORE_LOCK,
    EcgTrack,
    FrameReader,
    MotionTrack,
    ScoreTrack,
    ecg_track,
    motion_track,
    score_track,
    stimulus_markers,
)
from mecg.app.review_model import ReviewError, ReviewState, read_candidates
from mecg.app.review_panel import CodingPanel
from mecg.app.review_tracks import ReviewTracks
from mecg.app.worker import WorkerPool
from mecg.errors import MecgError
from mecg.session import open_session
from mecg.session.coders import RECORDING, check_coder_id, coder_sets, write_coder_set

#: Playback speeds offered (x real time).
SPEEDS = (0.1, 0.25, 0.5, 1.0)
#: Playback redraws a second (frames in between are skipped, not read).
PLAY_HZ = 30.0


def _explain(exc: BaseException) -> str:
    if isinstance(exc, MecgError):
        return str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename or ''}".rstrip(": ")
    return f"{type(exc).__name__}: {exc}"


class ReviewWindow(QMainWindow):
    """Review and code one session.

    ``path``: the recording; ``coder``: whose set is edited (created on first save); ``spots``: a
    spots CSV of ``mecg spot``; ``model``: a CMCL-Net checkpoint for the score track; ``motion``:
    False skips the motion track; ``interactive``: False prints errors instead of message boxes;
    ``start_frame``: the frame shown first.
    Raises :class:`MecgError` for a session, coder id or spots file that cannot be used.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        coder: str,
        *,
        spots: str | os.PathLike | None = None,
        model: str | os.PathLike | None = None,
        motion: bool = True,
        interactive: bool = True,
        start_frame: int = 0,
    ) -> None:
        super().__init__()
        self.path = Path(path)
        check_coder_id(coder)
        if coder == RECORDING:
            raise ReviewError(
                f"coder id {RECORDING!r} names the recording's own annotations, which are read-only; "
                "review them under your own coder id (--coder ID)"
            )
        self.coder = coder
        self.interactive = interactive
        self.errors: list[str] = []
        self.messages: list[str] = []
        self.session = open_session(self.path)
        try:
            self._load(spots)
        except BaseException:
            self.session.close()
            raise
        self.model_path = model
        self.busy: str | None = None  # what the worker is computing now
        self.saving = False
        self._close_after_save = False
        self._force_close = False
        self._closed = False
        self.ecg: EcgTrack | None = None
        self.motion: MotionTrack | None = None
        self.score: ScoreTrack | None = None
        self.workers = WorkerPool(self)
        self.setWindowTitle(f"mecg review — {self.path.name} — coder {coder}")
        self._build()
        self._shortcuts()
        self.frame = -1
        self.seek(start_frame)
        self._redraw_marks()
        # (track, what, work in a thread, what to do with its result on the UI thread), run one after another
        self._jobs: list[tuple[str, str, Callable[[], object], Callable[[object], None]]] = [
            ("ecg", "ECG, R-peaks and heart rate", lambda: ecg_track(self.path, self.fps), self._got_ecg)
        ]
        if motion:
            what = "motion features (front end; cached afterwards)"
            self._jobs.append(("motion", what, lambda: motion_track(self.path, self.fps), self._got_motion))
        else:
            self.tracks.set_note("motion", "motion track not computed (--no-motion)")
        if model is not None:
            self._jobs.append(("score", "spotter score", lambda: score_track(self.path, model), self._got_score))
        QTimer.singleShot(0, self._next_job)

    # -- loading -----------------------------------------------------------------------------
    def _load(self, spots: str | os.PathLike | None) -> None:
        s = self.session
        videos = s.find_streams(kind="video")
        if not videos:
            raise ReviewError(f"{self.path} has no video stream to review")
        preferred = s.annotated_stream
        self.video = (
            s.streams[preferred] if preferred in s.streams and preferred in {v.key for v in videos} else videos[0]
        )
        self.n_frames = self.video.sample_count
        if self.n_frames == 0:
            raise ReviewError(f"{self.path}: video stream {self.video.key!r} has no frames")
        self.fps = float(self.video.info.nominal_srate_hz or self.video.effective_srate_hz or 30.0)
        self.reader = FrameReader(self.video)
        self.coders = coder_sets(s)
        candidates, self.spots_note = (
            ([], "no --spots") if spots is None else read_candidates(spots, self.path.stem, self.n_frames)
        )
        self.state = ReviewState(self.coders.get(self.coder, []), candidates, self.fps, self.n_frames)
        self.markers = stimulus_markers(s, self.video)

    # -- building ----------------------------------------------------------------------------
    def _build(self) -> None:
        self.video_widget = pg.GraphicsLayoutWidget()
        self.video_box = self.video_widget.addViewBox(lockAspect=True, invertY=True, enableMouse=False)
        self.image = pg.ImageItem()
        self.video_box.addItem(self.image)
        self.video_widget.setMinimumSize(320, 240)
        self.video_widget.setFocusPolicy(Qt.FocusPolicy.StrongFocus)

        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, self.n_frames - 1)
        self.slider.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.slider.valueChanged.connect(self.seek)
        self.play_button = QPushButton("▶ play")
        self.play_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.play_button.clicked.connect(self.toggle_play)
        self.speed = QComboBox()
        self.speed.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        for v in SPEEDS:
            self.speed.addItem(f"{v:g}x", v)
        self.speed.setCurrentIndex(SPEEDS.index(0.25))
        self.speed.currentIndexChanged.connect(self._restart_clock)

        self.panel = CodingPanel(self.coder, self.spots_note)
        self.panel.apply_requested.connect(self.apply_labels)
        self.frame_label, self.aus, self.emotion = self.panel.frame_label, self.panel.aus, self.panel.emotion

        top = QSplitter(Qt.Orientation.Horizontal)
        top.addWidget(self.video_widget)
        top.addWidget(self.panel)
        top.setStretchFactor(0, 3)
        top.setStretchFactor(1, 2)
        controls = QHBoxLayout()
        controls.addWidget(self.play_button)
        controls.addWidget(self.speed)
        controls.addWidget(self.slider, 1)

        self.tracks = ReviewTracks(self.fps, self.n_frames)
        self.tracks.seek_requested.connect(self.seek)
        upper = QWidget()
        ul = QVBoxLayout(upper)
        ul.setContentsMargins(0, 0, 0, 0)
        ul.addWidget(top, 1)
        ul.addLayout(controls)
        main = QSplitter(Qt.Orientation.Vertical)
        main.addWidget(upper)
        main.addWidget(self.tracks)
        main.setStretchFactor(0, 2)
        main.setStretchFactor(1, 3)
        main.setSizes([360, 760])
        self.setCentralWidget(main)
        self.progress = QProgressBar()
        self.progress.setRange(0, 0)
        self.progress.setMaximumWidth(160)
        self.progress.hide()
        self.progress_label = QLabel("")
        self.statusBar().addPermanentWidget(self.progress_label)
        self.statusBar().addPermanentWidget(self.progress)
        self.resize(1400, 1120)

        self.play_timer = QTimer(self)
        self.play_timer.setInterval(round(1000 / PLAY_HZ))
        self.play_timer.timeout.connect(self._play_tick)
        self._clock = QElapsedTimer()
        self._play_from = 0
        self.busy_timer = QTimer(self)
        self.busy_timer.setInterval(1000)
        self.busy_timer.timeout.connect(self._show_busy)
        self._busy_since = 0.0

    def _shortcuts(self) -> None:
        fps = self.fps
        table: list[tuple[str | QKeySequence.StandardKey, Callable[[], None]]] = [
            ("Right", lambda: self.step(1)),
            ("Left", lambda: self.step(-1)),
            ("Shift+Right", lambda: self.step(10)),
            ("Shift+Left", lambda: self.step(-10)),
            ("PgDown", lambda: self.step(max(1, round(fps)))),
            ("PgUp", lambda: self.step(-max(1, round(fps)))),
            ("Home", lambda: self.seek(0)),
            ("End", lambda: self.seek(self.n_frames - 1)),
            ("Space", self.toggle_play),
            ("O", self.start_draft),
            ("A", lambda: self._edit(self.state.set_apex(self.frame))),
            ("F", lambda: self._edit(self.state.set_offset(self.frame, *self._labels()))),
            ("T", lambda: self._edit(self.state.toggle_type(self.frame))),
            ("Return", self.accept_candidate),
            ("Enter", self.accept_candidate),
            ("Backspace", lambda: self._edit(self.state.reject_at(self.frame))),
            ("Delete", lambda: self._edit(self.state.delete_at(self.frame))),
            ("Ctrl+Z", lambda: self._edit(self.state.undo())),
            ("Ctrl+S", self.save),
            ("Escape", lambda: self.video_widget.setFocus()),
        ]
        self._keys = []
        for key, fn in table:
            sc = QShortcut(QKeySequence(key), self)
            sc.setContext(Qt.ShortcutContext.WindowShortcut)
            sc.activated.connect(fn)
            self._keys.append(sc)

    # -- frames ------------------------------------------------------------------------------
    def seek(self, frame: int) -> None:
        """Show frame ``frame`` (clipped to the video); reads it unless it is cached."""
        f = max(0, min(int(frame), self.n_frames - 1))
        if f == self.frame:
            return
        self.frame = f
        self.image.setImage(self.reader.frame(f), autoLevels=False, levels=(0, 255))
        if self.slider.value() != f:
            self.slider.blockSignals(True)
            self.slider.setValue(f)
            self.slider.blockSignals(False)
        self.tracks.set_cursor(f)
        self._update_labels()

    def step(self, frames: int) -> None:
        """Move the cursor by ``frames`` (pauses playback)."""
        self.pause()
        self.seek(self.frame + frames)

    def toggle_play(self) -> None:
        if self.play_timer.isActive():
            self.pause()
        else:
            if self.frame >= self.n_frames - 1:
                self.seek(0)
            self._restart_clock()
            self.play_timer.start()
            self.play_button.setText("❚❚ pause")

    def pause(self) -> None:
        if self.play_timer.isActive():
            self.play_timer.stop()
            self.play_button.setText("▶ play")

    @property
    def playing(self) -> bool:
        return self.play_timer.isActive()

    def _restart_clock(self) -> None:
        self._clock.start()
        self._play_from = self.frame

    def _play_tick(self) -> None:
        speed = float(self.speed.currentData())
        target = self._play_from + int(self._clock.elapsed() / 1000.0 * speed * self.fps)
        if target >= self.n_frames - 1:
            self.seek(self.n_frames - 1)
            self.pause()
        else:
            self.seek(target)

    def _update_labels(self) -> None:
        f = self.frame
        times = self.ecg.frame_time_ecg_s if self.ecg is not None else None
        ecg_clock = None if times is None else (float(times[f]) if f < times.size else float("nan"))
        st = self.state
        self.panel.show_position(
            f, self.n_frames, self.fps, ecg_clock, st.annotation_at(f), st.draft, st.candidate_at(f)
        )

    # -- editing -----------------------------------------------------------------------------
    def _labels(self) -> tuple[str, str]:
        return self.panel.labels()

    def _edit(self, message: str) -> None:
        if message:
            self.say(message)
        self._redraw_marks()
        self._update_labels()

    def start_draft(self) -> None:
        """O: a new expression from the cursor, with an empty form."""
        self.panel.clear_form()
        self._edit(self.state.set_onset(self.frame))

    def accept_candidate(self) -> None:
        """Enter: the candidate under the cursor becomes an annotation (AUs and emotion from the form).

        In the form, Enter applies the form to the annotation under the cursor instead.
        """
        if self.panel.typing:
            self.apply_labels()
            return
        self._edit(self.state.accept_at(self.frame, *self._labels()))

    def apply_labels(self) -> None:
        """The form's AUs and emotion go to the annotation under the cursor."""
        self._edit(self.state.set_labels(self.frame, *self._labels()))
        self.video_widget.setFocus()

    def _redraw_marks(self) -> None:
        sets = {k: v for k, v in self.coders.items() if k != self.coder}
        sets[self.coder] = self.state.annotations
        self.tracks.set_marks(sets, self.coder, self.state.open_candidates, self.state.draft, self.markers)
        self.tracks.set_note(
            "marks", "" if self.state.candidates or self.spots_note == "no --spots" else self.spots_note
        )
        self._title()

    def _title(self) -> None:
        star = " *" if self.state.dirty else ""
        self.setWindowTitle(f"mecg review — {self.path.name} — coder {self.coder}{star}")

    def say(self, message: str) -> None:
        """A message in the status bar (and in :attr:`messages`)."""
        self.messages.append(message)
        self.statusBar().showMessage(message, 8000)

    def show_error(self, what: str, exc: BaseException | str) -> None:
        text = exc if isinstance(exc, str) else _explain(exc)
        self.errors.append(f"{what}: {text}")
        self.say(f"{what}: {text}")
        if self.interactive:
            QMessageBox.critical(self, f"mecg review — {what}", f"{what}:\n\n{text}")
        else:
            print(f"mecg review: {what}: {text}", file=sys.stderr, flush=True)

    # -- saving ------------------------------------------------------------------------------
    def save(self) -> None:
        """Ctrl+S: write the coder's set to the derivatives file beside the recording (in a worker thread)."""
        if self.saving:
            return
        rows = tuple(self.state.annotations)
        path, coder, video = self.path, self.coder, self.video.key

        def job() -> dict:
            with STORE_LOCK, open_session(path, writable=True) as s:
                write_coder_set(s, coder, list(rows), video, source="mecg review")
                return coder_sets(s)

        def done(sets: object) -> None:
            self.saving = False
            self.coders = dict(sets)  # type: ignore[call-overload]
            self.state.mark_saved(rows)
            self._redraw_marks()
            self.say(f"saved {len(rows)} annotations of coder {coder} to {self.session.derivatives_path.name}")
            if self._close_after_save:
                self.close()

        def failed(exc: BaseException) -> None:
            self.saving = False
            self._close_after_save = False
            self.show_error("save", exc)

        self.saving = True
        self.say("saving…" + (" (waiting for the features being stored)" if STORE_LOCK.locked() else ""))
        self.workers.submit(job, done, failed, name="mecg-review-save")

    # -- background tracks -------------------------------------------------------------------
    def _next_job(self) -> None:
        if not self._jobs:
            self.busy = None
            self.progress.hide()
            self.progress_label.setText("")
            self.busy_timer.stop()
            return
        key, what, fn, on_done = self._jobs.pop(0)
        self.busy = what
        self._busy_since = time.monotonic()
        self.progress.show()
        self._show_busy()
        self.busy_timer.start()
        self.tracks.set_note(key, f"computing {what}…")

        def ok(result: object) -> None:
            if self._closed:
                return
            try:
                on_done(result)
            finally:
                self._next_job()

        def bad(exc: BaseException) -> None:
            if self._closed:
                return
            self.tracks.set_note(key, f"{what}: {_explain(exc)}")
            if key == "score":
                self.tracks.score.show()
            self.errors.append(f"{what}: {_explain(exc)}")
            self.say(f"{what}: {_explain(exc)}")
            self._next_job()

        self.workers.submit(fn, ok, bad, name="mecg-review-track")

    def _show_busy(self) -> None:
        if self.busy:
            self.progress_label.setText(f"computing {self.busy}: {time.monotonic() - self._busy_since:.0f} s")

    def _got_ecg(self, e: object) -> None:
        assert isinstance(e, EcgTrack)
        self.ecg = e
        self.tracks.set_ecg(e)
        self._update_labels()

    def _got_motion(self, m: object) -> None:
        assert isinstance(m, MotionTrack)
        self.motion = m
        self.tracks.set_motion(m)

    def _got_score(self, s: object) -> None:
        assert isinstance(s, ScoreTrack)
        self.score = s
        self.tracks.set_score(s)

    @property
    def idle(self) -> bool:
        """True when no track is being computed and nothing is being saved."""
        return self.busy is None and not self._jobs and not self.saving

    # -- closing -----------------------------------------------------------------------------
    def close_without_asking(self) -> None:
        """Close now, dropping unsaved changes (scripted runs)."""
        self._force_close = True
        self.close()

    def _ask_unsaved(self) -> QMessageBox.StandardButton:
        n = len(self.state.annotations)
        return QMessageBox.question(
            self,
            "mecg review — unsaved changes",
            f"Coder {self.coder}'s set ({n} annotations) has unsaved changes. Save them before closing?",
            QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Save,
        )

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.saving:
            self._close_after_save = True
            event.ignore()
            return
        if self.state.dirty and not self._force_close:
            answer = self._ask_unsaved()
            if answer == QMessageBox.StandardButton.Cancel:
                event.ignore()
                return
            if answer == QMessageBox.StandardButton.Save:
                self._close_after_save = True
                self.save()
                event.ignore()
                return
        self._closed = True
        self.pause()
        self.busy_timer.stop()
        self.tracks.shutdown()
        self.video_widget.close()
        self.session.close()
        event.accept()
