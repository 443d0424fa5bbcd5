"""Where the Depth Anything V2 weights come from (metric_depth/weights.py): a local folder, the local Hugging Face
cache, or one download when the Hub answers. Offline and not cached, every entry point stops with one line naming
the model and the alternatives, after at most one network request; Ctrl-C while a model loads exits cleanly."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from racalnet_ros.metric_depth import weights
from racalnet_ros.metric_depth.priors import DEFAULT_DEPTH_ANYTHING, DepthAnythingV2Prior, PriorUnavailable

from test_priors import save_tiny_depth_anything, tiny_frame

ROOT = Path(__file__).resolve().parents[1]
UNREACHABLE = "http://127.0.0.1:9"  # the discard port: connection refused at once


@pytest.fixture(scope="module")
def tiny_da(tmp_path_factory):
    return save_tiny_depth_anything(tmp_path_factory.mktemp("tiny_da"))


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache, the fake unreachable endpoint, online mode."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_ENDPOINT", UNREACHABLE)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    return tmp_path / "hub"


def put_in_cache(cache: Path, repo_id: str, folder: Path, sha: str = "0123456789abcdef0123456789abcdef01234567"):
    """The Hugging Face cache layout `hf download` leaves: models--ORG--NAME/{refs/main, snapshots/SHA/<files>}."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(sha)
    shutil.copytree(folder, repo / "snapshots" / sha)
    return repo / "snapshots" / sha


def one_line(text: str) -> bool:
    return len([ln for ln in text.splitlines() if ln.strip()]) == 1 and "Traceback" not in text


def test_a_local_folder_is_used_as_is_and_an_incomplete_one_is_named(tiny_da, tmp_path):
    assert weights.locate_depth_anything(str(tiny_da)) == tiny_da
    partial = tmp_path / "partial"
    partial.mkdir()
    shutil.copy(tiny_da / "config.json", partial)
    with pytest.raises(PriorUnavailable, match=r"partial lacks preprocessor_config.json, model.safetensors"):
        weights.locate_depth_anything(str(partial))
    with pytest.raises(PriorUnavailable, match=r"folder /nowhere/dav2 does not exist"):
        weights.locate_depth_anything("/nowhere/dav2")


def test_a_cached_hub_model_loads_without_the_network(tiny_da, empty_cache):
    snap = put_in_cache(empty_cache, DEFAULT_DEPTH_ANYTHING, tiny_da)
    assert weights.locate_depth_anything(DEFAULT_DEPTH_ANYTHING) == snap  # the endpoint is unreachable
    prior = DepthAnythingV2Prior()  # the default id, from the cache
    assert prior.folder == snap and prior.predict(tiny_frame(42, 60)).shape == (42, 60)


def test_offline_and_not_cached_stops_at_once_naming_the_model_and_the_alternatives(empty_cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    calls = []
    monkeypatch.setattr(weights, "probe", lambda *a, **k: calls.append(a))
    with pytest.raises(PriorUnavailable) as info:
        weights.locate_depth_anything(DEFAULT_DEPTH_ANYTHING)
    msg = str(info.value)
    assert calls == []  # HF_HUB_OFFLINE: not even one request
    assert DEFAULT_DEPTH_ANYTHING in msg and "HF_HUB_OFFLINE is set" in msg and str(empty_cache) in msg
    for alternative in ("hf download", "prior.path", "prior.source: topic", "precomputed:DIR"):
        assert alternative in msg
    assert "\n" not in msg


def test_an_unreachable_hub_is_reported_after_one_refused_connection(empty_cache):
    with pytest.raises(PriorUnavailable, match=r"http://127.0.0.1:9 cannot be reached .*Connection refused"):
        weights.locate_depth_anything(DEFAULT_DEPTH_ANYTHING)


def test_a_hub_that_never_answers_gets_one_request_and_a_bounded_wait(empty_cache, monkeypatch):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted = []

    def accept():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            accepted.append(conn)  # never answered

    threading.Thread(target=accept, daemon=True).start()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}")
    monkeypatch.setattr(weights, "PROBE_TIMEOUT_S", 1.0)
    try:
        with pytest.raises(PriorUnavailable, match=r"(did not answer within 1 s|cannot be reached \(timed out\))"):
            weights.locate_depth_anything(DEFAULT_DEPTH_ANYTHING)
    finally:
        server.close()
        for c in accepted:
            c.close()
    assert len(accepted) == 1  # no retries


