"""DeepStream nvinfer config files -> this node's parameters (no ROS).

A Gst-nvinfer config is an INI file whose ``[property]`` group holds ``key=value`` lines
(lists separated by ``;``, ``#`` comments, paths relative to the file). :func:`import_nvinfer`
maps every key it knows to our parameters and lists each key it does not map with the
reason, so nothing is dropped silently. What maps (DeepStream's Gst-nvinfer reference):

* normalization: ``net-scale-factor`` and ``offsets`` (``y = net-scale-factor * (x -
  offsets)``, the same form here), ``model-color-format`` 0 RGB / 1 BGR (2 GRAY: refused);
* model: ``onnx-file`` / ``model-engine-file`` -> ``model_path`` (relative to the config
  file; with both, the ONNX: this node builds and caches its own engines),
  ``network-mode`` 0/1/2 -> ``precision`` fp32/int8/fp16, ``batch-size`` ->
  ``max_batch_size``, ``infer-dims`` C;H;W -> ``input_height``/``input_width``,
  ``gpu-id`` -> ``device_id``, ``workspace-size`` (MB) -> ``workspace_mb``;
* segmentation: ``network-type`` 2 or 100 (other: refused), ``num-detected-classes`` ->
  ``class_names`` plus ``void_channels`` for channels beyond the named classes (a void
  channel's pixels become 255, as the ESPNetv2 preset does), ``segmentation-threshold``
  0 (argmax everywhere, as here), ``output-tensor-meta``;
* letterboxing: ``maintain-aspect-ratio`` -> ``resize_policy``, ``symmetric-padding``;
* labels: ``labelfile-path`` -> ``class_names``.
"""

import configparser
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple, Union

from .errors import ConfigError
from .labels import CITYSCAPES_CLASSES, CITYSCAPES_PALETTE

# Keys of DeepStream pipelines / detectors that mean nothing for a node segmenting every
# frame it takes, with why.
_NOT_APPLICABLE: Dict[str, str] = {
    'interval': 'frames skipped between inferences: the node segments the newest frame '
                'whenever the model is free (input_queue_depth keeps more)',
    'gie-unique-id': 'identifies the inference element inside a DeepStream pipeline',
    'operate-on-gie-id': 'secondary inference on another element\'s objects: not a DeepStream '
                         'pipeline here',
    'operate-on-class-ids': 'secondary inference on detected objects: not a DeepStream '
                            'pipeline here',
    'process-mode': 'primary/secondary (full frame / objects): the node always segments the '
                    'full frame',
    'cluster-mode': 'clustering of detector boxes: no boxes in semantic segmentation',
    'tlt-encoded-model': 'an encrypted TAO .etlt model cannot be loaded here: use the '
                         'deployable ONNX (or a TensorRT engine) in onnx-file / '
                         'model-engine-file',
    'tlt-model-key': 'the key of an encrypted .etlt model (see tlt-encoded-model)',
    'int8-calib-file': 'INT8 calibration caches are not used: int8 runs explicitly quantized '
                       '(Q/DQ) ONNX models only',
    'output-blob-names': 'the output is read from the model (logits or an id map) at configure',
    'segmentation-output-order': 'CHW or HWC id maps are recognised from the model\'s output '
                                 'shape at configure',
    'output-tensor-meta': 'nvinfer attaches the raw output tensors for a probe to parse; the '
                          'node parses them itself and publishes mask, confidence and summary',
    'custom-lib-path': 'custom output parsers (C++ libraries) cannot run here',
    'parse-bbox-func-name': 'detector box parser: no boxes in semantic segmentation',
    'parse-classifier-func-name': 'classifier parser: no classifier outputs here',
    'engine-create-func-name': 'custom engine builders cannot run here',
    'scaling-filter': 'the node resizes bilinearly (the GPU path: the same kernel); nvinfer\'s '
                      'interpolation choice is not offered',
    'scaling-compute-hw': 'Jetson VIC vs GPU scaling: the node scales on the CPU or GPU itself',
    'input-object-min-width': 'object filters of secondary inference',
    'input-object-min-height': 'object filters of secondary inference',
    'input-object-max-width': 'object filters of secondary inference',
    'input-object-max-height': 'object filters of secondary inference',
    'classifier-threshold': 'classifier outputs: not used for segmentation',
    'filter-out-class-ids': 'detector filter: not used for segmentation',
    'maintain-aspect-ratio-padding': 'see symmetric-padding',
    'model-file': 'Caffe models are not supported: give an ONNX model (onnx-file)',
    'proto-file': 'Caffe models are not supported: give an ONNX model (onnx-file)',
    'uff-file': 'UFF models are not supported: give an ONNX model (onnx-file)',
    'uff-input-blob-name': 'UFF models are not supported',
    'uff-input-order': 'UFF models are not supported',
    'input-dims': 'UFF input dims (deprecated): use infer-dims',
    'enable-dla': 'DLA cores are not used by this node\'s TensorRT backend',
    'use-dla-core': 'DLA cores are not used by this node\'s TensorRT backend',
    'mean-file': 'per-pixel mean images are not supported: use offsets',
}

