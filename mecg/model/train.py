"""Training CMCL-Net: contrastive pre-training, then fine-tuning, with early stopping on a held-out subject.

1. **Windows**: every ME window (apex within a quarter window of the centre) and non-ME windows
   every half window; class imbalance is handled by balanced batches (half ME, half not) in
   pre-training and a positive-class weight in fine-tuning.
2. **Contrastive pre-training** (``pretrain_epochs``): triplet loss on the embeddings, anchor and
   positive ME windows, negative non-ME windows (margin 0.5); with ``contrastive="infonce"`` a
   cross-modal InfoNCE instead (the video and ECG embeddings of one window are the positive pair;
   fusion mode only).
3. **Fine-tuning** (``epochs``): the whole net with binary cross-entropy, ME vs not.
4. **Early stopping**: the validation subject's average precision after each fine-tuning epoch;
   the best epoch's weights are kept (``patience`` epochs without improvement stop training).
5. **Spotting threshold**: chosen on the validation subject (the one that maximises ME F1 of
   the spotter), so nothing is tuned on test data.

Checkpoints hold weights, the network config, the window and front-end parameters and the
spotting parameters, and load with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from mecg.model.checkpoint import (
    CHECKPOINT_VERSION,
    FORMAT,
    Checkpoint,
    ModelError,
    check_checkpoint,
)
from mecg.model.cmclnet import CMCLConfig, CMCLNet
from mecg.model.frontend import FrontEndParams
from mecg.model.windows import SessionData, WindowParams


@dataclass
class TrainConfig:
    """Training settings (epochs, batch size, learning rate, seed, contrastive loss)."""

    epochs: int = 12
    pretrain_epochs: int = 4
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0
    patience: int = 4
    contrastive: str = "triplet"
    margin: float = 0.5
    device: str = "cpu"
    max_negatives_per_session: int = 400
    log: bool = True
    #: processes that assemble batches (a torch DataLoader's workers); 0: this process. The batches
    #: are drawn here either way, so the model does not depend on it.
    loader_workers: int = 0
    #: mixed precision (float16 autocast and a gradient scaler) on CUDA; the CPU always runs float32
    amp: bool = True


def distributed() -> tuple[int, int]:
    """``(rank, world size)`` of this process: ``(0, 1)`` unless torchrun started it in a process group."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_distributed(device: str) -> tuple[int, int, str]:
    """Join the process group torchrun describes (``WORLD_SIZE`` > 1); returns rank, world size, device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, device
    dist = torch.distributed
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device == "cuda" else "gloo")
    if device == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    return dist.get_rank(), dist.get_world_size(), device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def to_torch(batch: dict[str, np.ndarray], device: str) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.ascontiguousarray(v)).float().to(device) for k, v in batch.items()}


def training_windows(data: list[SessionData], rng: np.random.Generator, max_neg: int) -> list[tuple[int, int, int]]:
    """``(session index, centre frame, label)`` of every ME window and a sample of non-ME windows."""
    out = []
    for si, d in enumerate(data):
        w = d.params.frames(d.fps)
        pos_c = np.unique(np.concatenate([np.arange(a - w // 4, a + w // 4 + 1) for a in d.me_apexes()] or [[]]))
        pos_c = pos_c[(pos_c >= 0) & (pos_c < d.n)].astype(int)
        neg_c = np.arange(w // 2, d.n - w // 2, max(1, w // 2))
        neg_c = neg_c[d.labels(neg_c) == 0]
        if neg_c.size > max_neg:
            neg_c = rng.choice(neg_c, max_neg, replace=False)
        out += [(si, int(c), 1) for c in pos_c] + [(si, int(c), 0) for c in neg_c]
    return out


Plan = tuple[list[tuple[int, np.ndarray]], list[int]]


def plan_batch(data: list[SessionData], items: list[tuple[int, int, int]], jitter: np.random.Generator | None) -> Plan:
    """The windows of one batch: ``([(session index, centres)], labels)``, centres shifted by up
    to 1/8 window when ``jitter`` is given (so the net cannot key on exact phase)."""
    by: dict[int, list[tuple[int, int]]] = {}
    for si, c, y in items:
        by.setdefault(si, []).append((c, y))
    parts, ys = [], []
    for si, cs in by.items():
        centers = np.array([c for c, _ in cs])
        if jitter is not None:
            w = data[si].params.frames(data[si].fps)
            centers = np.clip(centers + jitter.integers(-(w // 8), w // 8 + 1, centers.size), 0, data[si].n - 1)
        parts.append((si, centers))
        ys += [y for _, y in cs]
    return parts, ys


def assemble(data: list[SessionData], plan: Plan) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """The input tensors (float32, CPU) and labels of a planned batch."""
    parts = [data[si].batch(centers) for si, centers in plan[0]]
    batch = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return to_torch(batch, "cpu"), torch.tensor(plan[1], dtype=torch.float32)


def make_batch(
    data: list[SessionData], items: list[tuple[int, int, int]], device: str, jitter: np.random.Generator | None = None
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Plan and assemble one batch on ``device``."""
    x, y = assemble(data, plan_batch(data, items, jitter))
    return {k: v.to(device) for k, v in x.items()}, y.to(device)


