"""Opening serial ports with messages a user can act on, and listing them."""

from __future__ import annotations

import errno
import os

import serial
from serial.tools import list_ports

from mecg.acquire.errors import DeviceNotFoundError


def open_port(path: str, baud: int, timeout_s: float = 0.02) -> serial.Serial:
    """Open ``path`` raw at ``baud`` (8N1, no flow control); raises :class:`DeviceNotFoundError`."""
    is_posix_path = os.name == "posix" and path.startswith("/")
    if is_posix_path and not os.path.exists(path):
        raise DeviceNotFoundError(
            f"serial port {path} does not exist: plug the device in, check the name with `mecg devices`, "
            "or start virtual devices with `mecg simulate`"
        )
    try:
        return serial.Serial(path, baud, timeout=timeout_s, write_timeout=1.0)
    except serial.SerialException as exc:
        code = getattr(exc, "errno", None) or getattr(exc.__context__, "errno", None)
        if code == errno.EACCES:
            raise DeviceNotFoundError(
                f"no permission to open {path}: add your user to the 'dialout' group (then log in again)"
            ) from None
        if code == errno.EBUSY:
            raise DeviceNotFoundError(f"serial port {path} is busy: another program has it open") from None
        raise DeviceNotFoundError(f"cannot open serial port {path}: {exc}") from None


def list_serial_ports() -> list[dict[str, str]]:
    """The system's serial ports: ``device``, ``description``, ``hwid``."""
    return [
        {"device": p.device, "description": p.description or "", "hwid": p.hwid or ""}
        for p in sorted(list_ports.comports(), key=lambda p: p.device)
    ]
