"""The out-of-distribution guard (recalibration/trust.py, recalibration.trust_margin): a frame whose image features
are far from the checkpoint's training statistics keeps more points, up to every raw projection; a frame like the
training frames keeps the checkpoint's screening."""

import math

import numpy as np
import pytest
import torch

from racalnet_ros.config import ConfigError, PipelineConfig
from racalnet_ros.frame import Frame
from racalnet_ros.pipeline import Pipeline
from racalnet_ros.recalibration import Recalibrator
from racalnet_ros.recalibration.checkpoint import save_checkpoint
from racalnet_ros.recalibration.config import ModelConfig
from racalnet_ros.recalibration.data import prepare_sample
from racalnet_ros.recalibration.model import RecalibrationNet
from racalnet_ros.recalibration.trust import fit_feature_statistics, trust_of
from racalnet_ros.recalibration.toy import toy_frame

CFG = ModelConfig.preset("tiny")


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    """A tiny network with trust statistics fitted on toy frames (seeds 0-19 train, 20-29 validation), as export
    stores them, and a threshold that drops part of the points."""
    torch.manual_seed(3)
    model = RecalibrationNet(CFG).eval()
    samples = [prepare_sample(toy_frame(s), CFG, None) for s in range(30)]
    stats = fit_feature_statistics(model, samples[:20], samples[20:])
    conf = Recalibrator(model, CFG).predict(toy_frame(40))[1]
    threshold = float(np.quantile(conf, 0.7))  # keeps ~30% of a frame like the training ones
    path = tmp_path_factory.mktemp("trust") / "tiny"
    save_checkpoint(path, model, CFG, threshold=threshold, extra={"trust": stats})
    return path, stats, threshold


def unlike_training(seed: int = 41) -> Frame:
    """A toy frame whose photograph is nothing like the training images (saturated colour noise)."""
    f = toy_frame(seed)
    rng = np.random.default_rng(seed)
    img = (rng.random(f.image.shape) > 0.5).astype(np.uint8) * 255
    img[..., 1] = 255 - img[..., 0]
    return Frame(img, f.camera, f.radar, f.T_cam_radar, radar_fields=f.radar_fields, lidar=f.lidar,
                 T_cam_lidar=f.T_cam_lidar, frame_id="unlike")


def test_trust_is_one_within_the_reference_distance_and_falls_linearly_to_zero():
    assert trust_of(0.5, 1.0, 1.0) == 1.0 and trust_of(1.0, 1.0, 1.0) == 1.0
    assert trust_of(1.5, 1.0, 1.0) == pytest.approx(0.5)
    assert trust_of(2.0, 1.0, 1.0) == 0.0 and trust_of(9.0, 1.0, 1.0) == 0.0
    assert trust_of(9.0, 1.0, 0.0) == 1.0  # margin 0: the guard is off
    assert trust_of(math.nan, 1.0, 1.0) == 1.0


def test_the_reference_distance_is_the_95th_percentile_of_the_validation_frames(guarded):
    _, stats, _ = guarded
    assert stats["n_train"] == 20 and stats["n_val"] == 10 and stats["quantile"] == 0.95
    assert len(stats["mean"]) == len(stats["std"]) == 2 * CFG.fpn_channels
    assert stats["d_ref"] >= stats["d_val_median"] > 0


def test_a_frame_like_the_validation_frames_keeps_the_checkpoints_screening(guarded):
    path, _, threshold = guarded
    rec = Recalibrator.from_checkpoint(path, trust_margin=1.0)
    a = rec.recalibrate(toy_frame(25))  # a validation frame: at most d_ref by construction for 95% of them
    trust, ratio = rec.last_trust
    assert ratio <= 1.0 and trust == 1.0
    np.testing.assert_array_equal(a.kept, a.confidence >= threshold)


def test_a_frame_whose_features_are_far_from_the_training_statistics_keeps_at_least_90_percent_of_points(guarded):
    path, _, _ = guarded
    frame = unlike_training()
    guarded_rec = Recalibrator.from_checkpoint(path, trust_margin=1.0)
    plain = Recalibrator.from_checkpoint(path, trust_margin=0.0).recalibrate(frame)
    a = guarded_rec.recalibrate(frame)
    trust, ratio = guarded_rec.last_trust
    assert ratio > 2.0 and trust == 0.0
    assert a.kept.mean() >= 0.9 and a.kept.sum() > plain.kept.sum()
    np.testing.assert_array_equal(a.uv, a.uv_raw)  # no displacement either: the raw projections
    finite = np.isfinite(a.confidence)            # and equal weights under align.anchor_weights: confidence
    assert finite.any() and np.all(a.confidence[finite] == 1.0)


def test_partial_trust_relaxes_the_threshold_in_proportion(guarded):
    path, stats, threshold = guarded
    frame = unlike_training()
    ratio = Recalibrator.from_checkpoint(path, trust_margin=1.0)
    ratio.recalibrate(frame)
    r = ratio.last_trust[1]
    rec = Recalibrator.from_checkpoint(path, trust_margin=2.0 * (r - 1.0))  # trust 0.5 for this frame
    a = rec.recalibrate(frame)
    assert rec.last_trust[0] == pytest.approx(0.5)
    net = Recalibrator.from_checkpoint(path, trust_margin=0.0).recalibrate(frame).confidence   # the network's own
    np.testing.assert_array_equal(a.kept, net >= 0.5 * threshold)
    np.testing.assert_allclose(a.confidence, 1.0 - 0.5 * (1.0 - net), rtol=1e-6)   # weights halfway to equal


def test_the_pipeline_reports_trust_and_flags_a_distrusted_frame(guarded):
    path, _, _ = guarded
    cfg = PipelineConfig.load([], {"recalibration.checkpoint": str(path), "prior.source": "frame"})
    pipe = Pipeline.from_config(cfg)
    frame = unlike_training()
    prior = np.ones((frame.height, frame.width), np.float32)
    d = pipe.run(frame, prior=prior).diagnostics
    assert d["recalibration_trust"] == 0.0 and d["feature_distance"] > 2.0
    assert "recalibration_distrusted" in d["fallbacks"]
    d = pipe.run(toy_frame(25), prior=prior).diagnostics
    assert d["recalibration_trust"] == 1.0 and "recalibration_distrusted" not in d["fallbacks"]


def test_a_checkpoint_without_statistics_is_always_trusted(tmp_path):
    model = RecalibrationNet(CFG)
    save_checkpoint(tmp_path / "plain", model, CFG)
    rec = Recalibrator.from_checkpoint(tmp_path / "plain", trust_margin=1.0)
    rec.recalibrate(unlike_training())
    assert rec.last_trust[0] == 1.0 and math.isnan(rec.last_trust[1])


def test_trust_margin_is_a_checked_setting():
    assert PipelineConfig().recalibration.trust_margin == 1.0
    with pytest.raises(ConfigError, match="trust_margin"):
        PipelineConfig.load([], {"recalibration.trust_margin": -1})
