"""ONNX Runtime backend: CPU everywhere, CUDA / TensorRT providers with onnxruntime-gpu.

Options (keyword arguments; anything else is ignored so one option dict can feed every
backend, see :mod:`.factory`):

* ``provider``: ``'cpu'`` (default), ``'cuda'`` or ``'tensorrt'`` (ONNX Runtime's
  TensorRT execution provider, not :mod:`.tensorrt_backend`).
* ``num_threads``: intra-op threads; 0 = ONNX Runtime's default (one per core).
* ``allow_spinning``: let ORT's threads busy-wait between runs (default False: they would
  compete with the node's own work on a small CPU).
* ``input_hw``: ``(height, width)`` used by :meth:`warmup` when the model's H/W are dynamic.
* ``device_id``: GPU index for the cuda / tensorrt providers.
* ``precision``: ``'fp16'`` enables fp16 in the TensorRT provider; ignored otherwise.
* ``engine_cache_dir``: where the TensorRT provider caches engines (empty = no cache).
* ``workspace_mb``: TensorRT provider workspace limit in MiB (0 / absent = its default).

After :meth:`configure` the ``onnxruntime.InferenceSession`` is available as
:attr:`OnnxRuntimeBackend.session`; GPU code that keeps tensors on the device can build
an ``IOBinding`` from it and run it with :meth:`OnnxRuntimeBackend.run_with_binding`.
:meth:`OnnxRuntimeBackend.session_for_batch` gives a dynamic-batch model one session per
batch size (see there why).
"""

import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..assets import relative_path_note
from ..errors import BackendError, BackendStateError, ModelError
from .base import Backend, Dim, ModelInfo, OutputKind, classify_output
from .ort_shared_arena import USE_ENV_ALLOCATORS, share_cuda_arena

PROVIDERS: Tuple[str, ...] = ('cpu', 'cuda', 'tensorrt')

_ORT_PROVIDER_NAMES = {
    'cpu': 'CPUExecutionProvider',
    'cuda': 'CUDAExecutionProvider',
    'tensorrt': 'TensorrtExecutionProvider',
}

# ONNX tensor type strings -> numpy dtype names.
_ORT_TYPES = {
    'tensor(float)': 'float32', 'tensor(float16)': 'float16', 'tensor(double)': 'float64',
    'tensor(int64)': 'int64', 'tensor(int32)': 'int32', 'tensor(int16)': 'int16',
    'tensor(int8)': 'int8', 'tensor(uint8)': 'uint8', 'tensor(uint16)': 'uint16',
    'tensor(bool)': 'bool',
}

# When a model has several outputs, the one with one of these names is used
# (HF/our export: 'logits'; tf2onnx DeepLab: 'ArgMax'; TAO: 'output').
PREFERRED_OUTPUT_NAMES: Tuple[str, ...] = ('logits', 'argmax', 'output', 'predictions')

_ENGINE_SUFFIXES = ('.engine', '.plan', '.trt')


def _dim(value: Any) -> Dim:
    """Turn an ONNX Runtime shape entry (int, symbolic name or None) into int or None."""
    if isinstance(value, (int, np.integer)) and int(value) > 0:
        return int(value)
    return None


def _dtype_name(ort_type: str) -> str:
    return _ORT_TYPES.get(ort_type, ort_type)


def _condense(exc: BaseException, limit: int = 300) -> str:
    """Shorten an ONNX Runtime error to its first line, minus the '[ONNXRuntimeError]' prefix."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if text.startswith('[ONNXRuntimeError]'):
        text = text.split(' : ', 3)[-1]
    return text if len(text) <= limit else text[:limit - 3] + '...'


def _describe_args(args: Sequence[Any]) -> str:
    return ', '.join(f'{a.name} {_dtype_name(a.type)} {list(a.shape)}' for a in args) or 'none'


def select_output(names: Sequence[str]) -> Optional[int]:
    """Index of the output to use among ``names``: the only one, else a preferred name.

    Returns None when the choice is ambiguous (several outputs, none with a preferred name).
    """
    if len(names) == 1:
        return 0
    lowered = [n.lower() for n in names]
    for wanted in PREFERRED_OUTPUT_NAMES:
        if wanted in lowered:
            return lowered.index(wanted)
    return None


# ONNX Runtime releases before 1.24 (1.21.1, 1.22.1, 1.23.2 measured; 1.23.2 is the newest
# for Python 3.10, i.e. what Humble users get) give different masks run to run on the bundled
# quantized DeepLab once the EXTENDED-level fusions are on: the same session agreed with
# itself on 61-98 % of pixels (an AVX-512/VNNI x86 CPU, 1, 2 and default threads alike).
# BASIC is deterministic there and equal to 1.32's BASIC output. 1.32 is deterministic at
# every level, and ENABLE_ALL (>= EXTENDED) fuses QDQ pairs into integer kernels, which
# quantized models need to match their reference.
_FIRST_STABLE_EXTENDED_FUSIONS = (1, 24)


def stable_optimization_level(ort: Any) -> Any:
    """Return the highest graph optimization level that is deterministic on ``ort``'s version."""
    if _version_tuple(getattr(ort, '__version__', '0')) < _FIRST_STABLE_EXTENDED_FUSIONS:
        return ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    return ort.GraphOptimizationLevel.ORT_ENABLE_ALL


