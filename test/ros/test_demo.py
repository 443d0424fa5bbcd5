"""The demo (`racalnet demo`, run by scripts/demo.sh): a short run writes a report with the metrics table and PNGs and
prints its path, for synthetic frames (saying that their prior is simulated from the ground truth) and for the shared
real Astyx frames (`--real`: full vs no-recalibration vs baseline vs the prior fitted to the LiDAR, and what limits
the numbers);
failures exit non-zero with a message; the node it started is gone afterwards, also when the demo is stopped with
SIGTERM halfway."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.ros]

REPO = Path(__file__).resolve().parents[2]


def demo_cmd(out: Path, domain_id: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "racalnet_ros.cli", "demo", "--out", str(out), "--domain-id", str(domain_id),
            "--frames", "2", "--width", "320", "--height", "240", "--pngs", "2", *extra]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0); it has exited
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_demo_script_sets_up_then_runs_the_demo():
    text = (REPO / "scripts" / "demo.sh").read_text()
    assert "set -euo pipefail" in text
    assert text.index("scripts/setup.sh") < text.index("racalnet_ros.cli demo")


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_short_demo_writes_a_report_with_metrics_and_pngs(tmp_path, ros_domain_id):
    out = tmp_path / "demo"
    proc = subprocess.run(demo_cmd(out, ros_domain_id), capture_output=True, text=True,
                          timeout=880, cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = Path(re.search(r"^report: (.+)$", proc.stdout, re.M).group(1))
    assert report == out / "report.md"
    text = report.read_text()
    assert "| 80m | racalnet_node" in text and "Frames scored: 2 of 2" in text
    for row in ("same pipeline, raw radar (no recalibration)", "baseline: RadarCam-Depth stage 2 on raw radar",
                "prior fitted to the LiDAR itself (one affine map per frame)"):
        assert f"|  | {row} |" in text
    assert "**The prior is simulated from the ground truth.**" in text
    pngs = re.findall(r"\]\((frame_[^)]+\.png)\)", text)
    assert len(pngs) == 4 and all((out / p).stat().st_size > 1000 for p in pngs)
    assert not pid_alive(int((out / "node.pid").read_text()))


@pytest.mark.astyx
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_real_demo_on_astyx_validation_frames_reports_what_limits_its_numbers(astyx_root, tmp_path, ros_domain_id):
    out = tmp_path / "real"
    proc = subprocess.run([sys.executable, "-m", "racalnet_ros.cli", "demo", "--real", "--root", str(astyx_root),
                           "--frames", "80,90", "--out", str(out), "--domain-id", str(ros_domain_id), "--pngs", "1",
                           "--threads", "1"], capture_output=True, text=True, timeout=880, cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = (out / "report.md").read_text()
    assert text.startswith("# racalnet_ros demo: real Astyx frames")
    assert "2 real Astyx HiRes2019 frames (80,90)" in text and "2048x618" in text and "Frames scored: 2 of 2" in text
    rows = {m.group(1): float(m.group(2)) for m in re.finditer(r"^\| (?:80m)? \| ([^|]+?) \| [\d.]+ \| ([\d.]+) \|",
                                                                 text[text.index("| 80m |"):], re.M)}
    assert set(rows) == {"racalnet_node (full: recalibrated radar)", "same pipeline, raw radar (no recalibration)",
                         "baseline: RadarCam-Depth stage 2 on raw radar",
                         "prior fitted to the LiDAR itself (one affine map per frame)"}
    # the weak prior: even fitted to the LiDAR itself it is metres off (RMSE in mm)
    assert rows["prior fitted to the LiDAR itself (one affine map per frame)"] > 2000
    for phrase in ("**The prior is weak.** FastDepth", "**The ground truth is one VLP-16 sweep**",
                   "**The checkpoint was trained on synthetic data only**", "These are Astyx test frames (80-99)"):
        assert phrase in text
    assert "input_bag" in text and not any(p.suffix == ".jpg" for p in out.rglob("*"))  # a bag, no copied files
    pngs = re.findall(r"\]\((frame_[^)]+\.png)\)", text)
    assert pngs == ["frame_000080_anchors.png", "frame_000080_depth.png"]
    assert not pid_alive(int((out / "node.pid").read_text()))


def test_the_real_demo_without_the_data_stops_before_writing_anything(tmp_path, ros_domain_id):
    proc = subprocess.run([sys.executable, "-m", "racalnet_ros.cli", "demo", "--real", "--root",
                           str(tmp_path / "nothing"), "--out", str(tmp_path / "d")],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert proc.stderr.startswith(f"racalnet demo: --root: no Astyx HiRes2019 frames at {tmp_path / 'nothing'}")
    assert not (tmp_path / "d").exists()


def test_a_missing_checkpoint_fails_with_a_clear_message(tmp_path, ros_domain_id):
    proc = subprocess.run(demo_cmd(tmp_path / "d", ros_domain_id, "--checkpoint", str(tmp_path / "none.safetensors")),
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 2
    assert proc.stderr.startswith("racalnet demo: recalibration.checkpoint ")
    assert "none.safetensors: no such file" in proc.stderr and proc.stderr.count("\n") == 1
    assert not (tmp_path / "d" / "input_bag").exists()  # decided before any work


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_sigterm_mid_run_stops_the_node_and_exits_non_zero(tmp_path, ros_domain_id):
    out = tmp_path / "demo"
    proc = subprocess.Popen(demo_cmd(out, ros_domain_id), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True)
    try:
        deadline = time.monotonic() + 400
        while not (out / "node.pid").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert (out / "node.pid").exists(), proc.stdout.read().decode(errors="replace") if proc.poll() else "timeout"
        node_pid = int((out / "node.pid").read_text())
        time.sleep(1.0)  # the node is starting (imports, checkpoint) or running
        proc.send_signal(signal.SIGTERM)  # to the demo only, not its group: the demo must stop the node itself
        rc = proc.wait(300)  # failure bound: the demo stops the node (SIGINT, then SIGTERM / SIGKILL) first
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    assert rc != 0
    deadline = time.monotonic() + 60
    while pid_alive(node_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not pid_alive(node_pid), "the demo left racalnet_node running"
