"""The firmware against the spec: the C++ protocol library and both sketches, compiled and run on the PC.

``hardware/firmware/host_check`` stands in for the Arduino core (clock, pins, serial, SPI,
EEPROM); the sketches themselves are compiled unchanged. Skipped where no C++ compiler exists.
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
from pathlib import Path

import pytest
from test_protocol import _BUILDERS, spec_vectors

from mecg.acquire.protocol import (
    DEVICE_TYPES,
    Ack,
    Command,
    Data,
    FrameParser,
    Info,
    MsgType,
    Pulse,
    PulseEvent,
    Schedule,
    SetRate,
    Status,
    decode,
    encode,
    frame,
)

FIRMWARE = Path(__file__).resolve().parents[1] / "hardware" / "firmware"
CXX = shutil.which("g++") or shutil.which("c++")
pytestmark = pytest.mark.skipif(CXX is None, reason="no C++ compiler")


def _build(sketch: str, out_dir: Path) -> Path:
    exe = out_dir / sketch
    subprocess.run(
        [
            CXX,
            "-std=c++11",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-O1",
            f"-I{FIRMWARE / 'host_check'}",
            f"-I{FIRMWARE / 'libraries' / 'MecgProtocol' / 'src'}",
            f'-DSKETCH="../{sketch}/{sketch}.ino"',
            str(FIRMWARE / "host_check" / "harness.cpp"),
            "-o",
            str(exe),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return exe


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("firmware")
    return {s: _build(s, d) for s in ("mecg_trigger_box", "mecg_ecg_ads1292r")}


def run(exe: Path, script: list[str]) -> list[str]:
    res = subprocess.run(
        [str(exe)], input="\n".join(script) + "\n", capture_output=True, text=True, timeout=30, check=True
    )
    lines = res.stdout.splitlines()
    assert not [line for line in lines if line.startswith("error")]
    return lines


def hx(b: bytes) -> str:
    return b.hex(" ").upper()


def messages(line: str) -> list:
    """Decode an ``out ..`` line with the Python host parser; every byte must belong to a frame."""
    tag, _, rest = line.partition(" ")
    assert tag == "out"
    parser = FrameParser.for_host()
    frames = parser.feed(bytes.fromhex(rest))
    assert parser.skipped_bytes == 0 and parser.crc_errors == 0
    return [decode(f) for f in frames]


# -- the library ------------------------------------------------------------------------------
def test_library_builds_the_spec_vectors(harness: dict[str, Path]) -> None:
    script, expected = [], []
    for name, f, raw in spec_vectors():
        if raw[2] not in DEVICE_TYPES:
            continue
        if name == "DATA":
            chans = " ".join(map(str, f["channels"]))
            script.append(f"build_data {f['seq']} {f['t_us']} {f['digital']} {f['status']} {chans}")
        elif name == "INFO":
            assert f["version"] == 1
            script.append(
                f"build_info {f['kind']} {f['n_channels']} {f['n_digital']} {f['rate_hz']} {f['lsb_pv']} "
                f"{f['uid']} {f['t_us']} {f['name']}"
            )
        elif name == "ACK":
            script.append(f"build_ack {f['command']} {f['status']} {f['t_us']}")
        else:
            script.append(f"build_pulse_event {f['seq']} {f['t_us']} {f['width_ms']} {f['code']}")
        expected.append(f"frame {hx(raw)}")
    script.append("crc " + hx(b"123456789"))
    assert run(harness["mecg_trigger_box"], script) == [*expected, f"crc {0x29B1}"]


def test_library_parses_the_spec_commands_through_garbage(harness: dict[str, Path]) -> None:
    cmds = [(name, f, raw) for name, f, raw in spec_vectors() if raw[2] & 0x80]
    stream = bytearray(b"\x00\xa5\x5a\xa5")
    for _, _, raw in cmds:
        bad = bytearray(raw)
        bad[-1] ^= 0x40  # the same command with a broken CRC first: must be dropped
        stream += bad + b"\xa5\x5a\x81" + raw  # then a fake sync, then the real one
    stream += frame(0xF0, b"\x01") + frame(MsgType.SET_RATE, b"\x01")
    out = run(harness["mecg_trigger_box"], ["parse " + hx(bytes(stream))])
    got = [line.split() for line in out[:-1]]
    want = [["cmd", str(raw[2]), str(raw[3]), *raw[4:-2].hex(" ").upper().split(), "status", "0"] for _, _, raw in cmds]
    assert got == [*want, ["cmd", "240", "1", "01", "status", "3"], ["cmd", "132", "1", "01", "status", "1"]]
    assert out[-1] == f"crc_errors {len(cmds)}"
    # the same judgement as the Python device side
    py_frames = FrameParser.for_device().feed(b"".join(r for *_, r in cmds))
    assert [_BUILDERS[n](**f) for n, f, _ in cmds] == [decode(fr) for fr in py_frames]


# -- the trigger box --------------------------------------------------------------------------
TTL, LED = 8, 9


def test_trigger_box_sketch(harness: dict[str, Path]) -> None:
    script = [
        "setup",
        "send " + hx(b"\x13\x37" + encode(Command(MsgType.IDENTIFY))),
        "loop 1",
        "out",
        "advance 5000",
        "send " + hx(encode(Pulse(50, 7))),
        "loop 1",
        "out",
        "send " + hx(encode(Pulse(20, 1))),
        "loop 1",
        "out",  # still high: BUSY
        "tick 1000 60",
        "edges",
        "send " + hx(encode(Pulse(0, 1)) + encode(SetRate(500)) + encode(Schedule(100, 50, 10))),
        "loop 1",
        "out",
        "send " + hx(encode(Schedule(100, 200, 10)) + encode(Command(MsgType.START))),
        "loop 1",
        "out",
        "tick 1000 3000",
        "out",
        "edges",
        "send " + hx(encode(Command(MsgType.STOP))),
        "loop 1",
        "tick 1000 1000",
        "out",
        "edges",
        "send " + hx(encode(Command(MsgType.PING))[:-1] + b"\x00" + encode(Command(MsgType.PING))),
        "loop 1",
        "out",
    ]
    out = run(harness["mecg_trigger_box"], script)
    info = messages(out[0])
    assert len(info) == 1 and isinstance(info[0], Info)
    assert (info[0].version, info[0].kind, info[0].name) == (1, 2, "mecg-trigger 1.0") and info[0].uid != 0
    ack, ev = messages(out[1])
    assert ack == Ack(MsgType.PULSE, Status.OK, ack.t_us) and isinstance(ev, PulseEvent)
    assert (ev.seq, ev.width_ms, ev.code) == (0, 50, 7) and ev.t_us >= ack.t_us
    assert messages(out[2])[0].status == Status.BUSY
    edges = [tuple(map(int, line.split()[1:])) for line in out[3:7]]
    assert edges == [(TTL, 1, ev.t_us), (LED, 1, ev.t_us), (TTL, 0, ev.t_us + 50000), (LED, 0, ev.t_us + 50000)]
    assert [m.status for m in messages(out[7])] == [Status.BAD_ARG, Status.UNKNOWN, Status.BAD_ARG]
    assert [m.status for m in messages(out[8])] == [Status.OK, Status.OK]
    events = messages(out[9])
    assert all(isinstance(e, PulseEvent) and e.code == 0 and e.width_ms == 10 for e in events)
    assert [e.seq for e in events] == list(range(1, len(events) + 1)) and 14 <= len(events) <= 30
    gaps_ms = [(b.t_us - a.t_us) / 1000 for a, b in itertools.pairwise(events)]
    assert all(100 <= g <= 201 for g in gaps_ms) and len(set(gaps_ms)) > 3  # irregular, within [min, max]
    rises = [int(line.split()[3]) for line in out[10:] if line.startswith(f"edge {TTL} 1")]
    assert rises == [e.t_us for e in events]
    stop_out = next(line for line in out if line.startswith("out") and "83 00" in line)
    assert [type(m) for m in messages(stop_out)] == [Ack]  # no pulse after STOP
    assert [m.command for m in messages(out[-1])] == [MsgType.PING]  # the broken PING got no answer


# -- the ECG amplifier ------------------------------------------------------------------------
TRIG_PIN, STROBE_PIN = 6, 7


def conversion(ch1: int, ch2: int, loff: int = 0) -> str:
    status = (0xC << 20) | (loff << 15)
    raw = status.to_bytes(3, "big") + (ch1 & 0xFFFFFF).to_bytes(3, "big") + (ch2 & 0xFFFFFF).to_bytes(3, "big")
    return "spi " + hx(raw)


def test_ecg_sketch(harness: dict[str, Path]) -> None:
    script = [
        "spi 00 00 00 00 73",
        "setup",  # RESET, SDATAC, RREG ID: the 5th byte answers ADS1292R
        "send " + hx(encode(Command(MsgType.IDENTIFY)) + encode(Command(MsgType.START))),
        "loop 1",
        "out",
        # three conversions: TRIG asserted (active low through the optocoupler) on the second
        "advance 1000",
        conversion(5, 0x123456),
        "drdy",
        "loop 1",
        "advance 1000",
        "pin 6 0",
        conversion(5, -2),
        "drdy",
        "loop 1",
        "advance 1000",
        "pin 6 1",
        "pin 7 0",
        conversion(5, -(1 << 23), loff=0x04),
        "drdy",
        "loop 1",
        "out",
        # transmit buffer full: one sample dropped, the next carries OVERFLOW and a seq gap
        "room 0",
        "advance 1000",
        conversion(0, 1),
        "drdy",
        "loop 1",
        "room 65536",
        "advance 1000",
        conversion(0, 2),
        "drdy",
        "loop 1",
        "out",
        "send " + hx(encode(SetRate(500))),
        "loop 1",
        "out",  # BUSY while streaming
        "send " + hx(encode(Command(MsgType.STOP)) + encode(SetRate(500)) + encode(SetRate(600)) + encode(Pulse(5, 1))),
        "loop 1",
        "send " + hx(encode(Command(MsgType.IDENTIFY))),
        "loop 1",
        "out",
        "advance 1000",
        conversion(0, 3),
        "drdy",
        "loop 1",
        "out",  # stopped: nothing sent
    ]
    out = run(harness["mecg_ecg_ads1292r"], script)
    info, ack = messages(out[0])
    assert (info.kind, info.n_channels, info.n_digital, info.rate_hz, info.lsb_pv) == (1, 1, 2, 1000, 48081)
    assert info.name == "mecg-ads1292r 1.0" and ack.status == Status.OK
    d = messages(out[1])
    assert all(isinstance(x, Data) for x in d)
    assert [x.seq for x in d] == [0, 1, 2] and [x.channels for x in d] == [(0x123456,), (-2,), (-(1 << 23),)]
    assert [x.digital for x in d] == [0, 1, 2] and [x.status for x in d] == [0, 0, 1]
    assert d[1].t_us - d[0].t_us == 1000 and d[2].t_us - d[1].t_us == 1000
    (after,) = messages(out[2])
    assert after.seq == 4 and after.status & 0x02 and after.channels == (2,)
    assert messages(out[3])[0].status == Status.BUSY
    acks = messages(out[4])
    assert [(a.command, a.status) for a in acks[:4]] == [
        (MsgType.STOP, Status.OK),
        (MsgType.SET_RATE, Status.OK),
        (MsgType.SET_RATE, Status.BAD_ARG),
        (MsgType.PULSE, Status.UNKNOWN),
    ]
    assert acks[4].rate_hz == 500
    assert out[5] == "out"


def test_spec_mentions_what_the_firmware_does() -> None:
    spec = (FIRMWARE.parent / "protocol.md").read_text()
    for word in ("BUSY", "BAD_ARG", "UNKNOWN", "OVERFLOW", "LEADOFF", "48081"):
        assert word in spec
