"""Choosing the CPU or the CUDA pipeline, and the CUDA pipeline behind the node's interface."""

import numpy as np
import pytest

from segformer_ros.backends.onnxruntime_backend import OnnxRuntimeBackend
from segformer_ros.config import PipelineConfig
from segformer_ros.errors import BackendError, ConfigError
from segformer_ros.gpu_segmentation import gpu_encoding, select_pipeline, wants_gpu
from segformer_ros.pipeline import SegmentationPipeline
from segformer_ros.summary import compute_summary

from tiny_models import logits_model


@pytest.fixture
def cpu_backend(tmp_path):
    backend = OnnxRuntimeBackend(str(logits_model(tmp_path / 'tiny.onnx')))
    backend.configure()
    yield backend
    backend.release()


def _cuda_usable() -> bool:
    try:
        from segformer_ros.cuda import runtime
        return runtime.cuda_available()[0]
    except Exception:  # noqa: BLE001 - any failure means no usable GPU here
        return False


def _tiny_model_on_cpu_and_cuda(tmp_path):
    """Return config, CPU and CUDA backends of a tiny dynamic-batch model, CPU reference."""
    import onnxruntime as ort

    if 'CUDAExecutionProvider' not in ort.get_available_providers():
        pytest.skip('needs onnxruntime-gpu')
    model = str(logits_model(tmp_path / 'tiny.onnx', input_hw=(128, 128), dynamic=True))
    config = PipelineConfig(input_size=(128, 128))
    cpu = OnnxRuntimeBackend(model, input_hw=(128, 128))
    cpu.configure()
    gpu = OnnxRuntimeBackend(model, provider='cuda', input_hw=(128, 128))
    gpu.configure()
    return config, cpu, gpu, SegmentationPipeline(cpu, config)


def test_gpu_encoding_names() -> None:
    assert gpu_encoding(np.zeros((2, 2, 3), np.uint8), 'bgr') == 'bgr8'
    assert gpu_encoding(np.zeros((2, 2, 4), np.uint8), 'rgb') == 'rgba8'
    assert gpu_encoding(np.zeros((2, 2), np.uint8), 'gray') == 'mono8'
    with pytest.raises(ConfigError, match='8-bit'):
        gpu_encoding(np.zeros((2, 2, 3), np.uint16), 'rgb')


def test_wants_gpu() -> None:
    assert wants_gpu('tensorrt', 'cpu')
    assert wants_gpu('onnxruntime', 'cuda')
    assert not wants_gpu('onnxruntime', 'cpu')


def test_cpu_and_auto_on_cpu_backend(cpu_backend) -> None:
    logs = []
    for choice in ('cpu', 'auto'):
        pipeline = select_pipeline(choice, cpu_backend, PipelineConfig(), 'cpu', logs.append)
        assert isinstance(pipeline, SegmentationPipeline)
    assert logs == []
    with pytest.raises(ConfigError, match='pipeline must be one of'):
        select_pipeline('fpga', cpu_backend, PipelineConfig(), 'cpu', logs.append)


