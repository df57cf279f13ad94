"""The lab app (mecg app), offscreen: simulated devices, recording through the UI's actions, health, closing.

The QApplication is driven by hand (processEvents loops with timeouts; pytest-qt is not a
dependency). Settings go to an INI file in tmp_path, never the user's. Each test's devices have
source_ids unique to the run and the app ticks only its own devices' streams, so LSL streams of
other tests on this machine are never recorded.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pylsl
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("PySide6")

from PySide6.QtGui import QImage, QKeySequence
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QMessageBox, QTableWidgetItem
from waiting import wait_until

from mecg.acquire.recorder import StreamStatus
from mecg.acquire.rig import RigConfig
from mecg.acquire.sim_truth import journal_path, read_journal
from mecg.app.health import HealthTracker
from mecg.app.main import dispose, quiet_qt_messages
from mecg.app.main_window import START_SHORTCUT, STOP_SHORTCUT, MainWindow
from mecg.app.settings import AppSettings
from mecg.session import validate_session

SIM = RigConfig(simulate=True, seed=3, fps=60.0, size=(160, 120), trigger_gap_s=(0.4, 0.9))  # small frames: cheap


@pytest.fixture(scope="module")
def qapp() -> QApplication:
    app = QApplication.instance() or QApplication([])
    quiet_qt_messages()
    return app


def pump(pred, timeout_s: float) -> bool:
    """Run the Qt event loop until ``pred()`` or the timeout; True if ``pred()`` became true."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        QApplication.processEvents()
        if pred():
            return True
        time.sleep(0.02)
    return bool(pred())


@pytest.fixture
def window(qapp: QApplication, tmp_path: Path):
    win = MainWindow(AppSettings(tmp_path / "settings.ini"), interactive=False)
    win.recording_panel.out_dir.setText(str(tmp_path / "sessions"))
    win.recording_panel.subject.setText("P-07")
    win.show()
    yield win
    win.close_without_asking()
    pump(lambda: not win.isVisible(), 20)
    dispose(win)


def stream(win: MainWindow, key: str) -> StreamStatus:
    """The recorder's status of one stream of the running lab."""
    return next(s for s in win.lab.status().streams if s.key == key)


def receiving(s: StreamStatus) -> bool:
    """Samples arrive and the stream is not stalled (markers: irregular, never stalled); no rate threshold."""
    return s.samples > 0 and (s.state == "ok" or s.kind == "markers")


def start_simulation(win: MainWindow) -> None:
    """Start the simulated lab from the app and wait until its three streams are watched and flowing."""
    win.start_devices(SIM)

    def flowing() -> bool:
        st = win.lab.status()
        return (
            st is not None
            and not win.busy
            and len(st.streams) == 3
            and all(s.state == "ok" or s.kind == "markers" for s in st.streams)
        )

    assert pump(flowing, 40), f"simulated streams not watched: {win.errors} {win.lab.status()}"


