"""Contract fake of the ``tensorrt`` Python module (10.3, 10.16 and 11.1 poses), for tests.

TensorRT cannot be installed here, so the backend is driven through this fake. Each
behaviour below is taken from TensorRT's own binding sources (NVIDIA/TensorRT branches
release/10.3, release/10.16, release/11.1 = main) or Polygraphy, cited where implemented:

* ``Builder.build_serialized_network`` returns None (never raises) and reports the reason
  through the logger -- pyCore.cpp binds ``IBuilder::buildSerializedNetwork`` (a noexcept
  function returning ``IHostMemory*``, nullptr -> None); pyCoreDoc.h BuilderDoc; Polygraphy
  backend/trt/loader.py EngineBytesFromNetwork checks ``if not engine_bytes``.
* a network with dynamic input dims and no optimization profile fails the build with
  "Network has dynamic or shape inputs, but no optimization profile has been defined."
* the 11.x pose has no ``BuilderFlag.FP16``/``BF16``/``INT8`` (release/11.1 pyCore.cpp
  ``py::enum_<BuilderFlag>``) and every network is strongly typed
  (``NetworkDefinitionCreationFlag.STRONGLY_TYPED`` "Deprecated: always enabled"); 10.x
  networks are weakly typed unless STRONGLY_TYPED is set, and precision flags on a strongly
  typed network fail the build.
* ``Runtime.deserialize_cuda_engine`` returns None for bytes it does not recognise, for
  another TensorRT version or device, for host code when ``engine_host_code_allowed`` is
  False (pyCore.cpp ``runtime_deserialize_cuda_engine``, the ``engine_host_code_allowed``
  property; pyCoreDoc.h RuntimeDoc "Default: False"), and for plugin layers before
  ``init_libnvinfer_plugins`` (pyPlugin.cpp; Polygraphy EngineFromBytes calls it first).
* a progress monitor whose ``step_complete`` raises cancels the build (pyCore.cpp
  PyProgressMonitor::stepComplete: the exception is printed, then ``return false``;
  pyCoreDoc.h IProgressMonitorDoc: "False to stop the build"); one raised in
  ``phase_start`` or ``phase_finish`` is printed and the build goes on (pyCore.cpp
  PyProgressMonitor::phaseStart/phaseFinish catch, print "[ERROR] Exception caught in
  phase_start()" and return).
* a Python ``ILogger`` / ``IProgressMonitor`` subclass whose ``__init__`` does not call the
  base ``__init__`` is refused with TypeError when instantiated (pybind11 ``py::init<>()``
  on both classes in pyCore.cpp; pybind11 detail/class.h pybind11_meta_call: "__init__()
  must be called when overriding __init__").
* ``IBuilderConfig.add_optimization_profile`` returns -1 for an invalid profile (an input
  without shapes, or not min <= opt <= max) -- NvInfer.h addOptimizationProfile: "return
  ... or -1 if the input is not valid"; ``ICudaEngine.create_execution_context`` can
  return None (a nullptr ``IExecutionContext*``, e.g. no device memory for activations:
  Polygraphy backend/trt/runner.py checks ``if not self.context``);
  ``fake_state.context_fails`` makes it do so.
* the 11.x pose's ``NetworkDefinitionCreationFlag`` has no ``EXPLICIT_BATCH`` and
  STRONGLY_TYPED = 0 ("Deprecated: always enabled"; release/11.0 pyCore.cpp, NvInfer.h);
  10.x has EXPLICIT_BATCH = 0, STRONGLY_TYPED = 1.
* tensor types come from pyFoundationalTypes.cpp ``py::enum_<DataType>`` (INT8, UINT8,
  BOOL, INT64 ...); an ONNX type the fake cannot map fails the parse instead of silently
  becoming FLOAT.
* ``create_timing_cache`` of an unreadable blob gives None (a nullptr ``ITimingCache*``);
  ``IBuilderConfig.get_timing_cache`` is None when none is set (pyCoreDoc.h).
* the current CUDA device is per host thread: an engine runs only on the device that was
  current when it was deserialized, and ``execute_async_v3`` on another thread's device
  returns False (CUDA runtime semantics, via :mod:`fakes.cuda_runtime`).
* batch > 1 SegFormer engines silently compute wrong results (NVIDIA/TensorRT#4853, open;
  10.11 and 11.1, static and dynamic batch): with ``batch_bug`` on, items 1.. get item 0's
  output.

Execution runs the ONNX with ONNX Runtime (CPU) on the bytes at the tensor addresses; fp16
engines round inputs and outputs through float16. Every tensor access goes through
:meth:`fakes.cuda_runtime.FakeCudaRuntime.access`: an input read or output write that leaves
its allocation, hits freed memory or reads another dtype is a device fault -- as on a GPU,
``execute_async_v3`` still returns True (enqueueV3 only queues work, NvInferRuntime.h: "the
function returns ... whether the kernels were enqueued successfully") and the sticky
cudaErrorIllegalAddress surfaces at the next synchronize. ``fake_state.execute_gate`` (a
threading.Event) holds ``execute_async_v3`` until set, so tests can race it.
"""

