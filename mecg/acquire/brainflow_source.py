"""BrainFlow boards as ECG sources: any BrainFlow board with ECG/EXG channels to an LSL outlet of type ``ECG``.

BrainFlow (brainflow.org) reads dozens of amplifiers through one interface (``BoardShim``): each
read returns a ``(rows, samples)`` array whose rows the board's description names (EXG channels in
µV, a package counter, a host timestamp, a marker row, board-specific other rows). This driver
publishes the same stream as :class:`~mecg.acquire.ecg_driver.EcgDriver`: channels ``ECG`` (or
``ECG1``..) in mV, then ``TRIG`` (and ``STROBE``) as 0/1, so ``mecg record`` and ``mecg sync``
treat a BrainFlow board like mecg's own amplifier.

* **TRIG**: 1 on samples whose marker row is non-zero (markers put in with :meth:`insert_marker`,
  i.e. ``BoardShim.insert_marker``); on an OpenBCI Cyton also its digital input D11 (and
  ``STROBE`` = D12) in digital board mode (``/3``, set on start), the wiring of mecg's own Cyton
  path. A playback file whose master board is a Cyton replays D11/D12 from its other rows;
  BrainFlow's playback board does *not* replay the marker row (it fills it from ``insert_marker``).
* **Timestamps**: BrainFlow stamps each sample with the host's wall clock when it was parsed,
  which carries USB/BLE and scheduling jitter. Sample ``k`` of a regular-rate board is on the
  board's own clock at ``k / rate`` (``k`` counted with the 8-bit package counter, so lost packets
  leave a gap); the driver maps that clock onto the LSL clock with the lower-envelope
  :class:`~mecg.acquire.clock_fit.ClockFit`, like the serial driver, so the published timestamps
  are regular and follow the board's drift.
* **Errors**: a wrong port, a board that does not answer, an unknown board or parameter are
  :class:`~mecg.acquire.errors.AcquireError` subclasses naming the fix. When the board stops
  sending for ``stall_s`` the session is released and prepared again every ``retry_s`` (the outlet
  stays); a playback file that ends stops the driver (``finished``).

brainflow is imported only when a driver is made (it is an optional dependency: ``pip install
mecg[devices]``).
"""

from __future__ import annotations

import difflib
import threading
import time
import warnings
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np
import pylsl

from mecg.acquire.buffers import DEFAULT_BUFFER_MAX_MB
from mecg.acquire.clock_fit import ClockFit, StampSlew
from mecg.acquire.ecg_boards import BoardInfo
from mecg.acquire.ecg_driver import EcgStats, EcgStreamLoop
from mecg.acquire.errors import AcquireError, DeviceNotFoundError, DeviceRefusedError, DeviceTimeoutError
from mecg.acquire.sequence import SequenceTracker
from mecg.acquire.states import DriverState

#: ``BrainFlowInputParams`` fields that hold integers (the others are text).
INT_PARAMS = ("ip_port", "ip_port_aux", "ip_port_anc", "ip_protocol", "timeout", "master_board")
#: BrainFlow's package counter of the boards mecg knows (OpenBCI, synthetic) is one byte.
PACKAGE_MODULUS = 256
#: Cyton footer byte of packets that carry the digital pins (digital board mode).
CYTON_DIGITAL_FOOTER = 0xC1
#: Largest drift (ppm) believed of a board BrainFlow paces with host sleeps (synthetic, playback).
HOST_PACED_MAX_DRIFT_PPM = 5000.0
#: Default outlet buffer (s), as the serial ECG driver's: samples are small, a minute costs a few MB.
BRAINFLOW_BUFFER_S = 60.0
#: One BrainFlow unit of EXG rows (µV) in the stream's unit (mV).
MV_PER_UV = 1e-3

