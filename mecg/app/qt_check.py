"""Refuse a Qt binding that would crash a recording: PySide6 6.12 on CPython 3.11 leaks references.

With PySide6-Essentials 6.12.0 on CPython 3.11, calls that return ``None`` or a ``bool`` (measured:
``QCoreApplication.processEvents()``, ``QLabel.setText``, pyqtgraph's ``setData``) release one
reference to it more than they took. On CPython >= 3.12 these objects are immortal and nothing
happens; on 3.11 a live window drives their counts to zero within seconds to minutes and the
interpreter aborts ("Fatal Python error: none_dealloc"), mid-recording. The app measures the leak
before it opens a window and refuses to start, naming the fix, rather than crash later.
"""

from __future__ import annotations

import sys

from mecg.errors import MecgError


class QtBindingError(MecgError):
    """The installed Qt binding cannot run the app safely."""


def leaks_per_call(calls: int = 200) -> float:
    """References to ``None`` lost per ``QCoreApplication.processEvents()`` call (0 on a sound binding)."""
    from PySide6.QtCore import QCoreApplication

    before = sys.getrefcount(None)
    for _ in range(calls):
        QCoreApplication.processEvents()
    return (before - sys.getrefcount(None)) / calls


def check_qt_binding() -> None:
    """Raise :class:`QtBindingError` if this PySide6 leaks references to ``None`` (needs a QApplication)."""
    if sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return
    leak = leaks_per_call()
    if leak >= 0.5:
        import PySide6

        raise QtBindingError(
            f"PySide6 {PySide6.__version__} on Python {sys.version_info.major}.{sys.version_info.minor} loses "
            f"{leak:.0f} reference(s) to None per Qt call and would abort the app mid-recording; install the "
            "tested version: pip install -c constraints.txt -e . (PySide6-Essentials 6.11.3), or use Python >= 3.12"
        )
