"""Test-wide setup: LSL stays on this machine and in this test process's own LSL session (a copy of the
shipped machine-scope config), set before pylsl loads; one CPU thread for torch and BLAS in tests.

One thread: on a 2-core machine shared with other work, torch's 2-thread OpenMP regions wait on a
descheduled thread (a CMCL-Net training step measured 6-8x slower with 2 threads than with 1 at load 8);
with 1 thread the tests' cost does not depend on what else the machine runs. ``mecg spot`` sets 2 threads
in-process, so the setting is renewed before every test. Subprocesses inherit the environment variables.

LSL per test process: each pytest process (the single one, or each pytest-xdist worker) gets a copy of
the shipped machine-scope config with a ``[lab] SessionID`` of its own, named by ``LSLAPICFG`` and by
``MECG_LSL_LOCAL_CONFIG`` (which ``--lsl-local`` selects, mecg/acquire/lsl_config.py). liblsl resolves only
streams of its own session, so tests running in parallel, and their subprocesses, never see each other's
streams, nor those of another pytest run on the machine. An ``LSLAPICFG`` set by the caller is kept.

A test is parallel-safe (``make test`` runs the suite on several pytest-xdist workers, each module on one
worker, next to other modules' tests) when it
- makes LSL streams only in this process or in subprocesses that inherit ``os.environ`` (pass
  ``env=os.environ.copy()`` or ``dict(os.environ, ...)``, never a fresh environment) and runs device
  commands with ``--lsl-local`` or without an LSL option, never with the shipped file's path;
- writes only under ``tmp_path`` / ``tmp_path_factory`` (never a fixed path, the working directory or
  ``mecg simulate``'s default folder: pass ``--dir``/``--out`` under ``tmp_path``) and opens no fixed TCP port;
- waits on conditions with a deadline (tests/waiting.py), never on a fixed sleep, and asserts no speed or
  rate (the machine is shared by the workers); a test that takes more than ~10 s is marked ``slow``;
- needs nothing from another module's tests (a module's tests run on one worker, in their order, after any
  other modules).
"""

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

_SHIPPED_LSL_CONFIG = Path(__file__).resolve().parents[1] / "mecg" / "acquire" / "lsl_local.cfg"


def _lsl_config_of_this_process() -> Path:
    """A temporary copy of the shipped machine-scope LSL config whose ``SessionID`` is this process's own."""
    folder = Path(tempfile.mkdtemp(prefix="mecg-tests-lsl-"))
    atexit.register(shutil.rmtree, folder, True)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    text = _SHIPPED_LSL_CONFIG.read_text()
    assert "\n[lab]\n" in text, f"{_SHIPPED_LSL_CONFIG} has no [lab] section"
    text = text.replace("\n[lab]\n", f"\n[lab]\nSessionID = mecg-tests-{worker}-{os.getpid()}\n", 1)
    path = folder / _SHIPPED_LSL_CONFIG.name
    path.write_text(text)
    return path


# What the caller set, remembered by the first pytest process: xdist workers inherit the controller's
# environment, its LSLAPICFG included, and must still make their own session.
if os.environ.setdefault("_MECG_TESTS_CALLER_LSLAPICFG", os.environ.get("LSLAPICFG", "")) == "":
    os.environ["LSLAPICFG"] = os.environ["MECG_LSL_LOCAL_CONFIG"] = str(_lsl_config_of_this_process())
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")


@pytest.fixture(autouse=True)
def _one_torch_thread() -> None:
    """Torch (when a test has imported it) computes on one thread; nothing is imported here."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Modules with the most tests marked ``slow`` first, each module's tests in their own order.

    ``make test`` hands whole modules to the xdist workers (``--dist loadfile``, so a module's fixtures are
    built once) in this order (``--no-loadscope-reorder``): the long modules start first and do not end
    the run alone on one worker.
    """
    slow: dict[str, int] = {}
    for item in items:
        module = item.nodeid.split("::", 1)[0]
        slow[module] = slow.get(module, 0) + (item.get_closest_marker("slow") is not None)
    first_seen = {m: k for k, m in enumerate(slow)}
    items.sort(key=lambda it: (-slow[m := it.nodeid.split("::", 1)[0]], first_seen[m]))
