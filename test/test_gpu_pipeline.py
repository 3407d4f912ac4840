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


def test_frame_ring_assigns_slots_and_checks_tickets():
    from segformer_ros.cuda.frame_ring import FrameRing
    from segformer_ros.errors import BackendStateError, ConfigError
    ring = FrameRing(2)
    a, b = ring.acquire(1), ring.acquire(3)
    assert (a.slot, b.slot, b.count, ring.in_flight) == (0, 1, 3, 2)
    with pytest.raises(BackendStateError, match='at most 2 submission.*collect'):
        ring.acquire(1)
    assert ring.oldest() == a
    ring.release(a)
    c = ring.acquire(1)                       # slot 0 again, a newer submission
    assert (c.slot, c.seq) == (0, 2) and ring.oldest() == b
    with pytest.raises(BackendStateError, match='already collected'):
        ring.release(a)                       # a's slot now belongs to c
    ring.release(b)
    ring.release(c)
    with pytest.raises(BackendStateError, match='call submit'):
        ring.oldest()
    with pytest.raises(ConfigError, match='depth >= 1'):
        FrameRing(0)


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
    from segformer_ros.cuda.device_inference import DeviceInference, DeviceIOSpec
    from segformer_ros.cuda.gpu_pipeline import GpuPipeline
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

        def infer_device(self, inp, out, stream, frames=0):
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
        # Bit for bit: the kernel reproduces cv2's fixed-point INTER_LINEAR and numpy's
        # separately rounded multiply and add.
        assert np.array_equal(gin.view(np.uint32), cin.view(np.uint32))
        mask = ids_from_output(logits[0], OutputKind.LOGITS, geo, cfg.postprocess, 19)
        assert (res.mask == mask).mean() > 0.999
        summ = compute_summary(res.mask.copy(), cfg.classes, cfg.summary)
        assert list(res.class_counts[:19]) == summ.class_pixel_counts
        assert list(res.roi_counts[:19]) == summ.roi_class_pixel_counts
    finally:
        pipe.release()


def _fixed_engine(batch, rng):
    from segformer_ros.backends.base import OutputKind
    from segformer_ros.cuda import runtime as rt
    from segformer_ros.cuda.device_inference import DeviceInference, DeviceIOSpec

    logits = rng.standard_normal((batch, 19, 16, 12)).astype(np.float32)

    class Fixed(DeviceInference):
        def device_io_spec(self):
            return DeviceIOSpec('in', (batch, 3, 64, 48), 'float32', 'out', logits.shape,
                                'float32', OutputKind.LOGITS)

        def infer_device(self, inp, out, stream, frames=0):
            rt.copy_to_device(logits, out, stream)
    return Fixed(), logits


@gpu
@needs_cuda
def test_two_in_flight_and_batches_match_cpu_path():
    from segformer_ros.backends.base import OutputKind
    from segformer_ros.cuda import runtime as rt
    from segformer_ros.cuda.gpu_pipeline import GpuPipeline
    from segformer_ros.postprocessing import ids_from_output
    from segformer_ros.preprocessing import preprocess

    rng = np.random.default_rng(3)
    engine, logits = _fixed_engine(3, rng)
    cfg = PipelineConfig(preprocess=PreprocessConfig('letterbox', 'rgb', pad_value=114.0),
                         postprocess=PostprocessConfig('fast', 'input', 0.5))
    pipe = GpuPipeline(cfg, engine, depth=2)
    try:
        batches = [[(_frame(rng, 61 + 2 * i, 97 - i), 'bgr8'), (_frame(rng, 40, 30), 'bgr8')]
                   for i in range(4)]
        prev = pipe.submit_batch(batches[0])
        for i in range(1, 5):                 # graphs are captured from each slot's 2nd use
            cur = pipe.submit_batch(batches[i % 4]) if i < 4 else None
            results = pipe.collect_batch(prev)
            frames = batches[i - 1]
            gin = rt.copy_to_host(pipe.input_device_ptr(), np.empty((3, 3, 64, 48), np.float32))
            for k, ((frame, _), res) in enumerate(zip(frames, results)):
                cin, geo = preprocess(frame, 'bgr', cfg.preprocess, (64, 48))
                assert np.array_equal(gin[k].view(np.uint32), cin[0].view(np.uint32))
                mask = ids_from_output(logits[k], OutputKind.LOGITS, geo, cfg.postprocess, 19)
                assert np.array_equal(res.mask, mask)
            prev = cur
        assert pipe.in_flight == 0
    finally:
        pipe.release()


