"""Two lab computers on one machine: Linux network namespaces joined by a veth pair, and the truth of what was lost.

:class:`TwoHosts` makes a "devices" host and a "recorder" host, each a network namespace of its
own with its own hostname (a UTS namespace per process, ``unshare -u``), joined by one veth link
with private addresses that exist only inside these namespaces (no traffic leaves them). Each side
gets an LSL configuration file whose ``KnownPeers`` names the other side, as a lab's would. The
link can be taken down and up (an unplugged cable), and processes started on either side are
killed and the namespaces removed on :meth:`TwoHosts.close`, even after a failure.

The ``*_truth`` functions tell which device frames, samples and trigger pulses a recording of a
``mecg simulate`` run really lacks, from the simulator's ground truth (``simulation.json``) and
not from the recorder's own counting: the camera's device frame index follows exactly from its
exposure stamp, the amplifier's sample index from the sample values themselves (its ECG noise is
seeded by the sample index), and the trigger pulses are listed by the simulator.

Used by tests/test_multihost.py and benchmarks/bench_multihost.py.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEVICES, RECORDER = "devices", "recorder"
_LINK = "mh0"  # the veth end's name inside each namespace (each namespace has its own names)


def namespace_problem() -> str | None:
    """Why network namespaces cannot be made here (no ``ip``/``unshare``, not root or CAP_NET_ADMIN), or None."""
    for tool in ("ip", "unshare"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (iproute2 / util-linux)"
    name = f"mecg-probe-{uuid.uuid4().hex[:8]}"
    r = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if r.returncode != 0:
        return f"cannot create a network namespace (needs root or CAP_NET_ADMIN): {r.stderr.strip()}"
    try:
        r = subprocess.run(
            ["ip", "netns", "exec", name, "unshare", "-u", "hostname", "probe"], capture_output=True, text=True
        )
        if r.returncode != 0:
            return f"cannot give a process its own hostname (unshare -u): {r.stderr.strip()}"
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return None


def wait_for(what: str, cond: Callable[[], object], timeout_s: float, poll_s: float = 0.05) -> object:
    """Poll ``cond`` until it returns something true (returned) or raise TimeoutError naming ``what``."""
    end = time.monotonic() + timeout_s
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() > end:
            raise TimeoutError(f"{what}: not within {timeout_s:g} s")
        time.sleep(poll_s)


@dataclass
class Proc:
    """A process started on one side; its stdout and stderr go to files in the lab's folder."""

    side: str
    name: str
    popen: subprocess.Popen
    out: Path
    err: Path
    started: float  # time.monotonic() (= the LSL clock on Linux) just before it was spawned

    def text(self) -> str:
        """Its stdout and stderr so far."""
        return self.out.read_text(errors="replace") + self.err.read_text(errors="replace")


#: The logger :meth:`TwoHosts.log_pushed` runs: argv = stream name, .npy path, seconds to live at most.
_PUSHED_LOG = r"""
import signal, sys, time, numpy as np, pylsl
stop = []
signal.signal(signal.SIGINT, lambda *a: stop.append(1))
deadline = time.monotonic() + float(sys.argv[3])
info = pylsl.resolve_byprop("name", sys.argv[1], 1, 30.0)[0]
dtype = {pylsl.cf_float32: np.float32, pylsl.cf_double64: np.float64, pylsl.cf_int8: np.int8,
         pylsl.cf_int16: np.int16, pylsl.cf_int32: np.int32, pylsl.cf_int64: np.int64}[info.channel_format()]
inlet = pylsl.StreamInlet(info, max_buflen=60, recover=True)
inlet.open_stream(timeout=10.0)
buf = np.empty((256, info.channel_count()), dtype)
got = []
print("logging", flush=True)
while not stop and time.monotonic() < deadline:
    _, ts = inlet.pull_chunk(timeout=0.02, max_samples=256, dest_obj=buf)
    got.extend(ts)
np.save(sys.argv[2], np.asarray(got, dtype=np.float64))
"""


