r"""segformer-ros-selfcheck: check that two backends (or precisions) give the same masks.

Runs the node's pipeline twice over the same frames, with backend A and backend B (e.g.
TensorRT fp16 against ONNX Runtime fp32), and reports the pixel agreement of the masks,
the per-class IoU of A against B, the max/mean absolute logit difference (logits models),
and the median time of each pipeline stage for each backend::

    segformer-ros-selfcheck --params segformer_cityscapes --model model.onnx \\
        --backend-a tensorrt --precision-a fp16 --backend-b onnxruntime --video clip.mp4

A and B must differ (backend, precision, provider or model): the same pipeline twice agrees
with itself whatever it computes, so that run exits 2 unless --allow-same asks for it (e.g. to
check determinism). The verdict line names both.

Frames come from ``--video``, ``--images``, a live ``--topic``, or a recording's topic
(``--bag FILE --topic T``, rosbag2 mcap or sqlite3).

Exit codes: 0 when the overall pixel agreement is >= --min-agreement, 1 when it is below,
2 on bad arguments, data or models, or A and B the same without --allow-same.
"""

import argparse
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ..backends.base import OutputKind
from ..errors import SegformerRosError
from ..stats import stage_medians
from .evaluate import (build_pipeline, load_tool_params, Progress, run_tool, tool_parser,
                       with_tool_default_model, write_json)

DEFAULT_MIN_AGREEMENT = 0.995
SLOTS = ('a', 'b')


class _RecordingBackend:
    """Proxy handed to the pipeline: forwards everything, keeps a copy of the last logits."""

    def __init__(self, backend: Any) -> None:
        self._backend = backend
        self.last: Optional[np.ndarray] = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        out = self._backend.infer(batch)
        if self._backend.model_info.output_kind is OutputKind.LOGITS:
            self.last = np.array(out, dtype=np.float32, copy=True)  # engines reuse buffers
        return out


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of the self-check tool."""
    p = tool_parser('segformer-ros-selfcheck',
                    'Compare two backends on the same frames: mask agreement, per-class IoU, '
                    'logit difference and per-stage timing.')
    for slot, default in (('a', 'auto'), ('b', 'onnxruntime')):
        up = slot.upper()
        g = p.add_argument_group(f'backend {up}')
        g.add_argument(f'--backend-{slot}', default=default,
                       help=f'auto, tensorrt or onnxruntime (default {default})')
        g.add_argument(f'--model-{slot}', help=f'model for {up} (default: --model / model_path)')
        g.add_argument(f'--precision-{slot}', help='TensorRT precision: fp16, fp32, int8')
        g.add_argument(f'--provider-{slot}', help='ONNX Runtime provider: cpu, cuda, tensorrt')
        g.add_argument(f'--num-threads-{slot}', type=int, help='CPU threads (0 = default)')
    src = p.add_argument_group('frames (one of)')
    src.add_argument('--video', metavar='FILE', help='video file')
    src.add_argument('--images', metavar='DIR', help='image folder (sorted *.png/*.jpg)')
    src.add_argument('--topic', help='live image topic (sensor_msgs/Image; a name ending in '
                     '/compressed reads sensor_msgs/CompressedImage); with --bag, the '
                     'recording\'s image topic')
    src.add_argument('--bag', metavar='FILE', help='rosbag2 recording (mcap or sqlite3): '
                     'frames of its --topic')
    p.add_argument('--frames', type=int, default=20, help='number of frames (default 20)')
    p.add_argument('--topic-timeout', type=float, default=30.0,
                   help='seconds to wait for --frames frames on --topic (default 30)')
    p.add_argument('--min-agreement', type=float, default=DEFAULT_MIN_AGREEMENT,
                   help=f'pass threshold on the pixel agreement (default {DEFAULT_MIN_AGREEMENT})')
    p.add_argument('--warmup', type=int, default=None,
                   help='warm-up inferences per backend (default: warmup_iterations)')
    p.add_argument('--allow-same', action='store_true',
                   help='run even when A and B resolve to the same backend and model (it then '
                        'only checks determinism); otherwise that is an error (exit 2)')
    p.add_argument('--json', metavar='FILE', help="write results as JSON ('-' = stdout)")
    p.add_argument('--quiet', action='store_true', help='no progress line')
    return p


def slot_params(base: Dict[str, Any], args: argparse.Namespace, slot: str) -> Dict[str, Any]:
    """Parameters of backend A or B: the shared ones plus this slot's flags."""
    params = dict(base)
    params['backend'] = getattr(args, f'backend_{slot}')
    model = getattr(args, f'model_{slot}') or args.model
    if model:
        params['model_path'] = model
    for flag, name in (('precision', 'precision'), ('provider', 'onnxruntime_provider'),
                       ('num_threads', 'num_threads')):
        value = getattr(args, f'{flag}_{slot}')
        if value is not None:
            params[name] = value
    params['output_resolution'] = 'input'  # both masks at the frame size, comparable
    return params


