"""Drivers do not trust the device: every INFO and ACK the protocol does not allow is a clear error and exit 2.

Fake devices on a pty answer IDENTIFY with a chosen INFO and commands with a chosen ACK status;
a real virtual amplifier that comes back wrong after a replug, and a driver whose thread dies,
check that ``mecg stream`` exits non-zero instead of streaming "0 samples" forever.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from mecg.acquire.ecg_driver import EcgDriver
from mecg.acquire.protocol import (
    Ack,
    DeviceKind,
    FrameParser,
    Info,
    MsgType,
    Status,
    decode,
    encode,
)
from mecg.acquire.sim_world import DeviceTiming, Timeline
from mecg.acquire.virtual_amplifier import VirtualAmplifier
from mecg.acquire.virtual_port import VirtualSerialDevice
from mecg.cli.main import main
from mecg.synth import Subject, Trial, TrialConfig

GOOD_AMP = Info(1, DeviceKind.AMPLIFIER, 1, 2, 1000, 48081, 0x1234, 0, "fake-amp 1.0")
GOOD_BOX = Info(1, DeviceKind.TRIGGER_BOX, 0, 0, 0, 0, 0xCAFE, 0, "fake-box 1.0")


class FakeDevice(VirtualSerialDevice):
    """Answers IDENTIFY with ``info`` and every other command with an ACK: ``ack_status`` for the
    commands in ``bad_for`` (all when ``None``), OK for the rest. It never sends DATA."""

    def __init__(self, link: Path, info: Info, ack_status: int = 0, bad_for: tuple[int, ...] | None = None) -> None:
        self.info, self.ack_status, self.bad_for = info, ack_status, bad_for
        super().__init__(link, Timeline(), DeviceTiming(latency_s=0.0, jitter_s=0.0), seed=0)

    def power_up(self) -> None:
        self.parser = FrameParser.for_device()

    def on_input(self, data: bytes, now: float) -> None:
        for f in self.parser.feed(data):
            if f.type == MsgType.IDENTIFY:
                self.emit(encode(self.info), now)
                continue
            bad = self.bad_for is None or f.type in self.bad_for
            self.emit(encode(Ack(f.type, self.ack_status if bad else Status.OK, 0)), now)


def run_cli(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    rc = main(argv)
    return rc, capsys.readouterr().err


@pytest.mark.parametrize(
    ("info", "ack_status", "bad_for", "message"),
    [
        (replace(GOOD_AMP, kind=9), 0, None, "device kind 9, which the mecg protocol does not define"),
        (GOOD_AMP, 7, None, "answered STOP with ACK status 7"),
        (GOOD_AMP, 7, (MsgType.START,), "answered START with ACK status 7"),
        (GOOD_AMP, Status.BUSY, (MsgType.START,), "refused START: BUSY"),
        (replace(GOOD_AMP, rate_hz=0), 0, None, "sampling rate of 0 Hz"),
        (replace(GOOD_AMP, rate_hz=333), 0, None, "sampling rate of 333 Hz"),
        (replace(GOOD_AMP, n_channels=0), 0, None, "reports 0 ECG channels; the protocol allows 1-8"),
        (replace(GOOD_AMP, n_channels=20), 0, None, "reports 20 ECG channels; the protocol allows 1-8"),
        (replace(GOOD_AMP, n_digital=9), 0, None, "reports 9 digital inputs"),
        (replace(GOOD_AMP, lsb_pv=0), 0, None, "0 pV"),
        (replace(GOOD_AMP, version=2), 0, None, "protocol version 2"),
        (GOOD_BOX, 0, None, "is not an amplifier but a trigger box: use `mecg stream trigger`"),
    ],
)
def test_stream_ecg_refuses_bad_replies(
    info: Info, ack_status: int, bad_for: tuple[int, ...] | None, message: str, tmp_path: Path, capsys
) -> None:
    with FakeDevice(tmp_path / "amp", info, ack_status, bad_for) as dev:
        rc, err = run_cli(["stream", "ecg", "--port", dev.path, "--seconds", "30"], capsys)
    assert rc == 2 and err.startswith("mecg: error:") and "Traceback" not in err
    assert message in err
    assert "[streaming]" not in err  # refused at connect: no status line was ever shown


@pytest.mark.parametrize(
    ("info", "ack_status", "bad_for", "extra", "message"),
    [
        (replace(GOOD_BOX, kind=9), 0, None, [], "device kind 9"),
        (GOOD_BOX, 7, None, [], "answered STOP with ACK status 7"),
        (GOOD_BOX, 7, (MsgType.SCHEDULE,), ["--box-schedule"], "answered SCHEDULE with ACK status 7"),
        (GOOD_BOX, Status.BAD_ARG, (MsgType.SCHEDULE,), ["--box-schedule"], "refused SCHEDULE: BAD_ARG"),
        (replace(GOOD_BOX, version=0), 0, None, [], "protocol version 0"),
        (GOOD_AMP, 0, None, [], "is not a trigger box but an amplifier: use `mecg stream ecg`"),
    ],
)
def test_stream_trigger_refuses_bad_replies(
    info: Info, ack_status: int, bad_for: tuple[int, ...] | None, extra: list[str], message: str, tmp_path, capsys
) -> None:
    with FakeDevice(tmp_path / "box", info, ack_status, bad_for) as dev:
        rc, err = run_cli(["stream", "trigger", "--port", dev.path, "--seconds", "30", *extra], capsys)
    assert rc == 2 and err.startswith("mecg: error:") and "Traceback" not in err
    assert message in err


def test_the_process_exits_non_zero(tmp_path: Path) -> None:
    """The real process, not only main(): rate 0 is exit 2 with one message."""
    with FakeDevice(tmp_path / "amp", replace(GOOD_AMP, rate_hz=0)) as dev:
        r = subprocess.run(
            [sys.executable, "-m", "mecg", "stream", "ecg", "--port", dev.path, "--seconds", "30"],
            capture_output=True,
            text=True,
            timeout=60,
            env=os.environ,
        )
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "sampling rate of 0 Hz" in r.stderr


@pytest.fixture(scope="module")
def trial() -> Trial:
    return Trial(Subject.random("S05", 5), 0, TrialConfig(duration_s=10.0, fps=30.0, width=96, height=72))


class TurnsBadOnReplug(VirtualAmplifier):
    """A virtual amplifier whose INFO carries ``bad_kind`` once it is set (e.g. after a replug)."""

    bad_kind: int | None = None

    def emit(self, data: bytes, t_emit: float) -> bool:
        if self.bad_kind is not None and data[2] == MsgType.INFO:
            info = decode(FrameParser.for_host().feed(data)[0])
            data = encode(replace(info, kind=self.bad_kind))
        return super().emit(data, t_emit)


def wait_for(cond, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_a_device_that_comes_back_wrong_stops_the_stream_with_exit_2(trial: Trial, tmp_path: Path, capsys) -> None:
    amp = TurnsBadOnReplug(trial, link=tmp_path / "amp", seed=1).start()

    def pull_the_cable() -> None:
        wait_for(lambda: amp.samples_sent > 200)  # the driver streams
        amp.bad_kind = 9
        amp.unplug()
        amp.replug()

    t = threading.Thread(target=pull_the_cable)
    t.start()
    try:
        t0 = time.monotonic()
        rc, err = run_cli(["stream", "ecg", "--port", amp.path, "--seconds", "60"], capsys)
        elapsed = time.monotonic() - t0
    finally:
        t.join()
        amp.stop()
    assert rc == 2 and "Traceback" not in err
    assert "the ECG driver stopped" in err and "device kind 9" in err
    assert elapsed < 45  # it stopped on the error, not at --seconds


def test_a_driver_thread_that_dies_takes_the_command_down(
    trial: Trial, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_pump = EcgDriver.pump
    calls = {"n": 0}

    def pump(self: EcgDriver) -> int:
        calls["n"] += 1
        if calls["n"] > 20:
            raise ZeroDivisionError("float division by zero")
        return real_pump(self)

    monkeypatch.setattr(EcgDriver, "pump", pump)
    with VirtualAmplifier(trial, link=tmp_path / "amp", seed=2) as amp:
        t0 = time.monotonic()
        rc, err = run_cli(["stream", "ecg", "--port", amp.path, "--seconds", "60"], capsys)
    assert rc == 2 and "Traceback" not in err
    assert "the ECG driver stopped: internal error ZeroDivisionError" in err
    assert time.monotonic() - t0 < 45
