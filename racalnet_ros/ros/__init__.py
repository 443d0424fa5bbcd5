"""The ROS 2 shell around `Pipeline`: the only part of racalnet_ros that imports rclpy and ROS message types.

- `node`: `RacalnetNode` (parameters, wiring, one callback and the worker), the `racalnet_node` executable.
- `diagnostics`: rates, counters and the /diagnostics message of the node.
- `params`: the node's own keys (sync, radar fields, extrinsics, outputs) next to `PipelineConfig`'s, checked by
  the config module's rules.
- `sync`: approximate-time synchronisation (message_filters where installed, else the same policy on stamps).
- `convert`: the one message codec (Image, PointCloud2, CameraInfo, TF <-> numpy, messages -> `Frame`), for rclpy's
  and rosbags' message classes alike.
- `bag`: rosbag2 storage with rosbags; `replay`, `record`: publish a bag, record topics.
- `harness`: racalnet_node as a process (parameter file, process group, readiness, stop).
- `dds`: loopback-only Fast DDS environment (own domain id per process / test worker).

Submodules are imported on demand; `convert`, `bag`, `params`, `sync`, `harness` and `dds` work without rclpy.
"""
