"""Recalibration forward time per frame (640x480, 250 / 1,000 / 4,000 radar points, both presets).

Each row times `Recalibrator.predict(frame)` end to end (projection, features, resize, image encoder, per-point
part) with random weights, and separately the image encoder alone and the per-point part alone (roi_align, radar
MLP, attention, heads on a cached feature map), so the linear / quadratic growth of the point-wise cost is visible.
"""

from __future__ import annotations


import torch

from . import median_ms


def run(device: str = "cpu", quick: bool = False) -> list[dict]:
    from ..recalibration.config import ModelConfig
    from ..recalibration.features import project_radar, radar_point_features
    from ..recalibration.model import RecalibrationNet, to_working_uv, working_size
    from ..recalibration.data import resize_image
    from ..recalibration.recalibrator import Recalibrator
    from ..recalibration.toy import toy_frame

    presets = ("small",) if quick else ("small", "paper")
    counts = (250, 1000) if quick else (250, 1000, 4000)
    reps = 2 if quick else 5
    rows = []
    for preset in presets:
        torch.manual_seed(0)
        cfg = ModelConfig.preset(preset)
        model = RecalibrationNet(cfg).to(device).eval()
        rec = Recalibrator(model, cfg, device=device)
        for n in counts:
            frame = toy_frame(0, width=640, height=480, n_radar=n)
            total = median_ms(lambda: rec.predict(frame), repeat=reps, warmup=1)
            size = working_size(640, 480, cfg.input_width)
            image = torch.from_numpy(resize_image(frame.image, size)).permute(2, 0, 1)[None].float().to(device) / 255
            pr = project_radar(frame)
            feats = torch.from_numpy(radar_point_features(pr.xyz_cam, pr.uv, 640, 480, pr.doppler, pr.power,
                                                          cfg.features, cfg.max_range))[None].to(device)
            uv = torch.from_numpy(to_working_uv(pr.uv, 640, 480, size))[None].to(device)
            valid = torch.ones(1, len(pr), dtype=torch.bool, device=device)
            with torch.inference_mode():
                fmap = model.encode_image(image)
                enc = median_ms(lambda: model.encode_image(image), repeat=reps, warmup=1)
                pts = median_ms(lambda: model.decode_points(fmap, feats, uv, valid), repeat=reps, warmup=1)
            rows.append({"name": f"recalibrate {preset} 640x480", "ms": total, "preset": preset, "points": len(pr),
                         "input": f"{size[0]}x{size[1]}", "encoder_ms": enc, "points_ms": pts,
                         "params_M": round(model.num_parameters() / 1e6, 2), "threads": torch.get_num_threads(),
                         "device": device})
    return rows
