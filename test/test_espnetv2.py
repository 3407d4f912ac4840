"""A trained logits model (ESPNetv2 Cityscapes, 20 channels, 19 = void) through every logits path.

Confidence, upsample_mode fast and exact, letterbox, a dynamic batch, the void channel, the
preset, and the GPU kernels against the CPU path (the last on a CUDA machine only).
"""

from dataclasses import replace
from typing import Any, List, Tuple

import numpy as np
import pytest

from segformer_ros.backends.base import OutputKind
from segformer_ros.config import PipelineConfig
from segformer_ros.errors import ConfigError
from segformer_ros.geometry import compute_geometry
from segformer_ros.parameters import pipeline_config_from_params
from segformer_ros.postprocessing import argmax_logits, confidence_from_logits, ids_from_output
from segformer_ros.presets import load_params_file, preset_path
from shared_assets import espnetv2_model

cv2 = pytest.importorskip('cv2')
pytest.importorskip('onnxruntime')


def _config(**changes: Any) -> PipelineConfig:
    params = load_params_file(preset_path('espnetv2_cityscapes'))
    params.update(changes)
    return pipeline_config_from_params(params)


class _Recording:
    """The real backend, recording the batch sizes it ran and optionally editing outputs."""

    def __init__(self, backend: Any, edit: Any = None) -> None:
        self._backend, self._edit = backend, edit
        self.batches: List[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        self.batches.append(batch.shape[0])
        out = self._backend.infer(batch)
        return out if self._edit is None else self._edit(np.array(out))


@pytest.fixture(scope='module')
def backend():
    from segformer_ros.backends.onnxruntime_backend import OnnxRuntimeBackend

    b = OnnxRuntimeBackend(str(espnetv2_model()), num_threads=2)
    b.configure()
    yield b
    b.release()


@pytest.fixture(scope='module')
def frames(street_frames_bgr) -> List[np.ndarray]:
    return [street_frames_bgr[0], street_frames_bgr[3]]


def _pipeline(backend: Any, **changes: Any) -> Tuple[Any, _Recording]:
    from segformer_ros.pipeline import SegmentationPipeline

    edit = changes.pop('edit', None)
    recording = _Recording(backend, edit)
    return SegmentationPipeline(recording, _config(**changes)), recording


def test_preset_describes_the_model(backend):
    info = backend.model_info
    assert info.output_kind is OutputKind.LOGITS and info.num_classes == 20
    assert info.max_batch is None                                 # dynamic batch
    cfg = _config()
    assert cfg.classes.num_classes == 19 and cfg.classes.void_channels == 1
    assert cfg.preprocess.normalization.mean == (0.0, 0.0, 0.0)   # normalised in the graph
    # Without void_channels the 20th channel cannot be explained: configure fails.
    from segformer_ros.pipeline import SegmentationPipeline
    with pytest.raises(ConfigError, match='20 logits channels but 19 class names'):
        SegmentationPipeline(backend, _config(void_channels=0))


def test_trained_masks_and_confidence(backend, frames):
    pipeline, _ = _pipeline(backend)
    result = pipeline.process(frames[0], 'bgr', want_confidence=True)
    h, w = frames[0].shape[:2]
    assert result.mask.shape == result.confidence.shape == (h, w)
    assert set(np.unique(result.mask)) <= set(range(19))
    # A trained model on a road scene: the lower middle of the frame is road, the
    # top is not, and it is confident on most pixels (a random model is not).
    assert (result.mask[int(h * 0.85):, int(w * 0.4):int(w * 0.6)] == 0).mean() > 0.8
    assert (result.mask[: h // 4] == 0).mean() < 0.05
    assert np.median(result.confidence) > 200
    assert result.confidence.min() >= np.floor(255 / 20)


def test_fast_and_exact_agree_off_the_boundaries(backend, frames):
    fast, _ = _pipeline(backend)
    exact, _ = _pipeline(backend, upsample_mode='exact')
    a = fast.process(frames[1], 'bgr').mask
    b = exact.process(frames[1], 'bgr').mask
    agreement = (a == b).mean()
    assert agreement > 0.97, agreement
    # Where they differ, the fast mask has a class boundary within two logit cells
    # (4 frame pixels per cell horizontally at 960 / 512 ... 2 cells ~ 4 px here).
    edges = cv2.dilate((cv2.Canny(a, 0, 0) > 0).astype(np.uint8), np.ones((9, 9), np.uint8))
    assert (edges[a != b] > 0).mean() > 0.95


def test_letterbox_keeps_the_field_of_view(backend, frames):
    """960x540 into 1024x512 with letterbox: content 910x512 at x=57, padding cut away."""
    stretch, _ = _pipeline(backend)
    letter, _ = _pipeline(backend, resize_policy='letterbox')
    letter_exact, _ = _pipeline(backend, resize_policy='letterbox', upsample_mode='exact')
    geo = compute_geometry(540, 960, 512, 1024, 'letterbox')
    assert geo.content_left > 0
    a = stretch.process(frames[0], 'bgr').mask
    b = letter.process(frames[0], 'bgr').mask
    c = letter_exact.process(frames[0], 'bgr').mask    # non-integral content start
    assert a.shape == b.shape == c.shape == frames[0].shape[:2]
    assert (a == b).mean() > 0.9 and (b == c).mean() > 0.97


def test_dynamic_batch_equals_single_frames(backend, frames):
    pipeline, recording = _pipeline(backend)
    batch = pipeline.process_batch([(f, 'bgr') for f in frames], want_confidence=True)
    assert recording.batches == [2]                     # one inference for both cameras
    for frame, together in zip(frames, batch):
        alone = pipeline.process(frame, 'bgr', want_confidence=True)
        np.testing.assert_array_equal(together.mask, alone.mask)
        np.testing.assert_array_equal(together.confidence, alone.confidence)
    assert recording.batches == [2, 1, 1]


def _void_wins_on_the_left(out: np.ndarray) -> np.ndarray:
    out[:, 19, :, : out.shape[3] // 4] = 1e3
    return out


@pytest.mark.parametrize('mode', ['fast', 'exact'])
def test_void_channel_is_unlabeled_never_a_class(backend, frames, mode):
    """Where channel 19 wins the mask says 255: no class, no summary count, no drivable."""
    pipeline, _ = _pipeline(backend, upsample_mode=mode, edit=_void_wins_on_the_left)
    result = pipeline.process(frames[0], 'bgr', want_confidence=True)
    w = frames[0].shape[1]
    assert (result.mask[:, : w // 4 - 2] == 255).all()
    assert (result.mask[:, w // 4 + 2:] != 255).all()
    assert result.summary.unlabeled_pixel_count >= result.mask.shape[0] * (w // 4 - 2)
    assert sum(result.summary.class_pixel_counts) + result.summary.unlabeled_pixel_count == \
        result.mask.size
    assert result.overlay is not None


def test_void_in_the_postprocessing_math():
    logits = np.zeros((20, 2, 2), np.float32)
    logits[19, 0, 0] = 5.0         # void wins
    logits[3, 0, 1] = 5.0          # wall
    logits[19, 1, 0] = logits[0, 1, 0] = 5.0   # tie: the lower id (road) wins, as argmax
    geo = compute_geometry(2, 2, 2, 2)
    cfg = _config().postprocess
    np.testing.assert_array_equal(argmax_logits(logits, 19), [[255, 3], [0, 0]])
    for mode in ('fast', 'exact'):
        mask = ids_from_output(logits, OutputKind.LOGITS, geo, replace(cfg, upsample_mode=mode),
                               19)
        np.testing.assert_array_equal(mask, [[255, 3], [0, 0]])
    assert confidence_from_logits(logits, geo, cfg)[0, 0] > 128


@pytest.mark.parametrize('policy', ['stretch', 'letterbox'])
def test_gpu_preprocess_emulation_on_espnetv2_input(frames, policy):
    """The kernel's resize tables + integer arithmetic == cv2 at this model's input sizes."""
    from segformer_ros.cuda.resize_tables import emulate_resize, resize_tables

    for frame in (frames[0], cv2.resize(frames[1], (2048, 1024))):   # clip and Cityscapes size
        h, w = frame.shape[:2]
        geo = compute_geometry(h, w, 512, 1024, policy)
        size = (geo.content_width, geo.content_height)
        xtab, ytab = resize_tables(w, h, *size)
        np.testing.assert_array_equal(emulate_resize(frame, xtab, ytab),
                                      cv2.resize(frame, size, interpolation=cv2.INTER_LINEAR))


@pytest.mark.gpu
def test_gpu_kernels_match_the_cpu_path_on_espnetv2_logits(backend, frames):
    """The CUDA epilogues on real ESPNetv2 logits (void region included) vs the CPU path."""
    from segformer_ros.cuda.runtime import cuda_available

    has_cuda, why = cuda_available()
    if not has_cuda:
        pytest.skip(f'no CUDA: {why}')
    from segformer_ros.cuda import runtime as rt
    from segformer_ros.cuda.device_inference import DeviceInference, DeviceIOSpec
    from segformer_ros.cuda.gpu_pipeline import GpuPipeline
    from segformer_ros.preprocessing import preprocess

    frame = frames[0]
    x, geo = preprocess(frame, 'bgr', _config().preprocess, (512, 1024))
    logits = _void_wins_on_the_left(np.array(backend.infer(x)))

    class Fixed(DeviceInference):
        def device_io_spec(self):
            return DeviceIOSpec('input', (1, 3, 512, 1024), 'float32', 'logits', logits.shape,
                                'float32', OutputKind.LOGITS)

        def infer_device(self, inp, out, stream, frames=0):
            rt.copy_to_device(logits, out)

    for mode in ('fast', 'exact'):
        for size in ('input', '320x240'):
            cfg = _config(upsample_mode=mode, output_resolution=size)
            pipe = GpuPipeline(cfg, Fixed(), use_graphs=False)
            try:
                res = pipe.process(np.ascontiguousarray(frame), 'bgr8')
                mask = ids_from_output(logits[0], OutputKind.LOGITS, geo, cfg.postprocess, 19)
                assert res.mask.shape == mask.shape
                assert (res.mask == mask).mean() > 0.999, (mode, size)
                assert (res.mask[:, : mask.shape[1] // 4 - 2] == 255).all()
            finally:
                pipe.release()