@pytest.mark.slow
def test_record_through_the_ui_then_check_and_screenshot(window: MainWindow, tmp_path: Path) -> None:
    win = window
    start_simulation(win)
    assert win.start_action.shortcut() == QKeySequence(START_SHORTCUT)
    assert win.stop_action.shortcut() == QKeySequence(STOP_SHORTCUT)
    assert not win.stop_action.isEnabled() and win.start_action.isEnabled()
    win.recording_panel.start_button.click()  # the Record button
    assert pump(lambda: win.lab.recording and not win.busy, 20), win.errors
    path = win.lab.last_path
    assert path is not None and path.parent == tmp_path / "sessions" and path.name.startswith("P-07_")
    # record a few seconds with the live view running
    assert pump(lambda: win.lab.status().elapsed_s > 4.0 and win.live.n_triggers >= 2, 30)
    assert pump(lambda: win.live.hr_bpm is not None, 10)
    assert 40 < win.live.hr_bpm < 150 and win.live._frame_ts == win.live._frame_ts  # a frame was drawn
    assert "REC" in win.recording_panel.state_label.text()
    # every stream is on the panel and receiving (behaviour, not speed: no rate threshold)
    st = win.lab.status()
    assert set(win.recording_panel.levels) == {s.key for s in st.streams} == {"ECG", "FaceCamera", "TriggerBox"}
    assert all(receiving(s) for s in st.streams), st.streams
    assert journal_path(path).exists()  # the simulated expressions are journaled: a killed app keeps them

    shot = tmp_path / "app.png"
    assert win.grab().save(str(shot))
    img = QImage(str(shot))
    assert img.width() >= 800 and img.height() >= 500
    colours = {img.pixel(x, y) for x in range(0, img.width(), 7) for y in range(0, img.height(), 7)}
    assert len(colours) > 100  # the camera image, the trace and the tables, not a blank window

    QTest.keySequence(win, QKeySequence(STOP_SHORTCUT))  # Ctrl+E
    assert win.busy or not win.lab.recording  # the shortcut started the stop
    assert pump(lambda: win.last_check is not None and not win.busy, 60), win.errors
    check = win.last_check
    assert check["valid"] and check["complete"], check
    assert {s["key"] for s in check["streams"]} == {"ECG", "FaceCamera", "TriggerBox"}
    assert check["sync"] is not None and check["sync"]["mode"] in ("strobe", "pulses"), check
    assert win.recording_panel.open_button.isEnabled()
    assert not win.errors
    assert any("annotations of the simulated participant written" in m for m in win.lab.messages), win.lab.messages
    assert not journal_path(path).exists()  # stored with the session: the journal is gone
    with validate_session(path) as s:
        assert s.complete and s.subject_id == "P-07"
        assert s.streams["ECG"].sample_count > 3000
        assert s.streams["FaceCamera"].sample_count > 200
        assert s.streams["TriggerBox"].sample_count >= 2
    # back to watching: the live view keeps going after the recording
    assert pump(lambda: win.lab.engine is not None and win.lab.engine.monitoring, 10)


@pytest.mark.slow
def test_disk_full_refused_killed_stream_turns_red_closing_asks_then_closes_the_file(
    window: MainWindow, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    win = window
    start_simulation(win)
    win.lab.min_free_mb = 1e12  # "disk full": refused up front, with the fix, and nothing written
    QTest.keySequence(win, QKeySequence(START_SHORTCUT))  # Ctrl+R
    assert pump(lambda: bool(win.errors) and not win.busy, 20)
    assert "free" in win.errors[-1] and "Traceback" not in win.errors[-1], win.errors
    assert not win.lab.recording and not list((tmp_path / "sessions").glob("*.h5"))
    assert pump(lambda: win.lab.engine is not None and win.lab.engine.monitoring, 20)  # watching again
    win.lab.min_free_mb = 0.0
    QTest.keySequence(win, QKeySequence(START_SHORTCUT))  # Ctrl+R
    assert pump(lambda: win.lab.recording and not win.busy, 20), win.errors
    assert pump(lambda: win.lab.status().elapsed_s > 1.5, 10)
    assert receiving(stream(win, "FaceCamera")) and win.recording_panel.levels.get("FaceCamera") is not None

    win.lab.devices.close_device("camera")  # the camera driver stops sending: its stream stalls
    table = win.recording_panel.table

    def health() -> QTableWidgetItem:
        row = next(r for r in range(table.rowCount()) if table.item(r, 0).text() == "FaceCamera")
        return table.item(row, table.columnCount() - 1)

    # frames dropped just before (a loaded machine) show first as "dropping samples", also red; then "stalled"
    assert pump(lambda: win.recording_panel.levels.get("FaceCamera") == "bad" and "stalled" in health().text(), 10), (
        win.recording_panel.levels,
        health().text(),
    )
    assert health().background().color().red() > 200
    assert health().background().color().green() < 150
    assert receiving(stream(win, "ECG"))  # the other streams go on

    answers = [QMessageBox.StandardButton.No, QMessageBox.StandardButton.Yes]
    asked = []
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: asked.append(a) or answers.pop(0))
    win.close()  # asks: No keeps recording
    QApplication.processEvents()
    assert len(asked) == 1 and win.isVisible() and win.lab.recording
    path = win.lab.last_path
    win.close()  # asks again: Yes stops, closes the file cleanly and closes the window
    assert len(asked) == 2 and not win.isVisible()
    assert win.lab.engine is None and win.lab.devices is None
    with validate_session(path) as s:
        assert s.complete and set(s.streams) == {"ECG", "FaceCamera", "TriggerBox"}


