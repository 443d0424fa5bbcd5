"""The ROS 2 shell around `Pipeline`: the only part of racalnet_ros that imports rclpy and ROS message types.

- `dds`: loopback-only Fast DDS environment (own domain id per process / test worker).
- `convert`: sensor_msgs <-> numpy (Image, PointCloud2, CameraInfo) and messages -> `Frame`.
- `sync`: approximate-time synchronisation (message_filters' policy, usable without ROS).
- `params`: the node's parameters (descriptions, ranges, validation) on top of `PipelineConfig.to_flat()`.
- `node`: `RacalnetNode`, the `racalnet_node` executable.

Submodules are imported on demand so that `racalnet_ros.ros.dds` and `racalnet_ros.ros.sync` work without rclpy.
"""
