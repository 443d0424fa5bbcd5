"""Preprocessing shared by training and inference (so inference never imports training code): the network's working
resolution, resizing the image to it, the image as a tensor, the ImageNet normalisation the encoder applies, and the
mapping of full-resolution pixels to working-resolution pixels. The per-point radar features are features.py's.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

#: ImageNet statistics of the torchvision ResNet backbone (RGB, images in [0, 1])
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def working_size(width: int, height: int, input_width: int) -> tuple[int, int]:
    """(W', H') of the network's input for a W x H image: W' = input_width, H' keeps the aspect ratio rounded to a
    multiple of 32 (at least 32)."""
    h = max(32, int(round(height * input_width / width / 32.0)) * 32)
    return int(input_width), h


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """H x W x 3 uint8 -> size = (W', H') with area interpolation (downscaling)."""
    if (image.shape[1], image.shape[0]) == tuple(size):
        return image
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def image_tensor(image: np.ndarray) -> torch.Tensor:
    """H x W x 3 uint8 RGB -> 3 x H x W float32 in [0, 1] (the encoder normalises with IMAGENET_MEAN / STD)."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255.0


def to_working_uv(uv: "torch.Tensor | np.ndarray", width: int, height: int, size: tuple[int, int]):
    """Full-resolution pixel (u, v) -> working-resolution pixel (pixel centres at integers on both grids)."""
    sx, sy = size[0] / width, size[1] / height
    out = uv * 1.0
    out[..., 0] = (uv[..., 0] + 0.5) * sx - 0.5
    out[..., 1] = (uv[..., 1] + 0.5) * sy - 0.5
    return out


__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "image_tensor", "resize_image", "to_working_uv", "working_size"]