def _started(proc: Proc, text: str) -> bool:
    if proc.popen.poll() is not None:
        raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.text()[-3000:]}")
    return text in proc.text()


def _signal_state(pid: int) -> str:
    """The signal masks of process ``pid`` (ignored, blocked, caught; hex bit sets as in /proc), for a stuck stop."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError as exc:
        return f"no /proc status ({exc})"
    return ", ".join(line.replace("\t", " ") for line in lines if line.startswith(("SigIgn", "SigBlk", "SigCgt")))


class TwoHosts:
    """A devices host and a recorder host (network + UTS namespaces) joined by one veth link.

    ``folder`` holds the LSL configs (``devices.cfg``, ``recorder.cfg``) and each process's output.
    Use as a context manager (or call :meth:`close`): every process started here is killed and
    the namespaces deleted, whatever happened.
    """

    def __init__(self, folder: Path, subnet: str = "10.213.0") -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        tag = uuid.uuid4().hex[:8]
        # the creating process's id in the names: a later run removes what a killed run left behind
        self.ns = {DEVICES: f"mecg-dev-{os.getpid()}-{tag}", RECORDER: f"mecg-rec-{os.getpid()}-{tag}"}
        self.hostname = {DEVICES: f"devpc-{tag}", RECORDER: f"recpc-{tag}"}
        self.addr = {DEVICES: f"{subnet}.1", RECORDER: f"{subnet}.2"}
        self.cfg = {side: self.folder / f"{side}.cfg" for side in (DEVICES, RECORDER)}
        self.procs: list[Proc] = []
        self._made: list[str] = []

    # -- the network ----------------------------------------------------------------------------
    def _ip(self, *args: str) -> None:
        r = subprocess.run(["ip", *args], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"ip {' '.join(args)}: {r.stderr.strip()}")

    @staticmethod
    def remove_leftovers() -> list[str]:
        """Delete namespaces of earlier runs whose creating process is gone (a killed test); returns their names."""
        r = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
        gone = []
        for line in r.stdout.splitlines():
            m = re.fullmatch(r"(mecg-(?:dev|rec)-(\d+)-[0-9a-f]{8})(?: \(id: \d+\))?", line.strip())
            if m is None:
                continue
            try:
                os.kill(int(m.group(2)), 0)
            except ProcessLookupError:
                subprocess.run(["ip", "netns", "del", m.group(1)], capture_output=True)
                gone.append(m.group(1))
            except PermissionError:
                pass  # alive, another user's
        return gone

    def up(self) -> TwoHosts:
        """Create the namespaces, the link, the addresses and both LSL configs (after removing leftovers)."""
        self.remove_leftovers()
        for side in (DEVICES, RECORDER):
            self._ip("netns", "add", self.ns[side])
            self._made.append(self.ns[side])
        d, r = self.ns[DEVICES], self.ns[RECORDER]
        self._ip("link", "add", _LINK, "netns", d, "type", "veth", "peer", "name", _LINK, "netns", r)
        for side, other in ((DEVICES, RECORDER), (RECORDER, DEVICES)):
            ns = self.ns[side]
            self._ip("-n", ns, "addr", "add", f"{self.addr[side]}/30", "dev", _LINK)
            self._ip("-n", ns, "link", "set", "lo", "up")
            self._ip("-n", ns, "link", "set", _LINK, "up")
            # LSL also asks by multicast: give it a route on the link (it stays inside the namespaces)
            self._ip("-n", ns, "route", "add", "224.0.0.0/4", "dev", _LINK)
            self.cfg[side].write_text(
                f"; {side} host of a two-host test lab: discovery asks the other host directly\n"
                f"[lab]\nKnownPeers = {{{self.addr[other]}}}\n\n[log]\nlevel = -2\n"
            )
        return self

    def link(self, up: bool) -> None:
        """Plug (``True``) or unplug (``False``) the cable: the recorder side's link goes up or down."""
        self._ip("-n", self.ns[RECORDER], "link", "set", _LINK, "up" if up else "down")

    # -- processes ------------------------------------------------------------------------------
    def start(self, side: str, name: str, argv: Sequence[str], env: dict[str, str] | None = None) -> Proc:
        """Run ``argv`` on ``side`` (its namespace, its hostname, ``LSLAPICFG`` = its config)."""
        out, err = self.folder / f"{name}.out", self.folder / f"{name}.err"
        e = dict(os.environ if env is None else env)
        e["LSLAPICFG"] = str(self.cfg[side])
        e.setdefault("PYTHONUNBUFFERED", "1")
        cmd = [
            "ip", "netns", "exec", self.ns[side],
            "unshare", "-u", "sh", "-c", 'hostname "$0" && exec "$@"', self.hostname[side], *argv,
        ]  # fmt: skip
        with open(out, "wb") as fo, open(err, "wb") as fe:
            t = time.monotonic()
            p = subprocess.Popen(cmd, stdout=fo, stderr=fe, stdin=subprocess.DEVNULL, env=e, cwd=self.folder)
        proc = Proc(side, name, p, out, err, t)
        self.procs.append(proc)
        return proc

    def log_pushed(self, side: str, stream: str, npy: Path, life_s: float = 600.0) -> Proc:
        """Log every timestamp the stream named ``stream`` pushes, by an inlet on its own ``side`` (untouched by the
        link); :meth:`stop` it (SIGINT) and :func:`numpy.load` ``npy``. It ends by itself after ``life_s``."""
        argv = [sys.executable, "-c", _PUSHED_LOG, stream, str(npy), f"{life_s:g}"]
        proc = self.start(side, f"pushed-{stream}", argv)
        wait_for(f"logger of {stream} ready", lambda: _started(proc, "logging"), 60)
        return proc

    def stop(self, proc: Proc, sig: int = signal.SIGINT, timeout_s: float = 10.0) -> int:
        """Send ``sig`` (SIGKILL after ``timeout_s``) and reap; returns the exit status."""
        if proc.popen.poll() is None:
            proc.popen.send_signal(sig)
            try:
                proc.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                with open(proc.err, "a") as fe:  # shows up in proc.text(): was the signal ignored or blocked?
                    fe.write(f"\n[netns] no exit {timeout_s:g} s after signal {sig}: {_signal_state(proc.popen.pid)}\n")
                proc.popen.kill()
                proc.popen.wait()
        return proc.popen.returncode

    def close(self) -> None:
        """Stop every process started here, then delete the namespaces (idempotent)."""
        for p in reversed(self.procs):
            if p.popen.poll() is None:
                self.stop(p, signal.SIGTERM, 5.0)
        for ns in self._made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self._made.clear()

    def __enter__(self) -> TwoHosts:
        try:
            return self.up()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- truth of a simulated recording ------------------------------------------------------------
