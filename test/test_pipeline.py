"""Pipeline(recalibrator, prior, aligner).run(frame) -> Result: dense metric depth at full resolution, the anchors,
and the documented diagnostics; stages switch off for the ablations; configuration round-trips through flat keys
and YAML (plain and ROS layout)."""

import math

import numpy as np
import pytest

from racalnet_ros.frame import CameraModel, Frame
from racalnet_ros.metric_depth.aligner import Aligner
from racalnet_ros.metric_depth.priors import FramePrior
from racalnet_ros.pipeline import ABLATIONS, Pipeline, PipelineConfig, raw_anchors

from test_priors import save_tiny_depth_anything

H, W = 96, 128
DIAG_KEYS = {"scale", "shift", "threshold", "anchors_total", "anchors_kept", "anchors_used", "fallbacks", "times_ms"}


def scene_frame(n=250, outlier_frac=0.3, seed=0, with_prior=True):
    """Camera looking at a wall (left, 6-9 m) and a far facade (right, 30-40 m); radar points lie on the true
    surfaces (T_cam_radar = identity) except a fraction moved to a wrong range. extras["is_outlier"] marks them."""
    rng = np.random.default_rng(seed)
    K = np.array([[100.0, 0, W / 2], [0, 100.0, H / 2], [0, 0, 1]])
    vv, uu = np.mgrid[0:H, 0:W].astype(np.float32)
    depth = np.where(uu < W / 2, 6.0 + 3.0 * vv / H, 30.0 + 10.0 * uu / W).astype(np.float32)
    prior = ((1.0 / depth - 0.01) / 0.4).astype(np.float32)
    u = rng.uniform(0, W - 1, n)
    v = rng.uniform(0, H - 1, n)
    z = depth[np.rint(v).astype(int), np.rint(u).astype(int)].astype(np.float64)
    bad = rng.random(n) < outlier_frac
    z_meas = np.where(bad, z * rng.choice([0.4, 2.2], n), z)
    pts = np.stack([(u - K[0, 2]) / K[0, 0] * z_meas, (v - K[1, 2]) / K[1, 1] * z_meas, z_meas], 1)
    img = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
    f = Frame(img, CameraModel(K, W, H), pts.astype(np.float32), np.eye(4), prior=prior if with_prior else None,
              frame_id="000001", extras={"is_outlier": bad})
    return f, depth


class DropOutliers:
    """Test stand-in for the Radar Recalibration module: screens out exactly the corrupted points."""

    def recalibrate(self, frame):
        a = raw_anchors(frame)
        a.kept = ~frame.extras["is_outlier"][a.index]
        a.confidence = a.kept.astype(np.float32)
        return a


def rel_err(pred, gt):
    return float(np.nanmean(np.abs(pred - gt) / gt))


def test_pipeline_produces_full_resolution_metric_depth_and_diagnostics():
    frame, gt = scene_frame(outlier_frac=0.0)
    res = Pipeline(None, FramePrior(), Aligner()).run(frame)
    assert res.depth.shape == (H, W) and res.depth.dtype == np.float32 and np.isfinite(res.depth).all()
    assert rel_err(res.depth, gt) < 0.02
    assert DIAG_KEYS <= set(res.diagnostics)
    assert set(res.diagnostics["times_ms"]) == {"recalibrate", "prior", "align", "refine", "smooth", "total"}
    assert res.diagnostics["scale"] == pytest.approx(0.4, rel=0.02)
    assert res.diagnostics["anchors_total"] == len(res.anchors) == 250 and res.diagnostics["fallbacks"] == []


def test_screened_anchors_beat_raw_radar_with_outliers():
    frame, gt = scene_frame(outlier_frac=0.3)
    screened = Pipeline(DropOutliers(), None, Aligner()).run(frame)
    b = PipelineConfig().ablation("baseline")
    raw_baseline = Pipeline(None, None, Aligner(b.align, b.refine, b.smooth)).run(frame)
    assert screened.diagnostics["anchors_kept"] < screened.diagnostics["anchors_total"]
    assert rel_err(screened.depth, gt) < 0.02
    assert rel_err(raw_baseline.depth, gt) > 3 * rel_err(screened.depth, gt)


