"""segformer-ros-eval: run the node's pipeline over a data set and report IoU / accuracy.

The frames go through exactly what the node runs: a params file (a preset such as
``config/segformer_cityscapes.yaml``) -> :func:`pipeline_config_from_params` ->
:func:`create_backend` -> :class:`SegmentationPipeline`. Inputs:

* ``--cityscapes ROOT [--split val]``: ``leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png``
  with ``gtFine/<split>/<city>/<stem>_gtFine_labelTrainIds.png`` (preferred) or
  ``..._gtFine_labelIds.png`` (mapped to train ids; 255 = ignore).
* ``--images DIR --labels DIR``: pairs by file stem. The image stem minus a trailing
  ``_leftImg8bit`` is the key; the label is ``<key>.png`` or ``<key>_<anything>.png`` in
  the labels folder (``_labelTrainIds`` preferred over ``_labelIds`` when both exist).
  Labels named ``*_labelIds.png`` are Cityscapes label ids and get mapped; all others
  are read as train ids (``--label-format`` overrides).
* ``--video FILE``, ``--bag FILE --topic T`` (a rosbag2 recording's Image or
  CompressedImage topic) or ``--images DIR`` without labels: no metrics; ``--overlays OUT``
  writes overlay images (a folder) or an overlay video (a path ending in .mp4).

``--masks DIR`` writes each frame's mask (train ids, 255 = unlabeled) as ``<name>.png``,
e.g. to score with other tools (test_cityscapes_official.py feeds them to cityscapesscripts).

Metric conventions are those of :mod:`segformer_ros.metrics` (``mIoU`` is the official
Cityscapes mean over every class with TP+FP+FN > 0; the mean over the classes present in the
ground truth is reported separately). Exit codes: 0 done, 2 bad arguments / data / model.
"""

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, TextIO, Tuple

import numpy as np

from ..errors import SegformerRosError
from ..labels import UNLABELED, label_ids_to_train_ids
from ..stats import stage_medians

LABEL_FORMATS: Tuple[str, ...] = ('auto', 'trainids', 'labelids')
_CITYSCAPES_IMAGE_SUFFIX = '_leftImg8bit'


# ------------------------------------------------------------------ shared tool helpers
class Progress:
    """A one-line progress report on stderr: count, rate and ETA (no tqdm needed)."""

    def __init__(self, total: Optional[int], label: str, stream: Optional[TextIO] = None,
                 enabled: bool = True) -> None:
        self.total = total
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.count = 0
        self.start = time.monotonic()
        self._last = 0.0
        self._printed = -1
        self._tty = bool(getattr(self.stream, 'isatty', lambda: False)())

    def text(self) -> str:
        """Return the current progress line."""
        elapsed = max(time.monotonic() - self.start, 1e-9)
        rate = self.count / elapsed
        if self.total:
            eta = (self.total - self.count) / rate if rate > 0 else float('inf')
            eta_text = f'{int(eta // 60)}m{int(eta % 60):02d}s' if eta != float('inf') else '?'
            return (f'{self.label} {self.count}/{self.total} '
                    f'({100.0 * self.count / self.total:.0f}%) {rate:.2f} frames/s ETA {eta_text}')
        return f'{self.label} {self.count} frames {rate:.2f} frames/s'

    def step(self, n: int = 1) -> None:
        """Count ``n`` more frames; redraw at most twice a second (every 10 s without a TTY)."""
        self.count += n
        if not self.enabled:
            return
        now = time.monotonic()
        interval = 0.5 if self._tty else 10.0
        if now - self._last >= interval or (self.total and self.count >= self.total):
            self._last = now
            self._draw()

    def _draw(self) -> None:
        self._printed = self.count
        end = '\r' if self._tty else '\n'
        print(self.text(), end=end, file=self.stream, flush=True)

    def close(self) -> None:
        """Show the final count and finish the line."""
        if not self.enabled:
            return
        if self._printed != self.count:
            self._draw()
        if self._tty:
            print(file=self.stream, flush=True)