def _same_pipelines(backends: Dict[str, Any], params: Dict[str, Dict[str, Any]]) -> str:
    """Describe A when A and B resolved to the same backend and model; else ''.

    describe() is the resolved backend (auto made concrete, the provider ONNX Runtime really
    uses, TensorRT's effective precision), so settings that change nothing compare equal.
    """
    a, b = params['a'], params['b']
    if backends['a'].describe() != backends['b'].describe():
        return ''
    if str(a.get('model_path')) != str(b.get('model_path')):
        return ''
    return f'{backends["a"].describe()} on {a["model_path"]}'


def _format_report(report: Dict[str, Any]) -> str:
    agreement = report['agreement']
    lines = []
    for slot in SLOTS:
        r = report[slot]
        lines.append(f'{slot.upper()}: {r["backend"]}  ({r["model_path"]})')
    min_frame = agreement['min_frame_agreement']
    verdict = 'PASS' if report['passed'] else 'FAIL'
    same = ' (the same backend and model: a determinism check)' if report.get('same') else ''
    lines.append(f'A {report["a"]["backend"]} vs B {report["b"]["backend"]}{same}, '
                 f'{agreement["frames"]} frames: pixel agreement '
                 f'{100 * agreement["pixel_agreement"]:.3f} % (lowest frame '
                 f'{100 * (min_frame if min_frame is not None else 1.0):.3f} %), threshold '
                 f'{100 * report["min_agreement"]:.3f} %: {verdict}')
    present = {k: v for k, v in agreement['per_class_iou'].items() if v is not None}
    lines.append('per-class IoU of A vs B: ' +
                 (', '.join(f'{k} {v:.4f}' for k, v in present.items()) or 'no classes'))
    if agreement['logit_max_abs_diff'] is not None:
        lines.append(f'logits: max abs diff {agreement["logit_max_abs_diff"]:.4g}, mean abs diff '
                     f'{agreement["logit_mean_abs_diff"]:.4g}')
    else:
        lines.append('logits: not compared (a model outputs class ids, or the logit shapes '
                     'differ)')
    stages = list(report['a']['stage_ms_median'])
    lines.append('median ms ' + ' '.join(f'{s:>11}' for s in stages))
    for slot in SLOTS:
        ms = report[slot]['stage_ms_median']
        lines.append(f'{slot.upper():<9} ' + ' '.join(f'{ms.get(s, 0.0):>11.2f}' for s in stages))
    return '\n'.join(lines)