import enum
import json
import sys
import threading
import types
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
# Imported here, not per call: tests hide onnxruntime from the backend (a robot without it)
# while the fake's "engine" still runs the ONNX with it.
import onnxruntime as _ort

from .cuda_runtime import FakeCudaRuntime

MAGIC = b'FAKETRT\x01'
DYNAMIC_NO_PROFILE = ('[network.cpp::validate] Error Code 4: Internal Error (Network has '
                      'dynamic or shape inputs, but no optimization profile has been defined.)')


class Severity(enum.IntEnum):
    """ILogger.Severity (pyCore.cpp ``py::enum_<ILogger::Severity>``)."""

    INTERNAL_ERROR = 0
    ERROR = 1
    WARNING = 2
    INFO = 3
    VERBOSE = 4


class DataType(enum.IntEnum):
    """tensorrt.DataType (pyFoundationalTypes.cpp; BF16 present in 10.3 and 11.1)."""

    FLOAT = 0
    HALF = 1
    INT8 = 2
    INT32 = 3
    BOOL = 4
    UINT8 = 5
    FP8 = 6
    BF16 = 7
    INT64 = 8
    INT4 = 9


class TensorIOMode(enum.IntEnum):
    """tensorrt.TensorIOMode."""

    NONE = 0
    INPUT = 1
    OUTPUT = 2


class MemoryPoolType(enum.IntEnum):
    """tensorrt.MemoryPoolType (WORKSPACE in 10.x and 11.x)."""

    WORKSPACE = 0


class NetworkDefinitionCreationFlag(enum.IntEnum):
    """tensorrt.NetworkDefinitionCreationFlag of 10.x (EXPLICIT_BATCH = 0, STRONGLY_TYPED = 1)."""

    EXPLICIT_BATCH = 0
    STRONGLY_TYPED = 1


class NetworkDefinitionCreationFlag11(enum.IntEnum):
    """The same enum in release/11.0+ pyCore.cpp: EXPLICIT_BATCH gone, STRONGLY_TYPED = 0."""

    STRONGLY_TYPED = 0
    PREFER_JIT_PYTHON_PLUGINS = 1
    PREFER_AOT_PYTHON_PLUGINS = 2


