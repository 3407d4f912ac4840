"""TensorRT backend (TensorRT 10.x / 11 Python API + cuda-python; no pycuda, no torch).

Options (keyword arguments; others are ignored, see :mod:`.factory`):

* ``precision``: ``'fp16'`` (default), ``'fp32'``, or ``'int8'`` (only for explicitly
  quantized ONNX with QuantizeLinear/DequantizeLinear nodes). On a strongly typed TensorRT
  (11.x: no ``BuilderFlag.FP16``) the ONNX types decide; :attr:`effective_precision` says
  what the engine really runs and a warning says when fp16 was asked but fp32 is built;
* ``engine_cache_dir``: where built engines and the timing cache live (default
  ``~/.cache/segformer_ros``, created 0o700), see :mod:`.engine_cache`;
* ``rebuild_stale_engine``: rebuild a cached engine TensorRT refuses (other version or
  GPU) instead of failing configure;
* ``allow_engine_host_code``: load engines that embed host code (version-compatible /
  lean-runtime plans); off by default;
* ``workspace_mb``: builder workspace limit; ``input_hw``: (H, W) for dynamic models;
  ``device_id``: the GPU; every thread that touches CUDA or TensorRT makes it current
  (the build thread here, the caller of :meth:`bind_thread` for inference);
  ``progress``: ``callable(phase: str, fraction: float)`` fed by ``IProgressMonitor``
  during a build (an exception in it is logged, never cancels the build);
  ``logger``: ``callable(str)``;
* ``reference_onnx``: for a prebuilt engine file, the ONNX it was built from: configure
  then runs the accuracy check (segformer-ros-build-engine passes it);
* ``fp16_check_min_agreement`` (default 0.98) / ``fp32_check_min_agreement`` (0.99): after
  every fresh build the engine runs one distinct synthetic frame per batch item and each
  item's argmax is compared with ONNX Runtime on the CPU. Below the threshold a batch-1
  engine gets a warning (fp16 reductions such as LayerNorm can overflow); a batch > 1
  engine is refused (TensorRT silently mis-computes SegFormer at batch > 1,
  NVIDIA/TensorRT#4853). Engines the node builds from a dynamic-batch ONNX are batch 1.
  Without onnxruntime (a robot needs none) and for any batch > 1 engine whose sidecar
  records no check, TensorRT checks itself: each item run alone (its frame in every batch
  position) against the batched run of distinct frames; :attr:`check_method` says which
  check ran (None: none).

:meth:`configure` builds (or deserializes) in a worker thread: TensorRT releases the GIL
while it builds, so the node's executor keeps serving callbacks. Host-memory
:meth:`infer` works as for every backend; the GPU pipeline uses :meth:`infer_device` on
device pointers and :meth:`device_io_spec`.
"""

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import BackendError, BackendStateError, ModelError
from .base import Backend, ModelInfo, OutputKind, classify_output, normalize_output
from .engine_cache import (EngineCache, EngineKey, ShapeProfile, _atomic_write,
                           engine_intact, key_for_device, onnx_sha256, read_notes,
                           read_sidecar, write_sidecar)
from . import trt_compat

ENGINE_SUFFIXES: Tuple[str, ...] = ('.engine', '.plan')
PREFERRED_OUTPUTS: Tuple[str, ...] = ('logits', 'argmax', 'output', 'predictions')
REBUILD_HINT = ('rebuild it on this machine with segformer-ros-build-engine, point model_path '
                'at the ONNX file, or set rebuild_stale_engine: true')
BATCH_ISSUE = 'NVIDIA/TensorRT#4853'
FP16_CONVERT_HINT = ('convert the ONNX to fp16 first (onnxconverter-common: '
                     'float16.convert_float_to_float16(model, keep_io_types=True)) or use '
                     'precision fp32')

# Version of how this module builds engines (parse, flags, profile, precision route):
# part of the engine cache key, so bump it whenever that changes and old engines rebuild.
BUILD_LOGIC = 1
# How long release() waits for an inference call in flight before leaking its buffers
# (freeing memory an enqueued kernel uses would crash the process).
RELEASE_WAIT_S = 30.0
CHECK_ONNXRUNTIME = 'onnxruntime'
CHECK_ITEMS_ALONE = 'tensorrt-items-alone'

Progress = Callable[[str, float], None]


def tensorrt_available(device: int = 0) -> Tuple[bool, str]:
    """Whether this backend can run here: (ok, reason when not).

    Needs ``tensorrt`` >= 10 importable, cuda-python importable and a CUDA device.
    """
    try:
        import tensorrt as trt
    except ImportError as exc:
        return False, f'tensorrt is not importable ({exc})'
    except Exception as exc:  # broken installs raise OSError and friends from the .so
        return False, f'importing tensorrt failed ({type(exc).__name__}: {exc})'
    try:
        version = trt_compat.check_version(trt)
    except BackendError as exc:
        return False, str(exc)
    from ..cuda.runtime import cuda_available
    ok, why = cuda_available(device)
    if not ok:
        return False, why
    return True, f'TensorRT {version.text}'


def onnx_has_qdq(path: str) -> bool:
    """Tell whether the ONNX graph contains QuantizeLinear/DequantizeLinear nodes."""
    try:
        import onnx
    except ImportError:
        data = Path(path).read_bytes()  # op_type strings are stored verbatim in the protobuf
        return b'QuantizeLinear' in data and b'DequantizeLinear' in data
    model = onnx.load(path, load_external_data=False)
    ops = {n.op_type for n in model.graph.node}
    return 'QuantizeLinear' in ops and 'DequantizeLinear' in ops


