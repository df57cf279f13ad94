"""CMCL-Net: a cross-modal (video + ECG) contrastive Transformer that scores ME windows.

Two presets are built from this one module, chosen by :attr:`CMCLConfig.preset` (stored in checkpoints):

``small`` (the CPU default; 356,061 parameters in fusion mode, see :func:`count_parameters`)
    One window (about 0.5 s of video) gives

    * **video** ``(T, R, F)`` and ``(T, R, 2, P, P)``: per ROI (R = 12) and time step (T) the scalar
      flow features (du, dv, magnitude, strain) and a ``P x P`` crop of the compensated flow;
    * **ECG** ``(L,)`` band-passed ECG around the window, ``(H,)`` the HR curve around it, and
      ``(K,)`` hand-made features (:data:`HAND_FEATURES`: HR, HRS, HRS / trial mean, RR mean, RR
      std, SDSD, RMSSD, quality).

    Branches: a small 3D CNN over each ROI's flow crops (shared over ROIs), joined with the scalar
    features, then **coordinate attention** (Hou et al. 2021) over the ROI x time plane (attention
    weights pooled along each axis gate the features, so the net can attend to one region at one
    moment), and a temporal conv that makes ``Tv`` tokens; a plain dilated conv net over the
    band-passed ECG and one over the HR curve make ``Te`` tokens, the hand-made features one more.

``paper`` (the network the paper describes, at I3D's size; 15,543,924 parameters in fusion mode)
    * **video: CA-I3D** over the window's ``(T, 2, S, S)`` optical-flow images of the whole face
      crop (compensated u, v from the front end, ``S = flow_image``, 32 px by default; the
      magnitude is added as a third channel): the inflated Inception-v1 of Carreira & Zisserman
      2017 (stem 7x7x7 conv, 1x1x1 and 3x3x3 convs, Inception blocks Mixed_3b-3c, 4b-4f, 5b-5c
      at I3D's widths, ``video_width`` = 64 stem channels; 12.7 M parameters with the attention),
      with **coordinate attention over the image plane** (H x W, per time step and channel: the
      features are pooled along W and along H, a shared 1x1 transform and two gates re-weight rows
      and columns) after the stem and after each Inception stage. Inputs are 32 px, not 224, and a
      window holds 16 steps, not 64 frames: the stem keeps the time resolution, I3D's MaxPool3d_3a
      is left out and pool 5 does not stride in time, so Mixed_3 sees 8 x 8, Mixed_4 4 x 4 and
      Mixed_5 2 x 2 positions and ``T / 2`` video tokens come out;
    * **ECG: residual TCN** (Bai et al. 2018) over the band-passed ECG: ``tcn_levels`` residual
      blocks of two weight-normalised dilated convs (kernel 3, dilation 1, 2, 4, ... 32, ReLU,
      dropout), a 1x1 conv on the skip path where widths differ; **non-causal** (symmetric
      padding: windows are centred on the frame scored and spotting is offline), receptive field
      2.5 s at 100 Hz; pooled to 16 tokens. The paper's hand-made features
      (:data:`PAPER_HAND_FEATURES`: HR, RR mean, RR std, SDSD, RMSSD, quality) are one more
      token. The HR curve and the heart-rate slope (HRS, HRS / trial mean) are *not* inputs: the
      candidate clip filter tests HRS afterwards and must stay an independent check.

Both presets share the fusion and heads: two Transformer streams with **cross-attention**
(queries from one modality, keys and values from the other), LayerNorm, MLP and residuals; both
pooled and concatenated, then a projection head (contrastive embedding) and a classifier head
(ME vs not). ``small`` uses width 64, 4 heads; ``paper`` width 256, 8 heads; both 2 layers.

``mode="video"`` or ``"ecg"`` builds the single-modality variants from the same code (the other
stream is replaced by self-attention), for the ablation and for sessions without ECG.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum

import torch
from torch import nn
from torch.nn import functional as F

from mecg.model.conv3d import FastConv3d


class CmclMode(StrEnum):
    """Which branches CMCL-Net runs: both (``fusion``), the video branch only, or the ECG branch only."""

    FUSION = "fusion"
    VIDEO = "video"
    ECG = "ecg"


#: The modes, as strings (as stored in checkpoints).
MODES: tuple[str, ...] = tuple(CmclMode)


class Preset(StrEnum):
    """Which architecture: the CPU-sized default (``small``) or the paper's network at its size (``paper``)."""

    SMALL = "small"
    PAPER = "paper"


#: The presets, as strings (as stored in checkpoints).
PRESETS: tuple[str, ...] = tuple(Preset)