def parse_override(text: str) -> Tuple[str, Any]:
    """Parse ``name=value`` with a YAML value (``mean=[0,0,0]``, ``num_threads=2``)."""
    import yaml

    name, sep, value = text.partition('=')
    if not sep or not name:
        raise argparse.ArgumentTypeError(f'expected NAME=VALUE, got {text!r}')
    return name.strip(), yaml.safe_load(value)


def tool_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """Return a tool's argument parser, the model options every tool takes already added."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    add_model_arguments(parser)
    return parser


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """--params/--model/--backend/--set options shared by eval and selfcheck."""
    parser.add_argument('--params', help='ROS 2 params file or preset name (e.g. '
                        'segformer_cityscapes, deeplab_mobilenet_cityscapes)')
    parser.add_argument('--model', help='model file (overrides model_path of --params; with '
                        'neither, the bundled demo model, as the node)')
    parser.add_argument('--set', dest='overrides', action='append', default=[],
                        type=parse_override, metavar='NAME=VALUE',
                        help='override one parameter (YAML value), repeatable')


def load_tool_params(params_file: Optional[str], overrides: Sequence[Tuple[str, Any]] = (),
                     warn: Callable[[str], None] = lambda _m: None) -> Dict[str, Any]:
    """Parameters from a params file (or preset name) plus overrides; unknown names warned."""
    from ..parameters import PARAMETER_NAMES
    from ..presets import load_params_file, resolve_params_file, unknown_parameters

    from ..nvinfer_config import apply_nvinfer_config

    params: Dict[str, Any] = {}
    if params_file:
        params = load_params_file(resolve_params_file(params_file))
    for name, value in overrides:
        params[name] = value
    unknown = unknown_parameters(params)
    if unknown:
        warn(f'ignoring unknown parameters {unknown}; known: {list(PARAMETER_NAMES)}')
    params = {k: v for k, v in params.items() if k in PARAMETER_NAMES}
    # As the node: an nvinfer_config's values under the parameters given here.
    merged, _ = apply_nvinfer_config(params, given=params)
    return merged


TOOL_HOW_TO_SET = '--model /path/to/segformer.onnx'


def with_tool_default_model(params: Dict[str, Any], warn: Callable[[str], None]
                            ) -> Dict[str, Any]:
    """``params`` with the node's default model when model_path is empty (warned, as there)."""
    from ..default_model import with_default_model

    merged, warning = with_default_model(params, how_to_set=TOOL_HOW_TO_SET)
    if warning:
        warn(warning)
    return merged


def build_pipeline(params: Dict[str, Any], logger: Callable[[str], None],
                   warmup: Optional[int] = None,
                   wrap: Optional[Callable[[Any], Any]] = None) -> Tuple[Any, Any]:
    """Create, configure and warm up the backend; return (backend, SegmentationPipeline).

    ``wrap`` may replace the backend the pipeline calls (e.g. a proxy recording outputs).
    """
    from ..assets import resolve_model_path
    from ..backends.factory import backend_options_from_params, create_backend
    from ..model_metadata import check_normalization
    from ..parameters import defaults, pipeline_config_from_params
    from ..pipeline import SegmentationPipeline

    full = defaults()
    full.update(params)
    config = pipeline_config_from_params(full)
    # The node's check: a mean/std the model's metadata contradicts is refused.
    warning = check_normalization(resolve_model_path(str(full['model_path'])),
                                  config.preprocess)
    if warning:
        logger(warning)
    backend = create_backend(full['backend'], str(full['model_path']), logger=logger,
                             **backend_options_from_params(full))
    try:
        backend.configure()
        pipeline = SegmentationPipeline(wrap(backend) if wrap else backend, config)
        iterations = int(full['warmup_iterations']) if warmup is None else warmup
        backend.warmup(iterations, pipeline.input_hw)
    except BaseException:
        backend.release()
        raise
    return backend, pipeline


