"""Recalibration labels (paper Eq. 4-8) on small hand-made LiDAR depth maps."""

import numpy as np
import pytest

from racalnet_ros.recalibration.config import LabelConfig
from racalnet_ros.recalibration.labels import confidence_labels, displacement_labels, make_labels

CFG = LabelConfig(conf_window=(3, 3), n_min=2, tau_min=0.5, alpha=0.05, search_window=(7, 7), slide_window=(3, 3))


def lidar(points, shape=(20, 20)):
    D = np.zeros(shape, np.float32)
    for (r, c), d in points.items():
        D[r, c] = d
    return D


def test_tau_grows_with_range_above_a_floor():  # Eq. 5
    assert CFG.tau(2.0) == pytest.approx(0.5)
    assert CFG.tau(40.0) == pytest.approx(2.0)


def test_confidence_is_one_with_n_min_consistent_lidar_pixels():  # Eq. 4
    D = lidar({(5, 5): 10.0, (6, 6): 10.3, (4, 6): 10.4})
    label, sup, count = confidence_labels(np.array([[5.0, 5.0]]), np.array([10.0]), D, CFG)
    assert label.tolist() == [1.0] and sup.tolist() == [True] and count.tolist() == [3]


def test_confidence_is_zero_when_lidar_disagrees_in_depth_but_point_is_supervised():  # Eq. 4, 6
    D = lidar({(5, 5): 20.0, (6, 6): 20.0})
    label, sup, count = confidence_labels(np.array([[5.0, 5.0]]), np.array([10.0]), D, CFG)
    assert label.tolist() == [0.0] and sup.tolist() == [True] and count.tolist() == [0]


def test_one_consistent_pixel_is_below_n_min():
    D = lidar({(5, 5): 10.0, (6, 6): 30.0})
    label, sup, _ = confidence_labels(np.array([[5.0, 5.0]]), np.array([10.0]), D, CFG)
    assert label.tolist() == [0.0] and sup.tolist() == [True]


def test_tolerance_scales_with_range():
    # 1.5 m off: inconsistent at 10 m (tau 0.5) but consistent at 40 m (tau 2.0)
    D = lidar({(5, 5): 11.5, (5, 6): 11.5, (15, 15): 41.5, (15, 16): 41.5})
    label, _, _ = confidence_labels(np.array([[5.0, 5.0], [15.0, 15.0]]), np.array([10.0, 40.0]), D, CFG)
    assert label.tolist() == [0.0, 1.0]


def test_no_lidar_nearby_is_not_supervised():  # Eq. 6's set
    D = lidar({(15, 15): 10.0})
    label, sup, _ = confidence_labels(np.array([[5.0, 5.0]]), np.array([10.0]), D, CFG)
    assert label.tolist() == [0.0] and sup.tolist() == [False]
    delta, dsup, best = displacement_labels(np.array([[5.0, 5.0]]), np.array([10.0]), D, CFG)
    assert dsup.tolist() == [False] and best.tolist() == [0] and np.all(delta == 0)


def test_non_square_neighbourhood_reaches_lidar_rows_far_above():
    cfg = LabelConfig(conf_window=(11, 3), n_min=2, search_window=(11, 3), slide_window=(11, 3))
    D = lidar({(0, 4): 10.0, (0, 5): 10.0})  # a beam 5 rows above the point
    label, sup, _ = confidence_labels(np.array([[5.0, 5.0]]), np.array([10.0]), D, cfg)
    assert label.tolist() == [1.0] and sup.tolist() == [True]
    label, sup, _ = confidence_labels(np.array([[5.0, 5.0]]), np.array([10.0]), D, CFG)
    assert sup.tolist() == [False]