def test_settings_are_remembered(qapp: QApplication, tmp_path: Path) -> None:
    ini = tmp_path / "s.ini"
    win = MainWindow(AppSettings(ini), interactive=False)
    win.recording_panel.subject.setText("P-99")
    win.recording_panel.notes.setPlainText("calm session")
    win.recording_panel.out_dir.setText(str(tmp_path / "out"))
    win.streams.ecg_port.setText("/dev/ttyUSB7")
    win.streams.sim_fps.setValue(90)
    win.close()
    dispose(win)
    again = MainWindow(AppSettings(ini), interactive=False)
    try:
        assert again.recording_panel.subject.text() == "P-99"
        assert again.recording_panel.notes.toPlainText() == "calm session"
        assert again.recording_panel.out_dir.text() == str(tmp_path / "out")
        assert again.streams.ecg_port.text() == "/dev/ttyUSB7" and again.streams.sim_fps.value() == 90
    finally:
        again.close()
        dispose(again)
    assert ini.is_file()


def test_user_errors_are_messages_not_tracebacks(window: MainWindow, tmp_path: Path) -> None:
    win = window
    win.start_recording()  # nothing ticked
    assert win.errors and "no stream is ticked" in win.errors[-1]
    (tmp_path / "afile").write_text("x")
    win.recording_panel.out_dir.setText(str(tmp_path / "afile" / "sub"))
    win.streams.ecg_port.setText(str(tmp_path / "no-such-port"))
    win.streams.drivers_start.click()  # a port that does not exist: the driver says so
    assert pump(lambda: len(win.errors) >= 2 and not win.busy, 30)
    assert "starting the devices" in win.errors[-1] and "Traceback" not in win.errors[-1]
    assert str(tmp_path / "no-such-port") in win.errors[-1]
    win.streams.trigger_gap.setText("eight")
    win.streams.drivers_start.click()
    assert "MIN:MAX" in win.streams.devices_label.text()
    n = len(win.errors)
    win.streams.selection = lambda: (object(),)  # as if a stream were ticked: the output folder is checked
    win.start_recording()
    assert len(win.errors) == n + 1 and "cannot create the output folder" in win.errors[-1], win.errors
    assert not win.lab.recording
    assert (tmp_path / "afile").read_text() == "x"  # the bad output folder was not forced into being


def test_live_view_ticks_and_led_show_the_newest_marker(qapp: QApplication) -> None:
    """A tick keeps its pen and label while it scrolls and takes the next marker's when that one moves into it;
    the trigger LED follows the line."""
    from mecg.app.live_view import STIMULUS_COLOR, TRIGGER_COLOR, LiveView

    view = LiveView()
    try:
        view._tick(0, -2.0, TRIGGER_COLOR, "pulse 1")
        view._tick(0, -3.0, TRIGGER_COLOR, "pulse 1")
        line = view._ticks[0]
        assert line.value() == -3.0 and line.label.textItem.toPlainText() == "pulse 1"
        view._tick(0, -1.0, STIMULUS_COLOR, "stimulus A")  # the older marker left the window
        assert line.value() == -1.0 and line.label.textItem.toPlainText() == "stimulus A"
        assert line.pen.color().getRgb()[:3] == STIMULUS_COLOR and line.isVisible()
        for on, colour in ((True, "#ffb000"), (True, "#ffb000"), (False, "#505050")):
            view._set_led(on)
            assert colour in view.led.styleSheet()
    finally:
        dispose(view)


def _status(key: str, **kw: object) -> StreamStatus:
    base = dict(
        key=key,
        name=key,
        type="ECG",
        kind="signal",
        source_id="",
        hostname="",
        nominal_srate_hz=100.0,
        samples=1000,
        rate_hz=100.0,
        dropped=0,
        gaps=0,
        gap_s=0.0,
        first_ts=0.0,
        last_ts=10.0,
        clock_offsets=1,
        offset_ms=0.0,
        latency_ms=(1.0, 2.0, 3.0),
        state="ok",
        late=False,
    )
    base.update(kw)
    return StreamStatus(**base)


