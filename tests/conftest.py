"""Test-wide setup: LSL stays on this machine (the shipped machine-scope config), set before pylsl loads;
one CPU thread for torch and BLAS in tests.

One thread: on a 2-core machine shared with other work, torch's 2-thread OpenMP regions wait on a
descheduled thread (a CMCL-Net training step measured 6-8x slower with 2 threads than with 1 at load 8);
with 1 thread the tests' cost does not depend on what else the machine runs. ``mecg spot`` sets 2 threads
in-process, so the setting is renewed before every test. Subprocesses inherit the environment variables.
"""

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("LSLAPICFG", str(Path(__file__).resolve().parents[1] / "mecg" / "acquire" / "lsl_local.cfg"))
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")


@pytest.fixture(autouse=True)
def _one_torch_thread() -> None:
    """Torch (when a test has imported it) computes on one thread; nothing is imported here."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)