def test_displacement_points_to_the_window_with_most_consistent_lidar():  # Eq. 7-8
    # a consistent cluster up-right of the point, a larger but inconsistent one (wrong depth) to the left
    D = lidar({(4, 7): 10.0, (4, 8): 10.0, (3, 8): 10.0,
               (5, 3): 30.0, (5, 2): 30.0, (4, 2): 30.0, (6, 2): 30.0})
    delta, sup, best = displacement_labels(np.array([[5.0, 5.0]]), np.array([10.0]), D, CFG)
    # windows (3x3) holding all three consistent pixels are centred at (r, c) in {(4, 7) ... } -> nearest (4, 7)
    assert sup.tolist() == [True] and best.tolist() == [3]
    assert delta[0].tolist() == [2.0, -1.0]


def test_displacement_is_measured_from_the_subpixel_projection():
    D = lidar({(4, 7): 10.0, (4, 8): 10.0, (3, 8): 10.0})
    delta, _, _ = displacement_labels(np.array([[5.2, 4.9]]), np.array([10.0]), D, CFG)
    np.testing.assert_allclose(delta[0], [7 - 5.2, 4 - 4.9], atol=1e-5)


def test_ties_go_to_the_smallest_displacement():
    # a uniform consistent wall: every candidate window is full, so the label is zero displacement
    D = np.full((20, 20), 10.0, np.float32)
    delta, sup, best = displacement_labels(np.array([[10.0, 10.0]]), np.array([10.0]), D, CFG)
    assert sup.tolist() == [True] and best.tolist() == [9] and delta[0].tolist() == [0.0, 0.0]


def test_ties_at_equal_distance_go_to_the_first_in_row_major_order():
    # two equal clusters at the same distance, left and right: the left one (first in row-major order) wins
    cfg = LabelConfig(conf_window=(3, 3), n_min=2, search_window=(11, 11), slide_window=(3, 3))
    D = lidar({(10, 7): 10.0, (10, 6): 10.0, (10, 13): 10.0, (10, 14): 10.0})
    delta, sup, best = displacement_labels(np.array([[10.0, 10.0]]), np.array([10.0]), D, cfg)
    assert best.tolist() == [2] and delta[0].tolist() == [-3.0, 0.0]


def test_window_borders_count_only_pixels_inside_the_image_and_never_leave_it():
    D = lidar({(0, 0): 10.0, (0, 1): 10.0, (1, 0): 10.0})
    label, sup, count = confidence_labels(np.array([[0.0, 0.0]]), np.array([10.0]), D, CFG)
    assert label.tolist() == [1.0] and count.tolist() == [3]
    delta, sup, best = displacement_labels(np.array([[0.0, 0.0]]), np.array([10.0]), D, CFG)
    # the best 3x3 window holds all three pixels; centres (0,0), (0,1), (1,0), (1,1) do -> nearest is (0, 0)
    assert sup.tolist() == [True] and best.tolist() == [3] and delta[0].tolist() == [0.0, 0.0]
    # near the bottom-right corner: a window centre outside the image is never chosen
    D = lidar({(19, 19): 10.0, (19, 18): 10.0})
    delta, sup, _ = displacement_labels(np.array([[17.0, 17.0]]), np.array([10.0]), D, CFG)
    u, v = 17 + delta[0, 0], 17 + delta[0, 1]
    assert sup.tolist() == [True] and 0 <= u <= 19 and 0 <= v <= 19


def test_make_labels_has_one_row_per_point_and_handles_no_points():
    D = lidar({(5, 5): 10.0, (5, 6): 10.0})
    lab = make_labels(np.array([[5.0, 5.0], [15.0, 15.0]]), np.array([10.0, 10.0]), D, CFG)
    assert lab.confidence.shape == (2,) and lab.displacement.shape == (2, 2)
    assert lab.conf_mask.tolist() == [True, False]
    empty = make_labels(np.zeros((0, 2)), np.zeros(0), D, CFG)
    assert empty.confidence.shape == (0,) and empty.displacement.shape == (0, 2)


def test_bad_window_sizes_are_rejected_naming_the_field():
    with pytest.raises(ValueError, match="conf_window"):
        LabelConfig(conf_window=(4, 3))
    with pytest.raises(ValueError, match="slide_window"):
        LabelConfig(search_window=(5, 5), slide_window=(7, 7))


