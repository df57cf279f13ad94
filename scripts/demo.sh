#!/usr/bin/env bash
# The main job on simulated devices, end to end: a recorded session of a synthetic participant,
# sync, a small synthetic training set, CMCL-Net training, spotting with the HR-slope filter,
# MEGC evaluation and a spot plot. Usage: scripts/demo.sh [OUT_DIR] (run by `make demo`).
set -euo pipefail
out=${1:-out/demo}
bin=.venv/bin
rm -rf "$out"
mkdir -p "$out"
echo "== mecg $("$bin/mecg" --version)"
echo "== 1. a session of a synthetic participant (video 60 fps 320x240 + ECG 1000 Hz + triggers)"
"$bin/mecg" synth "$out/session" --subjects 1 --duration 40 --fps 60 --size 320x240 --seed 101 \
  --clock-offset-ms 850 --drift-ppm 60
session=$out/session/sub-01_trial-01.h5
"$bin/mecg" validate "$session"
echo "== 2. sync: every frame on the ECG clock"
"$bin/mecg" sync "$session" --plot "$out/sync.png"
echo "== 3. a small synthetic training set (4 subjects x 1 trial x 40 s)"
"$bin/mecg" synth "$out/train" --subjects 4 --duration 40 --fps 60 --size 320x240 --seed 7
echo "== 4. train CMCL-Net (video + ECG)"
"$bin/mecg" train "$out/train" --out "$out/cmclnet.pt" --epochs 6 --pretrain-epochs 2
echo "== 5. spot the session with the candidate clip filter (eta 2.0)"
"$bin/mecg" spot "$session" --model "$out/cmclnet.pt" --out "$out/spots.csv" --plot "$out/spots.png"
echo "== 6. MEGC evaluation against the session's annotations"
"$bin/mecg" eval --pred "$out/spots.csv" --truth "$session"
"$bin/mecg" info "$session"
echo "== done: $out/spots.csv, $out/spots.png, $out/sync.png"
