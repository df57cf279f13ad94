"""CLI conventions (issue #20 item 7): progress bars with an ETA on a terminal only, --quiet, --version on every
entry point, --json on validate/spot/synth, every written file named."""

from __future__ import annotations

import fcntl
import io
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import pytest

from mecg.cli.main import main
from mecg.cli.progress import Progress

ROOT = Path(__file__).resolve().parents[1]
#: tqdm's "[elapsed<remaining" part: the ETA.
ETA = re.compile(r"\[\d\d:\d\d<\d\d:\d\d")
TINY = ["--subjects", "2", "--duration", "6", "--fps", "30", "--size", "96x72", "--me-per-min", "10", "--workers", "1"]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_on_a_terminal_lines_elsewhere_nothing_when_quiet() -> None:
    tty = _Terminal()
    threads = threading.active_count()
    with Progress(3, "work", "session", stream=tty) as bar:
        assert bar.shown
        # no tqdm monitor thread: with a second thread export-nwb would write in this process
        # instead of a forked child, and a full disk would crash its HDF5 (test_reliability)
        assert threading.active_count() == threads
        for i in range(3):
            bar.log(f"item {i} done")
            bar.update()
    out = tty.getvalue()
    assert "3/3" in out and ETA.search(out) and "item 2 done" in out

    plain = io.StringIO()  # a file or a pipe: no bar, the lines as they were
    with Progress(3, "work", stream=plain) as bar:
        assert not bar.shown
        bar.log("item 0 done")
        bar.set(2, 3)
        bar.warn("warning: something")
    assert plain.getvalue() == "item 0 done\nwarning: something\n"

    quiet = _Terminal()
    with Progress(3, "work", quiet=True, stream=quiet) as bar:
        assert not bar.shown
        bar.log("item 0 done")
        bar.update()
        bar.warn("warning: kept")
    assert quiet.getvalue() == "warning: kept\n"


def _in_terminal(args: list[str]) -> tuple[int, str, str]:
    """Run ``mecg ARGS`` with stderr on a pseudo-terminal (120x40): exit code, what the terminal showed, stdout."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # a terminal says its size
    cmd = [sys.executable, "-m", "mecg", *args]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave, cwd=ROOT)
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            data = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    code = proc.wait(timeout=60)
    out = proc.stdout.read().decode()
    proc.stdout.close()
    return code, b"".join(chunks).decode(errors="replace"), out


def test_synth_and_export_draw_a_bar_with_eta_under_a_terminal(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A real terminal (a pty) on stderr: the bar is drawn; stderr that is not a terminal gets plain lines, no bar."""
    code, err, out = _in_terminal(["synth", str(tmp_path / "a"), *TINY])
    assert code == 0
    assert "synth" in err and "2/2" in err and ETA.search(err), err
    assert "wrote 2 sessions" in out
    # export-nwb writes frames inside the NWB file in a forked child: its bar still reaches the terminal
    session = tmp_path / "a" / "sub-01_trial-01.h5"
    code, err, out = _in_terminal(["export-nwb", str(session), str(tmp_path / "s.nwb"), "--video-in-file"])
    assert code == 0 and "export-nwb video: 100%" in err and ETA.search(err), err
    code, err, out = _in_terminal(["export-nwb", str(session), str(tmp_path / "t.nwb"), "--quiet"])
    assert code == 0 and err == "" and "wrote" in out

    capsys.readouterr()
    assert main(["synth", str(tmp_path / "b"), *TINY]) == 0  # in this process: stderr is pytest's capture, no tty
    err = capsys.readouterr().err
    assert not ETA.search(err) and "[2/2] sub-02_trial-01.h5" in err


@pytest.mark.parametrize("prog", ["mecg-record", "mecg-app", "mecg"])
def test_version_on_every_entry_point(prog: str, capsys: pytest.CaptureFixture) -> None:
    from mecg import __version__

    if prog == "mecg-record":
        from mecg.cli.record import main as entry
    elif prog == "mecg-app":
        from mecg.cli.app import main as entry
    else:
        entry = main
    with pytest.raises(SystemExit) as e:
        entry(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"{prog} {__version__}"


def test_json_names_every_file_written(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = tmp_path / "data"
    assert main(["synth", str(data), *TINY, "--json", "--quiet"]) == 0
    out, err = capsys.readouterr()
    rep = json.loads(out)  # one JSON document, nothing else on stdout
    assert err == ""  # --quiet: no progress lines
    written = sorted(str(p) for p in data.iterdir() if not p.name.startswith("."))
    assert sorted(rep["files"]) == written and len(rep["sessions"]) == 2
    assert rep["manifest"] == str(data / "manifest.json")

    csv, png = tmp_path / "spots.csv", tmp_path / "p.png"
    assert main(["spot", str(data), "--out", str(csv), "--plot", str(png), "--json"]) == 0
    out, err = capsys.readouterr()
    rep = json.loads(out)
    plots = [str(tmp_path / f"p_{s}.png") for s in ("sub-01_trial-01", "sub-02_trial-01")]
    assert rep["plots"] == plots and rep["files"] == [str(csv), *plots]
    assert all(Path(p).stat().st_size > 0 for p in rep["files"])
    assert rep["spots"] == len(csv.read_text().splitlines()) - 1
    assert "[2/2] sub-02_trial-01.h5" in err  # not a terminal: the per-session lines

    assert main(["spot", str(data), "--out", str(csv), "--plot", str(png), "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    for p in plots:  # without --json every plot file is named too
        assert f"wrote {p}\n" in out
    assert f"to {csv}" in out

    assert main(["validate", str(data / "sub-01_trial-01.h5"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["valid"] is True
