#!/usr/bin/env bash
# The main job on simulated devices, end to end: a simulated lab recorded through the real drivers
# and LSL, sync, a small synthetic training set, CMCL-Net training, spotting with the HR-slope
# candidate filter, MEGC evaluation and plots; annotations go in through coder sheets (mecg annotate).
# Usage: scripts/demo.sh [OUT_DIR] (run by `make demo`).
set -euo pipefail
out=${1:-out/demo}
bin=.venv/bin
rm -rf "$out"
mkdir -p "$out"
echo "== $("$bin/mecg" --version)"
echo "== 1. record 40 s of a simulated lab (a participant making 8 MEs and 4 MaEs a minute): virtual"
echo "==    amplifier + trigger box on serial ptys, virtual camera, the real drivers, LSL on this machine"
echo "==    only, into a crash-safe session"
"$bin/mecg" record --simulate --seed 3 --me-per-min 8 --mae-per-min 4 --duration 40 --fps 60 --size 320x240 --subject P-0001 \
  --out "$out/recording.h5" --lsl-local --quiet
"$bin/mecg" validate "$out/recording.h5"
echo "== 2. sync: every frame on the ECG clock"
# exit 0: verdict ok; 3: suspect (stored and usable; the reasons are printed): the demo goes on; 1 or 2: stop
"$bin/mecg" sync "$out/recording.h5" --plot "$out/sync.png" || { rc=$?; [ "$rc" -eq 3 ] || exit "$rc"; }
echo "== 3. annotate: the simulated participant's expressions handed in as a coder's sheet (XLSX), imported"
echo "==    as coder A and made the reference set that train, eval and stats read; agreement with the truth"
"$bin/mecg" annotate "$out/recording.h5" export "$out/coder_A.xlsx" --coder recording
"$bin/mecg" annotate "$out/recording.h5" import "$out/coder_A.xlsx" --coder A --reference
"$bin/mecg" annotate "$out/recording.h5" agree --coders recording A
"$bin/mecg" annotate "$out/recording.h5" list
echo "== 4. a small synthetic training set (4 subjects x 1 trial x 40 s, 8 MEs and 4 MaEs a minute), each"
echo "==    annotated the same way through a coder sheet (CSV) imported as the reference set"
# --realism easy: the simulated lab's world (one face, every ME moving the heart alike; docs/synth.md)
"$bin/mecg" synth "$out/train" --subjects 4 --duration 40 --fps 60 --size 320x240 --seed 7 --me-per-min 8 --mae-per-min 4 \
  --realism easy
for s in "$out"/train/*.h5; do
  "$bin/mecg" annotate "$s" export "${s%.h5}_coder_A.csv" --coder recording
  "$bin/mecg" annotate "$s" import "${s%.h5}_coder_A.csv" --coder A --reference
done
echo "== 5. train CMCL-Net (video + ECG)"
"$bin/mecg" train "$out/train" --out "$out/cmclnet.pt" --epochs 6 --pretrain-epochs 2
echo "== 6. spot the recording with the candidate clip filter (eta 2.0)"
"$bin/mecg" spot "$out/recording.h5" --model "$out/cmclnet.pt" --out "$out/spots.csv" --plot "$out/spots.png"
echo "== 7. MEGC evaluation against the reference set (coder A)"
"$bin/mecg" eval --pred "$out/spots.csv" --truth "$out/recording.h5"
"$bin/mecg" info "$out/recording.h5"
echo "== 8. the ME-ECG statistics: ECG at ME/MaE apexes vs non-expression moments (rank tests, boxplots)"
echo "==    on 10 synthetic participants x 60 s (tiny frames: only the ECG and the annotations are used)"
"$bin/mecg" synth "$out/stats" --subjects 10 --duration 60 --fps 30 --size 96x72 --seed 5 --realism easy
"$bin/mecg" stats "$out/stats" --plot "$out/stats.png"
echo "== 9. share the recording as NWB (ECG in volts, lossless video beside it, annotations)"
"$bin/mecg" export-nwb "$out/recording.h5" "$out/recording.nwb" --age P18Y/ --inspect
echo "== done: $out/recording.h5, $out/sync.png, $out/coder_A.xlsx, $out/spots.csv, $out/spots.png, $out/stats.png, $out/recording.nwb"
