"""CMCL-Net training and spotting time on the CPU and, when there is one, on a CUDA GPU.

For each network preset (``--presets``: ``small`` by default, ``paper`` on request) and device: the time of
``--epochs`` fine-tuning epochs after ``--pretrain-epochs`` contrastive ones on a small synthetic
set (float32 on the CPU; on CUDA float16 mixed precision and DataLoader workers), and the time to
score every frame of one session (network only, features loaded), as frames/s and x real time
at the session's frame rate. Without CUDA it says so and times the CPU only, so it runs anywhere;
run it again where a GPU is lent. The load average is stored with the numbers.
Prints a table and writes benchmarks/results/gpu.json.

    python benchmarks/gpu.py [--quick] [--presets small,paper] [--epochs 2]  # on a GPU: --presets small,paper
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from mecg.model.pipeline import PRESETS, load_sessions, network_config
from mecg.model.spotter import frame_scores
from mecg.model.train import TrainConfig, train_model
from mecg.model.windows import WindowParams
from mecg.synth import DatasetSpec, TrialConfig, make_dataset

RESULTS = Path(__file__).parent / "results"


def cuda_info() -> dict:
    """Whether CUDA is usable here, and which GPU."""
    if not torch.cuda.is_available():
        why = "PyTorch built without CUDA" if torch.version.cuda is None else "no CUDA device visible"
        return {"available": False, "why": why, "torch": torch.__version__}
    return {
        "available": True,
        "device": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
    }


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_preset(paths: list[Path], preset: str, devices: list[str], epochs: int, pretrain: int) -> list[dict]:
    config = network_config(preset, "fusion")
    window = WindowParams(flow_image=config.flow_image if "image" in config.inputs else 0)
    data = load_sessions(paths, window, log=lambda m: None)
    train, val = data[:-1], data[-1:]
    rows = []
    for dev in devices:
        tc = TrainConfig(
            epochs=epochs,
            pretrain_epochs=pretrain,
            seed=0,
            log=False,
            device=dev,
            patience=epochs + 1,
            max_negatives_per_session=150,
            loader_workers=min(4, max(0, (os.cpu_count() or 1) - 1)) if dev == "cuda" else 0,
        )
        t0 = time.perf_counter()
        res = train_model(train, val, replace(config), tc)
        _sync(dev)
        train_s = time.perf_counter() - t0
        model = res.model.to(dev)
        frame_scores(model, val[0], dev)  # warm-up (CUDA kernels, allocator)
        _sync(dev)
        t0 = time.perf_counter()
        frame_scores(model, val[0], dev)
        _sync(dev)
        score_s = time.perf_counter() - t0
        n, fps = val[0].n, val[0].fps
        rows.append(
            {
                "preset": preset,
                "device": dev,
                "precision": "float16 autocast" if dev == "cuda" else "float32",
                "loader_workers": tc.loader_workers,
                "train_sessions": len(train),
                "epochs": f"{pretrain}+{epochs}",
                "train_s": round(train_s, 2),
                "train_s_per_epoch": round(train_s / max(1, epochs + pretrain), 2),
                "score_frames": n,
                "score_s": round(score_s, 3),
                "score_frames_per_s": round(n / score_s, 1),
                "score_x_real_time": round(n / score_s / fps, 1),
                "fps": fps,
            }
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 subjects x 20 s, 1+1 epochs")
    ap.add_argument(
        "--presets",
        default="small",
        help=f"comma-separated, of {','.join(PRESETS)} (default small; paper takes minutes an epoch on 2 CPU cores)",
    )
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--pretrain-epochs", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    epochs, pretrain = (1, 1) if args.quick else (args.epochs, args.pretrain_epochs)
    subjects, seconds = (2, 20.0) if args.quick else (3, 30.0)
    cuda = cuda_info()
    devices = ["cpu", "cuda"] if cuda["available"] else ["cpu"]
    load_before = [round(x, 2) for x in os.getloadavg()]
    t_start = time.perf_counter()
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="mecg-bench-gpu-") as d:
        cfg = replace(TrialConfig(), duration_s=seconds, fps=60, width=320, height=240)
        make_dataset(DatasetSpec(d, subjects, 1, 0, cfg))
        paths = sorted(Path(d).glob("*.h5"))
        for preset in [p for p in args.presets.split(",") if p]:
            rows += time_preset(paths, preset, devices, epochs, pretrain)
    load_after = [round(x, 2) for x in os.getloadavg()]
    print(f"machine: {os.cpu_count()} cores, load average {load_before} before, {load_after} after")
    print("CUDA: " + (f"{cuda['device']} (CUDA {cuda['cuda']})" if cuda["available"] else f"absent ({cuda['why']})"))
    print(
        f"\nCMCL-Net on {subjects} synthetic subjects x {seconds:g} s at 60 fps "
        f"(train on {subjects - 1}, score the last):"
    )
    head = f"{'preset':>7} {'device':>6} {'epochs':>6} {'train s':>8} {'s/epoch':>8}"
    print(f"{head} {'score frames/s':>15} {'x real':>7}")
    for r in rows:
        print(
            f"{r['preset']:>7} {r['device']:>6} {r['epochs']:>6} {r['train_s']:>8} {r['train_s_per_epoch']:>8} "
            f"{r['score_frames_per_s']:>15} {r['score_x_real_time']:>7}"
        )
    for preset in {r["preset"] for r in rows}:
        by = {r["device"]: r for r in rows if r["preset"] == preset}
        if "cuda" in by:
            print(
                f"{preset}: CUDA trains {by['cpu']['train_s'] / by['cuda']['train_s']:.1f}x and scores "
                f"{by['cuda']['score_frames_per_s'] / by['cpu']['score_frames_per_s']:.1f}x as fast as the CPU"
            )
    total = time.perf_counter() - t_start
    print(f"benchmark took {total:.0f} s")
    RESULTS.mkdir(exist_ok=True)
    out = {
        "benchmark": "gpu",
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "torch_threads": args.threads,
        "cuda": cuda,
        "load_average_before": load_before,
        "load_average_after": load_after,
        "settings": {"subjects": subjects, "seconds": seconds, "fps": 60, "size": "320x240", "seed": 0},
        "rows": rows,
        "seconds": round(total, 1),
    }
    (RESULTS / "gpu.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {RESULTS / 'gpu.json'}")


if __name__ == "__main__":
    main()