_HINTS = {
    "UNABLE_TO_OPEN_PORT_ERROR": (
        DeviceNotFoundError,
        "cannot open the board's port: check --brainflow-param serial_port=... (`mecg devices` lists serial "
        "ports), that no other program holds it, and your permission on it",
    ),
    "PORT_ALREADY_OPEN_ERROR": (DeviceNotFoundError, "the port is already open in another program; close it"),
    "SER_PORT_ERROR": (DeviceNotFoundError, "the serial port failed: check the cable and the port"),
    "BOARD_NOT_READY_ERROR": (
        DeviceTimeoutError,
        "the board is not ready: is it switched on, paired/in range, and is it this board type?",
    ),
    "BOARD_WRITE_ERROR": (DeviceTimeoutError, "could not send to the board: check its connection"),
    "INITIAL_MSG_ERROR": (DeviceTimeoutError, "the board answered wrongly at start-up: is it this board type?"),
    "SYNC_TIMEOUT_ERROR": (DeviceTimeoutError, "the board did not answer in time: is it on and connected?"),
    "INVALID_ARGUMENTS_ERROR": (
        AcquireError,
        "BrainFlow refused the parameters: check --brainflow-param (e.g. serial_port, file, master_board)",
    ),
    "UNSUPPORTED_BOARD_ERROR": (AcquireError, "BrainFlow does not support this board in this version"),
    "GENERAL_ERROR": (
        AcquireError,
        "BrainFlow failed (for a playback file: does the file exist and match master_board?)",
    ),
}


def _brainflow() -> ModuleType:
    """``brainflow.board_shim``, imported on first use, with its own logger off."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # brainflow may load its library through the deprecated pkg_resources
            from brainflow import board_shim

            board_shim.BoardShim.get_version()  # loads the library now, inside this block
    except ImportError as exc:
        raise AcquireError(
            f"BrainFlow is not installed ({exc}): pip install 'mecg[devices]' (or pip install brainflow)"
        ) from None
    board_shim.BoardShim.disable_board_logger()
    return board_shim


def _translate(exc: Exception, what: str) -> AcquireError:
    """A BrainFlowError as the project's error type, with what to do."""
    code = getattr(exc, "exit_code", None)
    try:
        from brainflow.exit_codes import BrainFlowExitCodes

        name = BrainFlowExitCodes(code).name
    except (ImportError, ValueError):
        name = str(code)
    cls, hint = _HINTS.get(name, (AcquireError, "see BrainFlow's documentation of this board"))
    return cls(f"{what}: BrainFlow error {name}: {hint}")


def board_id(spec: str) -> int:
    """The BrainFlow board id of ``spec``: a name as in ``BoardIds`` (``SYNTHETIC_BOARD``, ``cyton``) or an integer."""
    ids = _brainflow().BoardIds
    text = str(spec).strip()
    try:
        value = int(text)
    except ValueError:
        key = text.upper().replace("-", "_")
        names = {b.name: b.value for b in ids}
        for cand in (key, f"{key}_BOARD"):
            if cand in names:
                return names[cand]
        close = difflib.get_close_matches(key, names, n=4)
        raise AcquireError(
            f"--brainflow {spec!r} is not a BrainFlow board name"
            + (f"; did you mean {', '.join(close)}?" if close else "")
            + " (names as in brainflow.board_shim.BoardIds, e.g. SYNTHETIC_BOARD, CYTON_BOARD, or the integer id)"
        ) from None
    if value not in {b.value for b in ids}:
        raise AcquireError(f"--brainflow {value} is not a board id of this BrainFlow version")
    return value


