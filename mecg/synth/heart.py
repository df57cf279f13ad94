"""Heart-rate process coupled to expressions, and beat-by-beat ECG synthesis.

Heart rate (bpm) on the true timeline::

    HR(t) = mean + slow(t) + RSA(t) + sum of responses

``slow`` is an Ornstein-Uhlenbeck process (tau 20 s), ``RSA`` respiratory sinus arrhythmia at a
slowly wandering breathing rate. A *response* is a quick HR step centred on a moment (rise
time constant ``tau_s``) that relaxes over a few seconds: strong and fast at ME apexes, weaker
and slower at MaE apexes, and also at random moments with no expression (so ECG alone cannot
spot). Beats are placed by integrating 60/HR, with beat-to-beat RR jitter.

Each beat is a sum of Gaussian waves P, Q, R, S, T (the ECGSYN morphology of McSharry et al.
2003, the model behind NeuroKit2's ``ecg_simulate(method="ecgsyn")``), with the QT interval
scaled by sqrt(RR) (Bazett). Baseline wander, mains hum and white noise are added. Any span
of samples can be synthesised on its own, so a simulator can play the ECG in real time.

Under the ``paper`` and ``hard`` realism settings (:mod:`mecg.synth.realism`) responses are
unreliable (non-responding subjects, per-subject response probability, size and lag jitter), the
heart also accelerates for reasons unrelated to the face (startle at the stimulus onset,
spontaneous steps, posture shifts, stronger RSA), and the ECG carries muscle noise, electrode
motion and more baseline wander (:class:`EcgArtefacts`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mecg.synth.realism import Realism


@dataclass(frozen=True)
class HeartParams:
    """A subject's heart: rates in bpm, amplitudes in mV, times in s."""

    mean_hr_bpm: float = 72.0
    slow_sd_bpm: float = 3.0
    rsa_bpm: float = 2.5
    resp_hz: float = 0.25
    rr_jitter_s: float = 0.012
    #: Wave (amplitude mV, time relative to R at RR=1 s, width s) for P, Q, R, S, T.
    waves: tuple[tuple[float, float, float], ...] = (
        (0.12, -0.20, 0.025),
        (-0.12, -0.035, 0.010),
        (1.10, 0.0, 0.011),
        (-0.25, 0.035, 0.011),
        (0.30, 0.30, 0.050),
    )
    baseline_mv: float = 0.10
    mains_hz: float = 50.0
    mains_mv: float = 0.015
    noise_mv: float = 0.015
    #: The subject's rank (0-1) in cardiac reactivity: responds to expressions when below the
    #: realism's responder share (see :mod:`mecg.synth.realism`); 0 responds in every setting.
    responder_rank: float = 0.0
    #: Where (0-1) in the realism's range of per-expression response probabilities this subject sits.
    response_p_rank: float = 1.0

    @classmethod
    def random(cls, rng: np.random.Generator) -> HeartParams:
        """A plausible adult at rest: 60-85 bpm, varied RSA, morphology and noise."""
        base = cls()
        waves = tuple(
            (a * rng.uniform(0.8, 1.2), t * rng.uniform(0.9, 1.1), w * rng.uniform(0.9, 1.15)) for a, t, w in base.waves
        )
        return cls(
            mean_hr_bpm=rng.uniform(60, 85),
            slow_sd_bpm=rng.uniform(2.0, 4.0),
            rsa_bpm=rng.uniform(1.0, 2.5),
            resp_hz=rng.uniform(0.2, 0.3),
            rr_jitter_s=rng.uniform(0.005, 0.012),
            waves=waves,
            baseline_mv=rng.uniform(0.05, 0.15),
            mains_hz=50.0 if rng.random() < 0.5 else 60.0,
            noise_mv=rng.uniform(0.01, 0.025),
            responder_rank=rng.uniform(0, 1),
            response_p_rank=rng.uniform(0, 1),
        )


