"""How the node's frame path runs for a pipeline and machine (a decision, no threads here).

The node resolves ``frames_in_flight``, ``batch_window_ms`` and ``max_batch_size`` into one
:class:`FramePathPlan` at activate and logs its reason; :mod:`.frame_path` runs it. Every
automatic choice below is a row of docs/benchmarks.md, "Node vs pipeline (issue 9)".
"""

import os
from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class FramePathPlan:
    """Frames in flight, prefetch, and how frames of several cameras are taken."""

    in_flight: int
    prefetch: bool
    #: How long the first camera's frame waits for the others to share its inference.
    batch_window_s: float
    #: One frame per take, the cameras in turn (models that cannot batch).
    one_frame: bool
    reason: str


def plan_frame_path(frames_in_flight: int, inference_on_device: bool, inference_threads: int,
                    batch_window_ms: float = 0.0, frames_per_inference: Optional[int] = None,
                    max_batch_size: int = 0, cpu_count: Optional[int] = None) -> FramePathPlan:
    """Resolve the frame-path parameters for this pipeline and machine.

    ``frames_in_flight`` 0 (auto), as measured: inference on the GPU -> 2 in flight with
    prefetch (H200 flood: one frame at a time 86 masks/s, overlapped 103, with the GIL
    turns 123-135); inference on the CPU with at least two cores to spare beside its
    threads -> 2 (16-core host, 8 ORT threads: flood 0.79-0.84 -> 0.93-1.01 of the
    pipeline); otherwise 1 (2 cores: 0.79 overlapped against 0.82-0.83 one at a time).
    ``inference_threads`` 0 means "all cores" (ONNX Runtime's default).

    Frames that cannot share an inference (a fixed batch of 1, or ``max_batch_size`` 1)
    get no batch window and are taken one per take, cameras in turn (H200, 4 cameras at
    30 Hz: 13-15 % dropped with the window and whole batches, 6.2 % without).
    """
    cores = int(cpu_count or os.cpu_count() or 1)
    shareable = not (frames_per_inference == 1 or max_batch_size == 1)
    window_s = max(0.0, float(batch_window_ms)) / 1e3 if shareable else 0.0
    batching = dict(batch_window_s=window_s, one_frame=not shareable)
    if frames_in_flight > 0:
        return FramePathPlan(frames_in_flight, inference_on_device and frames_in_flight > 1,
                             reason=f'frames_in_flight {frames_in_flight} (set)', **batching)
    if inference_on_device:
        return FramePathPlan(2, True, reason='auto: inference on the GPU, 2 frames in flight, '
                                             'the next image taken during inference',
                             **batching)
    threads = inference_threads if inference_threads > 0 else cores
    if cores - threads >= 2:
        return FramePathPlan(2, False, reason=f'auto: inference on the CPU with {threads} of '
                                              f'{cores} cores, 2 frames in flight', **batching)
    return FramePathPlan(1, False, reason=f'auto: inference on the CPU with {threads} of '
                                          f'{cores} cores, one frame at a time (no cores to '
                                          f'spare for overlap)', **batching)