def test_stages_switch_off_for_ablations():
    frame, _ = scene_frame()
    cfg = PipelineConfig().ablation("baseline")
    assert not cfg.recalibration.enabled and not cfg.refine.enabled and not cfg.smooth.enabled
    assert not cfg.align.threshold_search
    res = Pipeline.from_config(cfg).run(frame)
    assert math.isnan(res.diagnostics["threshold"])
    assert res.diagnostics["times_ms"]["refine"] < 1.0 and res.diagnostics.get("clusters_local") == 0
    assert PipelineConfig().ablation("no-displacement").recalibration.use_displacement is False
    assert set(ABLATIONS) == {"full", "no-displacement", "no-recalibration", "baseline"}
    with pytest.raises(ValueError, match="unknown configuration"):
        PipelineConfig().ablation("best")


def test_missing_prior_and_missing_radar_give_nan_with_a_flag():
    frame, _ = scene_frame(with_prior=False)
    res = Pipeline(None, None, Aligner()).run(frame)
    assert np.isnan(res.depth).all() and res.diagnostics["fallbacks"] == ["no_prior"]
    frame, _ = scene_frame()
    frame.radar = np.zeros((0, 3), np.float32)
    res = Pipeline(None, None, Aligner()).run(frame)
    assert np.isnan(res.depth).all() and "no_anchors" in res.diagnostics["fallbacks"]
    assert len(res.anchors) == 0


def test_tiny_depth_anything_runs_through_pipeline(tmp_path):
    folder = save_tiny_depth_anything(tmp_path / "tiny_da")
    frame, _ = scene_frame(with_prior=False)
    cfg = PipelineConfig.from_flat({"recalibration.enabled": False, "prior.source": "depth-anything-v2",
                                    "prior.path": str(folder)})
    res = Pipeline.from_config(cfg).run(frame)
    assert res.depth.shape == (H, W) and res.depth.dtype == np.float32
    # a random network gives a meaningless prior: the result is either a fit (finite, clamped) or a flagged fallback
    finite = np.isfinite(res.depth)
    assert finite.all() or res.diagnostics["fallbacks"]
    assert np.all((res.depth[finite] >= cfg.align.min_depth - 1e-3) & (res.depth[finite] <= cfg.align.max_depth + 1e-2))
    assert res.diagnostics["times_ms"]["prior"] > 0


def test_config_round_trips_through_flat_keys_and_yaml(tmp_path):
    cfg = PipelineConfig()
    cfg.refine.n_clusters = 5
    cfg.recalibration.threshold = 0.7
    flat = cfg.to_flat()
    assert flat["refine.n_clusters"] == 5 and flat["recalibration.threshold"] == 0.7
    assert all(isinstance(v, (bool, int, float, str)) for v in flat.values())
    assert PipelineConfig.from_flat(flat) == cfg
    with pytest.raises(ValueError, match="refine.clusters"):
        PipelineConfig.from_flat({"refine.clusters": 3})
    with pytest.raises(ValueError, match="align.min_depth"):
        PipelineConfig.from_flat({"align.min_depth": "near"})

    (tmp_path / "plain.yaml").write_text("refine:\n  n_clusters: 5\nrecalibration:\n  threshold: 0.7\n")
    assert PipelineConfig.from_yaml(tmp_path / "plain.yaml") == cfg
    (tmp_path / "ros.yaml").write_text('/**:\n  ros__parameters:\n    image_topic: /cam\n    refine:\n      n_clusters: 5\n'
                                       '    recalibration.threshold: 0.7\n')
    assert PipelineConfig.from_yaml(tmp_path / "ros.yaml") == cfg


def test_device_auto_resolves_to_cuda_when_available_else_cpu():
    import torch

    from racalnet_ros.pipeline import resolve_device

    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(ValueError, match="device"):
        resolve_device("gpu0")
    with pytest.raises(ValueError, match="device"):
        PipelineConfig.from_flat({"device": "tpu"})
    cfg = PipelineConfig.from_flat({"device": "auto", "recalibration.enabled": False})
    pipe = Pipeline.from_config(cfg)
    assert pipe.config.device == resolve_device("auto") and cfg.device == "auto"
    frame, gt = scene_frame(outlier_frac=0.0)
    assert rel_err(pipe.run(frame).depth, gt) < 0.02


def test_ros_parameter_file_of_the_node_loads():
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "config" / "racalnet.yaml"
    cfg = PipelineConfig.from_yaml(path)
    assert cfg.device == "auto" and cfg.prior.source == "depth-anything-v2"


