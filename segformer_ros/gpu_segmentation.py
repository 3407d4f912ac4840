"""The node's pipeline interface on top of the zero-copy CUDA pipeline.

:class:`GpuSegmentationPipeline` offers what the CPU ``SegmentationPipeline`` offers
(``process``, ``process_batch``, ``input_hw``, ``has_logits``, ``config``) so the node can
use either. Per frame, the only CPU copy is the message bytes into pinned, mapped
memory; preprocessing, inference (TensorRT, or ONNX Runtime CUDA through IOBinding on the
same device buffers), postprocessing, overlay and histograms run on the GPU, and the
CPU assembles the summary from the GPU's histograms.

:func:`select_pipeline` decides between the two for the ``pipeline`` parameter.
"""

import threading
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, Callable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from .backends.base import Backend
from .config import PipelineConfig
from .errors import BackendError, BackendStateError, ConfigError
from .pipeline import PendingResults, SegmentationResult, SubmitOptions, SubmittingPipeline
from .preprocessing import Frame, unpack_frame
from .summary import summary_from_counts

PIPELINES: Tuple[str, ...] = ('auto', 'cpu', 'gpu')

# Longest wait for in-flight submissions to be collected (a rebuild, a full pipeline).
_DRAIN_TIMEOUT_S = 30.0

# (channel order, channels) -> the encoding name the GPU kernels read.
_ENCODINGS = {('rgb', 3): 'rgb8', ('bgr', 3): 'bgr8', ('rgb', 4): 'rgba8', ('bgr', 4): 'bgra8',
              ('gray', 1): 'mono8'}


def gpu_encoding(array: np.ndarray, channel_order: str) -> str:
    """Return the 8-bit encoding name of a frame for the GPU kernels."""
    channels = 1 if array.ndim == 2 else array.shape[2]
    encoding = _ENCODINGS.get((channel_order, channels))
    if encoding is None or array.dtype != np.uint8:
        raise ConfigError(f'GPU pipeline reads 8-bit rgb/bgr(a)/mono frames, got {array.dtype} '
                          f'{array.shape} ({channel_order})')
    return encoding


