"""Monocular priors behind one interface: Depth Anything V2 through transformers (a tiny randomly initialised model
of the same architecture runs the real code path), precomputed folders, and frame.prior."""

import numpy as np
import pytest

from racalnet_ros.frame import CameraModel, Frame, FrameError
from racalnet_ros.metric_depth.priors import (DepthAnythingV2Prior, FramePrior, PrecomputedPrior, make_prior)


def tiny_frame(h=42, w=60, prior=None, frame_id="000007"):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    cam = CameraModel(np.array([[50.0, 0, w / 2], [0, 50.0, h / 2], [0, 0, 1]]), w, h)
    return Frame(img, cam, np.zeros((0, 3), np.float32), np.eye(4), prior=prior, frame_id=frame_id)


def save_tiny_depth_anything(folder):
    """A randomly initialised Depth Anything (DINOv2 backbone + DPT head) with the V2 preprocessing, saved like a
    Hugging Face checkpoint folder."""
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config, DPTImageProcessor

    backbone = Dinov2Config(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, mlp_ratio=2, image_size=56,
                            patch_size=14, out_indices=[1, 2, 3, 4], reshape_hidden_states=False)
    cfg = DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=32, neck_hidden_sizes=[8, 16, 16, 32],
                              fusion_hidden_size=16, head_hidden_size=8)
    DepthAnythingForDepthEstimation(cfg).save_pretrained(folder)
    DPTImageProcessor(do_resize=True, size={"height": 56, "width": 56}, keep_aspect_ratio=True, ensure_multiple_of=14,
                      resample=3, image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225]
                      ).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_da(tmp_path_factory):
    return save_tiny_depth_anything(tmp_path_factory.mktemp("tiny_da"))


def test_depth_anything_prior_returns_frozen_inverse_depth_at_image_resolution(tiny_da):
    prior = make_prior(f"depth-anything-v2:{tiny_da}")
    assert isinstance(prior, DepthAnythingV2Prior)
    assert not prior.net.training and not any(p.requires_grad for p in prior.net.parameters())
    out = prior.predict(tiny_frame(42, 60))
    assert out.shape == (42, 60) and out.dtype == np.float32 and np.isfinite(out).all()
    assert out.shape == prior.predict(tiny_frame(42, 60)).shape
    other = prior.predict(tiny_frame(31, 77))  # any resolution
    assert other.shape == (31, 77)


def test_depth_anything_fp16_request_is_ignored_on_cpu(tiny_da):
    prior = DepthAnythingV2Prior(str(tiny_da), device="cpu", fp16=True)
    assert not prior.fp16 and next(prior.net.parameters()).dtype.is_floating_point
    assert str(next(prior.net.parameters()).dtype) == "torch.float32"


def test_missing_depth_anything_model_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing_here"):
        DepthAnythingV2Prior(str(tmp_path / "nothing_here"))


def test_precomputed_prior_is_resized_bilinearly(tmp_path):
    small = np.array([[0.0, 1.0], [2.0, 3.0]], np.float32)
    np.save(tmp_path / "000007.npy", small)
    out = PrecomputedPrior(tmp_path).predict(tiny_frame(20, 30))
    assert out.shape == (20, 30) and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 3.0 and out[0, 0] == pytest.approx(0.0) and out[-1, -1] == pytest.approx(3.0)
    with pytest.raises((FileNotFoundError, ValueError), match="000008"):
        PrecomputedPrior(tmp_path).predict(tiny_frame(20, 30, frame_id="000008"))


def test_frame_prior_and_spec_parsing():
    p = np.random.default_rng(1).random((42, 60)).astype(np.float32)
    assert np.array_equal(make_prior("synthetic").predict(tiny_frame(prior=p)), p)
    assert isinstance(make_prior("frame"), FramePrior)
    with pytest.raises(FrameError, match="prior"):
        FramePrior().predict(tiny_frame())
    with pytest.raises(ValueError, match="unknown source"):
        make_prior("midas")
    with pytest.raises(ValueError, match="folder"):
        make_prior("precomputed")
