"""racalnet_ros: dense metric depth from 4D radar + one camera (RaCalNet), with a thin ROS 2 node.

The core (frame, geometry, datasets, recalibration, metric_depth, pipeline, metrics) never imports rclpy; only
`racalnet_ros.ros` does.
"""

__version__ = "0.1.0"