class _PlannedBatches(torch.utils.data.Dataset):
    """Assembles the batch a plan names (in a DataLoader worker or here)."""

    def __init__(self, data: list[SessionData]) -> None:
        self.data = data

    def __len__(self) -> int:  # plans come from the sampler, not from indices
        return 0

    def __getitem__(self, plan: Plan) -> tuple[dict[str, torch.Tensor], torch.Tensor]:  # type: ignore[override]
        return assemble(self.data, plan)


class _Plans(torch.utils.data.Sampler):
    """The current epoch's batch plans, handed to the loader's workers one by one."""

    def __init__(self) -> None:
        self.plans: list[Plan] = []

    def __iter__(self) -> Iterator[Plan]:
        return iter(self.plans)

    def __len__(self) -> int:
        return len(self.plans)


class BatchLoader:
    """Assembles planned batches, in ``workers`` DataLoader processes (forkserver; they stay up
    for the whole training) or in this process, and moves them to ``device``."""

    def __init__(self, data: list[SessionData], workers: int, device: str) -> None:
        self.data, self.device = data, device
        self.sampler = _Plans()
        self.loader = None
        if workers > 0:
            import multiprocessing

            self.loader = torch.utils.data.DataLoader(
                _PlannedBatches(data),
                batch_size=None,
                sampler=self.sampler,
                num_workers=workers,
                multiprocessing_context=multiprocessing.get_context("forkserver"),
                persistent_workers=True,
                pin_memory=str(device).startswith("cuda"),
                # its own generator: the loader's seed draw must not advance torch's global RNG
                # (dropout), or the model would depend on the number of workers
                generator=torch.Generator().manual_seed(0),
            )

    def __call__(self, plans: list[Plan]) -> Iterator[tuple[dict[str, torch.Tensor], torch.Tensor]]:
        """Yield ``(inputs, labels)`` of each plan, in order, on the device."""
        self.sampler.plans = plans
        source = self.loader if self.loader is not None else (assemble(self.data, p) for p in plans)
        for x, y in source:
            yield {k: v.to(self.device, non_blocking=True) for k, v in x.items()}, y.to(self.device)


