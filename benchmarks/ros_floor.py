"""The ROS floor of issue 22: what taking a camera frame and publishing a mask costs rclpy.

A minimal rclpy process, the subject of bench_ros's ``ros_floor`` scenario. It does what
the segformer node does around its pipeline and nothing else: the node's allocator set-up
(``memory.keep_image_buffers``) and heap trim period, the camera subscription with the
node's QoS and depth, taken by ``segformer_ros.frame_reader.FrameReader`` as the node's
worker takes it (pulled, no executor), the frame viewed as the node views it
(``conversion.image_msg_to_array``), and a mono8 mask of the frame's size built and
published as the node publishes it (``ros_messages.image_message`` with the frame's
header, the node's output QoS). No model, no pre- or postprocessing: the mask is one
reused array of zeros. Its CPU per mask is what ROS costs any Python node that takes
such frames and publishes such masks, so node CPU - pipeline CPU - this is what the node
adds of its own.

One thread does everything (the node splits take and publish over two): the floor is the
least a node can do. On SIGINT it writes ``--report`` (masks published, frames taken and
skipped) and exits 0.
"""

import argparse
import json
import signal
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

READY_LINE = 'ros_floor: ready'


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    """Command-line options of the floor process."""
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--image', action='append', default=[],
                   help='camera topic (repeat for several cameras; default '
                   '/camera/image_raw)')
    p.add_argument('--mask', action='append', default=[],
                   help='mask topic, one per --image (default /segmentation/mask)')
    p.add_argument('--queue-depth', type=int, default=1,
                   help='depth of the camera readers (the node\'s input_queue_depth)')
    p.add_argument('--report', default='', help='JSON file written at exit')
    args = p.parse_args(argv)
    args.image = args.image or ['/camera/image_raw']
    args.mask = args.mask or ['/segmentation/mask']
    if len(args.image) != len(args.mask) or args.queue_depth < 1:
        p.error(f'expected one --mask per --image and --queue-depth >= 1, got '
                f'{len(args.image)} images, {len(args.mask)} masks, depth {args.queue_depth}')
    return args


def main(argv: Optional[List[str]] = None) -> int:
    """Take frames and publish masks until SIGINT; write the report."""
    args = parse_args(argv)
    from segformer_ros.memory import NODE_TRIM_PERIOD_S, HeapTrimmer, keep_image_buffers

    keep_image_buffers()   # as node_main does, before any image buffer exists
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:   # started from a background job
        signal.signal(signal.SIGINT, signal.default_int_handler)
    import rclpy
    from rclpy.qos import QoSProfile
    from sensor_msgs.msg import Image

    from segformer_ros.conversion import image_msg_to_array
    from segformer_ros.frame_reader import FrameReader, PulledCallbackGroup
    from segformer_ros.node import OUTPUT_QOS, SENSOR_QOS
    from segformer_ros.ros_messages import image_message

    rclpy.init()
    node = rclpy.create_node('segformer_ros_floor')
    image_qos = QoSProfile(reliability=SENSOR_QOS.reliability, history=SENSOR_QOS.history,
                           depth=args.queue_depth, durability=SENSOR_QOS.durability)
    pulled = PulledCallbackGroup()
    subs = [node.create_subscription(Image, topic, lambda _msg: None, image_qos,
                                     callback_group=pulled) for topic in args.image]
    pubs = [node.create_publisher(Image, topic, OUTPUT_QOS) for topic in args.mask]
    reader = FrameReader(node.context, subs)
    trimmer = HeapTrimmer(NODE_TRIM_PERIOD_S)
    masks: Dict[tuple, np.ndarray] = {}
    published, errors = 0, 0
    first: Optional[float] = None
    print(READY_LINE, flush=True)
    try:
        while rclpy.ok():
            trimmer.maybe_trim()
            for index, msg in reader.take_batch(0.0, timeout_s=0.5, one_frame=True):
                try:
                    view = image_msg_to_array(msg)
                except Exception as exc:  # noqa: BLE001 - counted; the floor goes on
                    errors += 1
                    print(f'ros_floor: dropped a frame: {exc}', flush=True)
                    continue
                shape = view.array.shape[:2]
                mask = masks.get(shape)
                if mask is None:
                    mask = masks[shape] = np.zeros(shape, np.uint8)
                pubs[index].publish(image_message(mask, 'mono8', msg.header))
                published += 1
                first = first if first is not None else time.monotonic()
    except KeyboardInterrupt:
        pass
    except Exception:
        if rclpy.ok():   # the context shut down under a wait: a normal stop
            raise
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        counters = reader.input_counters()
        if args.report:
            Path(args.report).write_text(json.dumps({
                'published': published, 'errors': errors,
                'taken': sum(c['taken'] for c in counters),
                'skipped': sum(c['skipped'] for c in counters),
                'publishing_s': round(time.monotonic() - first, 3) if first else 0.0}))
        reader.close()
        node.destroy_node()
        reader.destroy()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