@pytest.mark.skipif(_cuda_usable(), reason='a GPU is present: the fallback does not happen')
def test_gpu_unavailable_falls_back_or_fails_with_reason(cpu_backend) -> None:
    logs = []
    pipeline = select_pipeline('auto', cpu_backend, PipelineConfig(), 'cuda', logs.append)
    assert isinstance(pipeline, SegmentationPipeline)
    assert len(logs) == 1 and 'using the CPU pipeline because' in logs[0]
    with pytest.raises(BackendError, match='set pipeline: cpu'):
        select_pipeline('gpu', cpu_backend, PipelineConfig(), 'cuda', logs.append)


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda_usable(), reason='needs a CUDA GPU and cuda-python')
def test_gpu_pipeline_matches_cpu_behind_node_interface(tmp_path, street_frames_bgr) -> None:
    config, cpu, gpu, reference = _tiny_model_on_cpu_and_cuda(tmp_path)
    pipeline = select_pipeline('gpu', gpu, config, 'cuda', print, max_batch=2)
    frames = [(f, 'bgr') for f in street_frames_bgr[:2]]
    agreement = []
    for _ in range(3):                       # the 2nd and later frames replay CUDA graphs
        got = pipeline.process_batch(frames, overlay_alpha=0.3)
        want = reference.process_batch(frames, overlay_alpha=0.3)
        for (frame, _), g, w in zip(frames, got, want):
            assert g.mask.shape == w.mask.shape == frame.shape[:2]
            agreement.append(float((g.mask == w.mask).mean()))
            assert g.overlay.shape == frame.shape
            assert g.summary.class_pixel_counts == \
                np.bincount(g.mask.ravel(), minlength=256)[:19].tolist()
            assert g.summary.free_space_rows == compute_summary(
                g.mask, config.classes, config.summary).free_space_rows
    print('GPU vs CPU mask agreement per frame:', agreement)
    assert min(agreement) > 0.98
    # ORT's session runs on the pipeline's inference stream and returns once queued.
    assert gpu.inference_stream is not None
    assert pipeline._gpu.stream is gpu.inference_stream and pipeline._engine.same_stream
    pipeline.release()


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda_usable(), reason='needs a CUDA GPU and cuda-python')
def test_node_selects_gpu_pipeline_for_cuda_backend(deeplab_model, street_frames_bgr) -> None:
    import onnxruntime as ort

    from segformer_ros.gpu_segmentation import GpuSegmentationPipeline
    from segformer_ros.parameters import pipeline_config_from_params
    from segformer_ros.presets import load_params_file, preset_path

    if 'CUDAExecutionProvider' not in ort.get_available_providers():
        pytest.skip('needs onnxruntime-gpu')
    params = load_params_file(preset_path('deeplab_mobilenet_cityscapes'))
    config = pipeline_config_from_params(params)
    backend = OnnxRuntimeBackend(str(deeplab_model), provider='cuda')
    backend.configure()
    logs = []
    pipeline = select_pipeline('auto', backend, config, 'cuda', logs.append)
    assert isinstance(pipeline, GpuSegmentationPipeline), logs
    result = pipeline.process(street_frames_bgr[1], 'bgr')
    mask = result.mask
    assert mask.shape == (540, 960)
    assert (mask[450:, 300:660] == 0).mean() > 0.5     # road ahead
    assert result.times['inference'] > 0
    pipeline.release()
    backend.release()


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda_usable(), reason='needs a CUDA GPU and cuda-python')
def test_gpu_pipeline_runs_a_cpu_session(tmp_path, street_frames_bgr) -> None:
    """pipeline: gpu + onnxruntime_provider: cpu used to fail every frame (issue 9)."""
    from segformer_ros.cuda.device_inference import HostInference
    from segformer_ros.warmup import warm_up_pipeline

    model = str(logits_model(tmp_path / 'tiny.onnx', input_hw=(128, 128), dynamic=True))
    config = PipelineConfig(input_size=(128, 128))
    cpu = OnnxRuntimeBackend(model, provider='cpu', input_hw=(128, 128))
    cpu.configure()
    pipeline = select_pipeline('gpu', cpu, config, 'cpu', print)
    assert isinstance(pipeline._engine, HostInference)
    assert not pipeline.inference_on_device   # the node takes frames only when it is free
    warm_up_pipeline(pipeline)                 # what configure runs: no device-binding error
    reference = SegmentationPipeline(cpu, config)
    for frame in street_frames_bgr[:2]:
        got = pipeline.process(frame, 'bgr')
        want = reference.process(frame, 'bgr')
        assert got.mask.shape == want.mask.shape
        assert float((got.mask == want.mask).mean()) > 0.98
    pipeline.release()
    cpu.release()


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda_usable(), reason='needs a CUDA GPU and cuda-python')
@pytest.mark.parametrize('max_batch', [2, 1])
def test_gpu_submissions_in_flight_collected_on_another_thread(tmp_path, street_frames_bgr,
                                                               max_batch) -> None:
    """The node's frame path: two submissions in flight, collected by another thread."""
    import threading

    import onnxruntime as ort

    if 'CUDAExecutionProvider' not in ort.get_available_providers():
        pytest.skip('needs onnxruntime-gpu')
    model = str(logits_model(tmp_path / 'tiny.onnx', input_hw=(128, 128), dynamic=True))
    config = PipelineConfig(input_size=(128, 128))
    gpu = OnnxRuntimeBackend(model, provider='cuda', input_hw=(128, 128))
    gpu.configure()
    # Two cameras per submission; max_batch 1 runs them as two inferences (two ring slots).
    pipeline = select_pipeline('gpu', gpu, config, 'cuda', print, max_batch=max_batch,
                               frames_per_submission=2)
    assert pipeline.inference_on_device
    a = [(f, 'bgr') for f in street_frames_bgr[:2]]
    b = [(np.ascontiguousarray(f[::-1]), 'bgr') for f in street_frames_bgr[1:3]]
    c = [(np.ascontiguousarray(f[:, ::-1]), 'bgr') for f in street_frames_bgr[:2]]
    want = {k: pipeline.process_batch(v) for k, v in (('a', a), ('b', b), ('c', c))}
    pending_a = pipeline.submit_batch(a)
    pending_b = pipeline.submit_batch(b)
    third = []
    submitter = threading.Thread(target=lambda: third.append(pipeline.submit_batch(c)))
    submitter.start()
    submitter.join(0.5)
    assert submitter.is_alive(), 'a third submission did not wait for a free slot'
    got = {}
    collector = threading.Thread(target=lambda: got.update(a=pending_a.collect(),
                                                           b=pending_b.collect()))
    collector.start()
    collector.join(30)
    submitter.join(30)
    assert not submitter.is_alive() and len(third) == 1
    got['c'] = third[0].collect()
    for key in 'abc':
        for g, w in zip(got[key], want[key]):
            np.testing.assert_array_equal(g.mask, w.mask)
            np.testing.assert_array_equal(g.overlay, w.overlay)
            assert g.summary == w.summary
    # A rebuild (new output size) waits for the submission still out, then applies.
    pending = pipeline.submit_batch(a)
    resized = threading.Thread(target=pipeline.set_output_resolution, args=('model',))
    resized.start()
    resized.join(0.5)
    assert resized.is_alive(), 'the rebuild did not wait for the submission in flight'
    np.testing.assert_array_equal(pending.collect()[0].mask, want['a'][0].mask)
    resized.join(30)
    assert pipeline.process_batch(a)[0].mask.shape == (128, 128)
    pipeline.release()
    gpu.release()


