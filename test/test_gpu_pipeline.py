"""GPU pipeline: error paths everywhere, kernels vs the CPU path on a CUDA GPU (marked gpu)."""

import numpy as np
import pytest

from segformer_ros.config import PipelineConfig, PostprocessConfig, PreprocessConfig
from segformer_ros.cuda.runtime import cuda_available

HAS_CUDA, WHY = cuda_available()
gpu = pytest.mark.gpu
needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason=f'no CUDA: {WHY}')


@pytest.mark.skipif(HAS_CUDA, reason='CUDA is available here')
def test_cuda_unavailable_has_a_reason():
    assert WHY  # e.g. cuda-python missing or no device
    from segformer_ros.cuda.runtime import bindings
    from segformer_ros.errors import BackendError
    try:
        bindings()
    except BackendError as exc:
        assert 'cuda-python' in str(exc)


def test_free_space_rows_match_summary_convention():
    from segformer_ros.cuda.gpu_pipeline import free_space_rows
    starts, rows = free_space_rows(np.array([5, 7, 9, 3, 3, 3], np.int32), 3)
    assert starts == [0, 2, 4] and rows == [6, 6, 3]


def _frame(rng, h=61, w=97):
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


@gpu
@needs_cuda
@pytest.mark.parametrize('policy', ['stretch', 'letterbox'])
@pytest.mark.parametrize('mode', ['fast', 'exact'])
@pytest.mark.parametrize('encoding', ['bgr8', 'rgb8', 'rgba8', 'bgra8', 'mono8'])
def test_gpu_matches_cpu_path(policy, mode, encoding):
    import cv2
    from segformer_ros.backends.base import OutputKind
    from segformer_ros.cuda.gpu_pipeline import DeviceInference, DeviceIOSpec, GpuPipeline
    from segformer_ros.cuda import runtime as rt
    from segformer_ros.postprocessing import ids_from_output
    from segformer_ros.preprocessing import preprocess
    from segformer_ros.summary import compute_summary

    rng = np.random.default_rng(1)
    logits = rng.standard_normal((1, 19, 16, 12)).astype(np.float32)

    class Fixed(DeviceInference):
        def device_io_spec(self):
            return DeviceIOSpec('in', (1, 3, 64, 48), 'float32', 'out', logits.shape,
                                'float32', OutputKind.LOGITS)

        def infer_device(self, inp, out, stream):
            rt.copy_to_device(logits, out)

    bgr = _frame(rng)
    conv = {'bgr8': None, 'rgb8': cv2.COLOR_BGR2RGB, 'rgba8': cv2.COLOR_BGR2RGBA,
            'bgra8': cv2.COLOR_BGR2BGRA, 'mono8': cv2.COLOR_BGR2GRAY}[encoding]
    frame = bgr if conv is None else np.ascontiguousarray(cv2.cvtColor(bgr, conv))
    order = {'bgr8': 'bgr', 'rgb8': 'rgb', 'rgba8': 'rgb', 'bgra8': 'bgr', 'mono8': 'gray'}
    cfg = PipelineConfig(preprocess=PreprocessConfig(policy, 'rgb', pad_value=114.0),
                         postprocess=PostprocessConfig(mode, 'input', 0.5))
    pipe = GpuPipeline(cfg, Fixed(), use_graphs=False)
    try:
        res = pipe.process(frame, encoding)
        gin = rt.copy_to_host(pipe.input_device_ptr(), np.empty((1, 3, 64, 48), np.float32))
        cin, geo = preprocess(frame, order[encoding], cfg.preprocess, (64, 48))
        assert np.abs(gin - cin).max() <= 1.0 + 1e-4
        mask = ids_from_output(logits[0], OutputKind.LOGITS, geo, cfg.postprocess, 19)
        assert (res.mask == mask).mean() > 0.999
        summ = compute_summary(res.mask.copy(), cfg.classes, cfg.summary)
        assert list(res.class_counts[:19]) == summ.class_pixel_counts
        assert list(res.roi_counts[:19]) == summ.roi_class_pixel_counts
    finally:
        pipe.release()