def read_truth(path: Path) -> dict:
    """The ``simulation.json`` a ``mecg simulate`` run writes (every 5 s and when it stops)."""
    return json.loads(Path(path).read_text())


@dataclass
class Loss:
    """What a recording lacks: ``missing`` device units (frames, samples, pulses) in total and per run.

    ``runs``: (first missing device index, count, LSL time of the last unit recorded before it)
    for each run of consecutive missing units between the first and last one recorded.
    ``device_first``/``device_last``: device indices of the first and last recorded.
    """

    recorded: int
    missing: int
    runs: list[tuple[int, int, float]]
    device_first: int
    device_last: int

    def missing_between(self, t0: float, t1: float) -> int:
        """Missing units in the runs that start after a unit recorded at LSL time t0..t1."""
        return sum(n for _, n, t in self.runs if t0 <= t <= t1)


def _runs(device: np.ndarray, ts: np.ndarray) -> list[tuple[int, int, float]]:
    step = np.diff(device)
    at = np.flatnonzero(step > 1)
    return [(int(device[i] + 1), int(step[i] - 1), float(ts[i])) for i in at]


def camera_truth(truth: dict, timestamps: np.ndarray) -> Loss:
    """Device frames missing from a recorded virtual-camera stream (its stamps are exact exposure starts)."""
    cam = truth["camera"]
    ts = np.asarray(timestamps, dtype=np.float64)
    device = np.rint((ts - truth["t0_lsl_s"] - cam["start_s"]) * cam["rate_hz"]).astype(np.int64)
    if np.any(np.diff(device) < 1):
        raise AssertionError("a device frame was recorded twice or out of order")
    span = int(device[-1] - device[0] + 1)
    return Loss(len(ts), span - len(ts), _runs(device, ts), int(device[0]), int(device[-1]))


