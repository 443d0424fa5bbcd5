"""Synthetic street scenes (racalnet_ros.datasets.synthetic): sensors, ground truth, prior model, on-disk layout."""

import json

import numpy as np
import pytest

from racalnet_ros.cli import main as cli_main
from racalnet_ros.datasets import DatasetError, open_dataset
from racalnet_ros.datasets.synthetic import SynthConfig, SynthConfigError, SyntheticDataset, generate_frame
from racalnet_ros.datasets.synthetic import layout
from racalnet_ros.geometry import project_to_image

SMALL = dict(width=160, height=120)


def frames_equal(a, b) -> bool:
    same = all(np.array_equal(getattr(a, k), getattr(b, k))
               for k in ("image", "radar", "lidar", "prior", "depth_gt", "T_cam_radar", "T_cam_lidar"))
    same &= (a.stamp, a.frame_id, tuple(a.radar_fields)) == (b.stamp, b.frame_id, tuple(b.radar_fields))
    same &= np.array_equal(a.camera.K, b.camera.K) and np.array_equal(a.camera.dist, b.camera.dist)
    same &= sorted(a.extras) == sorted(b.extras)
    for k in a.extras:
        x, y = np.asarray(a.extras[k]), np.asarray(b.extras[k])
        same &= x.dtype == y.dtype and np.array_equal(x, y, equal_nan=x.dtype.kind == "f")
    return bool(same)


@pytest.fixture(scope="module")
def frame():
    return generate_frame(3)


NO_RADAR_NOISE = dict(radar_range_noise_m=0, radar_azimuth_noise_deg=0, radar_elevation_noise_deg=0,
                      radar_doppler_noise=0, radar_range_bin_m=0, radar_doppler_bin=0, radar_doppler_period=0,
                      ego_speed=(10.0, 10.0), **SMALL)


@pytest.fixture(scope="module")
def exact_frame():
    """A frame with every radar error switched off: no noise, no quantisation or Doppler aliasing, no calibration
    error, no time offset."""
    cfg = SynthConfig(radar_calib_rot_deg=0, radar_calib_trans_m=0, radar_time_offset_s=0, **NO_RADAR_NOISE)
    return generate_frame(4, cfg)


def test_same_seed_gives_identical_frames_and_other_seeds_differ(frame):
    assert frames_equal(frame, generate_frame(3))
    other = generate_frame(5)
    assert not np.array_equal(frame.image, other.image)
    assert frame.frame_id == "000003" and other.frame_id == "000005"


def test_frames_are_identical_across_processes(frame):
    """Open3D's multi-threaded ray casting must not make frames depend on the process or thread timing."""
    import hashlib
    import subprocess
    import sys
    code = ("import hashlib, numpy as np; from racalnet_ros.datasets.synthetic import generate_frame; f = generate_frame(3); "
            "h = hashlib.sha1(); [h.update(np.ascontiguousarray(a).tobytes()) for a in "
            "(f.image, f.radar, f.lidar, f.prior, f.depth_gt, f.extras['radar_uv_true'])]; print(h.hexdigest())")
    h = hashlib.sha1()
    for a in (frame.image, frame.radar, frame.lidar, frame.prior, frame.depth_gt, frame.extras["radar_uv_true"]):
        h.update(np.ascontiguousarray(a).tobytes())
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == h.hexdigest()


def test_frame_has_the_contract_fields(frame):
    assert frame.image.shape == (480, 640, 3) and frame.image.dtype == np.uint8
    assert frame.radar_fields == ("x", "y", "z", "doppler", "power")
    n = frame.num_radar
    assert frame.extras["radar_uv_true"].shape == (n, 2) and frame.extras["radar_uv_true"].dtype == np.float32
    assert frame.extras["radar_depth_true"].shape == (n,)
    assert frame.extras["radar_is_outlier"].dtype == bool
    assert frame.depth_gt.shape == (480, 640) and frame.prior.shape == (480, 640)
    # sky is 0 in the dense depth and the image is not blank: depth spans near road to far facades
    assert 0.02 < (frame.depth_gt == 0).mean() < 0.5
    assert frame.depth_gt[frame.depth_gt > 0].min() < 5 and frame.depth_gt.max() > 50
    assert frame.image.std() > 20


