"""Windowed self-attention (Eq. 1 over image-plane neighbourhoods): equals dense attention when the window holds
every point, ignores points outside a point's window, keeps padding and batching, and never allocates N^2."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import torch

from racalnet_ros.recalibration import Recalibrator
from racalnet_ros.recalibration.checkpoint import load_checkpoint, save_checkpoint
from racalnet_ros.recalibration.config import ModelConfig
from racalnet_ros.recalibration.model import RecalibrationNet
from racalnet_ros.recalibration.toy import toy_frame
from racalnet_ros.recalibration.window_attention import morton_order, windowed_self_attention


def _mha(dim=32, heads=2, seed=0):
    torch.manual_seed(seed)
    return torch.nn.MultiheadAttention(dim, heads, batch_first=True).eval()


def test_a_window_holding_every_point_equals_dense_attention_with_padding():
    mha = _mha()
    torch.manual_seed(1)
    x, uv = torch.randn(3, 50, 32), torch.rand(3, 50, 2) * 100
    valid = torch.ones(3, 50, dtype=torch.bool)
    valid[1, 30:] = False  # a shorter frame padded to the batch
    with torch.no_grad():
        win = windowed_self_attention(mha, x, valid, morton_order(uv, valid), window=50)
        dense = mha(x, x, x, key_padding_mask=~valid, need_weights=False)[0]
    torch.testing.assert_close(win[valid], dense[valid], atol=1e-5, rtol=1e-5)


def test_a_frame_without_points_and_padded_slots_stay_finite():
    mha = _mha()
    x, uv = torch.randn(2, 40, 32), torch.rand(2, 40, 2) * 100
    valid = torch.zeros(2, 40, dtype=torch.bool)
    valid[0, :7] = True
    with torch.no_grad():
        out = windowed_self_attention(mha, x, valid, morton_order(uv, valid), window=4)
    assert torch.isfinite(out).all()


def test_a_points_output_ignores_points_outside_its_window_and_uses_those_inside():
    mha = _mha()
    torch.manual_seed(2)
    n, w = 64, 8
    x, uv = torch.randn(1, n, 32), torch.rand(1, n, 2) * 200
    valid = torch.ones(1, n, dtype=torch.bool)
    order = morton_order(uv, valid)
    rank = torch.empty(n, dtype=torch.long)
    rank[order[0]] = torch.arange(n)
    block = rank // w
    target = int(order[0, 4 * w + 3])  # a point in block 4: its window is blocks 3, 4, 5
    inside = (block - 4).abs() <= 1
    with torch.no_grad():
        ref = windowed_self_attention(mha, x, valid, order, w)[0, target]
        far = x.clone()
        far[0, ~inside] += torch.randn(int((~inside).sum()), 32) * 5  # change every point outside the window
        same = windowed_self_attention(mha, far, valid, order, w)[0, target]
        near = x.clone()
        near[0, int(order[0, 5 * w + 1])] += 5.0  # change one point of the next block
        moved = windowed_self_attention(mha, near, valid, order, w)[0, target]
    torch.testing.assert_close(same, ref, atol=1e-6, rtol=0)
    assert (moved - ref).abs().max() > 1e-4


def test_z_order_keeps_image_neighbours_together_and_padding_last():
    # a 16 x 16 grid of pixels: each 4 x 4 quadrant of 16 points is one block of the Morton order
    v, u = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    uv = torch.stack([u.ravel(), v.ravel()], -1)[torch.randperm(256)][None]
    valid = torch.ones(1, 256, dtype=torch.bool)
    order = morton_order(uv, valid)[0]
    blocks = uv[0, order].view(16, 16, 2)
    span = blocks.amax(1) - blocks.amin(1)
    assert (span <= 3).all()
    valid[0, ::3] = False
    order = morton_order(uv, valid)[0]
    assert valid[0, order[: int(valid.sum())]].all() and not valid[0, order[int(valid.sum()):]].any()


def test_identical_pixels_are_ordered_by_index():
    uv = torch.full((1, 100, 2), 7.0)
    order = morton_order(uv, torch.ones(1, 100, dtype=torch.bool))
    assert order[0].tolist() == list(range(100))


def test_the_network_with_a_window_ignores_far_points_and_trains():
    cfg = ModelConfig.preset("tiny")
    cfg.attn_window = 8
    torch.manual_seed(3)
    net = RecalibrationNet(cfg)
    n = 96
    image = torch.rand(1, 3, 96, 128)
    feats = torch.randn(1, n, 9)
    uv = torch.stack([torch.rand(n) * 127, torch.rand(n) * 95], -1)[None]
    valid = torch.ones(1, n, dtype=torch.bool)
    order = morton_order(uv, valid)[0]
    rank = torch.empty(n, dtype=torch.long)
    rank[order] = torch.arange(n)
    target = int(order[0])  # block 0: its window is blocks 0 and 1
    far = rank >= 2 * 8
    net.eval()
    with torch.no_grad():
        c0, d0 = net(image, feats, uv, valid)
        f2 = feats.clone()
        f2[0, far] = torch.randn(int(far.sum()), 9)
        c1, d1 = net(image, f2, uv, valid)
    assert c0[0, target] == c1[0, target] and torch.equal(d0[0, target], d1[0, target])
    assert (c0[0, far] != c1[0, far]).any()
    net.train()
    conf, disp = net(image, feats, uv, valid)
    (conf.sum() + disp.sum()).backward()
    assert net.fusion.layers[0].self_attn.in_proj_weight.grad.abs().sum() > 0


def test_an_old_checkpoint_json_without_the_key_loads_with_dense_attention(tmp_path):
    cfg = ModelConfig.preset("tiny")
    torch.manual_seed(4)
    model = RecalibrationNet(ModelConfig.from_dict({**cfg.to_dict(), "attn_window": 0})).eval()
    save_checkpoint(tmp_path / "old", model, model.cfg)
    meta = json.loads((tmp_path / "old.json").read_text())
    del meta["model"]["attn_window"]  # as written before windows existed
    (tmp_path / "old.json").write_text(json.dumps(meta))
    loaded, loaded_cfg, _ = load_checkpoint(tmp_path / "old")
    assert loaded_cfg.attn_window == 0
    frame = toy_frame(5, n_radar=200)
    a = Recalibrator(model, model.cfg).predict(frame)
    b = Recalibrator(loaded, loaded_cfg).predict(frame)
    np.testing.assert_array_equal(a[1], b[1])


def test_fifty_thousand_points_run_without_a_quadratic_allocation():
    """Dense attention over 50,000 points would need 10 GB per head for its weights alone; the windowed network
    runs them in a child process whose peak resident memory grows by less than 1 GB over what it holds before."""
    code = textwrap.dedent("""
        import resource, torch
        from racalnet_ros.recalibration.config import ModelConfig
        from racalnet_ros.recalibration.model import RecalibrationNet
        torch.manual_seed(0)
        net = RecalibrationNet(ModelConfig.preset("tiny")).eval()
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
        n = 50_000
        uv = torch.stack([torch.rand(n) * 127, torch.rand(n) * 95], -1)[None]
        uv[0, : n // 2] = 40.0  # half the cloud on one pixel: degenerate, duplicated points
        with torch.inference_mode():
            conf, disp = net(torch.rand(1, 3, 96, 128), torch.randn(1, n, 9), uv, torch.ones(1, n, dtype=torch.bool))
        assert torch.isfinite(conf).all() and torch.isfinite(disp).all() and conf.shape == (1, n)
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    before, after = (int(v) for v in out.stdout.split()[-2:])  # MiB
    assert after - before < 1024


def test_running_the_blocks_in_chunks_does_not_change_the_result():
    mha = _mha()
    torch.manual_seed(6)
    x, uv = torch.randn(2, 90, 32), torch.rand(2, 90, 2) * 100
    valid = torch.ones(2, 90, dtype=torch.bool)
    valid[1, 61:] = False
    order = morton_order(uv, valid)
    with torch.no_grad():
        whole = windowed_self_attention(mha, x, valid, order, window=8)
        chunked = windowed_self_attention(mha, x, valid, order, window=8, chunk_blocks=3)  # 1 block per frame per chunk
    torch.testing.assert_close(chunked, whole, atol=1e-6, rtol=0)


def test_the_shipped_checkpoint_uses_the_windowed_attention_it_was_trained_with():
    """Linear in points: the shipped network attends within image-plane windows, like the small preset."""
    from racalnet_ros.recalibration import default_checkpoint
    meta = json.loads(default_checkpoint().with_suffix(".json").read_text())
    _, cfg, _ = load_checkpoint(default_checkpoint())
    assert cfg.attn_window == meta["model"]["attn_window"] == ModelConfig.preset("small").attn_window > 0
