"""Which LSL configuration liblsl uses: the shipped machine-scope file, or a user's.

liblsl reads its configuration once, at its first use, from the file named by the environment
variable ``LSLAPICFG`` (else ``lsl_api.cfg`` in the working directory, ``~/lsl_api/`` or
``/etc/lsl_api/``). :data:`LOCAL_CONFIG` keeps discovery on this machine (``ResolveScope =
machine``, ``KnownPeers = {127.0.0.1}``): tests, benchmarks and one-PC labs use it.

``--lsl-local`` selects :func:`local_config`: the file named by the environment variable
``MECG_LSL_LOCAL_CONFIG`` if it is set, else :data:`LOCAL_CONFIG`. The test suite sets it to a copy
with its own ``[lab] SessionID`` per test process, so that parallel test processes (and their
``--lsl-local`` subprocesses) see only their own streams.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from mecg.acquire.errors import AcquireError

#: The shipped machine-scope LSL configuration.
LOCAL_CONFIG = Path(__file__).with_name("lsl_local.cfg")

#: The environment variable naming the machine-scope file ``--lsl-local`` selects instead of :data:`LOCAL_CONFIG`.
LOCAL_CONFIG_ENV = "MECG_LSL_LOCAL_CONFIG"


def local_config() -> Path:
    """The machine-scope file ``--lsl-local`` selects: ``$MECG_LSL_LOCAL_CONFIG`` if set, else :data:`LOCAL_CONFIG`."""
    named = os.environ.get(LOCAL_CONFIG_ENV)
    return Path(named) if named else LOCAL_CONFIG


def use_config(path: str | os.PathLike | None = None) -> Path:
    """Make liblsl use ``path`` (default :func:`local_config`); call before any LSL stream is made.

    Sets ``LSLAPICFG`` (inherited by child processes) and, if pylsl is already imported, tells
    liblsl directly. Raises :class:`AcquireError` if the file does not exist.
    """
    p = Path(path) if path is not None else local_config()
    if not p.is_file():
        if path is None and os.environ.get(LOCAL_CONFIG_ENV):
            raise AcquireError(
                f"LSL config file {p} (named by ${LOCAL_CONFIG_ENV}) not found; unset {LOCAL_CONFIG_ENV} "
                "to use the shipped machine-scope file, or point it at an existing file"
            )
        raise AcquireError(f"LSL config file {p} not found; pass an existing file to --lsl-config")
    os.environ["LSLAPICFG"] = str(p.resolve())
    pylsl = sys.modules.get("pylsl")
    if pylsl is not None and hasattr(pylsl, "set_config_filename"):
        try:
            pylsl.set_config_filename(str(p.resolve()))
        except (NotImplementedError, AttributeError):  # older liblsl: the environment variable does it
            pass
    return p


def active_config() -> str:
    """The configuration file liblsl will read (from ``LSLAPICFG``), or ``"liblsl defaults"``."""
    return os.environ.get("LSLAPICFG") or "liblsl defaults"
