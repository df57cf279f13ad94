"""``mecg train``: train CMCL-Net on a folder of annotated sessions (optionally with LOSO evaluation)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from mecg.cli.argtypes import JOBS, WORKERS, bounded
from mecg.cli.outputs import check_output_file
from mecg.cli.progress import Progress, add_quiet_option
from mecg.errors import MecgError
from mecg.model.cmclnet import MODES, CMCLConfig
from mecg.model.frontend import FrontEndParams, default_k
from mecg.model.pipeline import fit, load_sessions, loso, save
from mecg.model.train import TrainConfig, init_distributed
from mecg.model.windows import WindowParams


def _device(name: str) -> str:
    import torch

    if name == "cuda" and not torch.cuda.is_available():
        raise MecgError("--device cuda: no CUDA device is available here; use --device cpu")
    return name


def _train(args: argparse.Namespace) -> int:
    import torch

    root = Path(args.data_dir)
    paths = sorted(root.glob("*.h5")) if root.is_dir() else []
    if not paths:
        raise MecgError(f"{root} holds no .h5 session files; make some with `mecg synth` or `mecg record`")
    out = check_output_file(args.out, f"--out {args.out}")  # before any feature is extracted or epoch run
    torch.set_num_threads(max(1, args.threads))
    rank, world, device = init_distributed(_device(args.device))
    window = WindowParams()
    if rank != 0:  # rank 0 computes and caches the features first; the others then read the caches
        torch.distributed.barrier()
    quiet = args.quiet or rank != 0
    with Progress(len(paths), "features", "session", quiet=quiet) as bar:
        data = load_sessions(
            paths,
            window,
            use_ecg=args.mode != "video",
            workers=args.workers,
            log=lambda m: (bar.warn if m.startswith(("warning", "notice")) else bar.log)(m),
            ecg_channel=args.ecg_channel,
            jobs=args.jobs if rank == 0 else 1,
            progress=bar.set,
        )
    if rank == 0 and world > 1:
        torch.distributed.barrier()
    fps = {d.fps for d in data}
    if len(fps) > 1:
        raise MecgError(f"sessions have different frame rates {sorted(fps)}; train one model per frame rate")
    frontend = FrontEndParams(k_frames=default_k(fps.pop()))
    config = CMCLConfig(mode=args.mode)
    tc = TrainConfig(
        epochs=args.epochs,
        pretrain_epochs=args.pretrain_epochs,
        seed=args.seed,
        contrastive=args.contrastive,
        device=device,
    )
    t0 = time.perf_counter()
    if args.loso:
        with Progress(len({d.subject or d.name for d in data}), "LOSO", "fold", quiet=quiet) as bar:
            res = loso(data, config, tc, log=bar.log, progress=bar.set)
        if rank == 0:
            print(json.dumps({"loso": res["results"]}, indent=2) if args.json else _loso_table(res["results"]))
    with Progress(tc.pretrain_epochs + tc.epochs, "train", "epoch", quiet=quiet) as bar:
        model, spot = fit(data, config, tc, progress=bar.set, log=bar.log)
    if rank == 0:  # one process writes the checkpoint
        save(out, model, window, frontend, spot, tc, data)
        procs = f" on {world} processes" if world > 1 else ""
        print(
            f"saved {out} ({config.mode}; threshold {spot['threshold']:.2f}; trained in "
            f"{time.perf_counter() - t0:.0f} s{procs})",
            file=sys.stderr,
        )
    if world > 1:
        torch.distributed.destroy_process_group()
    return 0


def _loso_table(results: dict) -> str:
    lines = [f"{'LOSO (ME)':12} {'TP':>4} {'FP':>4} {'FN':>4} {'P':>7} {'R':>7} {'F1':>7}"]
    for k, c in results.items():
        lines.append(f"{k:12} {c['tp']:>4} {c['fp']:>4} {c['fn']:>4} {c['precision']:>7} {c['recall']:>7} {c['f1']:>7}")
    return "\n".join(lines)


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``train`` to the ``mecg`` parser."""
    p = sub.add_parser(
        "train",
        help="train CMCL-Net on annotated sessions",
        description="Contrastive pre-training then fine-tuning on sliding windows; the last subject "
        "is held out for early stopping and the spotting threshold. Seeded and reproducible.",
    )
    p.add_argument("data_dir", help="folder of annotated session files")
    p.add_argument("--out", required=True, help="checkpoint to write (.pt)")
    p.add_argument("--mode", choices=MODES, default="fusion", help="video + ECG (default), video only or ECG only")
    p.add_argument("--epochs", type=bounded(int, 1, 10000), default=12, help="fine-tuning epochs (default 12)")
    p.add_argument(
        "--pretrain-epochs", type=bounded(int, 0, 10000), default=4, help="contrastive pre-training epochs (default 4)"
    )
    p.add_argument("--contrastive", choices=("triplet", "infonce"), default="triplet", help="pre-training loss")
    p.add_argument(
        "--ecg-channel",
        metavar="[STREAM:]LABEL|INDEX",
        default="",
        help="the ECG channel of sessions not synced yet, e.g. OpenBCI:ECG (INDEX 0-based; default: the choice "
        "stored by mecg record, else the one stream of type ECG or with a channel labelled ECG/EKG)",
    )
    p.add_argument("--loso", action="store_true", help="also run leave-one-subject-out evaluation and print it")
    p.add_argument("--json", action="store_true", help="print the LOSO results as JSON")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="training device (default cpu)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--threads", type=WORKERS, default=2, help="torch CPU threads (default 2)")
    p.add_argument(
        "--workers", type=WORKERS, default=None, help="pieces (processes) of one video's front end (default: all cores)"
    )
    p.add_argument(
        "--jobs",
        type=JOBS,
        default=1,
        metavar="N",
        help="sessions whose features are extracted at once, one per process (default 1); same features for every N",
    )
    add_quiet_option(p)
    p.set_defaults(func=_train)