@dataclass(frozen=True)
class Response:
    """An HR step of ``amplitude_bpm`` centred at ``t_s`` with rise time constant ``tau_s`` and decay ``decay_s``."""

    t_s: float
    amplitude_bpm: float
    tau_s: float
    decay_s: float
    cause: str  # "ME", "MaE", "none" (a spontaneous acceleration), "startle" or "posture"

    def __call__(self, t: np.ndarray) -> np.ndarray:
        u = (t - self.t_s) / self.tau_s
        rise = 1.0 / (1.0 + np.exp(-np.clip(u, -50, 50)))
        decay = np.exp(-np.clip(t - self.t_s, 0, None) / self.decay_s)
        return self.amplitude_bpm * rise * decay


def draw_responses(
    rng: np.random.Generator,
    apexes: list[tuple[float, str]],
    duration_s: float,
    coupling: float,
    spurious_per_min: float = 1.0,
    lead_s: float = 0.3,
) -> list[Response]:
    """HR responses to expression apexes ``(t_s, "ME"|"MaE")`` plus spurious ones, scaled by ``coupling``.

    ME: 6-9 bpm x coupling, rise tau 0.12 s, decay 2-4 s. MaE: 3-5 bpm x coupling, tau 0.6 s. Spurious: like
    an ME, with no expression. ``coupling = 0`` gives no response at all (the null control).
    Each response is centred ``lead_s`` before the apex: the HR points sit at RR midpoints, so
    the slope of the HR curve then peaks at the apex itself, as the paper observed.
    """
    out = []
    for t, kind in apexes:
        sign = 1.0 if rng.random() < 0.75 else -1.0
        if kind == "ME":
            out.append(Response(t - lead_s, sign * coupling * rng.uniform(6, 9), 0.12, rng.uniform(2, 4), "ME"))
        else:
            out.append(Response(t - lead_s, sign * coupling * rng.uniform(3, 5), 0.6, rng.uniform(4, 8), "MaE"))
    n_spur = int(rng.poisson(spurious_per_min * duration_s / 60.0)) if coupling > 0 else 0
    for t in rng.uniform(0, duration_s, n_spur):
        sign = 1.0 if rng.random() < 0.75 else -1.0
        out.append(Response(float(t), sign * coupling * rng.uniform(6, 9), 0.12, rng.uniform(2, 4), "none"))
    return out


def draw_realistic_responses(
    rng: np.random.Generator,
    params: HeartParams,
    setting: Realism,
    apexes: list[tuple[float, str]],
    duration_s: float,
    coupling: float,
    stimulus_onsets_s: list[float],
    posture_s: np.ndarray,
    lead_s: float = 0.3,
) -> list[Response]:
    """HR responses under a realism ``setting`` other than ``easy`` (see :class:`~mecg.synth.realism.Realism`).

    Expression responses need a responding subject (``params.responder_rank`` below the share) and
    then happen with the subject's probability; size, sign (75 % accelerations) and lag (centre
    ``lead_s`` before the apex plus Gaussian jitter) vary per response, all scaled by ``coupling``.
    Spontaneous steps, the startle at each stimulus onset and posture shifts do not depend on
    the face or on ``coupling``: they are the heart's own life.
    """
    out: list[Response] = []
    responder = params.responder_rank < setting.responder_share
    lo, hi = setting.response_p
    p = lo + params.response_p_rank * (hi - lo)
    for t, kind in apexes:
        hit = rng.random() < p
        sign = 1.0 if rng.random() < 0.75 else -1.0
        jitter = rng.normal(0.0, setting.latency_sd_s) if setting.latency_sd_s > 0 else 0.0
        if not (responder and hit and coupling > 0):
            continue
        if kind == "ME":
            amp = sign * coupling * rng.uniform(*setting.me_bpm)
            out.append(Response(t - lead_s + jitter, amp, 0.12, rng.uniform(2, 4), "ME"))
        else:
            amp = sign * coupling * rng.uniform(*setting.mae_bpm)
            out.append(Response(t - lead_s + jitter, amp, 0.6, rng.uniform(4, 8), "MaE"))
    for t in rng.uniform(0, duration_s, rng.poisson(setting.spurious_per_min * duration_s / 60.0)):
        sign = 1.0 if rng.random() < 0.75 else -1.0
        out.append(Response(float(t), sign * rng.uniform(*setting.me_bpm), 0.12, rng.uniform(2, 4), "none"))
    for t in stimulus_onsets_s:
        if rng.random() < setting.startle_p:
            delay = rng.uniform(0.5, 1.5)
            out.append(Response(t + delay, rng.uniform(*setting.startle_bpm), 0.3, rng.uniform(2, 4), "startle"))
    for t in posture_s:
        out.append(Response(float(t), rng.uniform(*setting.posture_bpm), 0.8, rng.uniform(6, 12), "posture"))
    return out