def test_online_a_reachable_hub_downloads_once_into_the_cache(tiny_da, empty_cache, monkeypatch):
    """The download path (huggingface_hub.snapshot_download, replaced here: no network in tests) runs only after the
    Hub answered, and what it fetched is what gets loaded."""
    fetched = []

    def fake_snapshot(model):
        fetched.append(model)
        return put_in_cache(empty_cache, model, tiny_da)

    monkeypatch.setattr(weights, "probe", lambda model, timeout=None: None)
    monkeypatch.setattr(weights, "download", fake_snapshot)
    notes = []
    folder = weights.locate_depth_anything(DEFAULT_DEPTH_ANYTHING, note=notes.append)
    assert fetched == [DEFAULT_DEPTH_ANYTHING] and (folder / "config.json").is_file()
    assert "downloading" in notes[0] and str(empty_cache) in notes[0]
    assert weights.locate_depth_anything(DEFAULT_DEPTH_ANYTHING) == folder and fetched == [DEFAULT_DEPTH_ANYTHING]


def cli_env(tmp_path, **extra) -> dict:
    env = dict(os.environ, HF_HOME=str(tmp_path / "hf_home"), HF_ENDPOINT=UNREACHABLE, PYTHONPATH=str(ROOT),
               PYTHONFAULTHANDLER="1", **extra)
    env.pop("HF_HUB_OFFLINE", None)
    return env


def infer_args(root: Path, *extra: str) -> list[str]:
    (root / "images").mkdir(exist_ok=True)
    (root / "radar").mkdir(exist_ok=True)
    import cv2
    import numpy as np
    cv2.imwrite(str(root / "images" / "a.png"), np.full((48, 64, 3), 90, np.uint8))
    np.save(root / "radar" / "a.npy", np.array([[10.0, 0.0, 0.0]], np.float32))
    (root / "calib.yaml").write_text("K: [80, 0, 32, 0, 80, 24, 0, 0, 1]\n"
                                     "T_cam_radar: [0, -1, 0, 0, 0, 0, -1, 0, 1, 0, 0, 0, 0, 0, 0, 1]\n")
    return ["infer", "--images", str(root / "images"), "--radar", str(root / "radar"), "--calib",
            str(root / "calib.yaml"), "--out", str(root / "out"), *extra]


def test_infer_with_the_default_prior_offline_prints_one_line_and_writes_nothing(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "racalnet_ros.cli", *infer_args(tmp_path)], env=cli_env(tmp_path),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2, proc.stderr
    assert one_line(proc.stderr), proc.stderr
    assert proc.stderr.startswith("racalnet infer: depth-anything-v2: 'depth-anything/Depth-Anything-V2-Small-hf'")
    assert "Retrying" not in proc.stderr and not (tmp_path / "out" / "depth").exists()


SLOW_LOAD = """
import sys, time
import transformers
load = transformers.AutoModelForDepthEstimation.from_pretrained.__func__
def slow(cls, *args, **kwargs):  # a big model on a slow disk
    print("SLOW LOAD STARTED", flush=True)
    time.sleep(300)
    return load(cls, *args, **kwargs)
transformers.AutoModelForDepthEstimation.from_pretrained = classmethod(slow)
"""


def interrupt_when_loading(cmd: list[str], env: dict, marker: str = "SLOW LOAD STARTED") -> tuple[int, str]:
    """Start `cmd` in its own process group, SIGINT it once it prints `marker`; (exit code, everything printed)."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    out = b""
    try:
        while marker.encode() not in out:
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                break
            out += chunk
        assert marker.encode() in out, out.decode(errors="replace")
        os.killpg(proc.pid, signal.SIGINT)
        try:
            rc = proc.wait(120)
        except subprocess.TimeoutExpired:  # say where it hangs: faulthandler (PYTHONFAULTHANDLER) dumps every thread
            os.killpg(proc.pid, signal.SIGABRT)
            proc.wait(30)
            raise AssertionError("no exit 120 s after SIGINT:\n" + (out + proc.stdout.read()).decode(errors="replace"))
        out += proc.stdout.read()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    with pytest.raises(ProcessLookupError):  # nothing of the group is left
        os.killpg(proc.pid, 0)
    return rc, out.decode(errors="replace")


@pytest.mark.timeout(600)
def test_ctrl_c_while_infer_loads_the_prior_exits_cleanly(tiny_da, tmp_path):
    script = SLOW_LOAD + "from racalnet_ros.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    rc, out = interrupt_when_loading(
        [sys.executable, "-c", script, *infer_args(tmp_path, "--prior", f"depth-anything-v2:{tiny_da}")],
        cli_env(tmp_path))
    assert rc == 130, out
    assert "racalnet infer: interrupted" in out and "Traceback" not in out and "KeyboardInterrupt" not in out
