"""`make bench-cameras`: several cameras through one node and one model, over real DDS.

For 1, 2 and 4 cameras publishing at a set rate each, runs the segformer node (its own
process) and measures per-camera output rate and image->mask latency, batched (frames
arriving within the batch window share one inference) vs unbatched (max_batch_size 1).

Models: the shared DeepLab (fixed batch 1: batching falls back to one inference per
frame) and a SegFormer-B0 exported here with a dynamic batch dimension (random weights:
structure and timing only), which is where batching can pay.
"""

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from segformer_ros.stats import percentiles
from benchmarks.processes import (REPO_ROOT, RosProcess, confine_this_process, loopback_env,
                                  node_command, params_file, pick_domain_id)

BUNDLED_MODEL_FILE = 'deeplab_mnv_edgetpu_slim_cityscapes_nchw_f32.onnx'
DEEPLAB = REPO_ROOT / 'assets' / 'models' / BUNDLED_MODEL_FILE  # bundled
VIDEO = REPO_ROOT / 'assets' / 'data' / 'solidWhiteRight.mp4'  # bundled
PRESETS = REPO_ROOT / 'config'
DOC = REPO_ROOT / 'docs' / 'benchmarks.md'
SECTION = '## Several cameras through one model (make bench-cameras)'


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--cameras', default='1,2,4', help='camera counts to run, comma separated')
    p.add_argument('--rate', type=float, default=30.0, help='frames per second per camera')
    p.add_argument('--duration', type=float, default=15.0, help='measured seconds per run')
    p.add_argument('--width', type=int, default=960)
    p.add_argument('--height', type=int, default=540)
    p.add_argument('--models', default='deeplab,segformer_b0_dynamic',
                   help='deeplab and/or segformer_b0_dynamic')
    p.add_argument('--segformer-size', type=int, default=512,
                   help='input size of the exported dynamic-batch SegFormer-B0')
    p.add_argument('--out', default=str(REPO_ROOT / 'out' / 'bench_cameras'))
    p.add_argument('--quick', action='store_true', help='smoke mode: short runs, no docs')
    p.add_argument('--write-docs', action='store_true',
                   help='also replace its section of docs/benchmarks.md (default: only --out)')
    p.add_argument('--no-write-docs', action='store_true',
                   help=argparse.SUPPRESS)  # the default now; kept for old scripts
    return p.parse_args(argv)


def export_dynamic_segformer(out: Path, size: int) -> Optional[Path]:
    """Export a random-weight SegFormer-B0 with dynamic batch/H/W (None without torch)."""
    target = out / f'segformer_b0_random_dynamic_{size}.onnx'
    if target.is_file():
        return target
    try:
        import torch  # noqa: F401
        from transformers import SegformerConfig, SegformerForSemanticSegmentation
    except ImportError:
        return None
    from segformer_ros.tools.export import main as export_main

    checkpoint = out / 'segformer_b0_random_checkpoint'
    torch.manual_seed(0)
    SegformerForSemanticSegmentation(SegformerConfig(num_labels=19)).save_pretrained(
        str(checkpoint))
    code = export_main([str(checkpoint), '-o', str(target), '--height', str(size),
                        '--width', str(size), '--dynamic'])
    return target if code == 0 and target.is_file() else None


def _frames(count: int, width: int, height: int) -> List[np.ndarray]:
    import cv2

    from segformer_ros.frame_sources import iter_frames

    frames = []
    for index, frame in iter_frames(str(VIDEO), max_frames=60):
        if index % 15 == 0:
            frames.append(cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA))
    return frames[:max(1, count)]


