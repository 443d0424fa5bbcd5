"""One configuration module (racalnet_ros/config.py): descriptions and ranges live in the dataclass metadata, one
loader reads plain or ROS-layout YAML plus dotted overrides, a bad key gets the same message from every entry point
(the ROS-parameter leg is test/ros/test_shipped_config.py), the parameter docs are generated from it, and the thread
rule and the range syntax are defined once."""

from __future__ import annotations

import pytest

from racalnet_ros.cli import main as racalnet
from racalnet_ros.config import (DOCS, ConfigError, PipelineConfig, default_cpu_threads, parameters_markdown,
                                 parse_prior_spec)
from racalnet_ros.errors import UsageError

#: (key, bad value, CLI flag giving the same key or None, the one message every entry point gives)
BAD_KEYS = [
    ("refine.clusters", 3, None, "unknown key 'refine.clusters' (did you mean 'refine.n_clusters'?)"),
    ("cpu_threads", "many", ["--threads", "many"], "cpu_threads: expected an integer, got 'many'"),
    ("recalibration.threshold", 1.5, ["--threshold", "1.5"], "recalibration.threshold: 1.5 is outside [-1, 1]"),
    ("prior.source", "oracle", ["--prior", "oracle"],
     "prior.source: 'oracle' is not one of frame, synthetic, topic, precomputed, depth-anything-v2"),
]
IDS = ["unknown", "mistyped", "out-of-range", "bad-choice"]


def evaluate_err(capsys, tmp_path, *extra: str) -> str:
    """stderr of `racalnet evaluate` with these settings (it checks its configuration before touching data)."""
    rc = racalnet(["evaluate", "--dataset", "astyx", "--root", str(tmp_path / "none"), "--out", str(tmp_path / "o"),
                   *extra])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and err.startswith("racalnet evaluate: "), err
    return err.strip()


@pytest.mark.parametrize("key, value, flag, message", BAD_KEYS, ids=IDS)
def test_a_bad_key_gets_the_same_message_from_set_config_yaml_and_a_cli_flag(key, value, flag, message, tmp_path,
                                                                             capsys):
    assert evaluate_err(capsys, tmp_path, "--set", f"{key}={value}") == f"racalnet evaluate: {message}"
    nested = tmp_path / "nested.yaml"
    head, _, leaf = key.rpartition(".")
    nested.write_text(f"{head}:\n  {leaf}: {value}\n" if head else f"{leaf}: {value}\n")
    assert evaluate_err(capsys, tmp_path, "--config", str(nested)) == f"racalnet evaluate: {nested}: {message}"
    ros = tmp_path / "ros.yaml"
    ros.write_text(f"/**:\n  ros__parameters:\n    {key}: {value}\n")
    assert evaluate_err(capsys, tmp_path, "--config", str(ros)) == f"racalnet evaluate: {ros}: {message}"
    if flag is not None:
        assert evaluate_err(capsys, tmp_path, *flag) == f"racalnet evaluate: {message}"
    with pytest.raises(ConfigError) as e:  # and the library gives the same text
        PipelineConfig.from_flat({key: value})
    assert str(e.value) == message


def test_the_committed_parameter_table_is_current():
    assert DOCS.read_text() == parameters_markdown(), "run: python -m racalnet_ros.config --markdown"


def test_plain_nested_dotted_and_ros_layout_yaml_load_the_same(tmp_path):
    want = PipelineConfig.from_flat({"refine.n_clusters": 5, "recalibration.threshold": 0.7, "device": "auto"})
    (tmp_path / "nested.yaml").write_text("refine:\n  n_clusters: 5\nrecalibration:\n  threshold: 0.7\ndevice: auto\n")
    (tmp_path / "dotted.yaml").write_text("refine.n_clusters: 5\nrecalibration.threshold: 0.7\ndevice: auto\n")
    (tmp_path / "ros.yaml").write_text("/**:\n  ros__parameters:\n    image_topic: /cam\n    sync:\n      slop: 0.1\n"
                                       "    refine:\n      n_clusters: 5\n    recalibration.threshold: 0.7\n"
                                       "    device: auto\n")
    for name in ("nested", "dotted", "ros"):
        assert PipelineConfig.from_yaml(tmp_path / f"{name}.yaml") == want, name
    # a plain file holds only pipeline keys: a stray key is an error, not silently ignored
    (tmp_path / "stray.yaml").write_text("image_topic: /cam\n")
    with pytest.raises(ConfigError, match="unknown key 'image_topic'"):
        PipelineConfig.from_yaml(tmp_path / "stray.yaml")


