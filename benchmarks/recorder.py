"""A subscriber node that records what the segformer node publishes (demo, benchmarks, tests)."""

import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image


def stamp_seconds(header: Any) -> float:
    """Header stamp as float seconds."""
    return header.stamp.sec + header.stamp.nanosec * 1e-9


class OutputRecorder(Node):
    """Counts and times mask/overlay/summary messages; keeps the latest diagnostics.

    Latency is receipt time minus the header stamp, which the node copies from the
    camera image: image -> mask latency as a planner sees it (same host clock).
    """

    def __init__(self, name: str = 'segformer_recorder', prefix: str = '/segmentation',
                 overlay: bool = True, summary: bool = True, mask: bool = True,
                 camera_topic: Optional[str] = None,
                 on_overlay: Optional[Callable[[Image], None]] = None,
                 on_summary: Optional[Callable[[Any], None]] = None,
                 on_mask: Optional[Callable[[Image], None]] = None) -> None:
        super().__init__(name)
        from segformer_ros.msg import SegmentationSummary

        self.lock = threading.Lock()
        self.latencies_s: Dict[str, List[float]] = {'mask': [], 'overlay': [], 'summary': []}
        self.counts: Dict[str, int] = {'mask': 0, 'overlay': 0, 'summary': 0, 'camera': 0}
        self.first_receipt: Optional[float] = None
        self.last_receipt: Optional[float] = None
        self.diagnostics: Dict[str, str] = {}
        # (monotonic receipt time, values) of every diagnostics message: counters over a
        # window (e.g. drops after the start-up settled), not only their final values.
        self.diagnostics_history: List[Tuple[float, Dict[str, str]]] = []
        self._callbacks = {'overlay': on_overlay, 'summary': on_summary, 'mask': on_mask}
        if mask:
            self.create_subscription(Image, f'{prefix}/mask',
                                     lambda m: self._record('mask', m), 10)
        if overlay:
            self.create_subscription(Image, f'{prefix}/overlay',
                                     lambda m: self._record('overlay', m), 10)
        if summary:
            self.create_subscription(SegmentationSummary, f'{prefix}/summary',
                                     lambda m: self._record('summary', m), 10)
        if camera_topic:
            self.create_subscription(Image, camera_topic, self._camera, qos_profile_sensor_data)
        self.create_subscription(DiagnosticArray, '/diagnostics', self._diag, 10)

    def _record(self, kind: str, msg: Any) -> None:
        now = time.time()
        with self.lock:
            self.counts[kind] += 1
            self.latencies_s[kind].append(now - stamp_seconds(msg.header))
            if kind == 'mask':
                self.first_receipt = self.first_receipt or now
                self.last_receipt = now
        callback = self._callbacks.get(kind)
        if callback is not None:
            callback(msg)

    def _camera(self, msg: Image) -> None:
        with self.lock:
            self.counts['camera'] += 1

    def _diag(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name.endswith(': segmentation'):
                values = {kv.key: kv.value for kv in status.values}
                with self.lock:
                    self.diagnostics = values
                    self.diagnostics_history.append((time.monotonic(), values))

    def output_fps(self) -> float:
        """Masks per second between the first and the last mask received."""
        with self.lock:
            if not self.first_receipt or not self.last_receipt or self.counts['mask'] < 2:
                return 0.0
            span = self.last_receipt - self.first_receipt
            return (self.counts['mask'] - 1) / span if span > 0 else 0.0
