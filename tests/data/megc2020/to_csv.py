"""Convert the MEGC2020 baseline's public ground truth and MDMD predictions (p = 0.01) to mecg's CSVs.

``python tests/data/megc2020/to_csv.py OUT_DIR`` writes, per dataset (``cas`` = CAS(ME)^2, ``samm`` =
SAMM Long Videos), ``OUT_DIR/<name>_truth.csv`` (``session, onset, offset, type``: an annotation CSV
for ``mecg eval --truth``) and ``OUT_DIR/<name>_pred.csv`` (``session, onset, offset, score, type``: a
spot CSV for ``--pred``). A session is ``<subject folder>_<video code>``, as the baseline names the
prediction files. Predictions are kept as the baseline's ``evaluation_all_p.py`` /
``gen_MEGC2020_log_file.py`` keep them before counting: ME intervals of 7-16 frames and MaE intervals of
17 frames or more (CAS(ME)^2), 47-105 and 106 or more (SAMM). Frame numbers are copied unchanged.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent / "MDMD_results"
#: name -> (baseline's dataset name, sets folder, {class: (shortest, longest or None) in frames})
DATASETS = {
    "cas": ("ME2", "CAS(ME)^2_Sets", {"micro": (7, 16), "macro": (17, None)}),
    "samm": ("SAMM_MEGC", "SAMM_MEGC_Sets", {"micro": (47, 105), "macro": (106, None)}),
}
TYPES = {"micro": "ME", "macro": "MaE"}


def convert(name: str, out_dir: Path) -> tuple[Path, Path]:
    """Write ``<name>_truth.csv`` and ``<name>_pred.csv`` into ``out_dir``; return their paths."""
    ds, sets, lengths = DATASETS[name]
    videos = [line.split() for line in (HERE / "dataset_new/data" / sets / f"{ds}_all.txt").read_text().splitlines()]
    videos = [v for v in videos if v]
    truth_csv, pred_csv = out_dir / f"{name}_truth.csv", out_dir / f"{name}_pred.csv"
    with truth_csv.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["session", "onset", "offset", "type"])
        for line in (HERE / "dataset_new/data" / sets / "all_Info.txt").read_text().splitlines():
            if not line.strip():
                continue
            folder, code, cls, onset, _apex, offset = line.split()
            w.writerow([f"{folder}_{code}", int(float(onset)), int(float(offset)), TYPES[cls.split("-")[0]]])
    with pred_csv.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["session", "onset", "offset", "score", "type"])
        for cls, (shortest, longest) in lengths.items():
            for folder, code in videos:
                txt = HERE / "results_API" / f"{ds}_{cls}_txtClips" / "p1" / f"{folder}_{code}.txt"
                for line in txt.read_text().splitlines():  # every listed video has its file
                    onset, offset, score = line.split()
                    n = int(offset) - int(onset) + 1
                    if n >= shortest and (longest is None or n <= longest):
                        w.writerow([f"{folder}_{code}", onset, offset, score, TYPES[cls]])
    return truth_csv, pred_csv


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    out.mkdir(parents=True, exist_ok=True)
    for n in DATASETS:
        for p in convert(n, out):
            print(f"wrote {p}")
