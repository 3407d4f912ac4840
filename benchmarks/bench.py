"""CPU benchmark of the image pipeline at 1080p, against the naive reference.

Usage (``make bench`` runs the first form)::

    python -m benchmarks.bench [--frames 30] [--json out/bench.json]
    python -m benchmarks.bench --quick --no-write-docs   # smoke test
    python -m benchmarks.bench --grid-only   # the drivable grid alone (issue 13)

Frames of the shared driving clip are upscaled to 1920x1080 rgb8 and held as
``array.array('B')`` buffers, as rclpy delivers ``sensor_msgs/Image.data``. Each frame goes
through conversion, preprocessing, the shared DeepLab model (ONNX Runtime CPU),
postprocessing, overlay, summary and the message build of mask + overlay, once with this
package's modules and once with :mod:`.naive_reference`. Logit postprocessing (DeepLab
outputs ids) is timed on 19x256x256 logits from ONE inference of the random SegFormer-B0
(cached for the run; ``--quick`` or a missing model uses smooth synthetic logits instead,
and the output says which). Times are wall-clock (``time.perf_counter``) per frame.
The table goes to stdout, ``--json`` and (unless ``--no-write-docs``) docs/benchmarks.md.
"""

import argparse
import array
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from segformer_ros.ros_compat import new_message

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / 'shared'
BUNDLED_MODEL_FILE = 'deeplab_mnv_edgetpu_slim_cityscapes_nchw_f32.onnx'
DEFAULT_MODEL = REPO / 'assets' / 'models' / BUNDLED_MODEL_FILE  # bundled
DEFAULT_SEGFORMER = SHARED / 'models' / 'segformer_b0_random_1024.onnx'
DEFAULT_VIDEO = REPO / 'assets' / 'data' / 'solidWhiteRight.mp4'  # bundled
DEFAULT_DOCS = REPO / 'docs' / 'benchmarks.md'
SECTION = '## CPU pipeline (make bench)'
HEIGHT, WIDTH = 1080, 1920
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


def _stats(values: Sequence[float]) -> Dict[str, float]:
    ms = np.asarray(values, dtype=np.float64) * 1e3
    return {'median_ms': float(np.median(ms)), 'p95_ms': float(np.percentile(ms, 95)),
            'n': int(ms.size), 'min_ms': float(ms.min()) if ms.size else 0.0}


