"""Test-wide setup: LSL stays on this machine (the shipped machine-scope config), set before pylsl loads."""

import os
from pathlib import Path

os.environ.setdefault("LSLAPICFG", str(Path(__file__).resolve().parents[1] / "mecg" / "acquire" / "lsl_local.cfg"))
