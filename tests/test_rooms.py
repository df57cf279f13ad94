"""The rooms hold: every module's imports follow the flow of the design guide (docs/architecture.md).

    cli, app -> (library face) -> model, interop, acquire -> sync, synth -> session -> errors

Every ``import`` and ``from ... import`` of every module under mecg/ is read with ``ast`` (those
inside functions and under ``if TYPE_CHECKING`` too) and checked against :data:`ALLOWED`. Also:
h5py is imported only in mecg/session; the CLI reaches the Qt windows only through the
``mecg.frontends`` entry points, never by importing mecg.app (not even by a module-name string).
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "mecg"

#: The rooms each room may import (besides itself). Imports flow one way, down the design's flow;
#: rooms on one level do not import each other (model never imports acquire, nor acquire model).
ALLOWED: dict[str, set[str]] = {
    "entry": {"cli"},  # mecg/__main__.py: `python -m mecg` runs the CLI
    "cli": {"face", "model", "interop", "acquire", "sync", "synth", "session", "errors"},
    "app": {"face", "model", "interop", "acquire", "sync", "synth", "session", "errors"},
    "face": {"model", "interop", "acquire", "sync", "synth", "session", "errors"},
    "model": {"sync", "synth", "session", "errors"},
    "interop": {"sync", "synth", "session", "errors"},
    "acquire": {"sync", "synth", "session", "errors"},
    "sync": {"session", "errors"},
    "synth": {"session", "errors"},
    "session": {"errors"},
    "errors": set(),
}

#: Modules at the top of the package, and the room each belongs to (a subpackage is its own room).
TOP_MODULES = {"__init__": "face", "api": "face", "__main__": "entry", "errors": "errors"}

#: Justified exceptions: (module, imported module) -> (the only names it may take, why).
EXCEPTIONS: dict[tuple[str, str], tuple[set[str], str]] = {
    ("mecg.session.writer", "mecg"): (
        {"__version__"},
        "the package version written into each file: package metadata, resolved without importing any room",
    ),
}


def room_of(module: str) -> str:
    """The room of a dotted module name under mecg (``mecg.cli.record`` -> ``cli``)."""
    parts = module.split(".")
    if len(parts) == 1:
        return "face"
    if (PKG / parts[1]).is_dir():
        return parts[1]
    return TOP_MODULES[parts[1]]


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name."""
    out = {}
    for p in sorted(PKG.rglob("*.py")):
        parts = p.relative_to(ROOT).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return out


def imports(module: str, path: Path) -> list[tuple[str, set[str], int]]:
    """``(imported module, names taken from it, line)`` of every import in ``path``, relative ones resolved."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(a.name, set(), node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((target, {a.name for a in node.names}, node.lineno))
    return found


def test_the_rooms_table_matches_the_package() -> None:
    rooms = {p.name for p in PKG.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    rooms |= set(TOP_MODULES.values())
    assert rooms == set(ALLOWED), "a room was added or removed: give it its row in ALLOWED (and docs/architecture.md)"
    top = {p.stem for p in PKG.glob("*.py")}
    assert top <= set(TOP_MODULES), f"top-level modules without a room: {sorted(top - set(TOP_MODULES))}"


def violations(mods: dict[str, Path]) -> tuple[list[str], set[tuple[str, str]]]:
    """Imports of ``mods`` against :data:`ALLOWED` (as ``file:line: ...``), and the exceptions they used."""
    wrong = []
    used = set()
    for module, path in mods.items():
        src = room_of(module)
        for target, names, line in imports(module, path):
            if target != "mecg" and not target.startswith("mecg."):
                continue
            dst = room_of(target)
            if dst == src or dst in ALLOWED[src]:
                continue
            allowed_names, _why = EXCEPTIONS.get((module, target), (set(), ""))
            if names and names <= allowed_names:
                used.add((module, target))
                continue
            wrong.append(f"{path.name}:{line}: {module} ({src}) imports {target} ({dst})")
    return wrong, used


def test_every_import_follows_the_flow() -> None:
    wrong, used = violations(modules())
    assert not wrong, "imports against the flow (docs/architecture.md):\n" + "\n".join(wrong)
    assert used == set(EXCEPTIONS), f"exceptions no longer needed: {set(EXCEPTIONS) - used}"


def test_the_flow_check_catches_an_import_upstream(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from mecg.model.spotter import x\nfrom mecg import open_session\nfrom mecg import __version__\n")
    wrong, used = violations({"mecg.session.bad": bad, "mecg.acquire.bad": bad, "mecg.session.writer": bad})
    assert len(wrong) == 8 and used == {("mecg.session.writer", "mecg")}, wrong


def test_h5py_only_in_session() -> None:
    outside = [
        f"{path.relative_to(ROOT)}:{line}"
        for module, path in modules().items()
        if room_of(module) != "session"
        for target, _names, line in imports(module, path)
        if target == "h5py" or target.startswith("h5py.")
    ]
    assert not outside, f"h5py imported outside mecg/session (open files through the session API): {outside}"


def test_cli_and_app_never_import_each_other() -> None:
    for module, path in modules().items():
        src = room_of(module)
        if src not in ("cli", "app"):
            continue
        other = "app" if src == "cli" else "cli"
        for target, _names, line in imports(module, path):
            assert not target.startswith(f"mecg.{other}"), f"{path.relative_to(ROOT)}:{line} imports {target}"
        # nor by name (importlib.import_module("mecg.app...")): only the entry points may name the windows
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = node.value.strip()
                assert not (text.startswith(f"mecg.{other}.") and " " not in text), (
                    f"{path.relative_to(ROOT)}:{node.lineno} names the module {text!r}"
                )


def test_the_cli_finds_the_windows_through_the_frontends_entry_points() -> None:
    from mecg.cli.app import FRONTENDS, frontend

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"][FRONTENDS]
    assert set(declared) == {"app", "review"}
    for name, target in declared.items():
        module, _, func = target.partition(":")
        assert room_of(module) == "app", f"{FRONTENDS}:{name} must point into mecg.app, not {module}"
        defined = {
            getattr(n, "name", None) for n in ast.parse((ROOT / (module.replace(".", "/") + ".py")).read_text()).body
        }
        assert func in defined, f"{target} does not exist"
        launcher = frontend(name)  # the installed metadata agrees with pyproject.toml (reinstall if not)
        assert f"{launcher.__module__}:{launcher.__name__}" == target


def test_an_unregistered_window_is_a_clear_error() -> None:
    from mecg.cli.app import frontend
    from mecg.errors import MecgError

    with pytest.raises(MecgError, match="not registered"):
        frontend("no-such-window")


def test_the_checker_sees_function_level_and_relative_imports(tmp_path: Path) -> None:
    """The scanner itself: an import inside a function and a relative one are found and resolved."""
    p = tmp_path / "m.py"
    p.write_text("def f():\n    from ..app import main\n    import h5py\nfrom . import x\n")
    got = {(t, line) for t, _n, line in imports("mecg.cli.m", p)}
    assert got == {("mecg.app", 2), ("h5py", 3), ("mecg.cli", 4)}
    assert room_of("mecg.app") == "app" and room_of("mecg") == "face" and room_of("mecg.errors") == "errors"
