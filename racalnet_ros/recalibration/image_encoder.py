"""Image encoder of the recalibration network: a torchvision backbone (ResNet-34 in the paper; ResNet-18 or the
lighter RegNetX-400MF for CPU budgets), a Feature Pyramid Network over its stages and CBAM channel + spatial
attention on the fused map (paper section III-A-1)."""

from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torchvision.ops import FeaturePyramidNetwork

log = logging.getLogger(__name__)

#: output channels of the backbone's four stages (strides 4, 8, 16, 32)
STAGE_CHANNELS = {"resnet18": (64, 128, 256, 512), "resnet34": (64, 128, 256, 512),
                  "regnet_x_400mf": (32, 64, 160, 400)}
WEIGHTS = {"resnet18": "ResNet18_Weights", "resnet34": "ResNet34_Weights", "regnet_x_400mf": "RegNet_X_400MF_Weights"}


class ChannelAttention(nn.Module):
    """CBAM channel attention: shared MLP over global average- and max-pooled descriptors."""

    def __init__(self, channels: int, reduction: int = 8):
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.mlp = nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: B x C x H x W
        w = self.mlp(F.adaptive_avg_pool2d(x, 1)) + self.mlp(F.adaptive_max_pool2d(x, 1))  # B x C x 1 x 1
        return x * torch.sigmoid(w)


class SpatialAttention(nn.Module):
    """CBAM spatial attention: 7x7 conv over the channel-wise mean and max."""

    def __init__(self, kernel: int = 7):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: B x C x H x W
        s = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)  # B x 2 x H x W
        return x * torch.sigmoid(self.conv(s))


class CBAM(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.channel = ChannelAttention(channels)
        self.spatial = SpatialAttention()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spatial(self.channel(x))


def fuse_batchnorm_(module: nn.Module) -> nn.Module:
    """Fold every eval-mode BatchNorm2d that directly follows a Conv2d into that convolution (inference only; the
    folded network computes the same function with one op less per pair). Pairs are adjacent entries of an
    nn.Sequential or torchvision's `convN` / `bnN` attributes (ResNet blocks). In place; returns `module`."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for parent in module.modules():
        if isinstance(parent, nn.Sequential):
            for i in range(len(parent) - 1):
                if isinstance(parent[i], nn.Conv2d) and isinstance(parent[i + 1], nn.BatchNorm2d):
                    parent[i], parent[i + 1] = fuse_conv_bn_eval(parent[i], parent[i + 1]), nn.Identity()
        for j in range(1, 4):
            conv, bn = getattr(parent, f"conv{j}", None), getattr(parent, f"bn{j}", None)
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                setattr(parent, f"conv{j}", fuse_conv_bn_eval(conv, bn))
                setattr(parent, f"bn{j}", nn.Identity())
    return module


def _torchvision_net(name: str, pretrained: str) -> nn.Module:
    """A torchvision classification network; `pretrained`: "" random init, "imagenet" the torchvision weight enum
    (downloads once), or a path to a saved torchvision state dict."""
    builder = getattr(torchvision.models, name)
    if pretrained == "imagenet":
        return builder(weights=getattr(torchvision.models, WEIGHTS[name]).IMAGENET1K_V1)
    net = builder(weights=None)
    if pretrained:
        path = Path(pretrained)
        if not path.is_file():
            raise FileNotFoundError(f"pretrained backbone weights: {path} not found")
        state = torch.load(path, map_location="cpu", weights_only=True)
        missing, unexpected = net.load_state_dict(state, strict=False)
        log.info("loaded %s weights from %s (missing %d, unexpected %d)", name, path, len(missing), len(unexpected))
    return net


def _stem_and_stages(name: str, pretrained: str) -> tuple[nn.Module, list[nn.Module]]:
    """(stem to stride 2 or 4, the four stages to strides 4, 8, 16, 32) of a torchvision backbone."""
    net = _torchvision_net(name, pretrained)
    if name.startswith("resnet"):
        return nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool), [getattr(net, f"layer{i}") for i in range(1, 5)]
    trunk = net.trunk_output  # RegNet: stem (stride 2) then block1..block4
    return net.stem, [getattr(trunk, f"block{i}") for i in range(1, 5)]


class ImageEncoder(nn.Module):
    """Backbone stages 1..num_stages -> FPN -> CBAM; returns the finest fused map (stride 4), the one the
    per-point regions of interest are pooled from."""

    stride = 4

    def __init__(self, backbone: str = "resnet34", num_stages: int = 4, fpn_channels: int = 256, cbam: bool = True,
                 pretrained: str = ""):
        super().__init__()
        stem, stages = _stem_and_stages(backbone, pretrained)
        self.stem = stem
        self.stages = nn.ModuleList(stages[:num_stages])  # strides 4, 8, 16, 32
        self.fpn = FeaturePyramidNetwork(list(STAGE_CHANNELS[backbone][:num_stages]), fpn_channels)
        self.attention = CBAM(fpn_channels) if cbam else nn.Identity()
        self.out_channels = fpn_channels

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """image: B x 3 x H x W (ImageNet-normalised) -> B x C x H/4 x W/4."""
        x = self.stem(image)
        feats = OrderedDict()
        for i, stage in enumerate(self.stages):
            x = stage(x)
            feats[f"c{i + 1}"] = x
        fused = self.fpn(feats)["c1"]  # finest level, top-down pathway has merged every coarser stage into it
        return self.attention(fused)
