"""``mecg train``: train CMCL-Net on a folder of annotated sessions (optionally with LOSO evaluation)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mecg.cli.argtypes import JOBS, WORKERS, bounded
from mecg.cli.outputs import check_output_file
from mecg.cli.progress import Progress, add_quiet_option
from mecg.errors import MecgError
from mecg.model.cmclnet import MIN_FLOW_IMAGE, MODES, PRESETS


def _train(args: argparse.Namespace) -> int:
    from mecg.model.pipeline import train_spotter
    from mecg.session.files import session_files

    paths = session_files(args.data_dir) if Path(args.data_dir).is_dir() else []
    if not paths:
        raise MecgError(f"{args.data_dir} holds no .h5 session files; make some with `mecg synth` or `mecg record`")
    out = check_output_file(args.out, f"--out {args.out}")  # before any feature is extracted or epoch run
    units = {"features": "session", "LOSO": "fold", "train": "epoch"}
    bars: dict[str, Progress] = {}

    def progress(phase: str, done: int, total: int) -> None:
        if phase not in bars:  # a new phase: the last one's bar ends
            for bar in bars.values():
                bar.close()
            bars.clear()
            bars[phase] = Progress(total, phase, units.get(phase, "it"), quiet=args.quiet)
        bars[phase].set(done, total)

    def log(msg: str) -> None:
        bar = next(iter(bars.values()), None)
        if bar is None:
            print(msg, file=sys.stderr, flush=True)
        elif msg.startswith(("warning", "notice")):
            bar.warn(msg)
        else:
            bar.log(msg)

    try:
        res = train_spotter(
            paths,
            out,
            mode=args.mode,
            preset=args.preset,
            flow_image=args.flow_image,
            epochs=args.epochs,
            pretrain_epochs=args.pretrain_epochs,
            contrastive=args.contrastive,
            seed=args.seed,
            device=args.device,
            threads=args.threads,
            workers=args.workers,
            jobs=args.jobs,
            ecg_channel=args.ecg_channel,
            loso=args.loso,
            log=log,
            progress=progress,
        )
    finally:
        for bar in bars.values():
            bar.close()
    if res.rank == 0:
        if res.loso is not None:
            print(json.dumps({"loso": res.loso}, indent=2) if args.json else _loso_table(res.loso))
        procs = f" on {res.world} processes" if res.world > 1 else ""
        print(
            f"saved {out} ({args.mode}; threshold {res.spot['threshold']:.2f}; trained in {res.seconds:.0f} s{procs})",
            file=sys.stderr,
        )
    if res.world > 1:
        import torch

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
    p.add_argument(
        "--preset",
        choices=PRESETS,
        default="small",
        help="network size: small (CPU-sized, 0.36 M parameters; default) or paper (CA-I3D over face-crop flow "
        "images, residual TCN, the paper's hand-made features; 15.5 M, meant for a GPU); recorded in the checkpoint",
    )
    p.add_argument(
        "--flow-image",
        type=bounded(int, MIN_FLOW_IMAGE, 128, unit="px"),
        default=None,
        metavar="PX",
        help="paper preset only: side of the face-crop flow images the CA-I3D reads (default 32)",
    )
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