#: The hand-made ECG features a window delivers, in order (see :mod:`mecg.model.windows`).
HAND_FEATURES: tuple[str, ...] = ("hr", "hrs", "hrs_rel", "rr_mean", "rr_std", "sdsd", "rmssd", "quality")
#: The ones the ``paper`` preset reads: the paper's (RR mean, RR std, HR, HRV SDSD, ...), without HRS.
PAPER_HAND_FEATURES: tuple[str, ...] = ("hr", "rr_mean", "rr_std", "sdsd", "rmssd", "quality")
#: Tokens of the ECG stream (both presets): 16 from the ECG nets, 1 from the hand-made features.
ECG_TOKENS = 17


@dataclass
class CMCLConfig:
    """Network configuration (one place; stored in checkpoints).

    ``preset`` chooses the branches (module docstring); ``flow_image`` (px, the side of the whole-crop
    flow images; 0 for ``small``, which does not read them), ``video_width`` (I3D stem channels, the
    Inception widths scale with it), ``tcn_channels`` and ``tcn_levels`` size the ``paper`` branches.
    Use :func:`preset_config` for a preset's sizes.
    """

    mode: CmclMode | str = CmclMode.FUSION
    preset: Preset | str = Preset.SMALL
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
    flow_image: int = 0
    video_width: int = 64
    tcn_channels: int = 64
    tcn_levels: int = 6

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.preset not in PRESETS:
            raise ValueError(f"preset must be one of {PRESETS}, got {self.preset!r}")
        self.mode = CmclMode(self.mode)
        self.preset = Preset(self.preset)
        if self.preset == Preset.PAPER and self.flow_image < MIN_FLOW_IMAGE:
            raise ValueError(
                f"the paper preset reads flow images of at least {MIN_FLOW_IMAGE} px, got {self.flow_image}"
            )
        if self.preset == Preset.SMALL and self.flow_image:
            raise ValueError(f"the small preset reads no flow images (flow_image 0), got {self.flow_image}")

    def as_dict(self) -> dict:
        """The configuration as plain values (``mode``, ``preset`` as strings), as checkpoints store it."""
        return {**asdict(self), "mode": str(self.mode), "preset": str(self.preset)}

    @property
    def inputs(self) -> tuple[str, ...]:
        """The batch keys the network reads (a window may hold more)."""
        video = ("image",) if self.preset == Preset.PAPER else ("feats", "crops")
        ecg = ("ecg", "hand") if self.preset == Preset.PAPER else ("ecg", "hr", "hand")
        return {CmclMode.FUSION: video + ecg, CmclMode.VIDEO: video, CmclMode.ECG: ecg}[self.mode]


#: Smallest flow image the CA-I3D takes (px; its four spatial halvings leave 1 x 1).
MIN_FLOW_IMAGE = 8
#: The sizes of each preset (CMCLConfig fields); the rest are CMCLConfig's defaults.
PRESET_SIZES: dict[str, dict[str, int]] = {
    Preset.SMALL: {},
    Preset.PAPER: {"dim": 256, "heads": 8, "layers": 2, "embed_dim": 128, "flow_image": 32},
}


def preset_config(preset: str = "small", mode: str = "fusion", **sizes: int | float) -> CMCLConfig:
    """The configuration of ``preset`` (``"small"`` or ``"paper"``) in ``mode``; ``sizes`` override its fields."""
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    return CMCLConfig(mode=mode, preset=preset, **{**PRESET_SIZES[Preset(preset)], **sizes})


def count_parameters(config: CMCLConfig) -> int:
    """Trainable parameters of the network ``config`` describes (built on the ``meta`` device: nothing allocated)."""
    with torch.device("meta"):
        return sum(p.numel() for p in CMCLNet(config).parameters() if p.requires_grad)


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
            FastConv3d(2, 8, (3, 3, 3), padding=1),  # nn.Conv3d with a faster CPU backward
            nn.BatchNorm3d(8),
            nn.ReLU(),
            FastConv3d(8, 12, (3, 3, 3), padding=1, stride=(1, 2, 2)),
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