@dataclass(frozen=True)
class EcgArtefacts:
    """ECG noise beyond the heart's own: muscle (EMG), electrode motion and extra baseline wander (mV).

    Everything depends on true time only, so any chunking of the samples gives the same values.
    """

    t0_s: float
    rate_hz: float
    emg: np.ndarray
    motion: tuple[tuple[float, float, float], ...]  # (t_s, amplitude mV, decay s)
    wander: tuple[tuple[float, float, float], ...]  # (amplitude mV, frequency Hz, phase rad)

    @classmethod
    def draw(cls, rng: np.random.Generator, setting: Realism, duration_s: float, posture_s: np.ndarray) -> EcgArtefacts:
        """EMG on a 2 kHz grid (20-150 Hz, rest level plus bursts); motion artefacts at random and at posture shifts."""
        from scipy.signal import butter, sosfiltfilt

        rate, t0 = 2000.0, -3.0
        n = int((duration_s + 6.0) * rate)
        emg = np.zeros(n)
        if setting.emg_mv > 0:
            sos = butter(4, [20.0, 150.0], btype="bandpass", fs=rate, output="sos")
            x = sosfiltfilt(sos, rng.standard_normal(n))
            x /= x.std()
            env = np.ones(n)
            t = t0 + np.arange(n) / rate
            for start in rng.uniform(0, duration_s, rng.poisson(setting.emg_bursts_per_min * duration_s / 60.0)):
                length, gain = rng.uniform(0.5, 3.0), rng.uniform(3.0, 6.0)
                u = np.clip((t - start) / length, 0, 1)
                env += (gain - 1.0) * np.sin(np.pi * u) ** 2
            emg = setting.emg_mv * x * env
        times = np.r_[rng.uniform(0, duration_s, rng.poisson(setting.motion_per_min * duration_s / 60.0)), posture_s]
        motion = tuple(
            (float(t), float(rng.choice([-1.0, 1.0]) * rng.uniform(*setting.motion_mv)), float(rng.uniform(0.3, 1.5)))
            for t in times
        )
        extra = max(setting.baseline_scale - 1.0, 0.0)
        wander = tuple(
            (float(0.05 * extra * rng.uniform(0.5, 1.5)), float(f), float(rng.uniform(0, 2 * np.pi)))
            for f in rng.uniform(0.1, 0.6, 3)
        )
        return cls(t0, rate, emg.astype(np.float32), motion, wander)

    def __call__(self, t_s: np.ndarray) -> np.ndarray:
        """The artefacts (mV) at true times ``t_s``."""
        t = np.asarray(t_s, dtype=np.float64)
        grid = self.t0_s + np.arange(self.emg.size) / self.rate_hz
        out = np.interp(t, grid, self.emg.astype(np.float64), left=0.0, right=0.0)
        for t0, amp, decay in self.motion:
            u = t - t0
            on = (u > 0) & (u < 8 * decay)
            out[on] += amp * (1 - np.exp(-u[on] / 0.03)) * np.exp(-u[on] / decay)
        for amp, f, ph in self.wander:
            out += amp * np.sin(2 * np.pi * f * t + ph)
        return out