def average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the precision-recall curve (step-wise), for early stopping."""
    order = np.argsort(-scores)
    y = labels[order]
    if y.sum() == 0:
        return 0.0
    tp = np.cumsum(y)
    precision = tp / np.arange(1, y.size + 1)
    return float(np.sum(precision * y) / y.sum())


def predict(model: CMCLNet, data: SessionData, centers: np.ndarray, device: str, batch_size: int = 256) -> np.ndarray:
    """ME probability of the windows centred on ``centers``, ``batch_size`` windows at a time.

    Runs under ``torch.inference_mode``; on CUDA in mixed precision (float16 autocast), on the
    CPU in float32 (the same numbers every run).
    """
    model.eval()
    out = []
    with torch.inference_mode(), autocast(device):
        for a in range(0, len(centers), batch_size):
            logit, _ = model(to_torch(data.batch(centers[a : a + batch_size]), device))
            out.append(torch.sigmoid(logit.float()).cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def autocast(device: str) -> contextlib.AbstractContextManager:
    """float16 mixed precision on CUDA (``device`` ``cuda`` or ``cuda:N``); nothing on the CPU."""
    if str(device).startswith("cuda"):
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def _triplet(emb: torch.Tensor, y: torch.Tensor, margin: float) -> torch.Tensor:
    """Batch-all triplet loss: every (anchor ME, positive ME, negative non-ME) in the batch."""
    pos = torch.nonzero(y > 0.5).squeeze(1)
    neg = torch.nonzero(y < 0.5).squeeze(1)
    if pos.numel() < 2 or neg.numel() < 1:
        return emb.sum() * 0
    d = torch.cdist(emb, emb)
    d_ap = d[pos][:, pos]  # (P, P)
    d_an = d[pos][:, neg]  # (P, N)
    loss = F.relu(d_ap.unsqueeze(2) - d_an.unsqueeze(1) + margin)  # (P, P, N)
    mask = ~torch.eye(pos.numel(), dtype=torch.bool, device=emb.device)
    return loss[mask].mean()


def _infonce(model: CMCLNet, batch: dict[str, torch.Tensor], temperature: float = 0.1) -> torch.Tensor:
    """Cross-modal InfoNCE: a window's video and ECG embeddings are the positive pair."""
    zero_e = {**batch, "ecg": batch["ecg"] * 0, "hr": batch["hr"] * 0, "hand": batch["hand"] * 0}
    zero_v = {**batch, **{k: batch[k] * 0 for k in ("feats", "crops", "image") if k in batch}}
    _, zv = model(zero_e)
    _, ze = model(zero_v)
    logits = zv @ ze.T / temperature
    target = torch.arange(zv.shape[0], device=zv.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


@dataclass
class TrainResult:
    model: CMCLNet
    history: list[dict] = field(default_factory=list)
    best_val_ap: float = 0.0


def train_model(
    train: list[SessionData],
    val: list[SessionData],
    config: CMCLConfig,
    tc: TrainConfig,
    *,
    progress: Callable[[int, int], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> TrainResult:
    """Pre-train (contrastive) then fine-tune; keep the epoch with the best validation AP.

    ``progress(epochs_done, epochs_total)`` is called after each epoch (pre-training and
    fine-tuning; early stopping ends it with ``done == total``); ``log`` receives the epoch lines
    (default: stderr) when ``tc.log`` is true, on rank 0 only.
    """
    seed_everything(tc.seed)
    rank, world = distributed()
    rng = np.random.default_rng(tc.seed)
    dev = tc.device
    net = CMCLNet(config).to(dev)
    # Under torchrun every process trains on its own share of the windows; DDP averages gradients.
    if world > 1 and tc.contrastive == "infonce":
        raise ModelError("InfoNCE pre-training runs in one process; use --contrastive triplet with torchrun")
    # (unused parameters: pre-training does not use the classifier head)
    model = torch.nn.parallel.DistributedDataParallel(net, find_unused_parameters=True) if world > 1 else net
    items = training_windows(train, rng, tc.max_negatives_per_session)
    sample_rng = np.random.default_rng([tc.seed, rank])  # each process draws its own balanced batches
    if not any(y for *_, y in items):
        raise ModelError("the training sessions hold no ME annotations; nothing to learn")
    val_items = training_windows(val, np.random.default_rng(tc.seed + 1), tc.max_negatives_per_session) if val else []
    pos = [it for it in items if it[2] == 1]
    neg = [it for it in items if it[2] == 0]
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    history: list[dict] = []

    def say(msg: str) -> None:
        if tc.log and rank == 0:
            if log is not None:
                log(msg)
            else:
                print(msg, file=sys.stderr, flush=True)

    total_epochs = tc.pretrain_epochs + tc.epochs

    def tick(done: int, total: int = total_epochs) -> None:
        if progress is not None and rank == 0:
            progress(done, total)

    # Batches are drawn here, in the same order whatever assembles them (loader_workers).
    loader = BatchLoader(train, tc.loader_workers, dev)
    amp = tc.amp and str(dev).startswith("cuda")
    scaler = torch.amp.GradScaler("cuda", enabled=amp)

    def step(loss: torch.Tensor) -> None:
        opt.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    # -- contrastive pre-training: balanced batches ---------------------------------------------
    steps = max(1, len(items) // (tc.batch_size * world))
    for ep in range(tc.pretrain_epochs):
        model.train()
        total = 0.0
        plans = []
        for _ in range(steps):
            half = tc.batch_size // 2
            chosen = [pos[i] for i in sample_rng.integers(0, len(pos), half)] + [
                neg[i] for i in sample_rng.integers(0, len(neg), half)
            ]
            plans.append(plan_batch(train, chosen, sample_rng))
        for x, y in loader(plans):
            with autocast(dev if amp else "cpu"):
                if tc.contrastive == "infonce" and config.mode == "fusion":
                    loss = _infonce(model, x)
                else:
                    _, emb = model(x)
                    loss = _triplet(emb.float(), y, tc.margin)
            step(loss)
            total += loss.item()
        history.append({"phase": "pretrain", "epoch": ep + 1, "loss": total / steps})
        say(f"  pretrain {ep + 1}/{tc.pretrain_epochs}: {tc.contrastive} loss {total / steps:.4f}")
        tick(ep + 1)

    # -- fine-tuning with early stopping ---------------------------------------------------------
    pos_weight = torch.tensor(len(neg) / max(1, len(pos)), device=dev)
    best = (-1.0, None)
    bad = 0
    for ep in range(tc.epochs):
        model.train()
        order = rng.permutation(len(items))  # the same on every process (same seed)
        if world > 1:  # equal shares, so every process takes the same number of steps
            order = order[rank::world][: len(order) // world]
        total = 0.0
        plans = [
            plan_batch(train, [items[i] for i in order[a : a + tc.batch_size]], sample_rng)
            for a in range(0, len(order), tc.batch_size)
        ]
        for x, y in loader(plans):
            with autocast(dev if amp else "cpu"):
                logit, _ = model(x)
                loss = F.binary_cross_entropy_with_logits(logit.float(), y, pos_weight=pos_weight)
            step(loss)
            total += loss.item() * len(y)
        rec = {"phase": "finetune", "epoch": ep + 1, "loss": total / len(order)}
        if val_items:
            scores = _predict_items(net, val, val_items, dev)
            rec["val_ap"] = average_precision(scores, np.array([y for *_, y in val_items]))
        history.append(rec)
        say(
            f"  finetune {ep + 1}/{tc.epochs}: loss {rec['loss']:.4f}"
            + (f", val AP {rec['val_ap']:.3f}" if "val_ap" in rec else "")
        )
        tick(tc.pretrain_epochs + ep + 1)
        score = rec.get("val_ap", -rec["loss"])
        if world > 1:  # every process follows rank 0's early-stopping decision
            box = [score]
            torch.distributed.broadcast_object_list(box, src=0)
            score = box[0]
        if score > best[0]:
            best = (score, {k: v.detach().clone() for k, v in net.state_dict().items()})
            bad = 0
        else:
            bad += 1
            if bad >= tc.patience:
                tick(tc.pretrain_epochs + ep + 1, tc.pretrain_epochs + ep + 1)  # stopped early: done
                break
    if best[1] is not None:
        net.load_state_dict(best[1])
    return TrainResult(net, history, max(best[0], 0.0))


def _predict_items(model: CMCLNet, data: list[SessionData], items: list[tuple[int, int, int]], dev: str) -> np.ndarray:
    out = np.zeros(len(items))
    by: dict[int, list[int]] = {}
    for i, (si, _, _) in enumerate(items):
        by.setdefault(si, []).append(i)
    for si, idx in by.items():
        out[idx] = predict(model, data[si], np.array([items[i][1] for i in idx]), dev)
    return out


# -- checkpoints ------------------------------------------------------------------------------------
def save_checkpoint(
    path: str | os.PathLike,
    model: CMCLNet,
    window: WindowParams,
    frontend: FrontEndParams,
    spot: dict,
    train_info: dict,
) -> None:
    """Weights + config + feature parameters + spotting parameters, loadable with weights_only=True."""
    torch.save(
        {
            "format": FORMAT,
            "version": CHECKPOINT_VERSION,
            "state_dict": model.state_dict(),
            "config": json.dumps(model.config.as_dict()),
            "window": json.dumps(window.as_dict()),
            "frontend": frontend.key(),
            "spot": json.dumps(spot),
            "train": json.dumps(train_info),
        },
        path,
    )


def load_checkpoint(path: str | os.PathLike, device: str = "cpu") -> Checkpoint:
    """Load a checkpoint safely: a :class:`~mecg.model.checkpoint.Checkpoint` (model, window, front end, spot).

    ``torch.load(weights_only=True)`` (no arbitrary objects), then the schema of
    :mod:`mecg.model.checkpoint` (keys, JSON, bounded sizes, finite weights of the right shapes)
    before the network is built; anything else is a :class:`ModelError` that says what to do.
    """
    p = Path(path)
    if p.is_dir():
        raise ModelError(f"{p} is a folder; give the checkpoint file (.pt) that `mecg train` wrote")
    if not p.is_file():
        raise ModelError(f"{p} does not exist; train a model with `mecg train`")
    try:
        ck = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(
            f"{p} is not a mecg model or holds unsafe objects; refusing to load it ({type(exc).__name__})"
        ) from None
    checked = check_checkpoint(ck, str(p))
    model = CMCLNet(checked.config)
    model.load_state_dict(checked.state_dict)
    model.to(device).eval()
    return Checkpoint(model, checked.window, frontend_from_key(checked.frontend), checked.frontend, checked.spot)


def frontend_from_key(key: dict) -> FrontEndParams:
    """The FrontEndParams a checkpoint's features were made with."""
    k = {f: key[f] for f in FrontEndParams.__dataclass_fields__ if f in key}
    if k.get("face_box") is not None:
        k["face_box"] = tuple(k["face_box"])
    return FrontEndParams(**k)


def train_config_dict(tc: TrainConfig) -> dict:
    return asdict(tc)