def test_ort_cuda_inference_runs_partial_batches_only_for_dynamic_batch_models(tmp_path):
    """Which models run only the frames a submission filled (session metadata, ORT CPU here)."""
    from segformer_ros.cuda.device_inference import OrtCudaInference

    def inference(model, batch):
        backend = OnnxRuntimeBackend(str(model), input_hw=(64, 64))
        backend.configure()
        try:
            return OrtCudaInference(backend.session, (64, 64), batch=batch)
        finally:
            backend.release()

    dynamic = logits_model(tmp_path / 'dynamic.onnx', dynamic=True)
    assert inference(dynamic, 4).runs_partial_batches
    assert inference(dynamic, 4).device_io_spec().input_shape == (4, 3, 64, 64)
    assert not inference(dynamic, 1).runs_partial_batches       # nothing partial in 1
    fixed = logits_model(tmp_path / 'fixed4.onnx', batch=4)
    assert not inference(fixed, 4).runs_partial_batches         # a fixed shape runs whole


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda_usable(), reason='needs a CUDA GPU and cuda-python')
def test_partial_batches_of_a_dynamic_model_match_and_reuse_buffers(tmp_path,
                                                                    street_frames_bgr) -> None:
    """Submissions of 1-4 frames run as their own shapes and keep their slot's buffers.

    4 cameras out of step fill 1-4 of a batch: each count must equal the CPU pipeline, and
    a slot must keep its buffers and graphs when the count changes back.
    """
    from segformer_ros.warmup import warm_up_pipeline

    config, cpu, gpu, reference = _tiny_model_on_cpu_and_cuda(tmp_path)
    pipeline = select_pipeline('gpu', gpu, config, 'cuda', print, max_batch=4, in_flight=1)
    assert pipeline.partial_batch_sizes == (1, 2, 3)
    warm_up_pipeline(pipeline, cameras=4)
    frames = [(street_frames_bgr[i % len(street_frames_bgr)], 'bgr') for i in range(4)]
    frames[3] = (np.ascontiguousarray(frames[3][0][::-1]), 'bgr')
    slot = pipeline._gpu.slots[0]
    images_after_first_round = None
    for round_ in range(3):                 # round 2+ replays the graphs of each count
        for count in (1, 3, 4, 2):
            got = pipeline.process_batch(frames[:count])
            want = reference.process_batch(frames[:count])
            assert len(got) == count
            for g, w in zip(got, want):
                np.testing.assert_array_equal(g.mask, w.mask)
                assert g.summary.class_pixel_counts == w.summary.class_pixel_counts
            if round_ >= 1:
                assert slot.graphed, pipeline._gpu.graph_error
        if round_ == 0:
            images_after_first_round = dict(slot._images)
    # One buffer set per frame position, kept across counts (not rebuilt per change).
    # Each batch size ran in a session of its own (one input shape per session).
    assert sorted(gpu._batch_sessions) == [1, 2, 3, 4]
    # (The warm-up's synthetic frames are rgb8: buffers of their own.)
    assert len([key for key in slot._images if key[3] == 'bgr8']) == 4
    assert all(slot._images[k] is v for k, v in images_after_first_round.items())
    pipeline.release()
    gpu.release()
    cpu.release()


