"""The review window (mecg review), offscreen, driven by key presses: scrubbing, marking, candidates, undo, save.

Sessions are small synthetic trials (64x48 px, 30 fps, a few seconds). The window computes its
tracks in worker threads; tests wait on the window's own state (QTest.qWaitFor), never on sleeps.
"""

from __future__ import annotations

import csv
import hashlib
import os
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("PySide6")

from PySide6.QtCore import QEventLoop, Qt, QTimer
from PySide6.QtGui import QImage
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QMessageBox, QWidget

from mecg.app.main import dispose, quiet_qt_messages
from mecg.app.review_model import ReviewError, ReviewState, expression_type
from mecg.app.review_window import ReviewWindow
from mecg.cli.main import main as mecg_main
from mecg.session import Annotation, Stream, open_session
from mecg.session.coders import coder_sets, write_coder_set
from mecg.sync import synchronize, write_result
from mecg.synth import Subject, Trial, TrialConfig, write_trial

FPS = 30.0
SMALL = TrialConfig(duration_s=6.0, fps=FPS, width=64, height=48, trigger_gap_s=(0.8, 1.5))


@pytest.fixture(scope="module")
def qapp() -> QApplication:
    app = QApplication.instance() or QApplication([])
    quiet_qt_messages()
    return app


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic session (written once; each test copies it)."""
    return write_trial(Trial(Subject.random("S01", 7), 0, SMALL), tmp_path_factory.mktemp("rec") / "rec.h5")


@pytest.fixture
def session(recording: Path, tmp_path: Path) -> Path:
    p = tmp_path / "s01.h5"
    p.write_bytes(recording.read_bytes())
    return p


@pytest.fixture(scope="module")
def shared_session(recording: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One copy for the tests that never save (no Ctrl+S): its metadata is probed once, not once per test."""
    p = tmp_path_factory.mktemp("shared") / "s01.h5"
    p.write_bytes(recording.read_bytes())
    return p


def wait_for(pred: Callable[[], object], timeout_s: float) -> bool:
    """Run Qt's event loop until ``pred()`` holds (True) or ``timeout_s`` passed (False).

    An event loop (which lets the worker threads run), checking ``pred`` every 10 ms.
    """
    if pred():
        return True
    loop = QEventLoop()
    poll = QTimer()
    poll.timeout.connect(lambda: loop.quit() if pred() else None)
    poll.start(10)
    limit = QTimer()
    limit.setSingleShot(True)
    limit.timeout.connect(loop.quit)
    limit.start(round(timeout_s * 1000))
    loop.exec()
    poll.stop()
    limit.stop()
    return bool(pred())


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def open_window(path: Path, **kw: object) -> ReviewWindow:
    kw.setdefault("motion", False)
    win = ReviewWindow(path, "C1", interactive=False, **kw)
    win.show()
    assert QTest.qWaitForWindowExposed(win, 5000)
    return win


def close(win: ReviewWindow) -> None:
    assert wait_for(lambda: win.idle, 60), win.errors
    win.close_without_asking()
    dispose(win)


def key(win: QWidget, k: Qt.Key, mod: Qt.KeyboardModifier = Qt.KeyboardModifier.NoModifier, n: int = 1) -> None:
    for _ in range(n):
        QTest.keyClick(win, k, mod)


def go(win: ReviewWindow, frame: int) -> None:
    """Move the cursor to ``frame`` with Home and Right presses."""
    key(win, Qt.Key.Key_Home)
    key(win, Qt.Key.Key_Right, n=frame)
    assert win.frame == frame


def write_spots(path: Path, rows: list[tuple[str, int, int, int, float, str]]) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["session", "onset", "apex", "offset", "score", "type", "kept_by_ccf"])
        for r in rows:
            w.writerow([*r, "true"])
    return path


