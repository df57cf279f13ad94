"""Virtual ECG amplifiers on a pty, playing a synthetic trial in real time.

:class:`VirtualAmplifier` behaves as the mecg ADS1292R firmware does (hardware/protocol.md: the
same answers, sequence numbers, device timestamps, transmit-buffer overflow); :class:`VirtualCyton`
as an OpenBCI Cyton behind its USB dongle (text answers ending in ``$$$``, 33-byte packets at
250 Hz, digital inputs D11/D12 in digital board mode). Both sample the trial's ECG, the trigger
line (TRIG) and the camera's exposure output (STROBE) on their own drifting sample clock.
"""

from __future__ import annotations

import os

import numpy as np

from mecg.acquire import cyton
from mecg.acquire.protocol import (
    DIGITAL_STROBE,
    DIGITAL_TRIG,
    STATUS_OVERFLOW,
    SUPPORTED_RATES_HZ,
    Ack,
    Data,
    DeviceKind,
    FrameParser,
    Info,
    MsgType,
    Status,
    check_command,
    decode,
    encode,
)
from mecg.acquire.sim_world import DeviceTiming, Timeline, TriggerLine, looped_segments
from mecg.acquire.virtual_port import VirtualSerialDevice
from mecg.synth.participant import Trial

#: ADS1292R at gain 6: picovolts per ADC count.
LSB_PV = 48081


def amplifier_timing(trial: Trial, seed: int = 0) -> DeviceTiming:
    """The trial's amplifier clock (drift, latency, jitter) with a device clock that started long ago."""
    a = trial.config.amplifier
    offset = float(np.random.default_rng([seed, 0xA3]).uniform(50.0, 4000.0))
    return DeviceTiming(clock_offset_s=offset, drift_ppm=a.drift_ppm, latency_s=a.latency_s, jitter_s=a.jitter_s)


class AmplifierInputs:
    """What the amplifier's inputs carry at any true time: ECG (mV), trigger line, camera strobe (0/1)."""

    def __init__(self, trial: Trial, line: TriggerLine) -> None:
        c = trial.config
        self.trial, self.line = trial, line
        self.duration_s = c.duration_s
        self._cam_start = c.camera.start_s
        self._cam_rate = c.fps * (1.0 + c.camera.drift_ppm * 1e-6)
        self._exposure = c.exposure_s
        self._strobe = c.strobe

    def ecg_mv(self, t_s: np.ndarray, index: np.ndarray) -> np.ndarray:
        """ECG (mV) at sorted true times (the trial looped); ``index`` seeds the per-sample noise."""
        out = np.empty(t_s.size)
        for sl, tc in looped_segments(t_s, self.duration_s):
            out[sl] = self.trial.heart.ecg(tc, index[sl])
        return out

    def strobe(self, t_s: np.ndarray) -> np.ndarray:
        """Camera exposure output (0/1) at true times: high from each exposure start for ``exposure_s``."""
        if not self._strobe:
            return np.zeros(t_s.shape, np.int8)
        i = np.floor((t_s - self._cam_start) * self._cam_rate)
        start = self._cam_start + i / self._cam_rate  # the same arithmetic as DeviceClock.sample_times
        early = t_s < start
        i[early] -= 1
        start[early] = self._cam_start + i[early] / self._cam_rate
        return ((i >= 0) & (t_s < start + self._exposure)).astype(np.int8)

    def trig(self, t_s: np.ndarray) -> np.ndarray:
        """Trigger line (0/1) at true times."""
        return self.line.level(t_s)


class _SampleClock:
    """The ADC's sample grid: sample ``k`` at true time ``t0 + k / (rate * (1 + drift))``."""

    def __init__(self, t0: float, rate_hz: float, drift_ppm: float) -> None:
        self.t0, self.rate = t0, rate_hz * (1.0 + drift_ppm * 1e-6)

    def time(self, k: np.ndarray) -> np.ndarray:
        return self.t0 + np.asarray(k, dtype=np.float64) / self.rate

    def last_due(self, now: float) -> int:
        return int(np.floor((now - self.t0) * self.rate))