def test_session_for_batch_fixes_the_batch_of_a_dynamic_model(tmp_path) -> None:
    """One session per batch size, its batch fixed; same logits as the dynamic session."""
    dynamic = OnnxRuntimeBackend(str(logits_model(tmp_path / 'dynamic.onnx', dynamic=True)),
                                 input_hw=(64, 64))
    dynamic.configure()
    two = dynamic.session_for_batch(2)
    assert two is dynamic.session_for_batch(2) and two is not dynamic.session
    assert two.get_inputs()[0].shape[0] == 2
    assert dynamic.session.get_inputs()[0].shape[0] == 'N'
    assert dynamic.inference_stream is None          # CPU provider: no CUDA stream
    x = np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32)
    np.testing.assert_allclose(two.run(None, {'input': x})[0],
                               dynamic.session.run(None, {'input': x})[0], rtol=1e-5, atol=1e-5)
    with pytest.raises(Exception):         # its batch is fixed now
        two.run(None, {'input': x[:1]})
    dynamic.release()
    assert dynamic._batch_sessions == {}
    fixed = OnnxRuntimeBackend(str(logits_model(tmp_path / 'fixed.onnx')))
    fixed.configure()
    assert fixed.session_for_batch(1) is fixed.session
    fixed.release()
    # On the CPU provider the sessions keep their own (host) allocators.
    assert _config_entry(two, 'session.use_env_allocators') is None


def _config_entry(session, key):
    """Return a session option's value, None when unset (ORT raises for a missing key)."""
    try:
        return session.get_session_options().get_session_config_entry(key)
    except RuntimeError:
        return None


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda_usable(), reason='needs a CUDA GPU and cuda-python')
def test_per_size_sessions_share_one_cuda_arena(tmp_path) -> None:
    """Batch 1..4 sessions of one model draw on one CUDA arena (ort_shared_arena).

    Each with its own arena, sizes 1-3 after 4 would add about 1.5x what size 4 took
    (their own high-water marks); sharing, only their per-session handles.
    """
    import onnxruntime as ort

    if 'CUDAExecutionProvider' not in ort.get_available_providers():
        pytest.skip('needs onnxruntime-gpu')
    from segformer_ros.cuda.runtime import memory_in_use_mb as used_mb

    # 64 channels at full 1024x1024 resolution: ~256 MB of activations per frame.
    model = logits_model(tmp_path / 'wide.onnx', classes=64, input_hw=(1024, 1024),
                         dynamic=True)
    backend = OnnxRuntimeBackend(str(model), provider='cuda', input_hw=(1024, 1024))
    backend.configure()
    try:
        before = used_mb()
        backend.infer(np.zeros((4, 3, 1024, 1024), np.float32))
        largest = used_mb() - before
        for n in (1, 2, 3):
            out = backend.infer(np.zeros((n, 3, 1024, 1024), np.float32))
            assert out.shape == (n, 64, 256, 256)
        rest = used_mb() - before - largest
        for n in (1, 2, 3, 4):
            session = backend.session_for_batch(n)
            assert session.get_inputs()[0].shape[0] == n
            assert _config_entry(session, 'session.use_env_allocators') == '1'
        print(f'batch 4 session: {largest:.0f} MB; sessions 1-3 after it: {rest:.0f} MB')
        assert largest > 900, largest            # the activations did land on the GPU
        assert rest < 0.75 * largest, (largest, rest)
    finally:
        backend.release()


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda_usable(), reason='needs a CUDA GPU and cuda-python')
@pytest.mark.parametrize('dtype', ['uint8', 'int8', 'int32'])
def test_ort_device_path_id_outputs_match_cpu_bit_exact(tmp_path, street_frames_bgr,
                                                        dtype) -> None:
    """ONNX Runtime's CUDA device path with uint8/int8/int32 id maps == the CPU path (issue 23).

    The model outputs a fixed id map with out-of-range and (signed) negative ids, so the
    mask is known exactly whatever the float arithmetic does.
    """
    import onnxruntime as ort

    from tiny_models import constant_ids_model

    if 'CUDAExecutionProvider' not in ort.get_available_providers():
        pytest.skip('needs onnxruntime-gpu')
    rng = np.random.default_rng(9)
    lo = -5 if dtype != 'uint8' else 0
    ids = rng.integers(lo, 40, (64, 64))
    model = str(constant_ids_model(tmp_path / 'ids.onnx', ids, dtype))
    config = PipelineConfig(input_size=(64, 64))
    cpu = OnnxRuntimeBackend(model, provider='cpu')
    cpu.configure()
    gpu = OnnxRuntimeBackend(model, provider='cuda')
    gpu.configure()
    pipeline = select_pipeline('gpu', gpu, config, 'cuda', print)
    reference = SegmentationPipeline(cpu, config)
    try:
        assert pipeline._engine.device_io_spec().output_dtype == dtype
        for _ in range(2):                    # the 2nd frame replays CUDA graphs
            for frame in street_frames_bgr[:2]:
                got = pipeline.process(frame, 'bgr')
                want = reference.process(frame, 'bgr')
                assert np.array_equal(got.mask, want.mask)
                assert got.summary.class_pixel_counts == want.summary.class_pixel_counts
    finally:
        pipeline.release()
        gpu.release()
        cpu.release()