def format_stage_ms(medians: Dict[str, float]) -> str:
    """``preprocess 1.2, inference 117.4, ...`` (stages that did not run left out)."""
    shown = [f'{stage} {ms:.1f}' for stage, ms in medians.items() if ms > 0.0]
    return ', '.join(shown) or 'none'


def write_json(data: Dict[str, Any], target: str) -> None:
    """Write ``data`` to a file, or to stdout for ``-``."""
    text = json.dumps(data, indent=2, sort_keys=False)
    if target == '-':
        print(text, flush=True)
    else:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        Path(target).write_text(text + '\n')


def run_tool(prog: str, argv: Optional[Sequence[str]], parser: argparse.ArgumentParser,
             run: Callable[[argparse.Namespace], Dict[str, Any]]
             ) -> Tuple[argparse.Namespace, Optional[Dict[str, Any]]]:
    """Parse ``argv`` and run; return the arguments and the report (None after an error).

    A SegformerRosError (a missing file, a model that does not fit the params) is one line
    ``<prog>: error: <reason>`` on stderr, never a traceback; the caller exits 2.
    """
    args = parser.parse_args(argv)
    try:
        return args, run(args)
    except SegformerRosError as exc:
        print(f'{prog}: error: {exc}', file=sys.stderr, flush=True)
        return args, None


# ------------------------------------------------------------------------- data sets
Sample = Tuple[Path, Optional[Path], str]  # image, label (or None), label format


def read_label(path: Path, label_format: str) -> np.ndarray:
    """Read a single-channel label image as train ids (uint8, 255 = ignore)."""
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise SegformerRosError(f"cannot read label '{path}'; expected a PNG of ids")
    if img.ndim == 3:
        raise SegformerRosError(
            f"label '{path}' has {img.shape[2]} channels; expected a single-channel id image "
            f'(Cityscapes *_labelTrainIds.png / *_labelIds.png, not *_color.png)')
    fmt = label_format
    if fmt == 'auto':
        fmt = 'labelids' if path.stem.endswith('_labelIds') else 'trainids'
    if fmt == 'labelids':
        return label_ids_to_train_ids(img)
    if img.dtype != np.uint8:
        img = np.where((img >= 0) & (img <= UNLABELED), img, UNLABELED).astype(np.uint8)
    return img


def _strip_image_suffix(stem: str) -> str:
    return stem[:-len(_CITYSCAPES_IMAGE_SUFFIX)] if stem.endswith(_CITYSCAPES_IMAGE_SUFFIX) \
        else stem


def _pick_label(key: str, candidates: Dict[str, Path]) -> Optional[Path]:
    """Find the label of image key ``key`` among label files by stem (module docstring)."""
    if key in candidates:
        return candidates[key]
    matches = sorted(stem for stem in candidates if stem.startswith(key + '_'))
    if not matches:
        return None
    for preferred in ('_labelTrainIds', '_labelIds'):
        for stem in matches:
            if stem.endswith(preferred):
                return candidates[stem]
    if len(matches) > 1:
        raise SegformerRosError(f"image '{key}' matches several labels {matches}; keep one "
                                f'label per image in the labels folder')
    return candidates[matches[0]]


def folder_samples(images: Path, labels: Optional[Path], label_format: str = 'auto'
                   ) -> Tuple[List[Sample], List[Path]]:
    """Pair images with labels by stem; return (samples, images without a label)."""
    from ..frame_sources import list_images

    files = list_images(images)
    if not files:
        raise SegformerRosError(f"no .png/.jpg images in '{images}'")
    if labels is None:
        return [(f, None, label_format) for f in files], []
    label_files = {p.stem: p for p in list_images(labels) if p.suffix.lower() == '.png'}
    samples: List[Sample] = []
    unpaired: List[Path] = []
    for f in files:
        label = _pick_label(_strip_image_suffix(f.stem), label_files)
        if label is None:
            unpaired.append(f)
        else:
            samples.append((f, label, label_format))
    return samples, unpaired


