"""TensorRT version parsing and defensive flag/enum lookup across TensorRT 10.x and 11.

TensorRT 10.3 (JetPack 6.1/6.2) and 10.13+ (Thor / JetPack 7) have ``BuilderFlag.FP16``
and ``BuilderFlag.INT8``; TensorRT 11 builds strongly typed networks only (precision comes
from the ONNX types) and those flags are gone. Every flag is therefore looked up by name
with :func:`enum_member` and applied only when present; callers pass the ``tensorrt``
module, so tests can hand in small fake modules with the attribute sets of each version.
"""

import re
from dataclasses import dataclass
from typing import Any, Optional, Tuple

from ..errors import BackendError

MIN_MAJOR = 10


@dataclass(frozen=True)
class TrtVersion:
    """Parsed ``tensorrt.__version__`` (e.g. '10.3.0.30' or '11.0.0')."""

    major: int
    minor: int
    patch: int
    text: str

    def at_least(self, major: int, minor: int = 0) -> bool:
        """Tell whether this version is >= major.minor."""
        return (self.major, self.minor) >= (major, minor)


def parse_version(text: str) -> TrtVersion:
    """Parse a TensorRT version string; BackendError when it is not 'X.Y[.Z...]'."""
    m = re.match(r'^\s*(\d+)\.(\d+)(?:\.(\d+))?', str(text))
    if not m:
        raise BackendError(f"expected a TensorRT version like '10.3.0', got {text!r}")
    return TrtVersion(int(m.group(1)), int(m.group(2)), int(m.group(3) or 0), str(text).strip())


def check_version(trt: Any) -> TrtVersion:
    """Return the module's version; BackendError for TensorRT < 10 (no name-based I/O API)."""
    version = parse_version(getattr(trt, '__version__', ''))
    if version.major < MIN_MAJOR:
        raise BackendError(
            f'expected TensorRT >= {MIN_MAJOR} (tensor-name I/O, execute_async_v3), got '
            f'{version.text}; upgrade to JetPack 6.1+ (TensorRT 10.3) or use backend: '
            f'onnxruntime')
    return version


def enum_member(trt: Any, enum_name: str, member: str) -> Optional[Any]:
    """``trt.<enum_name>.<member>`` or None when this TensorRT version lacks it."""
    enum = getattr(trt, enum_name, None)
    return None if enum is None else getattr(enum, member, None)


def is_strongly_typed_only(trt: Any) -> bool:
    """Tell whether this TensorRT lacks precision builder flags (11+: strongly typed)."""
    return enum_member(trt, 'BuilderFlag', 'FP16') is None


def prefers_strong_typing(trt: Any) -> bool:
    """Tell whether precision flags are gone or deprecated here (TensorRT >= 10.12).

    ``BuilderFlag.FP16``/``INT8`` are documented "[DEPRECATED] Deprecated in TensorRT 10.12.
    Superseded by strong typing." (release/10.16 python/docstrings/infer/pyCoreDoc.h,
    BuilderFlagDoc) and absent from release/11.1 python/src/infer/pyCore.cpp.
    """
    if is_strongly_typed_only(trt):
        return True
    try:
        return parse_version(getattr(trt, '__version__', '')).at_least(10, 12)
    except BackendError:
        return False


def network_has_half(trt: Any, network: Any) -> bool:
    """Tell whether a parsed network carries fp16 tensors (inputs, outputs or layer outputs).

    On a strongly typed network the tensor types are the kernels' types, so this decides
    whether an engine built from it runs fp16 at all.
    """
    half = enum_member(trt, 'DataType', 'HALF')
    if half is None:
        return False
    tensors = [network.get_input(i) for i in range(int(network.num_inputs))]
    tensors += [network.get_output(i) for i in range(int(network.num_outputs))]
    for i in range(int(getattr(network, 'num_layers', 0) or 0)):
        layer = network.get_layer(i)
        tensors += [layer.get_output(j) for j in range(int(layer.num_outputs))]
    return any(t is not None and t.dtype == half for t in tensors)