class PlaneAttention(nn.Module):
    """Coordinate attention over the image plane of a 3D feature map (Hou et al. 2021), per time step.

    ``(B, C, T, H, W)``: pool along W and along H, a shared 1x1 transform (BN, ReLU) of both, then
    sigmoid gates for rows and columns that multiply the input.
    """

    def __init__(self, channels: int, reduction: int = 32) -> None:
        super().__init__()
        mid = max(8, channels // reduction)
        self.shared = nn.Sequential(nn.Conv3d(channels, mid, 1), nn.BatchNorm3d(mid), nn.ReLU())
        self.to_h = nn.Conv3d(mid, channels, 1)
        self.to_w = nn.Conv3d(mid, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[3], x.shape[4]
        ph = x.mean(dim=4, keepdim=True)  # (B, C, T, H, 1)
        pw = x.mean(dim=3, keepdim=True).transpose(3, 4)  # (B, C, T, W, 1)
        y = self.shared(torch.cat([ph, pw], dim=3))
        yh, yw = torch.split(y, [h, w], dim=3)
        return x * torch.sigmoid(self.to_h(yh)) * torch.sigmoid(self.to_w(yw)).transpose(3, 4)


def _unit(i: int, o: int, k: tuple[int, int, int] | int = 1, stride: tuple[int, int, int] | int = 1) -> nn.Sequential:
    """I3D's Unit3D: conv (same padding, no bias), BatchNorm, ReLU."""
    k = (k, k, k) if isinstance(k, int) else k
    return nn.Sequential(
        nn.Conv3d(i, o, k, stride=stride, padding=tuple(x // 2 for x in k), bias=False), nn.BatchNorm3d(o), nn.ReLU()
    )


class Inception3d(nn.Module):
    """An inflated Inception block: 1x1x1; 1x1x1 -> 3x3x3; 1x1x1 -> 3x3x3; 3x3x3 max pool -> 1x1x1, concatenated."""

    def __init__(self, i: int, b0: int, b1: tuple[int, int], b2: tuple[int, int], b3: int) -> None:
        super().__init__()
        self.b0 = _unit(i, b0)
        self.b1 = nn.Sequential(_unit(i, b1[0]), _unit(b1[0], b1[1], 3))
        self.b2 = nn.Sequential(_unit(i, b2[0]), _unit(b2[0], b2[1], 3))
        self.b3 = nn.Sequential(nn.MaxPool3d(3, stride=1, padding=1), _unit(i, b3))
        self.out_channels = b0 + b1[1] + b2[1] + b3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b0(x), self.b1(x), self.b2(x), self.b3(x)], dim=1)


#: I3D's Inception blocks (Carreira & Zisserman 2017), widths at 64 stem channels: b0, (b1 reduce, b1), (b2 ...), b3.
I3D_BLOCKS: dict[str, tuple[int, tuple[int, int], tuple[int, int], int]] = {
    "3b": (64, (96, 128), (16, 32), 32),
    "3c": (128, (128, 192), (32, 96), 64),
    "4b": (192, (96, 208), (16, 48), 64),
    "4c": (160, (112, 224), (24, 64), 64),
    "4d": (128, (128, 256), (24, 64), 64),
    "4e": (112, (144, 288), (32, 64), 64),
    "4f": (256, (160, 320), (32, 128), 128),
    "5b": (256, (160, 320), (32, 128), 128),
    "5c": (384, (192, 384), (48, 128), 128),
}


class CAI3D(nn.Module):
    """CA-I3D: the inflated Inception-v1 with coordinate attention over the image plane -> ``(B, Tv, dim)`` tokens.

    Input ``(B, T, 2, S, S)`` flow images (u, v); the magnitude is added as a third channel.
    """

    def __init__(self, c: CMCLConfig) -> None:
        super().__init__()
        f = c.video_width / 64

        def w(n: int) -> int:
            return max(1, round(n * f))

        def stage(names: str, ch: int) -> tuple[nn.Sequential, int]:
            blocks = []
            for name in names.split():
                b0, b1, b2, b3 = I3D_BLOCKS[name]
                blk = Inception3d(ch, w(b0), (w(b1[0]), w(b1[1])), (w(b2[0]), w(b2[1])), w(b3))
                blocks.append(blk)
                ch = blk.out_channels
            return nn.Sequential(*blocks, PlaneAttention(ch)), ch

        self.stem = nn.Sequential(
            _unit(3, w(64), 7, stride=(1, 2, 2)),  # Conv3d_1a_7x7 (no temporal stride: 16-step windows)
            nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),  # MaxPool3d_2a
            _unit(w(64), w(64)),  # Conv3d_2b_1x1
            _unit(w(64), w(192), 3),  # Conv3d_2c_3x3
            PlaneAttention(w(192)),
        )
        self.mixed3, ch = stage("3b 3c", w(192))  # (MaxPool3d_3a left out: 32 px inputs, not 224)
        self.pool4 = nn.MaxPool3d(3, stride=2, padding=1)  # MaxPool3d_4a
        self.mixed4, ch = stage("4b 4c 4d 4e 4f", ch)
        self.pool5 = nn.MaxPool3d((1, 2, 2), stride=(1, 2, 2), ceil_mode=True)  # MaxPool3d_5a, no temporal stride
        self.mixed5, ch = stage("5b 5c", ch)
        self.tokens = (c.time_steps + 1) // 2
        self.out = nn.Sequential(nn.Linear(ch, c.dim), nn.LayerNorm(c.dim))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = image.transpose(1, 2)  # (B, 2, T, S, S)
        x = torch.cat([x, torch.linalg.vector_norm(x, dim=1, keepdim=True)], dim=1)
        x = self.mixed3(self.stem(x))
        x = self.mixed5(self.pool5(self.mixed4(self.pool4(x))))
        x = F.adaptive_avg_pool1d(x.mean(dim=(3, 4)), self.tokens)  # (B, C, Tv)
        return self.out(x.transpose(1, 2))


class TemporalBlock(nn.Module):
    """A residual TCN block (Bai et al. 2018): two weight-normalised dilated convs, non-causal (same padding)."""

    def __init__(self, i: int, o: int, dilation: int, dropout: float, k: int = 3) -> None:
        super().__init__()
        wn = nn.utils.parametrizations.weight_norm
        pad = dilation * (k - 1) // 2
        self.conv1 = wn(nn.Conv1d(i, o, k, padding=pad, dilation=dilation))
        self.conv2 = wn(nn.Conv1d(o, o, k, padding=pad, dilation=dilation))
        self.drop = nn.Dropout(dropout)
        self.skip = nn.Conv1d(i, o, 1) if i != o else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.drop(F.relu(self.conv1(x)))
        y = self.drop(F.relu(self.conv2(y)))
        return F.relu(y + self.skip(x))


class EcgTCN(nn.Module):
    """Residual TCN over the band-passed ECG and the paper's hand-made features -> ``(B, 17, dim)`` tokens."""

    def __init__(self, c: CMCLConfig) -> None:
        super().__init__()
        ch = c.tcn_channels
        self.tcn = nn.Sequential(
            *[TemporalBlock(1 if i == 0 else ch, ch, 2**i, c.dropout) for i in range(c.tcn_levels)],
            nn.AdaptiveAvgPool1d(ECG_TOKENS - 1),
        )
        self.to_dim = nn.Linear(ch, c.dim)
        self.hand_index = [HAND_FEATURES.index(n) for n in PAPER_HAND_FEATURES]
        self.hand = nn.Sequential(nn.Linear(len(self.hand_index), c.dim), nn.ReLU(), nn.Linear(c.dim, c.dim))

    def forward(self, ecg: torch.Tensor, hand: torch.Tensor) -> torch.Tensor:
        a = self.to_dim(self.tcn(ecg.unsqueeze(1)).transpose(1, 2))  # (B, 16, dim)
        return torch.cat([a, self.hand(hand[:, self.hand_index]).unsqueeze(1)], dim=1)


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
        paper = c.preset == Preset.PAPER
        self.video: nn.Module | None = None
        self.ecg: nn.Module | None = None
        if c.mode in (CmclMode.FUSION, CmclMode.VIDEO):
            self.video = CAI3D(c) if paper else VideoBranch(c)
        if c.mode in (CmclMode.FUSION, CmclMode.ECG):
            self.ecg = EcgTCN(c) if paper else EcgBranch(c)
        n_tok_v = (c.time_steps + 1) // 2
        has_v, has_e = self.video is not None, self.ecg is not None
        self.pos_v = nn.Parameter(torch.zeros(1, n_tok_v, c.dim)) if has_v else None
        self.pos_e = nn.Parameter(torch.zeros(1, ECG_TOKENS, c.dim)) if has_e else None
        blocks = lambda: nn.ModuleList([CrossBlock(c.dim, c.heads, c.dropout) for _ in range(c.layers)])  # noqa: E731
        self.v_blocks = blocks() if has_v else None
        self.e_blocks = blocks() if has_e else None
        width = c.dim * (2 if c.mode == "fusion" else 1)
        self.proj = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, c.embed_dim))
        self.head = nn.Sequential(
            nn.LayerNorm(width), nn.Dropout(c.dropout), nn.Linear(width, c.dim), nn.ReLU(), nn.Linear(c.dim, 1)
        )

    def encode(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The pooled joint representation ``(B, width)``; ``batch`` holds :attr:`CMCLConfig.inputs` (or more)."""
        paper = self.config.preset == Preset.PAPER
        v = e = None
        if self.video is not None:
            v = self.video(*((batch["image"],) if paper else (batch["feats"], batch["crops"]))) + self.pos_v
        if self.ecg is not None:
            e = self.ecg(batch["ecg"], *((batch["hand"],) if paper else (batch["hr"], batch["hand"]))) + self.pos_e
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
