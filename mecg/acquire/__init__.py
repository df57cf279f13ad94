"""Devices to LSL: serial protocol and parsers, ECG / camera / trigger box drivers, simulators.

Names are imported on first use, so ``import mecg.acquire.protocol`` stays light (no OpenCV, no
liblsl). See docs/devices.md and hardware/protocol.md.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "AcquireError": "errors",
    "DeviceNotFoundError": "errors",
    "DeviceTimeoutError": "errors",
    "DeviceRefusedError": "errors",
    "FrameParser": "protocol",
    "CytonParser": "cyton",
    "SequenceTracker": "sequence",
    "ClockFit": "clock_fit",
    "LOCAL_CONFIG": "lsl_config",
    "use_config": "lsl_config",
    "EcgConfig": "ecg_driver",
    "EcgDriver": "ecg_driver",
    "CameraConfig": "camera_driver",
    "CameraDriver": "camera_driver",
    "TriggerConfig": "trigger_driver",
    "TriggerDriver": "trigger_driver",
    "VirtualAmplifier": "virtual_amplifier",
    "VirtualCyton": "virtual_amplifier",
    "VirtualTriggerBox": "virtual_trigger_box",
    "VirtualCamera": "virtual_camera",
    "Simulation": "simulation",
    "SimulationConfig": "simulation",
    "ReconnectingLoop": "reconnect",
    "DriverState": "states",
    "RecorderState": "states",
    "StreamState": "states",
    "StreamKind": "states",
    "DeviceRole": "states",
    "EcgProtocol": "states",
    "FrameSourceKind": "states",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mecg.acquire' has no attribute {name!r}")
    return getattr(importlib.import_module(f"mecg.acquire.{module}"), name)
