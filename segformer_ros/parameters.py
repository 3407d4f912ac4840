"""The node's parameters, defined once (no ROS here).

The node declares ROS parameters from :data:`PARAMETERS` (description, range,
read-only flag), the tools read the same YAML presets through
:func:`pipeline_config_from_params`, so a preset means the same thing everywhere.
"""

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from .config import (CHANNEL_ORDERS, ClassConfig, Normalization,
                     PipelineConfig, PostprocessConfig, PreprocessConfig, SummaryConfig,
                     UPSAMPLE_MODES, DEFAULT_ROI_POLYGON)
from .backends.factory import BACKEND_NAMES
from .errors import ConfigError
from .geometry import RESIZE_POLICIES
from .labels import CITYSCAPES_CLASSES, CITYSCAPES_PALETTE, class_ids_for_names
from .output_size import output_resolution_problem

BACKENDS: Tuple[str, ...] = BACKEND_NAMES
ORT_PROVIDERS: Tuple[str, ...] = ('cpu', 'cuda', 'tensorrt')
PRECISIONS: Tuple[str, ...] = ('fp16', 'fp32', 'int8')
INPUT_TRANSPORTS: Tuple[str, ...] = ('raw', 'compressed')
# SegFormer's normalization (Hugging Face SegformerImageProcessor: ImageNet statistics) on
# 0..255 RGB pixels, and the input size its Cityscapes checkpoints are evaluated at.
IMAGENET_MEAN: Tuple[float, float, float] = (123.675, 116.28, 103.53)
IMAGENET_STD: Tuple[float, float, float] = (58.395, 57.12, 57.375)
SEGFORMER_INPUT_SIZE = 1024


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: name, default (its type is the parameter's type) and documentation."""

    name: str
    default: Any
    description: str
    choices: Optional[Tuple[str, ...]] = None
    min_value: Optional[float] = None
    max_value: Optional[float] = None
    read_only: bool = False
    # True where the node applies a new value to the next frame without reconfiguring.
    dynamic: bool = False
    # Returns why a value is not acceptable (None when it is), for checks beyond choices.
    validator: Optional[Callable[[Any], Optional[str]]] = None


_FLAT_PALETTE: List[int] = [v for rgb in CITYSCAPES_PALETTE for v in rgb]
_FLAT_ROI: List[float] = [v for xy in DEFAULT_ROI_POLYGON for v in xy]

PARAMETERS: Tuple[ParamSpec, ...] = (
    # --- model and backend (read at configure; change them, then configure again)
    ParamSpec('model_path', '', 'ONNX model (or .engine/.plan for TensorRT) to load at '
              'configure.'),
    ParamSpec('backend', 'auto', 'Inference backend: auto (TensorRT when importable and a GPU is '
              'present, else ONNX Runtime), tensorrt, or onnxruntime.', choices=BACKENDS),
    ParamSpec('pipeline', 'auto', 'Pre/postprocessing: auto (the zero-copy CUDA pipeline when '
              'inference runs on a GPU, else CPU), cpu, or gpu.', choices=('auto', 'cpu', 'gpu')),
    ParamSpec('onnxruntime_provider', 'cpu', 'ONNX Runtime execution provider: cpu, cuda or '
              'tensorrt (the latter two need onnxruntime-gpu).', choices=ORT_PROVIDERS),
    ParamSpec('num_threads', 0, 'CPU inference threads (0 = library default).',
              min_value=0, max_value=256),
    ParamSpec('precision', 'fp16', 'TensorRT precision: fp16, fp32, or int8 (explicitly '
              'quantized Q/DQ ONNX only).', choices=PRECISIONS),
    ParamSpec('engine_cache_dir', '', 'Directory for built TensorRT engines and the timing cache '
              '(empty = ~/.cache/segformer_ros).'),
    ParamSpec('rebuild_stale_engine', False, 'Rebuild a cached TensorRT engine that does not '
              'match '
              'this TensorRT version or GPU instead of failing configure.'),
    ParamSpec('allow_engine_host_code', False, 'Allow TensorRT engines that embed host code '
              '(plugins/lean runtime). Off: such engines are refused.'),
    ParamSpec('workspace_mb', 1024, 'TensorRT builder workspace limit in MiB (cap it on Orin '
              'Nano).',
              min_value=16, max_value=65536),
    ParamSpec('device_id', 0, 'CUDA device for TensorRT, the ONNX Runtime cuda/tensorrt '
              'providers and the GPU pipeline.', min_value=0, max_value=63),
    ParamSpec('warmup_iterations', 2, 'Inferences on a dummy frame during configure.',
              min_value=0, max_value=100),
    ParamSpec('nvinfer_config', '', 'DeepStream nvinfer config file (Gst-nvinfer INI) read at '
              'configure: its model, normalization, input size, precision, letterbox and '
              'classes apply; our parameters given explicitly override it '
              '(segformer-ros-import-nvinfer shows the mapping). Empty = none.'),
    # --- model input
    # The model settings default to SegFormer's (config/segformer.yaml); the bundled demo
    # model's own (deeplab_mobilenet_cityscapes.yaml) apply only when it is the model loaded.
    ParamSpec('input_width', SEGFORMER_INPUT_SIZE, 'Model input width, used only when the '
              'model has dynamic dims (0 = from the model).', min_value=0, max_value=8192),
    ParamSpec('input_height', SEGFORMER_INPUT_SIZE, 'Model input height, used only when the '
              'model has dynamic dims (0 = from the model).', min_value=0, max_value=8192),
    ParamSpec('resize_policy', 'stretch', 'stretch (fill the input, as TAO/DeepStream) or '
              'letterbox (keep aspect, pad, crop back).', choices=RESIZE_POLICIES),
    ParamSpec('channel_order', 'rgb', 'Channel order the model expects (nvinfer '
              'model-color-format '
              '0 = rgb, 1 = bgr).', choices=CHANNEL_ORDERS),
    ParamSpec('mean', list(IMAGENET_MEAN), 'Per-channel mean on 0..255 pixels, model channel '
              'order: y = (x - mean) / std (default: ImageNet, as SegFormer). Ignored when '
              'net_scale_factor > 0.'),
    ParamSpec('std', list(IMAGENET_STD), 'Per-channel std on 0..255 pixels, model channel order '
              '(default: ImageNet, as SegFormer).'),
    ParamSpec('net_scale_factor', 0.0, 'DeepStream nvinfer net-scale-factor; > 0 selects the '
              'nvinfer form y = net_scale_factor * (x - offsets).', min_value=0.0, max_value=1e6),
    ParamSpec('offsets', [0.0, 0.0, 0.0], 'DeepStream nvinfer offsets (with net_scale_factor).'),
    # --- classes
    ParamSpec('class_names', list(CITYSCAPES_CLASSES), 'Class names, index = class id.'),
    ParamSpec('class_colors', _FLAT_PALETTE, 'Overlay colours, 3 values (R, G, B) per class.'),
    ParamSpec('drivable_classes', ['road'], 'Classes (names or ids) counted as drivable.'),
    ParamSpec('void_channels', 0, 'Logits models: trailing output channels after the classes '
              'that mean void/background (ESPNetv2 Cityscapes: 1); pixels they win are 255 '
              '(unlabeled), never a class.', min_value=0, max_value=254),
    # --- outputs
    ParamSpec('upsample_mode', 'fast', 'Logits models: fast (argmax, then nearest upsample) or '
              'exact (bilinear logits upsample, then argmax).', choices=UPSAMPLE_MODES),
    ParamSpec('output_resolution', 'input', 'Mask and confidence size: input (the camera '
              'image\'s), model (the model geometry without padding), or WIDTHxHEIGHT, e.g. '
              '640x480 (same field of view, scaled).', validator=output_resolution_problem),
    ParamSpec('match_camera_info', '', 'sensor_msgs/CameraInfo topic (e.g. the depth camera\'s) '
              'whose width x height the mask and confidence are published at, overriding '
              'output_resolution; frames wait for its first message. Empty = off. One camera '
              'only.'),
    ParamSpec('overlay_alpha', 0.5, 'Weight of the class colour in the overlay.',
              min_value=0.0, max_value=1.0, dynamic=True),
    ParamSpec('roi_polygon', _FLAT_ROI, 'Region of interest for the summary: x0, y0, x1, y1, '
              '... in '
              'normalized image coordinates (x right, y down).'),
    ParamSpec('free_space_bins', 32, 'Column bins of the free-space boundary in the summary.',
              min_value=1, max_value=4096),
    # --- input
    ParamSpec('input_transport', 'raw', 'raw: sensor_msgs/Image on <image>; compressed: '
              'sensor_msgs/CompressedImage on <image>/compressed.', choices=INPUT_TRANSPORTS),
    ParamSpec('max_input_pixels', 16 * 1024 * 1024, 'Largest accepted input (width * height); '
              'bigger frames are refused before any allocation.', min_value=1,
              max_value=1 << 30),
    # --- several cameras through one model (empty cameras = one camera on 'image')
    ParamSpec('cameras', [], 'Camera names; each gets input <name>/image (see camera_topics) and '
              'outputs <namespace>/segmentation/*. Empty: one camera on the topic image.'),
    ParamSpec('camera_topics', [], 'Image topic per camera (same order as cameras; empty = '
              '<name>/image).'),
    ParamSpec('camera_namespaces', [], 'Output namespace per camera (empty = the camera name).'),
    ParamSpec('camera_transports', [], 'raw or compressed per camera (empty = input_transport).'),
    ParamSpec('camera_info_topics', [], 'sensor_msgs/CameraInfo topic per camera (one entry for '
              'the single camera; empty = none): republished on <namespace>/segmentation/'
              'camera_info with the mask\'s header and size (intrinsics scaled to it).'),
    ParamSpec('max_batch_size', 0, 'Most frames per inference across cameras (0 = as many as the '
              'model allows; 1 = never batch).', min_value=0, max_value=64),
    ParamSpec('frames_in_flight', 0, 'Frames between inference and publish at once: 1 = one '
              'at a time; 2 = the next frame\'s inference overlaps the last one\'s '
              'postprocess and publish, and with inference on the GPU the next image is taken '
              'meanwhile; 0 = auto (2 with inference on the GPU, 1 with inference on the CPU, '
              'where the overlap would compete with the model for the same cores).',
              min_value=0, max_value=4),
    ParamSpec('batch_window_ms', 5.0, 'How long the first frame waits for the other cameras\' '
              'frames to share one inference.', min_value=0.0, max_value=200.0),
    ParamSpec('input_queue_depth', 1, 'Frames each camera\'s reader keeps while the model is '
              'busy, oldest first: 1 = only the newest (least latency; a frame arriving '
              'meanwhile replaces it and counts as dropped); 2-3 absorb bursts where the '
              'model\'s load is close to the cameras\' rate (several cameras on one GPU), at '
              'up to depth - 1 frame periods of extra latency while backed up, and on every '
              'frame when the model is slower than the camera.', min_value=1, max_value=8),
    # --- drivable occupancy grid (segmentation/drivable_grid; needs camera_info_topics)
    ParamSpec('grid_frame', 'base_link', 'Frame of the drivable grid; its ground plane is z = 0.'),
    ParamSpec('grid_resolution', 0.1, 'Grid cell size in metres.', min_value=0.005,
              max_value=10.0),
    ParamSpec('grid_width', 200, 'Grid cells along x of grid_frame.', min_value=1,
              max_value=4096),
    ParamSpec('grid_height', 200, 'Grid cells along y of grid_frame.', min_value=1,
              max_value=4096),
    ParamSpec('grid_origin_x', 0.0, 'x of the grid\'s corner (cell 0, 0) in grid_frame, metres.',
              min_value=-1e4, max_value=1e4),
    ParamSpec('grid_origin_y', -10.0, 'y of the grid\'s corner (cell 0, 0) in grid_frame, '
              'metres.', min_value=-1e4, max_value=1e4),
    ParamSpec('grid_max_range', 20.0, 'Cells farther than this from the point below the camera '
              'stay unknown (metres).', min_value=0.1, max_value=1e4),
    ParamSpec('grid_camera_x', 0.0, 'Camera optical centre in grid_frame, metres.',
              min_value=-1e4, max_value=1e4),
    ParamSpec('grid_camera_y', 0.0, 'Camera optical centre in grid_frame, metres.',
              min_value=-1e4, max_value=1e4),
    ParamSpec('grid_camera_z', 0.0, 'Camera height above the ground in grid_frame (metres); '
              '> 0 uses the grid_camera_* pose, 0 reads it from TF (image frame_id to '
              'grid_frame).', min_value=0.0, max_value=1e3),
    ParamSpec('grid_camera_roll', 0.0, 'Camera roll (rad) of its REP-103 body frame (x forward, '
              'y left, z up); the optical frame follows.', min_value=-7.0, max_value=7.0),
    ParamSpec('grid_camera_pitch', 0.0, 'Camera pitch (rad); > 0 looks down.', min_value=-7.0,
              max_value=7.0),
    ParamSpec('grid_camera_yaw', 0.0, 'Camera yaw (rad); > 0 turns left.', min_value=-7.0,
              max_value=7.0),
    ParamSpec('grid_use_roi', False, 'Only pixels inside roi_polygon vote; outside ones neither '
              'vote nor stop a column\'s free run.'),
    # --- node behaviour
    ParamSpec('autostart', False, 'Configure and activate on start (for bare ros2 run).',
              read_only=True),
    ParamSpec('diagnostics_period', 1.0, 'Seconds between /diagnostics messages.',
              min_value=0.1, max_value=60.0),
    ParamSpec('input_timeout_s', 5.0, 'While active: seconds without a camera frame before '
              '/diagnostics warns and the log names the topic, its publishers and their QoS '
              '(0 = never).', min_value=0.0, max_value=3600.0, dynamic=True),
    ParamSpec('stall_timeout_s', 5.0, 'While active: seconds one frame may stay in the frame '
              'path (at least 4x the slowest recent frame) before /diagnostics reports a '
              'stall as ERROR and the node logs it (0 = never).',
              min_value=0.0, max_value=3600.0, dynamic=True),
)

PARAMETER_NAMES: Tuple[str, ...] = tuple(p.name for p in PARAMETERS)


def defaults() -> Dict[str, Any]:
    """All parameters with their default values."""
    return {p.name: (list(p.default) if isinstance(p.default, list) else p.default)
            for p in PARAMETERS}


def spec(name: str) -> ParamSpec:
    """Look up one parameter's spec by name."""
    for p in PARAMETERS:
        if p.name == name:
            return p
    raise KeyError(name)


def is_float_param(p: ParamSpec) -> bool:
    """Tell a float parameter or a list of floats (users type ``10`` for ``10.0``)."""
    if isinstance(p.default, float):
        return True
    return (isinstance(p.default, list) and bool(p.default)
            and all(isinstance(v, float) for v in p.default))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def coerce_value(name: str, value: Any) -> Any:
    """Return ``value`` with integers of a float parameter as floats (``10`` -> ``10.0``)."""
    p = spec(name)
    if not is_float_param(p):
        return value
    if _is_number(value):
        return float(value)
    if isinstance(value, (list, tuple)) and all(_is_number(v) for v in value):
        return [float(v) for v in value]
    return value


def closest_names(name: str, names: Sequence[str] = (), limit: int = 3) -> List[str]:
    """Return the parameter names closest to ``name`` (a typo's likely intent), best first."""
    import difflib

    return difflib.get_close_matches(name, list(names or PARAMETER_NAMES), n=limit, cutoff=0.6)


def unknown_parameter_message(name: str) -> str:
    """One short line for a parameter nobody declares: the closest names, not all ~60."""
    close = closest_names(name)
    hint = (f'did you mean {" or ".join(close)}?' if close
            else 'see the parameter table in README.md or `ros2 param list`')
    return f'unknown parameter {name!r} (ignored); {hint}'


def check_value(name: str, value: Any) -> Optional[str]:
    """Return why ``value`` is not acceptable for parameter ``name``, or None when it is."""
    p = spec(name)
    if is_float_param(p):
        if isinstance(p.default, float) and not _is_number(value):
            return f'{name} must be a number, got {value!r}'
        if isinstance(p.default, list) and (not isinstance(value, (list, tuple))
                                            or not all(_is_number(v) for v in value)):
            return f'{name} must be a list of numbers, got {value!r}'
    if p.choices is not None and value not in p.choices:
        return f'{name} must be one of {list(p.choices)}, got {value!r}'
    if p.validator is not None:
        problem = p.validator(value)
        if problem:
            return problem
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if p.min_value is not None and value < p.min_value:
            return f'{name} must be >= {p.min_value}, got {value}'
        if p.max_value is not None and value > p.max_value:
            return f'{name} must be <= {p.max_value}, got {value}'
    return None


def _triple(name: str, values: Sequence[float]) -> Tuple[float, float, float]:
    if len(values) != 3:
        raise ConfigError(f'{name} needs 3 values (one per channel), got {len(values)}: '
                          f'{list(values)}')
    return (float(values[0]), float(values[1]), float(values[2]))


def pipeline_config_from_params(params: Mapping[str, Any]) -> PipelineConfig:
    """Build a validated PipelineConfig from parameter values (missing keys take defaults)."""
    p = defaults()
    p.update({k: coerce_value(k, v) for k, v in params.items() if k in PARAMETER_NAMES})
    for name in PARAMETER_NAMES:
        reason = check_value(name, p[name])
        if reason:
            raise ConfigError(reason)
    if p['net_scale_factor'] > 0:
        norm = Normalization.from_nvinfer(p['net_scale_factor'], _triple('offsets', p['offsets']))
    else:
        norm = Normalization(_triple('mean', p['mean']), _triple('std', p['std']))
    names = tuple(str(n) for n in p['class_names'])
    flat = list(p['class_colors'])
    if len(flat) % 3:
        raise ConfigError(f'class_colors needs 3 values per class, got {len(flat)} values')
    colors = tuple(tuple(int(v) for v in flat[i:i + 3]) for i in range(0, len(flat), 3))
    try:
        drivable = tuple(class_ids_for_names(names, [str(c) for c in p['drivable_classes']]))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    roi = list(p['roi_polygon'])
    if len(roi) % 2:
        raise ConfigError(f'roi_polygon needs x, y pairs, got {len(roi)} values')
    polygon = tuple((float(roi[i]), float(roi[i + 1])) for i in range(0, len(roi), 2))
    input_size = None
    if p['input_height'] and p['input_width']:
        input_size = (int(p['input_height']), int(p['input_width']))
    elif p['input_height'] or p['input_width']:
        raise ConfigError('set both input_width and input_height, or neither (0 = from the '
                          'model); '
                          f'got {p["input_width"]}x{p["input_height"]}')
    return PipelineConfig(
        preprocess=PreprocessConfig(p['resize_policy'], p['channel_order'], norm),
        postprocess=PostprocessConfig(p['upsample_mode'], p['output_resolution'],
                                      float(p['overlay_alpha'])),
        classes=ClassConfig(names, colors, drivable,  # type: ignore[arg-type]
                            void_channels=int(p['void_channels'])),
        summary=SummaryConfig(polygon, int(p['free_space_bins'])),
        input_size=input_size,
    )


def markdown_table() -> str:
    """Render the parameter reference of the README from :data:`PARAMETERS`."""
    rows = ['| parameter | default | description |', '|---|---|---|']
    for p in PARAMETERS:
        default = p.default
        if isinstance(default, list) and len(default) > 6:
            default = f'{len(default)} values (Cityscapes)'
        notes = ''
        if p.min_value is not None:
            notes += f' Range {p.min_value:g}..{p.max_value:g}.'
        if p.read_only:
            notes += ' Read-only.'
        if p.dynamic:
            notes += ' Changeable at run time.'
        rows.append(f'| `{p.name}` | `{default!r}` | {p.description}{notes} |')
    return '\n'.join(rows) + '\n'