@dataclass
class Heart:
    """One trial's heart: the HR curve, the beat times and the ECG they make.

    Build with :meth:`simulate`; then :meth:`ecg` gives the waveform at any true times.
    """

    params: HeartParams
    beats_s: np.ndarray
    rr_s: np.ndarray
    responses: list[Response]
    duration_s: float
    _phases: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(6))
    _seed: int = 0
    #: EMG, electrode motion and extra wander (realism ``paper``/``hard``); None adds nothing.
    artefacts: EcgArtefacts | None = field(default=None, repr=False)

    @classmethod
    def simulate(
        cls, params: HeartParams, duration_s: float, responses: list[Response], rng: np.random.Generator
    ) -> Heart:
        """Place beats over ``[-2, duration_s + 2]`` s by integrating 60/HR(t)."""
        grid_dt = 0.05
        t = np.arange(-5.0, duration_s + 5.0, grid_dt)
        # Ornstein-Uhlenbeck slow variability, tau 20 s.
        tau = 20.0
        a = np.exp(-grid_dt / tau)
        eps = rng.standard_normal(t.size) * params.slow_sd_bpm * np.sqrt(1 - a * a)
        slow = np.empty(t.size)
        slow[0] = rng.standard_normal() * params.slow_sd_bpm
        for i in range(1, t.size):
            slow[i] = a * slow[i - 1] + eps[i]
        resp_phase = (
            2
            * np.pi
            * np.cumsum(params.resp_hz * (1 + 0.1 * np.sin(2 * np.pi * t / 37.0 + rng.uniform(0, 6))))
            * grid_dt
        )
        hr = params.mean_hr_bpm + slow + params.rsa_bpm * np.sin(resp_phase + rng.uniform(0, 2 * np.pi))
        for r in responses:
            hr += r(t)
        hr = np.clip(hr, 40, 160)
        beats = [-2.0 + rng.uniform(0, 0.5)]
        while beats[-1] < duration_s + 2.0:
            rr = 60.0 / np.interp(beats[-1], t, hr) + rng.standard_normal() * params.rr_jitter_s
            beats.append(beats[-1] + max(rr, 0.3))
        b = np.asarray(beats)
        return cls(
            params,
            b,
            np.diff(b, prepend=b[0] - 60.0 / params.mean_hr_bpm),
            responses,
            duration_s,
            rng.uniform(0, 2 * np.pi, 6),
            int(rng.integers(2**31)),
        )

    def ecg(self, t_s: np.ndarray, sample_index: np.ndarray | None = None) -> np.ndarray:
        """ECG in mV at true times ``t_s``.

        ``sample_index`` (int) seeds the per-sample noise, so any split into chunks gives the same values.
        """
        p = self.params
        t = np.asarray(t_s, dtype=np.float64)
        out = np.zeros(t.shape)
        if t.size == 0:
            return out
        lo = np.searchsorted(self.beats_s, t.min() - 1.0)
        hi = np.searchsorted(self.beats_s, t.max() + 1.0)
        for j in range(lo, hi):
            b, rr = self.beats_s[j], self.rr_s[j]
            s = np.sqrt(max(rr, 0.3))
            i0, i1 = np.searchsorted(t, [b - 0.35 * s, b + 0.7 * s])
            if i0 >= i1:
                continue
            dt = t[i0:i1] - b
            for amp, off, width in p.waves:
                off_s = off * s if off > 0.05 else off  # QT scales with sqrt(RR); P-QRS does not
                out[i0:i1] += amp * np.exp(-0.5 * ((dt - off_s) / (width * (s if off > 0.05 else 1.0))) ** 2)
        ph = self._phases
        out += p.baseline_mv * (np.sin(2 * np.pi * 0.05 * t + ph[0]) + 0.5 * np.sin(2 * np.pi * p.resp_hz * t + ph[1]))
        out += p.mains_mv * np.sin(2 * np.pi * p.mains_hz * t + ph[2])
        idx = np.arange(t.size) if sample_index is None else np.asarray(sample_index)
        out += p.noise_mv * _hash_normal(idx, self._seed)
        if self.artefacts is not None:
            out += self.artefacts(t)
        return out

    def hr_at(self, t_s: np.ndarray) -> np.ndarray:
        """Instantaneous HR (bpm) from the beats, linearly interpolated: for checks and plots."""
        return np.interp(t_s, self.beats_s, 60.0 / self.rr_s)


def _hash_normal(index: np.ndarray, seed: int) -> np.ndarray:
    """Standard-normal noise that depends only on (sample index, seed): chunking does not change it."""
    x = np.asarray(index, dtype=np.uint64) + np.uint64((seed * 0x9E3779B97F4A7C15) % 2**64)
    u = []
    for k in (1, 2):
        z = x + np.uint64((k * 0xBF58476D1CE4E5B9) % 2**64)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
        u.append(((z >> np.uint64(11)).astype(np.float64) + 0.5) / float(2**53))
    return np.sqrt(-2.0 * np.log(u[0])) * np.cos(2.0 * np.pi * u[1])