# -- the model without Qt ----------------------------------------------------------------------
def test_me_rule() -> None:
    assert expression_type(0, 10, 15, 30.0) == "ME"  # 0.5 s onset->offset
    assert expression_type(0, 7, 40, 30.0) == "ME"  # onset->apex 0.233 s
    assert expression_type(0, 8, 16, 30.0) == "MaE"  # 0.533 s and 0.267 s
    st = ReviewState([], [], 30.0, 100)
    assert "onset first" in st.set_apex(5) and st.draft is None
    st.set_onset(20)
    assert "before the onset" in st.set_apex(19)
    st.set_apex(22)
    assert "before the apex" in st.set_offset(21) and not st.annotations
    st.set_offset(25)
    assert st.annotations == [Annotation(20, 22, 25, "ME")] and st.dirty


# -- scrubbing ---------------------------------------------------------------------------------
def test_scrub_keys_land_on_the_right_frames(qapp: QApplication, shared_session: Path) -> None:
    win = open_window(shared_session)
    try:
        n = win.n_frames
        assert win.frame == 0
        key(win, Qt.Key.Key_Left)
        assert win.frame == 0  # clipped
        key(win, Qt.Key.Key_Right)
        assert win.frame == 1
        key(win, Qt.Key.Key_Right, Qt.KeyboardModifier.ShiftModifier)
        assert win.frame == 11
        key(win, Qt.Key.Key_PageDown)
        assert win.frame == 41  # 1 s at 30 fps
        key(win, Qt.Key.Key_PageUp)
        key(win, Qt.Key.Key_Left, Qt.KeyboardModifier.ShiftModifier)
        assert win.frame == 1
        key(win, Qt.Key.Key_End)
        assert win.frame == n - 1 and win.slider.value() == n - 1
        key(win, Qt.Key.Key_Right)
        assert win.frame == n - 1
        key(win, Qt.Key.Key_Home)
        assert win.frame == 0
        # the picture is the frame: the image shows exactly frame 0 of the file
        with open_session(shared_session) as s:
            first, last = s.stream(kind="video").frames(0, 1)[0], s.stream(kind="video").frames(n - 1, n)[0]
        assert np.array_equal(win.image.image, first)
        win.slider.setValue(n - 1)  # the slider seeks too
        assert win.frame == n - 1 and np.array_equal(win.image.image, last)
        # play at 1x from frame 0 until it moves on, then pause with Space
        key(win, Qt.Key.Key_Home)
        win.speed.setCurrentIndex(win.speed.findData(1.0))
        key(win, Qt.Key.Key_Space)
        assert win.playing
        assert wait_for(lambda: win.frame >= 5, 5)
        key(win, Qt.Key.Key_Space)
        assert not win.playing
    finally:
        close(win)


