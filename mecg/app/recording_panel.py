"""The recording panel: subject, notes, output folder, start / stop, elapsed time, file size, and the
health of every stream (rate against nominal, samples, drops, gaps; red when it stalls or drops),
the engine's messages, and the quick check of the last file with a button that opens its folder.
"""

from __future__ import annotations

import math
from pathlib import Path

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QAction, QBrush, QColor, QDesktopServices
from PySide6.QtWidgets import (
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from mecg.acquire.readable import hms, size_text
from mecg.acquire.recorder import RecorderStatus
from mecg.app.health import HealthTracker

HEALTH_COLUMNS = ("stream", "Hz / nominal", "samples", "missing", "gaps", "health")
COLORS = {"ok": QColor(200, 240, 200), "warn": QColor(255, 230, 160), "bad": QColor(240, 120, 120)}


class RecordingPanel(QWidget):
    """Subject / notes / folder, the record and stop buttons, elapsed time and file size, per-stream health."""

    open_folder_requested = Signal()

    def __init__(self, start: QAction, stop: QAction, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.health = HealthTracker()
        self.levels: dict[str, str] = {}  # stream key -> ok / warn / bad, as last shown

        self.subject = QLineEdit(placeholderText="pseudonymous id, e.g. P-0042 (never a name)")
        self.notes = QPlainTextEdit()
        self.notes.setPlaceholderText("notes kept in the file")
        self.notes.setMaximumHeight(60)
        self.out_dir = QLineEdit()
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        form_box = QGroupBox("Session")
        form = QFormLayout(form_box)
        form.addRow("subject id", self.subject)
        form.addRow("notes", self.notes)
        row = QHBoxLayout()
        row.addWidget(self.out_dir, 1)
        row.addWidget(browse)
        form.addRow("output folder", row)

        self.start_button = QToolButton()
        self.start_button.setDefaultAction(start)
        self.stop_button = QToolButton()
        self.stop_button.setDefaultAction(stop)
        for b in (self.start_button, self.stop_button):
            b.setMinimumHeight(36)
            b.setStyleSheet("font-size: 12pt; padding: 4px 14px;")
        self.state_label = QLabel("not recording")
        self.state_label.setStyleSheet("font-size: 14pt; font-weight: bold;")
        self.file_label = QLabel("")
        self.file_label.setWordWrap(True)

        self.table = QTableWidget(0, len(HEALTH_COLUMNS))
        self.table.setHorizontalHeaderLabels(HEALTH_COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.horizontalHeader().setMinimumSectionSize(40)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setMinimumHeight(120)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)

        self.log = QPlainTextEdit(readOnly=True)
        self.log.setMaximumBlockCount(500)
        self.log.setMaximumHeight(90)

        self.check_label = QLabel("no recording checked yet")
        self.check_label.setWordWrap(True)
        self.open_button = QPushButton("Open folder")
        self.open_button.setEnabled(False)
        self.open_button.clicked.connect(self.open_folder_requested)
        check_box = QGroupBox("Last recording")
        cl = QVBoxLayout(check_box)
        cl.addWidget(self.check_label)
        cl.addWidget(self.open_button)

        lay = QVBoxLayout(self)
        lay.addWidget(form_box)
        row = QHBoxLayout()
        row.addWidget(self.start_button)
        row.addWidget(self.stop_button)
        row.addWidget(self.state_label, 1)
        lay.addLayout(row)
        lay.addWidget(self.file_label)
        lay.addWidget(self.table, 1)
        lay.addWidget(self.log)
        lay.addWidget(check_box)

    def _browse(self) -> None:
        d = QFileDialog.getExistingDirectory(self, "Folder for the session files", self.out_dir.text())
        if d:
            self.out_dir.setText(d)

    def message(self, text: str) -> None:
        """Add a line to the messages."""
        self.log.appendPlainText(text)

    def show_status(self, st: RecorderStatus | None, recording: bool) -> None:
        """Show the engine's status: time, file, and one health row per stream."""
        if st is None:
            self.state_label.setText("no streams watched")
            self.state_label.setStyleSheet("font-size: 14pt; font-weight: bold; color: #666;")
            self.table.setRowCount(0)
            self.levels = {}
            return
        if recording:
            self.state_label.setText(f"● REC {hms(st.elapsed_s)}")
            self.state_label.setStyleSheet("font-size: 14pt; font-weight: bold; color: #c00000;")
            free = "" if math.isnan(st.free_mb) else f" ({size_text(st.free_mb * 1e6)} free)"
            self.file_label.setText(f"{st.path}<br>file {size_text(st.file_bytes)}{free}, {st.markers} markers")
        else:
            self.state_label.setText("watching, not recording")
            self.state_label.setStyleSheet("font-size: 14pt; font-weight: bold; color: #206020;")
        self.table.setRowCount(len(st.streams))
        levels = {}
        for r, s in enumerate(st.streams):
            level, text = self.health.judge(s)
            levels[s.key] = level
            regular = s.nominal_srate_hz > 0
            values = (
                s.key,
                f"{s.rate_hz:.1f} / {s.nominal_srate_hz:g}" if regular else f"{s.rate_hz:.1f} / irregular",
                str(s.samples),
                str(s.missing) if regular else "-",
                str(s.gaps) if regular else "-",
                text,
            )
            for c, v in enumerate(values):
                item = self.table.item(r, c)
                if item is None:
                    item = QTableWidgetItem()
                    self.table.setItem(r, c, item)
                item.setText(v)
                item.setToolTip(f"{s.name} ({s.type}), source_id {s.source_id or '-'} on {s.hostname or '?'}: {text}")
                item.setBackground(QBrush(COLORS[level]))  # the whole row: seen at a glance
        self.levels = levels

    def show_check(self, html: str, folder: Path | None) -> None:
        """Show the quick check of the last file; enable Open folder."""
        self.check_label.setText(html)
        self._folder = folder
        self.open_button.setEnabled(folder is not None)

    def open_folder(self) -> bool:
        """Open the last file's folder in the desktop's file manager; False if that failed."""
        folder = getattr(self, "_folder", None)
        return folder is not None and QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))
