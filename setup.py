"""ament_python package `racalnet_ros`. Installs with `colcon build` in a ROS 2 workspace (rclpy and the message
packages then come from the ROS distro) or with `pip install -e .[ros,test]` in a plain venv (the `ros` extra pulls the
ROS 2 Kilted wheels from PyPI, pinned below)."""

from glob import glob

from setuptools import find_packages, setup

package_name = "racalnet_ros"

# ROS 2 Python pieces from PyPI for a venv without a ROS distro (Kilted wheels). In a colcon workspace these come
# from the distro instead, so they are an extra, not a hard requirement.
ROS_WHEELS = [
    "ros-rclpy==9.1.2",
    "ros-sensor-msgs==5.5.1",
    "ros-std-msgs==5.5.1",
    "ros-geometry-msgs==5.5.1",
    "ros-diagnostic-msgs==5.5.1",
    "ros-rosgraph-msgs==2.3.0",
    "ros-builtin-interfaces==2.3.0",
    "ros-rcl-interfaces==2.3.0",
    "ros-rmw-fastrtps-cpp==9.3.3",
]

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        ("share/" + package_name + "/launch", glob("launch/*.launch.py")),
        ("share/" + package_name + "/config", glob("config/*.yaml") + glob("config/*.xml")),
        ("share/" + package_name + "/rviz", glob("rviz/*.rviz")),
    ],
    package_data={package_name: ["checkpoints/*.safetensors", "checkpoints/*.json", "ros/*.xml"]},
    include_package_data=True,
    python_requires=">=3.10",
    install_requires=[
        "numpy>=1.24",
        "scipy>=1.10",
        "opencv-python-headless>=4.8",
        "scikit-learn>=1.3",  # RANSAC ground planes of datasets/radar_stats.py; the K-means reference of the tests
        "torch>=2.1",
        "torchvision>=0.16",
        "safetensors>=0.4",
        "transformers>=4.45",
        "huggingface_hub>=0.23",  # weights lookup in the local cache (metric_depth/weights.py); comes with transformers
        "pillow>=9.0",  # strict JPEG decoding of truncated files (datasets/base.py); comes with torchvision
        "rosbags>=0.10",
        "transforms3d>=0.4",
        "open3d-cpu>=0.18; platform_machine == 'x86_64'",
        "open3d>=0.18; platform_machine != 'x86_64'",
        "tqdm>=4.60",
        "pyyaml>=6.0",
    ],
    extras_require={
        "ros": ROS_WHEELS,
        "test": ["pytest>=7.4", "pytest-xdist>=3.3", "pytest-timeout>=2.2", "colcon-common-extensions>=0.3"],
    },
    zip_safe=True,
    maintainer="racalnet_ros developers",
    maintainer_email="racalnet-ros@example.com",
    description="RaCalNet: radar recalibration and metric depth from 4D radar + camera, as a ROS 2 node.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "racalnet = racalnet_ros.cli:main",
            "racalnet_node = racalnet_ros.node:main",
        ],
    },
)
