"""CMCL-Net presets: size, compute and speed of the network alone (``small`` vs ``paper``).

Per preset (fusion mode): trainable parameters, multiply-accumulates per window (forward, counted
by ``torch.utils.flop_counter``), and the wall time of training steps (forward, backward, AdamW,
as ``mecg train`` fine-tunes: binary cross-entropy) and of inference batches (as ``mecg spot``
scores windows), on random batches of the shapes the windows deliver (speed does not depend on
the values). The first steps warm up (allocation, cuDNN autotuning) and are not timed. On CUDA,
``--amp`` runs the steps under bfloat16 autocast. ``--compare-conv3d`` also times each preset with
PyTorch's ``nn.Conv3d`` in place of :class:`mecg.model.conv3d.FastConv3d` (same weights; the two
variants alternate over ``--rounds`` rounds and each row is the median round), so the ratio is
measured side by side.

Prints a table and writes benchmarks/results/presets_<device>[_conv3d].json (with the machine's load
average and torch threads: other work on a shared machine slows every wall-time row; the CPU
seconds of this process are stored beside them).

    python benchmarks/bench_presets.py [--preset small paper] [--device cpu|cuda] [--batch 16]
        [--steps 5] [--flow-image 32] [--amp] [--compare-conv3d --rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

from mecg.model.cmclnet import PRESETS, CMCLConfig, CMCLNet, count_parameters, preset_config
from mecg.model.conv3d import FastConv3d

RESULTS = Path(__file__).parent / "results"


def random_batch(c: CMCLConfig, b: int, device: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A batch of the shapes :class:`mecg.model.windows.SessionData` delivers for ``c``."""
    g = torch.Generator().manual_seed(seed)
    shapes = {
        "feats": (b, c.time_steps, c.n_rois, c.n_roi_features),
        "crops": (b, c.time_steps, c.n_rois, 2, c.patch, c.patch),
        "ecg": (b, c.ecg_len),
        "hr": (b, c.hr_len),
        "hand": (b, c.n_hand),
    }
    if c.flow_image:
        shapes["image"] = (b, c.time_steps, 2, c.flow_image, c.flow_image)
    return {k: torch.randn(s, generator=g).to(device) for k, s in shapes.items()}


def macs_per_window(c: CMCLConfig) -> float:
    """Forward multiply-accumulates of one window (GMAC)."""
    net = CMCLNet(c).eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        net(random_batch(c, 1, "cpu"))
    return counter.get_total_flops() / 2e9


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def plain_conv3d(net: torch.nn.Module) -> int:
    """Replace every FastConv3d of ``net`` by an ``nn.Conv3d`` with its weights; returns how many."""
    n = 0
    for m in list(net.modules()):
        for child_name, child in list(m.named_children()):
            if isinstance(child, FastConv3d):
                plain = torch.nn.Conv3d(
                    child.in_channels, child.out_channels, child.kernel_size, child.stride, child.padding
                )
                plain.load_state_dict(child.state_dict())
                setattr(m, child_name, plain.to(child.weight.device))
                n += 1
    return n


def time_preset(
    c: CMCLConfig, device: str, batch: int, steps: int, amp: bool, warmup: int = 2, plain: bool = False
) -> dict:
    """Seconds per training step and per inference batch of ``batch`` windows, and windows/s
    (``plain``: with ``nn.Conv3d`` in place of FastConv3d)."""
    torch.manual_seed(0)
    net = CMCLNet(c)
    if plain:
        plain_conv3d(net)
    net = net.to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    x = random_batch(c, batch, device)
    y = (torch.arange(batch, device=device) % 2).float()
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp and device.startswith("cuda"))

    def train_step() -> None:
        with autocast:
            logit, _ = net(x)
            loss = F.binary_cross_entropy_with_logits(logit.float(), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def infer() -> None:
        with torch.no_grad(), autocast:
            net(x)

    out = {}
    for name, fn, mode in (("train", train_step, net.train), ("infer", infer, net.eval)):
        mode()
        for _ in range(warmup):
            fn()
        _sync(device)
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(steps):
            fn()
        _sync(device)
        dt = (time.perf_counter() - t0) / steps
        out[f"{name}_s_per_batch"] = round(dt, 4)
        out[f"{name}_windows_per_s"] = round(batch / dt, 1)
        out[f"{name}_cpu_s_per_batch"] = round((time.process_time() - c0) / steps, 4)  # all threads of this process
    if device.startswith("cuda"):
        out["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20)
        torch.cuda.reset_peak_memory_stats()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", nargs="+", choices=PRESETS, default=list(PRESETS), help="presets to time")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    ap.add_argument("--batch", type=int, default=16, help="windows per batch (default 16)")
    ap.add_argument("--steps", type=int, default=5, help="timed steps per preset (default 5)")
    ap.add_argument("--flow-image", type=int, default=None, help="paper preset's flow image side, px (default 32)")
    ap.add_argument("--amp", action="store_true", help="CUDA: bfloat16 autocast")
    ap.add_argument(
        "--compare-conv3d", action="store_true", help="also time each preset with nn.Conv3d in place of FastConv3d"
    )
    ap.add_argument("--rounds", type=int, default=1, help="alternating rounds per variant; the median is kept")
    args = ap.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device here")
    rows = []
    for p in args.preset:
        c = preset_config(p, flow_image=args.flow_image) if p == "paper" and args.flow_image else preset_config(p)
        variants = ["fast"]
        if args.compare_conv3d and plain_conv3d(CMCLNet(c)):
            variants.append("torch")
        size = {"parameters": count_parameters(c), "gmac_per_window": round(macs_per_window(c), 4)}
        runs: dict[str, list[dict]] = {v: [] for v in variants}
        for _ in range(max(1, args.rounds)):
            for v in variants:
                runs[v].append(time_preset(c, args.device, args.batch, args.steps, args.amp, plain=v == "torch"))
        for v in variants:
            timed = sorted(runs[v], key=lambda r: r["train_s_per_batch"])[len(runs[v]) // 2]
            row = {
                "preset": p,
                "conv3d": v,
                "flow_image": c.flow_image,
                **size,
                **timed,
                "train_s_per_batch_rounds": [r["train_s_per_batch"] for r in runs[v]],
                "infer_s_per_batch_rounds": [r["infer_s_per_batch"] for r in runs[v]],
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    head = f"{'preset':7} {'conv3d':6} {'px':>3} {'params':>11} {'GMAC/win':>9} {'train win/s':>12} {'infer win/s':>12}"
    print(head)
    for r in rows:
        print(
            f"{r['preset']:7} {r['conv3d']:6} {r['flow_image']:>3} {r['parameters']:>11,} {r['gmac_per_window']:>9.3f} "
            f"{r['train_windows_per_s']:>12.1f} {r['infer_windows_per_s']:>12.1f}"
        )
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or "cpu"
    meta = {
        "device": args.device,
        "device_name": device_name,
        "batch": args.batch,
        "steps": args.steps,
        "amp": args.amp,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "load_1min": round(os.getloadavg()[0], 2),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"presets_{args.device.split(':')[0]}{'_conv3d' if args.compare_conv3d else ''}.json"
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
