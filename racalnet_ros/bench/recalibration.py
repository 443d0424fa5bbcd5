"""Recalibration forward time per frame (640x480; 250 / 1,000 / 4,000 / 20,000 / 200,000 radar points in the image).

Each row times `Recalibrator.predict(frame)` end to end (projection, the points cap, features, resize, image encoder,
per-point part) with random weights and the pipeline's default cap (`PipelineConfig().recalibration.max_points`;
`seen` = points the network evaluated), and separately the image encoder alone (`encoder_ms`) and the per-point part
alone on a cached feature map (`points_ms`: roi_align, radar MLP, windowed self-attention, cross-attention, heads)
for the points the network sees, so the linear growth of the point-wise cost is visible. `points_ms_all` is the
per-point part on every point without the cap (not run at 200,000 points: memory, not time, is what the cap
bounds there). One more row times `Pipeline.run` (recalibration with the default cap, the frame's own prior,
global alignment, refinement, smoothing) on a 200,000-point cloud: the issue's "output within 2 s" for huge clouds.
Rows carry the torch threads, the load average and the torch version: compare rows only at similar load.
"""

from __future__ import annotations

import dataclasses

import torch

from . import median_ms, median_wall_cpu_ms, run_info


def run(device: str = "cpu", quick: bool = False) -> list[dict]:
    from ..pipeline import PipelineConfig
    from ..recalibration.config import ModelConfig
    from ..recalibration.data import resize_image
    from ..recalibration.features import project_radar, radar_point_features
    from ..recalibration.model import RecalibrationNet, to_working_uv, working_size
    from ..recalibration.recalibrator import Recalibrator
    from ..recalibration.subsample import grid_subsample
    from ..recalibration.toy import toy_frame

    cap = PipelineConfig().recalibration.max_points
    presets = ("small",) if quick else ("small", "paper")
    counts = {"small": (250, 1000) if quick else (250, 1000, 4000, 20000, 200000), "paper": (250, 1000, 4000)}
    rows = []
    for preset in presets:
        torch.manual_seed(0)
        cfg = ModelConfig.preset(preset)
        model = RecalibrationNet(cfg).to(device).eval()
        rec = Recalibrator(model, cfg, device=device, max_points=cap)
        net = rec.model  # the inference copy (BatchNorm folded, channels-last encoder)
        for n in counts[preset]:
            reps = 2 if quick or n >= 20000 else 7
            frame = toy_frame(0, width=640, height=480, n_radar=n)
            total, total_cpu = median_wall_cpu_ms(lambda: rec.predict(frame), repeat=reps, warmup=1)
            size = working_size(640, 480, cfg.input_width)
            image = torch.from_numpy(resize_image(frame.image, size)).permute(2, 0, 1)[None].float().to(device) / 255
            image = image.contiguous(memory_format=torch.channels_last)
            pr = project_radar(frame)
            feats = torch.from_numpy(radar_point_features(pr.xyz_cam, pr.uv, 640, 480, pr.doppler, pr.power,
                                                          cfg.features, cfg.max_range))[None].to(device)
            uv = torch.from_numpy(to_working_uv(pr.uv, 640, 480, size))[None].to(device)
            seen = torch.from_numpy(grid_subsample(pr.uv, cap)).to(device) if cap else torch.arange(len(pr))
            with torch.inference_mode():
                fmap = net.encode_image(image).contiguous()
                enc = median_ms(lambda: net.encode_image(image), repeat=reps, warmup=1)
                f_s, uv_s = feats[:, seen], uv[:, seen]
                valid = torch.ones(1, len(seen), dtype=torch.bool, device=device)
                pts = median_ms(lambda: net.decode_points(fmap, f_s, uv_s, valid), repeat=reps, warmup=1)
                pts_all = float("nan")
                if len(pr) <= 20000:
                    valid_all = torch.ones(1, len(pr), dtype=torch.bool, device=device)
                    pts_all = median_ms(lambda: net.decode_points(fmap, feats, uv, valid_all), repeat=reps, warmup=1)
            rows.append({"name": f"recalibrate {preset} 640x480", "ms": total, "cpu_ms": total_cpu, "preset": preset,
                         "points": len(pr),
                         "seen": len(seen), "input": f"{size[0]}x{size[1]}", "encoder_ms": enc, "points_ms": pts,
                         "points_ms_all": pts_all, "params_M": round(model.num_parameters() / 1e6, 2),
                         "attn_window": cfg.attn_window, **run_info(device)})
        if preset == "small" and not quick:
            rows.append(_pipeline_row(rec, toy_frame(0, width=640, height=480, n_radar=200000), device))
    return rows


def _pipeline_row(rec, frame, device: str) -> dict:
    """Pipeline.run on a huge cloud with the frame's prior (a smooth relative inverse depth); threshold 0 so that the
    random-weight network keeps every point it evaluates and the alignment stages run on the capped anchors."""
    from ..recalibration.recalibrator import Recalibrator
    import numpy as np

    from ..metric_depth.aligner import Aligner
    from ..metric_depth.priors import FramePrior
    from ..pipeline import Pipeline, PipelineConfig

    h, w = frame.height, frame.width
    prior = (0.2 + 0.6 * np.linspace(0, 1, h, dtype=np.float32)[:, None] * np.ones((1, w), np.float32))
    frame = dataclasses.replace(frame, prior=prior)
    cfg = PipelineConfig()
    rec = Recalibrator(rec.model, rec.cfg, threshold=0.0, device=device, max_points=rec.max_points)
    pipe = Pipeline(rec, FramePrior(), Aligner(cfg.align, cfg.refine, cfg.smooth, device=device), cfg)
    res = {}
    ms, cpu = median_wall_cpu_ms(lambda: res.update(r=pipe.run(frame)), repeat=3, warmup=1)
    d = res["r"].diagnostics
    return {"name": "Pipeline.run 640x480, huge cloud", "ms": ms, "cpu_ms": cpu, "preset": "small",
            "points": d["anchors_total"],
            "seen": d["anchors_total"] - d["anchors_subsampled"], "fallbacks": ",".join(d["fallbacks"]),
            **{f"{k}_ms": round(v, 1) for k, v in d["times_ms"].items() if k != "total"}, **run_info(device)}
