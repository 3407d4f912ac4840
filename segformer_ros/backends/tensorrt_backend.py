"""TensorRT backend (TensorRT 10.x / 11 Python API + cuda-python; no pycuda, no torch).

Options (keyword arguments; others are ignored, see :mod:`.factory`):

* ``precision``: ``'fp16'`` (default), ``'fp32'``, or ``'int8'`` (only for explicitly
  quantized ONNX with QuantizeLinear/DequantizeLinear nodes);
* ``engine_cache_dir``: where built engines and the timing cache live (default
  ``~/.cache/segformer_ros``, created 0o700), see :mod:`.engine_cache`;
* ``rebuild_stale_engine``: rebuild a cached engine TensorRT refuses (other version or
  GPU) instead of failing configure;
* ``allow_engine_host_code``: load engines that embed host code (version-compatible /
  lean-runtime plans); off by default;
* ``workspace_mb``: builder workspace limit; ``input_hw``: (H, W) for dynamic models;
  ``device_id``; ``progress``: ``callable(phase: str, fraction: float)`` fed by
  ``IProgressMonitor`` during a build; ``logger``: ``callable(str)``;
* ``fp16_check_min_agreement``: after an fp16 build, the argmax agreement with an fp32
  reference (ONNX Runtime on the CPU) on one synthetic frame below which a warning is
  logged (SegFormer's LayerNorm can overflow in fp16, NVIDIA/TensorRT#4723); default 0.98.

:meth:`configure` builds (or deserializes) in a worker thread: TensorRT releases the GIL
while it builds, so the node's executor keeps serving callbacks. Host-memory
:meth:`infer` works as for every backend; the GPU pipeline uses :meth:`infer_device` on
device pointers and :meth:`device_io_spec`.
"""

import threading
import time
from pathlib import Path
from typing import Any, Callable, List, Optional, Tuple

import numpy as np

from ..errors import BackendError, ModelError
from .base import Backend, ModelInfo, OutputKind, classify_output
from .engine_cache import (EngineCache, EngineKey, ShapeProfile, describe_mismatch, make_key,
                           read_sidecar)
from . import trt_compat

ENGINE_SUFFIXES: Tuple[str, ...] = ('.engine', '.plan')
PREFERRED_OUTPUTS: Tuple[str, ...] = ('logits', 'argmax', 'output', 'predictions')
REBUILD_HINT = ('rebuild it on this machine with segformer-ros-build-engine, point model_path '
                'at the ONNX file, or set rebuild_stale_engine: true')

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