@gpu
@needs_cuda
def test_in_place_mapped_path_forced_on_a_discrete_gpu_matches():
    """Jetson's path (kernels read and write the mapped host buffers, no copies), forced here.

    Mapped pinned host memory is reachable from a discrete GPU too, so the integrated
    (in-place) code path runs on the H200: its masks, overlays and counts must equal the
    discrete path's (device buffers plus one copy each way).
    """
    from segformer_ros.cuda.gpu_pipeline import GpuPipeline

    rng = np.random.default_rng(7)
    engine, _ = _fixed_engine(1, rng)
    cfg = PipelineConfig(preprocess=PreprocessConfig('letterbox', 'rgb', pad_value=114.0),
                         postprocess=PostprocessConfig('fast', 'input', 0.5))
    frames = [_frame(rng, 121, 203) for _ in range(3)]
    discrete = GpuPipeline(cfg, engine)
    in_place = GpuPipeline(cfg, engine)
    in_place.integrated = True      # before the first frame: buffers are laid out per size
    try:
        assert not discrete.integrated
        for _ in range(2):           # the 2nd round replays captured graphs
            for frame in frames:
                want = discrete.process(frame, 'bgr8')
                want = (want.mask.copy(), want.overlay.copy(), want.class_counts.copy())
                got = in_place.process(frame, 'bgr8')
                assert np.array_equal(got.mask, want[0])
                assert np.array_equal(got.overlay, want[1])
                assert np.array_equal(got.class_counts, want[2])
        slot = in_place.slots[0]
        assert all(im.frame_dev == im.mapped.device_ptr for im in slot.images)
    finally:
        discrete.release()
        in_place.release()


@gpu
@needs_cuda
def test_gpu_confidence_matches_cpu_definition():
    """Confidence on the GPU path: 255 x max softmax, the CPU path's definition (±1 level)."""
    from segformer_ros.gpu_segmentation import gpu_confidence
    from segformer_ros.cuda.gpu_pipeline import GpuPipeline
    from segformer_ros.postprocessing import confidence_from_logits
    from segformer_ros.preprocessing import preprocess

    rng = np.random.default_rng(11)
    engine, logits = _fixed_engine(1, rng)
    cfg = PipelineConfig(preprocess=PreprocessConfig('stretch', 'rgb'),
                         postprocess=PostprocessConfig('fast', 'input', 0.5))
    pipe = GpuPipeline(cfg, engine)
    try:
        frame = _frame(rng, 90, 140)
        result = pipe.process(frame, 'bgr8')
        got = gpu_confidence(pipe, [result.geometry], cfg)[0]
        _, geo = preprocess(frame, 'bgr', cfg.preprocess, (64, 48))
        want = confidence_from_logits(logits[0], geo, cfg.postprocess)
        assert got.shape == want.shape == frame.shape[:2] and got.dtype == np.uint8
        assert int(np.abs(got.astype(int) - want.astype(int)).max()) <= 1
    finally:
        pipe.release()


@gpu
@needs_cuda
@pytest.mark.parametrize('num_classes', [19, 200])
@pytest.mark.parametrize('dtype', ['uint8', 'int8', 'int32', 'int64'])
def test_id_map_outputs_of_every_type_match_cpu_path_bit_exact(dtype, num_classes):
    """Id-map engines with uint8/int8/int32/int64 outputs: GPU mask == CPU path, bit for bit.

    The ids include out-of-range and (signed types) negative values: the CPU path's
    ids_to_uint8 rules (255 for both, whatever num_classes) must hold on the GPU too
    (issue 23, defect 1: uint8/int8 outputs went to the int32 kernel).
    """
    from segformer_ros.backends.base import OutputKind
    from segformer_ros.config import ClassConfig
    from segformer_ros.cuda import runtime as rt
    from segformer_ros.cuda.device_inference import DeviceInference, DeviceIOSpec
    from segformer_ros.cuda.gpu_pipeline import GpuPipeline
    from segformer_ros.postprocessing import ids_from_output
    from segformer_ros.preprocessing import preprocess

    rng = np.random.default_rng(5)
    info = np.iinfo(np.dtype(dtype))
    lo, hi = max(int(info.min), -300), min(int(info.max), 300)
    ids = rng.integers(lo, hi + 1, (1, 16, 12)).astype(dtype)
    ids[0, :8] = rng.integers(0, min(num_classes, hi + 1), (8, 12))   # half valid
    classes = ClassConfig(names=tuple(f'c{i}' for i in range(num_classes)),
                          colors=tuple((i % 256, (7 * i) % 256, (13 * i) % 256)
                                       for i in range(num_classes)), drivable_ids=(0,))

    class Ids(DeviceInference):
        def device_io_spec(self):
            return DeviceIOSpec('in', (1, 3, 64, 48), 'float32', 'out', ids.shape, dtype,
                                OutputKind.CLASS_IDS)

        def infer_device(self, inp, out, stream, frames=0):
            rt.copy_to_device(ids, out, stream)

    cfg = PipelineConfig(preprocess=PreprocessConfig('letterbox', 'rgb', pad_value=114.0),
                         postprocess=PostprocessConfig('fast', 'input', 0.5), classes=classes)
    pipe = GpuPipeline(cfg, Ids())
    try:
        for _ in range(3):                     # later frames replay the captured graphs
            frame = _frame(rng, 61, 97)
            res = pipe.process(frame, 'bgr8')
            _, geo = preprocess(frame, 'bgr', cfg.preprocess, (64, 48))
            want = ids_from_output(ids[0], OutputKind.CLASS_IDS, geo, cfg.postprocess,
                                   num_classes)
            assert np.array_equal(res.mask, want)
            assert np.array_equal(res.class_counts, np.bincount(want.ravel(), minlength=256))
    finally:
        pipe.release()
