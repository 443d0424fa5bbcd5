"""The paper's metrics (RadarCam-Depth protocol), checked against values computed by hand."""

import math

import numpy as np
import pytest

from racalnet_ros.metrics import RANGES, MetricAccumulator, depth_metrics, format_table

# gt: 2 m and 4 m inside 0-50; 60 m only inside 0-70/0-80; 100 m outside every range; 0 = no LiDAR.
GT = np.array([[2.0, 4.0, 0.0],
               [60.0, 100.0, 0.0]], np.float32)
PRED = np.array([[1.0, 5.0, 9.0],
                 [66.0, 1.0, 3.0]], np.float32)


def test_one_image_0_50_by_hand():
    m = depth_metrics(PRED, GT, 0.0, 50.0)
    # errors: 1 m -> -1000 mm at g = 2000 mm; 5 m -> +1000 mm at g = 4000 mm
    assert m["n"] == 2 and m["coverage"] == 1.0
    assert m["mae"] == pytest.approx(1000.0)
    assert m["rmse"] == pytest.approx(1000.0)
    assert m["absrel"] == pytest.approx((0.5 + 0.25) / 2)
    assert m["sqrel"] == pytest.approx((1e6 / 2000 + 1e6 / 4000) / 2)  # 375 (on millimetres)
    # ratios 2.0 and exactly 1.25: the threshold is strict, neither counts
    assert m["delta1"] == 0.0
    # inverse depth in 1/km: 1/0.001 - 1/0.002 = 500 ; 1/0.005 - 1/0.004 = -50
    assert m["imae"] == pytest.approx(275.0)
    assert m["irmse"] == pytest.approx(math.sqrt((500.0 ** 2 + 50.0 ** 2) / 2))


def test_range_upper_bound_is_on_ground_truth():
    m = depth_metrics(PRED, GT, 0.0, 70.0)
    # adds gt 60 m predicted 66 m: error 6000 mm, ratio 1.1 (< 1.25)
    assert m["n"] == 3
    assert m["mae"] == pytest.approx((1000 + 1000 + 6000) / 3)
    assert m["rmse"] == pytest.approx(math.sqrt((1e6 + 1e6 + 36e6) / 3))
    assert m["delta1"] == pytest.approx(1 / 3)
    assert depth_metrics(PRED, GT, 0.0, 80.0)["n"] == 3  # 100 m is outside 0-80 too
    assert depth_metrics(PRED, GT, 60.0, 80.0) is None  # lo < gt is strict: 60 m is excluded


def test_no_ground_truth_gives_none():
    assert depth_metrics(PRED, np.zeros_like(GT), 0.0, 80.0) is None


def test_images_are_averaged_not_pixels():
    acc = MetricAccumulator()
    acc.add(PRED, GT)  # 0-50: two pixels with 1000 mm error
    gt_b = np.array([[10.0]], np.float32)
    acc.add(np.array([[14.0]], np.float32), gt_b)  # one pixel with 4000 mm error
    s = acc.summary()
    assert acc.n_images == 2
    assert s["0-50"]["mae"] == pytest.approx((1000 + 4000) / 2)  # pixel-weighted would be 2000
    assert s["0-50"]["n_images"] == 2
    assert set(s) == {"0-50", "0-70", "0-80"} and len(RANGES) == 3


def test_crop_rows_evaluates_only_those_rows():
    acc = MetricAccumulator()
    acc.add(PRED, GT, crop_rows=(1, 2))  # only the 60 m pixel remains
    s = acc.summary()
    assert s["0-50"]["n_images"] == 0 and math.isnan(s["0-50"]["mae"])
    assert s["0-80"]["mae"] == pytest.approx(6000.0)
    with pytest.raises(ValueError, match="crop_rows"):
        acc.add(PRED, GT, crop_rows=(1, 5))


def test_invalid_predictions_are_excluded_and_reported_as_coverage():
    pred = PRED.copy()
    pred[0, 0] = np.nan  # the 2 m pixel has no prediction
    m = depth_metrics(pred, GT, 0.0, 50.0)
    assert m["n"] == 1 and m["n_gt"] == 2 and m["coverage"] == 0.5
    assert m["mae"] == pytest.approx(1000.0)
    pred[0, 1] = 0.0
    m = depth_metrics(pred, GT, 0.0, 50.0)
    assert m["n"] == 0 and m["coverage"] == 0.0 and math.isnan(m["mae"])
    with pytest.raises(ValueError, match="non-positive"):
        depth_metrics(pred, GT, 0.0, 50.0, invalid="error")


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="pred"):
        depth_metrics(PRED[:, :2], GT, 0.0, 50.0)


def test_format_table_has_paper_layout():
    acc = MetricAccumulator()
    acc.add(PRED, GT)
    table = format_table({"Complete": acc.summary(), "w/o Radar Refinement": acc.summary()})
    lines = table.splitlines()
    assert lines[0].startswith("| Dist | Configuration | MAE [mm] | RMSE [mm] | AbsRel | SqRel [mm] | δ1")
    assert "| 50m | Complete | 1000.000 | 1000.000 | 0.375 | 375.000 | 0.000" in table
    assert "|  | w/o Radar Refinement |" in table
    assert len(lines) == 2 + 3 * 2


# ---- raw radar vs LiDAR agreement (issue 2 item 7)
from racalnet_ros.metrics import depth_tolerance, radar_lidar_agreement  # noqa: E402


def test_tolerance_is_max_of_half_metre_and_five_percent():
    np.testing.assert_allclose(depth_tolerance([4.0, 10.0, 40.0]), [0.5, 0.5, 2.0])


def test_agreement_by_hand():
    lidar = np.zeros((100, 50), np.float32)
    lidar[20, 10] = 10.2  # 30 rows above radar point 0: inside a 65 px tall window, outside 7 px
    lidar[50, 12] = 30.0  # same row as point 0, 2 columns right
    lidar[90, 40] = 41.0  # near point 1 only
    uv = np.array([[10.0, 50.0], [40.0, 88.0], [40.0, 5.0]])
    depth = np.array([10.0, 40.0, 5.0])
    a = radar_lidar_agreement(uv, depth, lidar, window=(9, 65))
    # point 0: LiDAR 10.2 (|0.2| <= 0.5) and 30.0 -> some yes, most no (1 of 2 is not more than half), err 0.2
    # point 1: LiDAR 41.0 (|1.0| <= 0.05 * 40 = 2.0) -> some, most, err 1.0 ; point 2: no LiDAR within +-32 rows
    assert a["has_lidar"].tolist() == [True, True, False] and a["n_with_lidar"] == 2
    assert a["within_some"].tolist() == [True, True]
    assert a["within_most"].tolist() == [False, True]
    np.testing.assert_allclose(a["abs_err"], [0.2, 1.0], atol=1e-5)
    small = radar_lidar_agreement(uv, depth, lidar, window=(7, 7))
    assert small["has_lidar"].tolist() == [True, True, False]  # only the LiDAR 2 columns right is left for point 0
    assert small["within_some"].tolist() == [False, True]
    with pytest.raises(ValueError, match="window"):
        radar_lidar_agreement(uv, depth, lidar, window=(8, 65))
