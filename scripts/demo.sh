#!/usr/bin/env bash
# The main job on simulated devices: generate a synthetic participant, inspect and validate it.
# Usage: scripts/demo.sh [OUT_DIR]   (run through `make demo`, which sets up .venv first)
set -euo pipefail
out=${1:-out/demo}
bin=.venv/bin
rm -rf "$out"
mkdir -p "$out"
"$bin/mecg" --version
"$bin/mecg" synth "$out/synth" --subjects 1 --trials 1 --duration 20 --fps 60 --size 320x240 --seed 1
f=$(ls "$out"/synth/*.h5 | head -n 1)
"$bin/mecg" info "$f"
"$bin/mecg" validate "$f"
