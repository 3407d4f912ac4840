"""The configure warm-up: one synthetic frame through the whole pipeline (no ROS here).

``Backend.warmup`` runs the model alone. A pipeline can still fail around it: the GPU
pipeline binding device pointers to an ONNX Runtime session that runs on the CPU, a
kernel that does not build for this GPU, a fixed-batch model fed more cameras than it
takes. Pushing one frame per camera through preprocess -> inference -> postprocess (with
overlay, summary and confidence, as the node may ask for them) at configure makes such a
fault fail the transition with its reason, instead of failing every frame afterwards.
"""

from typing import Any, List

import numpy as np

from .errors import BackendError


def synthetic_frame(height: int, width: int) -> np.ndarray:
    """Return an (H, W, 3) uint8 RGB frame with gradients and edges (not a flat image)."""
    yy, xx = np.mgrid[0:height, 0:width]
    return np.stack([(xx * 255 // max(1, width - 1)), (yy * 255 // max(1, height - 1)),
                     ((xx // 32 + yy // 32) % 2) * 200], axis=-1).astype(np.uint8)


def warm_up_pipeline(pipeline: Any, cameras: int = 1, max_batch_size: int = 0) -> List[Any]:
    """Run one frame per camera (as the node batches them) through ``pipeline``.

    Raises BackendError naming the pipeline, the error and what to change when any stage
    fails or returns something other than one uint8 mask per frame.
    """
    h, w = pipeline.input_hw
    frame = synthetic_frame(int(h), int(w))
    count = max(1, int(cameras))
    batch = min(count, int(max_batch_size)) if max_batch_size else count
    name = type(pipeline).__name__
    try:
        results = pipeline.process_batch([(frame, 'rgb')] * batch, want_overlay=True,
                                         want_summary=True,
                                         want_confidence=bool(pipeline.has_logits))
        # Batch sizes set up on first use (a dynamic batch on the GPU: a session and its
        # tuning per size): the first 3-camera inference would otherwise stall the frame
        # path for seconds.
        for partial in getattr(pipeline, 'partial_batch_sizes', ()):
            pipeline.process_batch([(frame, 'rgb')] * int(partial), want_overlay=True,
                                   want_summary=False, want_confidence=False)
    except Exception as exc:  # noqa: BLE001 - any failure here fails configure with its reason
        raise BackendError(
            f'the configure warm-up frame failed in {name} ({type(exc).__name__}: '
            f'{str(exc)[:500]}); every frame would fail the same way. Check that pipeline '
            f'(cpu/gpu/auto), backend and onnxruntime_provider fit together, e.g. '
            f'pipeline: cpu for inference on the CPU') from exc
    if len(results) != batch:
        raise BackendError(f'the configure warm-up expected {batch} results from {name}, got '
                           f'{len(results)}')
    for result in results:
        mask = np.asarray(result.mask)
        if mask.ndim != 2 or mask.dtype != np.uint8:
            raise BackendError(f'the configure warm-up expected a 2-D uint8 mask from {name}, '
                               f'got {mask.dtype} {mask.shape}')
    return results
