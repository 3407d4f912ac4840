"""`make demo`: the whole job on an embedded default, over real DDS, on this machine.

Starts the segformer node (DeepLab Cityscapes preset and model, bundled in assets/models),
plays the bundled assets/data/solidWhiteRight.mp4 as a camera through the image_source node,
records the overlays to an mp4 and the summaries to JSON lines, shows progress, and
ends by itself with a short report (frames in/out, drops, fps, latency).

The drivable occupancy grid (segmentation/drivable_grid) needs intrinsics and a mounting
pose, which the clip does not come with. The demo ASSUMES them (:data:`DEMO_CAMERA_K`,
:data:`DEMO_GRID`): a 60-degree horizontal field of view with the principal point at the
image centre, the camera 1.3 m above the road (the lane then measures about 3.7 m wide,
as a US highway lane does), pitched so that the horizon falls on the road's vanishing
point in the clip (row ~305 of 540). It publishes that CameraInfo beside the images and
writes bird's-eye pictures of the grid beside the overlay of the same frame
(grid_sample*.jpg).
"""

import argparse
import json
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from segformer_ros.stats import percentiles
from benchmarks.processes import (REPO_ROOT, RosProcess, confine_this_process,
                                  image_source_command, loopback_env, node_command, params_file,
                                  pick_domain_id)

# The demo assets bundled with the repository (and installed with the package).
DEFAULT_MODEL = (REPO_ROOT / 'assets' / 'models'
                 / 'deeplab_mnv_edgetpu_slim_cityscapes_nchw_f32.onnx')
DEFAULT_VIDEO = REPO_ROOT / 'assets' / 'data' / 'solidWhiteRight.mp4'
DEFAULT_PRESET = REPO_ROOT / 'config' / 'deeplab_mobilenet_cityscapes.yaml'

# Assumed camera of the clip (960x540): see the module docstring.
DEMO_FX = 480.0 / 0.5773502691896257          # 60-degree horizontal field of view
DEMO_CAMERA_K = [DEMO_FX, 0.0, 479.5, 0.0, DEMO_FX, 269.5, 0.0, 0.0, 1.0]
DEMO_GRID = {'grid_frame': 'base_link', 'grid_resolution': 0.2, 'grid_width': 200,
             'grid_height': 150, 'grid_origin_x': 0.0, 'grid_origin_y': -15.0,
             'grid_max_range': 40.0, 'grid_camera_z': 1.3,
             'grid_camera_pitch': -0.0427}    # -atan((305 - 269.5) / fx): horizon at row 305
GRID_SAMPLES = (1, 20, 40, 80)                # grids written as pictures (by arrival order)


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    """Command-line options of the demo."""
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--model', default=str(DEFAULT_MODEL), help='ONNX model')
    p.add_argument('--params', default=str(DEFAULT_PRESET), help='params file (preset)')
    p.add_argument('--video', default=str(DEFAULT_VIDEO), help='video file or image folder')
    p.add_argument('--rate', type=float, default=10.0, help='camera rate in Hz')
    p.add_argument('--max-frames', type=int, default=0, help='stop after N frames (0 = all)')
    p.add_argument('--out', default=str(REPO_ROOT / 'out' / 'demo'), help='output folder')
    p.add_argument('--backend', default='onnxruntime', help='auto, onnxruntime or tensorrt')
    p.add_argument('--startup-timeout', type=float, default=60.0)
    return p.parse_args(argv)


