"""RecalibrationNet (paper section III-A, Fig. 2): image encoder once per frame -> per-point ROI patch tokens;
radar MLP -> CamRad-Fusion (self- and cross-attention) -> confidence + displacement heads (Eq. 3)."""

from __future__ import annotations

import torch
import torch.nn as nn
from torchvision.ops import roi_align

from .config import ModelConfig
from .features import feature_dim
from .fusion import CamRadFusion
from .heads import RefinementHeads
from .image_encoder import ImageEncoder
from .preprocess import IMAGENET_MEAN, IMAGENET_STD, to_working_uv, working_size  # noqa: F401  (re-exported)
from .radar_encoder import RadarEncoder

class RecalibrationNet(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.attn_dim
        self.image_encoder = ImageEncoder(cfg.backbone, cfg.num_stages, cfg.fpn_channels, cfg.cbam, cfg.pretrained)
        self.token_proj = nn.Linear(cfg.fpn_channels, d)
        self.token_pos = nn.Parameter(torch.randn(cfg.roi_size * cfg.roi_size, d) * 0.02)  # where in the patch
        self.radar_encoder = RadarEncoder(feature_dim(cfg.features), cfg.radar_mlp, d)
        self.fusion = CamRadFusion(d, cfg.attn_heads, cfg.num_layers, cfg.dropout)
        self.heads = RefinementHeads(d, cfg.head_hidden)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        """image: B x 3 x H' x W' float in [0, 1] at working resolution -> B x C x H'/4 x W'/4 fused features."""
        return self.image_encoder((image - self.mean) / self.std)

    def decode_points(self, fmap: torch.Tensor, feats: torch.Tensor, uv: torch.Tensor, valid: torch.Tensor):
        """fmap: B x C x h x w; feats: B x N x F; uv: B x N x 2 working-resolution pixels; valid: B x N bool.
        Returns (confidence logits B x N, displacement B x N x 2 in disp_norm units); padded slots are 0."""
        b_idx, n_idx = valid.nonzero(as_tuple=True)                                           # P each
        x = self.radar_encoder(feats) * valid.unsqueeze(-1)                                     # B x N x D
        half = self.cfg.roi_box / 2.0
        c = uv[b_idx, n_idx]                                                                    # P x 2
        boxes = torch.cat([b_idx.to(c.dtype).unsqueeze(1), c - half, c + half], 1)              # P x 5
        s = self.cfg.roi_size
        patches = roi_align(fmap, boxes, output_size=(s, s), spatial_scale=1.0 / self.image_encoder.stride,
                            sampling_ratio=2, aligned=True)                                      # P x C x s x s
        tokens = self.token_proj(patches.flatten(2).transpose(1, 2)) + self.token_pos           # P x s*s x D
        x = self.fusion(x, valid, tokens, b_idx, n_idx)                                         # B x N x D
        conf, disp = self.heads(x)                                                              # B x N, B x N x 2
        return conf * valid, disp * valid.unsqueeze(-1)

    def forward(self, image, feats, uv, valid):
        return self.decode_points(self.encode_image(image), feats, uv, valid)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
