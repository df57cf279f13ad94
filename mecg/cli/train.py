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
from mecg.model.spotter import DEFAULT_ETAS


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
            ccf_hrs=args.ccf_hrs,
            ccf_trial=args.ccf_trial,
            ccf_etas=args.ccf_etas,
            live_lookahead_s=args.live_lookahead,
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
            f"saved {out} ({args.preset} preset, {args.mode}; threshold {res.spot['threshold']:.3g}"
            f"{_ccf_summary(res.spot)}; trained in {res.seconds:.0f} s{procs})",
            file=sys.stderr,
        )
    if res.world > 1:
        import torch

        torch.distributed.destroy_process_group()
    return 0


def _ccf_summary(spot: dict) -> str:
    """``, CCF thresholds 0.31 (eta 1.3) - 0.12 (eta 2.3), HRS at the apex, trial auto`` (empty for video-only)."""
    table = spot.get("thresholds_ccf")
    if not table:
        return ""
    from mecg.model.spotter import CcfRule

    lo, hi = min(table, key=float), max(table, key=float)
    return (
        f"; CCF thresholds {table[lo]:.3g} (eta {lo}) to {table[hi]:.3g} (eta {hi}), "
        f"{CcfRule.from_dict(spot['ccf']).describe()}; eta {spot['eta_chosen']:g} best on validation"
    )


def _etas(text: str) -> tuple[float, ...]:
    """``LO:HI:STEP`` or ``E1,E2,...`` -> etas (each 0-100); argparse turns the ValueError into exit 2."""
    try:
        if ":" in text:
            lo, hi, step = (float(v) for v in text.split(":"))
            if step <= 0 or hi < lo or (hi - lo) / step > 1000:
                raise ValueError
            etas = tuple(round(lo + i * step, 6) for i in range(round((hi - lo) / step) + 1))
        else:
            etas = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give LO:HI:STEP (e.g. 1.3:2.3:0.1) or E1,E2,... (e.g. 1.5,2)"
        ) from None
    if not all(0 < e <= 100 for e in etas):
        raise argparse.ArgumentTypeError(f"{text!r}: every eta must be in (0, 100]")
    return etas


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
    p.add_argument(
        "--ccf-hrs",
        metavar="apex|window[:S]",
        default="apex",
        help="CCF: HRS exactly at the spotted apex (apex, the paper's rule; default) or its max within +-S s "
        "(window, S default 0.25); stored in the checkpoint",
    )
    p.add_argument(
        "--ccf-trial",
        choices=("auto", "session", "stimulus"),
        default="auto",
        help="CCF trial mean HRS: per stimulus segment (numeric stimulus markers), the whole session, or auto "
        "(segments when there are markers; default)",
    )
    p.add_argument(
        "--ccf-etas",
        type=_etas,
        default=DEFAULT_ETAS,
        metavar="LO:HI:STEP|E1,E2,...",
        help="the etas a CCF threshold is chosen for on the validation subject and stored (default 1.3:2.3:0.1; "
        "2.0 always)",
    )
    p.add_argument(
        "--live-lookahead",
        type=bounded(float, 0.25, 10.0, unit="s"),
        default=None,
        metavar="S",
        help="train for live spotting (`mecg record --live-spot`): windows see only S s of ECG after their centre, "
        "as the live spotter then waits (default: the whole context, 2 s, as offline); stored in the checkpoint",
    )
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
