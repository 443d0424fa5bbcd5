"""`racalnet_node` executable: `ros2 run racalnet_ros racalnet_node`, the `racalnet_node` console script, or
`python -m racalnet_ros.node`. The node itself lives in `racalnet_ros.ros.node` (the only rclpy code)."""

from __future__ import annotations

import sys
from typing import Optional


def main(args: Optional[list[str]] = None) -> int:
    """Run the node until shutdown; returns 0, or 2 when it cannot start (the reason is printed)."""
    from racalnet_ros.ros.node import main as run_node

    return run_node(sys.argv if args is None else args)


if __name__ == "__main__":
    sys.exit(main())
