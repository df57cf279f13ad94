"""The streams panel: LSL streams found (which are recorded), and the devices the app starts itself.

Each stream found has a *record* box. A fresh stream is ticked only when it belongs to the devices
the app started; other streams on the network (another experiment's too) are recorded only when
the experimenter ticks them, as ``mecg record`` records only the streams named by ``--stream``.
The devices are a simulated lab or the drivers of a serial amplifier, a camera and a trigger box,
with the options of ``mecg record``.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from mecg.acquire.rig import RigConfig
from mecg.acquire.stream_metadata import StreamQuery
from mecg.app.lab import FoundStream
from mecg.errors import MecgError

COLUMNS = ("record", "type", "name", "host", "rate Hz", "channels", "source_id")


def parse_size_text(text: str) -> tuple[int, int] | None:
    """``"640x480"`` -> (640, 480); ``""`` -> None. Raises :class:`MecgError` naming the fix."""
    t = text.strip().lower()
    if not t:
        return None
    try:
        w, h = (int(v) for v in t.split("x"))
    except ValueError:
        raise MecgError(f"frame size must look like 640x480, got {text!r}") from None
    if w <= 0 or h <= 0:
        raise MecgError(f"frame size must be positive, got {text!r}")
    return w, h


def parse_gap_text(text: str) -> tuple[float, float]:
    """``"2:8"`` -> (2.0, 8.0) seconds between trigger pulses. Raises :class:`MecgError`."""
    try:
        lo, hi = (float(v) for v in text.split(":"))
    except ValueError:
        raise MecgError(f"trigger gap must look like MIN:MAX in seconds (2:8), got {text!r}") from None
    if not 0 < lo <= hi:
        raise MecgError(f"trigger gap needs 0 < MIN <= MAX, got {text!r}")
    return lo, hi


class StreamsPanel(QWidget):
    """Streams found with their record boxes, a refresh, and the device controls."""

    refresh_requested = Signal()
    selection_changed = Signal()
    start_devices_requested = Signal(object)  # a RigConfig
    stop_devices_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._checked: dict[tuple[str, ...], bool] = {}
        self.streams: list[FoundStream] = []
        self._device_sids: set[str] = set()

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.itemChanged.connect(self._item_changed)
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.setToolTip("look for LSL streams again (1 s)")
        self.refresh_button.clicked.connect(self.refresh_requested)
        self.found_label = QLabel("no streams looked for yet")

        # simulated lab
        self.sim_fps = QDoubleSpinBox(decimals=0, minimum=1, maximum=1000, value=150, suffix=" fps")
        self.sim_size = QLineEdit("640x480")
        self.sim_seed = QSpinBox(minimum=0, maximum=10_000)
        self.sim_start = QPushButton("Start simulated lab")
        self.sim_start.clicked.connect(self._start_simulation)
        sim = QGroupBox("Simulated devices (amplifier, trigger box, camera)")
        sl = QHBoxLayout(sim)
        for w in (QLabel("rate"), self.sim_fps, QLabel("size"), self.sim_size, QLabel("participant"), self.sim_seed):
            sl.addWidget(w)
        sl.addWidget(self.sim_start)

        # drivers
        self.ecg_port = QLineEdit(placeholderText="/dev/ttyUSB0 (empty: none)")
        self.ecg_protocol = QComboBox()
        self.ecg_protocol.addItems(["mecg", "cyton"])
        self.camera = QLineEdit(placeholderText="0, /dev/video0, a file, sim:SEED (empty: none)")
        self.camera_fps = QDoubleSpinBox(decimals=0, minimum=0, maximum=1000, value=0, suffix=" fps")
        self.camera_fps.setSpecialValueText("camera's own")
        self.camera_size = QLineEdit(placeholderText="WxH (empty: as captured)")
        self.camera_color = QCheckBox("colour")
        self.trigger_port = QLineEdit(placeholderText="/dev/ttyACM0 (empty: none)")
        self.trigger_gap = QLineEdit("2:8")
        self.drivers_start = QPushButton("Start drivers")
        self.drivers_start.clicked.connect(self._start_drivers)
        drv = QGroupBox("Device drivers (as `mecg record --ecg-port ... --camera ... --trigger-port ...`)")
        form = QFormLayout(drv)
        row = QHBoxLayout()
        row.addWidget(self.ecg_port, 1)
        row.addWidget(self.ecg_protocol)
        form.addRow("ECG amplifier port", row)
        row = QHBoxLayout()
        row.addWidget(self.camera, 1)
        row.addWidget(self.camera_fps)
        row.addWidget(self.camera_size)
        row.addWidget(self.camera_color)
        form.addRow("camera", row)
        row = QHBoxLayout()
        row.addWidget(self.trigger_port, 1)
        row.addWidget(QLabel("gap s"))
        row.addWidget(self.trigger_gap)
        form.addRow("trigger box port", row)
        self.stop_button = QPushButton("Stop devices")
        self.stop_button.clicked.connect(self.stop_devices_requested)
        row = QHBoxLayout()
        row.addWidget(self.drivers_start)
        row.addWidget(self.stop_button)
        form.addRow(row)
        self.devices_label = QLabel("no devices started by this app")
        self.devices_label.setWordWrap(True)

        lay = QVBoxLayout(self)
        top = QHBoxLayout()
        top.addWidget(self.found_label, 1)
        top.addWidget(self.refresh_button)
        lay.addLayout(top)
        lay.addWidget(self.table, 1)
        lay.addWidget(sim)
        lay.addWidget(drv)
        lay.addWidget(self.devices_label)

    # -- devices ----------------------------------------------------------------------------------
    def simulation_config(self) -> RigConfig:
        """The simulated lab as set in the panel. Raises :class:`MecgError` for a bad size."""
        size = parse_size_text(self.sim_size.text()) or (640, 480)
        return RigConfig(simulate=True, seed=self.sim_seed.value(), fps=self.sim_fps.value(), size=size)

    def drivers_config(self) -> RigConfig:
        """The drivers as set in the panel. Raises :class:`MecgError` for bad options or no device."""
        cfg = RigConfig(
            ecg_port=self.ecg_port.text().strip() or None,
            ecg_protocol=self.ecg_protocol.currentText(),
            camera=self.camera.text().strip() or None,
            fps=self.camera_fps.value() or None,
            size=parse_size_text(self.camera_size.text()),
            color=self.camera_color.isChecked(),
            trigger_port=self.trigger_port.text().strip() or None,
            trigger_gap_s=parse_gap_text(self.trigger_gap.text()),
        )
        if cfg.empty:
            raise MecgError("no device given: enter the amplifier's port, a camera or the trigger box's port")
        return cfg

    def _start_simulation(self) -> None:
        self._emit_start(self.simulation_config)

    def _start_drivers(self) -> None:
        self._emit_start(self.drivers_config)

    def _emit_start(self, make: object) -> None:
        try:
            cfg = make()
        except MecgError as exc:
            self.devices_label.setText(f"<b style='color:#b00'>{exc}</b>")
            return
        self.start_devices_requested.emit(cfg)

    def set_devices(self, lines: list[str], source_ids: set[str]) -> None:
        """Show the devices the app started (their streams get ticked when they appear)."""
        self._device_sids = set(source_ids)
        self.devices_label.setText("<br>".join(lines) if lines else "no devices started by this app")

    def set_busy(self, busy: bool, recording: bool) -> None:
        """Disable what must not change now (devices while recording or busy; the selection while recording)."""
        for w in (self.sim_start, self.drivers_start, self.stop_button):
            w.setEnabled(not busy and not recording)
        self.refresh_button.setEnabled(not busy)
        self.table.setEnabled(not recording)

    # -- streams ----------------------------------------------------------------------------------
    def set_streams(self, streams: list[FoundStream]) -> None:
        """Show ``streams``; remembered ticks are kept, new streams get the default tick."""
        self.streams = list(streams)
        self.table.blockSignals(True)
        self.table.setRowCount(len(streams))
        for r, s in enumerate(streams):
            mine = s.source_id in self._device_sids
            if s.identity not in self._checked or mine:
                self._checked[s.identity] = mine  # other streams: the experimenter ticks them
            box = QTableWidgetItem("started here" if mine else "")
            box.setFlags(Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsEnabled)
            box.setCheckState(Qt.CheckState.Checked if self._checked[s.identity] else Qt.CheckState.Unchecked)
            self.table.setItem(r, 0, box)
            rate = "irregular" if s.rate_hz == 0 else f"{s.rate_hz:g}"
            for c, v in enumerate((s.type, s.name, s.hostname, rate, str(s.channels), s.source_id), start=1):
                self.table.setItem(r, c, QTableWidgetItem(v))
        self.table.blockSignals(False)
        n = len(self.selected())
        self.found_label.setText(f"{len(streams)} LSL stream(s) found, {n} ticked for recording")

    def _item_changed(self, item: QTableWidgetItem) -> None:
        if item.column() != 0 or item.row() >= len(self.streams):
            return
        self._checked[self.streams[item.row()].identity] = item.checkState() == Qt.CheckState.Checked
        n = len(self.selected())
        self.found_label.setText(f"{len(self.streams)} LSL stream(s) found, {n} ticked for recording")
        self.selection_changed.emit()

    def selected(self) -> list[FoundStream]:
        """The listed streams ticked for recording."""
        return [s for s in self.streams if self._checked.get(s.identity)]

    def selection(self) -> tuple[StreamQuery, ...]:
        """One query per ticked stream: what the monitor and the recorder take."""
        return tuple(s.query() for s in self.selected())