def test_image_has_visible_object_edges(frame):
    """Where the true depth jumps (object boundaries) the image gradient is clearly stronger than elsewhere."""
    import cv2
    d = frame.depth_gt
    jump = np.zeros_like(d, bool)
    jump[:, 1:] = (np.abs(d[:, 1:] - d[:, :-1]) > 0.2 * np.maximum(d[:, 1:], d[:, :-1])) & (d[:, 1:] > 0) & (d[:, :-1] > 0)
    gray = cv2.cvtColor(frame.image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    gx = np.abs(cv2.Sobel(gray, cv2.CV_32F, 1, 0))
    assert jump.sum() > 200
    assert np.median(gx[jump]) > 2 * np.median(gx[~jump])


def test_radar_point_count_is_within_the_configured_range(frame):
    assert 300 <= frame.num_radar <= 1500
    f = generate_frame(11, SynthConfig(radar_points=(50, 60), **SMALL))
    assert 50 <= f.num_radar <= 60
    assert np.all(np.linalg.norm(frame.radar_xyz, axis=1) <= 100.0 + 1.0)


def test_radar_has_ghosts_clutter_and_points_the_camera_cannot_see(frame):
    ex = frame.extras
    out = ex["radar_is_outlier"]
    assert 0.02 < out.mean() < 0.3
    assert np.array_equal(np.isnan(ex["radar_uv_true"]).any(1)[out], np.ones(out.sum(), bool))   # NaN for outliers
    assert np.isnan(ex["radar_depth_true"][out]).all()
    inl = ~out
    assert (~ex["radar_visible_in_camera"][inl]).sum() > 0.05 * inl.sum()   # seen by the radar, not by the camera
    # the power column follows material reflectivity: it is not constant and strong returns exist
    power = frame.radar_column("power")
    assert power.std() > 3 and power.max() > 5


def test_lidar_is_a_single_sweep_of_the_configured_beams_within_range(frame):
    xyz = frame.lidar.astype(np.float64)
    r = np.linalg.norm(xyz, axis=1)
    assert r.max() <= 100.0 + 0.1
    elev = np.degrees(np.arcsin(xyz[:, 2] / r))
    beams = np.unique(np.round(elev / 0.25))       # beams are 40 / 31 = 1.29 deg apart; noise is ~0.01 deg
    assert 28 <= len(beams) <= 32
    assert 32 <= SynthConfig().lidar_beams <= 64


def test_lidar_covers_about_one_percent_of_pixels_and_shows_parallax(frame):
    p = project_to_image(frame.lidar, frame.T_cam_lidar, frame.camera)
    share = len(p) / (frame.width * frame.height)
    assert 0.005 < share < 0.02
    assert np.linalg.norm(frame.T_cam_lidar[:3, 3]) > 0.3                  # mounted apart from the camera
    # some projected LiDAR points lie on surfaces hidden from the camera (farther than what the camera sees)
    px = np.rint(p.uv).astype(int)
    seen = frame.depth_gt[px[:, 1], px[:, 0]]
    hidden = (seen > 0) & (p.depth > seen * 1.3 + 1.0)
    assert hidden.sum() > 0
    # ...but most agree with the dense depth
    assert np.mean(np.abs(p.depth[seen > 0] - seen[seen > 0]) < 0.05 * seen[seen > 0] + 0.2) > 0.85


def test_raw_radar_projections_are_off_by_pixels_but_true_pixels_carry_true_depth(frame):
    ex = frame.extras
    pr = project_to_image(frame.radar_xyz, frame.T_cam_radar, frame.camera)
    inl = ~ex["radar_is_outlier"][pr.index]
    err = np.linalg.norm(pr.uv[inl] - ex["radar_uv_true"][pr.index[inl]], axis=1)
    assert np.median(err) > 2.0                                             # extrinsic error + time offset + noise
    # a visible inlier's true pixel sees its surface: depth_gt in a 3 x 3 window matches radar_depth_true
    vis = np.flatnonzero(ex["radar_visible_in_camera"])
    assert len(vis) > 50
    uv = np.rint(ex["radar_uv_true"][vis]).astype(int)
    d = np.pad(frame.depth_gt, 1)
    win = np.stack([d[uv[:, 1] + 1 + dy, uv[:, 0] + 1 + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1)], 1)
    gap = np.min(np.abs(win - ex["radar_depth_true"][vis, None]), axis=1)
    assert np.mean(gap < 0.02 * ex["radar_depth_true"][vis] + 0.1) > 0.95


def test_without_radar_errors_raw_projection_equals_true_pixel_and_doppler_is_ego_motion(exact_frame):
    f, ex = exact_frame, exact_frame.extras
    assert np.allclose(f.T_cam_radar, ex["T_cam_radar_true"])
    pr = project_to_image(f.radar_xyz, f.T_cam_radar, f.camera)
    inl = ~ex["radar_is_outlier"][pr.index]
    assert np.max(np.abs(pr.uv[inl] - ex["radar_uv_true"][pr.index[inl]])) < 0.05
    assert np.allclose(pr.depth[inl], ex["radar_depth_true"][pr.index[inl]], atol=1e-3)
    # Doppler = -(v_target - v_ego) . u (positive = approaching, as the Astyx 6455 reports it): static targets (the
    # majority) give +v_ego . u exactly
    true = ~ex["radar_is_outlier"]
    xyz = f.radar_xyz[true].astype(np.float64)
    u = xyz / np.linalg.norm(xyz, axis=1, keepdims=True)
    assert np.isclose(np.linalg.norm(ex["ego_velocity_radar"]), 10.0)
    residual = f.radar_column("doppler")[true] - u @ ex["ego_velocity_radar"]
    assert np.median(np.abs(residual)) < 1e-3
    assert np.mean(np.abs(residual) > 1.0) > 0.02      # points on moving cars / pedestrians add their own motion


def test_calibration_error_alone_is_undone_by_the_true_extrinsic():
    f = generate_frame(12, SynthConfig(radar_time_offset_s=0, **NO_RADAR_NOISE))
    ex = f.extras
    true = project_to_image(f.radar_xyz, ex["T_cam_radar_true"], f.camera)
    inl = ~ex["radar_is_outlier"][true.index]
    assert np.max(np.abs(true.uv[inl] - ex["radar_uv_true"][true.index[inl]])) < 0.05
    calib = project_to_image(f.radar_xyz, f.T_cam_radar, f.camera)
    inl = ~ex["radar_is_outlier"][calib.index]
    # (at this 160 x 120 size a 0.7 deg rotation error is ~1.4 px)
    assert np.median(np.linalg.norm(calib.uv[inl] - ex["radar_uv_true"][calib.index[inl]], axis=1)) > 0.5


def test_time_offset_alone_moves_projections_by_the_ego_motion():
    f = generate_frame(13, SynthConfig(radar_time_offset_s=0.05, radar_calib_rot_deg=0, radar_calib_trans_m=0,
                                       **NO_RADAR_NOISE))
    ex = f.extras
    dt = float(ex["radar_time_offset"])
    assert dt != 0
    pr = project_to_image(f.radar_xyz, f.T_cam_radar, f.camera)
    inl = ~ex["radar_is_outlier"][pr.index]
    # the radar measured from 10 m/s * dt further along the road: its points look nearer (dt > 0) or farther
    dz = pr.depth[inl] - ex["radar_depth_true"][pr.index[inl]]
    assert np.median(dz) == pytest.approx(-10.0 * dt, abs=0.05 + 0.3 * abs(dt) * 10)
    # pixels of near points move too (small at this 160 x 120 size: focal length 114 px)
    near = inl & (pr.depth < 15.0)
    assert near.sum() > 20
    assert np.median(np.linalg.norm(pr.uv[near] - ex["radar_uv_true"][pr.index[near]], axis=1)) > 0.1


def _affine_fit(prior: np.ndarray, depth: np.ndarray) -> tuple[float, float, float]:
    """Least-squares 1 / depth ~ a * prior + b over non-sky pixels (the oracle global alignment)
    -> (a, R^2, median relative depth error of the aligned prior)."""
    m = depth > 0
    q, y = 1.0 / depth[m].astype(np.float64), prior[m].astype(np.float64)
    A = np.stack([y, np.ones_like(y)], 1)
    coef, *_ = np.linalg.lstsq(A, q, rcond=None)
    r2 = 1 - np.sum((A @ coef - q) ** 2) / np.sum((q - q.mean()) ** 2)
    d = 1.0 / np.maximum(A @ coef, 1e-4)
    return float(coef[0]), float(r2), float(np.median(np.abs(d - depth[m]) / depth[m]))


def test_prior_is_inverse_depth_under_an_unknown_affine_map_with_distortion(frame):
    a, r2, rel = _affine_fit(frame.prior, frame.depth_gt)
    assert a > 0                        # larger = nearer
    assert r2 > 0.9                     # a global affine fit explains it well...
    assert 0.005 < rel < 0.15           # ...but not perfectly: blur, gamma, low-frequency term and noise remain
    sky = frame.depth_gt == 0
    assert frame.prior[sky].mean() < np.percentile(frame.prior[~sky], 5)   # sky: small inverse depth
    # the affine map changes from frame to frame
    other = generate_frame(6, SynthConfig(**SMALL))
    a2, _, _ = _affine_fit(other.prior, other.depth_gt)
    assert not np.isclose(a, a2, rtol=0.05)


def test_prior_without_distortions_is_exactly_affine():
    cfg = SynthConfig(prior_blur_px=0, prior_gamma=(1, 1), prior_lowfreq_amp=(0, 0), prior_noise=0, **SMALL)
    f = generate_frame(7, cfg)
    _, r2, rel = _affine_fit(f.prior, f.depth_gt)
    assert r2 > 0.99999 and rel < 1e-4


def test_write_then_read_gives_identical_frames(tmp_path):
    cfg = SynthConfig(**SMALL)
    seeds = [18, 19, 20]
    frames = [generate_frame(s, cfg) for s in seeds]
    for f in frames:
        layout.write_frame(tmp_path, f)
    layout.write_meta(tmp_path, cfg.to_dict(), seeds, frames[0].radar_fields)
    ds = SyntheticDataset(tmp_path)
    assert ds.ids == ["000018", "000019", "000020"]
    assert ds.split_ids("val") == ["000018"] and ds.split_ids("test") == ["000019"]
    assert ds.split_ids("train") == ["000020"] and ds.split_ids("full") == ds.ids
    for f in frames:
        assert frames_equal(ds.load(f.frame_id), f)
    assert ds.config == cfg


def test_on_the_fly_dataset_matches_generate_frame_and_splits_by_seed():
    cfg = SynthConfig(**SMALL)
    ds = SyntheticDataset.generate([7, 8, 9, 10], cfg)
    assert ds.ids == ["000007", "000008", "000009", "000010"]
    assert [f.frame_id for f in ds.split("train")] == ["000007", "000010"]
    assert ds.split_ids("val") == ["000008"] and ds.split_ids("test") == ["000009"]
    assert frames_equal(ds.load("000010"), generate_frame(10, cfg))
    with pytest.raises(KeyError, match="split"):
        ds.split_ids("nope")


@pytest.mark.parametrize("fields, name", [
    (dict(width=0), "width"),
    (dict(radar_points=(100, 50)), "radar_points"),
    (dict(lidar_beams=0), "lidar_beams"),
    (dict(lidar_fov_up_deg=-40.0), "lidar_fov_up_deg"),
    (dict(prior_scale=(0.0, 1.0)), "prior_scale"),
    (dict(radar_ghost_fraction=(0.4, 0.5), radar_clutter_fraction=(0.4, 0.45)), "radar_clutter_fraction"),
    (dict(dist=(0.1, 0.2)), "dist"),
])
def test_bad_config_raises_an_error_naming_the_field(fields, name):
    with pytest.raises(SynthConfigError, match=name):
        SynthConfig(**fields)


def test_bad_inputs_raise_clear_errors(tmp_path):
    with pytest.raises(SynthConfigError, match="unknown field"):
        SynthConfig.from_dict({"widht": 320})
    with pytest.raises(SynthConfigError, match="seed"):
        generate_frame(-1)
    with pytest.raises(SynthConfigError, match="config"):
        generate_frame(1, {"width": 320})
    with pytest.raises(DatasetError, match="meta.json"):
        SyntheticDataset(tmp_path)
    cfg = SynthConfig(**SMALL)
    layout.write_frame(tmp_path, generate_frame(1, cfg))
    layout.write_meta(tmp_path, cfg.to_dict(), [1], ("x", "y", "z", "doppler", "power"))
    (tmp_path / "radar" / "000001.npy").unlink()
    with pytest.raises(DatasetError, match="000001.npy"):
        SyntheticDataset(tmp_path).load("000001")


def test_synth_cli_writes_a_folder_that_open_dataset_reads(tmp_path, capsys):
    out = tmp_path / "synth"
    argv = ["synth", "--out", str(out), "--frames", "2", "--seed", "8", "--width", "160", "--height", "120", "--quiet"]
    assert cli_main(argv) == 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["config"]["width"] == 160 and meta["splits"]["val"] == ["000008"]
    ds = open_dataset("synthetic", str(out))
    assert ds.ids == ["000008", "000009"]
    assert open_dataset("synthetic", str(out), split="test").ids == ["000009"]
    f = ds.load("000009")
    assert f.image.shape == (120, 160, 3)
    assert frames_equal(f, generate_frame(9, SynthConfig(**SMALL)))
    assert cli_main(argv) == 2                   # refuses to overwrite an existing dataset
    assert "exists" in capsys.readouterr().err
    assert cli_main(["synth", "--out", str(tmp_path / "x"), "--frames", "1", "--width", "8"]) == 2
    assert "width" in capsys.readouterr().err
    (tmp_path / "cfg.yaml").write_text("radar_points: [20, 30]\nwidth: 96\nheight: 72\n")
    assert cli_main(["synth", "--out", str(tmp_path / "y"), "--frames", "1", "--config", str(tmp_path / "cfg.yaml"),
                     "--quiet"]) == 0
    f = open_dataset("synthetic", str(tmp_path / "y")).load("000000")
    assert f.image.shape == (72, 96, 3) and 20 <= f.num_radar <= 30


def test_radar_reports_like_the_astyx_6455(frame):
    """Doppler quantised to 0.0812 m/s and aliased into +-5.2 m/s; power = 45 + excess in steps of 0.5 (Astyx Mag)."""
    d, p = frame.radar_column("doppler").astype(np.float64), frame.radar_column("power").astype(np.float64)
    assert np.all(np.abs(d) <= 10.3936 / 2 + 0.05)
    assert np.allclose(d / 0.0812, np.round(d / 0.0812), atol=1e-3)
    assert p.min() >= 45.0 and np.allclose(p * 2, np.round(p * 2)) and p.std() > 3
    assert float(frame.extras["radar_doppler_period"]) == pytest.approx(128 * 0.0812)


def test_radar_class_and_vehicle_boxes_record_what_the_rays_hit(frame):
    from racalnet_ros.datasets.radar_stats import boxes_from_array
    ex = frame.extras
    cls, kind = ex["radar_class"], ex["radar_kind"]
    assert cls.shape == (frame.num_radar,) and set(np.unique(cls)) <= {0, 1, 2, 3, 5}
    assert np.all((cls == 5) == (kind != 0))                       # ghosts and clutter
    boxes = boxes_from_array(ex["object_boxes"])
    assert len(boxes) >= 4
    xyz = frame.radar_xyz[(cls == 2)].astype(np.float64)          # true detections on vehicles nearer than 30 m
    xyz = xyz[np.linalg.norm(xyz, axis=1) < 30]
    inside = np.zeros(len(xyz), bool)
    for b in boxes:
        local = (xyz - b.center) @ b.R
        inside |= np.all(np.abs(local) <= b.size / 2 + 0.3 + np.array([0, 0, 1.0]), axis=1)
    assert len(xyz) > 20 and inside.mean() > 0.9                  # (angle noise moves some out)


def test_astyx_preset_mounts_the_sensors_as_on_the_astyx_car():
    from racalnet_ros.datasets.synthetic.config import NAMED_CAMERAS
    f = generate_frame(21, SynthConfig.preset("astyx", render_image=False))
    w, h, fx, fy, cx, cy = NAMED_CAMERAS["astyx"]
    assert (f.width, f.height) == (2048, 618) and np.allclose(f.camera.K[[0, 1, 0, 1], [0, 1, 2, 2]], [fx, fy, cx, cy])
    assert f.camera.dist.size == 0 and (f.image == 128).all() and not f.depth_gt.any()   # render_image=False
    xyz = f.lidar.astype(np.float64)
    elev = np.degrees(np.arcsin(xyz[:, 2] / np.linalg.norm(xyz, axis=1)))
    assert len(np.unique(np.round(elev))) <= 17                   # 16 beams, 2 deg apart
    assert np.linalg.norm(f.extras["T_cam_radar_true"][:3, 3]) < 0.3   # radar next to the camera
    # radar pitched ~3 deg down: the ground ahead rises in the radar frame
    T = np.linalg.inv(f.T_cam_radar) @ f.T_cam_lidar
    lid = xyz @ T[:3, :3].T + T[:3, 3]
    near, far = lid[(lid[:, 0] > 5) & (lid[:, 0] < 8) & (np.abs(lid[:, 1]) < 2)], \
        lid[(lid[:, 0] > 15) & (lid[:, 0] < 25) & (np.abs(lid[:, 1]) < 2)]
    assert np.median(far[:, 2]) > np.median(near[:, 2]) + 0.2
    with pytest.raises(SynthConfigError, match="preset"):
        SynthConfig.preset("nope")
    assert SynthConfig.from_dict({"preset": "astyx", "lidar_beams": 8}).lidar_beams == 8


def test_cameras_and_appearance_are_drawn_per_frame():
    cfg = SynthConfig(cameras=("config", "96x64@60"), **SMALL)
    sizes = {generate_frame(s, cfg).image.shape[:2] for s in range(30, 36)}
    assert sizes == {(120, 160), (64, 96)}
    frames = [generate_frame(s, SynthConfig(**SMALL)) for s in (40, 41, 42, 43)]
    luma = [f.image.mean() for f in frames]
    assert max(luma) - min(luma) > 10                             # exposure, light and scenes differ per frame
    with pytest.raises(SynthConfigError, match="cameras"):
        SynthConfig(cameras=("640by480",))


def test_appearance_without_randomisation_is_plain_and_without_jpeg():
    from racalnet_ros.datasets.synthetic.render import sample_appearance
    fixed = dict(overcast_prob=0.0, snow_prob=0.0, ambient=(0.38, 0.38), exposure_ev=(0.0, 0.0),
                 white_balance=(1.0, 1.0), saturation=(1.0, 1.0), texture_contrast=(1.0, 1.0), gamma=(1.0, 1.0),
                 vignetting=(0.0, 0.0), jpeg_quality=(100, 100))
    look = sample_appearance(SynthConfig(**fixed), np.random.default_rng(0))
    assert (look.exposure, look.saturation, look.gamma, look.jpeg_quality) == (1.0, 1.0, 1.0, 100)
    assert np.allclose(look.wb, 1.0) and not look.overcast and not look.snow
    f = generate_frame(44, SynthConfig(**{**fixed, "overcast_prob": 1.0}, **SMALL))
    sky = f.depth_gt == 0
    hsv = __import__("cv2").cvtColor(f.image, __import__("cv2").COLOR_RGB2HSV)
    assert sky.any() and np.median(hsv[..., 1][sky]) < 40         # overcast: a grey sky


@pytest.mark.parametrize("dist", [(-0.08, 0.02, 0.0, 0.0, 0.0), (0.05, -0.02, 0.001, -0.001, 0.0)])
def test_pixel_rays_reproject_onto_their_pixels(dist):
    """Rays are undistorted exactly on a grid and interpolated in between: projecting them back with OpenCV lands
    within 0.01 px of every pixel."""
    import cv2
    from racalnet_ros.frame import CameraModel
    from racalnet_ros.datasets.synthetic.render import pixel_rays
    K = np.array([[457.0, 0, 319.5], [0, 457.0, 239.5], [0, 0, 1]])
    rays = pixel_rays(CameraModel(K, 640, 480, np.array(dist))).astype(np.float64)
    uv, _ = cv2.projectPoints(rays.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), K, np.array(dist))
    u, v = np.meshgrid(np.arange(640), np.arange(480))
    assert np.abs(uv.reshape(-1, 2) - np.stack([u.ravel(), v.ravel()], 1)).max() < 0.01
