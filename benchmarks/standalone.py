"""The pipeline without ROS, built from the node's own params: the yardstick of bench_ros.

:func:`build_pipeline` creates the backend and pipeline exactly as the node's configure
does (same params file, model, backend, provider, threads, pipeline choice);
:func:`measure_pipeline` runs ``SegmentationPipeline.process`` (or the GPU pipeline's) in
a loop on the frames the benchmark publishes and reports frames/s, per-frame time, stage
medians and the process's CPU time per frame (all threads, ONNX Runtime's included), split
into inference and the rest.
"""

import time
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np


def node_params(params_files: Sequence[str], overrides: Mapping[str, Any]) -> Dict[str, Any]:
    """Return the values the node reads: defaults, then each file, then ``overrides``."""
    from segformer_ros.parameters import defaults
    from segformer_ros.presets import load_params_file

    values = defaults()
    for path in params_files:
        values.update(load_params_file(path))
    values.update(overrides)
    return values


def build_pipeline(params: Mapping[str, Any], cameras: int = 1,
                   log: Any = None) -> Tuple[Any, Any]:
    """Create, configure and warm up ``(backend, pipeline)`` as the node's configure does."""
    from segformer_ros.backends.factory import backend_options_from_params, create_backend
    from segformer_ros.gpu_segmentation import select_pipeline
    from segformer_ros.parameters import pipeline_config_from_params
    from segformer_ros.warmup import warm_up_pipeline

    say = log or (lambda _msg: None)
    config = pipeline_config_from_params(params)
    # The node's parameter-to-option map, device_id included (this copy used to leave it
    # out, so a yardstick for device_id: 1 ran on GPU 0).
    options = {**backend_options_from_params(params), 'input_hw': config.input_size,
               'max_batch': max(1, cameras)}
    backend = create_backend(params['backend'], params['model_path'], logger=say, **options)
    backend.configure()
    pipeline = select_pipeline(params['pipeline'], backend, config,
                               params['onnxruntime_provider'], say, max_batch=cameras)
    backend.warmup(params['warmup_iterations'], pipeline.input_hw)
    warm_up_pipeline(pipeline, cameras)
    return backend, pipeline


class _InferenceClock:
    """Wraps ``backend.infer``: wall and process CPU seconds spent inside it."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.inner = backend.infer
        self.wall = 0.0
        self.cpu = 0.0
        backend.infer = self   # instance attribute shadows the method for this run

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        w, c = time.perf_counter(), time.process_time()
        try:
            return self.inner(*args, **kwargs)
        finally:
            self.wall += time.perf_counter() - w
            self.cpu += time.process_time() - c

    def restore(self) -> None:
        del self.backend.infer


def measure_pipeline(backend: Any, pipeline: Any, frames: Sequence[np.ndarray],
                     seconds: float, warmup_frames: int = 3, want_overlay: bool = False,
                     want_summary: bool = False, channel_order: str = 'rgb'
                     ) -> Dict[str, Any]:
    """Process ``frames`` round-robin for ``seconds``; frames/s, times and CPU per frame.

    Inference CPU is the process CPU time spent inside ``backend.infer`` (ONNX Runtime's
    threads included; nothing else runs meanwhile); with a GPU pipeline the backend is not
    called per frame and it stays n/a.
    """
    for i in range(warmup_frames):
        pipeline.process(frames[i % len(frames)], channel_order, want_overlay=want_overlay,
                         want_summary=want_summary)
    clock = _InferenceClock(backend)
    per_frame: List[float] = []
    stages: Dict[str, List[float]] = {}
    count = 0
    cpu0, t_start = time.process_time(), time.perf_counter()
    try:
        while time.perf_counter() - t_start < seconds or count < 3:
            t0 = time.perf_counter()
            result = pipeline.process(frames[count % len(frames)], channel_order,
                                      want_overlay=want_overlay, want_summary=want_summary)
            per_frame.append(time.perf_counter() - t0)
            for stage, value in result.times.items():
                stages.setdefault(stage, []).append(value)
            count += 1
    finally:
        clock.restore()
    wall = time.perf_counter() - t_start
    cpu = time.process_time() - cpu0
    ms = np.array(per_frame) * 1e3
    out: Dict[str, Any] = {
        'frames': count, 'seconds': round(wall, 2), 'fps': round(count / wall, 2),
        'frame_ms_p50': round(float(np.percentile(ms, 50)), 2),
        'frame_ms_p95': round(float(np.percentile(ms, 95)), 2),
        'stages_ms_p50': {k: round(float(np.median(v)) * 1e3, 2) for k, v in stages.items()},
        'cpu_ms_per_frame': round(cpu / count * 1e3, 2),
        'inference_cpu_ms_per_frame': (round(clock.cpu / count * 1e3, 2)
                                       if clock.wall > 0 else None),
        'cpu_count': count,
    }
    if out['inference_cpu_ms_per_frame'] is not None:
        out['cpu_ms_per_frame_outside_inference'] = round(
            out['cpu_ms_per_frame'] - out['inference_cpu_ms_per_frame'], 2)
    return out


def measure_two_in_flight(pipeline: Any, frames: Sequence[np.ndarray], seconds: float,
                          channel_order: str = 'rgb') -> Optional[Dict[str, Any]]:
    """GPU pipeline only: frames/s with two submissions in flight (None for the CPU one).

    A second ``GpuPipeline`` of depth 2 on the same inference engine: the host copy,
    upload and preprocessing of frame N+1 overlap frame N's inference (what the GPU can
    do at best with one engine; the node runs one submission at a time).
    """
    engine = getattr(pipeline, '_engine', None)
    if engine is None:
        return None
    from collections import deque

    from segformer_ros.cuda.gpu_pipeline import GpuPipeline
    from segformer_ros.gpu_segmentation import gpu_encoding

    gpu = GpuPipeline(pipeline.config, engine, depth=2)
    encoding = gpu_encoding(frames[0], channel_order)
    tickets: Any = deque()
    count = 0
    try:
        for i in range(4):   # graph capture on each slot's first frames
            gpu.process(frames[i % len(frames)], encoding, want_overlay=False)
        start = time.perf_counter()
        i = 0
        while time.perf_counter() - start < seconds:
            tickets.append(gpu.submit(frames[i % len(frames)], encoding, want_overlay=False))
            i += 1
            if len(tickets) == 2:
                gpu.collect(tickets.popleft())
                count += 1
        while tickets:
            gpu.collect(tickets.popleft())
            count += 1
        wall = time.perf_counter() - start
    finally:
        gpu.release()
    return {'frames': count, 'fps': round(count / wall, 2)}


def release(backend: Any, pipeline: Optional[Any]) -> None:
    """Free the pipeline's and backend's resources."""
    if pipeline is not None and hasattr(pipeline, 'release'):
        pipeline.release()
    backend.release()
