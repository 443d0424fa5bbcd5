"""Side by side: RadarCam-Depth's stage 1 (RC-Net, Li et al., ICRA 2024) vs this package's recalibration network, on
the same frame size (640x480) and the same radar point counts, on this machine.

RadarCam-Depth is not a dependency and none of its code is in this repository: point the environment variable
RADARCAM_DEPTH at a user's checkout (github.com/MMOCKING/RadarCam-Depth); without it the rows say "skipped".
Its RC-Net is built with the settings of its RCNet/rcnet_run_zju.py (patch 300 x 100, ResNet-18 image encoder
32-64-128-128-128, 4 self/cross linear-attention layers, multi-scale decoder 256-128-64-32-16, batch norm) and random
weights (its trained weights are not needed for timing). Two times per frame:
  rcnet_model_ms  RCNetModel.forward: image encoder once, then per point ROI pooling, attention and a 300 x 100
                  response-map decoder;
  rcnet_stage1_ms its RCNet/rcnet_main.py `forward`, i.e. the model plus pasting every point's response map into a
                  full-image tile and the per-point arg-max fill that turns responses into a quasi-dense depth map
                  (what its stage 1 hands to stage 2);
and `racalnet_ms` = `Recalibrator.predict(frame)` (small preset) on the same frame size and point count.
Its logging helpers import matplotlib and tensorboard (plots and logs only); when those are not installed, empty
stand-in modules are registered so its model code imports.
"""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import torch

from . import median_wall_cpu_ms, run_info

ENV = "RADARCAM_DEPTH"
WIDTH, HEIGHT = 640, 480
#: RCNet/rcnet_run_zju.py
RCNET_SETTINGS = dict(input_channels_image=3, input_channels_depth=3, input_patch_size_image=[300, 100],
                      encoder_type=["rcnet", "batch_norm"], n_filters_encoder_image=[32, 64, 128, 128, 128],
                      n_neurons_encoder_depth=[32, 64, 128, 128, 128], decoder_type=["multiscale", "batch_norm"],
                      n_filters_decoder=[256, 128, 64, 32, 16], weight_initializer="kaiming_uniform",
                      activation_func="leaky_relu")


def _import_rcnet(root: Path):
    """(RCNetModel class, rcnet_main.forward) from a RadarCam-Depth checkout."""
    for name in ("matplotlib", "matplotlib.pyplot", "torch.utils.tensorboard"):
        try:
            __import__(name)
        except ImportError:
            sys.modules[name] = types.ModuleType(name)
    sys.modules["matplotlib"].pyplot = sys.modules["matplotlib.pyplot"]
    if not hasattr(sys.modules["torch.utils.tensorboard"], "SummaryWriter"):
        sys.modules["torch.utils.tensorboard"].SummaryWriter = None
    sys.path[:0] = [str(root / "RCNet"), str(root)]
    import rcnet_main
    import rcnet_model
    return rcnet_model.RCNetModel, rcnet_main.forward


def run(device: str = "cpu", quick: bool = False) -> list[dict]:
    from ..recalibration.config import ModelConfig
    from ..recalibration.model import RecalibrationNet
    from ..recalibration.recalibrator import Recalibrator
    from ..recalibration.toy import toy_frame

    counts = (20, 250) if quick else (20, 250, 1000)
    root = Path(os.environ.get(ENV, ""))
    if not os.environ.get(ENV) or not (root / "RCNet" / "rcnet_model.py").is_file():
        print(f"rcnet: skipped: set {ENV} to a checkout of github.com/MMOCKING/RadarCam-Depth "
              f"(got {os.environ.get(ENV, '')!r})", file=sys.stderr)
        return [{"name": "RC-Net stage 1 vs racalnet 640x480", "ms": float("nan"),
                 "skipped": f"{ENV} not set to a RadarCam-Depth checkout", **run_info(device)}]
    RCNetModel, rcnet_forward = _import_rcnet(root)
    torch.manual_seed(0)
    rcnet = RCNetModel(**RCNET_SETTINGS, device=torch.device(device))
    rcnet.eval()
    cfg = ModelConfig.preset("small")
    rec = Recalibrator(RecalibrationNet(cfg), cfg, device=device)
    pad = RCNET_SETTINGS["input_patch_size_image"][1] // 2
    rows = []
    for n in counts:
        g = torch.Generator().manual_seed(n)
        image = torch.rand(1, 3, HEIGHT, WIDTH, generator=g, device="cpu").to(device)
        # RC-Net's radar input: (u pixel, v pixel, depth); boxes as its rcnet_main.run builds them (u shifted by the
        # edge padding its forward adds, full image height)
        pts = torch.stack([torch.rand(n, generator=g) * (WIDTH - 1), torch.rand(n, generator=g) * (HEIGHT - 1),
                           2 + torch.rand(n, generator=g) * 60], 1).to(device)
        pts[:, 0] += pad
        boxes = [torch.stack([pts[:, 0] - pad, torch.zeros(n, device=device), pts[:, 0] + pad,
                              torch.full((n,), float(HEIGHT), device=device)], 1)]
        reps, warm = (3, 1) if n <= 20 else (1, 0)  # a frame takes seconds to minutes
        with torch.no_grad():
            model_ms, model_cpu = median_wall_cpu_ms(lambda: rcnet.forward(image, pts, boxes, return_logits=False),
                                                     repeat=reps, warmup=warm)
            stage1_ms, stage1_cpu = median_wall_cpu_ms(
                lambda: rcnet_forward(rcnet, image, pts.clone(), boxes, 0.5, torch.device(device)), repeat=reps,
                warmup=warm)
        frame = toy_frame(0, width=WIDTH, height=HEIGHT, n_radar=n)
        ours, ours_cpu = median_wall_cpu_ms(lambda: rec.predict(frame), repeat=max(reps, 5), warmup=2)
        rows.append({"name": "RC-Net stage 1 vs racalnet 640x480", "ms": stage1_ms, "points": n,
                     "rcnet_model_ms": model_ms, "rcnet_stage1_ms": stage1_ms, "racalnet_ms": ours,
                     "rcnet_stage1_cpu_ms": stage1_cpu, "racalnet_cpu_ms": ours_cpu,
                     "ratio_stage1": stage1_ms / ours, "ratio_model": model_ms / ours,
                     "ratio_stage1_cpu": stage1_cpu / ours_cpu, **run_info(device)})
    return rows