def test_health_rules() -> None:
    h = HealthTracker()
    assert h.judge(_status("a"), 0.0) == ("ok", "ok")
    assert h.judge(_status("a", state="stalled"), 1.0)[0] == "bad"
    assert h.judge(_status("a", state="waiting"), 1.0)[0] == "warn"
    assert h.judge(_status("a", dropped=3), 2.0)[0] == "bad"  # new drops: red for a while
    assert h.judge(_status("a", dropped=3), 6.0)[0] == "bad"
    assert h.judge(_status("a", dropped=3), 7.5) == ("ok", "ok")
    assert h.judge(_status("b", rate_hz=50.0), 0.0)[0] == "bad"  # half its nominal rate
    assert h.judge(_status("c", rate_hz=50.0, last_ts=1.0), 0.0)[0] == "ok"  # too early to judge
    assert h.judge(_status("m", kind="markers", nominal_srate_hz=0.0, rate_hz=0.0), 0.0)[0] == "ok"


@pytest.mark.slow
def test_mecg_app_command_records_and_saves_a_screenshot(tmp_path: Path) -> None:
    shot = tmp_path / "shot.png"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    cmd = [sys.executable, "-m", "mecg", "app", "--simulate", "--seed", "2", "--fps", "30", "--size", "160x120"]
    cmd += ["--trigger-gap", "0.5:1", "--record", "--out-dir", str(tmp_path / "out"), "--subject", "P-3"]
    cmd += ["--settings", str(tmp_path / "s.ini"), "--quit-after", "35", "--screenshot", str(shot)]
    cmd += ["--live-hz", "2"]  # the live view drawn twice a second is enough for a picture (20 Hz is tested above)
    # 35 s: the device processes start and their streams are seen before the recording starts (~3 s idle, over
    # 10 s on a loaded machine, over 20 s once on a slow and loaded one); quitting before that is an error
    # (exit 1), not an empty output folder
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr and "Fatal" not in p.stderr
    assert QImage(str(shot)).width() > 0
    files = list((tmp_path / "out").glob("P-3_*.h5"))
    assert len(files) == 1
    with validate_session(files[0]) as s:
        assert s.complete and set(s.streams) == {"ECG", "FaceCamera", "TriggerBox"}


def test_mecg_app_help_lists_the_record_options() -> None:
    p = subprocess.run([sys.executable, "-m", "mecg", "app", "--help"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0
    for opt in ("--simulate", "--ecg-port", "--camera", "--trigger-port", "--out-dir", "--screenshot", "--quit-after"):
        assert opt in p.stdout


@pytest.mark.slow
def test_ctrl_c_to_the_process_group_closes_the_recording_cleanly(tmp_path: Path) -> None:
    """Ctrl-C in the terminal (SIGINT to the app *and* its device process): file complete, annotated.

    SIGTERM takes the same path (one handler for both, and a device process that ignores both), checked without a
    second app process by test_sigterm_and_sigint_close_the_window_as_quit_after_does and the crash test.
    """
    sig = signal.SIGINT
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "mecg", "app", "--simulate", "--fps", "30", "--size", "160x120", "--record"]
    cmd += ["--me-per-min", "60", "--mae-per-min", "60"]  # expressions in the few seconds recorded
    cmd += ["--live-hz", "2"]  # the live view is not under test here (it is above): 2 refreshes a second, not 20
    cmd += ["--out-dir", str(out), "--settings", str(tmp_path / "s.ini"), "--quit-after", "60"]
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        files = wait_until(lambda: list(out.glob("*.h5")), 60, poll_s=0.2)
        assert files, "no recording started"
        t_rec = pylsl.local_clock()  # the recording runs since this moment at the latest (s, LSL clock)
        journal = journal_path(files[0])

        def recorded_enough() -> bool:
            """An expression shown wholly inside the recording and ending 2 s or more into it: the file holds
            an expression and over 1000 ECG samples (1000 Hz) when the signal comes."""
            entries = read_journal(journal) if journal.exists() else []
            return any(e["onset_s"] >= t_rec and e["offset_s"] >= t_rec + 2.0 for e in entries)

        assert wait_until(recorded_enough, 60, poll_s=0.2), "no expression journaled during the recording"
        os.killpg(proc.pid, sig)  # as a terminal does: every process of the group
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, err
    written = re.search(r"annotations of the simulated participant written: (\d+) ME, (\d+) MaE", err)
    assert written and int(written[1]) + int(written[2]) >= 1, err
    assert "Traceback" not in err, err
    (path,) = list(out.glob("*.h5"))
    with validate_session(path) as s:
        assert s.complete and s.streams["ECG"].sample_count > 1000


def ignored_signals(pid: int) -> set[int]:
    """The signals process ``pid`` ignores (Linux: the SigIgn mask of /proc/PID/status)."""
    mask = int(next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("SigIgn:"))[7:], 16)
    return {n for n in range(1, 64) if mask >> (n - 1) & 1}