def run_one(model_name: str, model: Path, cameras: int, batched: bool,
            args: argparse.Namespace, out: Path) -> Dict[str, Any]:
    """One run: N cameras at the rate, node with or without batching; per-camera stats."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    names = [f'cam{i}' for i in range(cameras)]
    preset = PRESETS / ('deeplab_mobilenet_cityscapes.yaml' if model_name == 'deeplab'
                        else 'segformer_cityscapes.yaml')
    values: Dict[str, Any] = {
        'model_path': str(model), 'backend': 'onnxruntime', 'autostart': True,
        'warmup_iterations': 1, 'cameras': names,
        'camera_topics': [f'/{n}/image_raw' for n in names],
        'max_batch_size': 0 if batched else 1, 'batch_window_ms': 10.0}
    if model_name != 'deeplab':
        values.update({'input_height': args.segformer_size, 'input_width': args.segformer_size})
    domain = pick_domain_id(offset=cameras * 2 + int(batched))
    confine_this_process(domain)
    overrides = params_file(values, str(out))
    tag = f'{model_name}_{cameras}cam_{"batched" if batched else "unbatched"}'
    node = RosProcess(node_command([str(preset), overrides]), loopback_env(domain),
                      out / f'node_{tag}.log')
    rclpy.init()
    peer = rclpy.create_node('bench_cameras')
    executor = SingleThreadedExecutor()
    executor.add_node(peer)
    latency: Dict[str, List[float]] = {n: [] for n in names}
    counts = {n: 0 for n in names}
    measuring = [False]

    def on_mask(name: str, msg: Image) -> None:
        if measuring[0]:
            counts[name] += 1
            stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
            latency[name].append(time.time() - stamp)

    for n in names:
        peer.create_subscription(Image, f'/{n}/segmentation/mask',
                                 lambda m, n=n: on_mask(n, m), 10)
    pubs = {n: peer.create_publisher(Image, f'/{n}/image_raw', qos_profile_sensor_data)
            for n in names}
    messages = []
    for frame in _frames(cameras, args.width, args.height):
        msg = Image(height=frame.shape[0], width=frame.shape[1], encoding='bgr8',
                    step=frame.shape[1] * 3)
        msg.data = frame.tobytes()
        messages.append(msg)
    sent = {n: 0 for n in names}

    def publish_all() -> None:
        stamp = peer.get_clock().now().to_msg()
        for i, n in enumerate(names):
            msg = messages[i % len(messages)]
            msg.header.stamp = stamp
            msg.header.frame_id = n
            pubs[n].publish(msg)
            if measuring[0]:
                sent[n] += 1

    result: Dict[str, Any] = {'model': model_name, 'cameras': cameras, 'batched': batched}
    try:
        if not node.wait_for_log('configured', 120.0):
            raise RuntimeError(f'node did not configure:\n{node.log()[-2000:]}')
        peer.create_timer(1.0 / args.rate, publish_all)
        deadline = time.monotonic() + 60.0
        while any(p.get_subscription_count() == 0 for p in pubs.values()):
            if time.monotonic() > deadline:
                raise RuntimeError('node did not subscribe')
            executor.spin_once(timeout_sec=0.05)
        warmup_end = time.monotonic() + (1.0 if args.quick else 3.0)
        while time.monotonic() < warmup_end:
            executor.spin_once(timeout_sec=0.01)
        measuring[0] = True
        start = time.monotonic()
        while time.monotonic() - start < args.duration:
            executor.spin_once(timeout_sec=0.01)
        measuring[0] = False
        elapsed = time.monotonic() - start
        per_camera = {}
        for n in names:
            p50, p95 = percentiles(latency[n])
            per_camera[n] = {'fps': round(counts[n] / elapsed, 2),
                             'latency_ms_p50': round(p50 * 1e3, 1),
                             'latency_ms_p95': round(p95 * 1e3, 1),
                             'sent': sent[n], 'received': counts[n]}
        result.update({
            'total_fps': round(sum(counts.values()) / elapsed, 2),
            'latency_ms_p50_worst': max(c['latency_ms_p50'] for c in per_camera.values()),
            'latency_ms_p95_worst': max(c['latency_ms_p95'] for c in per_camera.values()),
            'per_camera': per_camera})
    finally:
        node.stop()
        executor.shutdown()
        peer.destroy_node()
        rclpy.try_shutdown()
    return result


def write_doc(results: List[Dict[str, Any]], args: argparse.Namespace, command: str) -> None:
    """Replace this benchmark's section of docs/benchmarks.md."""
    lines = [SECTION, '',
             f'Measured {time.strftime("%Y-%m-%d %H:%M %Z")} with `{command}`. Machine: '
             f'{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), '
             f'load average before the runs {", ".join(f"{v:.2f}" for v in os.getloadavg())}. '
             f'Each camera publishes {args.width}x{args.height} bgr8 at {args.rate:g} Hz over '
             f'loopback DDS to one node (its own process, ONNX Runtime CPU); '
             f'{args.duration:g} s measured per run after a warm-up. Latency = mask receipt '
             f'minus the image stamp. Batched: frames within a 10 ms window share one '
             f'inference (max_batch_size 0); unbatched: max_batch_size 1.', '',
             '| model | cameras | mode | total masks/s | per-camera masks/s | '
             'worst p50 latency ms | worst p95 latency ms |',
             '|---|---:|---|---:|---|---:|---:|']
    for r in results:
        per = ', '.join(f'{c["fps"]:.1f}' for c in r['per_camera'].values())
        lines.append(f'| {r["model"]} | {r["cameras"]} | '
                     f'{"batched" if r["batched"] else "unbatched"} | {r["total_fps"]:.2f} | '
                     f'{per} | {r["latency_ms_p50_worst"]:.0f} | '
                     f'{r["latency_ms_p95_worst"]:.0f} |')
    lines += ['', 'On this CPU the model is the bottleneck: every camera past the first shares '
              'the same inference budget, and keep-latest drops the rest (sent vs received '
              'per camera is in the JSON). DeepLab has a fixed batch of 1, so "batched" runs '
              'one inference per frame; the dynamic-batch SegFormer-B0 shows what batching '
              'buys on a CPU. GPU numbers for batched SegFormer-B0 are in the GPU section.',
              '']
    text = DOC.read_text() if DOC.is_file() else '# Benchmarks\n\n'
    if SECTION in text:
        start = text.index(SECTION)
        nxt = text.find('\n## ', start + len(SECTION))
        text = text[:start] + '\n'.join(lines) + ('\n' + text[nxt + 1:] if nxt != -1 else '')
    else:
        text = text.rstrip('\n') + '\n\n' + '\n'.join(lines)
    DOC.write_text(text)