_NETWORK_MODES = {0: 'fp32', 1: 'int8', 2: 'fp16'}
_COLOR_FORMATS = {0: 'rgb', 1: 'bgr'}
_SEGMENTATION_TYPES = (2, 100)


@dataclass
class NvinferImport:
    """Result of :func:`import_nvinfer`: parameters, and every key not mapped with why."""

    params: Dict[str, Any] = field(default_factory=dict)
    # nvinfer key -> the parameter(s) it became (for the report / YAML comments).
    mapped: Dict[str, str] = field(default_factory=dict)
    # nvinfer key (or [group]) -> why it was not mapped.
    unmapped: Dict[str, str] = field(default_factory=dict)


def _parse_file(path: Path) -> Tuple[Dict[str, str], List[str]]:
    """Return the ``[property]`` keys and the names of the other groups."""
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=('#',),
                                       comment_prefixes=('#', ';'), strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys as written
    try:
        text = path.read_text(encoding='utf-8')
    except OSError as exc:
        raise ConfigError(f"cannot read nvinfer config '{path}': {exc}") from None
    try:
        parser.read_string(text, source=str(path))
    except configparser.Error as exc:
        raise ConfigError(f"nvinfer config '{path}' is not a key=value INI file with a "
                          f'[property] group: {exc}') from None
    if not parser.has_section('property'):
        raise ConfigError(f"nvinfer config '{path}' has no [property] group; expected "
                          f"DeepStream's Gst-nvinfer config layout, found groups "
                          f'{parser.sections()}')
    props = {k.strip().lower(): v.strip() for k, v in parser.items('property')}
    return props, [s for s in parser.sections() if s != 'property']


def _number(key: str, value: str, kind: type = float) -> Any:
    try:
        return kind(value) if kind is float else int(float(value))
    except ValueError:
        raise ConfigError(f'nvinfer {key}={value!r}: expected a number') from None


def _numbers(key: str, value: str, count: int) -> List[float]:
    parts = [v.strip() for v in value.split(';') if v.strip()]
    if len(parts) != count:
        raise ConfigError(f'nvinfer {key}={value!r}: expected {count} values separated by '
                          f"';', got {len(parts)}")
    return [_number(key, v) for v in parts]


def _resolve(base: Path, value: str) -> str:
    p = Path(value)
    return str(p if p.is_absolute() else (base / p).resolve())


def read_label_file(path: Union[str, Path]) -> List[str]:
    """Class names from an nvinfer label file: one per line, or ``;``-separated on one line."""
    p = Path(path)
    try:
        lines = [ln.strip() for ln in p.read_text(encoding='utf-8').splitlines()]
    except OSError as exc:
        raise ConfigError(f"cannot read labelfile-path '{p}': {exc}") from None
    lines = [ln for ln in lines if ln]
    if len(lines) == 1 and ';' in lines[0]:
        lines = [v.strip() for v in lines[0].split(';') if v.strip()]
    if not lines:
        raise ConfigError(f"labelfile-path '{p}' holds no class names")
    return lines


def _colors_for(count: int) -> List[int]:
    """Cityscapes colours for the first 19 classes, then a fixed, spread-out sequence."""
    flat: List[int] = []
    for i in range(count):
        if i < len(CITYSCAPES_PALETTE):
            flat.extend(CITYSCAPES_PALETTE[i])
        else:
            flat.extend(((i * 67) % 256, (i * 151) % 256, (i * 211) % 256))
    return flat


