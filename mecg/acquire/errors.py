"""Errors a user can cause while acquiring: a missing port or camera, a device that does not answer."""

from mecg.errors import MecgError


class AcquireError(MecgError):
    """A device, port or LSL problem the user can fix; the message says how."""


class DeviceNotFoundError(AcquireError):
    """The serial port or camera does not exist or cannot be opened."""


class DeviceTimeoutError(AcquireError):
    """The device is there but does not answer (wrong protocol, wrong baud rate, busy port)."""


class DeviceRefusedError(AcquireError):
    """The device answered but refused a setting (an unsupported rate, ...)."""


class DeviceReplyError(AcquireError):
    """The device answered with something hardware/protocol.md does not allow (unknown kind, status, rate, ...).

    Retrying does not help: the firmware or its configuration is wrong, so a driver stops on it.
    """
