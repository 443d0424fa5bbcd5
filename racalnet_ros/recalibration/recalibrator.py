"""`Recalibrator`: the inference API of the Radar Recalibration module (paper Eq. 3)."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch

from ..frame import Frame, RadarAnchors
from .checkpoint import load_checkpoint
from .config import ModelConfig
from .features import check_radar_columns, project_radar, radar_point_features
from .image_encoder import fuse_batchnorm_
from .model import RecalibrationNet
from .preprocess import image_tensor, resize_image, to_working_uv, working_size
from .subsample import grid_subsample
from .trust import feature_distance, image_descriptor, trust_of


class Recalibrator:
    """Per-point confidence and pixel displacement for a frame's projected radar points.

    threshold: keep a point when confidence >= threshold (Eq. 3's screening).
    use_screening=False: confidence is reported as predicted but every anchor is kept.
    use_displacement=False: displacement is zero (uv = uv_raw).
    max_points: cap on the in-image points the network sees per frame (0 = no cap). Above it a deterministic,
      coverage-first subset of max_points is chosen (subsample.grid_subsample); the other points are not evaluated:
      confidence NaN, displacement 0, never kept (not used as anchors, whatever the screening setting).
    trust_stats / trust_margin: the out-of-distribution guard (trust.py): for a frame whose image features are far
      from the checkpoint's training statistics, keep a point when confidence >= trust x threshold, move it by
      trust x displacement and report its confidence as 1 - trust x (1 - confidence), the weight of
      align.anchor_weights: confidence (trust 0: the raw projections, all kept, equal weights). No statistics or
      margin 0: always trusted.
      `last_trust` holds (trust, distance / d_ref) of the last frame (1.0, NaN without statistics).
    """

    def __init__(self, model: RecalibrationNet, cfg: ModelConfig, threshold: float = 0.5, use_screening: bool = True,
                 use_displacement: bool = True, device: str | torch.device = "cpu", max_points: int = 0,
                 trust_stats: dict | None = None, trust_margin: float = 0.0):
        if max_points < 0:
            raise ValueError(f"recalibration max_points: expected >= 0 (0 = no cap), got {max_points}")
        self.device = torch.device(device)
        # inference copy: BatchNorm folded into the convolutions, image encoder in channels-last layout (oneDNN /
        # cuDNN convolutions run without layout reorders); the caller's module is left as it was
        self.model = copy.deepcopy(model).to(self.device).eval()
        fuse_batchnorm_(self.model.image_encoder).to(memory_format=torch.channels_last)
        self.cfg = cfg
        self.threshold = float(threshold)
        self.use_screening = bool(use_screening)
        self.use_displacement = bool(use_displacement)
        self.max_points = int(max_points)
        if trust_margin < 0:
            raise ValueError(f"recalibration trust_margin: expected >= 0 (0 = off), got {trust_margin}")
        self.trust_stats = trust_stats
        self.trust_margin = float(trust_margin)
        self.last_trust: tuple[float, float] = (1.0, float("nan"))

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "cpu", threshold: float | None = None,
                        use_screening: bool = True, use_displacement: bool = True,
                        max_points: int = 0, trust_margin: float = 0.0) -> "Recalibrator":
        model, cfg, meta = load_checkpoint(path, device)
        thr = float(meta.get("threshold", 0.5)) if threshold is None else float(threshold)
        return cls(model, cfg, thr, use_screening, use_displacement, device, max_points,
                   trust_stats=meta.get("trust"), trust_margin=trust_margin)

    @torch.inference_mode()
    def predict(self, frame: Frame):
        """-> (ProjectedRadar, confidence N float32, displacement N x 2 float32 full-resolution pixels); points left
        out by the max_points cap have confidence NaN and displacement 0."""
        check_radar_columns(self.cfg.features, frame.radar_fields)
        pr = project_radar(frame)  # rejects NaN / inf in the radar before the network
        self.last_trust = (1.0, float("nan"))
        if len(pr) == 0:
            return pr, np.zeros(0, np.float32), np.zeros((0, 2), np.float32)
        seen = slice(None)
        if self.max_points and len(pr) > self.max_points:
            seen = grid_subsample(pr.uv, self.max_points)
        conf = np.full(len(pr), np.nan, np.float32)
        disp = np.zeros((len(pr), 2), np.float32)
        conf[seen], disp[seen] = self._predict_points(frame, pr, seen)
        return pr, conf, disp

    def _predict_points(self, frame: Frame, pr, sel) -> tuple[np.ndarray, np.ndarray]:
        """The network on the points pr[sel] -> (confidence, displacement in full-resolution pixels)."""
        uv = pr.uv[sel]
        n = len(uv)
        opt = (lambda a: None if a is None else a[sel])  # noqa: E731
        feats = radar_point_features(pr.xyz_cam[sel], uv, pr.width, pr.height, opt(pr.doppler), opt(pr.power),
                                     self.cfg.features, self.cfg.max_range)
        size = working_size(frame.width, frame.height, self.cfg.input_width)
        img = resize_image(frame.image, size)
        dev = self.device
        image = image_tensor(img).unsqueeze(0).to(dev)
        uv_w = torch.from_numpy(to_working_uv(uv.astype(np.float32), pr.width, pr.height, size)).to(dev)
        f = torch.from_numpy(feats).to(dev)
        valid = torch.ones(1, n, dtype=torch.bool, device=dev)
        fmap = self.model.encode_image(image.contiguous(memory_format=torch.channels_last)).contiguous()
        if self.trust_stats is not None:
            ratio = float(feature_distance(image_descriptor(fmap)[0], self.trust_stats)) / self.trust_stats["d_ref"]
            self.last_trust = (trust_of(ratio, 1.0, self.trust_margin), ratio)
        logit, disp = self.model.decode_points(fmap, f.unsqueeze(0), uv_w.unsqueeze(0), valid)
        conf = torch.sigmoid(logit[0]).float().cpu().numpy()
        disp = (disp[0].float() * self.cfg.disp_norm).cpu().numpy()
        return conf, disp

    def recalibrate(self, frame: Frame) -> RadarAnchors:
        """Frame -> RadarAnchors (one row per radar point in the image); empty anchors when none is."""
        pr, conf, disp = self.predict(frame)
        if len(pr) == 0:
            return RadarAnchors.empty()
        trust = self.last_trust[0]
        disp = disp * trust if self.use_displacement else np.zeros_like(disp)
        # NaN: left out by the cap; a distrusted frame keeps more (trust 0: every evaluated point)
        kept = conf >= trust * self.threshold if self.use_screening else np.isfinite(conf)
        if trust < 1.0:  # ... and weighs its points more alike (align.anchor_weights: confidence; trust 0: all 1)
            conf = 1.0 - trust * (1.0 - conf)
        uv_raw = pr.uv.astype(np.float32)
        return RadarAnchors(pr.index.astype(np.int64), uv_raw, disp, uv_raw + disp, pr.depth.astype(np.float32),
                            conf, kept)
