"""Configuration of the Radar Recalibration module (paper section III-A) as plain dataclasses.

`ModelConfig` builds the network (two presets of the same code: "paper" and "small"), `LabelConfig` holds the label
parameters of Eq. 4-8 (per-dataset defaults, see `LABEL_DEFAULTS` and docs/recalibration.md for the reasoning) and
`TrainConfig` the optimisation settings. All three round-trip through JSON (`to_dict` / `from_dict`), which is how a
checkpoint records the configuration that built it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from ..config import setting

#: Per-point radar feature groups understood by `features.radar_point_features` (see there for the columns).
FEATURE_GROUPS = ("xyz", "depth", "uv", "doppler", "power")

#: How Eq. 8 picks the displacement target among the windows W(q) (`LabelConfig.disp_rule`).
DISP_RULES = ("densest", "nearest")


def _from_dict(cls, d: dict[str, Any], what: str):
    """Build dataclass `cls` from a dict; unknown or missing keys raise ValueError naming them."""
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ValueError(f"{what}: unknown key(s) {unknown} (this code knows {sorted(names)})")
    kw = {}
    for f in fields(cls):
        if f.name in d:
            v = d[f.name]
            kw[f.name] = tuple(v) if isinstance(v, list) else v
    return cls(**kw)


@dataclass
class ModelConfig:
    """Sizes of RecalibrationNet.

    backbone: torchvision backbone ("resnet34" as in the paper, "resnet18", or "regnet_x_400mf"); num_stages: how
      many of its four stages (strides 4 to 32) are used, the FPN runs over exactly these; fpn_channels: FPN width; cbam: channel + spatial
      attention on the fused map;
    radar_mlp: hidden sizes of the radar encoder (paper: 32-64-128-256-512);
    attn_dim / attn_heads: width and heads of the fusion attention; num_layers: stacked (self-attention,
      cross-attention) pairs; head_hidden: hidden width of the two-layer heads;
    attn_window: self-attention neighbourhood: points are serialised along a Z-order curve of their image position
      and cut into blocks of attn_window; each point attends to its block and the two adjacent ones (<= 3 x
      attn_window keys), O(N x attn_window) time and memory (window_attention.py). 0 = dense attention over all
      points, O(N^2): what checkpoints written before this key existed were trained with (from_dict fills 0 for
      them);
    input_width: the working image width in pixels (height follows the aspect ratio, rounded to a multiple of 32);
    roi_box: side of the square region of interest around each projected point, in working-resolution pixels;
      roi_size: roi_align output side, i.e. roi_size**2 tokens per point; roi_sampling: bilinear samples per token
      side (roi_align's sampling_ratio: 2 = 2 x 2 samples averaged per token, 1 = one sample at the token centre);
    features: radar feature groups (subset of FEATURE_GROUPS); max_range: metres, scales positions and depth;
    disp_norm: full-resolution pixels per unit of the displacement head's output (the head regresses
      displacement / disp_norm, the loss is computed in those units);
    pretrained: "" (random init), "imagenet" (torchvision weight enum, needs the network once) or a path to a
      torchvision ResNet state dict.
    """

    backbone: str = "resnet34"
    num_stages: int = 4
    fpn_channels: int = 256
    cbam: bool = True
    radar_mlp: tuple[int, ...] = (32, 64, 128, 256, 512)
    attn_dim: int = 256
    attn_heads: int = 8
    num_layers: int = 2
    head_hidden: int = 128
    attn_window: int = 16
    input_width: int = 640
    roi_box: float = 32.0
    roi_size: int = 4
    roi_sampling: int = 2
    features: tuple[str, ...] = FEATURE_GROUPS
    max_range: float = 100.0
    disp_norm: float = 16.0
    dropout: float = 0.0
    pretrained: str = ""

    def __post_init__(self) -> None:
        self.radar_mlp = tuple(int(x) for x in self.radar_mlp)
        self.features = tuple(self.features)
        bad = [f for f in self.features if f not in FEATURE_GROUPS]
        if bad:
            raise ValueError(f"ModelConfig.features: unknown group(s) {bad}; choose from {FEATURE_GROUPS}")
        if self.backbone not in ("resnet18", "resnet34", "regnet_x_400mf"):
            raise ValueError(f"ModelConfig.backbone: expected resnet18, resnet34 or regnet_x_400mf, got "
                             f"{self.backbone!r}")
        if not 1 <= self.num_stages <= 4:
            raise ValueError(f"ModelConfig.num_stages: expected 1..4, got {self.num_stages}")
        if self.roi_sampling < 1:
            raise ValueError(f"ModelConfig.roi_sampling: expected >= 1, got {self.roi_sampling}")
        if self.attn_window < 0:
            raise ValueError(f"ModelConfig.attn_window: expected >= 0 (0 = dense), got {self.attn_window}")
        if self.attn_dim % self.attn_heads:
            raise ValueError(f"ModelConfig.attn_dim ({self.attn_dim}) must be divisible by attn_heads "
                             f"({self.attn_heads})")

    @classmethod
    def preset(cls, name: str) -> "ModelConfig":
        """"paper": the sizes of section III-A; "small": the same code, narrow and shallow enough to train on a
        2-core CPU and run under ~100 ms per 640x480 frame; "tiny": only for tests."""
        if name == "paper":
            return cls()
        if name == "small":
            return cls(backbone="resnet18", num_stages=2, fpn_channels=64, radar_mlp=(32, 64, 128), attn_dim=64,
                       attn_heads=4, num_layers=1, head_hidden=64, input_width=320, roi_box=24.0, roi_size=4)
        if name == "tiny":
            return cls(backbone="resnet18", num_stages=1, fpn_channels=16, radar_mlp=(16, 32), attn_dim=32,
                       attn_heads=2, num_layers=1, head_hidden=32, input_width=128, roi_box=16.0, roi_size=3)
        raise ValueError(f"unknown model preset {name!r}; choose paper, small or tiny")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        # a config written before attn_window existed describes a network trained with dense self-attention
        return _from_dict(cls, {"attn_window": 0, **d}, "model config")


@dataclass
class LabelConfig:
    """Label parameters of Eq. 4-8 (all pixel sizes at the frame's full resolution, (height, width)).

    conf_window: neighbourhood N(p) of Eq. 4; n_min: minimum count of consistent LiDAR pixels for label 1;
    tau_min (m) and alpha: adaptive threshold tau(d) = max(tau_min, alpha * d) of Eq. 5;
    search_window: the larger neighbourhood S(p) of Eq. 7; slide_window: the sliding window W(q) of Eq. 7-8;
    disp_min_count: a point gets a displacement label only if its best window holds at least this many consistent
      LiDAR pixels (default: n_min);
    disp_rule: which window W(q) of Eq. 8 is "best": "densest" (the paper's argmax of the consistent count, ties to
      the smallest move) or "nearest" (the window nearest to p among those holding >= disp_min_count consistent
      pixels, i.e. the smallest move onto a surface that Eq. 4 would call consistent; 0 when p is already on one).
      Measured against the true pixels of synthetic radar returns in docs/results/recalibration.md ("Displacement
      labels against the truth").
    """

    conf_window: tuple[int, int] = (7, 7)
    n_min: int = 3
    tau_min: float = 0.5
    alpha: float = 0.05
    search_window: tuple[int, int] = (31, 31)
    slide_window: tuple[int, int] = (7, 7)
    disp_min_count: int | None = None
    disp_rule: str = "densest"

    def __post_init__(self) -> None:
        if self.disp_rule not in DISP_RULES:
            raise ValueError(f"LabelConfig.disp_rule: expected one of {DISP_RULES}, got {self.disp_rule!r}")
        self.conf_window = tuple(int(x) for x in self.conf_window)
        self.search_window = tuple(int(x) for x in self.search_window)
        self.slide_window = tuple(int(x) for x in self.slide_window)
        for name in ("conf_window", "search_window", "slide_window"):
            w = getattr(self, name)
            if len(w) != 2 or min(w) < 1 or w[0] % 2 == 0 or w[1] % 2 == 0:
                raise ValueError(f"LabelConfig.{name}: expected two odd positive sizes (height, width), got {w}")
        if self.slide_window[0] > self.search_window[0] or self.slide_window[1] > self.search_window[1]:
            raise ValueError(f"LabelConfig.slide_window {self.slide_window} must fit in search_window "
                             f"{self.search_window}")
        if self.n_min < 1:
            raise ValueError(f"LabelConfig.n_min must be >= 1, got {self.n_min}")

    @property
    def min_disp_count(self) -> int:
        return self.n_min if self.disp_min_count is None else int(self.disp_min_count)

    def tau(self, depth):
        """Eq. 5: adaptive depth tolerance in metres for a radar range `depth` (array or float)."""
        return np.maximum(self.tau_min, self.alpha * np.asarray(depth, dtype=np.float32))

    @classmethod
    def for_dataset(cls, name: str) -> "LabelConfig":
        """Documented per-dataset defaults (reasoning in docs/recalibration.md); for other data (your own bag) see
        `for_lidar_spacing` and `labels.default_label_config`."""
        try:
            return cls(**LABEL_DEFAULTS[name])
        except KeyError:
            raise ValueError(f"no label defaults for dataset {name!r}; known: {sorted(LABEL_DEFAULTS)} (other data: "
                             "LabelConfig.for_lidar_spacing)") from None

    @classmethod
    def for_lidar_spacing(cls, rows_px: float, cols_px: float) -> "LabelConfig":
        """Defaults for a LiDAR without a preset, from how densely it covers the image (`labels.lidar_spacing`:
        rows_px ~ the pixel spacing of neighbouring beams down a column, cols_px ~ of neighbouring returns along a
        beam). The rule that the presets follow (docs/recalibration.md):

        - N(p) reaches the nearest beam from anywhere and holds 2-3 returns of it: height = odd >= rows_px + 1,
          width = odd >= 2 cols_px + 1, both at least 9 (ZJU's square window for a dense LiDAR);
        - n_min 2 for a sparse LiDAR (rows_px > 4 px), else 3;
        - S(p) adds one beam spacing (at least 32 px) vertically and 32 px horizontally, for the calibration error
          (about +-16 px at fx ~ 1000 px, 1 degree); W(q) = N(p);
        - tau: the real-sensor 0.5 m / 5% (the synthetic preset's 0.2 m / 2% fits only its simulated noise).

        Astyx's VLP-16 (rows 63, cols 7 px, measured on frames 0-4) gives N 65x15, S 129x47 (preset: 61x15,
        121x45); the synthetic 32-beam LiDAR (11, 5) gives N 13x11, S 45x43 (preset 15x15, 51x51)."""
        def odd(x: float) -> int:
            n = int(np.ceil(x))
            return n if n % 2 else n + 1

        rows_px, cols_px = float(rows_px), float(cols_px)
        n = (odd(max(rows_px + 1, 9)), odd(max(2 * cols_px + 1, 9)))
        return cls(conf_window=n, n_min=2 if rows_px > 4 else 3, tau_min=0.5, alpha=0.05,
                   search_window=(odd(n[0] + max(rows_px, 32)), odd(n[1] + 32)), slide_window=n)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "LabelConfig":
        return _from_dict(cls, d, "label config")


#: Per-dataset label defaults. Astyx: 2048x618 image, VLP-16 beams ~60 px apart vertically and ~6 px apart
#: horizontally, so N(p) is tall (61 px reaches the nearest beam from anywhere) and narrow; the search window adds
#: one more beam spacing. ZJU (RoboSense M1, dense, 1280x720) uses square windows. Synthetic (640x480, 32-beam
#: LiDAR, ~3,500 LiDAR pixels per image, measured: an 11 x 9 window holds a median of 1 LiDAR pixel): N(p) 15 x 15
#: with n_min 2; tau 0.2 m / 2% because the simulated radar range noise is 0.15 m (a 0.5 m floor calls ~73% of points
#: on large surfaces consistent); the search window (51 x 51) covers the simulated calibration, elevation and
#: time-offset errors (median raw pixel error ~11 px).
LABEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "astyx": dict(conf_window=(61, 15), n_min=2, tau_min=0.5, alpha=0.05, search_window=(121, 45),
                  slide_window=(61, 15)),
    "zju": dict(conf_window=(9, 9), n_min=3, tau_min=0.5, alpha=0.05, search_window=(41, 41), slide_window=(9, 9)),
    "synthetic": dict(conf_window=(15, 15), n_min=2, tau_min=0.2, alpha=0.02, search_window=(51, 51),
                      slide_window=(15, 15)),
}


@dataclass
class TrainConfig:
    """Optimisation settings (paper section IV-B: Adam(0.9, 0.999), step-wise decay, flip + colour jitter). Each field
    is a `racalnet train` option (--batch-size for batch_size, ...), generated from this metadata by cli/train.py."""

    epochs: int = setting(60, "Training epochs.", ge=1)
    batch_size: int = setting(4, "Frames per batch (per process under torchrun).", ge=1)
    lr: float = setting(1e-3, "Adam learning rate.", gt=0.0)
    weight_decay: float = setting(0.0, "Adam weight decay.", ge=0.0)
    lr_step: int = setting(20, "StepLR step (epochs).", ge=1)
    lr_gamma: float = setting(0.5, "StepLR decay factor.", gt=0.0, le=1.0)
    disp_weight: float = setting(1.0, "lambda of Eq. 10 (displacement loss weight).", ge=0.0)
    pos_weight: float = setting(1.0, "BCE weight of positive labels (1 = plain Eq. 6).", gt=0.0)
    flip_prob: float = setting(0.5, "Probability of a horizontal flip (image, u and camera x together).", ge=0.0, le=1.0)
    jitter: float = setting(0.3, "Brightness / contrast / saturation jitter strength (0 = off).", ge=0.0, le=1.0)
    max_points: int = setting(1024, "Random subset of points per frame during training (0 = all).", ge=0)
    seed: int = setting(0, "Seed of the initialisation, the sampler and the augmentation.", ge=0)
    workers: int = setting(0, "DataLoader worker processes.", ge=0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        return _from_dict(cls, d, "train config")