def test_sigterm_and_sigint_close_the_window_as_quit_after_does(window: MainWindow) -> None:
    """One handler for SIGTERM and SIGINT: it closes the window without asking, as --quit-after does (a recording
    is closed cleanly and annotated: the Ctrl-C test above, end to end; that the device process ignores both:
    test_a_crashed_device_process_is_reported_and_the_app_goes_on)."""
    from mecg.app.main_window import install_signal_handlers, restore_signal_handlers

    win = window
    calls = []
    win.close_without_asking = lambda: calls.append(1) or MainWindow.close_without_asking(win)
    old = install_signal_handlers(win)
    try:
        assert old.keys() == {signal.SIGINT, signal.SIGTERM}
        assert signal.getsignal(signal.SIGINT) is signal.getsignal(signal.SIGTERM)  # one handler for both
        signal.raise_signal(signal.SIGTERM)
        assert pump(lambda: not win.isVisible(), 30), "SIGTERM did not close the window"
    finally:
        restore_signal_handlers(old)
    assert calls == [1]


def test_the_tested_qt_binding_does_not_leak_references(window: MainWindow) -> None:
    """PySide6 6.12.0 on CPython 3.11 drops a reference to None per Qt call; the pinned binding must not."""
    from mecg.app.qt_check import check_qt_binding, leaks_per_call

    assert leaks_per_call(2000) < 0.1
    check_qt_binding()
    for _ in range(20_000):  # far more than None's own count in a fresh 3.11 process (~7000)
        QApplication.processEvents()
    assert window.isVisible()


@pytest.mark.slow
def test_a_crashed_device_process_is_reported_and_the_app_goes_on(window: MainWindow) -> None:
    """The devices run in a child process: if it dies, every stream turns red and the window says why."""
    win = window
    start_simulation(win)
    assert win.lab.devices is not None and win.lab.devices.pid != os.getpid()
    if sys.platform.startswith("linux"):  # Ctrl-C or a SIGTERM to the process group: the app closes the recording
        assert {signal.SIGINT, signal.SIGTERM} <= ignored_signals(win.lab.devices.pid)  # and then stops it
    os.kill(win.lab.devices.pid, signal.SIGKILL)

    def levels() -> set:
        return {win.recording_panel.levels.get(k) for k in ("ECG", "FaceCamera")}

    assert pump(lambda: levels() == {"bad"}, 15), win.recording_panel.levels
    assert pump(lambda: "device process stopped" in win.statusBar().currentMessage(), 5)
    assert any("restart the devices" in p for p in win.lab.devices.problems())
    win.stop_devices()  # a dead process stops cleanly too
    assert pump(lambda: win.lab.devices is None and not win.busy, 20), win.errors


def test_no_display_and_a_folder_for_settings_are_clear_errors(tmp_path: Path) -> None:
    """Without a display Qt would abort the process (exit 134); the app says what to do instead."""
    from mecg.app.main import check_display
    from mecg.app.settings import AppSettings
    from mecg.errors import MecgError

    if sys.platform.startswith("linux"):
        with pytest.raises(MecgError, match="no display"):
            check_display({})
    check_display({"DISPLAY": ":0"})
    check_display({"QT_QPA_PLATFORM": "offscreen"})
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    r = subprocess.run([sys.executable, "-m", "mecg", "app"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "no display" in r.stderr and "Traceback" not in r.stderr, r.stderr
    with pytest.raises(MecgError, match="is a folder"):
        AppSettings(tmp_path)