def _make_monitor(trt: Any, progress: Progress) -> Any:
    """Make an IProgressMonitor forwarding to ``progress(phase, fraction)``."""
    base = trt.IProgressMonitor

    class _Monitor(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            base.__init__(self)
            self._steps: dict = {}
            self._lock = threading.Lock()

        def phase_start(self, phase_name: str, parent_phase: Optional[str],
                        num_steps: int) -> None:
            with self._lock:
                self._steps[phase_name] = max(1, int(num_steps))
            progress(phase_name, 0.0)

        def step_complete(self, phase_name: str, step: int) -> bool:
            progress(phase_name, min(1.0, (step + 1) / self._steps.get(phase_name, 1)))
            return True  # False would cancel the build

        def phase_finish(self, phase_name: str) -> None:
            progress(phase_name, 1.0)

    return _Monitor()


def build_serialized_engine(trt: Any, onnx_path: str, precision: str, workspace_mb: int,
                            profile: ShapeProfile, timing_cache: Optional[Path] = None,
                            progress: Optional[Progress] = None,
                            log: Callable[[str], None] = lambda _m: None) -> bytes:
    """Build an engine from ONNX and return its serialized bytes (timing cache updated)."""
    if precision == 'int8' and not onnx_has_qdq(onnx_path):
        raise BackendError(
            f"precision int8 needs an explicitly quantized ONNX (QuantizeLinear/"
            f"DequantizeLinear nodes), got '{onnx_path}' without them; quantize it (e.g. "
            f"NVIDIA ModelOpt) or use precision fp16")
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(trt_compat.network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = '; '.join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ModelError(f"TensorRT could not parse '{onnx_path}': {errors or 'no details'}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt_compat.workspace_pool(trt), int(workspace_mb) << 20)
    flags, note = trt_compat.precision_flags(trt, precision)
    for flag in flags:
        config.set_flag(flag)
    log(f'building TensorRT engine ({note}, workspace {workspace_mb} MiB)')
    if progress is not None and trt_compat.has_progress_monitor(trt):
        config.progress_monitor = _make_monitor(trt, progress)
    cache = None
    if timing_cache is not None:
        blob = timing_cache.read_bytes() if timing_cache.is_file() else b''
        cache = config.create_timing_cache(blob)
        if not config.set_timing_cache(cache, False):
            log('existing timing cache rejected; starting an empty one')
            cache = config.create_timing_cache(b'')
            config.set_timing_cache(cache, False)
    if profile:
        opt = builder.create_optimization_profile()
        for name, lo, mid, hi in profile:
            opt.set_shape(name, lo, mid, hi)
        if config.add_optimization_profile(opt) < 0:
            raise BackendError(f'TensorRT refused the optimization profile {profile}')
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise BackendError(f"TensorRT failed to build an engine from '{onnx_path}' "
                           f'({precision}); see the TensorRT log above; try a larger '
                           f'workspace_mb or precision fp32')
    if cache is not None and timing_cache is not None:
        from .engine_cache import _atomic_write
        _atomic_write(timing_cache, bytes(config.get_timing_cache().serialize()))
    return bytes(plan)


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
        self.progress: Optional[Progress] = options.get('progress')
        self._log: Callable[[str], None] = options.get('logger') or (lambda _m: None)
        self.fp16_min_agreement = float(options.get('fp16_check_min_agreement', 0.98))
        self.engine_path: Optional[Path] = None
        self.built_now = False
        self.fp16_agreement: Optional[float] = None
        self._trt: Any = None
        self._runtime: Any = None
        self._engine: Any = None
        self._context: Any = None
        self._stream: Any = None
        self._buffers: List[Any] = []
        self._in_dtype = 'float32'
        self._out_dtype = 'float32'
        self._out_shape: Tuple[int, ...] = ()

    # ----------------------------------------------------------------- configure
    def _is_engine_file(self) -> bool:
        return Path(self.model_path).suffix.lower() in ENGINE_SUFFIXES

    def _profile(self, trt: Any) -> ShapeProfile:
        """Shape profile of the ONNX input: fixed dims as is, dynamic H/W from input_hw."""
        try:
            import onnx
        except ImportError:
            return ()
        model = onnx.load(self.model_path, load_external_data=False)
        inits = {i.name for i in model.graph.initializer}
        inputs = [i for i in model.graph.input if i.name not in inits]
        if len(inputs) != 1:
            raise ModelError(f'expected one image input, got {[i.name for i in inputs]}')
        dims = [d.dim_value if d.dim_value > 0 else None
                for d in inputs[0].type.tensor_type.shape.dim]
        if all(d is not None for d in dims):
            return ()
        if len(dims) != 4:
            raise ModelError(f'expected an NCHW input, got {len(dims)} dims')
        h, w = dims[2], dims[3]
        if h is None or w is None:
            if not self.input_hw:
                raise BackendError('the ONNX input has dynamic H/W; set input_height and '
                                   'input_width')
            h, w = int(self.input_hw[0]), int(self.input_hw[1])
        shape = (1, int(dims[1] or 3), h, w)
        return ((inputs[0].name, shape, shape, shape),)

    def _engine_bytes(self, trt: Any, info: Any) -> bytes:
        """Read the engine file, the cached engine, or build (in a worker thread)."""
        if self._is_engine_file():
            path = Path(self.model_path)
            meta = read_sidecar(path)
            if meta is not None and (meta.trt_version != trt.__version__
                                     or meta.gpu_name != info.name
                                     or tuple(meta.compute_capability)
                                     != info.compute_capability):
                here = EngineKey(meta.onnx_sha256, trt.__version__, info.name,
                                 info.compute_capability, meta.precision, meta.profile)
                raise BackendError(f"engine '{path}' was built elsewhere "
                                   f'({describe_mismatch(meta, here)}); {REBUILD_HINT}')
            self.engine_path = path
            return path.read_bytes()
        key = make_key(self.model_path, trt.__version__, info.name, info.compute_capability,
                       self.precision, self._profile(trt))
        found = self.cache.lookup(key, Path(self.model_path).stem)
        if found is not None:
            self.engine_path = found
            return found.read_bytes()
        return self._build(trt, info, key)

    def _build(self, trt: Any, info: Any, key: EngineKey) -> bytes:
        self.cache.ensure_dir()
        timing = self.cache.timing_cache_path(trt.__version__, info.name,
                                              info.compute_capability)
        result: dict = {}

        def work() -> None:
            try:
                result['plan'] = build_serialized_engine(
                    trt, self.model_path, self.precision, self.workspace_mb,
                    self._profile(trt), timing, self.progress, self._log)
            except BaseException as exc:  # re-raised in the caller's thread
                result['error'] = exc

        start = time.monotonic()
        worker = threading.Thread(target=work, name='tensorrt-build', daemon=True)
        worker.start()
        while worker.is_alive():
            worker.join(timeout=1.0)
        if 'error' in result:
            raise result['error']
        self._log(f'TensorRT engine built in {time.monotonic() - start:.0f} s')
        self.engine_path = self.cache.store(key, result['plan'], Path(self.model_path).stem)
        self.built_now = True
        return result['plan']

    def _deserialize(self, trt: Any, plan: bytes) -> Any:
        if self._runtime is None:
            self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
            if hasattr(self._runtime, 'engine_host_code_allowed'):
                self._runtime.engine_host_code_allowed = self.allow_host_code
        return self._runtime.deserialize_cuda_engine(plan)

    def _configure_impl(self) -> ModelInfo:
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
        engine = self._deserialize(trt, plan)
        if engine is None and not self._is_engine_file() and not self.built_now:
            # A cached engine TensorRT refuses (driver/TensorRT update): stale.
            if not self.rebuild_stale:
                raise BackendError(f"cached engine '{self.engine_path}' could not be "
                                   f'deserialized (stale or foreign: version tag or device '
                                   f'mismatch); {REBUILD_HINT}')
            key = make_key(self.model_path, trt.__version__, info.name,
                           info.compute_capability, self.precision, self._profile(trt))
            engine = self._deserialize(trt, self._build(trt, info, key))
        if engine is None:
            what = ('engine file' if self._is_engine_file() else 'freshly built engine')
            extra = ('' if self.allow_host_code else
                     ' If it embeds host code (version-compatible/lean runtime), set '
                     'allow_engine_host_code: true only if you trust it.')
            raise BackendError(f"TensorRT could not deserialize the {what} "
                               f"'{self.engine_path}' (stale or foreign: version tag or device "
                               f'mismatch); {REBUILD_HINT}.{extra}')
        self._engine = engine
        self._context = engine.create_execution_context()
        if self._context is None:
            raise BackendError('TensorRT could not create an execution context (GPU memory?)')
        self._stream = rt.Stream()
        model_info = self._bind_io(trt)
        if self.built_now and self.precision == 'fp16':
            self._check_fp16()
        return model_info

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
        self._in_buf = rt.DeviceBuffer(int(np.prod(shape)) * np.dtype(self._in_dtype).itemsize)
        self._out_buf = rt.DeviceBuffer(int(np.prod(self._out_shape))
                                        * np.dtype(self._out_dtype).itemsize)
        self._buffers += [self._in_buf, self._out_buf]
        return ModelInfo(inp, tuple(shape), self._in_dtype, out, self._out_shape,  # type: ignore
                         kind, classes)

    def _set_address(self, name: str, ptr: int) -> None:
        if not self._context.set_tensor_address(name, int(ptr)):
            raise BackendError(f'TensorRT refused the address of tensor {name}')

    def _check_fp16(self) -> None:
        """Compare the fp16 engine with fp32 ONNX Runtime (CPU) on one synthetic frame."""
        try:
            import onnxruntime as ort
        except ImportError:
            self._log('fp16 check skipped: onnxruntime is not installed')
            return
        rng = np.random.default_rng(0)
        # Smooth random image: a realistic-ish input (noise alone is not a scene).
        small = rng.uniform(-2.0, 2.0, (1, 3) + tuple(max(1, d // 32) for d in self._in_shape[2:]))
        import cv2
        x = np.stack([cv2.resize(small[0, c].astype(np.float32), self._in_shape[:1:-1])
                      for c in range(3)])[None].astype(np.float32)
        ref = ort.InferenceSession(self.model_path, providers=['CPUExecutionProvider']).run(
            None, {self._in_name: x})[0]
        got = self._infer_impl(x)
        if self.model_info_kind() is OutputKind.LOGITS:
            ref_ids, got_ids = ref.argmax(1), got.argmax(1)
        else:
            ref_ids, got_ids = ref, got
        self.fp16_agreement = float((ref_ids.reshape(-1) == got_ids.reshape(-1)).mean())
        if not np.isfinite(got).all() or self.fp16_agreement < self.fp16_min_agreement:
            self._log(f'WARNING: fp16 engine agrees with fp32 on only '
                      f'{self.fp16_agreement * 100:.1f}% of pixels (non-finite outputs: '
                      f'{not np.isfinite(got).all()}); SegFormer LayerNorm can overflow in '
                      f'fp16 (NVIDIA/TensorRT#4723): use precision fp32 or a TensorRT with '
                      f'the fix')
        else:
            self._log(f'fp16 check: {self.fp16_agreement * 100:.2f}% argmax agreement with fp32')

    def model_info_kind(self) -> OutputKind:
        """Output kind from the engine's output dtype (usable during configure)."""
        return OutputKind.LOGITS if self._out_dtype.startswith('float') else OutputKind.CLASS_IDS

    # ----------------------------------------------------------------- inference
    def _infer_impl(self, batch: np.ndarray) -> np.ndarray:
        from ..cuda import runtime as rt
        x = np.ascontiguousarray(batch, dtype=self._in_dtype)
        if x.shape != self._in_shape:
            raise ValueError(f'tensorrt backend: expected input {self._in_shape}, got {x.shape}')
        out = np.empty(self._out_shape, dtype=self._out_dtype)
        rt.check(rt.bindings()[0].cudaMemcpyAsync(
            self._in_buf.ptr, x.ctypes.data, x.nbytes,
            rt.bindings()[0].cudaMemcpyKind.cudaMemcpyHostToDevice, self._stream.handle),
            'cudaMemcpyAsync(H2D)')
        self.infer_device(self._in_buf.ptr, self._out_buf.ptr, self._stream.ptr)
        rt.check(rt.bindings()[0].cudaMemcpyAsync(
            out.ctypes.data, self._out_buf.ptr, out.nbytes,
            rt.bindings()[0].cudaMemcpyKind.cudaMemcpyDeviceToHost, self._stream.handle),
            'cudaMemcpyAsync(D2H)')
        self._stream.synchronize()
        return out

    def infer_device(self, input_ptr: int, output_ptr: int, stream_ptr: int) -> None:
        """Queue one inference on device pointers (GPU pipeline); no synchronization."""
        self._set_address(self._in_name, input_ptr)
        self._set_address(self._out_name, output_ptr)
        if not self._context.execute_async_v3(int(stream_ptr)):
            raise BackendError('TensorRT execute_async_v3 returned False; see the TensorRT log')

    def device_io_spec(self) -> Any:
        """I/O of the engine for :class:`segformer_ros.cuda.gpu_pipeline.GpuPipeline`."""
        from ..cuda.gpu_pipeline import DeviceIOSpec
        info = self.model_info
        return DeviceIOSpec(self._in_name, self._in_shape, self._in_dtype, self._out_name,
                            self._out_shape, self._out_dtype, info.output_kind,
                            graph_capturable=True)

    def describe(self) -> str:
        """Backend, precision and engine file for logs and /diagnostics."""
        return f'tensorrt {self.precision} ({self.engine_path})'

    def _has_resources(self) -> bool:
        return self._engine is not None or bool(self._buffers)

    def _release_impl(self) -> None:
        self._context = None
        self._engine = None
        self._runtime = None
        for buf in self._buffers:
            buf.free()
        self._buffers = []
        if self._stream is not None:
            self._stream.destroy()
            self._stream = None