class VirtualAmplifier(VirtualSerialDevice):
    """The mecg ADS1292R amplifier on a pty, speaking hardware/protocol.md.

    Parameters
    ----------
    trial
        What it records (looped when the run is longer).
    link
        Stable path of its port (a symbolic link); ``None``: the bare ``/dev/pts/N``.
    timeline, line
        Shared with the other virtual devices (default: its own; the trial's trigger schedule).
    timing
        Its clock and transport (default :func:`amplifier_timing`).
    rate_hz
        Rate at power-up (default the trial's ECG rate, which must be one the firmware offers).
    n_channels
        ECG channels (1-8; extra channels carry the same ECG at 0.7x, like a second lead).
    uid, seed
        Board number in INFO (default from the seed); seed of its jitter and clock.
    """

    def __init__(
        self,
        trial: Trial,
        *,
        link: str | os.PathLike | None = None,
        timeline: Timeline | None = None,
        line: TriggerLine | None = None,
        timing: DeviceTiming | None = None,
        rate_hz: int | None = None,
        n_channels: int = 1,
        uid: int | None = None,
        seed: int = 0,
    ) -> None:
        rate = int(rate_hz or trial.config.ecg_rate_hz)
        if rate not in SUPPORTED_RATES_HZ:
            raise ValueError(f"the mecg amplifier offers {SUPPORTED_RATES_HZ} Hz, not {rate}")
        if not 1 <= n_channels <= 8:
            raise ValueError("n_channels must be 1-8")
        self.inputs = AmplifierInputs(trial, line or TriggerLine(trial.pulses, trial.config.duration_s))
        self.power_on_rate = rate
        self.n_channels = n_channels
        self.uid = int(uid if uid is not None else np.random.default_rng([seed, 0x01D]).integers(1, 2**32))
        self.name = "mecg-ads1292r 1.0 (virtual)"
        self._first_power_up = True
        self.samples_sent = 0
        super().__init__(link, timeline or Timeline(), timing or amplifier_timing(trial, seed), seed)

    def power_up(self) -> None:
        self.rate_hz = self.power_on_rate
        t0 = self.inputs.trial.config.amplifier.start_s if self._first_power_up else self.timeline.now()
        self._first_power_up = False
        self.clock = _SampleClock(t0, self.rate_hz, self.timing.drift_ppm)
        self.parser = FrameParser.for_device()
        self.streaming = False
        self.overflow = False
        self.seq = 0
        self._k_next = 0
        #: Sample index (on the current grid) of seq 0 of the latest START.
        self.start_index: int | None = None

    def sample_time(self, k: np.ndarray | int) -> np.ndarray:
        """True time (s) of sample ``k`` of the current sample grid."""
        return self.clock.time(np.asarray(k))

    # -- commands ---------------------------------------------------------------------------
    def _ack(self, cmd: int, status: Status, now: float) -> None:
        self.emit(encode(Ack(cmd, int(status), self.device_us(now))), now)

    def on_input(self, data: bytes, now: float) -> None:
        for f in self.parser.feed(data):
            st = check_command(f)
            if st != Status.OK:
                self._ack(f.type, st, now)
                continue
            msg = decode(f)
            if f.type == MsgType.IDENTIFY:
                info = Info(
                    1,
                    DeviceKind.AMPLIFIER,
                    self.n_channels,
                    2,
                    self.rate_hz,
                    LSB_PV,
                    self.uid,
                    self.device_us(now),
                    self.name,
                )
                self.emit(encode(info), now)
            elif f.type == MsgType.START:
                if not self.streaming:
                    self.seq, self.overflow, self.streaming = 0, False, True
                    self._k_next = self.clock.last_due(now) + 1
                    self.start_index = self._k_next
                self._ack(f.type, Status.OK, now)
            elif f.type == MsgType.STOP:
                self.streaming = False
                self._ack(f.type, Status.OK, now)
            elif f.type == MsgType.SET_RATE:
                if self.streaming:
                    self._ack(f.type, Status.BUSY, now)
                elif msg.rate_hz not in SUPPORTED_RATES_HZ:
                    self._ack(f.type, Status.BAD_ARG, now)
                else:
                    self.rate_hz = msg.rate_hz
                    self.clock = _SampleClock(now, self.rate_hz, self.timing.drift_ppm)
                    self._ack(f.type, Status.OK, now)
            elif f.type == MsgType.PING:
                self._ack(f.type, Status.OK, now)
            else:  # PULSE, SCHEDULE: trigger box commands
                self._ack(f.type, Status.UNKNOWN, now)

    # -- samples ----------------------------------------------------------------------------
    def tick(self, now: float) -> None:
        if not self.streaming:
            return
        last = self.clock.last_due(now)
        if last < self._k_next:
            return
        k = np.arange(self._k_next, last + 1)
        self._k_next = last + 1
        t = self.clock.time(k)
        counts = np.clip(np.round(self.inputs.ecg_mv(t, k) * 1e9 / LSB_PV), -(1 << 23), (1 << 23) - 1).astype(np.int64)
        digital = self.inputs.trig(t) * DIGITAL_TRIG + self.inputs.strobe(t) * DIGITAL_STROBE
        for i in range(k.size):
            chans = (int(counts[i]), *(int(0.7 * counts[i]) for _ in range(self.n_channels - 1)))
            status = STATUS_OVERFLOW if self.overflow else 0
            raw = encode(Data(self.seq, self.device_us(float(t[i])), int(digital[i]), status, chans))
            if self.emit(raw, float(t[i])):
                self.overflow = False
                self.samples_sent += 1
            else:
                self.overflow = True
            self.seq = (self.seq + 1) & 0xFFFF