def test_run_is_prepare_then_optimize_and_interleaving_the_stages_across_frames_changes_nothing():
    """What the node's two-stage overlap relies on: stage 1 (recalibration network, prior) depends only on its frame,
    so preparing frame t+1 before frame t is optimized gives the same depths as one run per frame, including a frame
    without radar that reuses the previous frame's fit (align.use_previous_fit, state kept by stage 2)."""
    frames = []
    for seed in (0, 1, 2):  # with Doppler and power: what the shipped recalibration network reads
        f = scene_frame(seed=seed)[0]
        extra = np.random.default_rng(seed).normal(0, 1, (f.num_radar, 2)).astype(np.float32)
        frames.append(Frame(f.image, f.camera, np.concatenate([f.radar, extra], 1), f.T_cam_radar, prior=f.prior,
                            radar_fields=("x", "y", "z", "doppler", "power"), frame_id=f.frame_id))
    frames[1].radar = np.zeros((0, 5), np.float32)
    cfg = PipelineConfig.from_flat({"prior.source": "frame", "align.use_previous_fit": True})
    serial = [Pipeline.from_config(cfg)]
    expected = [serial[0].run(f) for f in frames]
    assert "no_anchors" in expected[1].diagnostics["fallbacks"] and np.isfinite(expected[1].depth).all()

    pipe = Pipeline.from_config(cfg)
    p0, p1 = pipe.prepare(frames[0]), pipe.prepare(frames[1])
    r0 = pipe.optimize(p0)
    p2 = pipe.prepare(frames[2])
    got = [r0, pipe.optimize(p1), pipe.optimize(p2)]
    for e, g in zip(expected, got):
        np.testing.assert_array_equal(g.depth, e.depth)
        np.testing.assert_array_equal(g.anchors.uv, e.anchors.uv)
        same = lambda d: repr({k: v for k, v in d.items() if k != "times_ms"})  # noqa: E731 (repr: NaN == NaN)
        assert same(g.diagnostics) == same(e.diagnostics)
        assert set(g.diagnostics["times_ms"]) == {"recalibrate", "prior", "align", "refine", "smooth", "total"}
    t = got[0].diagnostics["times_ms"]
    assert t["total"] >= t["recalibrate"] + t["prior"] + t["align"] + t["refine"] + t["smooth"] - 1e-6


class SoftScreen:
    """A recalibration stand-in that is unsure: outliers get confidence 0.05, good points 0.6 (below a 0.7
    threshold, so a hard threshold keeps nothing)."""

    def recalibrate(self, frame):
        a = raw_anchors(frame)
        a.confidence = np.where(frame.extras["is_outlier"][a.index], 0.05, 0.6).astype(np.float32)
        a.kept = a.confidence >= 0.7
        return a


def test_confidence_weighting_fits_every_evaluated_anchor_by_its_confidence():
    frame, gt = scene_frame(outlier_frac=0.3)
    cfg = PipelineConfig.from_flat({"align.anchor_weights": "confidence"})
    soft = Pipeline(SoftScreen(), FramePrior(), Aligner(cfg.align, cfg.refine, cfg.smooth), cfg).run(frame)
    hcfg = PipelineConfig.from_flat({"align.anchor_weights": "threshold"})
    hard = Pipeline(SoftScreen(), FramePrior(), Aligner(hcfg.align, hcfg.refine, hcfg.smooth), hcfg).run(frame)
    # the hard threshold keeps no anchor: no fit; the weighted fit uses all of them and the outliers barely count
    assert hard.diagnostics["anchors_kept"] == 0 and "no_anchors" in " ".join(hard.diagnostics["fallbacks"])
    assert soft.diagnostics["anchors_used"] > 0 and rel_err(soft.depth, gt) < 0.05


def test_fit_inputs_leave_out_points_the_network_did_not_evaluate():
    frame, _ = scene_frame(n=4, outlier_frac=0.0)
    a = raw_anchors(frame)
    a.confidence = np.array([0.9, 0.2, np.nan, 0.0], np.float32)[: len(a)]
    a.kept = a.confidence >= 0.5
    uv, d, w = a.fit_inputs("confidence")
    assert len(d) == int(np.sum(np.isfinite(a.confidence) & (a.confidence > 0))) and np.all(w > 0)
    uv, d, w = a.fit_inputs("threshold")
    assert w is None and len(d) == int(a.kept.sum())
    with pytest.raises(Exception, match="align.anchor_weights"):
        PipelineConfig.from_flat({"align.anchor_weights": "soft"}).validate()