def cityscapes_samples(root: Path, split: str) -> Tuple[List[Sample], List[Path]]:
    """Images and gtFine labels of a Cityscapes split; return (samples, images without GT)."""
    image_root = root / 'leftImg8bit' / split
    gt_root = root / 'gtFine' / split
    if not image_root.is_dir():
        raise SegformerRosError(f"'{image_root}' does not exist; expected the Cityscapes layout "
                                f'ROOT/leftImg8bit/<split>/<city>/*_leftImg8bit.png')
    samples: List[Sample] = []
    unpaired: List[Path] = []
    for image in sorted(image_root.glob(f'*/*{_CITYSCAPES_IMAGE_SUFFIX}.png')):
        key = _strip_image_suffix(image.stem)
        city = image.parent.name
        train = gt_root / city / f'{key}_gtFine_labelTrainIds.png'
        ids = gt_root / city / f'{key}_gtFine_labelIds.png'
        if train.is_file():
            samples.append((image, train, 'trainids'))
        elif ids.is_file():
            samples.append((image, ids, 'labelids'))
        else:
            unpaired.append(image)
    if not samples and not unpaired:
        raise SegformerRosError(f"no *_leftImg8bit.png images under '{image_root}'")
    return samples, unpaired


# --------------------------------------------------------------------------- overlays
class OverlayWriter:
    """Overlays to a folder of PNGs or to one .mp4 video."""

    def __init__(self, target: Path, fps: float = 10.0) -> None:
        self.target = target
        self.fps = fps
        self.video: Any = None
        self.is_video = target.suffix.lower() in ('.mp4', '.avi')
        if self.is_video:
            target.parent.mkdir(parents=True, exist_ok=True)
        else:
            target.mkdir(parents=True, exist_ok=True)

    def write(self, name: str, overlay: np.ndarray, channel_order: str) -> None:
        """Write one overlay (channel_order 'rgb' or 'bgr')."""
        import cv2

        bgr = cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR) if channel_order == 'rgb' else overlay
        if not self.is_video:
            cv2.imwrite(str(self.target / f'{name}.png'), bgr)
            return
        if self.video is None:
            fourcc = cv2.VideoWriter_fourcc(*('mp4v' if self.target.suffix == '.mp4' else 'MJPG'))
            self.video = cv2.VideoWriter(str(self.target), fourcc, self.fps,
                                         (bgr.shape[1], bgr.shape[0]))
            if not self.video.isOpened():
                raise SegformerRosError(f"cannot write video '{self.target}'; use a folder")
        self.video.write(np.ascontiguousarray(bgr))

    def close(self) -> None:
        """Finish the video file."""
        if self.video is not None:
            self.video.release()
            self.video = None


# ------------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of the eval tool."""
    p = tool_parser('segformer-ros-eval',
                    'Run the segformer node\'s pipeline over Cityscapes, an image/label folder '
                    'pair or a video; report per-class IoU, mIoU and accuracy.')
    src = p.add_argument_group('data (one of)')
    src.add_argument('--cityscapes', metavar='ROOT',
                     help='Cityscapes root (leftImg8bit/, gtFine/)')
    src.add_argument('--split', default='val', help='Cityscapes split (default val)')
    src.add_argument('--images', metavar='DIR', help='image folder (sorted *.png/*.jpg)')
    src.add_argument('--labels', metavar='DIR', help='label folder paired by stem with --images')
    src.add_argument('--video', metavar='FILE', help='video file (no labels: overlays only)')
    src.add_argument('--bag', metavar='FILE', help='rosbag2 recording (mcap or sqlite3) with '
                     '--topic (no labels: overlays / masks only)')
    src.add_argument('--topic', metavar='T', help='image topic of --bag (Image or '
                     'CompressedImage)')
    p.add_argument('--label-format', choices=LABEL_FORMATS, default='auto',
                   help='auto: *_labelIds.png are label ids, others train ids')
    p.add_argument('--max-frames', type=int, default=0, help='stop after N frames (0 = all)')
    p.add_argument('--overlays', metavar='OUT', help='write overlays to a folder or a .mp4')
    p.add_argument('--masks', metavar='DIR',
                   help='write each mask (train ids, 255 = unlabeled) as DIR/<name>.png')
    p.add_argument('--warmup', type=int, default=None,
                   help='warm-up inferences (default: the warmup_iterations parameter)')
    p.add_argument('--json', metavar='FILE', help="write results as JSON ('-' = stdout)")
    p.add_argument('--quiet', action='store_true', help='no progress line')
    return p


