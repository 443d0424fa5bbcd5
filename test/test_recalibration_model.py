"""RecalibrationNet: shapes and padding masks with variable point counts, one image encoding per frame, features."""

import numpy as np
import pytest
import torch

from racalnet_ros.frame import FrameError
from racalnet_ros.recalibration.config import ModelConfig, TrainConfig
from racalnet_ros.recalibration.data import collate_samples, prepare_sample, sample_tensors
from racalnet_ros.recalibration.config import LabelConfig
from racalnet_ros.recalibration.features import feature_dim, radar_point_features
from racalnet_ros.recalibration.model import RecalibrationNet
from racalnet_ros.recalibration.toy import toy_frame

CFG = ModelConfig.preset("tiny")
LAB = LabelConfig(conf_window=(5, 5), n_min=2, search_window=(15, 15), slide_window=(5, 5))


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return RecalibrationNet(CFG).eval()


def batch_of(counts, seed=0):
    frames = [toy_frame(seed + i, n_radar=n, outlier_frac=0.3) for i, n in enumerate(counts)]
    items = [sample_tensors(prepare_sample(f, CFG, LAB), CFG) for f in frames]
    return items, collate_samples(items)


def test_variable_point_counts_are_padded_with_a_mask(net):
    items, b = batch_of([5, 40, 17])
    n = max(it["feats"].shape[0] for it in items)
    assert b["feats"].shape == (3, n, feature_dim(CFG.features)) and b["valid"].shape == (3, n)
    assert b["valid"].sum(1).tolist() == [it["feats"].shape[0] for it in items]
    with torch.no_grad():
        conf, disp = net(b["image"], b["feats"], b["uv"], b["valid"])
    assert conf.shape == (3, n) and disp.shape == (3, n, 2)
    assert torch.isfinite(conf).all() and torch.isfinite(disp).all()
    assert (conf[~b["valid"]] == 0).all() and (disp[~b["valid"]] == 0).all()


def test_a_frames_outputs_do_not_depend_on_its_batch_mates_or_padding(net):
    items, b = batch_of([8, 50])
    with torch.no_grad():
        conf_b, disp_b = net(b["image"], b["feats"], b["uv"], b["valid"])
        alone = collate_samples([items[0]])
        conf_a, disp_a = net(alone["image"], alone["feats"], alone["uv"], alone["valid"])
    k = items[0]["feats"].shape[0]
    torch.testing.assert_close(conf_b[0, :k], conf_a[0, :k], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(disp_b[0, :k], disp_a[0, :k], atol=1e-5, rtol=1e-4)


def test_a_frame_without_points_in_a_batch_gives_finite_outputs(net):
    items, _ = batch_of([6])
    empty = {k: (v[:0] if k != "image" else v) for k, v in items[0].items()}
    b = collate_samples([items[0], empty])
    with torch.no_grad():
        conf, disp = net(b["image"], b["feats"], b["uv"], b["valid"])
    assert torch.isfinite(conf).all() and torch.isfinite(disp).all()
    assert b["valid"][1].sum() == 0


def test_the_image_is_encoded_once_per_frame_not_once_per_point(net):
    calls = []
    h = net.image_encoder.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    try:
        _, b = batch_of([30, 45])
        with torch.no_grad():
            net(b["image"], b["feats"], b["uv"], b["valid"])
    finally:
        h.remove()
    assert calls == [2]  # one call, batch of two images


def test_each_point_sees_its_own_patch(net):
    """Moving one point's pixel changes that point's output; the cross-attention reads its own region."""
    items, b = batch_of([10])
    with torch.no_grad():
        c0, _ = net(b["image"], b["feats"], b["uv"], b["valid"])
        uv = b["uv"].clone()
        uv[0, 3] += torch.tensor([20.0, 10.0])
        c1, _ = net(b["image"], b["feats"], uv, b["valid"])
    assert abs(float(c1[0, 3] - c0[0, 3])) > 1e-6


def test_horizontal_flip_mirrors_u_lateral_position_and_displacement_label():
    frame = toy_frame(1, n_radar=30)
    s = prepare_sample(frame, CFG, LAB)
    tc = TrainConfig(flip_prob=1.0, jitter=0.0, max_points=0)
    flipped = sample_tensors(s, CFG, tc, np.random.default_rng(0))
    plain = sample_tensors(s, CFG)
    W = flipped["image"].shape[2]
    torch.testing.assert_close(flipped["uv"][:, 0], W - 1 - plain["uv"][:, 0])
    torch.testing.assert_close(flipped["image"], plain["image"].flip(-1))
    torch.testing.assert_close(flipped["disp_label"][:, 0], -plain["disp_label"][:, 0])
    torch.testing.assert_close(flipped["feats"][:, 0], -plain["feats"][:, 0])  # camera x / max_range


def test_features_follow_the_configured_groups_and_name_a_missing_column():
    xyz = np.array([[1.0, 2.0, 10.0]], np.float32)
    uv = np.array([[0.0, 99.0]], np.float32)
    f = radar_point_features(xyz, uv, 100, 100, None, None, ("xyz", "uv"))
    assert f.shape == (1, 5) and f[0, 3] == -1 and f[0, 4] == 1
    with pytest.raises(FrameError, match="doppler"):
        radar_point_features(xyz, uv, 100, 100, None, None, ("xyz", "doppler"))


def test_presets_build_and_paper_sizes_are_the_papers():
    paper = ModelConfig.preset("paper")
    assert paper.backbone == "resnet34" and paper.radar_mlp == (32, 64, 128, 256, 512) and paper.cbam
    small = ModelConfig.preset("small")
    assert small.num_stages < paper.num_stages and small.attn_dim < paper.attn_dim


def test_cross_attention_equals_torch_multihead_attention_with_one_query_per_point():
    from racalnet_ros.recalibration.fusion import single_query_attention
    torch.manual_seed(5)
    mha = torch.nn.MultiheadAttention(32, 4, batch_first=True).eval()
    q, tokens = torch.randn(50, 32), torch.randn(50, 9, 32)
    with torch.no_grad():
        ref = mha(q[:, None], tokens, tokens, need_weights=False)[0][:, 0]
        torch.testing.assert_close(single_query_attention(mha, q, tokens), ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("backbone", ["resnet18", "regnet_x_400mf"])
def test_folding_batchnorm_keeps_the_encoder_output(backbone):
    import copy
    from racalnet_ros.recalibration.image_encoder import ImageEncoder, fuse_batchnorm_
    torch.manual_seed(6)
    enc = ImageEncoder(backbone, 2, 16).eval()
    for m in enc.modules():  # non-trivial statistics, as after training
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    fused = fuse_batchnorm_(copy.deepcopy(enc))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), enc(x), atol=1e-4, rtol=1e-4)
        assert fused(x).shape[-2:] == (16, 24)  # stride 4 for both backbones


def test_the_recalibrator_folds_its_own_copy_and_leaves_the_callers_network_trainable(net):
    from racalnet_ros.recalibration import Recalibrator
    rec = Recalibrator(net, CFG)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in rec.model.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
