"""Launch racalnet_node (+ optionally rviz2 and a rosbag2 replay).

    ros2 launch racalnet_ros racalnet.launch.py
    ros2 launch racalnet_ros racalnet.launch.py params_file:=/path/my.yaml rviz:=true \
        radar_topic:=/radar/points image_topic:=/camera/image_raw camera_info_topic:=/camera/camera_info
    ros2 launch racalnet_ros racalnet.launch.py bag:=/data/drive.mcap use_sim_time:=true rviz:=true

Arguments: params_file (default: the package's config/racalnet.yaml), use_sim_time, namespace, rviz (start rviz2
with rviz/racalnet.rviz), bag (replay this rosbag2 alongside with `ros2 bag play --clock`; set use_sim_time:=true),
and the input remappings radar_topic, image_topic, camera_info_topic, prior_topic. Their defaults are the topics of
the bags written by `racalnet bag-from-dataset` (docs/bags.md), so `bag:=...` works as is.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution, PythonExpression
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

PACKAGE = "racalnet_ros"


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare(PACKAGE)
    params_file = LaunchConfiguration("params_file")
    use_sim_time = ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool)
    bag = LaunchConfiguration("bag")

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
    )

    rviz = Node(
        package="rviz2",
        executable="rviz2",
        name="racalnet_rviz",
        namespace=LaunchConfiguration("namespace"),
        arguments=["-d", PathJoinSubstitution([share, "rviz", "racalnet.rviz"])],
        parameters=[{"use_sim_time": use_sim_time}],
        condition=IfCondition(LaunchConfiguration("rviz")),
        output="screen",
    )

    replay = ExecuteProcess(
        cmd=["ros2", "bag", "play", bag, "--clock"],
        condition=IfCondition(PythonExpression(["'", bag, "' != ''"])),
        output="screen",
    )

    return LaunchDescription(arguments + [node, rviz, replay])