class _NeedsBaseInit(type):
    """pybind11 metaclass behaviour: a subclass must run the bound base ``__init__``."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        obj = super().__call__(*args, **kwargs)
        if not getattr(obj, '_base_initialized', False):
            raise TypeError(f'{cls.__name__}.__init__() must be called when overriding '
                            f'__init__')
        return obj


_ORT_TYPES = {'tensor(float)': DataType.FLOAT, 'tensor(float16)': DataType.HALF,
              'tensor(int64)': DataType.INT64, 'tensor(int32)': DataType.INT32,
              'tensor(uint8)': DataType.UINT8, 'tensor(int8)': DataType.INT8,
              'tensor(bool)': DataType.BOOL, 'tensor(bfloat16)': DataType.BF16}
_NP = {DataType.FLOAT: np.float32, DataType.HALF: np.float16, DataType.INT64: np.int64,
       DataType.INT32: np.int32, DataType.UINT8: np.uint8, DataType.INT8: np.int8,
       DataType.BOOL: np.bool_}
_ONNX_ELEM = {1: DataType.FLOAT, 10: DataType.HALF, 7: DataType.INT64, 6: DataType.INT32,
              2: DataType.UINT8, 3: DataType.INT8, 9: DataType.BOOL, 16: DataType.BF16}


class _State:
    """What the tests inspect after driving the backend."""

    def __init__(self) -> None:
        self.builds = 0
        self.deserialize_calls = 0
        self.plugins_initialized = False
        self.build_devices: List[int] = []
        self.build_threads: List[str] = []
        self.built_flags: List[set] = []
        self.engines: List[Any] = []          # the deserialized fake engines
        self.parses = 0                       # OnnxParser.parse_from_file calls
        self.context_fails = False            # create_execution_context returns None
        self.execute_gate: Optional[threading.Event] = None   # holds execute_async_v3
        self.in_execute = threading.Event()   # set while a thread is inside it


def make_tensorrt(version: str = '10.3.0.30', cuda: Optional[FakeCudaRuntime] = None,
                  batch_bug: bool = True, plan_plugins: bool = False) -> types.ModuleType:
    """Make a fake ``tensorrt`` module posing as ``version`` (10.x weakly / 11.x strongly typed).

    ``cuda`` is the fake CUDA runtime whose per-thread device the engines use;
    ``plan_plugins`` marks every built plan as containing plugin layers.
    """
    major = int(version.split('.')[0])
    strongly_only = major >= 11
    state = _State()
    mod = types.ModuleType('tensorrt')
    mod.__version__ = version
    mod.__file__ = __file__
    mod.fake_state = state
    mod.fake_cuda = cuda
    members = {'DEBUG': 0, 'GPU_FALLBACK': 1, 'REFIT': 2, 'DISABLE_TIMING_CACHE': 3,
               'TF32': 4, 'SPARSE_WEIGHTS': 5, 'VERSION_COMPATIBLE': 6,
               'EXCLUDE_LEAN_RUNTIME': 7}
    if not strongly_only:   # release/10.3 and 10.16 pyCore.cpp; gone in release/11.1
        members.update(FP16=20, BF16=21, INT8=22)
    builder_flag = enum.IntEnum('BuilderFlag', members)
    mod.BuilderFlag = builder_flag
    mod.DataType = DataType
    mod.TensorIOMode = TensorIOMode
    mod.MemoryPoolType = MemoryPoolType
    mod.NetworkDefinitionCreationFlag = (NetworkDefinitionCreationFlag11 if strongly_only
                                         else NetworkDefinitionCreationFlag)

    def current_device() -> int:
        return cuda.current() if cuda is not None else 0

    def device_tag() -> Dict[str, Any]:
        if cuda is None:
            return {'cc': [8, 7], 'name': 'Orin'}
        gpu = cuda.gpus[current_device()]
        return {'cc': list(gpu.cc), 'name': gpu.name}

    # ------------------------------------------------------------------ logging
    class ILogger(metaclass=_NeedsBaseInit):
        """Base class Python loggers derive from (pyCore.cpp PyLogger: ``log`` is pure)."""

        Severity = Severity

        def __init__(self) -> None:
            self._base_initialized = True

        def log(self, severity: Severity, msg: str) -> None:
            raise NotImplementedError

    class Logger(ILogger):
        """The default logger (pyCore.cpp DefaultLogger): prints at >= min_severity."""

        INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = (Severity.INTERNAL_ERROR,
                                                         Severity.ERROR, Severity.WARNING,
                                                         Severity.INFO, Severity.VERBOSE)

        def __init__(self, min_severity: Severity = Severity.WARNING) -> None:
            super().__init__()
            self.min_severity = min_severity
            self.messages: List[Tuple[Severity, str]] = []

        def log(self, severity: Severity, msg: str) -> None:
            self.messages.append((severity, msg))
            if severity <= self.min_severity:
                print(f'[TRT] [{severity.name[0]}] {msg}', file=sys.stderr)

    def report(logger: Any, severity: Severity, msg: str) -> None:
        logger.log(severity, msg)

    def init_libnvinfer_plugins(logger: Any, namespace: str) -> bool:
        """Fill the plugin registry (pyPlugin.cpp ``init_libnvinfer_plugins``)."""
        state.plugins_initialized = True
        return True

    # ------------------------------------------------------------------ network
    class ITensor:
        def __init__(self, name: str, shape: Sequence[int], dtype: DataType) -> None:
            self.name, self.shape, self.dtype = name, tuple(shape), dtype
            self.is_shape_tensor = False

    class ILayer:
        def __init__(self, outputs: List[ITensor]) -> None:
            self._outputs = outputs
            self.num_outputs = len(outputs)

        def get_output(self, index: int) -> ITensor:
            return self._outputs[index]

    class INetworkDefinition:
        def __init__(self, flags: int) -> None:
            self.flags = int(flags)
            self._inputs: List[ITensor] = []
            self._outputs: List[ITensor] = []
            self._layers: List[ILayer] = []
            self.onnx_path: Optional[str] = None

        @property
        def strongly_typed(self) -> bool:
            return strongly_only or bool(self.flags & (1 << NetworkDefinitionCreationFlag
                                                       .STRONGLY_TYPED))

        num_inputs = property(lambda self: len(self._inputs))
        num_outputs = property(lambda self: len(self._outputs))
        num_layers = property(lambda self: len(self._layers))

        def get_input(self, index: int) -> ITensor:
            return self._inputs[index]

        def get_output(self, index: int) -> ITensor:
            return self._outputs[index]

        def get_layer(self, index: int) -> ILayer:
            return self._layers[index]

    class OnnxParser:
        """pyOnnx.cpp: ``parse_from_file`` returns bool; errors via ``get_error(i)``."""

        def __init__(self, network: INetworkDefinition, logger: Any) -> None:
            self.network, self.logger = network, logger
            self._errors: List[str] = []

        num_errors = property(lambda self: len(self._errors))

        def get_error(self, index: int) -> str:
            return self._errors[index]

        def parse_from_file(self, path: str) -> bool:
            state.parses += 1
            try:
                session = _ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
            except Exception as exc:  # noqa: BLE001 - the parser reports, never raises
                self._errors.append(f'ModelImporter: failed to parse {path}: {exc}')
                return False
            metas = list(session.get_inputs()) + list(session.get_outputs())
            unknown = [f'{m.name}: {m.type}' for m in metas if m.type not in _ORT_TYPES]
            if unknown:
                self._errors.append(f'ModelImporter: unsupported tensor type {unknown}')
                return False

            def tensor(meta: Any) -> ITensor:
                dims = [d if isinstance(d, int) and d > 0 else -1 for d in meta.shape]
                return ITensor(meta.name, dims, _ORT_TYPES[meta.type])
            self.network._inputs = [tensor(m) for m in session.get_inputs()]
            self.network._outputs = [tensor(m) for m in session.get_outputs()]
            self.network._layers = _layers_of(str(path))
            self.network.onnx_path = str(path)
            return True

    def _layers_of(path: str) -> List[ILayer]:
        try:
            import onnx
            model = onnx.shape_inference.infer_shapes(onnx.load(path))
        except Exception:  # noqa: BLE001 - layers are optional detail
            return []
        types_ = {v.name: v.type.tensor_type.elem_type for v in model.graph.value_info}
        layers = []
        for node in model.graph.node:
            outs = [ITensor(o, (), _ONNX_ELEM.get(types_.get(o, 1), DataType.FLOAT))
                    for o in node.output if o in types_]
            layers.append(ILayer(outs))
        return layers

    # ------------------------------------------------------------------ builder
    class IOptimizationProfile:
        def __init__(self) -> None:
            self.shapes: Dict[str, Tuple[Tuple[int, ...], ...]] = {}

        def set_shape(self, name: str, min: Sequence[int], opt: Sequence[int],  # noqa: A002
                      max: Sequence[int]) -> None:  # noqa: A002
            self.shapes[name] = (tuple(min), tuple(opt), tuple(max))

    class ITimingCache:
        def __init__(self, entries: int = 0) -> None:
            self.entries = entries

        def serialize(self) -> bytes:
            return b'FAKETC' + str(self.entries).encode()

    class IProgressMonitor(metaclass=_NeedsBaseInit):
        """pyCore.cpp PyProgressMonitor: Python subclasses implement the three methods."""

        def __init__(self) -> None:
            self._base_initialized = True

    class IBuilderConfig:
        def __init__(self) -> None:
            self.flags: set = set()
            self.pools: Dict[Any, int] = {}
            self.profiles: List[IOptimizationProfile] = []
            self.progress_monitor: Optional[IProgressMonitor] = None
            self._timing: Optional[ITimingCache] = None

        def set_memory_pool_limit(self, pool: Any, size: int) -> None:
            self.pools[pool] = int(size)

        def set_flag(self, flag: Any) -> None:
            if not isinstance(flag, builder_flag):
                raise TypeError(f'set_flag(): incompatible function arguments: {flag!r}')
            self.flags.add(flag)

        def get_flag(self, flag: Any) -> bool:
            return flag in self.flags

        def create_timing_cache(self, blob: bytes) -> Optional[ITimingCache]:
            blob = bytes(blob)
            if not blob:
                return ITimingCache()
            if not blob.startswith(b'FAKETC'):
                return None   # nullptr ITimingCache* for an unreadable blob
            return ITimingCache(int(blob[6:] or b'0'))

        def set_timing_cache(self, cache: ITimingCache, ignore_mismatch: bool) -> bool:
            if cache is None:   # pybind11 cannot bind None to ITimingCache const&
                raise TypeError('set_timing_cache(): incompatible function arguments')
            self._timing = cache
            return True

        def get_timing_cache(self) -> Optional[ITimingCache]:
            return self._timing

        def add_optimization_profile(self, profile: IOptimizationProfile) -> int:
            valid = bool(profile.shapes) and all(
                len(lo) == len(opt) == len(hi) and all(a <= b <= c for a, b, c in zip(lo, opt, hi))
                and min(lo) >= 0 for lo, opt, hi in profile.shapes.values())
            if not valid:
                return -1   # NvInfer.h: "-1 if the input is not valid"
            self.profiles.append(profile)
            return len(self.profiles) - 1

    class Builder:
        def __init__(self, logger: Any) -> None:
            self.logger = logger

        def create_network(self, flags: int = 0) -> INetworkDefinition:
            return INetworkDefinition(flags)

        def create_builder_config(self) -> IBuilderConfig:
            return IBuilderConfig()

        def create_optimization_profile(self) -> IOptimizationProfile:
            return IOptimizationProfile()

        def build_serialized_network(self, network: INetworkDefinition,
                                     config: IBuilderConfig) -> Optional[bytes]:
            state.builds += 1
            state.build_devices.append(current_device())
            state.build_threads.append(threading.current_thread().name)
            state.built_flags.append({f.name for f in config.flags})
            err = self._validate(network, config)
            if err:
                report(self.logger, Severity.ERROR, err)
                return None
            if not self._run_monitor(config.progress_monitor):
                report(self.logger, Severity.ERROR, '[builder] Engine build was cancelled by '
                       'the progress monitor (step_complete returned False).')
                return None
            inp = network.get_input(0)
            shape = list(inp.shape)
            profile = None
            if any(d < 0 for d in shape):
                profile = config.profiles[0].shapes[inp.name]
            has_half = any(t.dtype == DataType.HALF for t in network._inputs + network._outputs)
            has_half = has_half or any(o.dtype == DataType.HALF for layer in network._layers
                                       for o in layer._outputs)
            if network.strongly_typed:
                precision = 'fp16' if has_half else 'fp32'
            else:
                precision = 'fp16' if 'FP16' in {f.name for f in config.flags} else 'fp32'
            host_code = ('VERSION_COMPATIBLE' in {f.name for f in config.flags}
                         and 'EXCLUDE_LEAN_RUNTIME' not in {f.name for f in config.flags})
            if config._timing is not None:
                config._timing.entries += 1
            header = {'version': version, 'device': device_tag(), 'precision': precision,
                      'onnx': network.onnx_path, 'profile': profile, 'host_code': host_code,
                      'plugins': plan_plugins}
            blob = json.dumps(header).encode()
            return bytes(MAGIC + len(blob).to_bytes(4, 'little') + blob)

        def _validate(self, network: INetworkDefinition, config: IBuilderConfig) -> str:
            if network.num_inputs == 0:
                return 'Network must have at least one input'
            dynamic = [t for t in network._inputs if any(d < 0 for d in t.shape)]
            if dynamic and not config.profiles:
                return DYNAMIC_NO_PROFILE
            for t in dynamic:
                shapes = config.profiles[0].shapes.get(t.name) if config.profiles else None
                if shapes is None:
                    return f'Optimization profile is missing values for input {t.name}'
                for lo, fixed in zip(shapes[0], t.shape):
                    if fixed >= 0 and lo != fixed:
                        return f'profile dims {shapes[0]} disagree with {t.name} {t.shape}'
            precision_flags = {'FP16', 'BF16', 'INT8'} & {f.name for f in config.flags}
            if network.strongly_typed and precision_flags:
                return (f'[network.cpp] Error Code 3: API Usage Error (precision flags '
                        f'{sorted(precision_flags)} are not allowed on a strongly typed network)')
            return ''

        @staticmethod
        def _run_monitor(monitor: Any) -> bool:
            if monitor is None:
                return True
            steps = 3

            def guarded(name: str, call: Any) -> None:
                try:   # PyProgressMonitor::phaseStart/phaseFinish: printed, build goes on
                    call()
                except Exception as exc:  # noqa: BLE001
                    print(f'[ERROR] Exception caught in {name}(): {exc}', file=sys.stderr)

            guarded('phase_start', lambda: monitor.phase_start('Building engine', None, steps))
            for step in range(steps):
                try:   # PyProgressMonitor::stepComplete: an exception means "stop the build"
                    if not monitor.step_complete('Building engine', step):
                        return False
                except Exception as exc:  # noqa: BLE001
                    print(f'[ERROR] Exception caught in step_complete(): {exc}',
                          file=sys.stderr)
                    return False
            guarded('phase_finish', lambda: monitor.phase_finish('Building engine'))
            return True

    # ------------------------------------------------------------------ runtime
    class Runtime:
        def __init__(self, logger: Any) -> None:
            self.logger = logger
            self.engine_host_code_allowed = False   # pyCoreDoc.h RuntimeDoc: Default False

        def deserialize_cuda_engine(self, plan: Any) -> Optional['ICudaEngine']:
            state.deserialize_calls += 1
            data = bytes(plan)
            if not data.startswith(MAGIC):
                report(self.logger, Severity.ERROR, 'Error Code 1: Serialization (Serialization '
                       'assertion magicTagRead == kMAGIC_TAG failed.Magic tag does not match)')
                return None
            size = int.from_bytes(data[8:12], 'little')
            try:   # a cut-short plan: the runtime reports and returns None, never raises
                header = json.loads(data[12:12 + size])
            except ValueError:
                report(self.logger, Severity.ERROR, 'Error Code 1: Serialization (Serialization '
                       'assertion: the plan is truncated or corrupt)')
                return None
            if header['version'] != version:
                report(self.logger, Severity.ERROR, f'Error Code 6: API Usage Error (The engine '
                       f'plan file is not compatible with this version of TensorRT, expecting '
                       f'library version {version} got {header["version"]})')
                return None
            if header['device'] != device_tag():
                report(self.logger, Severity.ERROR, 'Error Code 6: The engine plan file is '
                       'generated on an incompatible device')
                return None
            if header['host_code'] and not self.engine_host_code_allowed:
                report(self.logger, Severity.ERROR, 'Error Code 1: Serialization (engine '
                       'contains host code, but engine_host_code_allowed is False)')
                return None
            if header['plugins'] and not state.plugins_initialized:
                report(self.logger, Severity.ERROR, 'getPluginCreator could not find plugin '
                       'Fake_TRT version 1')
                return None
            engine = ICudaEngine(header, current_device())
            engine.engine_logger = self.logger
            state.engines.append(engine)
            return engine

    class ICudaEngine:
        def __init__(self, header: Dict[str, Any], device: int) -> None:
            self.header, self.device = header, device
            self.session = _ort.InferenceSession(header['onnx'],
                                                 providers=['CPUExecutionProvider'])
            self._io: Dict[str, Tuple[TensorIOMode, ITensor]] = {}
            for meta in self.session.get_inputs():
                dims = [d if isinstance(d, int) and d > 0 else -1 for d in meta.shape]
                self._io[meta.name] = (TensorIOMode.INPUT, ITensor(
                    meta.name, dims, _ORT_TYPES[meta.type]))
            for meta in self.session.get_outputs():
                dims = [d if isinstance(d, int) and d > 0 else -1 for d in meta.shape]
                self._io[meta.name] = (TensorIOMode.OUTPUT, ITensor(
                    meta.name, dims, _ORT_TYPES[meta.type]))
            self.contexts: List['IExecutionContext'] = []

        num_io_tensors = property(lambda self: len(self._io))

        def get_tensor_name(self, index: int) -> str:
            return list(self._io)[index]

        def get_tensor_mode(self, name: str) -> TensorIOMode:
            return self._io[name][0]

        def get_tensor_shape(self, name: str) -> Tuple[int, ...]:
            mode, tensor = self._io[name]
            if mode is TensorIOMode.INPUT and self.header['profile'] is None:
                return tensor.shape
            if mode is TensorIOMode.INPUT:
                opt = self.header['profile'][1]
                return tuple(-1 if d < 0 else o for d, o in zip(tensor.shape, opt))
            return tensor.shape

        def get_tensor_dtype(self, name: str) -> DataType:
            return self._io[name][1].dtype

        def get_tensor_profile_shape(self, name: str, profile: int) -> List[Tuple[int, ...]]:
            lo, opt, hi = self.header['profile']
            return [tuple(lo), tuple(opt), tuple(hi)]

        def create_execution_context(self) -> Optional['IExecutionContext']:
            if state.context_fails:   # nullptr IExecutionContext* (activation memory)
                report(self.engine_logger, Severity.ERROR, '[executionContext.cpp] Error Code '
                       '1: Cuda Runtime (out of memory)')
                return None
            context = IExecutionContext(self)
            self.contexts.append(context)
            return context

    class IExecutionContext:
        def __init__(self, engine: ICudaEngine) -> None:
            self.engine = engine
            self.shapes: Dict[str, Tuple[int, ...]] = {}
            self.addresses: Dict[str, int] = {}
            self.executions: List[Tuple[int, int]] = []   # (thread's device, stream device)

        def set_input_shape(self, name: str, shape: Sequence[int]) -> bool:
            shape = tuple(int(d) for d in shape)
            declared = self.engine._io[name][1].shape
            if len(shape) != len(declared) or any(d >= 0 and d != s
                                                  for d, s in zip(declared, shape)):
                return False
            prof = self.engine.header['profile']
            if prof is not None and not all(lo <= s <= hi for lo, s, hi
                                            in zip(prof[0], shape, prof[2])):
                return False
            self.shapes[name] = shape
            return True

        def _input(self) -> Tuple[str, Tuple[int, ...], DataType]:
            for name, (mode, tensor) in self.engine._io.items():
                if mode is TensorIOMode.INPUT:
                    return name, self.shapes.get(name, tensor.shape), tensor.dtype
            raise RuntimeError('no input')

        def _run(self, x: np.ndarray) -> Dict[str, np.ndarray]:
            outs = self.engine.session.run(None, {self._input()[0]: x})
            names = [o.name for o in self.engine.session.get_outputs()]
            return dict(zip(names, outs))

        def get_tensor_shape(self, name: str) -> Tuple[int, ...]:
            mode, tensor = self.engine._io[name]
            if mode is TensorIOMode.INPUT:
                return self.shapes.get(name, tensor.shape)
            _, shape, dtype = self._input()
            if any(d < 0 for d in shape):
                return tensor.shape
            return tuple(self._run(np.zeros(shape, _NP[dtype]))[name].shape)

        def set_tensor_address(self, name: str, ptr: int) -> bool:
            if name not in self.engine._io:
                return False
            self.addresses[name] = int(ptr)
            return True

        def execute_async_v3(self, stream_handle: int) -> bool:
            gate = state.execute_gate
            if gate is not None:
                state.in_execute.set()
                try:
                    gate.wait(30)
                finally:
                    state.in_execute.clear()
            return self._execute(stream_handle)

        def _execute(self, stream_handle: int) -> bool:
            here = current_device()
            stream_dev = cuda.stream_device(stream_handle) if cuda is not None else here
            self.executions.append((here, stream_dev))
            if here != self.engine.device or stream_dev not in (here, -1):
                # The engine's memory and kernels belong to its device's context.
                print('[TRT] [E] IExecutionContext::enqueueV3: Error Code 1: Cuda Runtime '
                      '(invalid resource handle)', file=sys.stderr)
                return False
            name, shape, dtype = self._input()
            if name not in self.addresses or any(n not in self.addresses for n in self.engine._io):
                print('[TRT] [E] enqueueV3: tensor address not set', file=sys.stderr)
                return False
            count = int(np.prod(shape))
            nbytes = count * np.dtype(_NP[dtype]).itemsize
            if cuda is not None and not cuda.access(self.addresses[name], nbytes,
                                                    f'enqueueV3 input {name}',
                                                    np.dtype(_NP[dtype]).name):
                return True   # queued; the kernel faults: the sticky error comes at sync
            raw = ctypes_char(nbytes).from_address(self.addresses[name])
            x = np.frombuffer(raw, dtype=_NP[dtype]).reshape(shape).copy()
            half = self.engine.header['precision'] == 'fp16'
            if half and x.dtype == np.float32:
                x = x.astype(np.float16).astype(np.float32)
            results = self._run(x)
            for out_name, value in results.items():
                if half and value.dtype == np.float32:
                    value = value.astype(np.float16).astype(np.float32)
                if batch_bug and value.shape[0] > 1:
                    value = np.repeat(value[:1], value.shape[0], axis=0)   # TensorRT#4853
                # The engine writes its output tensor's type and size, whatever buffer it got.
                value = value.astype(_NP[self.engine._io[out_name][1].dtype], copy=False)
                if cuda is not None and not cuda.access(self.addresses[out_name], value.nbytes,
                                                        f'enqueueV3 output {out_name}',
                                                        value.dtype.name, write=True):
                    return True
                dst = (ctypes_char(value.nbytes).from_address(self.addresses[out_name]))
                np.frombuffer(dst, dtype=value.dtype)[:] = np.ascontiguousarray(value).ravel()
            return True

    for cls in (ILogger, Logger, ITensor, ILayer, INetworkDefinition, OnnxParser,
                IOptimizationProfile, ITimingCache, IProgressMonitor, IBuilderConfig, Builder,
                Runtime, ICudaEngine, IExecutionContext):
        setattr(mod, cls.__name__, cls)
    mod.init_libnvinfer_plugins = init_libnvinfer_plugins
    return mod


def ctypes_char(n: int) -> Any:
    """Return a ctypes char-array type of ``n`` bytes (for views of fake device memory)."""
    import ctypes
    return ctypes.c_char * max(1, int(n))


def install(monkeypatch: Any, version: str = '10.3.0.30', gpus: int = 1,
            batch_bug: bool = True, plan_plugins: bool = False,
            gpu_names: Optional[Sequence[str]] = None) -> Tuple[types.ModuleType,
                                                                FakeCudaRuntime]:
    """Install a fake ``tensorrt`` and a fake CUDA runtime for one test.

    The module goes into sys.modules; the CUDA fake replaces
    ``segformer_ros.cuda.runtime.bindings``.
    """
    from segformer_ros.cuda import runtime as rt
    from .cuda_runtime import FakeGpu
    names = list(gpu_names or ['Orin'] * gpus)
    cuda = FakeCudaRuntime([FakeGpu(name=n) for n in names])
    trt = make_tensorrt(version, cuda, batch_bug, plan_plugins)
    monkeypatch.setitem(sys.modules, 'tensorrt', trt)
    monkeypatch.setattr(rt, 'bindings', lambda: (cuda, None, None))
    return trt, cuda


def install_globally(version: str = '10.3.0.30') -> Tuple[types.ModuleType, FakeCudaRuntime]:
    """Install the fakes for a whole process (the acceptance suite's self-test)."""
    class _Patch:
        def setitem(self, mapping: Any, key: str, value: Any) -> None:
            mapping[key] = value

        def setattr(self, obj: Any, name: str, value: Any) -> None:
            setattr(obj, name, value)

    return install(_Patch(), version=version, batch_bug=False)


__all__ = ['install_globally', 'install', 'make_tensorrt', 'MAGIC', 'DYNAMIC_NO_PROFILE', 'Path']
