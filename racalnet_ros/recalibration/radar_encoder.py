"""Radar encoder: a point-wise MLP (paper: fully connected layers 32-64-128-256-512)."""

from __future__ import annotations

import torch
import torch.nn as nn


class RadarEncoder(nn.Module):
    def __init__(self, in_dim: int, hidden: tuple[int, ...], out_dim: int):
        super().__init__()
        layers: list[nn.Module] = []
        d = in_dim
        for h in hidden:
            layers += [nn.Linear(d, h), nn.LayerNorm(h), nn.ReLU(inplace=True)]
            d = h
        self.mlp = nn.Sequential(*layers)
        # projection to the attention width when the MLP's last size differs (paper preset: 512 -> 256)
        self.proj = nn.Linear(d, out_dim) if d != out_dim else nn.Identity()

    def forward(self, feats: torch.Tensor) -> torch.Tensor:  # B x N x F -> B x N x D
        return self.proj(self.mlp(feats))
