"""Loopback-only DDS: each test worker / process gets its own domain, the environment keeps discovery on this host,
the Fast DDS profile has the large shared-memory segment, and a 640x480 rgb8 image and a 1,000-point cloud cross
processes over best-effort QoS."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from racalnet_ros.ros import dds


def test_every_xdist_worker_of_a_run_gets_its_own_domain_in_the_safe_range():
    ids = [dds.default_domain_id({"PYTEST_XDIST_WORKER": f"gw{i}", "PYTEST_XDIST_TESTRUNUID": "abc123"})
           for i in range(16)]
    assert len(set(ids)) == 16
    assert all(1 <= i <= 100 for i in ids)
    other_run = dds.default_domain_id({"PYTEST_XDIST_WORKER": "gw0", "PYTEST_XDIST_TESTRUNUID": "fff999"})
    assert 1 <= other_run <= 100


def test_without_xdist_the_domain_follows_the_process_and_can_be_forced():
    assert dds.default_domain_id({}, pid=1234) != dds.default_domain_id({}, pid=1235)
    assert dds.default_domain_id({"RACALNET_ROS_DOMAIN_ID": "42"}) == 42
    with pytest.raises(ValueError, match="RACALNET_ROS_DOMAIN_ID"):
        dds.default_domain_id({"RACALNET_ROS_DOMAIN_ID": "300"})


def test_the_environment_keeps_discovery_on_this_host():
    base = {"PATH": "/usr/bin", "HOME": "/tmp", "ROS_LOCALHOST_ONLY": "1", "ROS_STATIC_PEERS": "10.0.0.2",
            "ROS_DISCOVERY_SERVER": "10.0.0.3:11811", "ROS_DISTRO": "jazzy"}
    env = dds.local_ros_env(domain_id=17, base=base)
    assert env["ROS_DOMAIN_ID"] == "17" and env["PATH"] == "/usr/bin"
    assert env["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    assert env["RMW_IMPLEMENTATION"] == "rmw_fastrtps_cpp"
    assert env["FASTDDS_DEFAULT_PROFILES_FILE"] == env["FASTRTPS_DEFAULT_PROFILES_FILE"] == str(dds.FASTDDS_PROFILE)
    for k in ("ROS_LOCALHOST_ONLY", "ROS_STATIC_PEERS", "ROS_DISCOVERY_SERVER"):
        assert k not in env
    kilted = dds.local_ros_env(domain_id=17, base={**base, "ROS_DISTRO": "kilted"})
    assert "FASTRTPS_DEFAULT_PROFILES_FILE" not in kilted  # Fast DDS 3 warns about the old name


def test_a_log_directory_is_provided_when_home_is_missing(tmp_path):
    env = dds.local_ros_env(domain_id=3, base={"PATH": "/usr/bin"})
    assert env["ROS_LOG_DIR"]
    env = dds.local_ros_env(domain_id=3, log_dir=tmp_path / "logs", base={"HOME": "/tmp"})
    assert env["ROS_LOG_DIR"] == str(tmp_path / "logs") and (tmp_path / "logs").is_dir()


def test_the_profile_has_a_32_MiB_shared_memory_segment_and_udp_on_loopback_only():
    ns = {"d": "http://www.eprosima.com"}
    root = ET.parse(dds.FASTDDS_PROFILE).getroot()
    transports = {t.find("d:transport_id", ns).text: t for t in root.iterfind(".//d:transport_descriptor", ns)}
    kinds = {t.find("d:type", ns).text: t for t in transports.values()}
    assert int(kinds["SHM"].find("d:segment_size", ns).text) == 32 * 1024 * 1024
    assert [a.text for a in kinds["UDPv4"].iterfind("d:interfaceWhiteList/d:address", ns)] == ["127.0.0.1"]
    participant = root.find(".//d:participant", ns)
    assert participant.get("is_default_profile") == "true"
    assert participant.find("d:rtps/d:useBuiltinTransports", ns).text == "false"
    used = [t.text for t in participant.iterfind("d:rtps/d:userTransports/d:transport_id", ns)]
    assert sorted(used) == sorted(transports)


PUBLISHER = textwrap.dedent("""
    import time, numpy as np, rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image, PointCloud2
    from racalnet_ros.ros import convert
    rclpy.init()
    node = rclpy.create_node("dds_test_publisher")
    pi = node.create_publisher(Image, "dds_test/image", qos_profile_sensor_data)
    pc = node.create_publisher(PointCloud2, "dds_test/cloud", qos_profile_sensor_data)
    img = np.arange(480 * 640 * 3, dtype=np.uint32).astype(np.uint8).reshape(480, 640, 3)
    cloud = np.arange(3000, dtype=np.float32).reshape(1000, 3)
    img_msg = convert.array_to_image(img, "rgb8")
    cloud_msg = convert.array_to_pointcloud2({"x": cloud[:, 0], "y": cloud[:, 1], "z": cloud[:, 2]})
    end = time.monotonic() + 600  # killed by the test once it has what it needs
    while time.monotonic() < end:
        pi.publish(img_msg); pc.publish(cloud_msg); time.sleep(0.05)
""")


@pytest.mark.ros
@pytest.mark.timeout(600)
def test_a_large_image_and_a_cloud_cross_processes_over_best_effort(ros_node, ros_domain_id, spin, tmp_path):
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image, PointCloud2

    from racalnet_ros.ros import convert

    got = {"image": [], "cloud": []}
    ros_node.create_subscription(Image, "dds_test/image", got["image"].append, qos_profile_sensor_data)
    ros_node.create_subscription(PointCloud2, "dds_test/cloud", got["cloud"].append, qos_profile_sensor_data)
    env = dds.local_ros_env(domain_id=ros_domain_id, log_dir=tmp_path)
    proc = subprocess.Popen([sys.executable, "-c", PUBLISHER], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        ok = spin(ros_node, lambda: len(got["image"]) >= 3 and len(got["cloud"]) >= 3, timeout=300)  # failure bound
    finally:
        proc.kill()
        out = proc.communicate(timeout=60)[0].decode(errors="replace")
    assert ok, f"received {len(got['image'])} images, {len(got['cloud'])} clouds\n{out}"
    img = convert.image_to_array(got["image"][-1])
    expected = np.arange(480 * 640 * 3, dtype=np.uint32).astype(np.uint8).reshape(480, 640, 3)
    np.testing.assert_array_equal(img, expected)
    pts = convert.pointcloud2_to_array(got["cloud"][-1])
    assert len(pts) == 1000 and pts["z"][-1] == 2999.0
