"""The review window's side panel: where the cursor is, what lies under it, the AU/emotion form, the keys."""

from __future__ import annotations

import html

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFormLayout, QLabel, QLineEdit, QPushButton, QVBoxLayout, QWidget

from mecg.app.review_model import Candidate, Draft
from mecg.session import Annotation

#: Key -> what it does (shown in the panel and in docs/annotate.md).
KEYS = {
    "Left / Right": "one frame back / forward",
    "Shift+Left / Shift+Right": "10 frames",
    "PgUp / PgDown": "1 s",
    "Home / End": "first / last frame",
    "Space": "play / pause (at the chosen speed)",
    "O / A / F": "onset / apex / offset at the cursor (F adds the expression)",
    "T": "ME <-> MaE of the draft or the annotation under the cursor",
    "Enter": "accept the spotted candidate under the cursor",
    "Backspace": "reject the spotted candidate under the cursor (hidden)",
    "Delete": "remove the annotation under the cursor",
    "Ctrl+Z": "undo",
    "Ctrl+S": "save the coder's set (beside the recording)",
    "Escape": "leave the form (keys work on the video again)",
}


class CodingPanel(QWidget):
    """Frame and times, what is under the cursor, the form (AUs, emotion); ``apply_requested`` on Enter / Apply."""

    apply_requested = Signal()

    def __init__(self, coder: str, spots_note: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.frame_label = QLabel()
        self.frame_label.setStyleSheet("font-family: monospace; font-size: 11pt;")
        self.under_label = QLabel()
        self.aus = QLineEdit()
        self.aus.setPlaceholderText("e.g. AU1+AU2")
        self.emotion = QLineEdit()
        self.emotion.setPlaceholderText("e.g. surprise")
        for edit in (self.aus, self.emotion):
            edit.returnPressed.connect(self.apply_requested)
        apply = QPushButton("Apply to the annotation under the cursor")
        apply.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        apply.clicked.connect(self.apply_requested)
        form = QFormLayout()
        form.addRow("coder", QLabel(f"<b>{html.escape(coder)}</b> (editing)"))
        form.addRow("under the cursor", self.under_label)
        form.addRow("AUs", self.aus)
        form.addRow("emotion", self.emotion)
        form.addRow(apply)
        self.spots_label = QLabel(f"spots: {spots_note}")
        self.spots_label.setWordWrap(True)
        keys = QLabel("<br>".join(f"<b>{html.escape(k)}</b>: {html.escape(v)}" for k, v in KEYS.items()))
        keys.setStyleSheet("color: #333; font-size: 9pt;")
        lay = QVBoxLayout(self)
        lay.addWidget(self.frame_label)
        lay.addLayout(form)
        lay.addWidget(self.spots_label)
        lay.addWidget(keys)
        lay.addStretch(1)

    @property
    def typing(self) -> bool:
        """True while the cursor is in the form."""
        return self.aus.hasFocus() or self.emotion.hasFocus()

    def labels(self) -> tuple[str, str]:
        """The form's ``(aus, emotion)``."""
        return self.aus.text().strip(), self.emotion.text().strip()

    def clear_form(self) -> None:
        self.aus.clear()
        self.emotion.clear()

    def show_position(
        self,
        frame: int,
        n_frames: int,
        fps_hz: float,
        ecg_clock_s: float | None,
        annotation: Annotation | None,
        draft: Draft | None,
        candidate: Candidate | None,
    ) -> None:
        """Show frame ``frame``: its video time (s), its ECG-clock time (s; None: not synced, NaN: not aligned),
        and what lies under it.

        The form belongs to the draft while there is one; otherwise it shows the annotation under the
        cursor (unless the user is typing in it).
        """
        text = f"frame {frame} / {n_frames - 1}   {frame / fps_hz:8.3f} s"
        if ecg_clock_s is not None:
            text += f"   ECG clock {ecg_clock_s:.4f} s" if np.isfinite(ecg_clock_s) else "   ECG clock: not aligned"
        self.frame_label.setText(text)
        if draft is not None:
            parts = [f"onset {draft.onset}", f"apex {draft.apex if draft.apex is not None else '?'}", "offset ?"]
            self.under_label.setText("draft: " + ", ".join(parts) + (f" ({draft.type})" if draft.type else ""))
        elif annotation is not None:
            a = annotation
            self.under_label.setText(f"{a.type} {a.onset_frame}-{a.offset_frame} (apex {a.apex_frame})")
        elif candidate is not None:
            c = candidate
            self.under_label.setText(
                f"candidate {c.onset}-{c.offset} (score {c.score:.2f}): Enter accepts, Backspace rejects"
            )
        else:
            self.under_label.setText("-")
        if draft is None and not self.typing:
            self.aus.setText(annotation.aus if annotation is not None else "")
            self.emotion.setText(annotation.emotion if annotation is not None else "")