# --- disp_rule="nearest": the smallest move onto a depth-consistent surface --------------------------------------
NEAREST = LabelConfig(conf_window=(3, 3), n_min=2, tau_min=0.5, alpha=0.05, search_window=(9, 41), slide_window=(3, 3),
                      disp_rule="nearest")


def car_edge(shape=(20, 60), edge_col=30, depth=10.0, background=40.0):
    """A car at `depth` filling the columns from edge_col rightwards (LiDAR every 2nd column on rows 8-12),
    background far behind on the left."""
    D = np.zeros(shape, np.float32)
    for r in range(8, 13):
        D[r, 0:edge_col:2] = background
        D[r, edge_col::2] = depth
    return D


def test_a_point_12px_left_of_a_consistent_car_edge_is_labelled_onto_the_edge():
    D = car_edge()
    delta, sup, _ = displacement_labels(np.array([[18.0, 10.0]]), np.array([10.0]), D, NEAREST)
    assert sup.tolist() == [True]
    assert abs(18.0 + delta[0, 0] - 30.0) <= 2.0 and delta[0, 1] == 0.0
    # the densest rule (Eq. 8 as written) takes the nearest of the fullest windows, which lie inside the car
    old = LabelConfig(**{**NEAREST.to_dict(), "disp_rule": "densest"})
    delta_old, _, _ = displacement_labels(np.array([[18.0, 10.0]]), np.array([10.0]), D, old)
    assert 18.0 + delta_old[0, 0] >= 30.0


def test_a_point_already_on_a_consistent_surface_stays_even_if_a_denser_one_is_near():
    # two consistent pixels around the point (passes n_min) and a denser consistent cluster 4 px right
    D = lidar({(5, 5): 10.0, (5, 6): 10.0, (4, 9): 10.0, (5, 9): 10.0, (6, 9): 10.0, (4, 10): 10.0, (5, 10): 10.0})
    delta, sup, best = displacement_labels(np.array([[5.0, 5.0]]), np.array([10.0]), D, NEAREST)
    assert sup.tolist() == [True] and delta[0].tolist() == [0.0, 0.0] and best.tolist() == [2]
    delta_old, _, _ = displacement_labels(np.array([[5.0, 5.0]]), np.array([10.0]), D,
                                          LabelConfig(**{**NEAREST.to_dict(), "disp_rule": "densest"}))
    assert delta_old[0, 0] > 2.0


def test_nearest_ignores_windows_below_the_count_and_inconsistent_depths():
    # one lone consistent pixel 1 px away (below n_min), a wrong-depth pair 2 px away, a consistent pair 6 px away
    D = lidar({(5, 6): 10.0, (5, 3): 30.0, (5, 2): 30.0, (5, 11): 10.0, (5, 12): 10.0}, shape=(11, 30))
    delta, sup, best = displacement_labels(np.array([[5.0, 5.0]]), np.array([10.0]), D, NEAREST)
    # the nearest 3x3 centre holding both (5, 11) and (5, 12) is (5, 11); (5, 10) holds only (5, 11)
    assert sup.tolist() == [True] and best.tolist() == [2] and delta[0].tolist() == [6.0, 0.0]


def test_nearest_without_any_consistent_window_leaves_the_point_unsupervised():
    D = lidar({(5, 6): 30.0, (5, 7): 30.0})
    delta, sup, best = displacement_labels(np.array([[5.0, 5.0]]), np.array([10.0]), D, NEAREST)
    assert sup.tolist() == [False] and np.all(delta == 0)


def test_an_unknown_disp_rule_is_rejected_naming_the_field_and_old_configs_read_as_densest():
    with pytest.raises(ValueError, match="disp_rule"):
        LabelConfig(disp_rule="closest")
    d = LabelConfig().to_dict()
    d.pop("disp_rule")  # a checkpoint written before the field existed
    assert LabelConfig(**d).disp_rule == "densest"
