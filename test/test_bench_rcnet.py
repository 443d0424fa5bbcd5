"""The RC-Net side-by-side benchmark needs a user's RadarCam-Depth checkout; without one it skips with a clear row."""

import math

from racalnet_ros.bench import rcnet


def test_without_a_radarcam_depth_checkout_the_rcnet_bench_says_skipped(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv(rcnet.ENV, str(tmp_path))  # a folder that is not a RadarCam-Depth checkout
    rows = rcnet.run(quick=True)
    assert len(rows) == 1 and math.isnan(rows[0]["ms"]) and rcnet.ENV in rows[0]["skipped"]
    assert "threads" in rows[0] and "load" in rows[0] and "torch" in rows[0]
    assert "RADARCAM_DEPTH" in capsys.readouterr().err
