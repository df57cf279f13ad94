"""Which liblsl configuration ``--lsl-local`` selects (mecg.acquire.lsl_config)."""

import sys
from pathlib import Path

import pytest

from mecg.acquire import lsl_config
from mecg.acquire.errors import AcquireError


def test_lsl_local_takes_the_file_the_environment_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "mine.cfg"
    cfg.write_text("[multicast]\nResolveScope = machine\n[lab]\nSessionID = mine\n")
    monkeypatch.setenv(lsl_config.LOCAL_CONFIG_ENV, str(cfg))
    monkeypatch.setenv("LSLAPICFG", "")
    # use_config also tells an imported pylsl, which would switch this test process's liblsl to SessionID "mine"
    monkeypatch.delitem(sys.modules, "pylsl", raising=False)
    assert lsl_config.use_config() == cfg
    assert lsl_config.active_config() == str(cfg.resolve())


def test_without_the_variable_lsl_local_is_the_shipped_machine_scope_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(lsl_config.LOCAL_CONFIG_ENV, raising=False)
    monkeypatch.setenv("LSLAPICFG", "")
    assert lsl_config.local_config() == lsl_config.LOCAL_CONFIG
    text = lsl_config.LOCAL_CONFIG.read_text()
    assert "ResolveScope = machine" in text and "KnownPeers = {127.0.0.1}" in text


def test_a_missing_named_file_is_refused_with_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(lsl_config.LOCAL_CONFIG_ENV, str(tmp_path / "gone.cfg"))
    with pytest.raises(AcquireError, match="MECG_LSL_LOCAL_CONFIG") as err:
        lsl_config.use_config()
    assert "unset" in str(err.value)


def test_the_machine_scope_config_finds_every_stream_of_a_busy_machine() -> None:
    """With liblsl's default port range, unicast discovery missed every outlet after about the 16th."""
    import os
    import subprocess

    import pylsl

    tag = f"busy-{os.getpid()}-"
    outlets = [
        pylsl.StreamOutlet(pylsl.StreamInfo(f"Busy{i}", "Markers", 1, 0, pylsl.cf_string, f"{tag}{i}"))
        for i in range(40)
    ]
    code = f"import pylsl; print(sum(s.source_id().startswith({tag!r}) for s in pylsl.resolve_streams(2.0)))"
    # another process with this test process's config (a copy of the shipped file, tests/conftest.py)
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ.copy())
    del outlets
    assert found.stdout.strip() == "40", found.stderr
