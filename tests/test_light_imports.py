"""Light commands start without the heavy libraries (issue #18): ``mecg --help``, ``mecg stream ...``,
``mecg info``, ``mecg record`` import neither torch nor SciPy nor OpenCV unless the command needs them.

Each check runs in a fresh interpreter (``python -c``), since this test process may have imported
them already. Timing lives in benchmarks/bench_cli_start.py, not here.
"""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mecg.session import SessionWriter, StreamInfo

HEAVY = ("torch", "scipy", "cv2")

_PROBE = """
import contextlib, io, json, sys
from {module} import {func}
out = io.StringIO()
try:
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        rc = {func}({argv!r})
except SystemExit as exc:
    rc = exc.code
print(json.dumps({{"rc": rc, "heavy": sorted(m for m in {heavy!r} if m in sys.modules), "out": out.getvalue()}}))
"""


def probe(argv: list[str], entry: str = "mecg.cli.main:main") -> dict:
    """Run ``entry(argv)`` in a fresh interpreter: its exit code, output, and which of HEAVY it imported."""
    module, func = entry.split(":")
    code = _PROBE.format(module=module, func=func, argv=argv, heavy=HEAVY)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


def write_session(path: Path, *, clock_offsets: bool) -> Path:
    """A small closed session: 30 video frames at 150 Hz, 2 s of 2-channel ECG at 500 Hz, two markers."""
    rng = np.random.default_rng(3)
    w = SessionWriter(path, subject_id="P-3", notes="light imports")
    cam = w.add_stream(StreamInfo("cam", "Video", kind="video", nominal_srate_hz=150.0, frame_shape=(24, 32)))
    ecg = w.add_stream(StreamInfo("ecg", "ECG", nominal_srate_hz=500.0, channel_labels=["I"], channel_units=["mV"]))
    mk = w.add_stream(StreamInfo("mk", "Markers", kind="markers"))
    w.append(cam, rng.integers(0, 256, (30, 24, 32), dtype=np.uint8), 10.0 + np.arange(30) / 150)
    w.append(ecg, rng.normal(0, 1, (1000, 1)), 10.0 + np.arange(1000) / 500)
    w.append(mk, ["start", "stop"], [10.0, 11.9])
    if clock_offsets:
        w.append_clock_offsets(ecg, [[10.0, 0.001], [15.0, 0.002]])
    w.close()
    return path


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        [],
        ["--version"],
        ["stream", "--help"],
        ["stream", "ecg", "--help"],
        ["stream", "camera", "--help"],
        ["stream", "trigger", "--help"],
        ["info", "--help"],
        ["validate", "--help"],
        ["record", "--help"],
        ["devices", "--help"],
        ["simulate", "--help"],
        ["no-such-command"],
    ],
    ids=lambda a: " ".join(a) or "(none)",
)
def test_light_command_imports_no_heavy_library(argv: list[str]) -> None:
    r = probe(argv)
    assert r["heavy"] == []
    assert r["rc"] == (2 if argv in ([], ["no-such-command"]) else 0)
    assert r["out"]


def test_mecg_record_program_help_imports_no_heavy_library() -> None:
    r = probe(["--help"], entry="mecg.cli.record:main")
    assert (r["rc"], r["heavy"]) == (0, [])
    assert "usage: mecg-record" in r["out"]


def test_info_and_validate_run_without_heavy_libraries(tmp_path: Path) -> None:
    path = str(write_session(tmp_path / "s.h5", clock_offsets=False))
    info = probe(["info", path])
    assert (info["rc"], info["heavy"]) == (0, [])
    assert "streams (3)" in info["out"]
    as_json = probe(["info", "--json", path])
    assert (as_json["rc"], as_json["heavy"]) == (0, [])
    assert json.loads(as_json["out"])["subject_id"] == "P-3"
    valid = probe(["validate", path])
    assert (valid["rc"], valid["heavy"]) == (0, [])


def test_info_with_clock_offsets_needs_scipy_optimize_only(tmp_path: Path) -> None:
    """The robust (Huber) clock-offset fit uses scipy.optimize; nothing else heavy comes with it."""
    path = str(write_session(tmp_path / "s.h5", clock_offsets=True))
    code = (
        "import sys, contextlib, io\nfrom mecg.cli.main import main\n"
        f"with contextlib.redirect_stdout(io.StringIO()):\n    rc = main(['info', {path!r}])\n"
        "print(rc, 'torch' in sys.modules, 'cv2' in sys.modules, 'scipy.signal' in sys.modules,"
        " 'scipy.stats' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split() == ["0", "False", "False", "False", "False"]


def test_import_mecg_and_sync_are_light() -> None:
    code = (
        "import sys, mecg, mecg.sync, mecg.sync.segments, mecg.cli.main, mecg.cli.stream, mecg.cli.record\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"


def test_recorder_and_drivers_start_without_heavy_libraries() -> None:
    """What ``mecg record`` and ``mecg stream ecg|trigger`` run; the live heart rate loads SciPy on first use."""
    code = (
        "import sys, mecg.acquire.recorder, mecg.acquire.rig, mecg.acquire.ecg_driver, mecg.acquire.trigger_driver\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"


def test_sync_lazy_names_resolve() -> None:
    import mecg.sync as sync

    assert set(sync.__all__) == set(sync._SUBMODULE)
    for name in sync.__all__:
        assert getattr(sync, name) is getattr(__import__(f"mecg.sync.{sync._SUBMODULE[name]}", fromlist=[name]), name)
    assert set(sync.__all__) <= set(dir(sync))
    with pytest.raises(AttributeError):
        sync.no_such_name  # noqa: B018


def _subparsers(p: argparse.ArgumentParser) -> argparse._SubParsersAction:
    return next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))


def test_command_table_matches_what_the_modules_register() -> None:
    """The table ``mecg --help`` is drawn from (without importing the commands) says what each module registers."""
    from mecg.cli.main import _TABLE, build_parser

    full = build_parser()
    lazy = build_parser(load=())
    listed = [(a.dest, a.help) for a in _subparsers(full)._choices_actions]
    assert listed == [(name, help_) for name, _, help_ in _TABLE]
    assert lazy.format_help() == full.format_help()
    for module in dict.fromkeys(mod for _, mod, _ in _TABLE):  # each module adds the commands the table gives it
        alone = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(module).register(alone)
        assert list(alone.choices) == [name for name, mod, _ in _TABLE if mod == module]
    for name, _, _ in _TABLE:
        one = _subparsers(build_parser(load=(name,))).choices[name]
        assert one.format_help() == _subparsers(full).choices[name].format_help()
