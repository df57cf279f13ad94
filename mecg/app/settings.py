"""What the app remembers between runs (QSettings): subject, notes, output folder, device options, window.

By default Qt's per-user place: ``~/.config/mecg/mecg-app.conf`` on Linux, the registry under
``HKEY_CURRENT_USER\\Software\\mecg\\mecg-app`` on Windows, ``~/Library/Preferences/org.mecg.mecg-app.plist``
on macOS. ``mecg app --settings FILE.ini`` (and the tests) use an INI file of their own instead.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings

from mecg.errors import MecgError

ORGANIZATION = "mecg"
APPLICATION = "mecg-app"

#: Every remembered value and its default (the type of the default is the type read back).
DEFAULTS: dict[str, object] = {
    "subject": "",
    "notes": "",
    "out_dir": str(Path.home() / "mecg-sessions"),
    "min_free_mb": 500.0,
    "sim_fps": 150.0,
    "sim_size": "640x480",
    "sim_seed": 0,
    "ecg_port": "",
    "ecg_protocol": "mecg",
    "camera": "",
    "camera_fps": 0.0,
    "camera_size": "",
    "camera_color": False,
    "trigger_port": "",
    "trigger_gap": "2:8",
}


class AppSettings:
    """Typed access to the app's QSettings; ``path``: an INI file instead of the per-user place."""

    def __init__(self, path: str | Path | None = None) -> None:
        if path is not None:
            if Path(path).is_dir():  # QSettings would silently remember nothing (it creates missing folders)
                raise MecgError(f"settings file {path} is a folder; give a file name, e.g. {Path(path) / 'app.ini'}")
            self.q = QSettings(str(path), QSettings.Format.IniFormat)
        else:
            self.q = QSettings(ORGANIZATION, APPLICATION)

    def get(self, key: str) -> object:
        """The stored value of ``key``, of its default's type (the default when absent or unreadable)."""
        default = DEFAULTS[key]
        value = self.q.value(key, default)
        try:
            if isinstance(default, bool):
                return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")
            if isinstance(default, (int, float)):
                return type(default)(value)
        except (TypeError, ValueError):
            return default
        return "" if value is None else str(value)

    def set(self, key: str, value: object) -> None:
        """Remember ``value`` for ``key``."""
        if key not in DEFAULTS:
            raise KeyError(key)
        self.q.setValue(key, value)

    def geometry(self) -> object:
        """The saved window geometry (a QByteArray) or None."""
        return self.q.value("window/geometry")

    def set_geometry(self, geometry: object) -> None:
        """Remember the window geometry."""
        self.q.setValue("window/geometry", geometry)

    def sync(self) -> None:
        """Write to disk now."""
        self.q.sync()