def _frames(args: argparse.Namespace, samples: List[Sample], warn: Callable[[str], None]
            ) -> Iterator[Tuple[str, np.ndarray, str, Optional[np.ndarray]]]:
    """(name, frame, its channel order, train-id label or None) in order."""
    from ..frame_sources import iter_frames, read_image

    limit = args.max_frames if args.max_frames > 0 else None
    if args.video:
        for index, frame in iter_frames(args.video, max_frames=limit):
            yield f'frame_{index:06d}', frame, 'bgr', None
        return
    if args.bag:
        from ..bag_run import iter_bag_frames

        for name, view in iter_bag_frames(Path(args.bag), args.topic, limit,
                                          on_bad=lambda m: warn(f'skipped a bad message: {m}')):
            yield name, view.array, view.channel_order, None
        return
    for i, (image, label, fmt) in enumerate(samples):
        if limit is not None and i >= limit:
            return
        yield image.stem, read_image(image), 'bgr', (read_label(label, fmt) if label else None)


def _video_property(path: Optional[str], name: str) -> float:
    """Return a property of the video container (``cv2.CAP_PROP_<name>``); 0 when unknown."""
    if not path:
        return 0.0
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        return float(cap.get(getattr(cv2, f'CAP_PROP_{name}'))) if cap.isOpened() else 0.0
    finally:
        cap.release()


def _video_frame_count(path: Optional[str]) -> Optional[int]:
    """Frame count from the container (for the ETA), or None when unknown."""
    count = int(_video_property(path, 'FRAME_COUNT'))
    return count if count > 0 else None


def _video_fps(path: Optional[str]) -> Optional[float]:
    """Frame rate from the container (overlay videos keep it), or None when unknown."""
    fps = _video_property(path, 'FPS')
    return fps if 0.0 < fps < 1000.0 else None


def _write_mask(path: Path, mask: np.ndarray) -> None:
    """Write a class-id mask as a single-channel 8-bit PNG (lossless)."""
    import cv2

    if not cv2.imwrite(str(path), np.ascontiguousarray(mask, dtype=np.uint8)):
        raise SegformerRosError(f"cannot write mask '{path}'")


