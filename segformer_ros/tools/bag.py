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

Several inputs (``run A B C OUT/``) each get ``OUT/<name>_segmented``; ``--workers N`` runs
them in N local processes, ``--ray ADDRESS`` (or ``auto``) as one Ray task per recording
(:mod:`segformer_ros.bag_batch`); the masks are the same as a one-by-one run's.

``segformer-ros-bag compare A B [--min-agreement 0.99]`` pairs the masks of two segmented
bags by header and reports per topic and class the pixel agreement and IoU, and the frames
in one bag only; exit 1 below the threshold (gate a model update on it).

Exit codes: 0 done, 1 compare below the threshold, 2 bad arguments / bag / model,
130 interrupted (the output bag is valid).
"""

import argparse
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, TextIO

from ..errors import SegformerRosError
from .evaluate import Progress, add_model_arguments, load_tool_params, write_json

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
    run = sub.add_parser('run', help='segment a bag into a new bag (or many bags)')
    run.add_argument('inputs', nargs='+', metavar='INPUT',
                     help='rosbag2 folder (or its .mcap / .db3 file); several: see OUTPUT')
    run.add_argument('output', metavar='OUTPUT',
                     help='new rosbag2 folder to write; with several inputs, a folder that '
                          'gets one <input name>_segmented bag per input')
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
    run.add_argument('--workers', type=int, default=1, metavar='N',
                     help='segment several inputs in N local processes (default 1)')
    run.add_argument('--ray', metavar='ADDRESS',
                     help='segment the inputs on a Ray cluster, one task per recording (a GPU '
                          'per task where the parameters use one); auto = the running '
                          'cluster. Needs the ray extra')
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


def _jobs(args: argparse.Namespace, params: Dict[str, Any]) -> List[Any]:
    from ..bag_run import BagJob

    # Absolute paths: a pool or Ray worker need not share this process's working directory.
    params = dict(params)
    if params.get('model_path') and Path(params['model_path']).exists():
        params['model_path'] = str(Path(params['model_path']).resolve())
    common = dict(params=params, image_topics=list(args.image_topics),
                  namespaces=list(args.namespaces),
                  camera_info_topics=list(args.camera_info_topics),
                  outputs=tuple(args.outputs), copy_input=args.copy_input,
                  storage=args.storage, warmup=args.warmup)
    inputs = [Path(i).absolute() for i in args.inputs]
    if len(inputs) == 1:
        return [BagJob(input=str(inputs[0]), output=str(Path(args.output).absolute()),
                       **common)]
    names = [i.name if i.is_dir() else i.stem for i in inputs]
    if len(set(names)) != len(names):
        raise SegformerRosError(f'inputs {args.inputs} share names {names}; expected distinct '
                                f'names (each gets OUTPUT/<name>_segmented)')
    Path(args.output).mkdir(parents=True, exist_ok=True)
    out_dir = Path(args.output).absolute()
    return [BagJob(input=str(i), output=str(out_dir / f'{n}_segmented'), **common)
            for i, n in zip(inputs, names)]


def _print_run(result: Dict[str, Any], human: Any) -> None:
    if result.get('error'):
        print(f'{result["input"]}: error: {result["error"]}', file=human, flush=True)
        return
    if result.get('stopped'):
        print(f'{result["input"]}: {result["stopped"]}', file=human, flush=True)
        return
    print(f'{result["frames_segmented"]} frames segmented from {result["input"]} into '
          f'{result["output"]} ({result["frames_per_second"]} frames/s, '
          f'{result["bad_messages"]} bad messages'
          f'{", interrupted" if result["interrupted"] else ""})', file=human, flush=True)
    for counts in result['topics'].values():
        for reason in counts['bad_reasons']:
            print(f'  bad message: {reason}', file=human)


def _write_now(stream: TextIO, text: str) -> None:
    """Write ``text`` to the stream's file descriptor, bypassing its buffer (signal-safe)."""
    try:
        os.write(stream.fileno(), text.encode(errors='replace'))
    except (OSError, ValueError, AttributeError):   # no real descriptor (captured): drop it
        pass


def _run(args: argparse.Namespace) -> int:
    from ..bag_run import segment_bag

    def warn(msg: str) -> None:
        print(f'segformer-ros-bag: {msg}', file=sys.stderr, flush=True)

    if args.workers < 1:
        raise SegformerRosError(f'--workers must be >= 1, got {args.workers}')
    params = run_params(args, warn)
    jobs = _jobs(args, params)
    human = sys.stderr if args.json == '-' else sys.stdout
    stop = threading.Event()

    def on_sigint(_signum: int, _frame: Any) -> None:
        # First Ctrl-C: finish the current batch and close the bag(s) (they stay valid);
        # a second one interrupts at once. The notice goes straight to the file descriptor:
        # the handler runs between two bytecodes of the main thread, which may be inside a
        # write to sys.stderr (the progress line), and a nested write to that buffered
        # stream raises "reentrant call" (seen once in CI, as the error that ended the run).
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        _write_now(sys.stderr, 'segformer-ros-bag: stopping after the current batch '
                               '(Ctrl-C again to abort at once)\n')

    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, on_sigint) if main_thread else None
    try:
        if len(jobs) > 1 or args.ray:
            from ..bag_batch import run_local, run_ray

            def done(result: Dict[str, Any]) -> None:
                _print_run(result, human)

            results = (run_ray(jobs, args.ray, done, stop) if args.ray else
                       run_local(jobs, args.workers, done, stop))
            summary: Dict[str, Any] = {
                'executor': f'ray {args.ray}' if args.ray else f'{args.workers} processes',
                'params_file': args.params, 'runs': results}
        else:
            summary = segment_bag(jobs[0], warn, lambda total: Progress(
                total, 'bag', enabled=not args.quiet), stop)
            summary['params_file'] = args.params
            _print_run(summary, human)
            results = [summary]
    finally:
        if main_thread:
            signal.signal(signal.SIGINT, previous)
    if args.json:
        write_json(summary, args.json)
    if any(r.get('error') for r in results):
        return EXIT_ERROR
    return EXIT_INTERRUPTED if any(r['interrupted'] for r in results) else 0


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