def _amplifier_values(truth: dict, k: np.ndarray) -> np.ndarray:
    """The virtual amplifier's first ECG channel (mV) at sample indices ``k`` of its current grid."""
    from mecg.acquire.sim_world import TriggerLine
    from mecg.acquire.virtual_amplifier import LSB_PV, AmplifierInputs
    from mecg.synth import Subject, Trial, TrialConfig

    c = truth["config"]
    key = (c["seed"], c["duration_s"], c["fps"], c["width"], c["height"], c["me_per_min"], c["mae_per_min"])
    inputs = _INPUTS.get(key)
    if inputs is None:
        trial = Trial(
            Subject.random(f"S{c['seed']:02d}", c["seed"]),
            0,
            TrialConfig(
                duration_s=c["duration_s"],
                fps=c["fps"],
                width=c["width"],
                height=c["height"],
                color=c["color"],
                me_per_min=c["me_per_min"],
                mae_per_min=c["mae_per_min"],
            ),
        )
        inputs = _INPUTS[key] = AmplifierInputs(trial, TriggerLine())
    clock = truth["amplifier"]["sample_clock"]
    t = clock["t0_s"] + k.astype(np.float64) / clock["rate_hz"]
    counts = np.clip(np.round(inputs.ecg_mv(t, k) * 1e9 / LSB_PV), -(1 << 23), (1 << 23) - 1)
    return counts * (LSB_PV * 1e-9)


_INPUTS: dict[tuple, object] = {}


def _locate(truth: dict, values: np.ndarray, t_first: float, search: int = 400) -> int:
    """Device sample index of ``values[0]``: where the amplifier's own values match ``values`` (tens of samples)."""
    clock = truth["amplifier"]["sample_clock"]
    latency = truth["amplifier"]["timing"]["latency_s"]
    guess = round((t_first - latency - truth["t0_lsl_s"] - clock["t0_s"]) * clock["rate_hz"])
    m = len(values)
    lo = max(0, guess - search)
    ks = np.arange(lo, guess + search + m)
    ref = _amplifier_values(truth, ks)
    tol = 0.6 * 48081e-9  # mV: a little over half a count (float32 rounding of the recorded values)
    windows = np.lib.stride_tricks.sliding_window_view(ref, m)
    hit = np.flatnonzero(np.all(np.abs(windows - values[None, :]) <= tol, axis=1))
    if hit.size != 1:
        raise AssertionError(f"{hit.size} places in the amplifier's samples match a recorded run near index {guess}")
    return int(ks[hit[0]])


def ecg_truth(truth: dict, values: np.ndarray, timestamps: np.ndarray, m: int = 48) -> Loss:
    """Amplifier samples missing from a recorded ECG stream (first channel ``values``, mV).

    The recording is cut where its timestamps step by more than 1.5 sample periods; the device index
    of each piece's first and last samples is found by matching ``m`` recorded values against the
    amplifier's own (index-seeded noise makes each place unique). A piece whose ends are further
    apart than its length lost samples inside it too, and is counted.
    """
    v = np.asarray(values, dtype=np.float64)
    ts = np.asarray(timestamps, dtype=np.float64)
    rate = truth["amplifier"]["sample_clock"]["rate_hz"]
    cuts = np.flatnonzero(np.diff(ts) > 1.5 / rate) + 1
    bounds = [0, *cuts.tolist(), len(ts)]
    runs: list[tuple[int, int, float]] = []
    first = last = -1
    for a, b in itertools.pairwise(bounds):
        n = min(m, b - a)
        k_a = _locate(truth, v[a : a + n], ts[a])
        k_b = _locate(truth, v[b - n : b], ts[b - n]) + n - 1
        inside = (k_b - k_a + 1) - (b - a)
        if inside < 0:
            raise AssertionError("an amplifier sample was recorded twice inside one piece")
        if inside:  # lost without a timestamp step (the driver's stamps did not show it): counted at the piece
            runs.append((k_a, inside, float(ts[a])))
        if last >= 0 and k_a > last + 1:
            runs.append((last + 1, k_a - last - 1, float(ts[a - 1])))
        elif last >= 0 and k_a <= last:
            raise AssertionError("an amplifier sample was recorded twice or out of order")
        first = k_a if first < 0 else first
        last = k_b
    runs.sort()
    return Loss(len(ts), sum(n for _, n, _ in runs), runs, first, last)


