"""Checkpoints (safetensors + JSON) and the Recalibrator API (contract: recalibrate(frame) -> RadarAnchors)."""

import json

import numpy as np
import pytest
import torch

from racalnet_ros.frame import Frame, FrameError
from racalnet_ros.recalibration import Recalibrator, default_checkpoint
from racalnet_ros.recalibration.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from racalnet_ros.recalibration.config import ModelConfig
from racalnet_ros.recalibration.model import RecalibrationNet
from racalnet_ros.recalibration.toy import toy_frame

CFG = ModelConfig.preset("tiny")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(1)
    model = RecalibrationNet(CFG)
    path = tmp_path_factory.mktemp("ckpt") / "tiny"
    save_checkpoint(path, model, CFG, threshold=0.5)
    return path, model.eval()


def test_save_then_load_gives_identical_outputs(ckpt):
    path, model = ckpt
    loaded, cfg, meta = load_checkpoint(path.with_suffix(".safetensors"))
    assert cfg == CFG and meta["threshold"] == 0.5
    frame = toy_frame(3)
    a = Recalibrator(model, CFG).predict(frame)
    b = Recalibrator(loaded, cfg).predict(frame)
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(a[2], b[2])


def test_fp16_storage_round_trips_within_half_precision(tmp_path, ckpt):
    _, model = ckpt
    save_checkpoint(tmp_path / "half", model, CFG, fp16=True)
    loaded, _, meta = load_checkpoint(tmp_path / "half")
    assert meta["dtype"] == "float16"
    for (k, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        torch.testing.assert_close(a.float(), b.float(), atol=2e-3, rtol=2e-3)


def test_a_checkpoint_whose_shapes_do_not_match_its_config_fails_naming_the_tensor(tmp_path, ckpt):
    _, model = ckpt
    save_checkpoint(tmp_path / "bad", model, CFG)
    meta = json.loads((tmp_path / "bad.json").read_text())
    meta["model"]["attn_dim"] = 64  # config now describes a wider network than the stored tensors
    meta["model"]["attn_heads"] = 2
    (tmp_path / "bad.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"shape mismatch .*token_proj"):
        load_checkpoint(tmp_path / "bad")


def test_a_config_key_this_code_does_not_know_fails_naming_the_key(tmp_path, ckpt):
    _, model = ckpt
    save_checkpoint(tmp_path / "odd", model, CFG)
    meta = json.loads((tmp_path / "odd.json").read_text())
    meta["model"]["transformer_depth"] = 12
    (tmp_path / "odd.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="transformer_depth"):
        load_checkpoint(tmp_path / "odd")


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(CheckpointError, match="nothing.json"):
        load_checkpoint(tmp_path / "nothing.safetensors")


def test_recalibrate_returns_one_anchor_per_in_image_point(ckpt):
    path, _ = ckpt
    rec = Recalibrator.from_checkpoint(path, threshold=0.5)
    frame = toy_frame(4, n_radar=40)
    a = rec.recalibrate(frame)
    assert len(a) == 40 and a.uv.shape == (40, 2) and a.index.dtype == np.int64
    np.testing.assert_allclose(a.uv, a.uv_raw + a.displacement, atol=1e-5)
    assert np.array_equal(a.kept, a.confidence >= 0.5)
    assert np.all((a.confidence >= 0) & (a.confidence <= 1))


def test_ablation_switches(ckpt):
    path, _ = ckpt
    frame = toy_frame(5, n_radar=40)
    full = Recalibrator.from_checkpoint(path, threshold=0.99).recalibrate(frame)
    no_screen = Recalibrator.from_checkpoint(path, threshold=0.99, use_screening=False).recalibrate(frame)
    no_disp = Recalibrator.from_checkpoint(path, use_displacement=False).recalibrate(frame)
    assert no_screen.kept.all() and np.array_equal(no_screen.confidence, full.confidence)
    assert np.all(no_disp.displacement == 0) and np.array_equal(no_disp.uv, no_disp.uv_raw)


def test_no_radar_point_in_the_image_gives_empty_anchors(ckpt):
    path, _ = ckpt
    f = toy_frame(6, n_radar=10)
    behind = f.radar.copy()
    behind[:, 2] = -5.0  # every point behind the camera
    frame = Frame(f.image, f.camera, behind, f.T_cam_radar, f.radar_fields)
    a = Recalibrator.from_checkpoint(path).recalibrate(frame)
    assert len(a) == 0 and a.uv.shape == (0, 2)
    none = Frame(f.image, f.camera, np.zeros((0, 5), np.float32), f.T_cam_radar, f.radar_fields)
    assert len(Recalibrator.from_checkpoint(path).recalibrate(none)) == 0


def test_nan_in_the_radar_is_rejected_before_the_network(ckpt):
    path, _ = ckpt
    frame = toy_frame(7, n_radar=10)
    frame.radar[2, 4] = np.nan  # bypasses Frame's constructor check
    rec = Recalibrator.from_checkpoint(path)
    called = []
    rec.model.register_forward_pre_hook(lambda m, i: called.append(1))
    with pytest.raises(FrameError, match="radar"):
        rec.recalibrate(frame)
    assert not called


def test_a_model_using_doppler_names_it_when_the_frame_lacks_it(ckpt):
    path, _ = ckpt
    frame = toy_frame(8, n_radar=10, fields=("x", "y", "z"))
    with pytest.raises(FrameError, match="doppler"):
        Recalibrator.from_checkpoint(path).recalibrate(frame)


def test_the_shipped_checkpoint_loads_and_is_small():
    st = default_checkpoint()
    if not st.exists():
        pytest.skip(f"{st} not shipped in this tree")
    assert st.stat().st_size < 5 * 1024 * 1024
    rec = Recalibrator.from_checkpoint(st)
    assert len(rec.recalibrate(toy_frame(9, width=640, height=480, n_radar=50))) == 50
