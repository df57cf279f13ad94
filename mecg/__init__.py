"""mecg: record face video and ECG through LSL, align them, and spot micro-expressions with CMCL-Net.

The public API (docs/api.md)::

    import mecg

    with mecg.open_session("s01.h5") as s: ...          # read a session
    mecg.sync_session("s01.h5")                           # align video and ECG, store beside it
    ecg = mecg.ecg_for_frames("s01.h5", 100, 160)         # ECG of frames 100-159, one clock
    feats = mecg.load_features("s01.h5")                  # optical-flow and heart-rate features
    res = mecg.spot_session("s01.h5")                     # spots (mecg.Spot) of one session
    model = mecg.train_spotter("sessions/", "cmcl.pt")    # train CMCL-Net
    mecg.evaluate(res.spots, "s01.h5")                    # MEGC precision / recall / F1

Every name loads on first use (a module ``__getattr__``): ``import mecg`` imports neither torch,
SciPy nor OpenCV, so the light commands (``mecg stream``, ``mecg record``) start fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from mecg.errors import MecgError

if TYPE_CHECKING:
    from mecg.acquire.recorder import Recorder
    from mecg.acquire.recorder_config import RecorderConfig
    from mecg.interop.datasets import import_dataset
    from mecg.interop.nwb_export import export_nwb
    from mecg.interop.xdf_import import import_xdf
    from mecg.model.checkpoint import Checkpoint
    from mecg.model.evaluate import Counts, Interval
    from mecg.model.evaluate import evaluate_spots as evaluate
    from mecg.model.features import SessionFeatures, load_features
    from mecg.model.pipeline import TrainResult, train_spotter
    from mecg.model.spots import Spot
    from mecg.model.spotting import SpotResult, load_spotter, spot_session
    from mecg.session import Annotation, Session, open_session
    from mecg.sync import SyncResult
    from mecg.sync.session_sync import FrameEcg, ecg_for_frames, sync_session

#: Public name -> (module, attribute) it is loaded from on first use.
_PUBLIC: dict[str, tuple[str, str]] = {
    "open_session": ("mecg.session", "open_session"),
    "Session": ("mecg.session", "Session"),
    "Annotation": ("mecg.session", "Annotation"),
    "sync_session": ("mecg.sync.session_sync", "sync_session"),
    "SyncResult": ("mecg.sync", "SyncResult"),
    "ecg_for_frames": ("mecg.sync.session_sync", "ecg_for_frames"),
    "FrameEcg": ("mecg.sync.session_sync", "FrameEcg"),
    "load_features": ("mecg.model.features", "load_features"),
    "SessionFeatures": ("mecg.model.features", "SessionFeatures"),
    "spot_session": ("mecg.model.spotting", "spot_session"),
    "SpotResult": ("mecg.model.spotting", "SpotResult"),
    "Spot": ("mecg.model.spots", "Spot"),
    "load_spotter": ("mecg.model.spotting", "load_spotter"),
    "Checkpoint": ("mecg.model.checkpoint", "Checkpoint"),
    "train_spotter": ("mecg.model.pipeline", "train_spotter"),
    "TrainResult": ("mecg.model.pipeline", "TrainResult"),
    "evaluate": ("mecg.model.evaluate", "evaluate_spots"),
    "Counts": ("mecg.model.evaluate", "Counts"),
    "Interval": ("mecg.model.evaluate", "Interval"),
    "import_dataset": ("mecg.interop.datasets", "import_dataset"),
    "import_xdf": ("mecg.interop.xdf_import", "import_xdf"),
    "export_nwb": ("mecg.interop.nwb_export", "export_nwb"),
    "Recorder": ("mecg.acquire.recorder", "Recorder"),
    "RecorderConfig": ("mecg.acquire.recorder_config", "RecorderConfig"),
}

__all__ = [
    "Annotation",
    "Checkpoint",
    "Counts",
    "FrameEcg",
    "Interval",
    "MecgError",
    "Recorder",
    "RecorderConfig",
    "Session",
    "SessionFeatures",
    "Spot",
    "SpotResult",
    "SyncResult",
    "TrainResult",
    "__version__",
    "ecg_for_frames",
    "evaluate",
    "export_nwb",
    "import_dataset",
    "import_xdf",
    "load_features",
    "load_spotter",
    "open_session",
    "spot_session",
    "sync_session",
    "train_spotter",
]


def _version() -> str:
    """The installed package's version; importlib.metadata costs about 80 ms, so it is read on first use."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mecg")
    except PackageNotFoundError:  # running from a source tree that was not installed
        return "0.0.0+unknown"


def __getattr__(name: str) -> object:
    """Load a public name (or ``__version__``) on first use; later lookups find it in the module."""
    if name == "__version__":
        value: object = _version()
    elif name in _PUBLIC:
        module, attr = _PUBLIC[name]
        value = getattr(importlib.import_module(module), attr)
    else:
        raise AttributeError(f"module 'mecg' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