class VirtualCyton(VirtualSerialDevice):
    """An OpenBCI Cyton (firmware v3) behind its dongle, on a pty: ECG on channel 1, TRIG on D11, STROBE on D12."""

    BANNER = (
        b"OpenBCI V3 8-16 channel\nOn Board ADS1299 Device ID: 0x3E\nLIS3DH Device ID: 0x33\n"
        b"Firmware: v3.1.2 (virtual)\n$$$"
    )

    def __init__(
        self,
        trial: Trial,
        *,
        link: str | os.PathLike | None = None,
        timeline: Timeline | None = None,
        line: TriggerLine | None = None,
        timing: DeviceTiming | None = None,
        seed: int = 0,
    ) -> None:
        self.inputs = AmplifierInputs(trial, line or TriggerLine(trial.pulses, trial.config.duration_s))
        self.samples_sent = 0
        self.start_index: int | None = None
        super().__init__(link, timeline or Timeline(), timing or amplifier_timing(trial, seed), seed, fifo_bytes=4096)

    def power_up(self) -> None:
        self.clock = _SampleClock(self.timeline.now(), cyton.RATE_HZ, self.timing.drift_ppm)
        self.streaming = False
        self.digital_mode = False
        self.counter = 0
        self._k_next = 0
        self._cmd = b""

    def sample_time(self, k: np.ndarray | int) -> np.ndarray:
        """True time (s) of sample ``k``."""
        return self.clock.time(np.asarray(k))

    def on_input(self, data: bytes, now: float) -> None:
        buf = self._cmd + data
        i = 0
        while i < len(buf):
            c = buf[i : i + 1]
            if c in (b"/", b"~"):  # two-character commands
                if i + 1 >= len(buf):
                    break
                arg = buf[i + 1 : i + 2]
                i += 2
                if c == b"/":
                    modes = {b"0": "default", b"3": "digital"}
                    if arg in modes:
                        self.digital_mode = arg == b"3"
                        self.emit(f"Success: {modes[arg]}$$$".encode(), now)
                    else:
                        self.emit(b"Failure: board mode not offered by this virtual Cyton$$$", now)
                else:
                    ok = arg == b"6"
                    self.emit(b"Success: Sample rate is 250Hz$$$" if ok else b"Failure: Invalid sample rate$$$", now)
                continue
            i += 1
            if c == cyton.CMD_SOFT_RESET:
                self.streaming, self.digital_mode = False, False
                self.emit(self.BANNER, now)
            elif c == cyton.CMD_START and not self.streaming:
                self.streaming, self.counter = True, 0
                self._k_next = self.clock.last_due(now) + 1
                self.start_index = self._k_next
            elif c == cyton.CMD_STOP:
                self.streaming = False
            # other single-character commands (channel settings, ...) are accepted silently
        self._cmd = buf[i:]

    def tick(self, now: float) -> None:
        if not self.streaming:
            return
        last = self.clock.last_due(now)
        if last < self._k_next:
            return
        k = np.arange(self._k_next, last + 1)
        self._k_next = last + 1
        t = self.clock.time(k)
        ch = np.zeros((k.size, cyton.N_CHANNELS), np.int64)
        ch[:, 0] = np.clip(np.round(self.inputs.ecg_mv(t, k) * 1e3 / cyton.UV_PER_COUNT), -(1 << 23), (1 << 23) - 1)
        aux = np.zeros((k.size, 6), np.uint8)
        if self.digital_mode:
            aux[:, cyton.DIGITAL_PINS["D11"]] = self.inputs.trig(t)
            aux[:, cyton.DIGITAL_PINS["D12"]] = self.inputs.strobe(t)
        footer = cyton.FOOTER_RAW_AUX if self.digital_mode else cyton.FOOTER_ACCEL
        counters = (self.counter + np.arange(k.size)) & 0xFF
        packets = cyton.encode_packets(counters, ch, aux, footer)
        for i in range(k.size):
            if self.emit(packets[i * cyton.PACKET_SIZE : (i + 1) * cyton.PACKET_SIZE], float(t[i])):
                self.samples_sent += 1
        self.counter = int(counters[-1] + 1) & 0xFF