def _classes(result: NvinferImport, props: Mapping[str, str], base: Path) -> None:
    """num-detected-classes and labelfile-path -> class_names / class_colors / void_channels."""
    names: Optional[List[str]] = None
    if 'labelfile-path' in props:
        label_path = _resolve(base, props['labelfile-path'])
        if Path(label_path).is_file():
            names = read_label_file(label_path)
            result.mapped['labelfile-path'] = f'class_names ({len(names)} names)'
        else:
            result.unmapped['labelfile-path'] = (
                f"'{label_path}' does not exist: class names stay the Cityscapes ones")
    count = None
    if 'num-detected-classes' in props:
        count = _number('num-detected-classes', props['num-detected-classes'], int)
        if count < 1:
            raise ConfigError(f'nvinfer num-detected-classes={count}: expected >= 1')
    known = names if names is not None else list(CITYSCAPES_CLASSES)
    if count is None:
        count = len(known)
    if count > len(known):
        # Output channels past the named classes: void (255 in the mask, never a class).
        result.params['void_channels'] = count - len(known)
        result.mapped['num-detected-classes'] = (
            f'{len(known)} classes + void_channels: {count - len(known)} (a pixel a void '
            f'channel wins is 255, unlabeled)')
    elif count < len(known):
        known = known[:count]
        result.mapped['num-detected-classes'] = f'class_names (the first {count} names)'
    elif 'num-detected-classes' in props:
        result.mapped['num-detected-classes'] = f'class_names ({count} classes)'
    if names is not None or len(known) != len(CITYSCAPES_CLASSES):
        result.params['class_names'] = known
        result.params['class_colors'] = _colors_for(len(known))
        if 'road' not in known:
            result.params['drivable_classes'] = []


def _model(result: NvinferImport, props: Mapping[str, str], base: Path) -> None:
    onnx, engine = props.get('onnx-file'), props.get('model-engine-file')
    if onnx:
        result.params['model_path'] = _resolve(base, onnx)
        result.mapped['onnx-file'] = 'model_path'
        if engine:
            result.unmapped['model-engine-file'] = (
                'onnx-file is used instead: the TensorRT backend builds and caches its own '
                'engine from it (set model_path to the .engine to load it directly)')
    elif engine:
        result.params['model_path'] = _resolve(base, engine)
        result.params['backend'] = 'tensorrt'
        result.mapped['model-engine-file'] = 'model_path (backend: tensorrt)'


def _geometry(result: NvinferImport, props: Mapping[str, str]) -> None:
    if 'infer-dims' in props:
        c, h, w = (int(v) for v in _numbers('infer-dims', props['infer-dims'], 3))
        if c != 3:
            raise ConfigError(f'nvinfer infer-dims={props["infer-dims"]}: expected 3 channels '
                              f'(C;H;W), got {c}')
        result.params['input_height'], result.params['input_width'] = h, w
        result.mapped['infer-dims'] = 'input_height, input_width'
    keep = _number('maintain-aspect-ratio', props.get('maintain-aspect-ratio', '0'), int)
    if 'maintain-aspect-ratio' in props:
        result.params['resize_policy'] = 'letterbox' if keep else 'stretch'
        result.mapped['maintain-aspect-ratio'] = 'resize_policy'
    if 'symmetric-padding' in props:
        symmetric = _number('symmetric-padding', props['symmetric-padding'], int)
        if not keep:
            result.unmapped['symmetric-padding'] = (
                'no effect: maintain-aspect-ratio is 0 (the frame is stretched, no padding)')
        elif symmetric:
            result.mapped['symmetric-padding'] = 'resize_policy: letterbox (centred padding)'
        else:
            result.unmapped['symmetric-padding'] = (
                '0 pads right/bottom only; letterbox here always pads symmetrically (the mask '
                'still lines up with the camera image, but the model sees the image centred)')


def _precision(result: NvinferImport, props: Mapping[str, str]) -> None:
    if 'network-mode' in props:
        mode = _number('network-mode', props['network-mode'], int)
        if mode not in _NETWORK_MODES:
            result.unmapped['network-mode'] = (
                f'{mode} is not 0 (FP32), 1 (INT8) or 2 (FP16): precision stays the default')
        else:
            result.params['precision'] = _NETWORK_MODES[mode]
            result.mapped['network-mode'] = f'precision: {_NETWORK_MODES[mode]}'
    if 'batch-size' in props:
        result.params['max_batch_size'] = max(1, _number('batch-size', props['batch-size'], int))
        result.mapped['batch-size'] = 'max_batch_size'
    if 'gpu-id' in props:
        result.params['device_id'] = _number('gpu-id', props['gpu-id'], int)
        result.mapped['gpu-id'] = 'device_id'
    if 'workspace-size' in props:
        mb = _number('workspace-size', props['workspace-size'], int)
        if 16 <= mb <= 65536:
            result.params['workspace_mb'] = mb
            result.mapped['workspace-size'] = 'workspace_mb'
        else:
            result.unmapped['workspace-size'] = (
                f'{mb} MB is outside workspace_mb\'s range 16..65536: the default (1024) is kept')


