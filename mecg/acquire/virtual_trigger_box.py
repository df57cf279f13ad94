"""A virtual trigger box on a pty, speaking hardware/protocol.md as the mecg trigger box firmware does.

Its pulses go onto the shared :class:`~mecg.acquire.sim_world.TriggerLine`, so a virtual
amplifier sees them on TRIG and a virtual camera sees the LED light up.
"""

from __future__ import annotations

import os

import numpy as np

from mecg.acquire.protocol import (
    Ack,
    DeviceKind,
    FrameParser,
    Info,
    MsgType,
    PulseEvent,
    Status,
    check_command,
    decode,
    encode,
)
from mecg.acquire.sim_world import DeviceTiming, Timeline, TriggerLine
from mecg.acquire.virtual_port import VirtualSerialDevice

MAX_WIDTH_MS = 1000
#: From a PULSE command to the rising edge (firmware: ACK written first, tens of us).
FIRE_DELAY_S = 0.0002
#: A scheduled pulse is put on the line this long before it rises (so no device has sampled past it yet).
SCHEDULE_LEAD_S = 0.02


class VirtualTriggerBox(VirtualSerialDevice):
    """The trigger box: TTL + LED pulses on command (PULSE) or on its own irregular schedule (START).

    Parameters
    ----------
    line
        The trigger wire it drives (shared with the virtual amplifier and camera).
    link, timeline, timing, seed
        As for the other virtual devices; default timing: a 115200-baud UART bridge (1 ms latency,
        0.3 ms jitter), a clock that started long ago and runs 30 ppm fast.
    autostart
        Run the schedule from power-up (as a box with its own start switch).
    """

    def __init__(
        self,
        line: TriggerLine,
        *,
        link: str | os.PathLike | None = None,
        timeline: Timeline | None = None,
        timing: DeviceTiming | None = None,
        seed: int = 0,
        autostart: bool = False,
    ) -> None:
        self.line = line
        self.autostart = autostart
        self.uid = int(np.random.default_rng([seed, 0xB0C5]).integers(1, 2**32))
        self.name = "mecg-trigger 1.0 (virtual)"
        self.pulses_fired: list[tuple[float, float, int]] = []  # (true rise, width s, code)
        offset = float(np.random.default_rng([seed, 0xB1]).uniform(10.0, 3000.0))
        timing = timing or DeviceTiming(clock_offset_s=offset, drift_ppm=30.0, latency_s=0.001, jitter_s=0.0003)
        super().__init__(link, timeline or Timeline(), timing, seed)
        self._sched_rng = np.random.default_rng([seed, 0x5C4ED])

    def power_up(self) -> None:
        self.parser = FrameParser.for_device()
        self.seq = 0
        self.high_until = -np.inf
        self.sched = (2000, 8000, 50)
        self.scheduling = self.autostart
        self.next_rise: float | None = None
        self._due_events: list[tuple[float, bytes]] = []

    def _ack(self, cmd: int, status: Status, now: float) -> None:
        self.emit(encode(Ack(cmd, int(status), self.device_us(now))), now)

    def _fire(self, rise: float, width_ms: int, code: int) -> None:
        rise = self.line.add(rise, width_ms / 1000.0)
        self.high_until = rise + width_ms / 1000.0
        self.pulses_fired.append((rise, width_ms / 1000.0, code))
        self._due_events.append((rise, encode(PulseEvent(self.seq, self.device_us(rise), width_ms, code))))
        self.seq = (self.seq + 1) & 0xFFFF

    def _gap_s(self) -> float:
        lo, hi, _ = self.sched
        return float(self._sched_rng.integers(lo, hi + 1)) / 1000.0

    def on_input(self, data: bytes, now: float) -> None:
        for f in self.parser.feed(data):
            st = check_command(f)
            if st != Status.OK:
                self._ack(f.type, st, now)
                continue
            msg = decode(f)
            if f.type == MsgType.IDENTIFY:
                self.emit(
                    encode(Info(1, DeviceKind.TRIGGER_BOX, 0, 0, 0, 0, self.uid, self.device_us(now), self.name)), now
                )
            elif f.type == MsgType.PULSE:
                if not 1 <= msg.width_ms <= MAX_WIDTH_MS:
                    self._ack(f.type, Status.BAD_ARG, now)
                elif now < self.high_until:
                    self._ack(f.type, Status.BUSY, now)
                else:
                    self._ack(f.type, Status.OK, now)
                    self._fire(now + FIRE_DELAY_S, msg.width_ms, msg.code)
            elif f.type == MsgType.SCHEDULE:
                lo, hi, w = msg.min_gap_ms, msg.max_gap_ms, msg.width_ms
                if not (1 <= w <= MAX_WIDTH_MS and w < lo <= hi):
                    self._ack(f.type, Status.BAD_ARG, now)
                else:
                    self.sched = (lo, hi, w)
                    self._ack(f.type, Status.OK, now)
            elif f.type == MsgType.START:
                if not self.scheduling:
                    self.scheduling, self.next_rise = True, None
                self._ack(f.type, Status.OK, now)
            elif f.type == MsgType.STOP:
                self.scheduling, self.next_rise = False, None
                self._ack(f.type, Status.OK, now)
            elif f.type == MsgType.PING:
                self._ack(f.type, Status.OK, now)
            else:  # SET_RATE: an amplifier command
                self._ack(f.type, Status.UNKNOWN, now)

    def tick(self, now: float) -> None:
        if self.scheduling:
            if self.next_rise is None:
                self.next_rise = now + self._gap_s()
            if now >= self.next_rise - SCHEDULE_LEAD_S and self.next_rise >= self.high_until:
                self._fire(self.next_rise, self.sched[2], 0)
                self.next_rise = self.pulses_fired[-1][0] + self._gap_s()
        while self._due_events and self._due_events[0][0] <= now:
            t, raw = self._due_events.pop(0)
            self.emit(raw, t)
