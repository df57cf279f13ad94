"""CMCL-Net: a cross-modal (video + ECG) contrastive Transformer that scores ME windows.

One window (about 0.5 s of video) gives two inputs:

* **video** ``(T, R, F)`` and ``(T, R, 2, P, P)``: per ROI (R = 12) and time step (T) the scalar
  flow features (du, dv, magnitude, strain) and a ``P x P`` crop of the compensated flow;
* **ECG** ``(L,)`` band-passed ECG around the window, ``(H,)`` the HR curve around it, and
  ``(K,)`` hand-made features (HR, HRS, HRS / trial mean, RR mean, RR std, SDSD, RMSSD, quality).

Branches:

* video: a small 3D CNN over each ROI's flow crops (shared over ROIs), joined with the scalar
  features, then **coordinate attention** (Hou et al. 2021) over the ROI x time plane: attention
  weights pooled along each axis gate the features, so the net can attend to one region at one
  moment; a temporal conv makes ``Tv`` tokens;
* ECG: a temporal conv net over the band-passed ECG and the HR curve makes ``Te`` tokens; the
  hand-made features become one more token;
* fusion: two Transformer streams with **cross-attention** (queries from one modality, keys and
  values from the other), LayerNorm, MLP and residuals; both pooled and concatenated, then a
  projection head (contrastive embedding) and a classifier head (ME vs not).

``mode="video"`` or ``"ecg"`` builds the single-modality variants from the same code (the other
stream is replaced by self-attention), for the ablation and for sessions without ECG.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum

import torch
from torch import nn
from torch.nn import functional as F


class CmclMode(StrEnum):
    """Which branches CMCL-Net runs: both (``fusion``), the video branch only, or the ECG branch only."""

    FUSION = "fusion"
    VIDEO = "video"
    ECG = "ecg"


#: The modes, as strings (as stored in checkpoints).
MODES: tuple[str, ...] = tuple(CmclMode)


@dataclass
class CMCLConfig:
    """Network configuration (one place; stored in checkpoints)."""

    mode: CmclMode | str = CmclMode.FUSION
    n_rois: int = 12
    n_roi_features: int = 4
    patch: int = 8
    time_steps: int = 16
    ecg_len: int = 400
    hr_len: int = 40
    n_hand: int = 8
    dim: int = 64
    heads: int = 4
    layers: int = 2
    dropout: float = 0.1
    embed_dim: int = 32

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        self.mode = CmclMode(self.mode)

    def as_dict(self) -> dict:
        """The configuration as plain values (``mode`` as its string), as checkpoints store it."""
        return {**asdict(self), "mode": str(self.mode)}


class CoordinateAttention(nn.Module):
    """Coordinate attention over a (ROI, time) plane: gates from pooling along each axis."""

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        mid = max(8, channels // reduction)
        self.shared = nn.Sequential(nn.Conv2d(channels, mid, 1), nn.BatchNorm2d(mid), nn.ReLU())
        self.to_r = nn.Conv2d(mid, channels, 1)
        self.to_t = nn.Conv2d(mid, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, C, R, T)
        r, t = x.shape[2], x.shape[3]
        pr = x.mean(dim=3, keepdim=True)  # (B, C, R, 1)
        pt = x.mean(dim=2, keepdim=True).transpose(2, 3)  # (B, C, T, 1)
        y = self.shared(torch.cat([pr, pt], dim=2))
        yr, yt = torch.split(y, [r, t], dim=2)
        ar = torch.sigmoid(self.to_r(yr))  # (B, C, R, 1)
        at = torch.sigmoid(self.to_t(yt)).transpose(2, 3)  # (B, C, 1, T)
        return x * ar * at


class VideoBranch(nn.Module):
    """Flow crops + ROI features -> ``(B, Tv, dim)`` tokens."""

    def __init__(self, c: CMCLConfig) -> None:
        super().__init__()
        self.cnn = nn.Sequential(
            nn.Conv3d(2, 8, (3, 3, 3), padding=1),
            nn.BatchNorm3d(8),
            nn.ReLU(),
            nn.Conv3d(8, 12, (3, 3, 3), padding=1, stride=(1, 2, 2)),
            nn.BatchNorm3d(12),
            nn.ReLU(),
        )
        ch = 12 + c.n_roi_features
        self.mix = nn.Sequential(nn.Conv2d(ch, c.dim, 1), nn.BatchNorm2d(c.dim), nn.ReLU())
        self.ca = CoordinateAttention(c.dim)
        self.temporal = nn.Sequential(
            nn.Conv1d(c.dim * c.n_rois, c.dim, 3, padding=1),
            nn.ReLU(),
            nn.Conv1d(c.dim, c.dim, 3, padding=1, stride=2),
            nn.ReLU(),
        )

    def forward(self, feats: torch.Tensor, crops: torch.Tensor) -> torch.Tensor:
        # feats (B, T, R, F); crops (B, T, R, 2, P, P)
        b, t, r = feats.shape[:3]
        x = crops.permute(0, 2, 3, 1, 4, 5).reshape(b * r, 2, t, crops.shape[-2], crops.shape[-1])
        x = self.cnn(x).mean(dim=(3, 4))  # (B*R, 12, T)
        x = x.reshape(b, r, -1, t).permute(0, 2, 1, 3)  # (B, 12, R, T)
        x = torch.cat([x, feats.permute(0, 3, 2, 1)], dim=1)  # (B, 12+F, R, T)
        x = self.ca(self.mix(x))  # (B, dim, R, T)
        x = self.temporal(x.reshape(b, -1, t))  # (B, dim, Tv)
        return x.transpose(1, 2)


class EcgBranch(nn.Module):
    """Band-passed ECG + HR curve (temporal conv net) and hand-made features -> ``(B, Te + 1, dim)``."""

    def __init__(self, c: CMCLConfig) -> None:
        super().__init__()

        def block(i: int, o: int, k: int, s: int, dil: int = 1) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv1d(i, o, k, stride=s, padding=dil * (k // 2), dilation=dil), nn.BatchNorm1d(o), nn.ReLU()
            )

        self.ecg = nn.Sequential(
            block(1, 16, 7, 2), block(16, 32, 5, 2, 2), block(32, c.dim, 5, 2, 4), nn.AdaptiveAvgPool1d(8)
        )
        self.hr = nn.Sequential(block(1, 16, 5, 1), block(16, c.dim, 5, 2, 2), nn.AdaptiveAvgPool1d(8))
        self.hand = nn.Sequential(nn.Linear(c.n_hand, c.dim), nn.ReLU(), nn.Linear(c.dim, c.dim))

    def forward(self, ecg: torch.Tensor, hr: torch.Tensor, hand: torch.Tensor) -> torch.Tensor:
        a = self.ecg(ecg.unsqueeze(1)).transpose(1, 2)  # (B, 8, dim)
        h = self.hr(hr.unsqueeze(1)).transpose(1, 2)  # (B, 8, dim)
        return torch.cat([a, h, self.hand(hand).unsqueeze(1)], dim=1)


class CrossBlock(nn.Module):
    """Pre-norm Transformer block whose attention takes keys/values from another stream."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.nq, self.nkv, self.n2 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(2 * dim, dim))

    def forward(self, q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        kvn = self.nkv(kv)
        q = q + self.attn(self.nq(q), kvn, kvn, need_weights=False)[0]
        return q + self.mlp(self.n2(q))


class CMCLNet(nn.Module):
    """The network; ``forward`` returns ``(logit (B,), embedding (B, embed_dim))``."""

    def __init__(self, config: CMCLConfig) -> None:
        super().__init__()
        c = self.config = config
        self.video = VideoBranch(c) if c.mode in (CmclMode.FUSION, CmclMode.VIDEO) else None
        self.ecg = EcgBranch(c) if c.mode in (CmclMode.FUSION, CmclMode.ECG) else None
        n_tok_v = (c.time_steps + 1) // 2
        has_v, has_e = self.video is not None, self.ecg is not None
        self.pos_v = nn.Parameter(torch.zeros(1, n_tok_v, c.dim)) if has_v else None
        self.pos_e = nn.Parameter(torch.zeros(1, 17, c.dim)) if has_e else None
        blocks = lambda: nn.ModuleList([CrossBlock(c.dim, c.heads, c.dropout) for _ in range(c.layers)])  # noqa: E731
        self.v_blocks = blocks() if has_v else None
        self.e_blocks = blocks() if has_e else None
        width = c.dim * (2 if c.mode == "fusion" else 1)
        self.proj = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, c.embed_dim))
        self.head = nn.Sequential(
            nn.LayerNorm(width), nn.Dropout(c.dropout), nn.Linear(width, c.dim), nn.ReLU(), nn.Linear(c.dim, 1)
        )

    def encode(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The pooled joint representation ``(B, width)``."""
        v = self.video(batch["feats"], batch["crops"]) + self.pos_v if self.video is not None else None
        e = self.ecg(batch["ecg"], batch["hr"], batch["hand"]) + self.pos_e if self.ecg is not None else None
        for i in range(self.config.layers):
            if v is not None and e is not None:
                v, e = self.v_blocks[i](v, e), self.e_blocks[i](e, v)  # cross-attention both ways, same inputs
            elif v is not None:
                v = self.v_blocks[i](v, v)  # single modality: self-attention
            else:
                e = self.e_blocks[i](e, e)
        parts = [x.mean(dim=1) for x in (v, e) if x is not None]
        return torch.cat(parts, dim=1)

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encode(batch)
        return self.head(h).squeeze(1), F.normalize(self.proj(h), dim=1)
