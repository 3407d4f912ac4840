"""segformer-ros-bag: segment rosbag2 recordings offline, and compare two segmented bags.

``segformer-ros-bag run INPUT OUTPUT --params FILE --image-topics T [T ...]`` reads a
rosbag2 recording (mcap or sqlite3) with the pure-Python ``rosbags`` package (no ROS
installation needed), runs the node's pipeline on the image topics (sensor_msgs/Image in
every encoding the node accepts, or CompressedImage) with the node's parameters, and
writes a new bag with the node's topics per camera: ``<ns>/segmentation/mask``, overlay,
summary, confidence (logits models), label_info, camera_info and drivable_grid (with the
camera's CameraInfo and a ``grid_camera_*`` pose). ``<ns>`` is the image topic's parent
(``/front/image_raw`` -> ``/front``) unless ``--namespaces`` says otherwise. Every output
carries its input's header and is logged at its input's log time. ``--copy-input`` also
copies the image and CameraInfo topics. Progress with rate and ETA goes to stderr, the
report (JSON) to ``--json``. Ctrl-C stops after the current batch and closes the bag: it
stays readable and holds what was done.

``segformer-ros-bag compare A B [--min-agreement 0.99]`` pairs the masks of two segmented
bags by header and reports per topic and class the pixel agreement and IoU, and the frames
in one bag only; exit 1 below the threshold (gate a model update on it).

Exit codes: 0 done, 1 compare below the threshold, 2 bad arguments / bag / model,
130 interrupted (the output bag is valid).
"""

import argparse
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

from ..errors import SegformerRosError
from .evaluate import Progress, add_model_arguments, load_tool_params, stage_medians, write_json

EXIT_BELOW_THRESHOLD = 1
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface: ``run`` and ``compare``."""
    from ..bag_run import OUTPUTS, STORAGES

    p = argparse.ArgumentParser(prog='segformer-ros-bag',
                                description='Segment rosbag2 recordings with the node\'s '
                                            'pipeline; compare two segmented bags.')
    sub = p.add_subparsers(dest='command', required=True)
    run = sub.add_parser('run', help='segment a bag into a new bag')
    run.add_argument('input', help='rosbag2 folder (or its .mcap / .db3 file)')
    run.add_argument('output', help='new rosbag2 folder to write')
    add_model_arguments(run)
    run.add_argument('--image-topics', nargs='+', required=True, metavar='T',
                     help='sensor_msgs/Image or CompressedImage topics to segment')
    run.add_argument('--namespaces', nargs='+', default=[], metavar='NS',
                     help='output namespace per image topic (default: the topic\'s parent)')
    run.add_argument('--camera-info-topics', nargs='+', default=[], metavar='T',
                     help='CameraInfo topic per image topic (default: <parent>/camera_info '
                          'when the bag has it)')
    run.add_argument('--outputs', nargs='+', choices=OUTPUTS, default=list(OUTPUTS),
                     help='outputs to write (default all; mask always)')
    run.add_argument('--copy-input', action='store_true',
                     help='also copy the image and CameraInfo topics into the output bag')
    run.add_argument('--storage', choices=STORAGES, default='',
                     help='output storage (default: as the input)')
    run.add_argument('--warmup', type=int, default=None,
                     help='warm-up inferences (default: the warmup_iterations parameter)')
    run.add_argument('--json', metavar='FILE', help="write the report as JSON ('-' = stdout)")
    run.add_argument('--quiet', action='store_true', help='no progress line')
    cmp_ = sub.add_parser('compare', help='compare the masks of two segmented bags')
    cmp_.add_argument('a', help='segmented bag A (e.g. the current model)')
    cmp_.add_argument('b', help='segmented bag B (e.g. the candidate)')
    cmp_.add_argument('--min-agreement', type=float, default=0.99,
                      help='exit 1 when a topic\'s pixel agreement is below this (default 0.99)')
    cmp_.add_argument('--json', metavar='FILE', help="write the report as JSON ('-' = stdout)")
    return p


def run_params(args: argparse.Namespace, warn: Callable[[str], None]) -> Dict[str, Any]:
    """Return the node's parameters for this run: params file, --set, --model, defaults."""
    from ..default_model import with_default_model
    from ..parameters import defaults

    params = defaults()
    params.update(load_tool_params(args.params, args.overrides, warn))
    if args.model:
        params['model_path'] = args.model
    params, warning = with_default_model(params)
    if warning:
        warn(warning)
    return params


def build_bag_pipeline(params: Dict[str, Any], cameras: int, log: Callable[[str], None],
                       warmup: Optional[int] = None) -> Tuple[Any, Any]:
    """Backend and pipeline as the node builds them for ``cameras`` cameras."""
    from ..backends.factory import create_backend
    from ..gpu_segmentation import select_pipeline
    from ..parameters import pipeline_config_from_params

    config = pipeline_config_from_params(params)
    limit = int(params.get('max_batch_size', 0))
    max_batch = min(cameras, limit) if limit else cameras
    backend = create_backend(
        params['backend'], params['model_path'], logger=log,
        provider=params['onnxruntime_provider'], num_threads=params['num_threads'],
        precision=params['precision'], engine_cache_dir=params['engine_cache_dir'],
        rebuild_stale_engine=params['rebuild_stale_engine'],
        allow_engine_host_code=params['allow_engine_host_code'],
        workspace_mb=params['workspace_mb'], input_hw=config.input_size,
        max_batch=max(1, max_batch), device_id=params['device_id'])
    try:
        backend.configure()
        pipeline = select_pipeline(params['pipeline'], backend, config,
                                   params['onnxruntime_provider'], log, max_batch=max_batch,
                                   frames_per_submission=cameras)
        backend.warmup(int(params['warmup_iterations']) if warmup is None else warmup,
                       pipeline.input_hw)
    except BaseException:
        backend.release()
        raise
    return backend, pipeline


