"""Engines the GPU pipeline runs between its kernels, on its device pointers.

:class:`DeviceInference` is what :class:`~segformer_ros.cuda.gpu_pipeline.GpuPipeline`
needs from an engine: the I/O it allocates for (:class:`DeviceIOSpec`) and one run on
device pointers, queued on the pipeline's inference stream. TensorRT implements it in
``backends/tensorrt_backend.py``; here are ONNX Runtime's CUDA provider through IOBinding
(:class:`OrtCudaInference`) and a host (CPU) model between the GPU stages
(:class:`HostInference`).
"""

from dataclasses import dataclass
from typing import Any, Callable, Optional, Tuple

import numpy as np

from ..backends.base import OutputKind
from ..errors import BackendError
from . import runtime as rt


@dataclass(frozen=True)
class DeviceIOSpec:
    """Engine I/O the pipeline allocates for (concrete shapes; batch B >= 1)."""

    input_name: str
    input_shape: Tuple[int, ...]     # (B, 3, H, W)
    input_dtype: str                 # 'float32' or 'float16'
    output_name: str
    output_shape: Tuple[int, ...]    # (B, C, h, w) logits or (B, H, W) / (B, 1, H, W) ids
    output_dtype: str                # 'float32'/'float16' logits; ids: int32, int64, uint8, int8
    output_kind: OutputKind

    @property
    def input_nbytes(self) -> int:
        """Bytes of the input tensor."""
        return int(np.prod(self.input_shape)) * np.dtype(self.input_dtype).itemsize

    @property
    def output_nbytes(self) -> int:
        """Bytes of the output tensor."""
        return int(np.prod(self.output_shape)) * np.dtype(self.output_dtype).itemsize

    @property
    def batch(self) -> int:
        """Frames per inference (the engine's batch dimension)."""
        return int(self.input_shape[0])

    @property
    def map_hw(self) -> Tuple[int, int]:
        """(height, width) of the output map (logits plane or id map)."""
        return int(self.output_shape[-2]), int(self.output_shape[-1])


class DeviceInference:
    """What the pipeline needs from an engine: I/O spec and a run on device pointers."""

    def device_io_spec(self) -> DeviceIOSpec:
        """Return the engine's I/O (concrete batch and H/W)."""
        raise NotImplementedError

    def infer_device(self, input_ptr: int, output_ptr: int, stream_ptr: int,
                     frames: int = 0) -> None:
        """Queue one inference reading ``input_ptr`` and writing ``output_ptr`` on the stream.

        ``frames``: batch items filled (0 = the spec's batch). Engines with a dynamic batch
        may run only those; fixed-shape engines run the whole batch.
        """
        raise NotImplementedError

    @property
    def runs_partial_batches(self) -> bool:
        """True when :meth:`infer_device` runs only the ``frames`` filled (a new shape each)."""
        return False

    @property
    def inference_stream(self) -> Any:
        """The stream this engine's work is queued on whatever it is given; None: any.

        A pipeline around such an engine must order its kernels on this stream (GpuPipeline
        takes it as its inference stream).
        """
        return None


_ORT_DTYPES = {'tensor(float)': 'float32', 'tensor(float16)': 'float16',
               'tensor(int64)': 'int64', 'tensor(int32)': 'int32', 'tensor(uint8)': 'uint8',
               'tensor(int8)': 'int8'}


