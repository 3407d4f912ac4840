"""What a model file says about its own input normalization, and checks against it (no ROS).

A wrong mean/std gives plausible-looking but wrong masks and no error, so where the model can
tell what it expects, configure compares:

* ``segformer-ros-export`` writes the checkpoint's normalization into the ONNX file's
  ``metadata_props`` under :data:`PREPROCESSING_KEY` (JSON: ``mean`` and ``std`` on 0..255
  pixels, ``channel_order``); a configuration that differs cannot be right and is refused.
* The bundled demo model normalizes inside its graph (raw 0..255 input, the settings of
  ``deeplab_mobilenet_cityscapes.yaml``): loaded by its path with another mean/std, the node
  warns (it may be deliberate, e.g. an experiment, so it is not refused).

The ONNX metadata is read with a minimal protobuf walk over the file's top-level fields, so
no ``onnx`` package is needed at run time (ONNX Runtime does not expose it before a session
exists, and a TensorRT build parses the file only later).
"""

import json
import mmap
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

from .config import Normalization, PreprocessConfig

PREPROCESSING_KEY = 'segformer_ros.preprocessing'
# ModelProto.metadata_props is field 14; StringStringEntryProto has key = 1, value = 2.
_METADATA_FIELD = 14
_REL_TOLERANCE = 1e-3


def _varint(buf: Any, pos: int) -> Tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ValueError('varint too long')


def _fields(buf: Any, start: int, end: int):
    """Yield (field number, wire type, value or (begin, end) of a length-delimited field)."""
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            yield number, wire, value
        elif wire == 1:
            pos += 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            if pos + length > end:
                raise ValueError('truncated field')
            yield number, wire, (pos, pos + length)
            pos += length
        elif wire == 5:
            pos += 4
        else:
            raise ValueError(f'unsupported wire type {wire}')


def onnx_metadata(path: str) -> Dict[str, str]:
    """Read the ``metadata_props`` of the ONNX file ``path`` ({} when absent or not ONNX)."""
    p = Path(path)
    if p.suffix.lower() != '.onnx' or not p.is_file() or p.stat().st_size == 0:
        return {}
    out: Dict[str, str] = {}
    try:
        with p.open('rb') as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            for number, wire, span in _fields(buf, 0, len(buf)):
                if number != _METADATA_FIELD or wire != 2:
                    continue
                entry: Dict[int, str] = {}
                for sub, sub_wire, sub_span in _fields(buf, span[0], span[1]):
                    if sub in (1, 2) and sub_wire == 2:
                        entry[sub] = bytes(buf[sub_span[0]:sub_span[1]]).decode(
                            'utf-8', 'replace')
                if 1 in entry:
                    out[entry[1]] = entry.get(2, '')
    except (OSError, ValueError, IndexError):
        return {}   # not a protobuf we can walk: the backend says what is wrong with it
    return out


def preprocessing_metadata(mean: Sequence[float], std: Sequence[float],
                           channel_order: str = 'rgb') -> str:
    """Return the JSON value of :data:`PREPROCESSING_KEY` (mean/std on 0..255 pixels)."""
    return json.dumps({'mean': [round(float(v), 6) for v in mean],
                       'std': [round(float(v), 6) for v in std],
                       'channel_order': channel_order})


def _close(a: Sequence[float], b: Sequence[float]) -> bool:
    return all(abs(x - y) <= _REL_TOLERANCE * max(1.0, abs(x), abs(y)) for x, y in zip(a, b))


def _fmt(values: Sequence[float]) -> str:
    return '[' + ', '.join(f'{v:g}' for v in values) + ']'


def metadata_normalization_problem(model_path: str, preprocess: PreprocessConfig
                                   ) -> Optional[str]:
    """Why the configured normalization contradicts the model's own metadata, or None."""
    raw = onnx_metadata(model_path).get(PREPROCESSING_KEY)
    if raw is None:
        return None
    try:
        meta = json.loads(raw)
        want = Normalization(tuple(float(v) for v in meta['mean']),  # type: ignore[arg-type]
                             tuple(float(v) for v in meta['std']))  # type: ignore[arg-type]
        order = str(meta.get('channel_order', 'rgb'))
    except (ValueError, KeyError, TypeError) as exc:
        return (f"model '{model_path}': its {PREPROCESSING_KEY} metadata is unreadable "
                f'({exc}); expected JSON with mean, std and channel_order')
    have = preprocess.normalization
    same = (_close(want.mean, have.mean) and _close(want.std, have.std)
            and order == preprocess.channel_order)
    if same:
        return None
    return (f"model '{Path(model_path).name}' was exported for mean {_fmt(want.mean)} std "
            f'{_fmt(want.std)} channel_order {order} (its ONNX metadata {PREPROCESSING_KEY}), '
            f'but the parameters give mean {_fmt(have.mean)} std {_fmt(have.std)} '
            f'channel_order {preprocess.channel_order}: its masks would be wrong. Set mean, '
            f'std and channel_order to the model\'s (net_scale_factor: 0.0), e.g. with '
            f'config/segformer.yaml')


def bundled_model_normalization_warning(model_path: str, bundled_path: Optional[str],
                                        preprocess: PreprocessConfig) -> Optional[str]:
    """Warn when the bundled demo model runs with a normalization other than its own."""
    if not bundled_path or not model_path:
        return None
    try:
        if not Path(model_path).resolve() == Path(bundled_path).resolve():
            return None
    except OSError:
        return None
    have = preprocess.normalization
    if _close(have.mean, (0.0, 0.0, 0.0)) and _close(have.std, (1.0, 1.0, 1.0)):
        return None
    return (f"model_path is the bundled demo model {Path(bundled_path).name}, which takes raw "
            f'0..255 input (mean [0, 0, 0] std [1, 1, 1], its preset '
            f'deeplab_mobilenet_cityscapes.yaml), but the parameters give mean '
            f'{_fmt(have.mean)} std {_fmt(have.std)}: its masks will be wrong. Load that '
            f'preset (--params-file), or leave model_path empty for the bundled model with '
            f'its own settings')


def check_normalization(model_path: str, preprocess: PreprocessConfig) -> Optional[str]:
    """Raise ConfigError when the model's metadata refuses the normalization; else a warning.

    ``model_path`` is the resolved file (package URIs resolved). Returns a warning text for
    the bundled demo model run with another normalization, None when nothing is to say.
    """
    from .assets import bundled_model_path
    from .errors import ConfigError

    problem = metadata_normalization_problem(model_path, preprocess)
    if problem:
        raise ConfigError(problem)
    try:
        bundled: Optional[str] = str(bundled_model_path())
    except ConfigError:
        bundled = None   # installed without it: nothing to compare with
    return bundled_model_normalization_warning(model_path, bundled, preprocess)
