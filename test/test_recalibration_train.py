"""Training: the loss falls clearly when overfitting a few frames; `racalnet train` runs under torchrun with two CPU
processes (gloo, DistributedDataParallel), writes checkpoints + metrics, and resumes."""

import csv
import os
import subprocess
import sys

import numpy as np
import torch

from racalnet_ros.recalibration.checkpoint import load_checkpoint
from racalnet_ros.recalibration.config import LabelConfig, ModelConfig
from racalnet_ros.recalibration.data import RecalibrationSamples, collate_samples, prepare_samples
from racalnet_ros.recalibration.loss import recalibration_loss
from racalnet_ros.recalibration.model import RecalibrationNet
from racalnet_ros.recalibration.toy import toy_frame

CFG = ModelConfig.preset("tiny")
LAB = LabelConfig(conf_window=(5, 5), n_min=2, search_window=(15, 15), slide_window=(5, 5))


def test_loss_terms_follow_eq_6_9_10():
    logit = torch.tensor([[0.0, 2.0, -1.0]])
    disp = torch.tensor([[[0.0, 0.0], [2.0, 0.0], [0.5, 0.0]]])
    batch = {"conf_label": torch.tensor([[1.0, 0.0, 1.0]]), "conf_mask": torch.tensor([[True, True, False]]),
             "disp_label": torch.zeros(1, 3, 2), "disp_mask": torch.tensor([[False, True, True]])}
    total, parts = recalibration_loss(logit, disp, batch, disp_weight=2.0)
    bce = (np.log(2) + np.log(1 + np.exp(2.0))) / 2          # points 0, 1 (point 2 has no LiDAR)
    sl1 = ((2.0 - 0.5) + 0.5 * 0.5 ** 2) / 2                  # points 1, 2
    assert abs(parts["loss_conf"] - bce) < 1e-5 and abs(parts["loss_disp"] - sl1) < 1e-5
    assert abs(float(total) - (bce + 2.0 * sl1)) < 1e-5


