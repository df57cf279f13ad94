"""The mecg serial protocol and the Cyton packet format: spec vectors, round trips, fuzzing of both parsers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mecg.acquire import cyton
from mecg.acquire.protocol import (
    MAX_PAYLOAD,
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
    check_command,
    crc16,
    decode,
    decode_data,
    encode,
    frame,
)
from mecg.acquire.sequence import SequenceTracker, Unwrapper

SPEC = Path(__file__).resolve().parents[1] / "hardware" / "protocol.md"
FUZZ = settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])

_BUILDERS = {
    "IDENTIFY": lambda **f: Command(MsgType.IDENTIFY),
    "START": lambda **f: Command(MsgType.START),
    "STOP": lambda **f: Command(MsgType.STOP),
    "PING": lambda **f: Command(MsgType.PING),
    "SET_RATE": SetRate,
    "PULSE": Pulse,
    "SCHEDULE": Schedule,
    "INFO": Info,
    "ACK": Ack,
    "DATA": lambda channels, **f: Data(channels=tuple(channels), **f),
    "PULSE_EVENT": PulseEvent,
}


def spec_vectors() -> list[tuple[str, dict, bytes]]:
    """The ``vectors`` block of hardware/protocol.md as (name, fields, frame bytes)."""
    block = re.search(r"```vectors\n(.*?)```", SPEC.read_text(), re.S)
    assert block, "hardware/protocol.md has no ```vectors block"
    out = []
    for line in block.group(1).strip().splitlines():
        name, rest = line.split(" ", 1)
        fields, hexs = rest.rsplit(" = ", 1)
        out.append((name, json.loads(fields), bytes.fromhex(hexs)))
    return out


def test_crc_check_value() -> None:
    assert crc16(b"123456789") == 0x29B1


@pytest.mark.parametrize("vector", spec_vectors(), ids=lambda v: v[0])
def test_spec_vectors_encode_and_parse(vector: tuple[str, dict, bytes]) -> None:
    name, fields, raw = vector
    msg = _BUILDERS[name](**fields)
    assert encode(msg) == raw
    parser = FrameParser.for_device() if raw[2] & 0x80 else FrameParser.for_host()
    frames = parser.feed(raw)
    assert len(frames) == 1 and decode(frames[0]) == msg


def test_spec_covers_every_message_type() -> None:
    names = {v[0] for v in spec_vectors()}
    assert names == {t.name for t in MsgType}


@given(
    seq=st.integers(0, 0xFFFF),
    t_us=st.integers(0, 0xFFFFFFFF),
    digital=st.integers(0, 255),
    status=st.integers(0, 255),
    channels=st.lists(st.integers(-(1 << 23), (1 << 23) - 1), min_size=1, max_size=8),
)
@settings(max_examples=200, deadline=None, derandomize=True)
def test_data_round_trip_scalar_and_vectorised(
    seq: int, t_us: int, digital: int, status: int, channels: list[int]
) -> None:
    msg = Data(seq, t_us, digital, status, tuple(channels))
    frames = FrameParser.for_host().feed(encode(msg))
    assert [decode(f) for f in frames] == [msg]
    block = decode_data([f.payload for f in frames], len(channels))
    assert block.seq[0] == seq and block.t_us[0] == t_us and block.digital[0] == digital and block.status[0] == status
    assert block.counts[0].tolist() == channels


def test_device_parser_answers_unknown_and_bad_length() -> None:
    p = FrameParser.for_device()
    frames = p.feed(frame(0xF0, b"xy") + frame(MsgType.SET_RATE, b"\x01") + encode(SetRate(250)))
    assert [check_command(f) for f in frames] == [Status.UNKNOWN, Status.BAD_ARG, Status.OK]
    assert decode(frames[2]) == SetRate(250)
    # the host side never accepts commands, nor DATA of a length no channel count gives
    assert FrameParser.for_host().feed(encode(SetRate(250)) + frame(MsgType.DATA, bytes(12))) == []


# -- fuzzing: the mecg parser -----------------------------------------------------------------
FATES = ("ok", "ok", "ok", "drop", "flip", "truncate", "dup")


@st.composite
def damaged_mecg_stream(draw: st.DrawFn) -> tuple[list[Data], list[str], bytes, list[int]]:
    """Original packets, each one's fate, the damaged byte stream, and read() split points."""
    n = draw(st.integers(1, 30))
    n_ch = draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    seq0 = draw(st.integers(0, 0xFFFF))
    packets = [
        Data(
            (seq0 + i) & 0xFFFF,
            int(rng.integers(0, 2**32)),
            int(rng.integers(0, 4)),
            0,
            tuple(int(v) for v in rng.integers(-(1 << 23), 1 << 23, n_ch)),
        )
        for i in range(n)
    ]
    fates = draw(st.lists(st.sampled_from(FATES), min_size=n, max_size=n))
    out = bytearray()
    for p, fate in zip(packets, fates):
        out += draw(st.one_of(st.just(b""), st.binary(max_size=40), st.just(b"\xa5\x5a\x01")))  # garbage / fake sync
        raw = encode(p)
        if fate == "ok":
            out += raw
        elif fate == "dup":
            out += raw + raw
        elif fate == "flip":
            bad = bytearray(raw)
            for bit in draw(st.lists(st.integers(0, 8 * len(raw) - 1), min_size=1, max_size=3, unique=True)):
                bad[bit // 8] ^= 1 << (bit % 8)
            out += bad
        elif fate == "truncate":
            k = draw(st.integers(1, len(raw) - 1))
            out += raw[:k] + bytes([raw[k] ^ 0xFF])  # what follows must not complete the packet again
    out += bytes(MAX_PAYLOAD + 8)  # the stream goes on: let any pending candidate resolve
    cuts = sorted(draw(st.lists(st.integers(0, len(out)), max_size=8)))
    return packets, fates, bytes(out), cuts


def _feed_split(parser, data: bytes, cuts: list[int]) -> list:
    got = []
    for a, b in zip([0, *cuts], [*cuts, len(data)]):
        got += parser.feed(data[a:b])
    return got


@given(damaged_mecg_stream())
@FUZZ
def test_mecg_parser_survives_damage(case) -> None:
    packets, fates, data, cuts = case
    parser = FrameParser.for_host()
    got = [decode(f) for f in _feed_split(parser, data, cuts)]
    # every intact packet delivered, in order; nothing damaged, nothing invented
    expected = []
    for p, fate in zip(packets, fates):
        expected += [p] * {"ok": 1, "dup": 2}.get(fate, 0)
    assert got == expected
    # duplicates dropped, gaps counted between the first and the last delivered packet
    tracker = SequenceTracker(1 << 16)
    keep = tracker.check(np.array([p.seq for p in got], dtype=np.int64))
    kept = [p for p, k in zip(got, keep) if k]
    assert kept == [p for p, f in zip(packets, fates) if f in ("ok", "dup")]
    assert tracker.duplicates == fates.count("dup")
    if kept:
        first, last = packets.index(kept[0]), packets.index(kept[-1])
        assert tracker.lost == sum(f not in ("ok", "dup") for f in fates[first : last + 1])


@given(st.binary(max_size=2000), st.lists(st.integers(0, 2000), max_size=6))
@FUZZ
def test_mecg_parser_on_garbage_only(data: bytes, cuts: list[int]) -> None:
    parser = FrameParser.for_host()
    assert _feed_split(parser, data, sorted(c for c in cuts if c <= len(data))) == []
    assert len(parser._buf) <= MAX_PAYLOAD + 6


# -- fuzzing: the Cyton parser ----------------------------------------------------------------
DAMAGE = ("garbage", "drop", "header", "footer", "truncate")


@st.composite
def damaged_cyton_stream(draw: st.DrawFn) -> tuple[list[bytes], bytes, list[int]]:
    """Runs of >= 2 intact packets (some duplicated) separated by one damage event each.

    Without a CRC a lone packet between two damages cannot be told from garbage, so the
    property is: from the first intact packet after any damage on, everything is delivered
    (a repeat of the packet just before a damage may be dropped: the tracker drops it anyway).
    """
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n_runs = draw(st.integers(1, 6))
    counter = draw(st.integers(0, 255))
    expected: list[bytes] = []
    out = bytearray()

    def packet() -> bytes:
        nonlocal counter
        footer = int(rng.integers(0xC0, 0xC7))
        aux = bytes(rng.integers(0, 256, 6).astype(np.uint8))
        p = cyton.encode_packet(counter, rng.integers(-(1 << 23), 1 << 23, 8), aux, footer)
        counter = (counter + 1) & 0xFF
        return p

    for r in range(n_runs):
        if r:
            kind = draw(st.sampled_from(DAMAGE))
            if kind == "garbage":
                out += draw(st.binary(min_size=1, max_size=80))
            elif kind == "drop":
                for _ in range(draw(st.integers(1, 3))):
                    packet()
            else:
                bad = bytearray(packet())
                if kind == "header":
                    bad[0] ^= draw(st.integers(1, 255))
                elif kind == "footer":
                    bad[32] = draw(st.sampled_from([0x00, 0xA0, 0xBF, 0xC7, 0xFF]))
                else:
                    bad = bad[: draw(st.integers(1, 32))]
                out += bad
        for _ in range(draw(st.integers(2, 5))):
            p = packet()
            copies = 2 if draw(st.integers(0, 9)) == 0 else 1
            out += p * copies
            expected += [p] * copies
    out += bytes([cyton.HEADER])  # the stream goes on: the next packet has begun
    cuts = sorted(draw(st.lists(st.integers(0, len(out)), max_size=8)))
    return expected, bytes(out), cuts


def _dedupe(packets: list[bytes]) -> list[bytes]:
    return [p for k, p in enumerate(packets) if k == 0 or p != packets[k - 1]]


@given(damaged_cyton_stream())
@FUZZ
def test_cyton_parser_survives_damage(case) -> None:
    expected, data, cuts = case
    parser = cyton.CytonParser()
    got = _feed_split(parser, data, cuts)
    assert _dedupe(got) == _dedupe(expected) and len(got) <= len(expected)
    block = cyton.decode_packets(got)
    assert len(block) == len(got)


@given(st.binary(max_size=3000), st.lists(st.integers(0, 3000), max_size=6))
@FUZZ
def test_cyton_parser_on_garbage_only(data: bytes, cuts: list[int]) -> None:
    parser = cyton.CytonParser()
    _feed_split(parser, data, sorted(c for c in cuts if c <= len(data)))  # must not raise
    assert len(parser._buf) < 2 * cyton.PACKET_SIZE


def test_cyton_decode_matches_encode() -> None:
    rng = np.random.default_rng(1)
    ch = rng.integers(-(1 << 23), 1 << 23, (50, 8))
    aux = rng.integers(0, 2, (50, 6)).astype(np.uint8)
    raw = cyton.encode_packets(np.arange(250, 300), ch, aux, cyton.FOOTER_RAW_AUX)
    assert raw[:33] == cyton.encode_packet(250, ch[0], aux[0].tobytes(), cyton.FOOTER_RAW_AUX)
    block = cyton.decode_packets(cyton.CytonParser().feed(raw + raw[:33]))
    assert np.array_equal(block.counts, ch) and np.array_equal(block.counter, np.arange(250, 300) & 0xFF)
    assert np.array_equal(block.digital("D12"), aux[:, 1])


# -- wrapping counters ------------------------------------------------------------------------
def test_sequence_tracker_wraps_and_counts() -> None:
    t = SequenceTracker(256)
    keep = t.check(np.array([250, 251, 253, 253, 0, 1, 200, 2]))  # lost 252, 254, 255; dup 253; stale 200
    assert keep.tolist() == [True, True, True, False, True, True, False, True]
    assert (t.lost, t.duplicates, t.stale) == (3, 1, 1)
    # a gap longer than the counter: the elapsed time says how many wraps
    t2 = SequenceTracker(256)
    t2.check(np.array([10]))
    t2.check(np.array([12]), elapsed=np.array([514.0]))
    assert t2.lost == 513


def test_unwrapper_continues_across_calls_and_ignores_repeats() -> None:
    u = Unwrapper(32)
    a = u.unwrap(np.array([2**32 - 2000, 2**32 - 1000]))
    b = u.unwrap(np.array([0, 1000, 1000]))
    assert (np.diff(np.concatenate([a, b])) == [1000, 1000, 1000, 0]).all()