def ecg_stamp_error(truth: dict, values: np.ndarray, timestamps: np.ndarray, m: int = 48) -> np.ndarray:
    """Each recorded amplifier sample's timestamp minus its true time on the LSL clock (s).

    The true time of device sample ``k`` is ``t0_lsl_s + t0_s + k / rate_hz`` of the amplifier's sample
    clock; ``k`` is found per piece as in :func:`ecg_truth`. The error includes the constant transport
    latency the driver was not told to subtract (the simulator's 4 ms by default); its changes show
    how far the driver's clock fit moved, e.g. a restarted driver's first samples.
    """
    v = np.asarray(values, dtype=np.float64)
    ts = np.asarray(timestamps, dtype=np.float64)
    clock = truth["amplifier"]["sample_clock"]
    cuts = np.flatnonzero(np.diff(ts) > 1.5 / clock["rate_hz"]) + 1
    err = np.empty_like(ts)
    for a, b in itertools.pairwise([0, *cuts.tolist(), len(ts)]):
        k = _locate(truth, v[a : a + min(m, b - a)], ts[a]) + np.arange(b - a)
        err[a:b] = ts[a:b] - (truth["t0_lsl_s"] + clock["t0_s"] + k / clock["rate_hz"])
    return err


def pulse_truth(truth: dict, marker_ts: np.ndarray, t0: float, t1: float, tol_s: float = 0.02) -> Loss:
    """Trigger pulses fired between LSL times ``t0`` and ``t1`` without a marker within ``tol_s``."""
    pulses = truth["t0_lsl_s"] + np.asarray(truth["pulses_true_s"], dtype=np.float64).reshape(-1, 2)[:, 0]
    pulses = pulses[(pulses >= t0) & (pulses <= t1)]
    mk = np.sort(np.asarray(marker_ts, dtype=np.float64))
    runs = []
    for i, p in enumerate(pulses):
        j = np.searchsorted(mk, p)
        near = [abs(mk[x] - p) for x in (j - 1, j) if 0 <= x < len(mk)]
        if not near or min(near) > tol_s:
            runs.append((i, 1, float(p)))
    return Loss(len(pulses) - len(runs), len(runs), runs, 0, len(pulses) - 1)


def chain_lost(pushed_ts: np.ndarray, recorded_ts: np.ndarray, tol_s: float = 1e-6) -> np.ndarray:
    """Timestamps a device program pushed inside the recorded span that the recording lacks (lost on the way).

    ``pushed_ts``: logged on the device's own host (:meth:`TwoHosts.log_pushed`), so what the device
    never delivered (a camera that skipped frames, an amplifier whose buffer overflowed) is not in it.
    """
    rec = np.sort(np.asarray(recorded_ts, dtype=np.float64))
    p = np.asarray(pushed_ts, dtype=np.float64)
    p = p[(p >= rec[0] - tol_s) & (p <= rec[-1] + tol_s)]
    j = np.clip(np.searchsorted(rec, p), 1, len(rec) - 1)
    near = np.minimum(np.abs(rec[j] - p), np.abs(rec[j - 1] - p))
    return p[near > tol_s]
