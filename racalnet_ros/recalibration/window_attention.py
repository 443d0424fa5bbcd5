"""Windowed self-attention among a frame's radar points (paper Eq. 1, restricted to image-plane neighbourhoods).

Dense self-attention over N points costs O(N^2) time and memory (544 GB for a 200,000-point cloud). Here the points
are serialised along a Z-order (Morton) curve of their image-plane position and cut into blocks of `window`
consecutive points; every point attends to the points of its own block and of the two adjacent blocks (at most
3 x window keys, padding masked). Time and memory are O(N x window); the attention itself runs in chunks of blocks,
so the transient memory is bounded for any N. With window >= N there is one block and the result equals dense
attention.

Why the image plane (not 3D): the network judges a point against what surrounds it *in the image*. A ghost or
multipath point has a wrong range, so in 3D it sits far from the surface it is projected onto; in the image plane it
sits next to the points of that surface, whose depths contradict it - that contrast is what the confidence head
needs. The image plane is also where the displacement is predicted.

Why serialised windows (not exact k nearest neighbours): the neighbourhood is one argsort plus contiguous blocks,
which batched scaled-dot-product attention runs at dense-matmul speed on CPU and CUDA; an exact or approximate kNN
needs per-point top-k and gathers that cost ~10x more on this CPU (measured on the loaded development machine: 13 ms
for 4,000 points at k = 16 vs 1 ms for the sort). The same idea - serialise points along a space-filling curve, attend within patches - is the
one Point Transformer V3 (Wu et al., CVPR 2024) uses to scale point transformers; adjacent-block keys remove the hard
patch borders. The 3 x 16 keys of a point hold 76-77% of its 16 exact nearest neighbours for 1,000 points spread
uniformly or along a horizontal band, 98% for clustered points.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

_BITS = 16  # quantisation of each image-plane axis for the Morton code (65,536 levels over the frame's extent)


def _spread_bits(x: torch.Tensor) -> torch.Tensor:
    """Insert a zero bit between the low 16 bits of x (int64): abcd -> 0a0b0c0d."""
    x = (x | (x << 8)) & 0x00FF00FF
    x = (x | (x << 4)) & 0x0F0F0F0F
    x = (x | (x << 2)) & 0x33333333
    return (x | (x << 1)) & 0x55555555


def morton_order(uv: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """uv: B x N x 2 image-plane positions; valid: B x N bool -> B x N int64 permutation per frame: valid points in
    Z-order of their position (quantised over the frame's own extent), ties (identical pixels) in index order, padded
    slots last."""
    uv = uv.detach().float()
    big = torch.finfo(uv.dtype).max
    lo = torch.where(valid.unsqueeze(-1), uv, big).amin(1, keepdim=True)                      # B x 1 x 2
    hi = torch.where(valid.unsqueeze(-1), uv, -big).amax(1, keepdim=True)
    lo = torch.where(lo > hi, torch.zeros_like(lo), lo)                                        # frame without points
    extent = (hi - lo).amax(-1, keepdim=True).clamp_min(1e-6)                                   # B x 1 x 1
    q = ((uv - lo) / extent * (2 ** _BITS - 1)).round().clamp(0, 2 ** _BITS - 1).long()       # B x N x 2
    code = _spread_bits(q[..., 0]) | (_spread_bits(q[..., 1]) << 1)                            # < 2**32
    code = torch.where(valid, code, torch.full_like(code, 2 ** (2 * _BITS)))
    return torch.argsort(code, dim=1, stable=True)


def windowed_self_attention(mha: nn.MultiheadAttention, x: torch.Tensor, valid: torch.Tensor, order: torch.Tensor,
                            window: int, chunk_blocks: int = 2048) -> torch.Tensor:
    """Self-attention with the weights of `mha` (batch_first, packed in-projection), each point attending to its own
    block of `window` serialised points and the two adjacent blocks.

    x: B x N x D; valid: B x N bool (padded slots are never keys; a padded query attends to itself only, so its
    output stays finite); order: B x N from `morton_order`. Returns B x N x D in the original point order.
    """
    B, N, D = x.shape
    H, P = mha.num_heads, int(window)
    dh = D // H
    nb = -(-N // P)                                                                             # blocks per frame
    pad = nb * P - N
    xs = torch.gather(x, 1, order.unsqueeze(-1).expand(B, N, D))                                # B x N x D sorted
    vs = torch.gather(valid, 1, order)
    qkv = F.linear(xs, mha.in_proj_weight, mha.in_proj_bias)                                    # B x N x 3D
    qkv = F.pad(qkv, (0, 0, 0, pad)).view(B, nb, P, 3, H, dh).permute(3, 0, 1, 4, 2, 5)       # 3 x B x nb x H x P x dh
    q = qkv[0]
    kv = F.pad(qkv[1:], (0, 0, 0, 0, 0, 0, 1, 1))                                               # + an empty block each side
    ok = F.pad(vs, (0, pad)).view(B, nb, P)
    ok = F.pad(ok, (0, 0, 1, 1), value=False)                                                   # B x nb+2 x P
    own = torch.zeros(P, 3 * P, dtype=torch.bool, device=x.device)
    own[:, P:2 * P] = torch.eye(P, dtype=torch.bool, device=x.device)                          # the query itself
    p_drop = mha.dropout if mha.training else 0.0
    step = max(1, chunk_blocks // B)
    out = []
    for s in range(0, nb, step):                                                                # bounded transients
        e = min(s + step, nb)
        c = B * (e - s)
        kw = torch.cat([kv[:, :, s:e], kv[:, :, s + 1:e + 1], kv[:, :, s + 2:e + 2]], 4)         # 2 x B x c x H x 3P x dh
        key_ok = torch.cat([ok[:, s:e], ok[:, s + 1:e + 1], ok[:, s + 2:e + 2]], 2)              # B x c x 3P
        mask = key_ok.reshape(c, 1, 1, 3 * P) | own                                             # c x 1 x P x 3P
        o = F.scaled_dot_product_attention(q[:, s:e].reshape(c, H, P, dh), kw[0].reshape(c, H, 3 * P, dh),
                                           kw[1].reshape(c, H, 3 * P, dh), attn_mask=mask, dropout_p=p_drop)
        out.append(o.view(B, e - s, H, P, dh))
    o = torch.cat(out, 1).permute(0, 1, 3, 2, 4).reshape(B, nb * P, D)[:, :N]                  # B x N x D sorted
    o = mha.out_proj(o)
    return torch.empty_like(o).scatter_(1, order.unsqueeze(-1).expand(B, N, D), o)
