"""``mecg stream``, ``mecg simulate``, ``mecg devices``: clear errors with exit 2, and a real run against simulate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pylsl
import pytest

from mecg.acquire.virtual_port import VirtualPort
from mecg.cli.main import main


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["stream", "ecg", "--port", "/dev/ttyUSB-none"], "does not exist"),
        (["stream", "trigger", "--port", "/dev/ttyUSB-none"], "does not exist"),
        (["stream", "camera", "--camera", "9"], "not found"),
        (["stream", "camera", "--camera", "no_such_video.avi"], "not found"),
        (["stream", "ecg", "--port", "/dev/null"], "cannot open serial port /dev/null"),  # not a tty
        (
            ["stream", "trigger", "--port", "/x", "--gap", "0.1:0.2", "--width-ms", "150"],
            "shorter than the smallest gap",
        ),
        (["stream", "ecg", "--port", "/x", "--lsl-config", "/no/such.cfg"], "LSL config file"),
    ],
)
def test_user_errors_exit_2_with_a_message(argv: list[str], message: str, capsys: pytest.CaptureFixture) -> None:
    env = os.environ.get("LSLAPICFG")
    try:
        assert main(argv) == 2
    finally:
        if env is not None:
            os.environ["LSLAPICFG"] = env
    err = capsys.readouterr().err
    assert err.startswith("mecg: error:") and "Traceback" not in err and message in err


def test_device_that_does_not_answer(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    port = VirtualPort(tmp_path / "ttyACM0")  # a port with nothing behind it
    try:
        assert main(["stream", "ecg", "--port", port.path]) == 2
        assert "no answer" in capsys.readouterr().err
    finally:
        port.close()


def test_stream_camera_plays_a_file_to_the_end(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "clip.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 50.0, (32, 24))
    for i in range(20):
        w.write(np.full((24, 32, 3), 10 * i, np.uint8))
    w.release()
    assert main(["stream", "camera", "--camera", str(path), "--gray", "--size", "16x16", "--source-id", "cli-cam"]) == 0
    err = capsys.readouterr().err
    assert "16x16 grey" in err and "20 frames" in err and "dropped 0" in err


def test_simulate_then_stream_ecg_and_trigger(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    sim = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mecg",
            "simulate",
            "--seconds",
            "12",
            "--no-camera",
            "--dir",
            str(tmp_path),
            "--seed",
            "2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not any("Ctrl-C" in x for x in lines):
            line = sim.stdout.readline()
            if not line:
                break
            lines.append(line)
        text = "".join(lines)
        amp_cmd = next(x.strip() for x in lines if x.strip().startswith("mecg stream ecg"))
        trig_cmd = next(x.strip() for x in lines if x.strip().startswith("mecg stream trigger"))
        assert Path(amp_cmd.split("--port ")[1]) == tmp_path / "amplifier", text
        truth = json.loads((tmp_path / "simulation.json").read_text())
        assert truth["amplifier"]["rate_hz"] == 1000 and truth["config"]["seed"] == 2

        received: dict = {}

        def listen() -> None:
            found = pylsl.resolve_byprop("source_id", "cli-ecg", timeout=8.0)
            inlet = pylsl.StreamInlet(found[0])
            inlet.open_stream(timeout=5.0)
            data, ts = [], []
            end = time.monotonic() + 1.0
            while time.monotonic() < end:
                d, t = inlet.pull_chunk(timeout=0.05, max_samples=4096)
                data += d
                ts += t
            received["n"] = len(ts)

        listener = threading.Thread(target=listen)
        listener.start()
        argv = [*amp_cmd.split()[1:], "--seconds", "2.5", "--source-id", "cli-ecg"]
        assert main(argv) == 0
        listener.join()
        err = capsys.readouterr().err
        assert "1000 Hz, channels ECG, TRIG, STROBE" in err and "lost 0" in err
        assert received["n"] > 500
        argv = [*trig_cmd.split()[1:], "--gap", "0.2:0.3", "--count", "2", "--width-ms", "20", "--seconds", "5"]
        assert main(argv) == 0
        assert "2 pulses published (2 commanded)" in capsys.readouterr().err
    finally:
        sim.terminate()
        sim.wait(timeout=10)
    assert not (tmp_path / "amplifier").exists() and not (tmp_path / "simulate.pid").exists()


def test_devices_lists_what_there_is(capsys: pytest.CaptureFixture) -> None:
    outlet = pylsl.StreamOutlet(pylsl.StreamInfo("DevicesProbe", "Markers", 1, 0, pylsl.cf_string, "devices-probe"))
    assert main(["devices", "--json", "--wait", "1.0", "--no-cameras"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) == {"serial_ports", "virtual_ports", "cameras", "lsl_streams", "lsl_config"}
    assert any(s["source_id"] == "devices-probe" for s in report["lsl_streams"])
    assert report["lsl_config"].endswith("lsl_local.cfg")
    assert main(["devices", "--wait", "0.3"]) == 0
    out = capsys.readouterr().out
    assert "Serial ports:" in out and "Cameras that open:" in out and "LSL streams" in out
    del outlet