def run(args: argparse.Namespace) -> Dict[str, Any]:
    """Evaluate; return the JSON-ready report."""
    from ..metrics import ConfusionMatrix, format_table

    def warn(msg: str) -> None:
        print(f'segformer-ros-eval: {msg}', file=sys.stderr, flush=True)

    sources = [bool(args.cityscapes), bool(args.images), bool(args.video), bool(args.bag)]
    if sum(sources) != 1:
        raise SegformerRosError('give exactly one of --cityscapes, --images, --video or --bag')
    if bool(args.bag) != bool(args.topic):
        raise SegformerRosError('--bag and --topic go together: the recording and its image '
                                'topic')
    if args.labels and not args.images:
        raise SegformerRosError('--labels needs --images')
    params = load_tool_params(args.params, args.overrides, warn)
    if args.model:
        params['model_path'] = args.model
    # Same default as the node: no model given -> the bundled demo model, its own settings.
    params = with_tool_default_model(params, warn)
    if params.get('output_resolution', 'input') != 'input':
        warn('output_resolution forced to input: masks are compared with full-size labels')
    params['output_resolution'] = 'input'

    samples: List[Sample] = []
    unpaired: List[Path] = []
    dataset: Dict[str, Any]
    if args.cityscapes:
        samples, unpaired = cityscapes_samples(Path(args.cityscapes), args.split)
        dataset = {'kind': 'cityscapes', 'root': args.cityscapes, 'split': args.split}
    elif args.images:
        labels = Path(args.labels) if args.labels else None
        samples, unpaired = folder_samples(Path(args.images), labels, args.label_format)
        dataset = {'kind': 'folder', 'images': args.images, 'labels': args.labels}
    elif args.bag:
        dataset = {'kind': 'bag', 'bag': args.bag, 'topic': args.topic}
    else:
        dataset = {'kind': 'video', 'video': args.video}
    if unpaired:
        warn(f'{len(unpaired)} images have no label and are skipped, e.g. {unpaired[0].name}')
    if not args.video and not args.bag and not samples:
        raise SegformerRosError('no image/label pairs found (see --help for the pairing rule)')
    has_labels = any(label is not None for _i, label, _f in samples)
    if not has_labels and not args.overlays and not args.masks:
        warn('no labels: no metrics will be computed (add --overlays to see the masks)')

    backend, pipeline = build_pipeline(params, warn, args.warmup)
    num_classes = pipeline.config.classes.num_classes
    names = pipeline.config.classes.names
    matrix = ConfusionMatrix(num_classes)
    # A video's overlays play at its own rate; image sets at OverlayWriter's default.
    fps = _video_fps(args.video) if args.video else None
    writer = (OverlayWriter(Path(args.overlays), **({'fps': fps} if fps else {}))
              if args.overlays else None)
    total: Optional[int] = len(samples) if samples else _video_frame_count(args.video)
    if args.bag:
        from ..bag_run import bag_frame_count
        total = bag_frame_count(Path(args.bag), args.topic)
    if total is not None and args.max_frames > 0:
        total = min(total, args.max_frames)
    progress = Progress(total, 'eval', enabled=not args.quiet)
    times: List[Dict[str, float]] = []
    mask_dir = Path(args.masks) if args.masks else None
    if mask_dir is not None:
        mask_dir.mkdir(parents=True, exist_ok=True)
    try:
        for name, frame, order, label in _frames(args, samples, warn):
            result = pipeline.process(frame, order, want_overlay=writer is not None,
                                      want_summary=False)
            times.append(result.times)
            if label is not None:
                if label.shape != result.mask.shape:
                    raise SegformerRosError(
                        f"label of '{name}' is {label.shape[1]}x{label.shape[0]} but the image "
                        f'is {result.mask.shape[1]}x{result.mask.shape[0]}; expected the same '
                        f'size')
                matrix.update(label, result.mask)
            if writer is not None and result.overlay is not None:
                writer.write(name, result.overlay, result.overlay_channel_order)
            if mask_dir is not None:
                _write_mask(mask_dir / f'{name}.png', result.mask)
            progress.step()
    finally:
        progress.close()
        if writer is not None:
            writer.close()
        description = backend.describe()
        backend.release()
    report: Dict[str, Any] = {
        'dataset': dataset,
        'frames': progress.count,
        'unpaired_images': len(unpaired),
        'model_path': str(params['model_path']),
        'backend': description,
        'params_file': args.params,
        'stage_ms_median': stage_medians(times),
        'metrics': matrix.summary(names) if has_labels else None,
    }
    human = sys.stderr if args.json == '-' else sys.stdout  # keep stdout pure JSON for '-'
    if has_labels:
        print(format_table(report['metrics']), file=human)
    print(f'{progress.count} frames, {description}, median ms per frame: '
          f'{format_stage_ms(report["stage_ms_median"])}', file=human, flush=True)
    return report


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the eval tool; return the exit code (0 done, 2 error)."""
    args, report = run_tool('segformer-ros-eval', argv, build_parser(), run)
    if report is None:
        return 2
    if args.json:
        write_json(report, args.json)
    return 0


if __name__ == '__main__':
    sys.exit(main())
