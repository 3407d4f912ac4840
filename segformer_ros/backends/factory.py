"""Pick and create an inference backend by name ('auto', 'tensorrt', 'onnxruntime').

Every backend receives the same option dict and ignores the options it has no use for
(``precision`` means nothing to ONNX Runtime on the CPU, ``provider`` nothing to
TensorRT), so callers build one dict, e.g. with :func:`backend_options_from_params`,
and never branch on the backend.
"""

from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from ..assets import resolve_model_path
from ..errors import BackendError, ConfigError
from .base import Backend

BACKEND_NAMES: Tuple[str, ...] = ('auto', 'tensorrt', 'onnxruntime')
ENGINE_SUFFIXES: Tuple[str, ...] = ('.engine', '.plan')
# Model files the TensorRT backend can take (it builds engines from ONNX).
TENSORRT_SUFFIXES: Tuple[str, ...] = ('.onnx',) + ENGINE_SUFFIXES

_INSTALL_HINT = 'set backend: onnxruntime or install TensorRT (JetPack ships it)'


def tensorrt_status() -> Tuple[bool, str]:
    """Whether the TensorRT backend can run here, and why not (import errors included)."""
    try:
        from .tensorrt_backend import tensorrt_available
    except ImportError as exc:
        return False, f'the TensorRT backend cannot be imported ({exc})'
    try:
        ok, reason = tensorrt_available()
    except Exception as exc:  # a broken driver install must not break 'auto'
        return False, f'checking TensorRT failed ({type(exc).__name__}: {exc})'
    return bool(ok), str(reason)


def _is_engine(model_path: str) -> bool:
    return Path(model_path).suffix.lower() in ENGINE_SUFFIXES


def create_backend(name: str, model_path: str, *,
                   logger: Optional[Callable[[str], None]] = None,
                   **options: Any) -> Backend:
    """Create (not configure) the backend ``name`` for ``model_path``.

    ``auto`` picks TensorRT when :func:`tensorrt_status` is ok and the model is
    .onnx/.engine/.plan, else ONNX Runtime, and tells ``logger`` why.
    Raises ConfigError for an unknown name and BackendError when the choice cannot work.
    """
    if name not in BACKEND_NAMES:
        raise ConfigError(f'backend must be one of {list(BACKEND_NAMES)}, got {name!r}')
    # package://<pkg>/... -> the installed file; a missing relative path names its base dir.
    model_path = resolve_model_path(model_path)
    log = logger or (lambda _msg: None)
    if name == 'auto':
        ok, reason = tensorrt_status()
        suffix = Path(model_path).suffix.lower()
        if ok and suffix in TENSORRT_SUFFIXES:
            log(f'backend auto: using tensorrt ({reason})' if reason
                else 'backend auto: using tensorrt')
            name = 'tensorrt'
        else:
            if not ok:
                why = reason or 'TensorRT is not available'
            else:
                why = f"the model file '{model_path}' is not {'/'.join(TENSORRT_SUFFIXES)}"
            if _is_engine(model_path):
                raise BackendError(
                    f"model_path '{model_path}' is a TensorRT engine but TensorRT cannot run "
                    f'here: {why}; {_INSTALL_HINT} and point model_path at the ONNX file')
            log(f'backend auto: using onnxruntime because {why}')
            name = 'onnxruntime'
    if name == 'onnxruntime':
        if _is_engine(model_path):
            raise BackendError(
                f"model_path '{model_path}' is a TensorRT engine, which ONNX Runtime cannot "
                f'run; set backend: tensorrt (or auto), or point model_path at the ONNX file')
        from .onnxruntime_backend import OnnxRuntimeBackend
        return OnnxRuntimeBackend(model_path, **options)
    # name == 'tensorrt'
    try:
        from .tensorrt_backend import TensorRTBackend, tensorrt_available
    except ImportError as exc:
        raise BackendError(f'backend tensorrt is not available: the TensorRT backend cannot '
                           f'be imported ({exc}); {_INSTALL_HINT}') from None
    ok, reason = tensorrt_available(int(options.get('device_id', 0) or 0))
    if not ok:
        raise BackendError(f'backend tensorrt is not available: {reason}; {_INSTALL_HINT}')
    return TensorRTBackend(model_path, **options)


def backend_options_from_params(params: Mapping[str, Any]) -> Dict[str, Any]:
    """Map node parameters (names of :mod:`segformer_ros.parameters`) to backend options.

    Missing parameters are left out, so each backend's own defaults apply.
    """
    renames = {
        'onnxruntime_provider': 'provider',
        'num_threads': 'num_threads',
        'precision': 'precision',
        'engine_cache_dir': 'engine_cache_dir',
        'rebuild_stale_engine': 'rebuild_stale_engine',
        'allow_engine_host_code': 'allow_engine_host_code',
        'workspace_mb': 'workspace_mb',
        'device_id': 'device_id',
    }
    options = {opt: params[param] for param, opt in renames.items() if param in params}
    height = int(params.get('input_height', 0) or 0)
    width = int(params.get('input_width', 0) or 0)
    if height and width:
        options['input_hw'] = (height, width)
    return options