def test_the_loss_falls_clearly_when_overfitting_a_few_frames():
    torch.manual_seed(0)
    samples = prepare_samples([toy_frame(s, width=96, height=72, n_radar=40) for s in range(3)], CFG, LAB)
    assert sum(int(s["conf_mask"].sum()) for s in samples) > 60
    batch = collate_samples(list(RecalibrationSamples(samples, CFG)))
    model = RecalibrationNet(CFG).train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(50):
        loss, _ = recalibration_loss(*model(batch["image"], batch["feats"], batch["uv"], batch["valid"]), batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert np.mean(losses[-5:]) < 0.4 * np.mean(losses[:5]), (losses[:5], losses[-5:])


def test_two_process_ddp_run_writes_checkpoint_and_metrics_and_resumes(tmp_path):
    samples = prepare_samples([toy_frame(s, n_radar=30) for s in range(2)], CFG, LAB, cache=tmp_path / "train.pt")
    assert len(samples) == 2
    out = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    common = ["-m", "racalnet_ros.cli", "train", "--dataset", "synthetic", "--train-cache", str(tmp_path / "train.pt"),
              "--no-val", "--preset", "tiny", "--out", str(out), "--batch-size", "1", "--jitter", "0.1"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"] + common + ["--epochs", "1"]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=150)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert len(rows) == 1 and rows[0]["batches"] == "1"  # 2 frames split over 2 processes, batch size 1
    model, cfg, meta = load_checkpoint(out / "last")
    assert cfg == CFG and meta["epoch"] == 1
    # resume in a single process for one more epoch
    r = subprocess.run([sys.executable] + common + ["--epochs", "2", "--resume"], env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [row["epoch"] for row in rows] == ["1", "2"]


def test_fit_is_a_library_call_that_stops_on_time_exports_fp16_and_raises_on_no_data(tmp_path):
    """fit(model_cfg, label_cfg, train_cfg, run_dir, ...) without argparse: a budget of ~0 minutes stops after the
    first batch and still saves; --export's float16 copy is written; no samples is a TrainError, not an exit."""
    import pytest

    from racalnet_ros.recalibration.config import TrainConfig
    from racalnet_ros.recalibration.train import TrainError, fit

    samples = prepare_samples([toy_frame(s, n_radar=30) for s in range(2)], CFG, LAB)
    train_cfg = TrainConfig(epochs=5, batch_size=1, jitter=0.0)
    best = fit(CFG, LAB, train_cfg, tmp_path / "run", samples, None, max_minutes=1e-6,
               export=tmp_path / "exported")
    rows = list(csv.DictReader((tmp_path / "run" / "metrics.csv").open()))
    assert len(rows) == 1 and rows[0]["batches"] == "1"  # stopped inside the first epoch, after one batch
    assert best.is_file() and best.name in ("best.safetensors", "last.safetensors")
    model, cfg, meta = load_checkpoint(tmp_path / "exported")
    assert cfg == CFG and meta["dtype"] == "float16" and meta["epoch"] == 1
    with pytest.raises(TrainError, match="no training samples"):
        fit(CFG, LAB, train_cfg, tmp_path / "empty", [], None)


def test_every_checkpoint_fit_writes_records_what_it_was_trained_on(tmp_path):
    """Provenance (recalibration/checkpoint.py, PROVENANCE): dataset, sensor, frames and seeds of the training and
    validation data (from FrameDataset.describe()), preset, date, project version and command, in last, best and
    the exported checkpoint alike."""
    import datetime
    import json

    import racalnet_ros
    from racalnet_ros.datasets.synthetic import SynthConfig, SyntheticDataset
    from racalnet_ros.recalibration.config import TrainConfig
    from racalnet_ros.recalibration.train import fit

    small = SynthConfig(width=128, height=96)
    train = SyntheticDataset.generate([1, 2], small)
    val = SyntheticDataset.generate([100008], small)
    fit(CFG, LAB, TrainConfig(epochs=1, batch_size=2, jitter=0.0), tmp_path / "run", train, val,
        export=tmp_path / "exported", record={"command": "racalnet train --dataset synthetic ..."})
    for name in ("run/last", "run/best", "exported"):
        prov = json.loads((tmp_path / f"{name}.json").read_text())["provenance"]
        assert (prov["dataset"], prov["real"], prov["seeds"], prov["frames"], prov["n_frames"]) == \
            ("synthetic", False, "1-2", "000001-000002", 2), name
        assert "simulated" in prov["sensor"] and prov["preset"] == "tiny" and prov["init"] == ""
        assert prov["validation"]["seeds"] == "100008" and prov["validation"]["n_frames"] == 1
        assert prov["version"] == racalnet_ros.__version__ and prov["command"].startswith("racalnet train")
        assert datetime.datetime.fromisoformat(prov["date"]).tzinfo is not None


def test_a_checkpoint_without_provenance_reads_as_unknown_and_the_shipped_one_has_it():
    from racalnet_ros.recalibration import default_checkpoint
    from racalnet_ros.recalibration.checkpoint import provenance_of, read_provenance, synthetic_on_real_warning

    old = provenance_of({"dataset": "astyx"})
    assert old["dataset"] == "astyx" and old["real"] is None and old["date"] == "unknown"
    assert synthetic_on_real_warning("x.safetensors", old) is None  # unknown: no claim either way
    shipped = read_provenance(default_checkpoint())
    assert (shipped["dataset"], shipped["real"], shipped["seeds"], shipped["preset"]) == \
        ("synthetic", False, "0-299", "small")
    assert shipped["validation"]["seeds"] == "100000-100029" and shipped["date"].startswith("2026-12-02")
    # trained only on the Astyx-like synthetic rig (licence-clean), and the command that made it is recorded
    assert shipped["generator"]["cameras"] == ["astyx"] and shipped["generator"]["lidar_beams"] == 16
    assert shipped["command"].startswith("racalnet train --dataset synthetic") and "--synth-config astyx" in \
        shipped["command"] and "note" not in shipped
    line = synthetic_on_real_warning(default_checkpoint(), shipped)
    assert "\n" not in line and f"--init {default_checkpoint()}" in line and "docs/recalibration.md" in line