def _load_frames(video: Path, count: int) -> List['array.array']:
    """Read ``count`` frames spread over the clip, upscaled to 1080p rgb8 byte buffers."""
    import cv2
    cap = cv2.VideoCapture(str(video))
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or count
    stride = max(1, total // max(count, 1))
    frames: List[array.array] = []
    index = 0
    while len(frames) < count:
        ok, bgr = cap.read()
        if not ok:
            if not frames:
                raise SystemExit(f'cannot read frames from {video}')
            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            continue
        if index % stride == 0:
            big = cv2.resize(bgr, (WIDTH, HEIGHT), interpolation=cv2.INTER_LINEAR)
            rgb = cv2.cvtColor(big, cv2.COLOR_BGR2RGB)
            frames.append(array.array('B', rgb.tobytes()))
        index += 1
    cap.release()
    return frames


def _segformer_logits(path: Path, frame: 'array.array', threads: int,
                      use_model: bool) -> Tuple[np.ndarray, str]:
    """Return (19, 256, 256) logits and a sentence saying where they came from."""
    if use_model and path.exists():
        from segformer_ros.backends.onnxruntime_backend import OnnxRuntimeBackend
        from segformer_ros.config import Normalization, PreprocessConfig
        from segformer_ros.conversion import image_fields_to_array
        from segformer_ros.preprocessing import preprocess
        backend = OnnxRuntimeBackend(str(path), num_threads=threads)
        try:
            info = backend.configure()
            view = image_fields_to_array('rgb8', HEIGHT, WIDTH, WIDTH * 3, frame)
            cfg = PreprocessConfig(normalization=Normalization(IMAGENET_MEAN, IMAGENET_STD))
            hw = (info.input_shape[2] or 1024, info.input_shape[3] or 1024)
            batch, _ = preprocess(view, None, cfg, hw)
            logits = np.ascontiguousarray(backend.infer(batch)[0], dtype=np.float32)
        finally:
            backend.release()
        return logits, (f'logits of one inference of {path.name} (random weights) on the '
                        f'first frame, shape {tuple(logits.shape)}, cached for the run')
    import cv2
    rng = np.random.default_rng(0)
    coarse = rng.standard_normal((19, 16, 16)).astype(np.float32) * 3
    logits = np.stack([cv2.resize(c, (256, 256), interpolation=cv2.INTER_CUBIC) for c in coarse])
    why = 'quick mode' if not use_model else f'{path.name} not found'
    return logits, f'synthetic smooth logits (19, 256, 256) ({why})'


def _machine() -> Dict[str, Any]:
    cpu = platform.processor() or 'unknown'
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                cpu = line.split(':', 1)[1].strip()
                break
    except OSError:
        pass
    versions: Dict[str, str] = {'python': platform.python_version(), 'numpy': np.__version__}
    for mod in ('cv2', 'onnxruntime'):
        try:
            versions[mod] = __import__(mod).__version__
        except ImportError:
            versions[mod] = 'not installed'
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = []
    return {'nproc': os.cpu_count(), 'cpu': cpu, 'platform': platform.platform(),
            'versions': versions, 'loadavg_1_5_15': load}


def _image_msg() -> Optional[Any]:
    try:
        from sensor_msgs.msg import Image
    except ImportError:
        return None
    return Image


def run(args: argparse.Namespace) -> Dict[str, Any]:
    """Run the benchmark; return the JSON-able result."""
    from segformer_ros.backends.base import OutputKind
    from segformer_ros.backends.onnxruntime_backend import OnnxRuntimeBackend
    from segformer_ros.config import (ClassConfig, PostprocessConfig, PreprocessConfig,
                                      SummaryConfig)
    from segformer_ros.conversion import array_to_image_fields, image_fields_to_array
    from segformer_ros.geometry import compute_geometry
    from segformer_ros.labels import palette_lut
    from segformer_ros.overlay import blend_overlay
    from segformer_ros.postprocessing import ids_from_output
    from segformer_ros.preprocessing import preprocess
    from segformer_ros.summary import compute_summary
    from benchmarks import naive_reference as naive

    machine = _machine()  # load average before the run: other work skews the timings
    for p in (args.model, args.video):
        if not Path(p).exists():
            raise SystemExit(f'missing input {p}; pass --model/--video (see docs/benchmarks.md)')
    n_frames = 3 if args.quick else args.frames
    n_naive = 1 if args.quick else min(args.naive_frames, n_frames)
    frames = _load_frames(Path(args.video), n_frames)
    logits, logits_source = _segformer_logits(Path(args.segformer), frames[0], args.threads,
                                              not args.quick)

    backend = OnnxRuntimeBackend(str(args.model), num_threads=args.threads)
    info = backend.configure()
    input_hw = (info.input_shape[2], info.input_shape[3])
    pre_cfg = PreprocessConfig()  # DeepLab: RGB 0..255, no normalization, stretch
    fast_cfg = PostprocessConfig(upsample_mode='fast')
    exact_cfg = PostprocessConfig(upsample_mode='exact')
    classes = ClassConfig()
    sum_cfg = SummaryConfig()
    lut = palette_lut(classes.colors)
    alpha = 0.5
    seg_geo = compute_geometry(HEIGHT, WIDTH, 1024, 1024, 'stretch')
    Image = _image_msg()
    step = WIDTH * 3
    in_buf = np.empty((1, 3) + input_hw, dtype=np.float32)
    backend.warmup(2)

    ours: Dict[str, List[float]] = {k: [] for k in (
        'conversion', 'preprocess', 'inference', 'postprocess_ids', 'postprocess_logits',
        'overlay', 'summary', 'message')}
    ours_masks = []

    def timed(store: List[float], fn: Callable[[], Any]) -> Any:
        t = time.perf_counter()
        out = fn()
        store.append(time.perf_counter() - t)
        return out

    # Three passes, so that ONNX Runtime's intra-op threads, which spin for a while after
    # each run, do not steal the cores from the CPU stages being timed (on 2 cores that
    # roughly doubles the time of the stage right after inference; see docs/benchmarks.md).
    work = [frames[0]] + frames  # the first item is a warm-up
    views, batches, geos, outputs = [], [], [], []
    for i, buf in enumerate(work):
        view = timed(ours['conversion'],
                     lambda: image_fields_to_array('rgb8', HEIGHT, WIDTH, step, buf))
        batch, geo = timed(ours['preprocess'],
                           lambda: preprocess(view, None, pre_cfg, input_hw, out=in_buf))
        views.append(view)
        batches.append(batch.copy())
        geos.append(geo)
    for batch in batches:
        outputs.append(timed(ours['inference'], lambda: backend.infer(batch)))
    time.sleep(0.2)
    for i, (view, geo, out) in enumerate(zip(views, geos, outputs)):
        mask = timed(ours['postprocess_ids'], lambda: ids_from_output(
            out[0], info.output_kind, geo, fast_cfg, classes.num_classes))
        timed(ours['postprocess_logits'], lambda: ids_from_output(
            logits, OutputKind.LOGITS, seg_geo, fast_cfg, classes.num_classes))
        overlay = timed(ours['overlay'],
                        lambda: blend_overlay(view.array, mask, lut, alpha, 'rgb'))
        timed(ours['summary'], lambda: compute_summary(mask, classes, sum_cfg))
        if Image is not None:
            def build() -> None:
                for arr, enc in ((mask, 'mono8'), (overlay, 'rgb8')):
                    msg = Image()
                    msg.height, msg.width, msg.step, msg.data = array_to_image_fields(arr, enc)
                    msg.encoding = enc
            timed(ours['message'], build)
        if 0 < i <= n_naive:
            ours_masks.append(mask)
    for values in ours.values():
        del values[:1]  # drop the warm-up item

    # What the separate passes avoid: the same overlay right after an inference.
    after_inference: List[float] = []
    for k in range(1, min(6, len(batches))):
        out = backend.infer(batches[k])
        timed(after_inference, lambda: blend_overlay(views[k].array, ours_masks[0], lut, alpha,
                                                     'rgb'))
    time.sleep(0.2)
    # The same with a plain ORT session whose threads do not spin (the recommended setting).
    after_no_spin: List[float] = []
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    so.add_session_config_entry('session.intra_op.allow_spinning', '0')
    quiet = ort.InferenceSession(str(args.model), so, providers=['CPUExecutionProvider'])
    quiet.run(None, {info.input_name: batches[0]})
    for k in range(1, min(6, len(batches))):
        quiet.run(None, {info.input_name: batches[k]})
        timed(after_no_spin, lambda: blend_overlay(views[k].array, ours_masks[0], lut, alpha,
                                                   'rgb'))
    del quiet
    time.sleep(0.2)

    # Message build with rclpy's per-field checks on (Humble's behaviour under __debug__).
    checked: Dict[str, List[float]] = {'ours': [], 'naive': []}
    if Image is not None:
        for _ in range(1 if args.quick else 5):
            def build_checked() -> None:
                for arr, enc in ((mask, 'mono8'), (overlay, 'rgb8')):
                    msg = new_message(Image, check_fields=True)
                    msg.height, msg.width, msg.step, msg.data = array_to_image_fields(arr, enc)
            timed(checked['ours'], build_checked)

        def build_checked_naive() -> None:
            for arr in (mask, overlay):
                naive.naive_message(new_message(Image, check_fields=True), arr)
        timed(checked['naive'], build_checked_naive)

    nav: Dict[str, List[float]] = {k: [] for k in ours if k != 'inference'}
    agree_ids: List[float] = []
    for i, buf in enumerate(frames[:n_naive]):
        frame = timed(nav['conversion'], lambda: naive.naive_convert(buf, HEIGHT, WIDTH, step))
        x = timed(nav['preprocess'], lambda: naive.naive_preprocess(
            frame, pre_cfg.normalization.mean, pre_cfg.normalization.std, input_hw))
        ids = backend.infer(x)[0]
        time.sleep(0.2)  # let ONNX Runtime's threads stop spinning (see above)
        mask = timed(nav['postprocess_ids'], lambda: naive.naive_ids_upsample(ids, HEIGHT, WIDTH))
        agree_ids.append(float((mask == ours_masks[i]).mean()))
        timed(nav['postprocess_logits'],
              lambda: naive.naive_upsample_argmax(logits, HEIGHT, WIDTH))
        overlay = timed(nav['overlay'],
                        lambda: naive.naive_overlay(frame, mask, classes.colors, alpha))
        timed(nav['summary'], lambda: naive.naive_summary(
            mask, classes.num_classes, sum_cfg.roi_polygon, classes.drivable_ids,
            sum_cfg.free_space_bins))
        if Image is not None:
            def build_naive() -> None:
                for arr, enc in ((mask, 'mono8'), (overlay, 'rgb8')):
                    msg = Image()
                    naive.naive_message(msg, arr)
                    msg.encoding = enc
            timed(nav['message'], build_naive)
    backend.release()
    grid_result = _grid_bench(ours_masks or [mask], classes.drivable_ids,
                              reps=20 if args.quick else 200)

    # Exact vs fast logits upsampling at 1080p.
    reps_fast, reps_exact = (2, 1) if args.quick else (10, 5)
    t_fast, t_exact = [], []
    for _ in range(reps_fast):
        fast = timed(t_fast, lambda: ids_from_output(logits, OutputKind.LOGITS, seg_geo,
                                                     fast_cfg, classes.num_classes))
    for _ in range(reps_exact):
        exact = timed(t_exact, lambda: ids_from_output(logits, OutputKind.LOGITS, seg_geo,
                                                       exact_cfg, classes.num_classes))
    full = naive.naive_upsample_argmax(logits, HEIGHT, WIDTH)
    exact_vs_fast = {
        'fast': _stats(t_fast), 'exact': _stats(t_exact),
        'agreement_fast_vs_exact': float((fast == exact).mean()),
        'agreement_exact_vs_full_res_reference': float((exact == full).mean()),
        'agreement_fast_vs_full_res_reference': float((fast == full).mean()),
    }

    def totals(src: Dict[str, List[float]], post: str, with_msg: bool) -> Dict[str, float]:
        keys = ['conversion', 'preprocess', post, 'overlay', 'summary']
        if with_msg and src.get('message'):
            keys.append('message')
        n = min(len(src[k]) for k in keys)
        return _stats([sum(src[k][j] for k in keys) for j in range(n)])

    result = {
        'date': datetime.datetime.now().astimezone().isoformat(timespec='seconds'),
        'command': 'python -m benchmarks.bench ' + ' '.join(args.argv),
        'machine': machine,
        'frame': f'{WIDTH}x{HEIGHT} rgb8 (solidWhiteRight.mp4 upscaled), array.array buffer',
        'model': Path(args.model).name, 'threads': args.threads,
        'logits_source': logits_source,
        'frames': {'ours': n_frames, 'naive': n_naive},
        'message_build': 'sensor_msgs.msg.Image' if Image is not None else 'skipped (no rclpy)',
        'stages': {k: {'ours': _stats(v) if v else None,
                       'naive': _stats(nav[k]) if nav.get(k) else None}
                   for k, v in ours.items()},
        'totals': {
            'ours_non_inference_ids_model': totals(ours, 'postprocess_ids', False),
            'ours_non_inference_logits_model': totals(ours, 'postprocess_logits', False),
            'naive_non_inference_logits_model': totals(nav, 'postprocess_logits', False),
            'ours_non_inference_logits_model_with_message':
                totals(ours, 'postprocess_logits', True),
            'naive_non_inference_logits_model_with_message':
                totals(nav, 'postprocess_logits', True),
        },
        'mask_agreement_ours_vs_naive_ids': float(np.mean(agree_ids)) if agree_ids else None,
        'exact_vs_fast': exact_vs_fast,
        'ort_spinning': {'overlay_right_after_inference': _stats(after_inference),
                         'overlay_right_after_inference_no_spin': _stats(after_no_spin),
                         'overlay_in_separate_pass': _stats(ours['overlay'])},
        'message_build_field_checks_on': {k: _stats(v) if v else None
                                          for k, v in checked.items()},
        'drivable_grid': grid_result,
    }
    ours_t = result['totals']['ours_non_inference_logits_model']['median_ms']
    naive_t = result['totals']['naive_non_inference_logits_model']['median_ms']
    result['speedup_non_inference'] = naive_t / ours_t if ours_t else None
    result['targets'] = {'ours_non_inference_le_25ms': ours_t <= 25.0,
                         'speedup_ge_4x': bool(result['speedup_non_inference']
                                               and result['speedup_non_inference'] >= 4.0)}
    return result


LABELS = [('conversion', 'conversion (array.array rgb8 -> view)'),
          ('preprocess', 'preprocess (-> 1x3x513x513 f32)'),
          ('inference', 'inference (DeepLab, ORT CPU)'),
          ('postprocess_ids', 'postprocess, id map 513^2 -> 1080p'),
          ('postprocess_logits', 'postprocess, logits 19x256^2 -> 1080p (fast)'),
          ('overlay', 'overlay (alpha 0.5)'),
          ('summary', 'summary (counts, ROI, free space)'),
          ('message', 'message build, mask + overlay')]
TOTALS = [('ours_non_inference_ids_model', 'ours: non-inference total, id-map model'),
          ('ours_non_inference_logits_model', 'ours: non-inference total, logits model'),
          ('naive_non_inference_logits_model', 'naive: non-inference total, logits model'),
          ('ours_non_inference_logits_model_with_message', 'ours: same + message build'),
          ('naive_non_inference_logits_model_with_message', 'naive: same + message build')]


def _fmt(s: Optional[Dict[str, float]]) -> Tuple[str, str]:
    if not s:
        return '-', '-'
    return f'{s["median_ms"]:.2f}', f'{s["p95_ms"]:.2f}'


def table(result: Dict[str, Any]) -> str:
    """Markdown table of the per-stage and total times."""
    lines = ['| stage | ours median ms | ours p95 ms | naive median ms | naive p95 ms | '
             'naive / ours |', '|---|---:|---:|---:|---:|---:|']
    for key, label in LABELS:
        st = result['stages'][key]
        if not st['ours']:
            label += ' (skipped: rclpy not importable)'
        om, op = _fmt(st['ours'])
        nm, np95 = _fmt(st['naive'])
        ratio = '-'
        if st['ours'] and st['naive']:
            ratio = f'{st["naive"]["median_ms"] / max(st["ours"]["median_ms"], 1e-9):.1f}x'
        if key == 'inference':
            nm, np95 = '(same model)', ''
        lines.append(f'| {label} | {om} | {op} | {nm} | {np95} | {ratio} |')
    for key, label in TOTALS:
        m, p = _fmt(result['totals'][key])
        if key.startswith('ours'):
            lines.append(f'| **{label}** | {m} | {p} | | | |')
        else:
            lines.append(f'| **{label}** | | | {m} | {p} | |')
    return '\n'.join(lines)


def _notes(result: Dict[str, Any]) -> str:
    spin = result['ort_spinning']
    after = spin['overlay_right_after_inference']['median_ms']
    alone = spin['overlay_in_separate_pass']['median_ms']
    no_spin = spin['overlay_right_after_inference_no_spin']['median_ms']
    text = (f'ONNX Runtime threads: the CPU stages are timed in a pass of their own, because '
            f'ORT\'s intra-op threads spin for a while after each run and can compete with the '
            f'stage that follows on a 2-core CPU. In this run the same overlay took '
            f'{after:.2f} ms (median) right after an inference of the production backend, '
            f'{no_spin:.2f} ms right after a plain session with '
            f'`session.intra_op.allow_spinning = 0`, and {alone:.2f} ms in the separate pass '
            f'(noisy on a loaded, shared machine: compare the load average above).')
    chk = result['message_build_field_checks_on']
    if chk.get('ours') and chk.get('naive'):
        text += (f' With rclpy field checks on (`Image(check_fields=True)`, the Humble behaviour '
                 f'under `__debug__`), building mask + overlay took '
                 f'{chk["ours"]["median_ms"]:.2f} ms (ours, array.array) vs '
                 f'{chk["naive"]["median_ms"]:.1f} ms (naive, bytes: every element checked).')
    return text


def markdown(result: Dict[str, Any]) -> str:
    """Render the docs/benchmarks.md section for this result."""
    m = result['machine']
    v = m['versions']
    ev = result['exact_vs_fast']
    t = result['targets']
    return '\n'.join([
        SECTION, '',
        f'Measured {result["date"]} with `{result["command"].strip()}` (`make bench`).',
        f'Machine: {m["nproc"]} CPUs, {m["cpu"]}; Python {v["python"]}, numpy {v["numpy"]}, '
        f'OpenCV {v["cv2"]}, onnxruntime {v["onnxruntime"]}; ORT threads {result["threads"]}; '
        f'load average before the run {m["loadavg_1_5_15"]} (1/5/15 min).',
        f'Input: {result["frame"]}; model {result["model"]}. Frames: '
        f'{result["frames"]["ours"]} (ours), {result["frames"]["naive"]} (naive). Wall-clock '
        f'per frame. Logit postprocessing uses {result["logits_source"]}. Message build: '
        f'{result["message_build"]} (ours: `array_to_image_fields` -> array.array; naive: '
        f'`msg.data = arr.tobytes()`).', '',
        table(result), '',
        f'Non-inference speed-up (logits model, naive / ours, medians): '
        f'{result["speedup_non_inference"]:.1f}x. Targets: ours <= 25 ms '
        f'{"met" if t["ours_non_inference_le_25ms"] else "NOT met"}; >= 4x less than naive '
        f'{"met" if t["speedup_ge_4x"] else "NOT met"}. Mask agreement ours vs naive '
        f'(id-map model; nearest with half-pixel centres vs cv2 INTER_NEAREST): '
        f'{100 * (result["mask_agreement_ours_vs_naive_ids"] or 0):.2f}%.', '',
        _notes(result), '',
        '### Logit upsampling at 1080p: fast vs exact', '',
        '| mode | median ms | p95 ms |', '|---|---:|---:|',
        f'| fast (argmax at 256x256, nearest) | {ev["fast"]["median_ms"]:.2f} | '
        f'{ev["fast"]["p95_ms"]:.2f} |',
        f'| exact (bilinear per class at 1080p, running argmax) | '
        f'{ev["exact"]["median_ms"]:.2f} | {ev["exact"]["p95_ms"]:.2f} |', '',
        f'Pixel agreement: fast vs exact {100 * ev["agreement_fast_vs_exact"]:.2f}%; exact vs '
        f'the naive full-resolution reference (cv2.resize of every channel + argmax) '
        f'{100 * ev["agreement_exact_vs_full_res_reference"]:.3f}%; fast vs that reference '
        f'{100 * ev["agreement_fast_vs_full_res_reference"]:.2f}%. (Random-weight logits '
        f'have many near-ties and small regions, so fast/exact disagree more than on a '
        f'trained model.)', '', _grid_markdown(result['drivable_grid'])])


def _grid_bench(masks: Sequence[np.ndarray], drivable_ids: Sequence[int],
                reps: int) -> Dict[str, Any]:
    """Time segmentation/drivable_grid's per-frame work on real 1080p masks (issue 13).

    The pose is the demo's assumed dashcam mounting (1.3 m, horizon at the clip's vanishing
    point), intrinsics a 60-degree horizontal field of view at 1920x1080, the grid the
    node's default (200x200 cells of 0.1 m, 20 m range). The lookup table is built once
    (timed apart); a frame is boundary + gather + scatter, as in the node, plus the
    nav_msgs/OccupancyGrid build when nav_msgs is importable.
    """
    from segformer_ros.ground_grid import (CameraModel, GridSpec, GroundProjection,
                                           MountingPose, drivable_lut)
    fx = (WIDTH / 2) / np.tan(np.radians(30.0))
    camera = CameraModel(WIDTH, HEIGHT, (fx, 0.0, (WIDTH - 1) / 2, 0.0, fx,
                                         (HEIGHT - 1) / 2, 0.0, 0.0, 1.0))
    pose = MountingPose(z=1.3, pitch=float(-np.arctan(35.5 / 831.0))).camera_pose()
    grid = GridSpec()
    t = time.perf_counter()
    projection = GroundProjection(camera, pose, grid)
    build_s = time.perf_counter() - t
    lut = drivable_lut(drivable_ids)
    per_frame: List[float] = []
    grids = []
    for k in range(reps + 1):
        m = masks[k % len(masks)]
        t = time.perf_counter()
        out = projection.occupancy(m, lut)
        if k:   # the first is a warm-up
            per_frame.append(time.perf_counter() - t)
            grids.append(out)
    message: List[float] = []
    try:
        from nav_msgs.msg import OccupancyGrid  # noqa: F401
        from std_msgs.msg import Header

        from segformer_ros.grid_output import occupancy_grid_message
        from segformer_ros.ground_grid import GridSettings
        settings = GridSettings('base_link', grid, None, False)
        for g in grids[:50]:
            t = time.perf_counter()
            occupancy_grid_message(g, settings, Header())
            message.append(time.perf_counter() - t)
    except ImportError:
        pass
    last = grids[-1]
    return {'mask': f'{WIDTH}x{HEIGHT}', 'grid': f'{grid.width}x{grid.height} cells of '
            f'{grid.resolution} m', 'table_entries': int(projection.entry_cell.size),
            'table_build_ms': build_s * 1e3, 'rows_read': HEIGHT - projection.row0,
            'masks': len(masks), 'per_frame': _stats(per_frame),
            'message': _stats(message) if message else None,
            'cells_free_occupied_unknown': [int((last == v).sum()) for v in (0, 100, -1)],
            'target_le_2ms': float(np.median(per_frame)) * 1e3 <= 2.0}


GRID_SECTION = '### Drivable occupancy grid (segmentation/drivable_grid, issue 13)'


def _grid_markdown(g: Dict[str, Any], measured: str = 'Same run, same machine.') -> str:
    """Render the drivable-grid subsection of the CPU section."""
    msg = g['message']
    return '\n'.join([
        GRID_SECTION, '',
        f'{measured} Per frame: {g["mask"]} class masks of the clip ({g["masks"]} DeepLab '
        f'masks, in turn) -> {g["grid"]}, with the demo\'s assumed '
        f'dashcam pose (1.3 m high, horizon at the clip\'s vanishing point; '
        f'`_grid_bench` in benchmarks/bench.py). The lookup table '
        f'({g["table_entries"]} column/cell entries; {g["rows_read"]} mask rows read per '
        f'frame) is built once per camera info / pose / size / grid: '
        f'{g["table_build_ms"]:.0f} ms.', '',
        '| step | median ms | p95 ms | min ms | n |', '|---|---:|---:|---:|---:|',
        f'| grid from mask (drivable LUT, boundary, gather + scatter) | '
        f'{g["per_frame"]["median_ms"]:.3f} | {g["per_frame"]["p95_ms"]:.3f} | '
        f'{g["per_frame"]["min_ms"]:.3f} | {g["per_frame"]["n"]} |',
        (f'| nav_msgs/OccupancyGrid build | {msg["median_ms"]:.3f} | {msg["p95_ms"]:.3f} | '
         f'{msg["min_ms"]:.3f} | {msg["n"]} |' if msg else
         '| nav_msgs/OccupancyGrid build | skipped (no nav_msgs) | | | |'), '',
        f'Target <= 2 ms per frame (median): {"met" if g["target_le_2ms"] else "NOT met"}. '
        f'Last grid: {g["cells_free_occupied_unknown"][0]} free, '
        f'{g["cells_free_occupied_unknown"][1]} occupied, '
        f'{g["cells_free_occupied_unknown"][2]} unknown cells.', ''])


def run_grid_only(args: argparse.Namespace) -> Dict[str, Any]:
    """Time the drivable grid alone (``--grid-only``) on DeepLab masks of the clip."""
    from segformer_ros.backends.onnxruntime_backend import OnnxRuntimeBackend
    from segformer_ros.config import ClassConfig, PostprocessConfig, PreprocessConfig
    from segformer_ros.conversion import image_fields_to_array
    from segformer_ros.postprocessing import ids_from_output
    from segformer_ros.preprocessing import preprocess

    machine = _machine()
    for p in (args.model, args.video):
        if not Path(p).exists():
            raise SystemExit(f'missing input {p}; pass --model/--video (see docs/benchmarks.md)')
    frames = _load_frames(Path(args.video), 3 if args.quick else 10)
    backend = OnnxRuntimeBackend(str(args.model), num_threads=args.threads)
    info = backend.configure()
    input_hw = (info.input_shape[2], info.input_shape[3])
    classes = ClassConfig()
    masks = []
    for buf in frames:
        view = image_fields_to_array('rgb8', HEIGHT, WIDTH, WIDTH * 3, buf)
        batch, geo = preprocess(view, None, PreprocessConfig(), input_hw)
        masks.append(ids_from_output(backend.infer(batch)[0], info.output_kind, geo,
                                     PostprocessConfig(upsample_mode='fast'),
                                     classes.num_classes))
    backend.release()
    time.sleep(0.5)   # let ONNX Runtime's threads stop spinning
    return {'date': datetime.datetime.now().astimezone().isoformat(timespec='seconds'),
            'command': 'python -m benchmarks.bench ' + ' '.join(args.argv),
            'machine': machine,
            'drivable_grid': _grid_bench(masks, classes.drivable_ids,
                                         reps=20 if args.quick else 300)}


def grid_only_markdown(result: Dict[str, Any]) -> str:
    """Render the grid subsection of a ``--grid-only`` run (its own command and machine)."""
    m = result['machine']
    measured = (f'Measured {result["date"]} with `{result["command"].strip()}`, alone (the '
                f'rest of this section is from the full run above); {m["nproc"]} CPUs, '
                f'{m["cpu"]}, load average before the run {m["loadavg_1_5_15"]} (1/5/15 '
                f'min; other work shares this machine, so the min is the closest to an idle '
                f'CPU).')
    return _grid_markdown(result['drivable_grid'], measured)


def write_grid_docs(path: Path, subsection: str) -> None:
    """Replace (or add at the end of the CPU section) the drivable-grid subsection."""
    text = path.read_text()
    start = text.find(GRID_SECTION)
    if start < 0:
        cpu = text.find(SECTION)
        start = text.find('\n## ', cpu + len(SECTION)) + 1 if cpu >= 0 else len(text)
        if start == 0:
            start = len(text)
        end = start
    else:
        ends = [i for i in (text.find('\n## ', start), text.find('\n### ', start + 1))
                if i >= 0]
        end = min(ends) + 1 if ends else len(text)
    text = text[:start] + subsection.rstrip('\n') + '\n\n' + text[end:]
    path.write_text(text.rstrip('\n') + '\n')


def write_docs(path: Path, section: str) -> None:
    """Replace (or append) the CPU pipeline section of docs/benchmarks.md, keep the rest."""
    text = path.read_text() if path.exists() else '# Benchmarks\n\n'
    start = text.find(SECTION)
    if start < 0:
        text = text.rstrip('\n') + '\n\n' + section
    else:
        end = text.find('\n## ', start + len(SECTION))
        tail = text[end + 1:] if end >= 0 else ''
        text = text[:start] + section + ('\n' + tail if tail else '')
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.rstrip('\n') + '\n')


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``python -m benchmarks.bench``."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--frames', type=int, default=30, help='frames to time (default 30)')
    parser.add_argument('--naive-frames', type=int, default=10,
                        help='frames for the (slow) naive path (default 10)')
    parser.add_argument('--quick', action='store_true',
                        help='3 frames, synthetic logits: a smoke test')
    parser.add_argument('--json', type=Path, help='write the result as JSON here')
    parser.add_argument('--out', type=Path, default=REPO / 'out' / 'bench',
                        help='writes bench.json and bench.md (the docs section) here')
    parser.add_argument('--write-docs', action='store_true',
                        help='also replace the CPU section of docs/benchmarks.md')
    parser.add_argument('--no-write-docs', action='store_true',
                        help=argparse.SUPPRESS)  # the default now; kept for old scripts
    parser.add_argument('--docs', type=Path, default=DEFAULT_DOCS, help=argparse.SUPPRESS)
    parser.add_argument('--model', type=Path, default=DEFAULT_MODEL)
    parser.add_argument('--segformer', type=Path, default=DEFAULT_SEGFORMER)
    parser.add_argument('--video', type=Path, default=DEFAULT_VIDEO)
    parser.add_argument('--threads', type=int, default=2, help='ORT intra-op threads')
    parser.add_argument('--grid-only', action='store_true',
                        help='time only the drivable occupancy grid (updates its subsection)')
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.frames < 1:
        parser.error(f'--frames must be >= 1, got {args.frames}')
    if args.grid_only:
        result = run_grid_only(args)
        g = result['drivable_grid']
        print(f'drivable grid {g["mask"]} -> {g["grid"]}: median '
              f'{g["per_frame"]["median_ms"]:.3f} ms, p95 {g["per_frame"]["p95_ms"]:.3f} ms, '
              f'min {g["per_frame"]["min_ms"]:.3f} ms per frame (table built once in '
              f'{g["table_build_ms"]:.0f} ms); load {result["machine"]["loadavg_1_5_15"]}')
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(result, indent=2) + '\n')
        if args.write_docs and not args.no_write_docs:
            write_grid_docs(args.docs, grid_only_markdown(result))
            print(f'updated {args.docs}')
        return 0
    result = run(args)
    print(f'CPU pipeline benchmark, {result["frame"]}, {result["machine"]["nproc"]} CPUs '
          f'({result["machine"]["cpu"]})')
    print(f'logits: {result["logits_source"]}')
    print(table(result))
    ev = result['exact_vs_fast']
    print(f'speed-up non-inference: {result["speedup_non_inference"]:.1f}x; targets: '
          f'{result["targets"]}')
    print(f'fast {ev["fast"]["median_ms"]:.2f} ms vs exact {ev["exact"]["median_ms"]:.2f} ms;'
          f' agreement {100 * ev["agreement_fast_vs_exact"]:.2f}%')
    grid = result['drivable_grid']
    print(f'drivable grid {grid["mask"]} -> {grid["grid"]}: median '
          f'{grid["per_frame"]["median_ms"]:.3f} ms, p95 {grid["per_frame"]["p95_ms"]:.3f} ms '
          f'per frame (table built once in {grid["table_build_ms"]:.0f} ms)')
    args.out.mkdir(parents=True, exist_ok=True)
    for path in (args.json, args.out / 'bench.json'):
        if path:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(result, indent=2) + '\n')
    (args.out / 'bench.md').write_text(markdown(result))
    print(f'wrote {args.out}/bench.json and bench.md')
    if args.write_docs and not args.no_write_docs:
        write_docs(args.docs, markdown(result))
        print(f'updated {args.docs}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
