"""`racalnet infer` turns a folder of images + radar files + one calibration file into depth PNGs at each image's
resolution: the documented input format works for .npy/.csv/.txt radar, resized images, and a real extrinsic."""

import json

import cv2
import numpy as np
import pytest

from racalnet_ros.cli import main as racalnet
from racalnet_ros.metric_depth.output import read_depth_png

# radar frame: x forward, y left, z up (as automotive radars); camera optical: x right, y down, z forward
R_CAM_RADAR = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
T_CAM_RADAR = np.eye(4)
T_CAM_RADAR[:3, :3] = R_CAM_RADAR
T_CAM_RADAR[:3, 3] = [0.1, -0.2, 0.05]
K0 = np.array([[80.0, 0, 32.0], [0, 80.0, 24.0], [0, 0, 1]])  # for 64 x 48 images


def scene(w, h):
    """Left half a wall at 8-10 m, right half a facade at 25 m; K scaled to (w, h)."""
    K = K0.copy()
    K[0] *= w / 64
    K[1] *= h / 48
    uu, vv = np.meshgrid(np.arange(w), np.arange(h))
    depth = np.where(uu < w / 2, 8.0 + 2.0 * vv / h, 25.0).astype(np.float32)
    return K, depth


def radar_points(K, depth, step):
    h, w = depth.shape
    vv, uu = np.mgrid[1:h:step, 1:w:step]
    keep = np.abs(uu - w / 2) > 2
    u, v = uu[keep].astype(float), vv[keep].astype(float)
    z = depth[vv[keep], uu[keep]].astype(float)
    cam = np.stack([(u - K[0, 2]) / K[0, 0] * z, (v - K[1, 2]) / K[1, 1] * z, z], 1)
    return (cam - T_CAM_RADAR[:3, 3]) @ R_CAM_RADAR  # camera -> radar frame


@pytest.fixture()
def user_data(tmp_path):
    imgs, radar, priors = tmp_path / "images", tmp_path / "radar", tmp_path / "priors"
    for d in (imgs, radar, priors):
        d.mkdir()
    truth = {}
    for stem, (w, h), ext in (("a", (64, 48), ".npy"), ("b", (128, 96), ".csv"), ("c", (64, 48), ".txt")):
        K, depth = scene(w, h)
        truth[stem] = depth
        cv2.imwrite(str(imgs / f"{stem}.png"), np.full((h, w, 3), 90, np.uint8))
        pts = radar_points(K, depth, 3)
        cols = np.concatenate([pts, np.zeros((len(pts), 2))], 1)  # x y z doppler power
        if ext == ".npy":
            np.save(radar / f"{stem}.npy", cols.astype(np.float32))
        elif ext == ".csv":
            np.savetxt(radar / f"{stem}.csv", cols, delimiter=",", header="x,y,z,v_r,rcs", comments="")
        else:
            np.savetxt(radar / f"{stem}.txt", pts, header="radar points x y z")  # '#' comment line, 3 columns
        np.save(priors / f"{stem}.npy", (1.0 / depth - 0.003) / 0.25)
    calib = {"K": K0.tolist(), "dist": [], "T_cam_radar": T_CAM_RADAR.reshape(-1).tolist(), "width": 64, "height": 48}
    (tmp_path / "calib.json").write_text(json.dumps(calib))
    return tmp_path, truth


def test_infer_writes_depth_at_each_image_resolution(user_data, capsys):
    root, truth = user_data
    out = root / "out"
    rc = racalnet(["infer", "--images", str(root / "images"), "--radar", str(root / "radar"), "--calib",
                   str(root / "calib.json"), "--prior", f"precomputed:{root / 'priors'}", "--no-recalibration",
                   "--out", str(out)])
    assert rc == 0
    for stem, depth in truth.items():
        pred = read_depth_png(out / "depth" / f"{stem}.png")
        assert pred.shape == depth.shape
        assert np.nanmean(np.abs(pred - depth) / depth) < 0.01, stem
        assert (out / "figures" / f"{stem}.png").is_file()
        anchors = np.load(out / "anchors" / f"{stem}.npy")
        assert anchors.shape[1] == 4 and len(anchors) > 20
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["frames"]) == {"a", "b", "c"} and summary["recalibration"] is False


def test_infer_names_the_bad_field_in_one_line(user_data, capsys):
    root, _ = user_data
    (root / "bad.yaml").write_text("K: [1, 2, 3]\nT_cam_radar: [[1,0,0,0],[0,1,0,0],[0,0,1,0],[0,0,0,1]]\n")
    assert racalnet(["infer", "--images", str(root / "images"), "--radar", str(root / "radar"), "--calib",
                     str(root / "bad.yaml"), "--prior", f"precomputed:{root / 'priors'}", "--no-recalibration",
                     "--out", str(root / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("racalnet infer: ") and "bad.yaml: K must be 3x3" in err and err.count("\n") == 1
    empty = root / "empty"
    empty.mkdir()
    assert racalnet(["infer", "--images", str(root / "images"), "--radar", str(empty), "--calib",
                     str(root / "calib.json"), "--no-recalibration", "--out", str(root / "o")]) == 2
    assert "same stem" in capsys.readouterr().err
    with pytest.raises(Exception, match="same stem"):  # --debug: the exception itself, with its traceback
        racalnet(["infer", "--images", str(root / "images"), "--radar", str(empty), "--calib",
                  str(root / "calib.json"), "--no-recalibration", "--out", str(root / "o"), "--debug"])


def test_a_missing_checkpoint_stops_infer_instead_of_falling_back_to_raw_radar(user_data, capsys):
    root, _ = user_data
    rc = racalnet(["infer", "--images", str(root / "images"), "--radar", str(root / "radar"), "--calib",
                   str(root / "calib.json"), "--prior", f"precomputed:{root / 'priors'}", "--checkpoint",
                   str(root / "nowhere.safetensors"), "--out", str(root / "o")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "recalibration.checkpoint" in err and "nowhere.safetensors" in err
    assert not (root / "o" / "depth").exists()
