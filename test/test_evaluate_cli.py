"""`racalnet evaluate` reproduces hand-computed metrics on a tiny dataset whose depth is known, and writes the
documented files (results.json/md, 16-bit depth PNGs at full resolution, N x 4 anchors, figures)."""

import json

import numpy as np
import pytest

from racalnet_ros.cli import main as racalnet
from racalnet_ros.datasets.base import FrameDataset
from racalnet_ros.frame import CameraModel, Frame
from racalnet_ros.metric_depth.output import read_depth_png

H, W = 40, 90
K = np.array([[60.0, 0, W / 2], [0, 60.0, H / 2], [0, 0, 1]])
REGIONS = (5.0, 20.0, 60.0)  # metres: three vertical bands of constant depth
# LiDAR pixels (row, col) and their relative offset from the true depth: gt = depth * (1 + e)
LIDAR = [((10, 5), 0.1), ((30, 20), -0.1), ((20, 45), 0.0), ((5, 50), 0.2), ((15, 75), 0.1), ((35, 85), -0.1)]


def true_depth():
    d = np.empty((H, W), np.float32)
    for i, z in enumerate(REGIONS):
        d[:, i * W // 3:(i + 1) * W // 3] = z
    return d


def backproject(rows_cols, z):
    rc = np.asarray(rows_cols, np.float64)
    return np.stack([(rc[:, 1] - K[0, 2]) / K[0, 0] * z, (rc[:, 0] - K[1, 2]) / K[1, 1] * z, z], 1)


class KnownDepthDataset(FrameDataset):
    """Two frames; the prior is an exact affine map of the true inverse depth, the radar measures the true depth,
    the LiDAR is offset from it by known relative errors."""

    name = "known"
    splits = ("full",)

    def __init__(self, root):
        super().__init__(["000001", "000002"])

    def split_ids(self, name):
        return list(self.ids)

    def load(self, frame_id):
        d = true_depth()
        rows, cols = np.mgrid[2:H:6, 3:W:4]
        keep = (cols % (W // 3) > 3) & (cols % (W // 3) < W // 3 - 3)  # radar away from the band borders
        rc = np.stack([rows[keep], cols[keep]], 1)
        radar = backproject(rc, d[rc[:, 0], rc[:, 1]])
        lrc = np.array([p for p, _ in LIDAR])
        lz = d[lrc[:, 0], lrc[:, 1]] * (1 + np.array([e for _, e in LIDAR]))
        prior = ((1.0 / d - 0.004) / 0.3).astype(np.float32) * (1.0 if frame_id == "000001" else 2.0)
        img = np.full((H, W, 3), 128, np.uint8)
        return Frame(img, CameraModel(K, W, H), radar.astype(np.float32), np.eye(4),
                     lidar=backproject(lrc, lz).astype(np.float32), T_cam_lidar=np.eye(4), prior=prior,
                     frame_id=frame_id)


def hand_metrics(hi):
    """Expected metrics for one frame (both frames are identical up to the prior's scale) in range (0, hi)."""
    d = true_depth()
    p = np.array([d[r, c] for (r, c), _ in LIDAR]) * 1000.0
    g = np.array([d[r, c] * (1 + e) for (r, c), e in LIDAR]) * 1000.0
    m = g < hi * 1000.0
    p, g = p[m], g[m]
    return {"mae": np.mean(np.abs(p - g)), "rmse": np.sqrt(np.mean((p - g) ** 2)), "absrel": np.mean(np.abs(p - g) / g),
            "sqrel": np.mean((p - g) ** 2 / g), "delta1": np.mean(np.maximum(p / g, g / p) < 1.25)}


def test_evaluate_reproduces_hand_computed_metrics(tmp_path, capsys):
    out = tmp_path / "eval"
    rc = racalnet(["evaluate", "--dataset", f"{__name__}:KnownDepthDataset", "--prior", "frame",
                   "--ablation", "no-recalibration,baseline", "--out", str(out), "--save-depth", "--figures", "1"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "| 50m | no-recalibration |" in printed and "80m" in printed
    res = json.loads((out / "results.json").read_text())
    assert res["n_frames"] == 2 and set(res["configurations"]) == {"no-recalibration", "baseline"}
    for conf in ("no-recalibration", "baseline"):
        for name, hi in (("0-50", 50), ("0-70", 70), ("0-80", 80)):
            got, want = res["configurations"][conf][name], hand_metrics(hi)
            for key, value in want.items():
                assert got[key] == pytest.approx(value, rel=1e-3, abs=1e-3), (conf, name, key)
        assert res["diagnostics"][conf]["fallbacks"] == {}
    # 0-50 excludes the 60 m band (gt 54 and 66 m); 0-70 includes it
    assert res["configurations"]["baseline"]["0-50"]["mae"] != pytest.approx(res["configurations"]["baseline"]["0-70"]["mae"])
    md = (out / "results.md").read_text()
    assert md.count(" | baseline | ") >= 3 and "| 70m |" in md

    depth = read_depth_png(out / "baseline" / "depth" / "000002.png")
    assert depth.shape == (H, W)
    np.testing.assert_allclose(depth, true_depth(), atol=1.0 / 256)
    anchors = np.load(out / "no-recalibration" / "anchors" / "000001.npy")
    assert anchors.dtype == np.float32 and anchors.ndim == 2 and anchors.shape[1] == 4 and len(anchors) > 50
    assert (out / "baseline" / "figures" / "000001.png").is_file()
    assert not (out / "baseline" / "figures" / "000002.png").exists()


def test_evaluate_refuses_recalibrated_configuration_without_checkpoint(tmp_path, capsys):
    rc = racalnet(["evaluate", "--dataset", f"{__name__}:KnownDepthDataset", "--ablation", "full",
                   "--checkpoint", str(tmp_path / "missing.safetensors"), "--out", str(tmp_path / "o")])
    assert rc == 2 and "full" in capsys.readouterr().err


def test_evaluate_rejects_unknown_configuration(tmp_path, capsys):
    assert racalnet(["evaluate", "--dataset", f"{__name__}:KnownDepthDataset", "--ablation", "best",
                     "--out", str(tmp_path)]) == 2
    assert "best" in capsys.readouterr().err


def test_every_configuration_shares_one_prior_computed_once_per_frame(tmp_path, monkeypatch):
    """Each ablation is a Pipeline from PipelineConfig.ablation; they share one prior instance, which predicts once
    per frame."""
    from racalnet_ros.metric_depth.priors import FramePrior
    from racalnet_ros.pipeline import Pipeline

    calls, built = [], []
    real_predict, real_from_config = FramePrior.predict, Pipeline.from_config.__func__
    monkeypatch.setattr(FramePrior, "predict", lambda self, frame: calls.append(frame.frame_id) or
                        real_predict(self, frame))
    monkeypatch.setattr(Pipeline, "from_config", classmethod(lambda cls, cfg, prior=None: built.append(prior) or
                                                              real_from_config(cls, cfg, prior)))
    rc = racalnet(["evaluate", "--dataset", f"{__name__}:KnownDepthDataset", "--ablation",
                   "no-recalibration,baseline", "--out", str(tmp_path / "o")])
    assert rc == 0
    assert len(built) == 2 and built[0] is not None and built[1] is built[0]
    assert calls == ["000001", "000002"]


def test_on_real_frames_a_bad_frame_is_named_and_the_synthetic_checkpoint_is_said_once(astyx_root, tmp_path, capsys):
    """Two real Astyx frames, the second with a truncated image: the first is evaluated, the second is named and
    counted (exit code 1, 0 with --skip-bad); results.json is standard JSON with the resolved checkpoint and its
    provenance; the synthetic-only checkpoint meeting a real sensor is said in one line."""
    root = tmp_path / "astyx"
    for folder, ext in (("calibration", ".json"), ("camera_front", ".jpg"), ("radar_6455", ".txt"),
                        ("lidar_vlp16", ".txt"), ("mono_fastdepth", ".npy")):
        (root / folder).mkdir(parents=True)
        for fid in ("000080", "000081"):
            (root / folder / f"{fid}{ext}").symlink_to(astyx_root / folder / f"{fid}{ext}")
    jpg = root / "camera_front" / "000081.jpg"
    data = jpg.read_bytes()
    jpg.unlink()
    jpg.write_bytes(data[: len(data) // 3])
    cmd = ["evaluate", "--dataset", "astyx", "--root", str(root), "--prior", f"precomputed:{root / 'mono_fastdepth'}",
           "--ablation", "full", "--device", "cpu", "--out", str(tmp_path / "out")]
    assert racalnet(cmd) == 1
    err = capsys.readouterr().err
    assert err.count("trained on synthetic data only") == 1 and "--init" in err
    assert "1 of 2 frame(s) could not be used (000081" in err
    def refuse(name):
        raise ValueError(name)
    results = json.loads((tmp_path / "out" / "results.json").read_text(), parse_constant=refuse)
    assert results["frames"] == ["000080"] and list(results["bad_frames"]) == ["000081"]
    assert "camera_front/000081.jpg: truncated or corrupt JPEG" in results["bad_frames"]["000081"]
    assert results["checkpoint"].endswith("small_synthetic.safetensors") and results["provenance"]["real"] is False
    assert results["data"]["dataset"] == "astyx" and results["data"]["real"] is True
    assert racalnet(cmd + ["--skip-bad", "--out", str(tmp_path / "out2")]) == 0


class OutlierRadarDataset(KnownDepthDataset):
    """The known scene with a LiDAR on a dense grid measuring the true depth exactly and a radar whose every third
    point reports twice its range."""

    def load(self, frame_id):
        f = super().load(frame_id)
        d = true_depth()
        rows, cols = np.mgrid[1:H:3, 1:W:3]
        lrc = np.stack([rows.ravel(), cols.ravel()], 1)
        radar = f.radar.copy()
        radar[::3] *= 2.0  # same pixel, twice the range
        return Frame(f.image, f.camera, radar, np.eye(4), lidar=backproject(lrc, d[lrc[:, 0], lrc[:, 1]]).astype(
            np.float32), T_cam_lidar=np.eye(4), prior=f.prior, frame_id=frame_id)


def test_the_lidar_anchor_bound_is_reached_by_exact_anchors_and_gap_shares_are_reported(tmp_path):
    out = tmp_path / "eval"
    assert racalnet(["evaluate", "--dataset", f"{__name__}:OutlierRadarDataset", "--prior", "frame", "--ablation",
                     "no-recalibration,baseline", "--lidar-bound", "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    rmse = {n: c["0-50"]["rmse"] for n, c in res["configurations"].items()}
    assert set(rmse) == {"no-recalibration", "baseline", "lidar-anchor bound"}
    assert rmse["lidar-anchor bound"] < 1.0 < rmse["baseline"]  # mm: exact anchors, exact prior
    gap = res["gap_closed_0_50"]
    assert gap["baseline"] == pytest.approx(0.0) and gap["no-recalibration"] > 0.5  # the threshold search helps
    assert "gap between the baseline and the LiDAR-anchor bound closed" in (out / "results.md").read_text()