class GpuSegmentationPipeline(SubmittingPipeline):
    """SegmentationPipeline's interface over the CUDA pipeline (cuda.gpu_pipeline).

    ``want_confidence``: see :func:`gpu_confidence`.
    """

    def __init__(self, backend: Backend, config: PipelineConfig, device: int = 0,
                 max_batch: int = 1, in_flight: int = 2,
                 frames_per_submission: int = 0) -> None:
        from .cuda.gpu_pipeline import GpuPipeline

        info = backend.model_info
        engine = device_engine(backend, config, max_batch, device)
        spec = engine.device_io_spec()
        # One submission carries every camera's frame (``frames_per_submission``, default
        # ``max_batch``): ceil(frames / engine batch) inferences, each holding a ring slot
        # until it is collected.
        frames = max(1, int(frames_per_submission or max_batch))
        chunks = -(-frames // max(1, spec.batch))
        self._in_flight = max(1, int(in_flight))
        self._depth = chunks * self._in_flight
        self._backend = backend
        self._config = config
        self._engine = engine
        self._device = device
        self._make = GpuPipeline
        self._gpu = GpuPipeline(config, engine, device=device, depth=self._depth)
        # Submissions not yet collected: submit_batch blocks when all are taken, and a
        # rebuild (new output size or overlay alpha) waits for all to come back.
        self._free = threading.Semaphore(self._in_flight)
        h, w = info.input_hw
        self._input_hw = (int(h or spec.input_shape[2]), int(w or spec.input_shape[3]))
        self._kind = info.output_kind

    @property
    def frames_per_inference(self) -> Optional[int]:
        """Frames one inference takes (the engine's batch)."""
        return int(self._gpu.batch)

    @property
    def partial_batch_sizes(self) -> Tuple[int, ...]:
        """Frame counts below the engine batch that run as inferences of their own shape.

        A dynamic-batch ONNX Runtime model runs only the frames a submission filled, each
        size in a session of its own, created and tuned on first use: the configure
        warm-up runs each of these once.
        """
        if not getattr(self._engine, 'runs_partial_batches', False):
            return ()
        return tuple(range(1, int(self._gpu.batch)))

    @property
    def inference_on_device(self) -> bool:
        """True when inference runs on the GPU (not a CPU session between the kernels)."""
        from .cuda.device_inference import HostInference
        return not isinstance(self._engine, HostInference)

    def _submit(self, frames: Sequence[Tuple[Frame, Optional[str]]],
                options: SubmitOptions) -> PendingResults:
        """Copy the frames into pinned memory and queue their GPU work; collect() waits.

        Up to ``in_flight`` submissions may be outstanding (collected on any thread, in
        submission order); one more blocks here until the oldest is collected. The frames
        may be reused as soon as this returns (they were copied). ``batch_limit`` 0: the
        engine's batch. ``around_inference`` is entered around each engine call.
        """
        want_overlay, want_summary = options.want_overlay, options.want_summary
        batch_limit = options.batch_limit
        if not self._free.acquire(timeout=_DRAIN_TIMEOUT_S):
            raise BackendStateError(f'expected a free GPU pipeline slot within '
                                    f'{_DRAIN_TIMEOUT_S:.0f} s, got none: {self._in_flight} '
                                    f'submission(s) were never collected')
        try:
            self._follow_alpha(options.overlay_alpha)
            unpacked = [unpack_frame(f, o) for f, o in frames]
            # Any strides are fine: the one CPU copy packs each view into the mapped buffer.
            jobs = [(array, gpu_encoding(array, order)) for array, order in unpacked]
            gpu, config = self._gpu, self._config
            chunk = max(1, gpu.batch)
            if batch_limit > 0:
                chunk = min(chunk, int(batch_limit))
            tickets: List[Tuple[Any, List[str]]] = []
            try:
                for start in range(0, len(jobs), chunk):
                    tickets.append((gpu.submit_batch(jobs[start:start + chunk], want_overlay,
                                                     options.around_inference),
                                    [order for _, order in unpacked[start:start + chunk]]))
            except Exception:
                _collect_quietly(gpu, [t for t, _ in tickets])
                raise
        except Exception:
            self._free.release()
            raise
        confidence = options.want_confidence and self.has_logits
        collected: List[Any] = []

        def finish() -> List[SegmentationResult]:
            results: List[SegmentationResult] = []
            for ticket, orders in tickets:
                gpu_results = gpu.collect_batch(ticket)
                collected.append(ticket)
                maps: List[Optional[np.ndarray]] = [None] * len(gpu_results)
                if confidence:
                    maps = list(gpu_confidence(gpu, [r.geometry for r in gpu_results], config))
                for order, result, conf in zip(orders, gpu_results, maps):
                    item = self._result(result, order, want_summary, config)
                    item.confidence = conf
                    results.append(item)
            return results

        def release() -> None:
            # After the host copies of the results (or unused, at shutdown): only now may
            # a new submission reuse these ring slots' mapped buffers.
            _collect_quietly(gpu, [t for t, _ in tickets if t not in collected])
            self._free.release()
        return PendingResults(finish, release)

    def _result(self, result: Any, order: str, want_summary: bool,
                config: PipelineConfig) -> SegmentationResult:
        mask = np.array(result.mask)   # the mapped buffers are reused by the next frame
        overlay = np.array(result.overlay) if result.overlay is not None else None
        summary = None
        if want_summary:
            summary = summary_from_counts(mask.shape[1], mask.shape[0], result.class_counts,
                                          result.roi_counts, result.boundary,
                                          config.classes, config.summary)
        times = {k.replace('+', '_'): v / 1e3 for k, v in result.times_ms.items()}
        return SegmentationResult(mask, overlay, 'bgr' if order == 'bgr' else 'rgb', summary,
                                  result.geometry, times)

    def bind_thread(self) -> None:
        """Make the pipeline's GPU current on the calling thread (per host thread)."""
        from .cuda import runtime as rt
        rt.set_device(self._device)

    def release(self) -> None:
        """Free the device and mapped buffers."""
        self._gpu.release()

    def set_output_resolution(self, output_resolution: str) -> None:
        """Publish at another size ('input', 'model' or 'WxH'): rebuilds the GPU pipeline.

        Sizes are baked into the buffers and captured graphs; a change is rare (the
        depth camera's first CameraInfo), so rebuilding once is the simple, safe way.
        """
        if output_resolution == self._config.postprocess.output_resolution:
            return
        config = replace(self._config, postprocess=replace(
            self._config.postprocess, output_resolution=output_resolution))
        with self._all_collected():
            self._config = config
            self._rebuild()

    def _follow_alpha(self, alpha: Optional[float]) -> None:
        # The blend is captured in a CUDA graph with its alpha: a new value rebuilds the
        # GPU pipeline once (rare: a person moving a slider), not every frame.
        if alpha is None or alpha == self._config.postprocess.overlay_alpha:
            return
        # Called with one submission slot held (submit_batch): wait for the others.
        config = replace(self._config, postprocess=replace(
            self._config.postprocess, overlay_alpha=float(alpha)))
        with self._all_collected(held=1):
            self._config = config
            self._rebuild()

    def _rebuild(self) -> None:
        self._gpu.release()
        self._gpu = self._make(self._config, self._engine, device=self._device,
                               depth=self._depth)

    @contextmanager
    def _all_collected(self, held: int = 0) -> Iterator[None]:
        """Hold every submission slot (all in-flight work collected) for a rebuild."""
        taken = 0
        try:
            for _ in range(self._in_flight - held):
                if not self._free.acquire(timeout=_DRAIN_TIMEOUT_S):
                    raise BackendStateError(
                        f'expected the GPU pipeline\'s submissions collected within '
                        f'{_DRAIN_TIMEOUT_S:.0f} s before a rebuild, got '
                        f'{self._in_flight - held - taken} still out')
                taken += 1
            yield
        finally:
            for _ in range(taken):
                self._free.release()


def _collect_quietly(gpu: Any, tickets: Sequence[Any]) -> None:
    """Wait for submissions whose results nobody will read (keeps the ring consistent)."""
    for ticket in tickets:
        try:
            gpu.collect_batch(ticket)
        except Exception:  # noqa: BLE001 - already failing or shutting down
            pass


def gpu_confidence(gpu: Any, geometries: Sequence[Any], config: PipelineConfig
                   ) -> List[np.ndarray]:
    """Confidence maps of the last collected submission of ``gpu`` (a ``GpuPipeline``).

    The CPU path's definition (postprocessing.confidence_from_logits: 255 x max softmax
    at logit resolution, sampled like the 'fast' mask), computed on the host from the
    engine's logits copied down once (19 x 256 x 256 float32 = 5 MB for SegFormer at
    1024^2): only when someone subscribes to the confidence topic.
    """
    from .cuda import runtime as rt
    from .postprocessing import confidence_from_logits

    spec = gpu.spec
    logits = rt.copy_to_host(gpu.output_device_ptr(),
                             np.empty(spec.output_shape, dtype=spec.output_dtype))
    return [confidence_from_logits(np.asarray(logits[i], dtype=np.float32), geo,
                                   config.postprocess)
            for i, geo in enumerate(geometries)]


def session_on_cuda(session: Any) -> bool:
    """Tell whether an ONNX Runtime session runs on a CUDA device (CUDA or TensorRT EP)."""
    return any(p in ('CUDAExecutionProvider', 'TensorrtExecutionProvider')
               for p in session.get_providers())


def device_engine(backend: Backend, config: PipelineConfig, max_batch: int = 1,
                  device: int = 0) -> Any:
    """Return what the GPU pipeline runs inference with for ``backend``.

    TensorRT reads device pointers natively; an ONNX Runtime session on CUDA is bound to
    them through IOBinding; an ONNX Runtime session on the CPU (``onnxruntime_provider:
    cpu``, or a CPU-only onnxruntime) runs between the kernels as host inference: its
    input copied down, its output copied up (binding device pointers to a CPU session
    fails every frame with "no data transfer registered").
    """
    from .cuda.device_inference import HostInference, OrtCudaInference

    if hasattr(backend, 'infer_device'):
        return backend                      # TensorRT: device pointers natively
    if not hasattr(backend, 'session'):
        raise BackendError(f'{backend.name} backend cannot run on device buffers; use '
                           f'pipeline: cpu')
    session = backend.session
    # A fixed batch dimension decides; a dynamic one takes one slot per camera.
    batch = backend.model_info.max_batch or max(1, max_batch)
    # Sessions on the backend's stream (user_compute_stream) run queued behind the
    # preprocess and return without waiting for the GPU; the pipeline takes that stream
    # from the engine (GpuPipeline).
    ort = OrtCudaInference(session, config.input_size, batch=batch, device=device,
                           session_for_batch=getattr(backend, 'session_for_batch', None),
                           stream=getattr(backend, 'inference_stream', None))
    if session_on_cuda(session):
        return ort
    spec = ort.device_io_spec()

    def run_on_host(batch_input: np.ndarray) -> np.ndarray:
        return session.run([spec.output_name], {spec.input_name: batch_input})[0]
    return HostInference(spec, run_on_host)


def wants_gpu(backend_name: str, provider: str) -> bool:
    """Tell whether a backend setup runs inference on a CUDA GPU."""
    return backend_name == 'tensorrt' or (backend_name == 'onnxruntime' and provider in
                                          ('cuda', 'tensorrt'))


def backend_device(backend: Backend) -> int:
    """Return the CUDA device a backend runs on (``device_id`` option; 0 for CPU backends)."""
    return int(getattr(backend, 'device_id', 0) or 0)


def select_pipeline(choice: str, backend: Backend, config: PipelineConfig, provider: str,
                    log: Callable[[str], None], max_batch: int = 1,
                    frames_per_submission: int = 0, in_flight: int = 2) -> Any:
    """Build the pipeline the ``pipeline`` parameter asks for.

    ``max_batch``: most frames per inference; ``frames_per_submission``: most frames per
    ``submit_batch`` (one per camera; default ``max_batch``); ``in_flight``: submissions the
    GPU pipeline holds buffers for.
    ``cpu``: the numpy/OpenCV pipeline. ``gpu``: the CUDA pipeline, failing with the reason
    when it cannot run. ``auto``: the CUDA pipeline when inference runs on a GPU and
    cuda-python works, else the CPU pipeline, logging why.
    """
    from .pipeline import SegmentationPipeline

    if choice not in PIPELINES:
        raise ConfigError(f'pipeline must be one of {PIPELINES}, got {choice!r}')
    if choice == 'cpu' or (choice == 'auto' and not wants_gpu(backend.name, provider)):
        return SegmentationPipeline(backend, config)
    try:
        # The backend's GPU, not the calling thread's current device (device_id != 0).
        return GpuSegmentationPipeline(backend, config, device=backend_device(backend),
                                       max_batch=max_batch,
                                       frames_per_submission=frames_per_submission,
                                       in_flight=in_flight)
    except Exception as exc:  # noqa: BLE001 - cuda-python/driver errors vary by platform
        if choice == 'gpu':
            raise BackendError(f'pipeline gpu cannot start ({type(exc).__name__}: {exc}); '
                               f'install cuda-python for your CUDA, or set pipeline: cpu'
                               ) from exc
        log(f'pipeline auto: using the CPU pipeline because the CUDA pipeline cannot start '
            f'({type(exc).__name__}: {exc})')
        return SegmentationPipeline(backend, config)
