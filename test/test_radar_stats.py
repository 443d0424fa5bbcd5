"""Radar statistics (racalnet_ros.datasets.radar_stats): the ego-motion fit, the ground plane, the class heuristics,
the LiDAR agreement measures and the comparison against tolerances."""

import json

import numpy as np
import pytest

from racalnet_ros.cli import main
from racalnet_ros.datasets.radar_stats import (CHECKS, CLASSES, Box, RadarStatsConfig, classify_points, compare,
                                               fit_ego_doppler, fit_ground_plane, ks_distance, markdown_table,
                                               nearest_consistent_offset, summarize, wrap)


def _sweep(rng, n=1500):
    az = rng.uniform(-1.0, 1.0, n)
    el = rng.uniform(-0.15, 0.15, n)
    r = rng.uniform(5, 90, n)
    return np.stack([r * np.cos(el) * np.cos(az), r * np.cos(el) * np.sin(az), r * np.sin(el)], 1)


@pytest.mark.parametrize("speed, sign", [(7.05, 1.0), (3.0, -1.0), (0.0, 1.0), (14.0, 1.0)])
def test_ego_speed_and_sign_are_recovered_from_aliased_doppler(speed, sign):
    """Astyx-like: static points read sign * v cos(angle), aliased into +-5.2 m/s; 15% of the points move."""
    rng = np.random.default_rng(0)
    xyz = _sweep(rng)
    u = xyz / np.linalg.norm(xyz, axis=1, keepdims=True)
    v = sign * speed * u[:, 0] + rng.normal(0, 0.04, len(u))
    moving = rng.random(len(u)) < 0.15
    v[moving] += rng.uniform(2, 8, moving.sum()) * rng.choice([-1, 1], moving.sum())
    period = 10.39
    a, b, share = fit_ego_doppler(xyz, wrap(v, period), period)
    assert a == pytest.approx(sign * speed, abs=0.1) and abs(b) < 0.2
    assert share > 0.8


def test_ground_plane_is_found_under_walls_and_cars():
    rng = np.random.default_rng(1)
    x, y = rng.uniform(2, 60, 4000), rng.uniform(-20, 20, 4000)
    plane = np.array([0.05, -0.08, -1.6])
    ground = np.stack([x, y, plane[0] * x + plane[1] * y + plane[2] + rng.normal(0, 0.03, 4000)], 1)
    wall = np.stack([rng.uniform(5, 50, 3000), np.full(3000, 8.0), rng.uniform(-1.5, 6, 3000)], 1)
    fit = fit_ground_plane(np.concatenate([ground, wall]))
    assert np.allclose(fit, plane, atol=0.03)


def _toy_scene():
    """LiDAR in the radar frame: flat ground at z = -1.5, a wall along x at y = 10, a pole at (20, -5), a tree crown
    (a scattered cloud) around (30, -8)."""
    rng = np.random.default_rng(2)
    ground = np.stack([rng.uniform(2, 60, 6000), rng.uniform(-15, 15, 6000), np.full(6000, -1.5)], 1)
    wall = np.stack([rng.uniform(10, 40, 800), np.full(800, 10.0), rng.uniform(-1, 4, 800)], 1)
    pole = np.stack([np.full(60, 20.0), np.full(60, -5.0), np.linspace(-1.4, 3, 60)], 1)
    crown = np.array([30.0, -8.0, 2.0]) + rng.normal(0, 0.8, (400, 3))
    return np.concatenate([ground, wall, pole, crown])


def test_class_heuristics_on_a_toy_scene():
    lidar = _toy_scene()
    radar = np.array([[15.0, 2.0, -1.3],     # open ground
                      [25.0, 10.0, 1.0],     # wall
                      [20.0, -5.0, 0.5],     # pole
                      [30.0, -8.2, 2.5],     # crown
                      [12.0, 3.0, 0.9],      # inside the car's footprint, elevation off by a metre
                      [15.0, 2.0, 6.0],      # high above open ground at 15 m: not ground
                      [90.0, 0.0, 0.0]])     # beyond the LiDAR: unknown
    car = Box(np.array([12.0, 3.0, -0.8]), np.array([4.5, 1.8, 1.5]), np.eye(3), "car")
    cls, height, plane = classify_points(radar, lidar, [car], RadarStatsConfig())
    assert [CLASSES[c] for c in cls] == ["ground", "other", "other", "vegetation", "vehicle", "unknown", "unknown"]
    assert height[0] == pytest.approx(0.2, abs=0.05) and plane is not None


def test_nearest_consistent_lidar_offset():
    lidar = np.zeros((100, 200), np.float32)
    lidar[50, 110] = 20.0        # 10 px right, right depth
    lidar[50, 103] = 40.0        # nearer in pixels but 20 m off
    off = nearest_consistent_offset(np.array([[100.0, 50.0], [10.0, 10.0]]), np.array([20.3, 20.0]), lidar, 50)
    assert off[0] == pytest.approx(10.0) and np.isnan(off[1])


