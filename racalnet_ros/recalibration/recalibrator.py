"""`Recalibrator`: the inference API of the Radar Recalibration module (paper Eq. 3)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..frame import Frame, RadarAnchors
from .checkpoint import load_checkpoint
from .config import ModelConfig
from .features import project_radar, radar_point_features
from .model import RecalibrationNet
from .preprocess import image_tensor, resize_image, to_working_uv, working_size


class Recalibrator:
    """Per-point confidence and pixel displacement for a frame's projected radar points.

    threshold: keep a point when confidence >= threshold (Eq. 3's screening).
    use_screening=False: confidence is reported as predicted but every anchor is kept.
    use_displacement=False: displacement is zero (uv = uv_raw).
    """

    def __init__(self, model: RecalibrationNet, cfg: ModelConfig, threshold: float = 0.5, use_screening: bool = True,
                 use_displacement: bool = True, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.cfg = cfg
        self.threshold = float(threshold)
        self.use_screening = bool(use_screening)
        self.use_displacement = bool(use_displacement)

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "cpu", threshold: float | None = None,
                        use_screening: bool = True, use_displacement: bool = True) -> "Recalibrator":
        model, cfg, meta = load_checkpoint(path, device)
        thr = float(meta.get("threshold", 0.5)) if threshold is None else float(threshold)
        return cls(model, cfg, thr, use_screening, use_displacement, device)

    @torch.inference_mode()
    def predict(self, frame: Frame):
        """-> (ProjectedRadar, confidence N float32, displacement N x 2 float32 full-resolution pixels)."""
        pr = project_radar(frame)  # rejects NaN / inf in the radar before the network
        n = len(pr)
        if n == 0:
            return pr, np.zeros(0, np.float32), np.zeros((0, 2), np.float32)
        feats = radar_point_features(pr.xyz_cam, pr.uv, pr.width, pr.height, pr.doppler, pr.power,
                                     self.cfg.features, self.cfg.max_range)
        size = working_size(frame.width, frame.height, self.cfg.input_width)
        img = resize_image(frame.image, size)
        dev = self.device
        image = image_tensor(img).unsqueeze(0).to(dev)
        uv_w = torch.from_numpy(to_working_uv(pr.uv.astype(np.float32), pr.width, pr.height, size)).to(dev)
        f = torch.from_numpy(feats).to(dev)
        valid = torch.ones(1, n, dtype=torch.bool, device=dev)
        logit, disp = self.model(image, f.unsqueeze(0), uv_w.unsqueeze(0), valid)
        conf = torch.sigmoid(logit[0]).float().cpu().numpy()
        disp = (disp[0].float() * self.cfg.disp_norm).cpu().numpy()
        return pr, conf.astype(np.float32), disp.astype(np.float32)

    def recalibrate(self, frame: Frame) -> RadarAnchors:
        """Frame -> RadarAnchors (one row per radar point in the image); empty anchors when none is."""
        pr, conf, disp = self.predict(frame)
        if len(pr) == 0:
            return RadarAnchors.empty()
        if not self.use_displacement:
            disp = np.zeros_like(disp)
        kept = conf >= self.threshold if self.use_screening else np.ones(len(conf), bool)
        uv_raw = pr.uv.astype(np.float32)
        return RadarAnchors(pr.index.astype(np.int64), uv_raw, disp, uv_raw + disp, pr.depth.astype(np.float32),
                            conf, kept)
