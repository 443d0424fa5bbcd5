"""Anchor evaluation (issue 3, item 5): three rows (raw, screened, screened+displaced) of precision, recall, kept
share, depth error and, where the true pixel is known, pixel error; and the `racalnet evaluate-anchors` command."""

import json

import numpy as np
import pytest
import torch

from racalnet_ros.cli import main as racalnet
from racalnet_ros.recalibration.checkpoint import save_checkpoint
from racalnet_ros.recalibration.config import LabelConfig, ModelConfig
from racalnet_ros.recalibration.evaluate import ROWS, AnchorStats
from racalnet_ros.recalibration.features import project_radar
from racalnet_ros.geometry import lidar_depth_map
from racalnet_ros.recalibration.labels import confidence_labels
from racalnet_ros.recalibration.model import RecalibrationNet
from racalnet_ros.recalibration.toy import toy_frame

LAB = LabelConfig(conf_window=(5, 5), n_min=2, search_window=(15, 15), slide_window=(5, 5))


def _oracle_stats(frames, threshold=0.5):
    """An oracle recalibrator: confidence 1 for true surface points, 0 for ghosts; displacement to the true pixel."""
    stats = AnchorStats(LAB)
    for f in frames:
        pr = project_radar(f)
        uv_true = f.extras["radar_uv_true"][pr.index]
        conf = (~f.extras["radar_is_outlier"][pr.index]).astype(np.float32)
        disp = np.where(np.isfinite(uv_true), uv_true - pr.uv, 0.0).astype(np.float32)
        stats.add(f, pr.uv.astype(np.float32), pr.depth, conf, disp, threshold, uv_true)
    return stats.summary()


def test_raw_row_keeps_everything_and_its_precision_is_the_label_rule():
    frames = [toy_frame(s, n_radar=80, outlier_frac=0.4) for s in range(3)]
    raw = _oracle_stats(frames)["raw"]
    assert raw["kept_frac"] == 1.0 and raw["recall"] == 1.0 and raw["points"] == 240
    cons = judged = 0
    for f in frames:  # precision = consistent / judgeable, straight from Eq. 4-6
        pr = project_radar(f)
        lab, sup, _ = confidence_labels(pr.uv, pr.depth, lidar_depth_map(f), LAB)
        cons, judged = cons + int((lab[sup] > 0.5).sum()), judged + int(sup.sum())
    assert raw["precision"] == pytest.approx(cons / judged)


def test_an_oracle_screen_raises_precision_and_an_oracle_displacement_removes_the_pixel_error():
    s = _oracle_stats([toy_frame(s, n_radar=80, outlier_frac=0.4) for s in range(3)])
    raw, scr, dis = (s[r] for r in ROWS)
    assert scr["kept_frac"] == pytest.approx(0.6)                      # the ghosts are dropped
    assert scr["precision"] > raw["precision"] + 0.2
    # inliers pushed across the wall edge by the 4 px shift are inconsistent at the raw pixel, not at the true one
    assert dis["precision"] > scr["precision"] + 0.05 and dis["precision"] > 0.9
    assert scr["recall"] > 0.9                                         # few consistent points are lost
    assert scr["pix_mean"] == pytest.approx(4.0, abs=0.3)              # the toy extrinsic error is a 4 px shift
    assert dis["pix_mean"] < 1e-3 and dis["pix_n"] == scr["pix_n"]
    assert dis["depth_mae_m"] <= scr["depth_mae_m"] + 1e-6


def test_a_threshold_above_one_keeps_nothing():
    s = _oracle_stats([toy_frame(0)], threshold=1.5)
    assert s["screened"]["kept"] == 0 and s["screened"]["recall"] == 0.0


def test_evaluate_anchors_command_prints_three_rows_and_writes_json(astyx_root, tmp_path, capsys):
    torch.manual_seed(0)
    cfg = ModelConfig.preset("tiny")
    save_checkpoint(tmp_path / "tiny", RecalibrationNet(cfg), cfg, threshold=0.5)
    out = tmp_path / "anchors.json"
    rc = racalnet(["evaluate-anchors", "--dataset", "astyx", "--root", str(astyx_root), "--split", "test",
                   "--ids", "000080,000081", "--checkpoint", str(tmp_path / "tiny.safetensors"),
                   "--sweep", "0,2", "--json", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    for row in ROWS:
        assert f"| {row} |" in text
    res = json.loads(out.read_text())["thresholds"]
    assert set(res) == {"0.5", "0", "2"}
    raw = res["0.5"]["raw"]
    assert raw["frames"] == 2 and raw["points"] > 100 and raw["kept_frac"] == 1.0
    assert res["0"]["screened"]["kept_frac"] == 1.0                    # threshold 0 keeps every point ...
    assert res["0"]["screened"]["precision"] == raw["precision"]        # ... so screening changes nothing
    assert res["2"]["screened"]["kept"] == 0                            # confidence never reaches 2