def main(argv: Optional[List[str]] = None) -> int:
    """Run every (model, cameras, mode) combination and report."""
    args = parse_args(argv)
    if args.quick:
        args.duration = min(args.duration, 3.0)
        args.cameras = '2' if args.cameras == '1,2,4' else args.cameras
        args.models = 'deeplab' if args.models == 'deeplab,segformer_b0_dynamic' else args.models
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    models: Dict[str, Path] = {}
    for name in args.models.split(','):
        if name == 'deeplab' and DEEPLAB.is_file():
            models[name] = DEEPLAB
        elif name == 'segformer_b0_dynamic':
            path = export_dynamic_segformer(out, args.segformer_size)
            if path is None:
                print('bench-cameras: torch/transformers missing; skipping SegFormer-B0',
                      file=sys.stderr)
            else:
                models[name] = path
    if not models:
        print('bench-cameras: no model available', file=sys.stderr)
        return 1
    results = []
    for name, path in models.items():
        for cameras in (int(c) for c in args.cameras.split(',')):
            modes = [False] if cameras == 1 else [False, True]
            for batched in modes:
                r = run_one(name, path, cameras, batched, args, out)
                results.append(r)
                print(f'{name:22s} cameras={cameras} {"batched  " if batched else "unbatched"} '
                      f'total {r["total_fps"]:6.2f} masks/s  worst p50 '
                      f'{r["latency_ms_p50_worst"]:7.1f} ms  p95 '
                      f'{r["latency_ms_p95_worst"]:7.1f} ms', flush=True)
    (out / 'results.json').write_text(json.dumps(results, indent=2))
    if args.write_docs and not args.quick and not args.no_write_docs:
        write_doc(results, args, 'make bench-cameras' if not argv else
                  'python -m benchmarks.bench_cameras ' + ' '.join(argv))
    return 0


if __name__ == '__main__':
    sys.exit(main())
