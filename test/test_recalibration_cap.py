"""The network's cap on radar points per frame: a deterministic, coverage-first subset goes through the network, the
rest are not evaluated and never become anchors, and the pipeline flags the frame ("radar_subsampled", a WARN on
/diagnostics). Huge, duplicated and degenerate clouds give an output."""

import numpy as np
import pytest
import torch

from racalnet_ros.frame import CameraModel, Frame
from racalnet_ros.metric_depth.aligner import Aligner
from racalnet_ros.metric_depth.priors import FramePrior
from racalnet_ros.pipeline import Pipeline, PipelineConfig
from racalnet_ros.recalibration import Recalibrator
from racalnet_ros.recalibration.config import ModelConfig
from racalnet_ros.recalibration.model import RecalibrationNet
from racalnet_ros.recalibration.subsample import grid_subsample

W, H = 160, 120


def test_the_subset_has_exactly_the_cap_and_is_the_same_every_time():
    uv = np.random.default_rng(0).uniform(0, [W, H], (5000, 2))
    a, b = grid_subsample(uv, 700), grid_subsample(uv, 700)
    assert len(a) == 700 and len(np.unique(a)) == 700 and np.array_equal(a, b)
    assert np.array_equal(grid_subsample(uv[:600], 700), np.arange(600))  # under the cap: every point


def test_duplicates_are_thinned_first_and_isolated_points_survive():
    rng = np.random.default_rng(1)
    distinct = rng.uniform(0, [W, H], (40, 2))
    copies = np.repeat(distinct, 500, axis=0)                        # 40 pixels, 500 identical points each
    keep = grid_subsample(copies, 100)
    assert len(np.unique(copies[keep], axis=0)) == 40
    cluster = rng.normal([30, 30], 1.0, (20000, 2))                   # a dense blob ...
    lone = np.array([[150.0, 10.0], [5.0, 110.0], [120.0, 100.0]])   # ... and three isolated points
    keep = grid_subsample(np.concatenate([cluster, lone]), 50)
    assert {20000, 20001, 20002} <= set(keep.tolist())


def _frame(uv, depth=10.0):
    K = np.array([[100.0, 0, W / 2], [0, 100.0, H / 2], [0, 0, 1]])
    z = np.full(len(uv), depth)
    pts = np.stack([(uv[:, 0] - K[0, 2]) / 100.0 * z, (uv[:, 1] - K[1, 2]) / 100.0 * z, z,
                    np.zeros(len(uv)), np.linspace(40, 60, len(uv))], 1).astype(np.float32)
    img = np.random.default_rng(0).integers(0, 255, (H, W, 3), dtype=np.uint8)
    prior = np.full((H, W), 0.5, np.float32) + np.linspace(0, 0.1, W, dtype=np.float32)[None]
    return Frame(img, CameraModel(K, W, H), pts, np.eye(4), radar_fields=("x", "y", "z", "doppler", "power"),
                 prior=prior, frame_id="000001")


@pytest.fixture(scope="module")
def recalibrator():
    torch.manual_seed(0)
    cfg = ModelConfig.preset("tiny")
    return Recalibrator(RecalibrationNet(cfg), cfg, threshold=0.0, max_points=300)


def test_points_over_the_cap_are_not_evaluated_and_never_kept(recalibrator):
    seen = []
    h = recalibrator.model.radar_encoder.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[1]))
    try:
        frame = _frame(np.random.default_rng(2).uniform(0, [W - 1, H - 1], (2000, 2)))
        anchors = recalibrator.recalibrate(frame)
        recalibrator.use_screening = False
        unscreened = recalibrator.recalibrate(frame)
    finally:
        recalibrator.use_screening = True
        h.remove()
    assert seen == [300, 300] and len(anchors) == 2000
    assert np.isfinite(anchors.confidence).sum() == 300
    assert anchors.num_kept == 300 and unscreened.num_kept == 300  # threshold 0 / screening off: only evaluated ones
    assert not anchors.kept[np.isnan(anchors.confidence)].any()


@pytest.mark.parametrize("cloud", ["huge", "one pixel", "duplicated"])
def test_huge_duplicated_and_degenerate_clouds_give_depth_and_a_warning(recalibrator, cloud):
    rng = np.random.default_rng(3)
    n = 200_000
    if cloud == "huge":
        uv = rng.uniform(0, [W - 1, H - 1], (n, 2))
    elif cloud == "one pixel":
        uv = np.full((n, 2), [40.3, 60.7])
    else:
        uv = np.repeat(rng.uniform(0, [W - 1, H - 1], (50, 2)), n // 50, axis=0)
    res = Pipeline(recalibrator, FramePrior(), Aligner(), PipelineConfig()).run(_frame(uv))
    d = res.diagnostics
    assert d["anchors_total"] == n and d["anchors_subsampled"] == n - 300
    assert "radar_subsampled" in d["fallbacks"]
    assert res.depth.shape == (H, W) and np.isfinite(res.depth).any()


def test_under_the_cap_nothing_is_flagged(recalibrator):
    res = Pipeline(recalibrator, FramePrior(), Aligner()).run(_frame(np.random.default_rng(4).uniform(0, 100, (250, 2))))
    assert res.diagnostics["anchors_subsampled"] == 0 and "radar_subsampled" not in res.diagnostics["fallbacks"]


def test_the_cap_is_a_pipeline_setting_and_rejects_negative_values():
    assert PipelineConfig().recalibration.max_points > 0
    cfg = PipelineConfig.from_flat({"recalibration.max_points": 0})
    assert cfg.recalibration.max_points == 0
    with pytest.raises(ValueError, match="recalibration.max_points"):
        PipelineConfig.from_flat({"recalibration.max_points": -5})