def _make_monitor(trt: Any, progress: Progress, log: Callable[[str], None]) -> Any:
    """Make an IProgressMonitor forwarding to ``progress(phase, fraction)``.

    TensorRT's binding (python/src/infer/pyCore.cpp, PyProgressMonitor::stepComplete) turns
    an exception raised in ``step_complete`` into ``return false``: the build is cancelled
    and build_serialized_network returns None. A failing progress callback must not cost
    the build, so every call is guarded here and reported once.
    """
    base = trt.IProgressMonitor

    class _Monitor(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            base.__init__(self)
            self._steps: dict = {}
            self._lock = threading.Lock()
            self._failed = False

        def _call(self, phase: str, fraction: float) -> None:
            try:
                progress(phase, fraction)
            except Exception as exc:  # noqa: BLE001 - any callback error; build goes on
                if not self._failed:
                    self._failed = True
                    log(f'WARNING: progress callback raised {type(exc).__name__}: {exc}; '
                        f'ignored (the build continues)')

        def phase_start(self, phase_name: str, parent_phase: Optional[str],
                        num_steps: int) -> None:
            with self._lock:
                self._steps[phase_name] = max(1, int(num_steps))
            self._call(phase_name, 0.0)

        def step_complete(self, phase_name: str, step: int) -> bool:
            self._call(phase_name, min(1.0, (step + 1) / self._steps.get(phase_name, 1)))
            return True  # False would cancel the build

        def phase_finish(self, phase_name: str) -> None:
            self._call(phase_name, 1.0)

    return _Monitor()


def _make_logger(trt: Any, log: Callable[[str], None]) -> Any:
    """Make a TensorRT logger that keeps errors (for the exception) and forwards warnings.

    build_serialized_network returns None on failure and only the logger hears why
    (python/docstrings/infer/pyCoreDoc.h: it returns an IHostMemory "pointer"; Polygraphy's
    backend/trt/loader.py checks ``if not engine_bytes``), so the reason is captured here.
    """
    base = getattr(trt, 'ILogger', None)
    if base is None:
        return trt.Logger(trt.Logger.WARNING)

    class _Logger(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            base.__init__(self)
            self.errors: List[str] = []

        def log(self, severity: Any, msg: str) -> None:
            level = getattr(severity, 'name', str(severity)).upper()
            if 'ERROR' in level:
                self.errors.append(str(msg))
                log(f'TensorRT error: {msg}')
            elif 'WARNING' in level:
                log(f'TensorRT warning: {msg}')

    return _Logger()


@dataclass(frozen=True)
class BuiltEngine:
    """A serialized engine and what it really is."""

    plan: bytes
    precision: str          # effective: what the kernels run ('fp16', 'fp32', 'int8')
    note: str               # how the precision came about, for the log
    profile: ShapeProfile   # the optimization profile used (empty for fixed inputs)


def network_profile(network: Any, input_hw: Optional[Sequence[int]]) -> ShapeProfile:
    """Return the profile of the parsed network's image input (empty: all dims fixed).

    Read from ``network.get_input(0).shape`` (-1 = dynamic), so it works without the onnx
    package. Dynamic batch becomes 1 (node-built engines are batch 1: batch > 1 SegFormer
    engines give wrong results, NVIDIA/TensorRT#4853), dynamic channels 3, dynamic H/W
    ``input_hw``.
    """
    if int(network.num_inputs) != 1:
        names = [network.get_input(i).name for i in range(int(network.num_inputs))]
        raise ModelError(f'expected one image input, got {names}')
    tensor = network.get_input(0)
    return profile_from_dims(str(tensor.name), [int(d) for d in tensor.shape], input_hw)


def profile_from_dims(name: str, dims: Sequence[int],
                      input_hw: Optional[Sequence[int]]) -> ShapeProfile:
    """Return the profile of an input with these dims (-1 = dynamic): network_profile."""
    if all(d >= 0 for d in dims):
        return ()
    if len(dims) != 4:
        raise ModelError(f'expected an NCHW input, got {name} with {len(dims)} dims')
    n, c, h, w = dims
    if h < 0 or w < 0:
        if not input_hw:
            raise BackendError(f'the ONNX input {name} {tuple(dims)} has dynamic H/W; '
                               f'set input_height and input_width (CLI: --shapes '
                               f'{name}:1x3xHxW)')
        h, w = int(input_hw[0]), int(input_hw[1])
    shape = (n if n > 0 else 1, c if c > 0 else 3, h, w)
    return ((name, shape, shape, shape),)


def onnx_profile(path: str, input_hw: Optional[Sequence[int]]) -> Optional[ShapeProfile]:
    """Return the same profile from the ONNX header with the onnx package; None without it.

    Cheap (no TensorRT builder), so a cached engine's key costs no parse; without onnx
    (a robot usually lacks it) :func:`inspect_onnx` asks TensorRT's parser instead.
    """
    try:
        import onnx
    except ImportError:
        return None
    model = onnx.load(path, load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1:
        return None   # TensorRT's parser says what is wrong
    dims = [d.dim_value if d.dim_value > 0 else -1
            for d in inputs[0].type.tensor_type.shape.dim]
    return profile_from_dims(inputs[0].name, dims, input_hw)


def _parse(trt: Any, builder: Any, logger: Any, onnx_path: str,
           strongly_typed: bool) -> Tuple[Any, Any]:
    network = builder.create_network(trt_compat.network_flags(trt, strongly_typed))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = '; '.join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ModelError(f"TensorRT could not parse '{onnx_path}': {errors or 'no details'}")
    return network, parser


def inspect_onnx(trt: Any, onnx_path: str,
                 input_hw: Optional[Sequence[int]]) -> Tuple[ShapeProfile, bool]:
    """(profile, has fp16 tensors) of an ONNX model as TensorRT's parser sees it."""
    logger = _make_logger(trt, lambda _m: None)
    builder = trt.Builder(logger)
    network, _parser = _parse(trt, builder, logger, onnx_path, False)
    return network_profile(network, input_hw), trt_compat.network_has_half(trt, network)


def build_engine(trt: Any, onnx_path: str, precision: str, workspace_mb: int,
                 profile: Optional[ShapeProfile] = None, timing_cache: Optional[Path] = None,
                 progress: Optional[Progress] = None,
                 log: Callable[[str], None] = lambda _m: None,
                 input_hw: Optional[Sequence[int]] = None) -> BuiltEngine:
    """Build an engine from ONNX; ``profile`` None derives it from the network + input_hw.

    The timing cache is written after the plan exists, and a failure to write it is only
    logged: minutes of building are never lost to a later write error.
    """
    if precision == 'int8' and not onnx_has_qdq(onnx_path):
        raise BackendError(
            f"precision int8 needs an explicitly quantized ONNX (QuantizeLinear/"
            f"DequantizeLinear nodes), got '{onnx_path}' without them; quantize it (e.g. "
            f"NVIDIA ModelOpt) or use precision fp16")
    logger = _make_logger(trt, log)
    builder = trt.Builder(logger)
    strongly = trt_compat.is_strongly_typed_only(trt)
    network, parser = _parse(trt, builder, logger, onnx_path, False)
    has_half = trt_compat.network_has_half(trt, network)
    if (not strongly and precision == 'fp16' and has_half
            and trt_compat.prefers_strong_typing(trt)
            and trt_compat.network_flags(trt, True)):
        # An fp16 ONNX on TensorRT >= 10.12: the strongly typed route (BuilderFlag.FP16 is
        # deprecated there) gives the same fp16 kernels from the ONNX's own types.
        strongly = True
        network, parser = _parse(trt, builder, logger, onnx_path, True)
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt_compat.workspace_pool(trt), int(workspace_mb) << 20)
    if strongly:
        flags: Tuple[Any, ...] = ()
        if precision == 'int8':
            note = 'int8 from Q/DQ types (strongly typed)'
        else:
            note = 'strongly typed: precision from the ONNX types'
    else:
        flags, note = trt_compat.precision_flags(trt, precision)
    for flag in flags:
        config.set_flag(flag)
    effective = trt_compat.effective_precision(trt, precision, strongly, has_half)
    if precision == 'fp16' and effective != 'fp16':
        log(f"WARNING: precision fp16 requested, but TensorRT {trt.__version__} builds strongly "
            f"typed networks and '{onnx_path}' has no float16 tensors: this engine runs "
            f'{effective}; {FP16_CONVERT_HINT}')
    if profile is None:
        profile = network_profile(network, input_hw)
    log(f'building TensorRT engine ({note}; effective {effective}, workspace '
        f'{workspace_mb} MiB)')
    if progress is not None and trt_compat.has_progress_monitor(trt):
        config.progress_monitor = _make_monitor(trt, progress, log)
    cache = None
    if timing_cache is not None:
        try:
            blob = timing_cache.read_bytes() if timing_cache.is_file() else b''
        except OSError as exc:
            log(f'WARNING: cannot read timing cache {timing_cache} ({exc}); starting empty')
            blob = b''
        cache = config.create_timing_cache(blob)
        if cache is None or not config.set_timing_cache(cache, False):
            log('existing timing cache rejected; starting an empty one')
            cache = config.create_timing_cache(b'')
            if cache is not None:
                config.set_timing_cache(cache, False)
    if profile:
        opt = builder.create_optimization_profile()
        for name, lo, mid, hi in profile:
            opt.set_shape(name, lo, mid, hi)
        if config.add_optimization_profile(opt) < 0:
            raise BackendError(f'TensorRT refused the optimization profile {profile}')
    plan = builder.build_serialized_network(network, config)
    data = bytes(plan) if plan is not None else b''   # IHostMemory: buffer protocol
    if not data:
        reason = '; '.join(getattr(logger, 'errors', [])) or 'see the TensorRT log above'
        raise BackendError(f"TensorRT failed to build an engine from '{onnx_path}' "
                           f'({precision}): {reason}; {_build_hint(reason)}')
    if cache is not None and timing_cache is not None:
        _save_timing_cache(config, timing_cache, log)
    return BuiltEngine(data, effective, note, tuple(profile))


def _build_hint(reason: str) -> str:
    text = reason.lower()
    if 'optimization profile' in text or 'dynamic' in text:
        return ('the ONNX input is dynamic and no shape was given: set input_height/'
                'input_width (CLI: --shapes input:1x3xHxW)')
    if 'cancel' in text or 'interrupt' in text:
        return 'the build was cancelled; run it again'
    return 'try a larger workspace_mb or precision fp32'


def _save_timing_cache(config: Any, path: Path, log: Callable[[str], None]) -> None:
    """Write the builder's timing cache; log (never raise) when it cannot be written."""
    from .engine_cache import _atomic_write
    try:
        cache = config.get_timing_cache()   # None if no timing cache is set (pyCoreDoc.h)
        if cache is None:
            return
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        _atomic_write(path, bytes(cache.serialize()))
    except OSError as exc:
        log(f'WARNING: could not write the timing cache {path} ({exc}); the engine is fine, '
            f'the next build just starts without cached timings')


def build_serialized_engine(trt: Any, onnx_path: str, precision: str, workspace_mb: int,
                            profile: Optional[ShapeProfile], timing_cache: Optional[Path] = None,
                            progress: Optional[Progress] = None,
                            log: Callable[[str], None] = lambda _m: None) -> bytes:
    """Build an engine from ONNX and return its serialized bytes (see :func:`build_engine`)."""
    return build_engine(trt, onnx_path, precision, workspace_mb, profile, timing_cache,
                        progress, log).plan


def check_frames(shape: Sequence[int], dtype: str = 'float32') -> np.ndarray:
    """Make a batch of smooth synthetic frames, a different one per item (normalized range)."""
    import cv2
    n, c, h, w = (int(d) for d in shape)
    items = []
    for item in range(n):
        rng = np.random.default_rng(1000 + item)
        small = rng.uniform(-2.0, 2.0, (c, max(1, h // 32), max(1, w // 32))).astype(np.float32)
        items.append(np.stack([cv2.resize(small[ch], (w, h)) for ch in range(c)]))
    return np.stack(items).astype(dtype)


class TensorRTBackend(Backend):
    """Run an ONNX model (built once, cached) or a prebuilt engine with TensorRT."""

    name = 'tensorrt'

    def __init__(self, model_path: str, **options: Any) -> None:
        super().__init__(model_path, **options)
        self.precision = str(options.get('precision', 'fp16'))
        if self.precision not in ('fp16', 'fp32', 'int8'):
            raise BackendError(f"precision must be fp16, fp32 or int8, got {self.precision!r}")
        self.device_id = int(options.get('device_id', 0) or 0)
        self.workspace_mb = int(options.get('workspace_mb', 1024) or 1024)
        self.cache = EngineCache(str(options.get('engine_cache_dir', '') or ''))
        self.rebuild_stale = bool(options.get('rebuild_stale_engine', False))
        self.allow_host_code = bool(options.get('allow_engine_host_code', False))
        self.input_hw = options.get('input_hw')
        self.reference_onnx: str = str(options.get('reference_onnx', '') or '')
        self.progress: Optional[Progress] = options.get('progress')
        self._log: Callable[[str], None] = options.get('logger') or (lambda _m: None)
        self.fp16_min_agreement = float(options.get('fp16_check_min_agreement', 0.98))
        self.fp32_min_agreement = float(options.get('fp32_check_min_agreement', 0.99))
        self._reset_outcome()
        self._trt: Any = None
        self._runtime: Any = None
        self._trt_logger: Any = None
        self._engine: Any = None
        self._context: Any = None
        self._stream: Any = None
        self._buffers: List[Any] = []
        self._host: List[Any] = []
        self._in_dtype = 'float32'
        self._out_dtype = 'float32'
        self._out_shape: Tuple[int, ...] = ()
        self._in_shape: Tuple[int, ...] = ()
        # infer_device runs without the backend lock (the GPU pipeline's submit thread):
        # release() fences it through this count instead of freeing under a running call.
        self._calls = threading.Condition()
        self._in_flight = 0
        self._closing = False

    def _reset_outcome(self) -> None:
        """Forget what the previous configure found (each configure decides anew)."""
        self.engine_path: Optional[Path] = None
        self.built_now = False
        self.effective_precision: Optional[str] = None
        self.fp16_agreement: Optional[float] = None
        self.item_agreement: List[float] = []
        self.check_method: Optional[str] = None   # which accuracy check ran (None: none)

    # ----------------------------------------------------------------- threads
    def bind_thread(self) -> None:
        """Make this backend's GPU current on the calling thread (CUDA: per host thread)."""
        from ..cuda import runtime as rt
        rt.set_device(self.device_id)

    # ----------------------------------------------------------------- configure
    def _is_engine_file(self) -> bool:
        return Path(self.model_path).suffix.lower() in ENGINE_SUFFIXES

    def _key(self, trt: Any, info: Any) -> EngineKey:
        digest = onnx_sha256(self.model_path)
        profile = onnx_profile(self.model_path, self.input_hw)
        if profile is None:
            profile = self._remembered_profile(trt, digest)
        return key_for_device(self.model_path, trt.__version__, info, self.precision, profile,
                              BUILD_LOGIC, digest)

    def _remembered_profile(self, trt: Any, digest: str) -> ShapeProfile:
        """Return the input profile from TensorRT's parser (no onnx package), once per model.

        The result is kept beside the engines, keyed by the ONNX hash, the input size and
        the TensorRT version; a later configure finds its cached engine without a parse.
        """
        memo = self.cache.profile_memo(digest, self.input_hw, trt.__version__)
        try:
            data = json.loads(memo.read_text())
            return tuple((str(n), tuple(lo), tuple(opt), tuple(hi))
                         for n, lo, opt, hi in data['profile'])
        except (OSError, ValueError, KeyError, TypeError):
            pass
        profile, _ = inspect_onnx(trt, self.model_path, self.input_hw)
        try:
            self.cache.ensure_dir()
            _atomic_write(memo, json.dumps({'profile': [list(p) for p in profile]}).encode())
        except (OSError, BackendError) as exc:
            self._log(f'WARNING: could not remember the input profile in {memo} ({exc}); '
                      f'the next configure parses the ONNX again')
        return profile

    def _engine_bytes(self, trt: Any, info: Any) -> bytes:
        """Read the engine file, the cached engine, or build (in a worker thread)."""
        if self._is_engine_file():
            path = Path(self.model_path)
            meta = read_sidecar(path)
            self.engine_path = path
            self.effective_precision = str(read_notes(path).get(
                'precision', meta.precision if meta is not None else self.precision))
            data = path.read_bytes()
            broken = engine_intact(path, data)
            if broken:
                raise BackendError(f"engine file '{path}' is damaged ({broken}; a crash or "
                                   f'power cut while it was written?); {REBUILD_HINT}')
            return data
        key = self._key(trt, info)
        found = self.cache.lookup(key, Path(self.model_path).stem)
        if found is not None:
            self.engine_path = found
            self.effective_precision = str(read_notes(found).get('precision', self.precision))
            data = found.read_bytes()
            broken = engine_intact(found, data)
            if not broken:
                return data
            # Never a valid engine (cut short on disk): rebuilt whatever rebuild_stale says.
            self._log(f"cached engine '{found}' is damaged ({broken}; a crash or power cut "
                      f'while it was written); rebuilding it')
        return self._build(trt, info, key)

    def _build(self, trt: Any, info: Any, key: EngineKey) -> bytes:
        self.cache.ensure_dir()
        timing = self.cache.timing_cache_path(trt.__version__, info.name,
                                              info.compute_capability,
                                              int(getattr(info, 'sm_count', 0) or 0))
        result: dict = {}

        def work() -> None:
            try:
                self.bind_thread()   # the build thread's own current device (per thread)
                result['built'] = build_engine(
                    trt, self.model_path, self.precision, self.workspace_mb, None, timing,
                    self.progress, self._log, self.input_hw)
            except BaseException as exc:  # re-raised in the caller's thread
                result['error'] = exc

        start = time.monotonic()
        worker = threading.Thread(target=work, name='tensorrt-build', daemon=True)
        worker.start()
        while worker.is_alive():
            worker.join(timeout=1.0)
        if 'error' in result:
            raise result['error']
        built: BuiltEngine = result['built']
        self._log(f'TensorRT engine built in {time.monotonic() - start:.0f} s')
        self.engine_path = self.cache.store(key, built.plan, Path(self.model_path).stem,
                                            {'precision': built.precision})
        self.built_now = True
        self.effective_precision = built.precision
        return built.plan

    def _deserialize(self, trt: Any, plan: bytes) -> Any:
        """Deserialize ``plan``; None on failure, with TensorRT's reason in :attr:`_trt_errors`.

        The runtime logs why it refuses a plan (version tag, device, host code, plugins)
        and only there: a logger of ours keeps those lines for the error and the node log.
        """
        if self._runtime is None:
            self._trt_logger = _make_logger(trt, self._log)
            init_plugins = getattr(trt, 'init_libnvinfer_plugins', None)
            if init_plugins is not None:
                # Engines with plugin layers need the registry filled before deserializing
                # (Polygraphy's EngineFromBytes does the same).
                init_plugins(self._trt_logger, '')
            self._runtime = trt.Runtime(self._trt_logger)
            if hasattr(self._runtime, 'engine_host_code_allowed'):
                self._runtime.engine_host_code_allowed = self.allow_host_code
        errors = getattr(self._trt_logger, 'errors', None)
        if errors is not None:
            errors.clear()
        return self._runtime.deserialize_cuda_engine(plan)

    def _trt_reason(self) -> str:
        errors = getattr(self._trt_logger, 'errors', None) or []
        return f'TensorRT: {"; ".join(errors)}' if errors else 'TensorRT logged no reason'

    def _sidecar_difference(self, trt: Any, info: Any) -> str:
        """For an engine file: how its sidecar's build machine differs from this one ('')."""
        meta = read_sidecar(Path(self.model_path))
        if meta is None:
            return ''
        here = EngineKey(meta.onnx_sha256, trt.__version__, info.name, info.compute_capability,
                         meta.precision, meta.profile, int(getattr(info, 'sm_count', 0) or 0),
                         int(getattr(info, 'total_memory', 0) or 0), meta.build_logic)
        diffs = {k: v for k, v in meta.mismatch(here).items()
                 if k in ('trt_version', 'gpu_name', 'compute_capability')}
        return '; '.join(f'{k}: engine {a!r}, here {b!r}' for k, (a, b) in diffs.items())

    def _configure_impl(self) -> ModelInfo:
        self._reset_outcome()
        try:
            import tensorrt as trt
        except ImportError as exc:
            raise BackendError(f'backend tensorrt needs the tensorrt Python package, got '
                               f'ImportError: {exc}; install TensorRT (JetPack ships it) or '
                               f'set backend: onnxruntime') from None
        trt_compat.check_version(trt)
        from ..cuda import runtime as rt
        rt.set_device(self.device_id)
        info = rt.device_info(self.device_id)
        self._trt = trt
        plan = self._engine_bytes(trt, info)
        with self._calls:
            self._closing = False
        engine = self._deserialize(trt, plan)
        if engine is None and not self._is_engine_file() and not self.built_now:
            # A cached engine TensorRT refuses (driver/TensorRT update): stale.
            if not self.rebuild_stale:
                raise BackendError(f"cached engine '{self.engine_path}' could not be "
                                   f'deserialized ({self._trt_reason()}); {REBUILD_HINT}')
            self._log(f"cached engine '{self.engine_path}' is stale ({self._trt_reason()}); "
                      f'rebuilding')
            engine = self._deserialize(trt, self._build(trt, info, self._key(trt, info)))
        difference = self._sidecar_difference(trt, info) if self._is_engine_file() else ''
        if engine is None:
            what = ('engine file' if self._is_engine_file() else 'freshly built engine')
            extra = ('' if self.allow_host_code else
                     ' If it embeds host code (version-compatible/lean runtime), set '
                     'allow_engine_host_code: true only if you trust it.')
            built = f'; built elsewhere: {difference}' if difference else ''
            raise BackendError(f"TensorRT could not deserialize the {what} "
                               f"'{self.engine_path}' ({self._trt_reason()}{built}); "
                               f'{REBUILD_HINT}.{extra}')
        if difference:
            # TensorRT accepted it (hardware- or version-compatible engine): say so once.
            self._log(f"engine '{self.engine_path}' was built elsewhere ({difference}); "
                      f'TensorRT accepted it here')
        self._engine = engine
        self._context = engine.create_execution_context()
        if self._context is None:
            raise BackendError(f'TensorRT could not create an execution context '
                               f'({self._trt_reason()}); expected free GPU memory for the '
                               f"engine's activations: close other GPU work or use a smaller "
                               f'input size')
        self._stream = rt.Stream()
        model_info = self._bind_io(trt)
        self._run_checks()
        return model_info

    def _run_checks(self) -> None:
        """Run the accuracy check this engine needs; warn where none could run."""
        batch = self._in_shape[0]
        notes = read_notes(self.engine_path) if self.engine_path is not None else {}
        if self.built_now:
            self._check_accuracy(self.model_path)
            self._record_check()
        elif self._is_engine_file() and self.reference_onnx:
            self._check_accuracy(self.reference_onnx)
        elif batch > 1 and not notes.get('checked'):
            # A batch > 1 engine nobody checked (sidecar says so, or there is none):
            # TensorRT checks itself, no second runtime needed.
            self._check_items_alone()
            if not self._is_engine_file():
                self._record_check()   # a cached engine: checked once, not every load
        if batch > 1 and self.check_method is None and not notes.get('checked'):
            self._log(f'WARNING: engine batch is {batch} and its results were not checked '
                      f'here; TensorRT can silently mis-compute SegFormer at batch > 1 '
                      f'({BATCH_ISSUE}): prefer batch-1 engines')

    def _record_check(self) -> None:
        """Write what was checked into the cached engine's sidecar (read at the next load)."""
        path = self.engine_path
        key = read_sidecar(path) if path is not None else None
        if path is None or key is None:
            return
        notes = read_notes(path)
        notes.update(checked=self.check_method is not None, check_method=self.check_method,
                     item_agreement=self.item_agreement)
        try:
            write_sidecar(path, key, notes)
        except OSError as exc:
            self._log(f'WARNING: could not record the accuracy check in the sidecar of '
                      f"'{path}' ({exc})")

    def _bind_io(self, trt: Any) -> ModelInfo:
        from ..cuda import runtime as rt
        eng = self._engine
        names = [eng.get_tensor_name(i) for i in range(eng.num_io_tensors)]
        inputs = [n for n in names if eng.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if n not in inputs]
        if len(inputs) != 1 or not outputs:
            raise ModelError(f'expected one input and at least one output, got inputs '
                             f'{inputs} outputs {outputs}')
        out = outputs[0]
        if len(outputs) > 1:
            pick = [n for n in outputs if n.lower() in PREFERRED_OUTPUTS]
            if not pick:
                raise ModelError(f'several outputs {outputs}; export the model with one, or '
                                 f'name it one of {PREFERRED_OUTPUTS}')
            out = pick[0]
        inp = inputs[0]
        shape = [int(d) for d in eng.get_tensor_shape(inp)]
        if len(shape) != 4:
            raise ModelError(f'expected an NCHW input, got {inp} {shape}')
        if any(d < 0 for d in shape):
            _, opt, _ = eng.get_tensor_profile_shape(inp, 0)
            shape = [int(d) for d in opt]
            if self.input_hw:
                shape[2], shape[3] = int(self.input_hw[0]), int(self.input_hw[1])
            shape[0] = max(1, shape[0])
        if not self._context.set_input_shape(inp, tuple(shape)):
            raise BackendError(f'TensorRT refused input shape {shape} for {inp}; it is outside '
                               f'the engine profile; rebuild with this input size')
        self._in_name, self._out_name = inp, out
        self._in_shape = tuple(shape)
        self._in_dtype = trt_compat.numpy_dtype_name(trt, eng.get_tensor_dtype(inp))
        self._out_dtype = trt_compat.numpy_dtype_name(trt, eng.get_tensor_dtype(out))
        self._out_shape = tuple(int(d) for d in self._context.get_tensor_shape(out))
        for extra in outputs:
            if extra != out:  # unused outputs still need an address
                n = int(np.prod(self._context.get_tensor_shape(extra))) * 8
                buf = rt.DeviceBuffer(n)
                self._buffers.append(buf)
                self._set_address(extra, buf.ptr)
        kind, classes = classify_output(self._out_shape, self._out_dtype)
        in_bytes = int(np.prod(shape)) * np.dtype(self._in_dtype).itemsize
        out_bytes = int(np.prod(self._out_shape)) * np.dtype(self._out_dtype).itemsize
        self._in_buf = rt.DeviceBuffer(in_bytes)
        self._out_buf = rt.DeviceBuffer(out_bytes)
        self._buffers += [self._in_buf, self._out_buf]
        # Pinned staging for infer(): async copies from pageable memory are synchronous
        # and staged through a driver bounce buffer.
        self._host_in = rt.MappedHostBuffer(in_bytes)
        self._host_out = rt.MappedHostBuffer(out_bytes)
        self._host = [self._host_in, self._host_out]
        return ModelInfo(inp, tuple(shape), self._in_dtype, out, self._out_shape,  # type: ignore
                         kind, classes)

    def _set_address(self, name: str, ptr: int) -> None:
        if not self._context.set_tensor_address(name, int(ptr)):
            raise BackendError(f'TensorRT refused the address of tensor {name}')

    def _check_accuracy(self, onnx_path: str) -> None:
        """Compare every batch item of the engine with ONNX Runtime (CPU) on distinct frames.

        A batch > 1 engine whose items disagree is refused (and dropped from the cache);
        a batch-1 disagreement is a warning (fp16 overflow, or a TensorRT regression).
        """
        try:
            import onnxruntime as ort
        except ImportError:
            if self._in_shape[0] > 1:
                self._log('onnxruntime is not installed: checking the batch items with '
                          'TensorRT itself')
                self._check_items_alone()
            else:
                self._log('accuracy check skipped: onnxruntime is not installed')
            return
        session = ort.InferenceSession(onnx_path, providers=['CPUExecutionProvider'])
        ort_input = session.get_inputs()[0]
        ort_dtype = 'float16' if 'float16' in str(ort_input.type) else 'float32'
        x = check_frames(self._in_shape)
        names = [o.name for o in session.get_outputs()]
        wanted = self._out_name if self._out_name in names else names[0]
        ref = session.run([wanted], {ort_input.name: x.astype(ort_dtype)})[0]
        got = self._infer_impl(x)
        kind = self.model_info_kind()
        ref_ids, got_ids = self._ids(ref, kind), self._ids(got, kind)
        self.item_agreement = [float((r.reshape(-1) == g.reshape(-1)).mean())
                               for r, g in zip(ref_ids, got_ids)]
        self.check_method = CHECK_ONNXRUNTIME
        finite = bool(np.isfinite(got.astype(np.float64)).all())
        precision = self.effective_precision or self.precision
        threshold = self.fp16_min_agreement if precision == 'fp16' else self.fp32_min_agreement
        worst = min(self.item_agreement)
        if precision == 'fp16':
            self.fp16_agreement = worst
        text = ', '.join(f'{a * 100:.1f}%' for a in self.item_agreement)
        batch = self._in_shape[0]
        if batch > 1 and (worst < threshold or not finite):
            self._refuse_batched_engine(
                batch, f'per-item argmax agreement with ONNX Runtime {text} (expected >= '
                f'{threshold * 100:.0f}% each)', ', or build with --shapes input:1x3xHxW')
        if worst < threshold or not finite:
            cause = ('fp16 reductions (LayerNorm, softmax) can overflow: use precision fp32'
                     if precision == 'fp16' else 'check the TensorRT version and the model')
            self._log(f'WARNING: {precision} engine agrees with ONNX Runtime fp32 on only '
                      f'{text} of pixels (non-finite outputs: {not finite}); {cause}')
        else:
            self._log(f'accuracy check ({precision}, batch {batch}): {text} argmax '
                      f'agreement with ONNX Runtime')

    def _check_items_alone(self) -> None:
        """Check a batch > 1 engine with TensorRT alone (NVIDIA/TensorRT#4853).

        Item i of a batch of distinct frames must equal the result of frame i run alone,
        i.e. with frame i in every batch position (and those positions must agree with each
        other). The wrong results of #4853 depend on the batch position, so they show up
        here; no reference runtime is needed. Below ``fp32_check_min_agreement`` (the same
        engine and precision on both sides) the engine is refused.
        """
        batch = self._in_shape[0]
        kind = self.model_info_kind()
        frames = check_frames(self._in_shape, self._in_dtype)
        batched = self._ids(self._infer_impl(frames), kind)
        agreement = []
        for i in range(batch):
            alone = self._ids(self._infer_impl(np.repeat(frames[i:i + 1], batch, axis=0)), kind)
            first = alone[0].reshape(-1)
            worst = float((first == batched[i].reshape(-1)).mean())
            for k in range(1, batch):
                worst = min(worst, float((first == alone[k].reshape(-1)).mean()))
            agreement.append(worst)
        self.item_agreement = agreement
        self.check_method = CHECK_ITEMS_ALONE
        text = ', '.join(f'{a * 100:.1f}%' for a in agreement)
        if min(agreement) < self.fp32_min_agreement:
            self._refuse_batched_engine(
                batch, f'each item run alone agrees with the batched run on only {text} of '
                f'pixels (expected >= {self.fp32_min_agreement * 100:.0f}% each)')
        self._log(f'batch check (TensorRT, each item alone vs batched, batch {batch}): {text} '
                  f'agreement')

    def _refuse_batched_engine(self, batch: int, found: str, more_remedy: str = '') -> None:
        """Drop an engine built now and fail configure: a batch > 1 engine that mis-computes.

        ``found``: what the check saw; ``more_remedy``: a way out beyond the two exports.
        """
        if self.built_now and self.engine_path is not None:
            self.cache.discard(self.engine_path)
        raise BackendError(
            f'TensorRT engine of batch {batch} gives wrong results: {found}; TensorRT silently '
            f'mis-computes SegFormer at batch > 1 ({BATCH_ISSUE}): export the ONNX with batch 1 '
            f'or a dynamic batch (the node builds batch-1 engines){more_remedy}')

    @staticmethod
    def _ids(raw: np.ndarray, kind: OutputKind) -> np.ndarray:
        if kind is OutputKind.LOGITS:
            return np.asarray(raw).astype(np.float32).argmax(1)
        return normalize_output(np.asarray(raw), kind)

    def model_info_kind(self) -> OutputKind:
        """Output kind from the engine's output dtype (usable during configure)."""
        return OutputKind.LOGITS if self._out_dtype.startswith('float') else OutputKind.CLASS_IDS

    # ----------------------------------------------------------------- inference
    def _infer_impl(self, batch: np.ndarray) -> np.ndarray:
        from ..cuda import runtime as rt
        if tuple(batch.shape) != self._in_shape:
            raise ValueError(f'tensorrt backend: expected input {self._in_shape}, got '
                             f'{tuple(batch.shape)}')
        staged = self._host_in.view(self._in_dtype, self._in_shape)
        np.copyto(staged, batch, casting='unsafe')
        rt.memcpy_async(self._in_buf.ptr, self._host_in.host_ptr, self._host_in.nbytes,
                        self._stream)
        self.infer_device(self._in_buf.ptr, self._out_buf.ptr, self._stream.ptr)
        rt.memcpy_async(self._host_out.host_ptr, self._out_buf.ptr, self._host_out.nbytes,
                        self._stream)
        self._stream.synchronize()
        return self._host_out.view(self._out_dtype, self._out_shape).copy()

    def infer_device(self, input_ptr: int, output_ptr: int, stream_ptr: int,
                     frames: int = 0) -> None:
        """Queue one inference on device pointers (GPU pipeline); no synchronization.

        ``frames`` is not used: the context's input shape is the one set at configure (the
        engine's batch), so partial submissions run the whole batch. Runs without the
        backend lock (the GPU pipeline's submit thread); :meth:`release` waits for it.
        """
        with self._calls:
            context = self._context
            if context is None or self._closing:
                raise BackendStateError('tensorrt backend: infer_device called after release() '
                                        '(or before configure()); configure it first')
            self._in_flight += 1
        try:
            for name, ptr in ((self._in_name, input_ptr), (self._out_name, output_ptr)):
                if not context.set_tensor_address(name, int(ptr)):
                    raise BackendError(f'TensorRT refused the address of tensor {name}')
            if not context.execute_async_v3(int(stream_ptr)):
                raise BackendError(f'TensorRT execute_async_v3 returned False '
                                   f'({self._trt_reason()})')
        finally:
            with self._calls:
                self._in_flight -= 1
                self._calls.notify_all()

    def device_io_spec(self) -> Any:
        """I/O of the engine for :class:`segformer_ros.cuda.gpu_pipeline.GpuPipeline`."""
        from ..cuda.device_inference import DeviceIOSpec
        info = self.model_info
        return DeviceIOSpec(self._in_name, self._in_shape, self._in_dtype, self._out_name,
                            self._out_shape, self._out_dtype, info.output_kind)

    def describe(self) -> str:
        """Backend, effective precision, device and engine file for logs and /diagnostics."""
        effective = self.effective_precision or self.precision
        asked = '' if effective == self.precision else f' (requested {self.precision})'
        return f'tensorrt {effective}{asked} on GPU {self.device_id} ({self.engine_path})'

    def _has_resources(self) -> bool:
        return self._engine is not None or bool(self._buffers) or bool(self._host)

    def _fence_in_flight(self) -> bool:
        """Stop new infer_device calls and wait for those running; False if one never ends."""
        deadline = time.monotonic() + RELEASE_WAIT_S
        with self._calls:
            self._closing = True
            while self._in_flight and time.monotonic() < deadline:
                self._calls.wait(timeout=max(0.0, deadline - time.monotonic()))
            return self._in_flight == 0

    def _release_impl(self) -> None:
        if self._stream is not None or self._buffers or self._host:
            self.bind_thread()   # free on the engine's device, whatever thread releases
        if not self._fence_in_flight():
            # Freeing under a running enqueue would crash the process: leak instead.
            self._log(f'WARNING: a TensorRT inference call is still running after '
                      f'{RELEASE_WAIT_S:.0f} s; its context and buffers are left allocated')
            self._context = self._engine = self._runtime = None
            self._buffers, self._host, self._stream = [], [], None
            return
        if self._context is not None:
            # Work already queued on any stream may still use the context's memory.
            from ..cuda import runtime as rt
            try:
                rt.check(rt.bindings()[0].cudaDeviceSynchronize(), 'cudaDeviceSynchronize')
            except BackendError as exc:
                self._log(f'WARNING: synchronizing before release failed ({exc})')
        self._context = None
        self._engine = None
        self._runtime = None
        for buf in self._buffers + self._host:
            buf.free()
        self._buffers = []
        self._host = []
        if self._stream is not None:
            self._stream.destroy()
            self._stream = None