def _fake_frame_stats(rng, shift=0.0, n=800):
    return {"n_total": n, "n_in_image": n, "range": rng.gamma(4, 10, n) + shift, "azimuth": rng.uniform(-28, 28, n),
            "elevation": rng.normal(1, 2.5, n), "power": 45 + rng.exponential(6, n), "height": rng.normal(0.5, 1.5, n),
            "doppler": rng.uniform(-5, 5, n), "doppler_rel": rng.normal(0, 0.2, n), "ego_speed": 6.0,
            "doppler_static_a": 6.0, "doppler_static_share": 0.9, "has_lidar": rng.random(n) < 0.5,
            "agrees": rng.random(n) < 0.2, "abs_err": rng.exponential(10, n), "px_offset": rng.exponential(40, n),
            "cls": rng.integers(0, len(CLASSES), n).astype(np.int8)}


def test_a_summary_passes_against_itself_and_a_shifted_one_fails():
    rng = np.random.default_rng(3)
    s = summarize([_fake_frame_stats(rng) for _ in range(4)])
    rows = compare(s, s)
    assert len(rows) == len(CHECKS) and all(r["passed"] for r in rows)
    shifted = summarize([_fake_frame_stats(rng, shift=25.0) for _ in range(4)])
    by_name = {r["statistic"]: r for r in compare(s, shifted)}
    assert not by_name["range: median"]["passed"] and not by_name["range: distribution"]["passed"]
    assert by_name["azimuth: distribution"]["passed"]
    assert ks_distance(s["range"], shifted["range"]) > 0.3
    table = markdown_table(compare(s, shifted))
    assert "| range: median |" in table and "**FAIL**" in table


@pytest.mark.astyx
def test_radar_stats_cli_on_real_frames(astyx_root, tmp_path, capsys):
    out = tmp_path / "astyx.json"
    assert main(["inspect", "--dataset", "astyx", "--root", str(astyx_root), "--frames", "000004", "000040",
                 "--radar-stats", str(out), "--quiet"]) == 0
    s = json.loads(out.read_text())
    md = out.with_suffix(".md").read_text()
    assert s["frames"] == 2 and "| range [m] |" in md
    # Astyx reports +v_ego cos(angle) for the static world (aliased at +-5.2 m/s); the fit explains most points
    assert s["doppler_static_sign"] == 1.0 and s["ego_speed"]["static_share_median"] > 0.8
    assert sum(v["share"] for v in s["classes"].values()) == pytest.approx(1.0)
    assert s["classes"]["vehicle"]["share"] > 0.05        # frame 4 is a car park
    # comparing a dataset with itself passes every check
    out2 = tmp_path / "again.json"
    assert main(["inspect", "--dataset", "astyx", "--root", str(astyx_root), "--frames", "000004", "000040",
                 "--radar-stats", str(out2), "--compare-to", str(out), "--quiet"]) == 0
    assert f"{len(CHECKS)} of {len(CHECKS)} checks pass" in capsys.readouterr().out
    assert "| statistic | astyx | astyx |" in out2.with_suffix(".md").read_text()


def test_radar_stats_cli_bad_reference(tmp_path, capsys):
    from racalnet_ros.datasets.synthetic import SynthConfig, generate_frame
    from racalnet_ros.datasets.synthetic import layout
    cfg = SynthConfig(width=160, height=120)
    layout.write_frame(tmp_path, generate_frame(1, cfg))
    layout.write_meta(tmp_path, cfg.to_dict(), [1], ("x", "y", "z", "doppler", "power"))
    (tmp_path / "ref.json").write_text("{not json")
    assert main(["inspect", "--dataset", "synthetic", "--root", str(tmp_path), "--radar-stats",
                 str(tmp_path / "s.json"), "--compare-to", str(tmp_path / "ref.json")]) == 2
    assert "ref.json: cannot read" in capsys.readouterr().out


@pytest.mark.astyx
def test_radar_stats_skips_a_frame_with_malformed_boxes_and_names_the_file(astyx_root, tmp_path, capsys):
    import shutil
    for sub, ext in (("calibration", ".json"), ("camera_front", ".jpg"), ("radar_6455", ".txt"),
                     ("lidar_vlp16", ".txt"), ("groundtruth_obj3d", ".json")):
        (tmp_path / sub).mkdir()
        for fid in ("000004", "000005"):
            shutil.copy(astyx_root / sub / f"{fid}{ext}", tmp_path / sub / f"{fid}{ext}")
    (tmp_path / "groundtruth_obj3d" / "000005.json").write_text('{"objects": [{"center3d": [1, 2]}]}')
    out = tmp_path / "s.json"
    assert main(["inspect", "--dataset", "astyx", "--root", str(tmp_path), "--radar-stats", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "1 frame(s)" in text and "skipped 000005" in text and "000005.json: malformed object boxes" in text
    assert json.loads(out.read_text())["frames"] == 1
