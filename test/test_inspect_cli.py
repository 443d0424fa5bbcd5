"""`racalnet inspect`: per-frame statistics, summary, overlays and the radar-vs-LiDAR measurement on real frames."""

import json
import shutil

import cv2

from racalnet_ros.cli import main


def test_inspect_astyx_two_frames(astyx_root, tmp_path, capsys):
    out = tmp_path / "overlays"
    js = tmp_path / "stats.json"
    rc = main(["inspect", "--dataset", "astyx", "--root", str(astyx_root), "--frames", "000000", "000001",
               "--overlay-out", str(out), "--consistency", "--json", str(js)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "2 frame(s), 0 skipped" in text and "radar vs LiDAR, window 9x65 px" in text
    img = cv2.imread(str(out / "000000.png"))
    assert img.shape == (618, 2048, 3)
    doc = json.loads(js.read_text())
    f0 = doc["frames"][0]
    assert f0["frame_id"] == "000000" and f0["radar_total"] == 831
    assert 400 < f0["radar_in_image"] <= 831 and 1000 < f0["lidar_in_image"] < 5000
    assert 0 < f0["radar_with_lidar"] <= f0["radar_in_image"]
    assert 0.0 <= f0["share_within_most"] <= f0["share_within_some"] <= 1.0
    s = doc["summary"]
    assert s["frames"] == 2 and s["radar_in_image"]["min"] <= s["radar_in_image"]["mean"] <= s["radar_in_image"]["max"]
    assert s["agreement"]["radar_with_lidar"] == sum(f["radar_with_lidar"] for f in doc["frames"])


def test_inspect_reports_skipped_frames(astyx_root, tmp_path, capsys):
    for sub, ext in (("calibration", ".json"), ("camera_front", ".jpg"), ("radar_6455", ".txt"),
                     ("lidar_vlp16", ".txt")):
        (tmp_path / sub).mkdir()
        for fid in ("000000", "000001"):
            shutil.copy(astyx_root / sub / f"{fid}{ext}", tmp_path / sub / f"{fid}{ext}")
    (tmp_path / "radar_6455" / "000001.txt").write_text("")
    assert main(["inspect", "--dataset", "astyx", "--root", str(tmp_path), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "1 frame(s), 1 skipped" in text and "radar_6455/000001.txt: file is empty" in text


def test_inspect_bad_root(tmp_path, capsys):
    assert main(["inspect", "--dataset", "astyx", "--root", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("racalnet inspect: ") and "none: Astyx root folder does not exist" in err


def test_inspect_zju_fixture(tmp_path, capsys):
    import numpy as np
    data = tmp_path / "data"
    for sub in ("image", "gt", "radar"):
        (data / sub).mkdir(parents=True)
    cv2.imwrite(str(data / "image" / "0001.png"), np.zeros((720, 1280, 3), np.uint8))
    gt = np.zeros((720, 1280), np.uint16)
    gt[300, 100] = 12 * 256  # radar point 0 has LiDAR 0.5 m away, 20 rows up
    gt[500, 900] = 60 * 256  # radar point 1 is 20 m off the LiDAR next to it
    cv2.imwrite(str(data / "gt" / "0001.png"), gt)
    np.save(data / "radar" / "0001.npy", np.array([[100.0, 320.0, 12.5], [901.0, 500.0, 40.0]]))
    (data / "full.txt").write_text("0001\n")
    js = tmp_path / "s.json"
    assert main(["inspect", "--dataset", "zju", "--root", str(tmp_path), "--consistency", "--json", str(js)]) == 0
    a = json.loads(js.read_text())["summary"]["agreement"]
    assert a["radar_with_lidar"] == 2 and a["share_within_some"] == 0.5
    assert a["median_abs_err_m"] == 10.25  # median of 0.5 and 20.0