class _Writers:
    """Overlay video, sample picture and JSON-lines summaries."""

    def __init__(self, out: Path, fps: float) -> None:
        self.out = out
        self.fps = fps
        self.video: Any = None
        self.summaries = open(out / 'summaries.jsonl', 'w')
        self.overlays = 0
        self.sample_written = False
        self.grids = 0
        self.grid_samples: List[str] = []
        # The node publishes a frame's grid before its overlay: pair them by stamp.
        self._recent: Dict[tuple, np.ndarray] = {}   # overlays by stamp
        self._pending: Dict[tuple, Any] = {}         # sampled grids waiting for their overlay

    def overlay(self, msg: Any) -> None:
        import cv2

        frame = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.step)
        frame = frame[:, :msg.width * 3].reshape(msg.height, msg.width, 3)
        bgr = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR) if msg.encoding == 'rgb8' else frame
        if self.video is None:
            self.video = cv2.VideoWriter(str(self.out / 'overlay.mp4'),
                                         cv2.VideoWriter_fourcc(*'mp4v'), self.fps,
                                         (msg.width, msg.height))
        self.video.write(bgr)
        self.overlays += 1
        stamp = (msg.header.stamp.sec, msg.header.stamp.nanosec)
        self._recent[stamp] = bgr
        while len(self._recent) > 30:
            self._recent.pop(next(iter(self._recent)))
        if stamp in self._pending:
            self._write_grid(self._pending.pop(stamp), bgr)
        if self.overlays == 60 or (not self.sample_written and self.overlays == 1):
            cv2.imwrite(str(self.out / 'overlay_sample.jpg'), bgr,
                        [cv2.IMWRITE_JPEG_QUALITY, 85])
            self.sample_written = True

    def grid(self, msg: Any) -> None:
        self.grids += 1
        if self.grids not in GRID_SAMPLES:
            return
        stamp = (msg.header.stamp.sec, msg.header.stamp.nanosec)
        if stamp in self._recent:
            self._write_grid(msg, self._recent[stamp])
        else:
            self._pending[stamp] = msg

    def _write_grid(self, msg: Any, overlay: np.ndarray) -> None:
        import cv2

        from .grid_view import birdseye, side_by_side

        grid = np.array(msg.data, dtype=np.int8).reshape(msg.info.height, msg.info.width)
        picture = birdseye(grid, msg.info.resolution, (msg.info.origin.position.x,
                                                       msg.info.origin.position.y),
                           overlay.shape[0], camera_xy=(0.0, 0.0))
        path = self.out / f'grid_sample_{len(self.grid_samples) + 1}.jpg'
        cv2.imwrite(str(path), side_by_side(overlay, picture), [cv2.IMWRITE_JPEG_QUALITY, 85])
        self.grid_samples.append(str(path))

    def summary(self, msg: Any) -> None:
        record = {
            'stamp': msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9,
            'frame_id': msg.header.frame_id, 'width': msg.width, 'height': msg.height,
            'class_fractions': {n: round(float(f), 5)
                                for n, f in zip(msg.class_names, msg.class_fractions) if f > 0},
            'drivable_fraction': round(float(msg.drivable_fraction), 5),
            'roi_drivable_fraction': round(float(msg.roi_drivable_fraction), 5),
            'free_space_rows': [int(r) for r in msg.free_space_rows],
        }
        self.summaries.write(json.dumps(record) + '\n')

    def close(self) -> None:
        if self.video is not None:
            self.video.release()
        self.summaries.close()


def run(args: argparse.Namespace) -> Dict[str, Any]:
    """Run the demo; return the report."""
    import rclpy
    from nav_msgs.msg import OccupancyGrid
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CameraInfo

    from benchmarks.recorder import OutputRecorder

    for path, what in ((args.model, 'model'), (args.video, 'video')):
        if not Path(path).exists():
            raise SystemExit(f'demo: {what} {path} not found (the defaults are in assets/)')
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    domain = pick_domain_id()
    confine_this_process(domain)
    env = loopback_env(domain)
    overrides = params_file({'model_path': str(Path(args.model).resolve()),
                             'backend': args.backend, 'autostart': True,
                             'camera_info_topics': ['/camera/camera_info'], **DEMO_GRID},
                            str(out))
    node = RosProcess(node_command([args.params, overrides], {'image': '/camera/image_raw'}),
                      env, out / 'node.log')
    rclpy.init()
    writers = _Writers(out, args.rate)
    recorder = OutputRecorder(camera_topic='/camera/image_raw', on_overlay=writers.overlay,
                              on_summary=writers.summary)
    recorder.create_subscription(OccupancyGrid, '/segmentation/drivable_grid', writers.grid,
                                 10)
    info_pub = recorder.create_publisher(CameraInfo, '/camera/camera_info',
                                         qos_profile_sensor_data)
    info = CameraInfo(width=960, height=540, distortion_model='plumb_bob', k=DEMO_CAMERA_K,
                      p=DEMO_CAMERA_K[:3] + [0.0] + DEMO_CAMERA_K[3:6] + [0.0]
                      + DEMO_CAMERA_K[6:] + [0.0])
    info.header.frame_id = 'camera'
    recorder.create_timer(1.0 / max(args.rate, 1.0), lambda: info_pub.publish(info))
    executor = SingleThreadedExecutor()
    executor.add_node(recorder)
    source: Optional[RosProcess] = None
    t_start = time.monotonic()
    try:
        print(f'demo: starting the node (domain {domain}, log {out / "node.log"})', flush=True)
        if not node.wait_for_log('configured', args.startup_timeout):
            raise SystemExit('demo: the node did not configure; its log:\n' + node.log()[-3000:])
        source = RosProcess(image_source_command(
            str(Path(args.video).resolve()), rate_hz=args.rate, max_frames=args.max_frames,
            wait_for_subscribers=2), env, out / 'image_source.log')
        last_print = 0.0
        source_end: Optional[float] = None
        tty = sys.stdout.isatty()
        while True:
            executor.spin_once(timeout_sec=0.05)
            now = time.monotonic()
            if source_end is None and not source.running():
                source_end = now
            if source_end is not None and now - source_end > 3.0:
                break
            # One updating line on a terminal; a line every 5 s in a log.
            if now - last_print > (1.0 if tty else 5.0):
                last_print = now
                c = recorder.counts
                line = (f'demo: frames in {c["camera"]:4d}  masks out {c["mask"]:4d}  '
                        f'overlays {c["overlay"]:4d}  fps {recorder.output_fps():5.2f}')
                print('\r' + line if tty else line, end='' if tty else '\n', flush=True)
        print(flush=True)
    finally:
        if source is not None:
            source.stop()
        node_code = node.stop()
        Path(overrides).unlink(missing_ok=True)   # the temporary params file: not an output
        writers.close()
        executor.shutdown()
        recorder.destroy_node()
        rclpy.try_shutdown()
    latency = recorder.latencies_s['mask']
    p50, p95 = percentiles(latency)
    diag = recorder.diagnostics   # /diagnostics values arrive as strings
    without_mask = recorder.counts['camera'] - recorder.counts['mask']
    dropped = _number(diag.get('frames_dropped'))
    node_dropped = None if dropped is None else int(dropped)   # a count
    report = {
        'frames_published': recorder.counts['camera'],
        'masks': recorder.counts['mask'], 'overlays': recorder.counts['overlay'],
        'summaries': recorder.counts['summary'], 'grids': writers.grids,
        # Why frames_published > masks: see DROPS below (printed with the report).
        'frames_without_mask': without_mask,
        'frames_replaced_in_node': node_dropped,
        'frames_lost_before_node': (None if node_dropped is None
                                    else max(0, without_mask - node_dropped)),
        'output_fps': round(recorder.output_fps(), 2),
        'latency_ms_p50': round(p50 * 1e3, 1), 'latency_ms_p95': round(p95 * 1e3, 1),
        'inference_ms_p50': _number(diag.get('inference_ms_p50')),
        'stage_ms_p50': {k[:-len('_ms_p50')]: _number(v) for k, v in diag.items()
                         if k.endswith('_ms_p50')},
        'backend': recorder.diagnostics.get('backend'),
        'node_exit_code': node_code, 'seconds': round(time.monotonic() - t_start, 1),
        'outputs': {'video': str(out / 'overlay.mp4'), 'summaries': str(out / 'summaries.jsonl'),
                    'sample': str(out / 'overlay_sample.jpg'),
                    'grid_samples': writers.grid_samples},
    }
    (out / 'report.json').write_text(json.dumps(report, indent=2))
    return report


