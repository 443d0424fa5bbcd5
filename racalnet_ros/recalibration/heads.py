"""Refinement heads: two-layer MLPs predicting a confidence logit and a 2D pixel displacement per point."""

from __future__ import annotations

import torch
import torch.nn as nn


class RefinementHeads(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.confidence = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 1))
        self.displacement = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 2))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: ... x D -> (confidence logit ..., displacement ... x 2 in units of ModelConfig.disp_norm pixels)."""
        return self.confidence(x).squeeze(-1), self.displacement(x)
