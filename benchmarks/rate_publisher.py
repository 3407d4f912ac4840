"""A fast camera stand-in for benchmarks: pre-built frames published at a set rate.

The image_source node reads, resizes and converts every frame, which in Python caps it
well below 200 Hz at 1080p. This process decodes a few frames of the video once, builds
their sensor_msgs/Image messages once, and then only restamps and publishes them
round-robin (sensor-data QoS, fresh ``header.stamp`` from the system clock), so the rate
it reaches is what DDS and rclpy allow. It ends after ``--duration`` seconds and prints
one JSON line with the achieved rate (also written to ``--report``).

With ``--start-file`` it also waits, after its subscribers matched, until that file exists:
the benchmark creates it once it is ready to measure (its recorder matched the node's
outputs), so the whole publishing span is measured even where discovery is slow.
"""

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

REPORT_PREFIX = 'rate_publisher report: '


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    """Command-line options of the publisher."""
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--video', required=True, help='video file or image folder')
    p.add_argument('--topic', default='/camera/image_raw')
    p.add_argument('--rate', type=float, default=30.0, help='requested rate in Hz')
    p.add_argument('--duration', type=float, default=20.0, help='seconds of publishing')
    p.add_argument('--width', type=int, default=1920)
    p.add_argument('--height', type=int, default=1080)
    p.add_argument('--frames', type=int, default=4, help='distinct frames to cycle through')
    p.add_argument('--frame-id', default='camera')
    p.add_argument('--wait-subscribers', type=int, default=1,
                   help='wait until this many subscribers match before publishing')
    p.add_argument('--wait-timeout', type=float, default=30.0)
    p.add_argument('--start-file', default='',
                   help='after the subscribers matched, also wait until this file exists')
    p.add_argument('--start-timeout', type=float, default=60.0,
                   help='seconds to wait for --start-file before publishing anyway')
    p.add_argument('--report', default='', help='also write the JSON report to this file')
    return p.parse_args(argv)


def load_frames(video: str, count: int, width: int, height: int) -> List[np.ndarray]:
    """Return ``count`` RGB frames 10 apart from the video's start, at width x height."""
    import cv2

    from segformer_ros.frame_sources import iter_frames

    frames: List[np.ndarray] = []
    for index, bgr in iter_frames(video, max_frames=10 * count):
        if index % 10 == 0:
            resized = cv2.resize(bgr, (width, height), interpolation=cv2.INTER_LINEAR)
            frames.append(np.ascontiguousarray(cv2.cvtColor(resized, cv2.COLOR_BGR2RGB)))
        if len(frames) == count:
            break
    if not frames:
        raise SystemExit(f'rate_publisher: no frames read from {video}; expected a readable '
                         f'video file or image folder')
    return frames


def wait_for_file(path: Path, timeout_s: float) -> bool:
    """Wait until ``path`` exists; False (with a message) when ``timeout_s`` passed first."""
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if time.monotonic() > deadline:
            print(f'rate_publisher: expected the start file {path} within {timeout_s:g} s, '
                  f'got none; publishing anyway', file=sys.stderr, flush=True)
            return False
        time.sleep(0.02)
    return True


def publish_loop(publisher: Any, messages: List[Any], rate_hz: float,
                 duration_s: float) -> Dict[str, Any]:
    """Publish ``messages`` round-robin at ``rate_hz`` for ``duration_s``; return counts."""
    period = 1.0 / rate_hz
    start = time.monotonic()
    deadline = start
    end = start + duration_s
    published = 0
    late = 0
    publish_s: List[float] = []
    while True:
        now = time.monotonic()
        if now >= end:
            break
        if deadline > now:
            time.sleep(deadline - now)
        msg = messages[published % len(messages)]
        ns = time.time_ns()
        msg.header.stamp.sec = ns // 1_000_000_000
        msg.header.stamp.nanosec = ns % 1_000_000_000
        t0 = time.perf_counter()
        publisher.publish(msg)
        publish_s.append(time.perf_counter() - t0)
        published += 1
        deadline += period
        # Behind schedule: skip ahead instead of bursting, so the achieved rate is what
        # this process can sustain and frames stay evenly spaced.
        if time.monotonic() > deadline + period:
            late += 1
            deadline = time.monotonic()
    elapsed = time.monotonic() - start
    return {'published': published, 'seconds': round(elapsed, 3),
            'requested_hz': rate_hz,
            'achieved_hz': round(published / elapsed, 2) if elapsed > 0 else 0.0,
            'late_ticks': late,
            'publish_call_ms_p50': round(float(np.median(publish_s)) * 1e3, 3)
            if publish_s else None}


def main(argv: Optional[List[str]] = None) -> int:
    """Publish for the set duration; print (and optionally write) the report."""
    args = parse_args(argv)
    if args.rate <= 0 or args.duration <= 0:
        raise SystemExit(f'rate_publisher: expected --rate > 0 and --duration > 0, got '
                         f'{args.rate} and {args.duration}')
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from std_msgs.msg import Header

    from segformer_ros.ros_messages import image_message

    frames = load_frames(args.video, args.frames, args.width, args.height)
    rclpy.init()
    node = rclpy.create_node('rate_publisher')
    publisher = node.create_publisher(type(image_message(frames[0], 'rgb8', Header())),
                                      args.topic, qos_profile_sensor_data)
    messages = [image_message(f, 'rgb8', Header(frame_id=args.frame_id)) for f in frames]
    report: Dict[str, Any] = {'width': args.width, 'height': args.height, 'topic': args.topic}
    try:
        deadline = time.monotonic() + args.wait_timeout
        while publisher.get_subscription_count() < args.wait_subscribers:
            if time.monotonic() > deadline:
                print(f'rate_publisher: only {publisher.get_subscription_count()} of '
                      f'{args.wait_subscribers} subscribers after {args.wait_timeout} s; '
                      f'publishing anyway', file=sys.stderr, flush=True)
                break
            time.sleep(0.05)
        if args.start_file:
            report['start_file_seen'] = wait_for_file(Path(args.start_file),
                                                      args.start_timeout)
        report['subscribers'] = publisher.get_subscription_count()
        report.update(publish_loop(publisher, messages, args.rate, args.duration))
    except KeyboardInterrupt:
        report['interrupted'] = True
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    line = json.dumps(report)
    print(REPORT_PREFIX + line, flush=True)
    if args.report:
        Path(args.report).write_text(line + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
