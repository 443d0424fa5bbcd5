"""Launch racalnet_node (+ optionally rviz2 and a rosbag2 replay).

    ros2 launch racalnet_ros racalnet.launch.py
    ros2 launch racalnet_ros racalnet.launch.py params_file:=/path/my.yaml rviz:=true \
        radar_topic:=/radar/points image_topic:=/camera/image_raw camera_info_topic:=/camera/camera_info
    ros2 launch racalnet_ros racalnet.launch.py bag:=/data/drive.mcap use_sim_time:=true rviz:=true

Arguments: params_file (default: the package's config/racalnet.yaml), use_sim_time, namespace, rviz (start rviz2
with rviz/racalnet.rviz), bag (replay this rosbag2 alongside with `ros2 bag play --clock`; set use_sim_time:=true),
and the input remappings radar_topic, image_topic, camera_info_topic, prior_topic. Their defaults are the topics of
the bags written by `racalnet bag-from-dataset` (docs/bags.md), so `bag:=...` works as is.

When a part fails (docs/ros.md, "Launch"):
- racalnet_node exits (e.g. a bad parameter: one FATAL line): the whole launch shuts down (rviz2, the replay too).
- rviz:=true without rviz2 installed: one log line, the node runs on; rviz2 exiting (closed, no display): one log
  line, the node runs on.
- bag:=... that cannot be replayed (no such file, `ros2` or rosbag2 missing, `ros2 bag play` failing): the launch
  shuts down with the reason; a replay that finishes cleanly leaves the node running.
The launch process stays the parent of everything it started, so Ctrl-C (or its exit) stops them all. The bag path
is used as a plain string (never evaluated), so any path works, quotes included.
"""

import shutil

from launch import LaunchDescription
from launch.actions import (DeclareLaunchArgument, ExecuteProcess, LogInfo, OpaqueFunction, RegisterEventHandler,
                            Shutdown)
from launch.event_handlers import OnProcessExit
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

PACKAGE = "racalnet_ros"


def _rviz(context, share, use_sim_time):
    """rviz2 when asked for and installed; it is optional, so its absence or exit never stops the node."""
    if LaunchConfiguration("rviz").perform(context).strip().lower() not in ("true", "1", "yes", "on"):
        return []
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_prefix
        get_package_prefix("rviz2")
    except (ImportError, PackageNotFoundError):
        return [LogInfo(msg="rviz:=true but rviz2 is not installed (apt install ros-$ROS_DISTRO-rviz2); "
                            "racalnet_node runs without it")]
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        name="racalnet_rviz",
        namespace=LaunchConfiguration("namespace"),
        arguments=["-d", PathJoinSubstitution([share, "rviz", "racalnet.rviz"])],
        parameters=[{"use_sim_time": use_sim_time}],
        output="screen",
    )
    notice = LogInfo(msg="rviz2 exited; racalnet_node runs on (Ctrl-C stops the launch)")
    return [rviz, RegisterEventHandler(OnProcessExit(target_action=rviz, on_exit=[notice]))]


def _stop(reason: str) -> list:
    return [LogInfo(msg=f"shutting down: {reason}"), Shutdown(reason=reason)]


def _replay_ended(event, context):
    if event.returncode == 0:
        return [LogInfo(msg="bag replay finished; racalnet_node runs on (Ctrl-C stops the launch)")]
    return _stop(f"the bag replay failed (ros2 bag play exit code {event.returncode})")


def _replay(context):
    """`ros2 bag play BAG --clock` when bag:= is given; a replay that cannot run shuts the launch down."""
    bag = LaunchConfiguration("bag").perform(context)
    if not bag.strip():
        return []
    if shutil.which("ros2") is None:
        return _stop(f"bag:={bag} needs the ros2 command (ros2cli and rosbag2 of a ROS install)")
    replay = ExecuteProcess(cmd=["ros2", "bag", "play", bag, "--clock"], name="bag_replay", output="screen")
    return [replay, RegisterEventHandler(OnProcessExit(target_action=replay, on_exit=_replay_ended))]


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare(PACKAGE)
    params_file = LaunchConfiguration("params_file")
    use_sim_time = ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool)

    arguments = [
        DeclareLaunchArgument("params_file", default_value=PathJoinSubstitution([share, "config", "racalnet.yaml"]),
                              description="ROS parameter file for racalnet_node (/**: ros__parameters)"),
        DeclareLaunchArgument("use_sim_time", default_value="false",
                              description="use /clock (true when replaying a bag)"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of racalnet_node"),
        DeclareLaunchArgument("rviz", default_value="false", description="start rviz2 with rviz/racalnet.rviz"),
        DeclareLaunchArgument("bag", default_value="",
                              description="rosbag2 (folder or .mcap/.db3) to replay alongside; empty = none"),
        DeclareLaunchArgument("radar_topic", default_value="/radar/points",
                              description="radar PointCloud2 (remaps the node's radar/points)"),
        DeclareLaunchArgument("image_topic", default_value="/camera/image",
                              description="camera Image (remaps the node's image)"),
        DeclareLaunchArgument("camera_info_topic", default_value="/camera/camera_info",
                              description="CameraInfo (remaps the node's camera_info)"),
        DeclareLaunchArgument("prior_topic", default_value="/prior/inverse_depth",
                              description="32FC1 relative inverse depth, with prior.source: topic"),
    ]

    node = Node(
        package=PACKAGE,
        executable="racalnet_node",
        name="racalnet_node",
        namespace=LaunchConfiguration("namespace"),
        parameters=[params_file, {"use_sim_time": use_sim_time}],
        remappings=[
            ("radar/points", LaunchConfiguration("radar_topic")),
            ("image", LaunchConfiguration("image_topic")),
            ("camera_info", LaunchConfiguration("camera_info_topic")),
            ("prior/inverse_depth", LaunchConfiguration("prior_topic")),
        ],
        output="screen",
        emulate_tty=True,
        on_exit=Shutdown(reason="racalnet_node exited"),  # the optional parts go with it
    )

    return LaunchDescription(arguments + [
        node,
        OpaqueFunction(function=_rviz, args=[share, use_sim_time]),
        OpaqueFunction(function=_replay),
    ])
