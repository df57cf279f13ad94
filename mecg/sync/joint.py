"""One fit for every clock segment: camera segments, ECG segments and the line between them.

An observation says that one event (a trigger pulse's rising edge, or a frame's exposure start
seen on the strobe channel) happened somewhere in an interval of camera time and somewhere in an
interval of (provisional) ECG time. Points are intervals of width zero; an LED edge that fell
between two exposures is an interval as long as the dead time; an amplifier edge between
samples ``k-1`` and ``k`` is an interval one sample long.

The model, for an observation of camera segment ``v`` and ECG segment ``s``::

    ecg_provisional + d[s] = a[v] + b * camera_time

``b`` is shared (one camera crystal, one amplifier crystal), ``a[v]`` is each camera segment's
offset, ``d[s]`` corrects the LSL placement of ECG segment ``s`` (see :mod:`mecg.sync.segments`);
the first ECG segment of every connected group of segments keeps ``d = 0``. The residual of an
observation is how far the line misses its interval (zero inside it), scaled by ``scale_s``, plus
a weak pull (``center_weight``) towards the middle of the interval so that a fit whose intervals
all overlap lands in the middle of what they allow. A robust loss keeps a wrong pair from
pulling the line.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import least_squares


@dataclass
class Observations:
    """Paired events: camera segment and interval, ECG segment and interval (s)."""

    video_seg: np.ndarray
    ecg_seg: np.ndarray
    cam_lo: np.ndarray
    cam_hi: np.ndarray
    ecg_lo: np.ndarray
    ecg_hi: np.ndarray

    @classmethod
    def empty(cls) -> Observations:
        z = np.zeros(0)
        return cls(z.astype(np.int64), z.astype(np.int64), z, z, z, z)

    def __len__(self) -> int:
        return int(self.video_seg.size)

    def take(self, keep: np.ndarray) -> Observations:
        """The observations selected by a boolean mask or index array."""
        return Observations(
            self.video_seg[keep],
            self.ecg_seg[keep],
            self.cam_lo[keep],
            self.cam_hi[keep],
            self.ecg_lo[keep],
            self.ecg_hi[keep],
        )

    @staticmethod
    def concat(parts: list[Observations]) -> Observations:
        if not parts:
            return Observations.empty()
        return Observations(
            *(np.concatenate([getattr(p, f) for p in parts]) for f in Observations.__dataclass_fields__)
        )


@dataclass
class JointFit:
    """The fitted clocks: ``slope`` (b), ``intercepts`` (a per camera segment), ``corrections`` (d per ECG segment)."""

    slope: float
    intercepts: dict[int, float]
    corrections: dict[int, float]
    residuals_s: np.ndarray  # how far the line misses each observation's interval (0 inside)
    midpoint_residuals_s: np.ndarray  # ECG midpoint minus the line at the camera midpoint
    observations: Observations
    per_segment_count: dict[int, int] = field(default_factory=dict)

    @property
    def drift_ppm(self) -> float:
        """ECG-clock seconds per camera-clock second, minus one, in ppm."""
        return (self.slope - 1.0) * 1e6

    def predict(self, video_seg: int, cam_t: np.ndarray) -> np.ndarray:
        """ECG-clock times (s) of camera times ``cam_t`` in camera segment ``video_seg``."""
        return self.intercepts[video_seg] + self.slope * np.asarray(cam_t, dtype=np.float64)

    @property
    def rms_s(self) -> float:
        r = self.residuals_s
        return float(np.sqrt(np.mean(r**2))) if r.size else float("nan")

    @property
    def max_s(self) -> float:
        r = self.residuals_s
        return float(np.max(np.abs(r))) if r.size else float("nan")


def _components(obs: Observations) -> dict[int, int]:
    """Reference ECG segment of each ECG segment: the smallest one connected to it through camera segments."""
    parent: dict[tuple[str, int], tuple[str, int]] = {}

    def find(x: tuple[str, int]) -> tuple[str, int]:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for v, s in zip(obs.video_seg.tolist(), obs.ecg_seg.tolist()):
        ra, rb = find(("v", v)), find(("e", s))
        if ra != rb:
            parent[ra] = rb
    groups: dict[tuple[str, int], list[int]] = {}
    for s in set(obs.ecg_seg.tolist()):
        groups.setdefault(find(("e", s)), []).append(s)
    return {s: min(members) for members in groups.values() for s in members}


def fit_joint(
    obs: Observations,
    *,
    scale_s: float = 0.0005,
    center_weight: float = 0.1,
    slope_guess: float = 1.0,
    max_drift_ppm: float = 500.0,
) -> JointFit:
    """Fit slope, camera-segment offsets and ECG-segment corrections to ``obs`` (see the module docstring).

    The slope stays within ``max_drift_ppm`` of 1 (what clock crystals do): a few pulses at a low
    frame rate may not pin the drift, and physics does. Raises ``ValueError`` with fewer than two
    observations.
    """
    if len(obs) < 2:
        raise ValueError("need at least two observations to fit a clock line")
    vids = sorted(set(obs.video_seg.tolist()))
    ref = _components(obs)
    free = sorted(s for s, r in ref.items() if s != r)
    vpos = {v: 1 + i for i, v in enumerate(vids)}
    dpos = {s: 1 + len(vids) + i for i, s in enumerate(free)}
    iv = np.array([vpos[v] for v in obs.video_seg.tolist()], dtype=np.int64)
    idp = np.array([dpos.get(s, -1) for s in obs.ecg_seg.tolist()], dtype=np.int64)
    cm, ch = 0.5 * (obs.cam_lo + obs.cam_hi), 0.5 * (obs.cam_hi - obs.cam_lo)
    em, eh = 0.5 * (obs.ecg_lo + obs.ecg_hi), 0.5 * (obs.ecg_hi - obs.ecg_lo)
    x_ref = float(np.mean(cm))  # centre the camera times so the offsets are well conditioned
    cc = cm - x_ref
    has_d = idp >= 0

    def parts(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d = np.where(has_d, p[np.maximum(idp, 0)], 0.0)
        r = em + d - (p[iv] + p[0] * cc)
        h = abs(p[0]) * ch + eh
        return r, h

    def fun(p: np.ndarray) -> np.ndarray:
        r, h = parts(p)
        viol = np.sign(r) * np.maximum(np.abs(r) - h, 0.0)
        return np.concatenate([viol / scale_s, center_weight * r / np.maximum(h, scale_s)])

    # start: least squares on the midpoints with the slope fixed at the guess
    lim = max_drift_ppm * 1e-6
    slope_guess = float(np.clip(slope_guess, 1 - 0.99 * lim, 1 + 0.99 * lim))
    p0 = np.zeros(1 + len(vids) + len(free))
    p0[0] = slope_guess
    for v in vids:
        m = obs.video_seg == v
        p0[vpos[v]] = float(np.median(em[m] - slope_guess * cc[m]))
    for s in free:
        m = obs.ecg_seg == s
        v = obs.video_seg[m]
        p0[dpos[s]] = float(np.median(np.array([p0[vpos[x]] for x in v.tolist()]) + slope_guess * cc[m] - em[m]))
    lower = np.full(p0.size, -np.inf)
    upper = np.full(p0.size, np.inf)
    lower[0], upper[0] = 1 - lim, 1 + lim
    sol = least_squares(fun, p0, loss="soft_l1", f_scale=1.0, x_scale="jac", bounds=(lower, upper))
    p = sol.x
    r, h = parts(p)
    viol = np.sign(r) * np.maximum(np.abs(r) - h, 0.0)
    intercepts = {v: float(p[vpos[v]] - p[0] * x_ref) for v in vids}
    corrections = {s: (float(p[dpos[s]]) if s in dpos else 0.0) for s in ref}
    counts = {v: int(np.sum(obs.video_seg == v)) for v in vids}
    return JointFit(float(p[0]), intercepts, corrections, viol, r, obs, counts)


def feasible_range_s(
    obs: Observations,
    at: list[tuple[int, int, float]],
    fit: JointFit,
    *,
    slack0_s: float = 2e-5,
    max_slack_s: float = 0.01,
    max_drift_ppm: float = 500.0,
) -> tuple[float, float]:
    """How far frames could move against their ECG samples and still agree with every observation.

    Every clock line (slope, segment offsets, ECG corrections) that passes through all the
    observations' intervals, widened by ``slack_s``, is allowed, with the drift within
    ``max_drift_ppm``; linear programs find the lowest and highest position such a line gives a
    frame at camera time ``x`` of camera segment ``v`` within ECG segment ``s`` (``at`` holds
    ``(v, s, x)``): the ECG time minus that segment's correction, i.e. where among the recorded
    samples the frame falls. The farthest any allowed line lies from ``fit``'s own answer there,
    over all queries, is how sure the alignment is: a bound measured on the data, not a residual
    of the fit itself. ``slack_s`` starts at ``slack0_s`` and doubles
    until the intervals can all be met (noisy points rarely meet exactly); it is returned so it
    can be added to the bound. Returns ``(bound_s, slack_s)``, or ``(nan, nan)`` when even
    ``max_slack_s`` cannot reconcile the observations.
    """
    from scipy.optimize import linprog

    vids = sorted(set(obs.video_seg.tolist()))
    ref = _components(obs)
    free = sorted(s for s, r in ref.items() if s != r)
    nv, nd = len(vids), len(free)
    vpos = {v: 1 + i for i, v in enumerate(vids)}
    dpos = {s: 1 + nv + i for i, s in enumerate(free)}
    x_ref = float(np.mean(0.5 * (obs.cam_lo + obs.cam_hi)))
    n = len(obs)
    rows = np.zeros((2 * n, 1 + nv + nd))
    for k in range(n):
        v, s = int(obs.video_seg[k]), int(obs.ecg_seg[k])
        # a + b (c_lo - x_ref) - d <= e_hi + slack ;  -(a + b (c_hi - x_ref) - d) <= -(e_lo - slack)
        rows[2 * k, 0], rows[2 * k, vpos[v]] = obs.cam_lo[k] - x_ref, 1.0
        rows[2 * k + 1, 0], rows[2 * k + 1, vpos[v]] = -(obs.cam_hi[k] - x_ref), -1.0
        if s in dpos:
            rows[2 * k, dpos[s]], rows[2 * k + 1, dpos[s]] = -1.0, 1.0
    rhs0 = np.empty(2 * n)
    rhs0[0::2], rhs0[1::2] = obs.ecg_hi, -obs.ecg_lo
    lim = max_drift_ppm * 1e-6
    bounds = [(1 - lim, 1 + lim)] + [(None, None)] * (nv + nd)
    queries, answers = [], []
    for v, s, x in at:
        if v not in vpos:
            continue
        c = np.zeros(1 + nv + nd)
        c[0], c[vpos[v]] = x - x_ref, 1.0
        if s in dpos:
            c[dpos[s]] = -1.0
        queries.append(c)
        answers.append(float(fit.predict(v, x)) - fit.corrections.get(s, 0.0))
    if not queries:
        return float("nan"), float("nan")
    slack = slack0_s
    while slack <= max_slack_s:
        spans = []
        for c, ans in zip(queries, answers):
            lo = linprog(c, A_ub=rows, b_ub=rhs0 + slack, bounds=bounds, method="highs")
            hi = linprog(-c, A_ub=rows, b_ub=rhs0 + slack, bounds=bounds, method="highs")
            if lo.status != 0 or hi.status != 0:
                break
            spans.append(max(-hi.fun - ans, ans - lo.fun))
        else:
            return float(max(spans)), slack
        slack *= 2
    return float("nan"), float("nan")