def test_opening_a_long_session_reads_one_frame_on_the_ui_thread(
    qapp: QApplication, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Frames are read lazily: opening shows frame 0 after reading it alone, however long the video."""
    cfg = TrialConfig(duration_s=40.0, fps=FPS, width=64, height=48, me_per_min=0.0, mae_per_min=0.0)
    path = write_trial(Trial(Subject.random("S02", 2), 0, cfg), tmp_path / "long.h5")
    ui = threading.get_ident()
    asked: list[tuple[int, int | None]] = []
    original = Stream.frames

    def spy(self: Stream, start: int = 0, stop: int | None = None, **kw: Any) -> np.ndarray:
        if threading.get_ident() == ui:
            asked.append((start, stop))
        return original(self, start, stop, **kw)  # forwards rows=/threads= unchanged

    monkeypatch.setattr(Stream, "frames", spy)
    win = open_window(path, motion=True)  # the motion track reads every frame, in its worker thread
    try:
        assert win.n_frames > 1000
        assert asked == [(0, 1)], asked  # one frame, read once, on the UI thread
        assert win.reader.reads == 1
        assert np.array_equal(win.image.image, original(win.video, 0, 1)[0])
        key(win, Qt.Key.Key_End)
        assert asked[-1] == (win.n_frames - 1, win.n_frames) and len(asked) == 2
        assert wait_for(lambda: win.idle, 120), win.errors
        assert win.motion is not None and win.motion.mag.shape == (win.n_frames, 12), win.errors
        assert len(asked) == 2  # the features were computed off the UI thread
    finally:
        close(win)


# -- coding ------------------------------------------------------------------------------------
def test_mark_onset_apex_offset_type_and_labels(qapp: QApplication, session: Path) -> None:
    win = open_window(session)
    try:
        go(win, 10)
        key(win, Qt.Key.Key_O)
        key(win, Qt.Key.Key_Right, n=3)
        key(win, Qt.Key.Key_A)
        assert win.tracks.drawn["draft"] == [(10, 13)]  # the draft is drawn while marking
        key(win, Qt.Key.Key_Right, n=4)
        win.aus.setText("AU12")
        win.emotion.setText("happiness")
        key(win, Qt.Key.Key_F)
        me = Annotation(10, 13, 17, "ME", "AU12", "happiness")  # 7 frames = 0.23 s: an ME by the rule
        assert win.state.annotations == [me]
        assert win.tracks.drawn["C1"] == [(10, 17)]  # in the coder's row of the marks track
        assert win.state.draft is None and "draft" not in win.tracks.drawn
        win.activateWindow()  # typed into the form, Enter applies it to the annotation under the cursor
        win.aus.setFocus()
        win.aus.selectAll()
        QTest.keyClicks(win.aus, "AU6+AU12")  # letters and arrows edit the text, they do not mark
        QTest.keyClick(win.aus, Qt.Key.Key_Left)
        key(win.aus, Qt.Key.Key_Return)
        assert win.frame == 17 and win.state.annotations == [replace(me, aus="AU6+AU12")]
        key(win, Qt.Key.Key_T)  # T toggles the annotation under the cursor
        assert win.state.annotations[0].type == "MaE"
        key(win, Qt.Key.Key_T)
        # a long one: 0.67 s onset->offset, 0.33 s onset->apex: a macro-expression by default
        go(win, 40)
        key(win, Qt.Key.Key_O)
        key(win, Qt.Key.Key_Right, n=10)
        key(win, Qt.Key.Key_A)
        key(win, Qt.Key.Key_Right, n=10)
        key(win, Qt.Key.Key_F)
        assert win.state.annotation_at(50).type == "MaE"
        assert len(win.tracks.drawn["C1"]) == 2
        # the form's AUs go to the annotation under the cursor
        win.aus.setText("AU4")
        win.emotion.setText("")
        win.apply_labels()
        assert win.state.annotation_at(45).aus == "AU4"
        assert win.state.annotation_at(12).aus == "AU6+AU12"
        assert "*" in win.windowTitle()
    finally:
        close(win)


def test_accept_and_reject_candidates_from_a_spots_csv(qapp: QApplication, session: Path, tmp_path: Path) -> None:
    spots = write_spots(
        tmp_path / "spots.csv",
        [
            ("s01", 20, 24, 30, 0.9, "ME"),
            ("s01", 60, 70, 90, 0.8, "MaE"),
            ("other", 5, 6, 7, 0.7, "ME"),  # another session's row: not shown
        ],
    )
    win = open_window(session, spots=spots)
    try:
        assert len(win.state.candidates) == 2 and win.tracks.drawn["spots"] == [(20, 30), (60, 90)]
        go(win, 10)
        key(win, Qt.Key.Key_Return)  # nothing under the cursor: nothing happens
        assert win.state.annotations == []
        go(win, 25)
        key(win, Qt.Key.Key_Return)
        assert win.state.annotations == [Annotation(20, 24, 30, "ME")]
        assert win.tracks.drawn["spots"] == [(60, 90)] and win.tracks.drawn["C1"] == [(20, 30)]
        go(win, 75)
        key(win, Qt.Key.Key_Backspace)
        assert win.tracks.drawn["spots"] == [] and [c.onset for c in win.state.rejected] == [60]
        assert win.state.annotations == [Annotation(20, 24, 30, "ME")]  # rejecting adds nothing
        key(win, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)  # undo the rejection
        assert len(win.tracks.drawn["spots"]) == 1 and win.state.rejected == []
    finally:
        close(win)


def test_delete_undo_save_and_reopen_without_writing_the_recording(
    qapp: QApplication, session: Path, tmp_path: Path
) -> None:
    before = sha256(session)
    with open_session(session, writable=True) as s:  # another coder's set, shown in its own row
        write_coder_set(s, "B", [Annotation(100, 104, 110, "ME")], s.stream(kind="video").key)
    win = open_window(session)
    try:
        assert "B" in win.tracks.row_names and win.tracks.drawn["B"] == [(100, 110)]
        assert "recording" in win.tracks.row_names  # the recording's own annotations
        for onset in (10, 40):
            go(win, onset)
            key(win, Qt.Key.Key_O)
            key(win, Qt.Key.Key_Right, n=2)
            key(win, Qt.Key.Key_A)
            key(win, Qt.Key.Key_Right, n=5)
            key(win, Qt.Key.Key_F)
        made = [Annotation(10, 12, 17, "ME"), Annotation(40, 42, 47, "ME")]
        assert win.state.annotations == made
        go(win, 44)
        key(win, Qt.Key.Key_Delete)
        assert win.state.annotations == made[:1] and len(win.tracks.drawn["C1"]) == 1
        key(win, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
        assert win.state.annotations == made and len(win.tracks.drawn["C1"]) == 2
        key(win, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
        assert wait_for(lambda: not win.saving, 30)
        assert not win.errors and not win.state.dirty and "*" not in win.windowTitle()
    finally:
        close(win)
    assert sha256(session) == before  # the recording was not written
    with open_session(session) as s:
        sets = coder_sets(s)
        assert sets["C1"] == made and sets["B"] == [Annotation(100, 104, 110, "ME")]
    win = open_window(session)  # reopened: the same marks
    try:
        assert win.state.annotations == made and not win.state.dirty
        assert win.tracks.drawn["C1"] == [(10, 17), (40, 47)]
    finally:
        close(win)


def test_closing_with_unsaved_changes_asks(qapp: QApplication, session: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = sha256(session)
    win = open_window(session)
    answers = [QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Save]
    asked: list[tuple] = []
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: asked.append(a) or answers.pop(0))
    try:
        go(win, 5)
        key(win, Qt.Key.Key_O)
        key(win, Qt.Key.Key_A)
        key(win, Qt.Key.Key_F)
        assert win.state.annotations == [Annotation(5, 5, 5, "ME")]
        win.close()  # Cancel: stays open, nothing written
        assert len(asked) == 1 and win.isVisible() and win.state.dirty
        win.close()  # Save: saves, then closes
        assert wait_for(lambda: not win.isVisible(), 30), win.errors
        assert len(asked) == 2
    finally:
        if win.isVisible():
            win.close_without_asking()
        dispose(win)
    assert sha256(session) == before
    with open_session(session) as s:
        assert coder_sets(s)["C1"] == [Annotation(5, 5, 5, "ME")]


# -- tracks ------------------------------------------------------------------------------------
def test_ecg_track_through_the_timeline_and_not_synced(qapp: QApplication, session: Path) -> None:
    win = open_window(session)
    try:
        assert wait_for(lambda: win.idle, 60), win.errors
        assert not win.ecg.ok and "not synced" in win.tracks.notes["ecg"].toPlainText()
    finally:
        close(win)
    with open_session(session, writable=True) as s:
        res = synchronize(s, "auto")
        assert res.verdict != "failed", res.reasons
        write_result(s, res)
    before = sha256(session)
    win = open_window(session)
    try:
        assert wait_for(lambda: win.idle, 60), win.errors
        e = win.ecg
        assert e.ok and e.peaks_t_s.size >= 5 and np.all(np.isfinite(e.peaks_t_s))
        assert np.all((e.peaks_t_s >= 0) & (e.peaks_t_s <= win.n_frames / FPS))
        assert 40 < np.nanmedian(e.hr_bpm) < 140 and e.hr_bpm.size == win.n_frames
        assert "ECG clock" in win.frame_label.text()
    finally:
        close(win)
    assert sha256(session) == before


def test_score_track_of_a_model_and_a_bad_model(qapp: QApplication, shared_session: Path, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from mecg.model.cmclnet import CMCLConfig, CMCLNet
    from mecg.model.frontend import FrontEndParams, default_k
    from mecg.model.train import save_checkpoint
    from mecg.model.windows import WindowParams

    torch.manual_seed(0)
    ck = tmp_path / "video.pt"
    spot = {"me_rise_s": 0.1, "me_fall_s": 0.2, "threshold": 0.45, "threshold_ccf": None, "eta": 2.0, "val_ap": 0.3}
    model = CMCLNet(CMCLConfig(mode="video", time_steps=8, dim=16, heads=2, layers=1, embed_dim=8))
    save_checkpoint(ck, model, WindowParams(time_steps=8), FrontEndParams(k_frames=default_k(FPS)), spot, {})
    win = open_window(shared_session, model=ck)
    try:
        assert wait_for(lambda: win.idle, 120), win.errors
        assert not win.errors and win.tracks.score.isVisible()
        sc = win.score.score
        assert sc.shape == (win.n_frames,) and np.all((sc >= 0) & (sc <= 1))
        assert win.tracks.threshold_line.value() == pytest.approx(0.45)
    finally:
        close(win)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    win = open_window(shared_session, model=junk)
    try:
        assert wait_for(lambda: win.idle, 60), win.errors
        assert win.score is None and "not a mecg model" in win.tracks.notes["score"].toPlainText()
        assert any("not a mecg model" in e and "Traceback" not in e for e in win.errors)
        key(win, Qt.Key.Key_Right)  # still usable
        assert win.frame == 1
    finally:
        close(win)


# -- the command -------------------------------------------------------------------------------
def test_user_errors_are_messages(
    qapp: QApplication,
    shared_session: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def run(*argv: str) -> str:
        assert mecg_main(["review", *argv]) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and "error:" in err
        return err

    assert "does not exist" in run(str(tmp_path / "nope.h5"))
    assert "does not exist" in run(str(shared_session), "--spots", str(tmp_path / "nope.csv"))
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    assert "lacks column" in run(str(shared_session), "--spots", str(bad), "--no-motion")
    far = write_spots(tmp_path / "far.csv", [("s01", 10, 12, 10_000, 0.5, "ME")])
    assert "outside the video" in run(str(shared_session), "--spots", str(far), "--no-motion")
    assert "read-only" in run(str(shared_session), "--coder", "recording", "--no-motion")
    assert "not valid" in run(str(shared_session), "--coder", "a b", "--no-motion")
    with pytest.raises(ReviewError):
        ReviewWindow(shared_session, "C1", spots=far, motion=False, interactive=False)
    monkeypatch.delenv("QT_QPA_PLATFORM")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr("sys.platform", "linux")
    assert "no display" in run(str(shared_session))


def test_screenshot_command(qapp: QApplication, shared_session: Path, tmp_path: Path) -> None:
    spots = write_spots(tmp_path / "spots.csv", [("s01", 20, 24, 30, 0.9, "ME")])
    png = tmp_path / "review.png"
    before = sha256(shared_session)
    args = ["--spots", str(spots), "--coder", "A", "--frame", "25", "--screenshot", str(png)]
    code = mecg_main(["review", str(shared_session), *args])
    assert code == 0 and png.is_file()
    img = QImage(str(png))
    assert img.width() >= 1000 and img.height() >= 700
    colours = {img.pixel(x, y) for x in range(0, img.width(), 7) for y in range(0, img.height(), 7)}
    assert len(colours) > 100  # the face, the heat map and the traces, not a blank window
    assert sha256(shared_session) == before
