"""Choosing what a training run ships, by rules fixed in advance (issue 9, must-haves 3 and 5): the confidence
threshold on the validation frames, and the checkpoint a run on real data starts from."""

import argparse
import csv
import logging
from types import SimpleNamespace

import numpy as np
import pytest

from racalnet_ros.cli.train import default_init
from racalnet_ros.recalibration import default_checkpoint
from racalnet_ros.recalibration.checkpoint import load_checkpoint
from racalnet_ros.recalibration.config import LabelConfig, ModelConfig, TrainConfig
from racalnet_ros.recalibration.data import prepare_samples
from racalnet_ros.recalibration.evaluate import select_threshold
from racalnet_ros.recalibration.toy import toy_frame
from racalnet_ros.recalibration.train import fit


def test_the_threshold_is_the_most_precise_one_that_keeps_30_percent():
    # 100 points, confidences 0.005 ... 0.995; judged consistent exactly when the confidence is above 0.8
    p = (np.arange(100) + 0.5) / 100
    label = (p > 0.8).astype(np.float32)
    judged = np.ones(100, bool)
    t, m = select_threshold(p, label, judged, min_kept=0.3)
    # 0.85 would be precise (1.0) but keeps 15%; 0.70 is the most precise threshold keeping >= 30% (20 of 30)
    assert t == pytest.approx(0.70) and m["val_kept_all"] == pytest.approx(0.30)
    assert m["val_precision"] == pytest.approx(20 / 30)
    t, _ = select_threshold(p, label, judged, min_kept=0.1)
    assert t == pytest.approx(0.80)                  # 0.80, 0.85, ... are all precise: ties go to the lower one


def test_points_without_lidar_count_as_kept_but_not_in_the_precision():
    p = np.array([0.9, 0.9, 0.9, 0.2])
    label = np.array([1, 0, 0, 0], np.float32)
    judged = np.array([True, False, False, True])                      # two kept points have no LiDAR nearby
    t, m = select_threshold(p, label, judged, min_kept=0.5)
    assert m["val_precision"] == 1.0 and m["val_kept_all"] == 0.75 and t > 0.2


def test_a_network_confident_of_nothing_gets_the_lowest_threshold():
    p = np.full(50, 0.01)
    t, m = select_threshold(p, np.zeros(50, np.float32), np.ones(50, bool), min_kept=0.3)
    assert t == pytest.approx(0.05) and m["val_kept_all"] == 0.0


def test_every_checkpoint_stores_the_threshold_chosen_on_its_validation_frames(tmp_path):
    model_cfg = ModelConfig.preset("tiny")
    labels = LabelConfig(conf_window=(5, 5), n_min=2, search_window=(15, 15), slide_window=(5, 5))
    train = prepare_samples([toy_frame(s, n_radar=30) for s in range(2)], model_cfg, labels)
    val = prepare_samples([toy_frame(s, n_radar=60) for s in (50, 51)], model_cfg, labels)
    fit(model_cfg, labels, TrainConfig(epochs=2, batch_size=2, jitter=0.0), tmp_path / "run", train, val,
        threshold=None, min_kept=0.4)
    rows = list(csv.DictReader((tmp_path / "run" / "metrics.csv").open()))
    assert len(rows) == 2
    _, _, meta = load_checkpoint(tmp_path / "run" / "last")
    assert meta["threshold"] == pytest.approx(float(rows[-1]["threshold"]))
    for row in rows:
        assert float(row["val_kept_all"]) >= 0.4 or float(row["threshold"]) == pytest.approx(0.05)
    # a fixed threshold is stored as given
    fit(model_cfg, labels, TrainConfig(epochs=1, batch_size=2, jitter=0.0), tmp_path / "fixed", train, val,
        threshold=0.6)
    assert load_checkpoint(tmp_path / "fixed" / "last")[2]["threshold"] == pytest.approx(0.6)


class _Frames:
    """A dataset stand-in whose radar has the given columns."""

    def __init__(self, fields):
        self.fields = fields

    def iter_frames(self, skip_bad=False):
        yield SimpleNamespace(radar_fields=self.fields)


def _args(**kw):
    return argparse.Namespace(**{"dataset": "astyx", "init": None, "pretrained": None, "preset": None, **kw})


def test_real_data_fine_tunes_the_shipped_checkpoint_by_default(caplog):
    radar = _Frames(("x", "y", "z", "doppler", "power"))
    with caplog.at_level(logging.INFO):
        assert default_init(_args(), radar) == str(default_checkpoint())
        assert default_init(_args(dataset="bag"), radar) == str(default_checkpoint())
    assert "fine-tuning the shipped checkpoint" in caplog.text


def test_scratch_when_asked_or_when_the_shipped_checkpoint_does_not_fit(caplog):
    radar = _Frames(("x", "y", "z", "doppler", "power"))
    assert default_init(_args(init="none"), radar) is None              # asked for
    assert default_init(_args(init="NONE"), radar) is None
    assert default_init(_args(init="mine.safetensors"), radar) == "mine.safetensors"
    assert default_init(_args(dataset="synthetic"), radar) is None      # the shipped one is trained that way
    assert default_init(_args(pretrained="enc.pt"), radar) is None
    with caplog.at_level(logging.INFO):
        assert default_init(_args(preset="tiny"), radar) is None         # another network
        assert default_init(_args(), _Frames(("x", "y", "z", "doppler"))) is None   # no power column
    assert "is preset small, not tiny" in caplog.text and "uses radar power, which this radar lacks" in caplog.text