class OrtCudaInference(DeviceInference):
    """ONNX Runtime CUDA-provider session run through IOBinding on the pipeline's pointers.

    Create the session with provider option ``user_compute_stream`` set to the pipeline
    stream (``same_stream=True``) so ORT's kernels queue behind the preprocess kernel and
    the postprocess queues behind them: the run then returns once its kernels are queued
    (run option ``disable_synchronize_execution_providers``) instead of holding the calling
    thread for the whole inference (5 ms of 5.1 for SegFormer-B0 1024² on the H200, spent
    waiting). ``stream``: that stream (a ``runtime.Stream``), when the session was created
    with it; implies ``same_stream`` and becomes :attr:`inference_stream`. Otherwise the
    stream is synchronized before each run, and the run waits for the GPU.
    ``session_for_batch(n)``: the session to run ``n`` frames of a dynamic-batch model with
    (one per size: see ``OnnxRuntimeBackend.session_for_batch``); without it every size
    runs in ``session``.
    """

    def __init__(self, session: Any, input_hw: Optional[Tuple[int, int]] = None,
                 same_stream: bool = False, output_name: Optional[str] = None,
                 batch: int = 1, device: int = 0,
                 session_for_batch: Optional[Callable[[int], Any]] = None,
                 stream: Any = None) -> None:
        self.session = session
        self._session_for_batch = session_for_batch
        self._stream = stream
        self.same_stream = bool(same_stream or stream is not None)
        self.device = int(device)   # the pointers' GPU: IOBinding must name it (device_id)
        inp = session.get_inputs()[0]
        outs = session.get_outputs()
        out = outs[0] if output_name is None else next(o for o in outs if o.name == output_name)
        shape = [d if isinstance(d, int) and d > 0 else None for d in inp.shape]
        if shape[2] is None or shape[3] is None:
            if input_hw is None:
                raise BackendError(f'model input {inp.name} has dynamic H/W {inp.shape}; '
                                   f'pass input_hw (input_height/input_width parameters)')
            shape[2], shape[3] = input_hw
        # A dynamic batch runs as many items as a submission filled (frames=), not always
        # the largest: 4 cameras arriving out of step mostly fill 1-3 of 4.
        self._dynamic_batch = shape[0] is None
        if shape[0] is None:
            shape[0] = batch
        elif shape[0] != batch:
            raise BackendError(f'model input {inp.name} has a fixed batch of {shape[0]}, '
                               f'expected {batch}; export with a dynamic batch dimension or '
                               f'pass batch={shape[0]}')
        in_dtype = _ORT_DTYPES[inp.type]
        out_dtype = _ORT_DTYPES.get(out.type)
        if out_dtype is None:
            raise BackendError(f'output {out.name} has type {out.type}; expected float or int '
                               f'logits/ids')
        out_shape = [d if isinstance(d, int) and d > 0 else None for d in out.shape]
        if any(d is None for d in out_shape):
            # Dynamic output dims: one CPU-side run of zeros tells the concrete shape (in the
            # batch size's own session, which runs it later anyway).
            probe_session = session
            if self._dynamic_batch and session_for_batch is not None:
                probe_session = session_for_batch(shape[0])
            probe = probe_session.run([out.name],
                                      {inp.name: np.zeros(shape, dtype=in_dtype)})[0]
            out_shape = list(probe.shape)
        kind = OutputKind.LOGITS if out_dtype.startswith('float') else OutputKind.CLASS_IDS
        self._spec = DeviceIOSpec(inp.name, tuple(shape), in_dtype, out.name, tuple(out_shape),
                                  out_dtype, kind)
        # The binding of the last run: a new one whenever the pointers or the item count
        # change. Keeping one binding per ring slot and reusing it was slower (H200, 4
        # cameras, 8 slots: inference 5.3 -> 9.9-10.1 ms in the node, 118 -> 85-87 masks/s,
        # same lease; docs/benchmarks.md).
        self._binding: Any = None
        self._bound: Tuple[int, int, int] = (0, 0, 0)
        self._run_options: Any = None
        if self.same_stream:   # given a stream (the node's path) or told it is the same
            import onnxruntime as ort
            self._run_options = ort.RunOptions()
            self._run_options.add_run_config_entry('disable_synchronize_execution_providers',
                                                   '1')

    def device_io_spec(self) -> DeviceIOSpec:
        """See :class:`DeviceInference`."""
        return self._spec

    @property
    def runs_partial_batches(self) -> bool:
        """See :class:`DeviceInference`."""
        return self._dynamic_batch and self._spec.batch > 1

    @property
    def returns_once_queued(self) -> bool:
        """True when a run returns after queueing its kernels (same stream as the pipeline)."""
        return self._run_options is not None

    @property
    def inference_stream(self) -> Any:
        """See :class:`DeviceInference`: the session's ``user_compute_stream``, if given."""
        return self._stream

    def infer_device(self, input_ptr: int, output_ptr: int, stream_ptr: int,
                     frames: int = 0) -> None:
        """See :class:`DeviceInference`."""
        if self._stream is not None and stream_ptr != self._stream.ptr:
            # ORT queues on its own stream whatever it is told: kernels the caller ordered
            # on another stream would race the inference (unordered, wrong masks).
            raise BackendError(f'expected inference on the session\'s stream '
                               f'{self._stream.ptr:#x}, got stream {stream_ptr:#x}; build the '
                               f'GpuPipeline with stream=engine.inference_stream')
        s = self._spec
        items = s.batch
        if self._dynamic_batch and 0 < frames < s.batch:
            items = int(frames)
        key = (input_ptr, output_ptr, items)
        if self._binding is None or self._bound != key:
            session = self.session
            if self._dynamic_batch and self._session_for_batch is not None:
                session = self._session_for_batch(items)
            binding = session.io_binding()
            binding.bind_input(s.input_name, 'cuda', self.device, np.dtype(s.input_dtype),
                               [items, *s.input_shape[1:]], input_ptr)
            binding.bind_output(s.output_name, 'cuda', self.device, np.dtype(s.output_dtype),
                                [items, *s.output_shape[1:]], output_ptr)
            self._binding, self._bound = (session, binding), key
        if not self.same_stream:
            rt.check(rt.bindings()[0].cudaStreamSynchronize(stream_ptr), 'cudaStreamSynchronize')
        session, binding = self._binding
        session.run_with_iobinding(binding, self._run_options)


class HostInference(DeviceInference):
    """A host-side (CPU) model between the GPU stages: input copied down, output up.

    For models only a CPU executor runs exactly (the integer kernels of a QDQ-quantized
    model, say): the GPU still does pre/postprocessing. ``run`` maps the input array
    (``spec.input_shape``, ``spec.input_dtype``) to the output array.
    """

    def __init__(self, spec: DeviceIOSpec, run: Callable[[np.ndarray], np.ndarray]) -> None:
        self._spec = spec
        self.run = run
        self._input = np.empty(spec.input_shape, dtype=spec.input_dtype)

    def device_io_spec(self) -> DeviceIOSpec:
        """See :class:`DeviceInference`."""
        return self._spec

    def infer_device(self, input_ptr: int, output_ptr: int, stream_ptr: int,
                     frames: int = 0) -> None:
        """Copy the input down after the stream's work, run on the host, copy the output up."""
        s = self._spec
        rt.copy_to_host(input_ptr, self._input, stream_ptr)
        out = np.ascontiguousarray(self.run(self._input), dtype=s.output_dtype)
        if out.size != int(np.prod(s.output_shape)):
            raise BackendError(f'host inference returned shape {out.shape}, expected '
                               f'{s.output_shape}')
        rt.copy_to_device(out, output_ptr, stream_ptr)
