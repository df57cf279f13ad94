"""mecg: record face video and ECG through LSL, align them, and spot micro-expressions with CMCL-Net."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mecg")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

from mecg.errors import MecgError

__all__ = ["MecgError", "__version__"]
