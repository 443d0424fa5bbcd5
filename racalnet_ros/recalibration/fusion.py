"""CamRad-Fusion (paper section III-A-1, Eq. 1-2): stacked attention layers over the radar points of a frame.

Each layer is pre-norm:  x += SA(x)  (self-attention among the frame's points, Eq. 1, padding masked),
                         x += CA(x, patch tokens)  (each point's radar feature is the single query; its own ROI patch
                                                    tokens are keys and values, Eq. 2),
                         x += FFN(x).
Cost: cross-attention and FFN are linear in the number of points N. Self-attention is windowed when
`window` > 0 (each point attends to its image-plane neighbourhood, see window_attention.py): O(N x window) time and
memory. `window` = 0 is dense attention over all points of a frame, O(N^2) (checkpoints trained before windows
existed).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .window_attention import morton_order, windowed_self_attention


class FusionLayer(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        self.norm_sa = nn.LayerNorm(dim)
        self.self_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm_ca = nn.LayerNorm(dim)
        self.norm_tokens = nn.LayerNorm(dim)
        self.cross_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm_ffn = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x: torch.Tensor, padding: torch.Tensor | None, tokens: torch.Tensor,
                b_idx: torch.Tensor, n_idx: torch.Tensor, order: torch.Tensor | None = None,
                window: int = 0) -> torch.Tensor:
        """x: B x N x D radar features; padding: B x N bool, True = padded slot (ignored as a key), or None;
        tokens: P x T x D patch tokens of the P valid points, listed by (b_idx, n_idx) (P each);
        order / window: the points' serialisation (`morton_order`) and block size for windowed self-attention
        (window 0 = dense)."""
        h = self.norm_sa(x)
        if window > 0:                                                                          # Eq. 1, windowed
            valid = torch.ones_like(h[..., 0], dtype=torch.bool) if padding is None else ~padding
            x = x + windowed_self_attention(self.self_attn, h, valid, order, window)
        else:                                                                                   # Eq. 1, dense
            x = x + self.self_attn(h, h, h, key_padding_mask=padding, need_weights=False)[0]
        q = self.norm_ca(x)[b_idx, n_idx].unsqueeze(1)                                          # P x 1 x D
        kv = self.norm_tokens(tokens)                                                           # P x T x D
        ca = self.cross_attn(q, kv, kv, need_weights=False)[0].squeeze(1)                      # Eq. 2, P x D
        x = x + torch.zeros_like(x).index_put((b_idx, n_idx), ca)
        return x + self.ffn(self.norm_ffn(x))


class CamRadFusion(nn.Module):
    def __init__(self, dim: int, heads: int, num_layers: int, dropout: float = 0.0, window: int = 0):
        super().__init__()
        self.window = int(window)
        self.layers = nn.ModuleList([FusionLayer(dim, heads, dropout) for _ in range(num_layers)])

    def forward(self, x, valid, tokens, b_idx, n_idx, uv):
        """valid: B x N bool (True = a real point); uv: B x N x 2 image-plane positions (the serialisation of
        windowed self-attention). Returns B x N x D (padded slots carry no meaning)."""
        if self.window > 0 and self.window < x.shape[1]:
            order = morton_order(uv, valid)                                                     # once per frame
            padding = None if bool(valid.all()) else ~valid
            for layer in self.layers:
                x = layer(x, padding, tokens, b_idx, n_idx, order, self.window)
            return x
        padding = ~valid
        # a frame with no point at all would mask every key and make softmax NaN: unmask one dummy slot
        empty = valid.sum(1) == 0
        if empty.any():
            padding = padding.clone()
            padding[empty, 0] = False
        if not padding.any():
            padding = None  # nothing padded (e.g. one frame at inference): lets torch use its fused attention path
        for layer in self.layers:
            x = layer(x, padding, tokens, b_idx, n_idx)
        return x