def test_later_sources_win_defaults_then_files_then_flags_then_set(tmp_path, capsys):
    from racalnet_ros.cli import build_parser
    from racalnet_ros.cli.options import pipeline_config

    (tmp_path / "a.yaml").write_text("refine.n_clusters: 5\nrecalibration.threshold: 0.2\nprior.source: synthetic\n")
    args = build_parser("infer").parse_args(
        ["infer", "--images", "i", "--radar", "r", "--calib", "c", "--out", "o", "--config", str(tmp_path / "a.yaml"),
         "--no-recalibration", "--set", "refine.n_clusters=6", "--device", "cpu"])
    cfg = pipeline_config(args)
    assert cfg.refine.n_clusters == 6 and cfg.recalibration.threshold == 0.2 and not cfg.recalibration.enabled
    assert cfg.prior.source == "synthetic" and cfg.device == "cpu"  # the file beats infer's default prior
    assert pipeline_config(build_parser("infer").parse_args(
        ["infer", "--images", "i", "--radar", "r", "--calib", "c", "--out", "o"])).prior.source == "depth-anything-v2"


def test_a_prior_spec_sets_source_and_path():
    assert parse_prior_spec("precomputed:/data/p") == {"prior.source": "precomputed", "prior.path": "/data/p"}
    assert parse_prior_spec("dav2") == {"prior.source": "depth-anything-v2", "prior.path": ""}
    assert PipelineConfig().with_values(parse_prior_spec("depth-anything-v2:/m")).prior.spec() == "depth-anything-v2:/m"
    with pytest.raises(ConfigError, match="prior.path: the precomputed source needs a folder"):
        PipelineConfig().with_values(parse_prior_spec("precomputed"))


def test_the_ablations_are_defined_once_in_the_config():
    base = PipelineConfig()
    assert not base.ablation("baseline").refine.enabled and base.ablation("baseline").align.regularization == 0
    assert base.ablation("no-displacement").recalibration.use_displacement is False
    assert base.refine.enabled and base.recalibration.use_displacement  # copies, the base is untouched
    with pytest.raises(ConfigError, match="unknown configuration 'best'"):
        base.ablation("best")


@pytest.mark.parametrize("cpus, threads", [(1, 1), (2, 1), (3, 1), (4, 2), (8, 4), (64, 4)])
def test_the_default_cpu_thread_rule(cpus, threads):
    assert default_cpu_threads(cpus) == threads


def test_threads_mean_the_same_in_every_command():
    import torch

    from racalnet_ros.cli import build_parser
    from racalnet_ros.cli.options import setup

    before = torch.get_num_threads()
    try:
        setup(build_parser("bench").parse_args(["bench", "--threads", "1"]))
        assert torch.get_num_threads() == 1
        setup(build_parser("bench").parse_args(["bench"]))
        assert torch.get_num_threads() == default_cpu_threads()
    finally:
        torch.set_num_threads(before)


def test_one_range_syntax_with_the_old_colon_form_as_an_alias():
    from racalnet_ros.cli.options import parse_ranges

    assert parse_ranges("80-83") == [80, 81, 82, 83]
    assert parse_ranges("1-3,8") == [1, 2, 3, 8] and parse_ranges("5,7") == [5, 7]
    assert parse_ranges("0:4") == parse_ranges("0-3") == [0, 1, 2, 3]  # A:B excludes B (old syntax, same seeds)
    with pytest.raises(UsageError, match="--seeds: cannot parse 'a-b'"):
        parse_ranges("a-b", "--seeds")