def effective_precision(trt: Any, requested: str, strongly_typed: bool, has_half: bool) -> str:
    """Return the precision an engine really runs.

    The request on a weakly typed network; the ONNX types on a strongly typed one (fp16
    when it carries half tensors, else fp32).
    """
    if requested == 'int8' or not strongly_typed:
        return requested
    return 'fp16' if has_half else 'fp32'


def precision_flags(trt: Any, precision: str) -> Tuple[Tuple[Any, ...], str]:
    """Builder flags for ``precision`` and a note for the log.

    fp32: none. fp16: ``BuilderFlag.FP16`` where it exists; on strongly typed TensorRT the
    ONNX must already be fp16 (the note says so). int8: ``BuilderFlag.INT8`` (plus FP16 so
    non-quantized layers are not forced to fp32) where they exist; the caller has checked
    that the ONNX carries Q/DQ nodes.
    """
    if precision not in ('fp16', 'fp32', 'int8'):
        raise BackendError(f"precision must be 'fp16', 'fp32' or 'int8', got {precision!r}")
    if precision == 'fp32':
        return (), 'fp32'
    fp16 = enum_member(trt, 'BuilderFlag', 'FP16')
    if precision == 'fp16':
        if fp16 is None:
            return (), ('fp16 requested, but this TensorRT is strongly typed (no '
                        'BuilderFlag.FP16): the engine uses the ONNX types; export an fp16 '
                        'ONNX for fp16 kernels')
        return (fp16,), 'fp16'
    int8 = enum_member(trt, 'BuilderFlag', 'INT8')
    flags = tuple(f for f in (int8, fp16) if f is not None)
    note = 'int8 (Q/DQ)' if int8 is not None else 'int8 from Q/DQ types (strongly typed)'
    return flags, note


def network_flags(trt: Any, strongly_typed: bool = False) -> int:
    """Creation flags of the network definition.

    TensorRT 10 is always explicit-batch (``EXPLICIT_BATCH`` only warns) and weakly typed by
    default (so the FP16 flag works); ``strongly_typed`` sets
    ``NetworkDefinitionCreationFlag.STRONGLY_TYPED`` (release/10.3 pyCore.cpp; "Deprecated:
    always enabled" in release/11.1, where no flag is needed).
    """
    if not strongly_typed or is_strongly_typed_only(trt):
        return 0
    flag = enum_member(trt, 'NetworkDefinitionCreationFlag', 'STRONGLY_TYPED')
    return 0 if flag is None else 1 << int(flag)


def workspace_pool(trt: Any) -> Any:
    """``MemoryPoolType.WORKSPACE`` (present in 10.x and 11)."""
    pool = enum_member(trt, 'MemoryPoolType', 'WORKSPACE')
    if pool is None:
        raise BackendError('this TensorRT has no MemoryPoolType.WORKSPACE; expected '
                           'TensorRT 10 or 11')
    return pool


def has_progress_monitor(trt: Any) -> bool:
    """Tell whether ``IProgressMonitor`` exists (TensorRT >= 10.0 Python bindings)."""
    return getattr(trt, 'IProgressMonitor', None) is not None


def numpy_dtype_name(trt: Any, dtype: Any) -> str:
    """Return the numpy dtype name of a ``tensorrt.DataType`` (BackendError if unsupported)."""
    table = {'FLOAT': 'float32', 'HALF': 'float16', 'INT32': 'int32', 'INT64': 'int64',
             'INT8': 'int8', 'UINT8': 'uint8', 'BOOL': 'bool'}
    bf16 = enum_member(trt, 'DataType', 'BF16')
    if bf16 is not None and dtype == bf16:
        # numpy has no bfloat16: a 'bfloat16' name would fail later in np.dtype().
        raise BackendError('engine tensor type BF16 is not supported (numpy has no bfloat16); '
                           'expected float32/float16 input and float or int32/int64 output: '
                           'export the ONNX with float32 or float16 I/O')
    for name, np_name in table.items():
        member = enum_member(trt, 'DataType', name)
        if member is not None and dtype == member:
            return np_name
    raise BackendError(f'unsupported TensorRT tensor type {dtype}; expected float32/float16 '
                       f'input and float or int32/int64 output')
