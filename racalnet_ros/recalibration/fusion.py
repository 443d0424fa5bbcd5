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
import torch.nn.functional as F

from .window_attention import morton_order, windowed_self_attention


def single_query_attention(mha: nn.MultiheadAttention, q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
    """`mha(q[:, None], kv, kv)` for one query per point (Eq. 2), with the key and value projections moved off the
    T tokens: q_h . (W_k,h t + b_k,h) = (W_k,h^T q_h) . t + const (the constant cancels in the softmax), and
    sum_t w_t (W_v,h t + b_v,h) = W_v,h (sum_t w_t t) + b_v,h. Same result, ~3x fewer multiply-adds and no P x T x 2D
    intermediate. q: P x D; kv: P x T x D (normalised tokens) -> P x D."""
    P, T, D = kv.shape
    H = mha.num_heads
    dh = D // H
    w_q, w_k, w_v = mha.in_proj_weight.split(D)                                                # D x D each
    b_q, _, b_v = mha.in_proj_bias.split(D)
    qh = F.linear(q, w_q, b_q).view(P, H, dh).transpose(0, 1) * dh ** -0.5                    # H x P x dh
    a = torch.bmm(qh, w_k.view(H, dh, D)).transpose(0, 1)                                      # P x H x D: W_k,h^T q_h
    w = torch.matmul(a, kv.transpose(1, 2)).softmax(-1)                                        # P x H x T
    w = F.dropout(w, mha.dropout, mha.training)
    m = torch.bmm(w, kv)                                                                       # P x H x D
    o = torch.bmm(m.transpose(0, 1), w_v.view(H, dh, D).transpose(1, 2))                      # H x P x dh: W_v,h m_h
    o = o.transpose(0, 1).reshape(P, D) + b_v
    return mha.out_proj(o)


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
        q = self.norm_ca(x)[b_idx, n_idx]                                                       # P x D
        ca = single_query_attention(self.cross_attn, q, self.norm_tokens(tokens))               # Eq. 2, P x D
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