def run(args: argparse.Namespace) -> Dict[str, Any]:
    """Run both backends over the frames; return the JSON-ready report."""
    from ..frame_sources import iter_frames
    from ..metrics import AgreementStats

    def warn(msg: str) -> None:
        print(f'segformer-ros-selfcheck: {msg}', file=sys.stderr, flush=True)

    if args.bag and not args.topic:
        raise SegformerRosError('--bag needs --topic: the image topic of the recording')
    if sum(bool(s) for s in (args.video, args.images, args.topic)) != 1:
        raise SegformerRosError('give exactly one of --video, --images or --topic (a live '
                                'topic, or with --bag FILE the recording\'s)')
    if args.frames < 1:
        raise SegformerRosError(f'--frames must be >= 1, got {args.frames}')
    base = load_tool_params(args.params, args.overrides, warn)
    pipelines: Dict[str, Any] = {}
    backends: Dict[str, Any] = {}
    recorders: Dict[str, _RecordingBackend] = {}
    params: Dict[str, Dict[str, Any]] = {}
    try:
        for slot in SLOTS:
            # No model: the bundled demo model with its own settings, as the node does.
            params[slot] = with_tool_default_model(slot_params(base, args, slot),
                                                   warn if slot == 'a' else lambda _m: None)

            def wrap(backend: Any, slot: str = slot) -> Any:
                recorders[slot] = _RecordingBackend(backend)
                return recorders[slot]

            backends[slot], pipelines[slot] = build_pipeline(params[slot], warn, args.warmup,
                                                             wrap=wrap)
        same = _same_pipelines(backends, params)
        if same and not args.allow_same:
            raise SegformerRosError(
                f'A and B are the same ({same}): comparing a pipeline with itself proves '
                f'nothing. Give another --backend-a/--backend-b (e.g. --backend-a tensorrt '
                f'--backend-b onnxruntime), --precision-a/b, --provider-a/b or --model-a/b; '
                f'or --allow-same for a determinism check')
        num_classes = pipelines['a'].config.classes.num_classes
        if pipelines['b'].config.classes.num_classes != num_classes:
            raise SegformerRosError('A and B are configured with different class lists')
        stats = AgreementStats(num_classes)
        times: Dict[str, List[Dict[str, float]]] = {slot: [] for slot in SLOTS}
        logits_comparable = True
        progress = Progress(args.frames, 'selfcheck', enabled=not args.quiet)
        source = args.video or args.images or args.topic
        if args.bag:
            from ..bag_run import iter_bag_frames
            source = f'{args.bag}:{args.topic}'
            frames = ((view.array, view.channel_order) for _n, view in iter_bag_frames(
                Path(args.bag), args.topic, args.frames,
                on_bad=lambda m: warn(f'skipped a bad message: {m}')))
        elif args.topic:
            from .topic_frames import collect_topic_frames
            frames = iter(collect_topic_frames(args.topic, args.frames, args.topic_timeout))
        else:
            frames = ((frame, 'bgr') for _i, frame in iter_frames(source, max_frames=args.frames))
        try:
            for frame, order in frames:
                results = {}
                for slot in SLOTS:
                    recorders[slot].last = None
                    results[slot] = pipelines[slot].process(frame, order, want_overlay=False,
                                                            want_summary=False)
                    times[slot].append(results[slot].times)
                la, lb = recorders['a'].last, recorders['b'].last
                if la is None or lb is None or la.shape != lb.shape:
                    logits_comparable = False
                stats.update(results['a'].mask, results['b'].mask,
                             la if logits_comparable else None,
                             lb if logits_comparable else None)
                progress.step()
        finally:
            progress.close()
        descriptions = {slot: backends[slot].describe() for slot in SLOTS}
    finally:
        for backend in backends.values():
            backend.release()
    if stats.frames == 0:
        raise SegformerRosError(f"no frames could be read from '{source}'")
    summary = stats.summary(pipelines['a'].config.classes.names)
    if not logits_comparable:
        summary['logit_max_abs_diff'] = summary['logit_mean_abs_diff'] = None
    return {
        'a': {'backend': descriptions['a'], 'model_path': str(params['a']['model_path']),
              'stage_ms_median': stage_medians(times['a'])},
        'b': {'backend': descriptions['b'], 'model_path': str(params['b']['model_path']),
              'stage_ms_median': stage_medians(times['b'])},
        'source': source,
        'same': bool(same),
        'agreement': summary,
        'min_agreement': args.min_agreement,
        'passed': bool(stats.agreement >= args.min_agreement),
    }


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the self-check; return 0 (agreement ok), 1 (below --min-agreement) or 2 (error)."""
    args, report = run_tool('segformer-ros-selfcheck', argv, build_parser(), run)
    if report is None:
        return 2
    print(_format_report(report), file=sys.stderr if args.json == '-' else sys.stdout,
          flush=True)
    if args.json:
        write_json(report, args.json)
    return 0 if report['passed'] else 1


if __name__ == '__main__':
    sys.exit(main())