def parse_params(pairs: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``["serial_port=/dev/ttyUSB0", ...]`` as a dict; raises :class:`AcquireError` on a malformed pair."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise AcquireError(f"--brainflow-param {pair!r}: write KEY=VALUE, e.g. serial_port=/dev/ttyUSB0")
        out[key.strip()] = value.strip()
    return out


def input_params(params: dict[str, str]) -> Any:
    """A ``BrainFlowInputParams`` with ``params`` set (``master_board`` by name or id)."""
    bs = _brainflow()
    p = bs.BrainFlowInputParams()
    fields = [k for k in vars(p) if not k.startswith("_")]
    for key, value in params.items():
        if key not in fields:
            raise AcquireError(
                f"--brainflow-param {key}: BrainFlow has no such parameter; choose from {', '.join(fields)}"
            )
        if key == "master_board":
            setattr(p, key, board_id(value))
        elif key in INT_PARAMS:
            try:
                setattr(p, key, int(value))
            except ValueError:
                raise AcquireError(f"--brainflow-param {key}={value!r}: an integer is needed") from None
        else:
            setattr(p, key, value)
    return p


@dataclass(frozen=True)
class BoardLayout:
    """Which rows of a board's data array mecg publishes (from BrainFlow's board description)."""

    board_id: int
    name: str
    rate_hz: float
    ecg_rows: tuple[int, ...]
    package_row: int | None
    timestamp_row: int
    marker_row: int | None
    #: Cyton digital mode: (footer row, D11 row, D12 row) in ``other_channels``.
    cyton_digital: tuple[int, int, int] | None

    @property
    def digital_labels(self) -> tuple[str, ...]:
        if self.cyton_digital is not None:
            return ("TRIG", "STROBE")
        return ("TRIG",) if self.marker_row is not None else ()


def board_layout(data_board_id: int, n_ecg: int) -> BoardLayout:
    """The rows of board ``data_board_id`` (a playback/streaming board's master); ``n_ecg`` ECG rows from the first."""
    bs = _brainflow()
    descr = bs.BoardShim.get_board_descr(data_board_id)
    kinds = ("ecg_channels", "exg_channels", "emg_channels", "eeg_channels")
    rows = next((descr[k] for k in kinds if descr.get(k)), [])
    if not rows:
        raise AcquireError(
            f"BrainFlow board {descr.get('name', data_board_id)} has no ECG/EXG channels: choose a board with "
            "biopotential inputs (for a playback or streaming board, set --brainflow-param master_board=...)"
        )
    if not 1 <= n_ecg <= len(rows):
        raise AcquireError(
            f"--channels {n_ecg}: board {descr['name']} has {len(rows)} ECG/EXG channels (choose 1-{len(rows)})"
        )
    others = descr.get("other_channels") or []
    cyton = descr.get("name") in ("Cyton", "CytonWifi") and len(others) >= 3
    return BoardLayout(
        board_id=data_board_id,
        name=str(descr.get("name", data_board_id)),
        rate_hz=float(descr["sampling_rate"]),
        ecg_rows=tuple(int(r) for r in rows[:n_ecg]),
        package_row=descr.get("package_num_channel"),
        timestamp_row=int(descr["timestamp_channel"]),
        marker_row=descr.get("marker_channel"),
        cyton_digital=(int(others[0]), int(others[1]), int(others[2])) if cyton else None,
    )


def lsl_minus_wall_s() -> float:
    """LSL clock minus the wall clock (``time.time()``, BrainFlow's timestamps), s; the tightest of 3 readings."""
    best = (np.inf, 0.0)
    for _ in range(3):
        a = pylsl.local_clock()
        w = time.time()
        b = pylsl.local_clock()
        best = min(best, (b - a, (a + b) / 2 - w))
    return best[1]


@dataclass
class BrainFlowConfig:
    """Settings of one BrainFlow driver.

    ``board``: BrainFlow board name or id; ``params``: ``BrainFlowInputParams`` fields (text values);
    ``ecg_channels``: EXG rows published, from the first; ``name``/``source_id``: LSL identity
    (``None``: from the board); ``latency_s``: constant latency subtracted from the timestamps (s);
    ``read_interval_s``: how often the board's buffer is read (s); ``stall_s``: no sample for this
    long (s) means the board is lost (reconnect) or a playback file ended (stop); ``retry_s``: wait
    between reconnection attempts (s); ``digital_mode``: put a Cyton in digital board mode (``/3``);
    ``max_buffered_s``: what the outlet keeps for each receiver through an outage (s; ``None``: 60 s),
    refused over ``buffer_max_mb`` MB (:mod:`mecg.acquire.buffers`).
    """

    board: str
    params: dict[str, str] = field(default_factory=dict)
    ecg_channels: int = 1
    name: str = "ECG"
    source_id: str | None = None
    latency_s: float = 0.0
    read_interval_s: float = 0.01
    stall_s: float = 2.0
    retry_s: float = 0.5
    digital_mode: bool = True
    max_buffered_s: float | None = None
    buffer_max_mb: float = DEFAULT_BUFFER_MAX_MB


class BrainFlowDriver(EcgStreamLoop):
    """Streams one BrainFlow board to LSL: :meth:`connect`, :meth:`start`, :meth:`close` (or ``with``).

    The same interface as :class:`~mecg.acquire.ecg_driver.EcgDriver` (``failed``/``error``,
    :attr:`stats`, :meth:`status_line`), plus ``finished`` (a playback file ended).
    """

    def __init__(self, config: BrainFlowConfig) -> None:
        self.config = config
        self._bs = _brainflow()
        self.board_id = board_id(config.board)
        self.params = input_params(config.params)
        ids = self._bs.BoardIds
        self.playback = self.board_id == ids.PLAYBACK_FILE_BOARD.value
        if self.board_id in (ids.PLAYBACK_FILE_BOARD.value, ids.STREAMING_BOARD.value) and self.params.master_board < 0:
            raise AcquireError(
                f"--brainflow {ids(self.board_id).name} needs --brainflow-param master_board=BOARD: the board the "
                "data came from (e.g. CYTON_BOARD), which says what its rows are"
            )
        self.board: Any = None
        self.layout: BoardLayout | None = None
        self.info: BoardInfo | None = None
        self.outlet: pylsl.StreamOutlet | None = None
        self.source_id = ""
        host_paced = self.board_id in (ids.SYNTHETIC_BOARD.value, ids.PLAYBACK_FILE_BOARD.value)
        #: Synthetic and playback boards are paced by host sleeps, not a crystal: they may run 0.1 % off.
        self.fit = ClockFit(max_drift_ppm=HOST_PACED_MAX_DRIFT_PPM if host_paced else 500.0)
        self.tracker = SequenceTracker(PACKAGE_MODULUS)
        self.digital_mode = False
        self._use_counter: bool | None = None
        self._index = 0
        self._last_host: float | None = None
        self.slew = StampSlew()
        self._last_data = np.inf
        self._offset = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stats = EcgStats()
        self._rate_window: list[tuple[float, int]] = []
        self.failed = threading.Event()
        self.finished = threading.Event()
        self.error = ""

    # -- connection -----------------------------------------------------------------------------
    @property
    def where(self) -> str:
        """What the board is reached through, for messages and the stream header."""
        p = self.params
        return p.serial_port or p.file or p.ip_address or p.mac_address or p.serial_number or "(no port)"

    def _prepare(self) -> Any:
        name = self._bs.BoardIds(self.board_id).name
        try:
            board = self._bs.BoardShim(self.board_id, self.params)
            board.prepare_session()
        except self._bs.BrainFlowError as exc:
            raise _translate(exc, f"BrainFlow board {name} on {self.where}") from None
        try:
            data_id = board.get_board_id()  # the master board of a playback/streaming board
            layout = board_layout(data_id, self.config.ecg_channels)
            self.digital_mode = False
            if layout.cyton_digital is not None and not self.playback and self.config.digital_mode:
                answer = board.config_board("/3")
                self.digital_mode = "Success" in str(answer)
            board.start_stream()
        except self._bs.BrainFlowError as exc:
            board.release_session()
            raise _translate(exc, f"BrainFlow board {name} on {self.where}") from None
        except BaseException:
            board.release_session()
            raise
        self.board, self.layout = board, layout
        self.fit.reset()
        self.slew.reset()
        self.tracker.reset()
        self._use_counter, self._last_host = None, None
        self._offset = lsl_minus_wall_s()
        self._last_data = pylsl.local_clock()
        return layout

    def _board_info(self, layout: BoardLayout) -> BoardInfo:
        p = self.params
        uid = p.serial_number or p.mac_address or p.serial_port or p.ip_address or p.file or "0"
        uid = "".join(c if c.isalnum() else "-" for c in uid).strip("-") or "0"
        return BoardInfo(
            protocol="brainflow",
            manufacturer="BrainFlow",
            model=layout.name,
            uid=uid,
            firmware=f"BrainFlow {self._bs.BoardShim.get_version()} board {self._bs.BoardIds(self.board_id).name}",
            rate_hz=layout.rate_hz,
            n_ecg=len(layout.ecg_rows),
            digital_labels=layout.digital_labels,
            mv_per_count=MV_PER_UV,
        )

    def connect(self) -> BoardInfo:
        """Prepare the board, start it streaming and create the LSL outlet."""
        layout = self._prepare()
        try:
            self._make_outlet(layout)
        except BaseException:
            self._release()
            raise
        with self._lock:
            self._stats.state = DriverState.STREAMING
        return self.info

    def _make_outlet(self, layout: BoardLayout) -> None:
        info = self._board_info(layout)
        si = self._stream_info(info, self.where)
        acq = si.desc().child("acquisition")
        acq.append_child_value("brainflow_board", self._bs.BoardIds(self.board_id).name)
        acq.append_child_value("trigger", self.trigger_source)
        si.desc().child("timing").append_child_value(
            "device_clock", "sample number (BrainFlow package counter) / nominal rate; host times: BrainFlow's"
        )
        self._open_outlet(si, info, BRAINFLOW_BUFFER_S)

    @property
    def trigger_source(self) -> str:
        """Where TRIG (and STROBE) come from, in words."""
        lay = self.layout
        if lay is None:
            return ""
        parts = []
        if lay.marker_row is not None:
            parts.append("TRIG = 1 on samples with a BrainFlow marker (insert_marker)")
        if lay.cyton_digital is not None:
            parts.append("TRIG = D11, STROBE = D12 (Cyton digital board mode)")
        return "; ".join(parts) or "none"

    def insert_marker(self, value: float = 1.0) -> None:
        """Put a marker on the board's next sample (BrainFlow ``insert_marker``): TRIG is 1 there."""
        if self.board is None:
            raise AcquireError("the BrainFlow board is not connected")
        self.board.insert_marker(float(value))

    # -- samples --------------------------------------------------------------------------------
    def _device_index(self, counter: np.ndarray | None, host: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sample numbers on the board's clock (counted with the package counter where it is one byte) of the
        samples kept, and the mask of kept samples (repeated packets are dropped)."""
        n = host.size
        if self._use_counter is None and counter is not None and n >= 2:
            ok = np.all((counter >= 0) & (counter < PACKAGE_MODULUS) & (counter == np.round(counter)))
            self._use_counter = bool(ok and np.mean(np.diff(counter) % PACKAGE_MODULUS == 1) > 0.9)
        if self._use_counter and counter is not None:
            prev = host[0] if self._last_host is None else self._last_host
            elapsed = np.diff(np.concatenate([[prev], host])) * self.layout.rate_hz
            keep = self.tracker.check(counter.astype(np.int64), elapsed)
            steps = np.where(keep, self.tracker.steps, 0)
            if self._last_host is None:
                steps[0] = 0  # the first sample is number 0
            idx = self._index + np.cumsum(steps)
        else:
            keep = np.ones(n, dtype=bool)
            idx = self._index + np.arange(n) + (0 if self._last_host is None else 1)
        self._last_host = float(host[-1])
        if idx.size:
            self._index = int(idx[-1])
        return idx[keep], keep

    def values(self, data: np.ndarray) -> np.ndarray:
        """The published channels of a BrainFlow data block ``(rows, n)``: ``(n, channels)`` float32."""
        lay = self.layout
        assert lay is not None
        n = data.shape[1]
        out = np.zeros((n, len(lay.ecg_rows) + len(lay.digital_labels)), np.float32)
        out[:, : len(lay.ecg_rows)] = data[list(lay.ecg_rows)].T * MV_PER_UV
        trig = np.zeros(n, dtype=bool)
        if lay.marker_row is not None:
            trig |= data[lay.marker_row] != 0
        if lay.cyton_digital is not None:
            footer, d11, d12 = lay.cyton_digital
            digital = data[footer] == CYTON_DIGITAL_FOOTER
            trig |= digital & (data[d11] != 0)
            out[:, -1] = digital & (data[d12] != 0)
            out[:, -2] = trig
        elif lay.digital_labels:
            out[:, -1] = trig
        return out

    def pump(self) -> int:
        """Read what the board has and push it; returns samples pushed."""
        assert self.board is not None and self.layout is not None and self.outlet is not None
        time.sleep(self.config.read_interval_s)
        now = pylsl.local_clock()
        data = self.board.get_board_data()
        if data.size == 0 or data.shape[1] == 0:
            if now - self._last_data > self.config.stall_s:
                raise TimeoutError(f"no data from the board for {self.config.stall_s:g} s")
            self._count(0, now)
            return 0
        self._last_data = now
        lay = self.layout
        self._offset = lsl_minus_wall_s()
        host = data[lay.timestamp_row] + self._offset
        counter = data[lay.package_row] if lay.package_row is not None else None
        idx, keep = self._device_index(counter, host)
        if not keep.any():
            self._count(0, now)
            return 0
        data, host = data[:, keep], host[keep]
        device_s = idx / lay.rate_hz
        self.fit.add(device_s, host)
        ts = self.slew.stamps(device_s, lambda d: self.fit.map(d) - self.config.latency_s, 1.0 / lay.rate_hz)
        self.outlet.push_chunk(self.values(data), ts.tolist())
        self._count(int(keep.sum()), now)
        return int(keep.sum())

    def _count(self, n: int, now: float) -> None:
        with self._lock:
            st = self._stats
            st.samples += n
            st.lost, st.duplicates = self.tracker.lost, self.tracker.duplicates + self.tracker.stale
            st.offset_s, st.drift_ppm = self.fit.offset_s(), self.fit.drift_ppm
            self._rate_window.append((now, st.samples))
            while len(self._rate_window) > 2 and now - self._rate_window[0][0] > 2.0:
                self._rate_window.pop(0)
            (t0, n0), (t1, n1) = self._rate_window[0], self._rate_window[-1]
            st.rate_hz = (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0

    def _release(self) -> None:
        board, self.board = self.board, None
        if board is None:
            return
        try:
            board.stop_stream()
        except self._bs.BrainFlowError:
            pass
        try:
            board.release_session()
        except self._bs.BrainFlowError:
            pass

    # -- reconnection (the loop is ReconnectingLoop's) ------------------------------------------
    lost_errors = (TimeoutError,)  # no data for stall_s: the board is lost or a playback file ended
    retry_errors = (AcquireError,)
    fatal_errors = (DeviceRefusedError,)

    def _close_link(self) -> None:
        self._release()

    def _reopen(self) -> BoardLayout:
        return self._prepare()

    def _resume(self, reopened: object) -> None:
        assert isinstance(reopened, BoardLayout)
        if self.info is not None and self._board_info(reopened).labels != self.info.labels:
            raise AcquireError("the board came back with other channels; start mecg stream ecg again")

    def _ends_stream(self, exc: BaseException) -> bool:
        if not self.playback:
            return False
        with self._lock:
            self._stats.state = DriverState.FINISHED
        self.finished.set()
        return True

    def _connected(self) -> bool:
        return self.board is not None

    def stop(self) -> None:
        """Stop the thread and release the board."""
        self._stop_loop()
        self._release()
        with self._lock:
            if self._stats.state != DriverState.FINISHED:
                self._stats.state = DriverState.STOPPED

    # -- status ---------------------------------------------------------------------------------
    def _status_counters(self, s: EcgStats) -> str:
        """Duplicates and the board clock's drift (ppm); BrainFlow boards report no CRC errors."""
        return f"dup {s.duplicates} | board clock drift {s.drift_ppm:+.1f} ppm"
