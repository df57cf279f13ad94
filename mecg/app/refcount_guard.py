"""A guard against a PySide6 bug on CPython 3.11: calls that return ``None`` / ``bool`` drop a reference to it.

With PySide6 6.12 on CPython 3.11 (measured here: ``QCoreApplication.processEvents()``,
``QLabel.setText``, pyqtgraph's ``setData``), each call releases one reference to ``None``,
``True`` or ``False`` more than it took. From CPython 3.12 on these objects are immortal and the
bug is harmless; on 3.11 their reference counts fall by hundreds a second in a live window until
one reaches zero and the interpreter aborts ("Fatal Python error: none_dealloc" / "bool_dealloc"),
after seconds to minutes. A recording app cannot crash mid-session, so :func:`protect_singletons`
first measures whether this Qt binding leaks and, if it does, raises the three singletons'
reference counts by 2**40 (a count that the leak would take years to use up; these objects are
never freed anyway). Nothing is done on CPython >= 3.12 or where no leak is measured.
"""

from __future__ import annotations

import ctypes
import sys

#: Added to the reference count of None, True and False when the leak is present.
HEADROOM = 2**40

_applied = False


def leaks_per_call(calls: int = 200) -> float:
    """References to ``None`` lost per ``QCoreApplication.processEvents()`` call (0 on a sound binding)."""
    from PySide6.QtCore import QCoreApplication

    before = sys.getrefcount(None)
    for _ in range(calls):
        QCoreApplication.processEvents()
    return (before - sys.getrefcount(None)) / calls


def protect_singletons() -> bool:
    """Give None / True / False reference-count headroom if this Qt binding leaks them; True if applied.

    Needs a QCoreApplication (or QApplication). Idempotent.
    """
    global _applied
    if _applied:
        return True
    if sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return False
    if leaks_per_call() < 0.5:
        return False
    for obj in (None, True, False):
        # ob_refcnt is the first field of every object; the GIL is held, so no other thread changes it now
        ctypes.c_ssize_t.from_address(id(obj)).value += HEADROOM
    _applied = True
    return True