def _normalization(result: NvinferImport, props: Mapping[str, str]) -> None:
    if 'net-scale-factor' in props:
        scale = _number('net-scale-factor', props['net-scale-factor'])
        if not scale > 0:
            raise ConfigError(f'nvinfer net-scale-factor={scale}: expected > 0')
        result.params['net_scale_factor'] = scale
        result.params['offsets'] = [0.0, 0.0, 0.0]
        result.mapped['net-scale-factor'] = 'net_scale_factor'
    if 'offsets' in props:
        result.params['offsets'] = _numbers('offsets', props['offsets'], 3)
        result.mapped['offsets'] = 'offsets'
        if 'net-scale-factor' not in props:
            result.params['net_scale_factor'] = 1.0  # nvinfer's default scale
    if 'model-color-format' in props:
        fmt = _number('model-color-format', props['model-color-format'], int)
        if fmt not in _COLOR_FORMATS:
            raise ConfigError(f'nvinfer model-color-format={fmt}: expected 0 (RGB) or 1 (BGR); '
                              f'GRAY (2) models are not supported')
        result.params['channel_order'] = _COLOR_FORMATS[fmt]
        result.mapped['model-color-format'] = f'channel_order: {_COLOR_FORMATS[fmt]}'


def _segmentation(result: NvinferImport, props: Mapping[str, str]) -> None:
    if 'network-type' in props:
        kind = _number('network-type', props['network-type'], int)
        if kind not in _SEGMENTATION_TYPES:
            raise ConfigError(f'nvinfer network-type={kind}: expected 2 (semantic segmentation) '
                              f'or 100 (other, output tensors parsed by the application); 0, 1 '
                              f'and 3 are detectors, classifiers and instance segmentation')
        result.unmapped['network-type'] = (
            f'{kind}: nothing to set, the output kind (logits or an id map) is read from the '
            f'model at configure')
    if 'segmentation-threshold' in props:
        threshold = _number('segmentation-threshold', props['segmentation-threshold'])
        if threshold <= 0.0:
            result.unmapped['segmentation-threshold'] = (
                f'{threshold:g}: nothing to set, every pixel takes its argmax class as here')
        else:
            result.unmapped['segmentation-threshold'] = (
                f'{threshold:g}: no per-pixel probability threshold here; the confidence image '
                f'(255 x max softmax) is published for thresholding downstream')


def import_nvinfer(path: Union[str, Path]) -> NvinferImport:
    """Map a Gst-nvinfer config file to our parameters (see the module docstring).

    Raises ConfigError for a file that is not an nvinfer config, or one describing a model
    this node cannot run (a detector, a GRAY model, malformed numbers).
    """
    p = Path(path)
    props, groups = _parse_file(p)
    base = p.resolve().parent
    result = NvinferImport()
    _normalization(result, props)
    _model(result, props, base)
    _precision(result, props)
    _geometry(result, props)
    _segmentation(result, props)
    _classes(result, props, base)
    for key, value in props.items():
        if key in result.mapped or key in result.unmapped:
            continue
        reason = _NOT_APPLICABLE.get(key, 'not an nvinfer key this importer knows')
        result.unmapped[key] = f'{value}: {reason}' if value else reason
    for group in groups:
        result.unmapped[f'[{group}]'] = ('per-class detector thresholds and clustering: no '
                                         'meaning for semantic segmentation'
                                         if group.startswith('class-attrs') else
                                         'not a group nvinfer reads for segmentation')
    return result


def apply_nvinfer_config(params: Mapping[str, Any], given: Iterable[str] = ()
                         ) -> Tuple[Dict[str, Any], Optional[NvinferImport]]:
    """Merge ``params['nvinfer_config']`` under ``params``: our parameters win.

    A parameter counts as ours when it is named in ``given`` (the params file / command line
    overrides) or holds a value other than its default (set at run time); the others take
    the nvinfer config's values. Returns the merged parameters and the import (None without
    an nvinfer config).
    """
    from .parameters import defaults

    merged = dict(params)
    source = str(params.get('nvinfer_config') or '').strip()
    if not source:
        return merged, None
    imported = import_nvinfer(source)
    default = defaults()
    keep = set(given) | {k for k, v in params.items() if k in default and v != default[k]}
    for name, value in imported.params.items():
        if name not in keep:
            merged[name] = value
    return merged, imported


def params_yaml(imported: NvinferImport, source: str, node_name: str = 'segformer') -> str:
    """Render the import as a ROS 2 params file, mapped and unmapped keys as comments."""
    import yaml

    lines = [f'# Imported from the DeepStream nvinfer config {source}',
             '# by segformer-ros-import-nvinfer. Mapped:']
    lines += [f'#   {k} -> {v}' for k, v in imported.mapped.items()]
    lines.append('# Not mapped (key: value: reason):' if imported.unmapped else
                 '# Every key was mapped.')
    lines += [f'#   {k}: {v}' for k, v in imported.unmapped.items()]
    body = yaml.safe_dump({node_name: {'ros__parameters': imported.params}},
                          sort_keys=False, default_flow_style=None, width=100)
    return '\n'.join(lines) + '\n' + body