def _version_tuple(version: str) -> Tuple[int, ...]:
    parts = []
    for piece in version.split('+')[0].split('.')[:3]:
        digits = ''.join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


class OnnxRuntimeBackend(Backend):
    """Runs an ONNX model with ONNX Runtime (see the module docstring for the options)."""

    name = 'onnxruntime'

    def __init__(self, model_path: str, **options: Any) -> None:
        super().__init__(model_path, **options)
        self.provider = str(options.get('provider', 'cpu') or 'cpu')
        if self.provider not in PROVIDERS:
            raise BackendError(f'onnxruntime_provider must be one of {list(PROVIDERS)}, '
                               f'got {self.provider!r}')
        self.num_threads = int(options.get('num_threads', 0) or 0)
        self.allow_spinning = bool(options.get('allow_spinning', False))
        if self.num_threads < 0:
            raise BackendError(f'num_threads must be >= 0 (0 = default), got {self.num_threads}')
        hw = options.get('input_hw')
        self.input_hw: Optional[Tuple[int, int]] = (int(hw[0]), int(hw[1])) if hw else None
        self.device_id = int(options.get('device_id', 0) or 0)
        self.precision = str(options.get('precision', 'fp32') or 'fp32')
        self.engine_cache_dir = str(options.get('engine_cache_dir', '') or '')
        self.workspace_mb = int(options.get('workspace_mb', 0) or 0)
        self._session: Any = None
        self._batch_sessions: Dict[int, Any] = {}
        self._output_index = 0
        self._stream: Any = None

    # ------------------------------------------------------------------ extras
    @property
    def session(self) -> Any:
        """The ``onnxruntime.InferenceSession`` (after configure); for IOBinding users."""
        if self._session is None:
            raise BackendStateError('onnxruntime backend: session requested before configure(); '
                                    'call configure() first')
        return self._session

    def session_for_batch(self, batch: int) -> Any:
        """Return a session that only ever sees ``batch`` frames (kept until release).

        With the CUDA provider, every change of the input's batch size within one session
        cost 0.7-1.8 s (H200, SegFormer-B0 1024², sizes 4, 1, 3, 2 in turn; exhaustive and
        heuristic cuDNN search alike) against 5-16 ms per run at a steady size
        (docs/benchmarks.md, "Node vs pipeline", third session). Several cameras out of step
        fill 1..N items of a batch, so each size gets its own session with the batch fixed
        (a free dimension override). With the CUDA provider these sessions share one
        memory arena (:mod:`.ort_shared_arena`: 22.3 -> 8.0-8.9 GB for four sizes). Models
        with a fixed batch, or a batch dimension without a name, use :attr:`session`.
        """
        session = self.session
        dim = session.get_inputs()[0].shape[0]
        if not isinstance(dim, str) or not dim:
            return session
        if batch not in self._batch_sessions:
            import onnxruntime as ort
            self._batch_sessions[batch] = self._new_session(
                ort, self._check_path(), {dim: int(batch)},
                shared_arena=self.provider == 'cuda')
        return self._batch_sessions[batch]

    @property
    def inference_stream(self) -> Any:
        """The CUDA stream every CUDA-provider session runs on (a ``cuda.runtime.Stream``).

        Set as ORT's ``user_compute_stream`` at configure (provider ``cuda``, with
        cuda-python present; None otherwise). The GPU pipeline queues its preprocess before
        and its postprocess after inference on this stream, so a run can return as soon as
        it is queued instead of waiting for the GPU (``OrtCudaInference``).
        """
        return self._stream

    def run_with_binding(self, binding: Any) -> None:
        """Run the session on a prepared ``onnxruntime.IOBinding`` (device-resident I/O)."""
        with self._lock:
            self.session.run_with_iobinding(binding)

    def bind_thread(self) -> None:
        """Make ``device_id`` current on the calling thread when a GPU provider is used.

        The GPU pipeline's kernels run there; CUDA's current device is per host thread.
        """
        if self.provider != 'cpu':
            from ..cuda import runtime as rt
            try:
                rt.set_device(self.device_id)
            except BackendError:
                # No cuda-python: ORT selects its device itself, and without cuda-python
                # no GPU pipeline runs on this thread either.
                pass

    def describe(self) -> str:
        """E.g. ``onnxruntime 1.31.1 CPUExecutionProvider``."""
        try:
            import onnxruntime as ort
            version = ort.__version__
        except ImportError:  # describe() must never fail; say what is missing instead
            version = '(not installed)'
        if self._session is not None:
            active = self._session.get_providers()[0]
        else:
            active = _ORT_PROVIDER_NAMES[self.provider]
        text = f'onnxruntime {version} {active}'
        if active == 'TensorrtExecutionProvider' and self.precision == 'fp16':
            text += ' fp16'
        if self.num_threads:
            text += f' threads={self.num_threads}'
        return text

    def warmup(self, iterations: int = 2, input_hw: Optional[Tuple[int, int]] = None) -> None:
        """Warm up; dynamic H/W default to the ``input_hw`` option."""
        super().warmup(iterations, input_hw or self.input_hw)

    # ------------------------------------------------------------------- hooks
    def _providers(self, ort: Any) -> List[Any]:
        wanted = _ORT_PROVIDER_NAMES[self.provider]
        available = list(ort.get_available_providers())
        if wanted not in available:
            raise BackendError(
                f"onnxruntime_provider '{self.provider}' needs onnxruntime-gpu with {wanted}; "
                f'available: {available}; install onnxruntime-gpu (on Jetson: the JetPack wheel) '
                f'or set onnxruntime_provider: cpu')
        if self.provider == 'cpu':
            return ['CPUExecutionProvider']
        if hasattr(ort, 'preload_dlls'):
            # pip's onnxruntime-gpu finds CUDA/cuDNN from the nvidia-* wheels only this way.
            ort.preload_dlls()
        cuda_options: Dict[str, Any] = {'device_id': self.device_id}
        if self._stream is not None:
            cuda_options['user_compute_stream'] = str(self._stream.ptr)
        cuda = ('CUDAExecutionProvider', cuda_options)
        if self.provider == 'cuda':
            return [cuda, 'CPUExecutionProvider']
        trt_options: Dict[str, Any] = {'device_id': self.device_id,
                                       'trt_fp16_enable': self.precision == 'fp16'}
        if self.workspace_mb:
            trt_options['trt_max_workspace_size'] = self.workspace_mb << 20
        if self.engine_cache_dir:
            trt_options.update(trt_engine_cache_enable=True,
                               trt_engine_cache_path=self.engine_cache_dir)
        providers: List[Any] = [('TensorrtExecutionProvider', trt_options)]
        if 'CUDAExecutionProvider' in available:
            providers.append(cuda)
        return providers + ['CPUExecutionProvider']

    def _check_path(self) -> str:
        path = str(self.model_path or '')
        if not path:
            raise ModelError('model_path is empty; set model_path to an ONNX file')
        if not os.path.exists(path):
            raise ModelError(f"model_path '{path}' does not exist{relative_path_note(path)}; "
                             f'set model_path to an ONNX file')
        if os.path.isdir(path):
            raise ModelError(f"model_path '{path}' is a directory; set model_path to an ONNX file")
        if Path(path).suffix.lower() in _ENGINE_SUFFIXES:
            raise ModelError(
                f"model_path '{path}' is a TensorRT engine, which ONNX Runtime cannot load; "
                f'set backend: tensorrt, or point model_path at the ONNX file')
        return path

    def _configure_impl(self) -> ModelInfo:
        path = self._check_path()
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise BackendError(f'onnxruntime is not importable ({exc}); '
                               f'pip install onnxruntime (or onnxruntime-gpu)') from None
        if self.provider == 'cuda':
            self._stream = _new_stream(self.device_id)
        try:
            session = self._new_session(ort, path)
            info = self._inspect(session)  # on error the local session is simply dropped
            if self.provider != 'cpu' and session.get_providers()[0] == 'CPUExecutionProvider':
                raise BackendError(
                    f"onnxruntime_provider '{self.provider}' was requested but ONNX Runtime fell "
                    f'back to the CPU (its CUDA/TensorRT libraries did not load: check the CUDA, '
                    f'cuDNN and TensorRT installation); or set onnxruntime_provider: cpu')
        except Exception:
            self._destroy_stream()
            raise
        self._session = session
        return info

    def _new_session(self, ort: Any, path: str, fixed_dims: Optional[Dict[str, int]] = None,
                     shared_arena: bool = False) -> Any:
        providers = self._providers(ort)
        so = ort.SessionOptions()
        for name, value in (fixed_dims or {}).items():
            so.add_free_dimension_override_by_name(name, value)
        so.graph_optimization_level = stable_optimization_level(ort)
        so.log_severity_level = 3  # errors only: optimizer notices are noise in node logs
        if self.num_threads:
            so.intra_op_num_threads = self.num_threads
        # ORT's worker threads busy-wait after each run by default; on a robot CPU they then
        # steal the cores the node's postprocessing, publishing and DDS need next (measured
        # on 2 cores: postprocess 1.5 ms alone, ~20 ms right after a spinning inference).
        so.add_session_config_entry('session.intra_op.allow_spinning',
                                    '1' if self.allow_spinning else '0')
        if shared_arena and share_cuda_arena(ort, self.device_id):
            so.add_session_config_entry(USE_ENV_ALLOCATORS, '1')
        try:
            return ort.InferenceSession(path, sess_options=so, providers=providers)
        except Exception as exc:  # ORT raises its own pybind exception types
            raise ModelError(f"cannot load '{path}' as an ONNX model: {_condense(exc)}; "
                             f'expected a valid ONNX file (segformer-ros-export writes one)'
                             ) from None

    def _inspect(self, session: Any) -> ModelInfo:
        inputs = session.get_inputs()
        if len(inputs) != 1:
            raise ModelError(f'expected exactly one image input (N, 3, H, W); the model has '
                             f'{len(inputs)}: {_describe_args(inputs)}')
        inp = inputs[0]
        shape = list(inp.shape) if inp.shape is not None else []
        channels = _dim(shape[1]) if len(shape) == 4 else -1
        if len(shape) != 4 or channels not in (3, None):
            raise ModelError(
                f'expected an NCHW image input (N, 3, H, W); got {_describe_args(inputs)}. '
                f'NHWC or uint8 front ends need an NCHW float32 variant of the model')
        in_dtype = _dtype_name(inp.type)
        if in_dtype not in ('float32', 'float16'):
            raise ModelError(f'expected a float32 (or float16) input, got {inp.name} {in_dtype}; '
                             f'export the model with a float input')
        outputs = session.get_outputs()
        index = select_output([o.name for o in outputs])
        if index is None:
            raise ModelError(
                f'the model has {len(outputs)} outputs ({_describe_args(outputs)}) and none is '
                f'named {list(PREFERRED_OUTPUT_NAMES)}; export it with the logits (or argmax) '
                f'as the only output')
        out = outputs[index]
        out_shape = tuple(_dim(d) for d in (out.shape or []))
        out_dtype = _dtype_name(out.type)
        kind, num_classes = classify_output(out_shape, out_dtype)
        self._output_index = index
        in_shape = tuple(_dim(d) for d in shape)
        return ModelInfo(inp.name, (in_shape[0], 3, in_shape[2], in_shape[3]), in_dtype,
                         out.name, out_shape, kind, num_classes)

    def _infer_impl(self, batch: np.ndarray) -> np.ndarray:
        info = self.model_info
        feed = np.ascontiguousarray(batch, dtype=np.dtype(info.input_dtype))
        session = self._session
        if self.provider == 'cuda':
            # A dynamic batch runs in its size's session (same model; see session_for_batch):
            # the main session then never runs and keeps no arena of its own.
            session = self.session_for_batch(int(feed.shape[0]))
        out = session.run([info.output_name], {info.input_name: feed})[0]
        if info.output_kind is OutputKind.LOGITS and out.dtype != np.float32:
            out = out.astype(np.float32)  # fp16 models: postprocessing expects float32
        return out

    def _release_impl(self) -> None:
        self._session = None
        self._batch_sessions = {}
        self._destroy_stream()

    def _destroy_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.destroy()

    def _has_resources(self) -> bool:
        return self._session is not None or self._stream is not None


def _new_stream(device_id: int) -> Any:
    """Return a CUDA stream on ``device_id`` for ORT's sessions; None without cuda-python."""
    from ..cuda import runtime as rt
    try:
        rt.set_device(device_id)
        return rt.Stream()
    except BackendError:
        # No cuda-python: ORT makes its own stream, and no GPU pipeline can run here.
        return None