def segment_one(input_path: Path, output: Path, params: Dict[str, Any],
                args: argparse.Namespace, log: Callable[[str], None],
                stop: Optional[threading.Event] = None) -> Dict[str, Any]:
    """Segment one bag; return its report (raises SegformerRosError on a bad bag)."""
    from ..bag_run import (BagSegmenter, RunOptions, bag_frame_total, open_reader,
                           plan_cameras, report)

    started = time.monotonic()
    reader = open_reader(input_path)
    try:
        cameras = plan_cameras(reader.connections, args.image_topics, args.namespaces,
                               args.camera_info_topics)
        backend, pipeline = build_bag_pipeline(params, len(cameras), log, args.warmup)
        outputs = tuple(dict.fromkeys(['mask', *args.outputs]))
        segmenter = BagSegmenter(pipeline, params, RunOptions(
            outputs=outputs, copy_input=args.copy_input, storage=args.storage,
            max_input_pixels=int(params['max_input_pixels'])), log, stop)
        progress = Progress(bag_frame_total(reader, cameras), 'bag',
                            enabled=not getattr(args, 'quiet', False))
        try:
            segmenter.run(input_path, output, cameras, reader, progress)
        finally:
            progress.close()
            description = backend.describe()
            if hasattr(pipeline, 'release'):
                pipeline.release()
            backend.release()
    finally:
        reader.close()
    return report(input_path, output, segmenter, cameras, started, {
        'model_path': str(params['model_path']), 'backend': description,
        'params_file': args.params, 'stage_ms_median': stage_medians(segmenter.times)})


def _run(args: argparse.Namespace) -> int:
    def warn(msg: str) -> None:
        print(f'segformer-ros-bag: {msg}', file=sys.stderr, flush=True)

    params = run_params(args, warn)
    stop = threading.Event()

    def on_sigint(_signum: int, _frame: Any) -> None:
        # First Ctrl-C: finish the current batch and close the bag (it stays valid);
        # a second one interrupts at once.
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        warn('stopping after the current batch (Ctrl-C again to abort at once)')

    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, on_sigint) if main_thread else None
    try:
        result = segment_one(Path(args.input), Path(args.output), params, args, warn, stop)
    finally:
        if main_thread:
            signal.signal(signal.SIGINT, previous)
    human = sys.stderr if args.json == '-' else sys.stdout
    print(f'{result["frames_segmented"]} frames segmented from {args.input} into '
          f'{args.output} ({result["frames_per_second"]} frames/s, {result["bad_messages"]} '
          f'bad messages{", interrupted" if result["interrupted"] else ""})', file=human,
          flush=True)
    for topic, counts in result['topics'].items():
        for reason in counts['bad_reasons']:
            print(f'  bad message: {reason}', file=human)
    if args.json:
        write_json(result, args.json)
    return EXIT_INTERRUPTED if result['interrupted'] else 0


def _compare(args: argparse.Namespace) -> int:
    from ..bag_compare import compare_bags, gate

    result = compare_bags(Path(args.a), Path(args.b))
    failure = gate(result, args.min_agreement)
    result['min_agreement'] = args.min_agreement
    result['passed'] = failure is None
    result['failure'] = failure
    human = sys.stderr if args.json == '-' else sys.stdout
    for topic, r in result['topics'].items():
        agreement = '-' if r['pixel_agreement'] is None else f'{100 * r["pixel_agreement"]:.3f} %'
        print(f'{topic}: {r["frames_compared"]} frames compared, agreement {agreement}, '
              f'only in A {r["only_in_a"]}, only in B {r["only_in_b"]}', file=human)
        worst = sorted((v, k) for k, v in r['per_class_iou'].items() if v is not None)[:3]
        if worst:
            print('  lowest class IoU: ' + ', '.join(f'{k} {100 * v:.2f} %' for v, k in worst),
                  file=human)
    print('PASS' if failure is None else f'FAIL: {failure}', file=human, flush=True)
    if args.json:
        write_json(result, args.json)
    return 0 if failure is None else EXIT_BELOW_THRESHOLD


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the bag tool; return the exit code (module docstring)."""
    args = build_parser().parse_args(argv)
    try:
        return _run(args) if args.command == 'run' else _compare(args)
    except SegformerRosError as exc:
        print(f'segformer-ros-bag: error: {exc}', file=sys.stderr, flush=True)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print('segformer-ros-bag: interrupted', file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED


if __name__ == '__main__':
    sys.exit(main())
