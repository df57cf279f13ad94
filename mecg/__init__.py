"""mecg: record face video and ECG through LSL, align them, and spot micro-expressions with CMCL-Net."""

from mecg.errors import MecgError

__all__ = ["MecgError", "__version__"]


def __getattr__(name: str) -> str:
    """``mecg.__version__``, read from the installed package's metadata on first use.

    importlib.metadata costs about 80 ms, a quarter of a device driver's start-up (``mecg stream``),
    so it is not imported until a version is asked for.
    """
    if name != "__version__":
        raise AttributeError(f"module 'mecg' has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        v = version("mecg")
    except PackageNotFoundError:  # running from a source tree that was not installed
        v = "0.0.0+unknown"
    globals()["__version__"] = v
    return v
