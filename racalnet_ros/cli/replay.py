"""`racalnet replay BAG [--rate R] [--loop]`: publish a rosbag2 through rclpy with the original header stamps and
/clock (for use_sim_time), like `ros2 bag play --clock` but without a ROS install beyond the PyPI wheels.

DDS stays on this machine (loopback discovery, racalnet_ros.ros.dds) on ROS_DOMAIN_ID from --domain-id, else the
environment's ROS_DOMAIN_ID, else one derived for this process (printed). Stop with Ctrl-C.
"""

from __future__ import annotations

import os
import sys

from ..errors import UsageError

HELP = "publish a rosbag2 with its original stamps and /clock (--rate, --loop); loopback DDS"


def add_arguments(p) -> None:
    p.add_argument("bag", help="rosbag2 directory")
    p.add_argument("--rate", type=float, default=1.0, help="playback speed factor (2 = twice as fast)")
    p.add_argument("--loop", action="store_true", help="start again at the end (stamps jump back)")
    p.add_argument("--no-clock", action="store_true", help="do not publish /clock")
    p.add_argument("--remap", action="append", default=[], metavar="FROM:=TO", help="publish topic FROM as TO")
    p.add_argument("--topics", nargs="+", default=None, help="only these bag topics")
    p.add_argument("--wait-for-subscribers", type=float, default=0.0, metavar="SEC",
                   help="before playing, wait up to SEC seconds for a subscriber on the image topic")
    p.add_argument("--qos-depth", type=int, default=10, metavar="N",
                   help="history depth of every publisher (reliable, transient local): how many messages a slow or "
                        "late subscriber can still get (ros2 bag play's publishers keep 10 by default as well)")
    p.add_argument("--domain-id", type=int, default=None, help="ROS_DOMAIN_ID")


def main(args) -> int:
    from ..ros.bag import bag_topics
    from ..ros.dds import apply_local_ros_env, default_domain_id
    from ..ros.replay import BagPlayer, parse_remaps

    if args.rate <= 0:
        raise UsageError(f"--rate must be > 0, got {args.rate}")
    if args.qos_depth < 1:
        raise UsageError(f"--qos-depth must be >= 1, got {args.qos_depth}")
    domain = args.domain_id
    if domain is None:
        env_id = os.environ.get("ROS_DOMAIN_ID", "").strip()
        domain = int(env_id) if env_id else default_domain_id()
    apply_local_ros_env(domain)
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    rclpy.init()
    node = rclpy.create_node("racalnet_replay")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spin = lambda dt: executor.spin_once(timeout_sec=dt)  # noqa: E731
    try:
        player = BagPlayer(node, args.bag, remap=parse_remaps(args.remap), topics=args.topics,
                           clock=not args.no_clock, depth=args.qos_depth)
        print(f"replay: {args.bag} on ROS_DOMAIN_ID={domain} (loopback), rate {args.rate}, "
              f"loop {args.loop}, topics {sorted(player.publishers)}", flush=True)
        if args.wait_for_subscribers > 0:
            image = bag_topics(args.bag).image
            if not player.wait_for_subscribers([image], args.wait_for_subscribers, spin):
                print(f"replay: no subscriber on {image} after {args.wait_for_subscribers} s; playing anyway",
                      file=sys.stderr)
        n = player.play(rate=args.rate, loop=args.loop, idle=spin)
        if not player.flush(10.0):
            print("replay: some subscribers did not acknowledge the last messages within 10 s", file=sys.stderr)
        print(f"replay: published {n} message(s)")
    except ValueError as exc:  # BagError, a malformed --remap
        raise UsageError(str(exc)) from None
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except RuntimeError:  # rclpy.RCLError: on SIGINT rclpy's own handler invalidates the context under a publish
        if rclpy.ok():
            raise
    finally:
        executor.shutdown()
        node.destroy_node()
        # not `if rclpy.ok(): rclpy.shutdown()`: on SIGINT rclpy's own handler shuts the context down from another
        # thread, and between the two calls that is a race that ends in an exception (exit code 1)
        rclpy.try_shutdown()
    return 0