DROPS = ('frames_without_mask = frames_published - masks. The node keeps only the newest '
         'frame per camera while inference is busy (a slow model then skips frames instead '
         'of falling behind): frames_replaced_in_node counts those (its /diagnostics '
         'frames_dropped). frames_lost_before_node is the rest: best-effort frames lost '
         'between the camera and the node, or still in flight when the clip ended.')


def _number(value: Any) -> Optional[float]:
    """Return a /diagnostics value (a string) as a number; None when absent or not numeric."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _cell(value: Any) -> str:
    if value is None:
        return '-'
    if isinstance(value, float):
        return f'{value:.1f}' if value >= 10 or value == int(value) else f'{value:.2f}'
    return str(value)


def format_report(report: Dict[str, Any]) -> str:
    """Render the report as a terminal table: one line per number, nested parts as tables.

    report.json keeps the structure; this is for reading (no Python dict reprs).
    """
    scalars = [(k, v) for k, v in report.items() if not isinstance(v, (dict, list))]
    width = max(len(k) for k, _ in scalars)
    lines = ['demo report', '-' * (width + 14)]
    lines += [f'  {k:<{width}}  {_cell(v):>10}' if not isinstance(v, str) else
              f'  {k:<{width}}  {v}' for k, v in scalars]
    stages = report.get('stage_ms_p50') or {}
    if stages:
        lines.append('')
        lines.append(f'  {"stage (node, p50)":<{width}}  {"ms":>10}')
        lines += [f'  {name:<{width}}  {_cell(ms):>10}' for name, ms in stages.items()]
    outputs = report.get('outputs') or {}
    if outputs:
        lines.append('')
        lines.append('  outputs')
        for name, path in outputs.items():
            for one in (path if isinstance(path, list) else [path]):
                lines.append(f'    {name:<14} {one}')
    lines.append('')
    lines.append(textwrap.fill(DROPS, 92, initial_indent='  drops: ', subsequent_indent='  '))
    return '\n'.join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    """Run the demo and print the report."""
    args = parse_args(argv)
    report = run(args)
    print(format_report(report))
    ok = report['masks'] > 0 and report['overlays'] > 0 and report['summaries'] > 0
    if not ok:
        print('demo: no output received; see the node log', file=sys.stderr)
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
