"""The configure warm-up and the GPU pipeline's inference for a CPU session (issue 9).

The warm-up pushes one frame through the whole pipeline; the GPU pipeline runs an ONNX
Runtime session on the CPU as host inference between its kernels.

The GPU pipeline itself needs CUDA (test_gpu_segmentation.py runs it on the GPU machine);
here the parts that decide and check run with the real CPU onnxruntime.
"""

import numpy as np
import pytest

from segformer_ros.backends.onnxruntime_backend import OnnxRuntimeBackend
from segformer_ros.config import PipelineConfig
from segformer_ros.errors import BackendError
from segformer_ros.pipeline import SegmentationPipeline
from segformer_ros.warmup import synthetic_frame, warm_up_pipeline

from tiny_models import logits_model


@pytest.fixture
def backend(tmp_path):
    b = OnnxRuntimeBackend(str(logits_model(tmp_path / 'tiny.onnx', input_hw=(64, 64),
                                            dynamic=True)), input_hw=(64, 64))
    b.configure()
    yield b
    b.release()


def test_warm_up_runs_one_frame_per_camera_through_every_stage(backend) -> None:
    pipeline = SegmentationPipeline(backend, PipelineConfig(input_size=(64, 64)))
    results = warm_up_pipeline(pipeline, cameras=3)
    assert len(results) == 3
    for r in results:
        assert r.mask.dtype == np.uint8 and r.mask.shape == (64, 64)
        assert r.overlay is not None and r.summary is not None
        assert r.confidence is not None            # logits model: confidence too
    assert len(warm_up_pipeline(pipeline, cameras=3, max_batch_size=2)) == 2


def test_warm_up_failure_fails_with_the_reason(backend) -> None:
    pipeline = SegmentationPipeline(backend, PipelineConfig(input_size=(64, 64)))
    backend.release()      # the model is gone: inference fails as a broken session would
    with pytest.raises(BackendError, match='configure warm-up frame failed in '
                                           'SegmentationPipeline.*onnxruntime_provider'):
        warm_up_pipeline(pipeline)


def test_synthetic_frame_has_structure() -> None:
    frame = synthetic_frame(40, 70)
    assert frame.shape == (40, 70, 3) and frame.dtype == np.uint8
    assert all(len(np.unique(frame[..., c])) > 1 for c in range(3))


def test_gpu_pipeline_runs_a_cpu_session_as_host_inference(backend) -> None:
    """pipeline: gpu with onnxruntime_provider: cpu: host inference, not device binding."""
    pytest.importorskip('segformer_ros.cuda.gpu_pipeline')
    from segformer_ros.cuda.device_inference import HostInference
    from segformer_ros.gpu_segmentation import device_engine, session_on_cuda

    assert not session_on_cuda(backend.session)
    engine = device_engine(backend, PipelineConfig(input_size=(64, 64)), max_batch=2)
    assert isinstance(engine, HostInference)
    spec = engine.device_io_spec()
    assert spec.input_shape == (2, 3, 64, 64) and spec.batch == 2
    batch = np.random.default_rng(0).random(spec.input_shape, dtype=np.float32)
    np.testing.assert_allclose(engine.run(batch), backend.infer(batch), rtol=1e-5, atol=1e-5)
