"""SegmentationPipeline end to end: real ONNX Runtime DeepLab on a real frame, batching."""

from typing import List, Optional

import numpy as np
import pytest

from segformer_ros.backends.base import Backend, ModelInfo, OutputKind
from segformer_ros.config import ClassConfig, PipelineConfig, PostprocessConfig, PreprocessConfig
from segformer_ros.errors import ConfigError
from segformer_ros.pipeline import STAGES, SegmentationPipeline

from shared_assets import BUNDLED_MODEL as DEEPLAB, BUNDLED_VIDEO as VIDEO  # noqa: E402


class BrightnessBackend(Backend):
    """A tiny real model in numpy: class 1 where the first input channel is > 127."""

    name = 'brightness'

    def __init__(self, batch: Optional[int], hw=(32, 48), logits: bool = False) -> None:
        super().__init__('brightness.model')
        self.batch, self.hw, self.logits = batch, hw, logits
        self.calls: List[int] = []
        self.inputs: List[int] = []

    def _configure_impl(self) -> ModelInfo:
        if self.logits:
            return ModelInfo('input', (self.batch, 3) + tuple(self.hw), 'float32', 'logits',
                             (self.batch, 2, None, None), OutputKind.LOGITS, 2)
        return ModelInfo('input', (self.batch, 3) + tuple(self.hw), 'float32', 'ids',
                         (self.batch, None, None), OutputKind.CLASS_IDS)

    def _infer_impl(self, batch: np.ndarray) -> np.ndarray:
        self.calls.append(batch.shape[0])
        self.inputs.append(batch.__array_interface__['data'][0])
        bright = batch[:, 0] > 127.5
        if self.logits:
            # Logits at half resolution.
            score = bright[:, ::2, ::2].astype(np.float32)
            return np.stack([np.full_like(score, 0.5), score], axis=1)
        return bright.astype(np.int64)

    def _release_impl(self) -> None:
        pass


def _frame(h=60, w=90, order='rgb'):
    frame = np.zeros((h, w, 3), np.uint8)
    frame[20:40, 30:60, 0 if order == 'rgb' else 2] = 255  # a red box
    return frame


@pytest.mark.parametrize('logits', [False, True])
@pytest.mark.parametrize('order', ['rgb', 'bgr'])
def test_pipeline_on_a_tiny_model(logits, order):
    backend = BrightnessBackend(1, logits=logits)
    backend.configure()
    classes = ClassConfig(names=('background', 'box'), colors=((0, 0, 0), (0, 255, 0)),
                          drivable_ids=(0,))
    pipe = SegmentationPipeline(backend, PipelineConfig(classes=classes))
    assert pipe.input_hw == (32, 48)
    result = pipe.process(_frame(order=order), order, overlay_alpha=1.0)
    mask = result.mask
    assert mask.shape == (60, 90) and set(np.unique(mask)) == {0, 1}
    rows, cols = np.where(mask == 1)
    tol = 3 if logits else 2
    assert abs(rows.min() - 20) <= tol and abs(rows.max() - 39) <= tol
    assert abs(cols.min() - 30) <= tol and abs(cols.max() - 59) <= tol
    assert result.overlay_channel_order == order
    np.testing.assert_array_equal(result.overlay[30, 45], (0, 255, 0))
    assert result.summary.class_pixel_counts == [int((mask == 0).sum()), int((mask == 1).sum())]
    assert set(result.times) == set(STAGES)
    assert all(t >= 0 for t in result.times.values())
    quiet = pipe.process(_frame(order=order), order, want_overlay=False, want_summary=False)
    assert quiet.overlay is None and quiet.summary is None
    np.testing.assert_array_equal(quiet.mask, mask)


def test_batching_uses_one_call_when_dynamic_and_reuses_the_buffer():
    backend = BrightnessBackend(None)
    backend.configure()
    pipe = SegmentationPipeline(backend, PipelineConfig())
    frames = [(_frame(), 'rgb'), (_frame(40, 40, 'bgr'), 'bgr'), (_frame(), 'rgb')]
    results = pipe.process_batch(frames)
    assert backend.calls == [3] and len(results) == 3
    pipe.process_batch(frames)
    assert backend.inputs[0] == backend.inputs[1]  # same preprocess buffer
    single = pipe.process(frames[1][0], 'bgr')
    np.testing.assert_array_equal(results[1].mask, single.mask)
    assert results[1].mask.shape == (40, 40)


def test_fixed_batch_runs_chunks_and_pads():
    backend = BrightnessBackend(2)
    backend.configure()
    pipe = SegmentationPipeline(backend, PipelineConfig())
    frames = [(_frame(), 'rgb')] * 3
    results = pipe.process_batch(frames)
    assert backend.calls == [2, 2] and len(results) == 3
    for r in results:
        np.testing.assert_array_equal(r.mask, results[0].mask)


def test_submit_then_collect_on_another_thread_equals_process_batch():
    """The node's split: inference of frame n+1 runs before frame n is postprocessed."""
    import threading

    from segformer_ros.errors import BackendStateError

    backend = BrightnessBackend(None, logits=True)
    backend.configure()
    pipe = SegmentationPipeline(backend, PipelineConfig(
        classes=ClassConfig(names=('background', 'box'), colors=((0, 0, 0), (0, 255, 0)),
                            drivable_ids=(0,))))
    first = [(_frame(), 'rgb'), (_frame(40, 40, 'bgr'), 'bgr')]
    second = [(_frame(order='bgr')[::-1].copy(), 'bgr')]
    expected = pipe.process_batch(first, want_confidence=True) + pipe.process_batch(second)
    calls_before = len(backend.calls)
    pending = [pipe.submit_batch(first, want_confidence=True), pipe.submit_batch(second)]
    # Both inferences ran (the preprocess buffer was reused in between) before either
    # batch was finished; the outputs held by the first were not overwritten.
    assert len(backend.calls) == calls_before + 2
    collected = []
    thread = threading.Thread(target=lambda: collected.extend(
        pending[0].collect() + pending[1].collect()))
    thread.start()
    thread.join(10)
    assert len(collected) == 3
    for got, want in zip(collected, expected):
        np.testing.assert_array_equal(got.mask, want.mask)
        np.testing.assert_array_equal(got.overlay, want.overlay)
        assert got.summary == want.summary
    np.testing.assert_array_equal(collected[0].confidence, expected[0].confidence)
    assert collected[2].confidence is None
    with pytest.raises(BackendStateError, match='second collect'):
        pending[0].collect()


def test_batch_limit_splits_inferences():
    dynamic = BrightnessBackend(None)
    dynamic.configure()
    frames = [(_frame(), 'rgb')] * 5
    results = SegmentationPipeline(dynamic, PipelineConfig()).submit_batch(
        frames, batch_limit=2).collect()
    assert dynamic.calls == [2, 2, 1] and len(results) == 5
    fixed = BrightnessBackend(4)
    fixed.configure()
    SegmentationPipeline(fixed, PipelineConfig()).submit_batch(frames, batch_limit=3).collect()
    assert fixed.calls == [4, 4]   # 3 + 2 frames, each padded to the model's fixed batch


def test_dynamic_size_needs_input_size():
    backend = BrightnessBackend(1, hw=(None, None))
    backend.configure()
    with pytest.raises(ConfigError, match='input_size'):
        SegmentationPipeline(backend, PipelineConfig())
    pipe = SegmentationPipeline(backend, PipelineConfig(input_size=(24, 40)))
    assert pipe.input_hw == (24, 40)
    assert pipe.process(_frame(), 'rgb').mask.shape == (60, 90)


def test_logit_channels_must_match_classes():
    backend = BrightnessBackend(1, logits=True)
    backend.configure()
    with pytest.raises(ConfigError, match='2 logits channels but 19 class names'):
        SegmentationPipeline(backend, PipelineConfig())


@pytest.fixture(scope='module')
def deeplab():
    pytest.importorskip('onnxruntime')
    from segformer_ros.backends.onnxruntime_backend import OnnxRuntimeBackend
    backend = OnnxRuntimeBackend(str(DEEPLAB), num_threads=2)
    backend.configure()
    yield backend
    backend.release()


@pytest.fixture(scope='module')
def road_frame():
    cv2 = pytest.importorskip('cv2')
    cap = cv2.VideoCapture(str(VIDEO))
    ok, bgr = cap.read()
    cap.release()
    assert ok, f'cannot decode the bundled video {VIDEO}'
    return bgr


def test_deeplab_matches_plain_reference(deeplab, road_frame):
    import cv2
    pipe = SegmentationPipeline(deeplab, PipelineConfig())
    result = pipe.process(road_frame, 'bgr')
    h, w = road_frame.shape[:2]
    assert result.mask.shape == (h, w)
    # Plain reference, as in the model card.
    rgb = cv2.cvtColor(road_frame, cv2.COLOR_BGR2RGB)
    x = cv2.resize(rgb, (513, 513), interpolation=cv2.INTER_LINEAR)
    x = np.ascontiguousarray(x.astype(np.float32).transpose(2, 0, 1)[None])
    ids = deeplab.session.run(None, {'input': x})[0][0].astype(np.uint8)
    ref = cv2.resize(ids, (w, h), interpolation=cv2.INTER_NEAREST)
    agreement = float((ref == result.mask).mean())
    # 0.991 with ORT's ENABLE_ALL, 0.990 with BASIC (what ORT < 1.24 runs: see
    # stable_optimization_level): quantized ids flip at class borders on 1-LSB resize
    # differences; a wrong preprocessing step costs tens of percent.
    assert agreement >= 0.985, agreement
    # Road (id 0) dominates the bottom centre of a dashcam frame.
    patch = result.mask[int(h * 0.8):, int(w * 0.35):int(w * 0.65)]
    assert (patch == 0).mean() > 0.8
    s = result.summary
    assert s.class_pixel_counts == list(np.bincount(result.mask.ravel(), minlength=19)[:19])
    assert s.roi_drivable_fraction > 0.8
    assert result.overlay.shape == (h, w, 3) and result.overlay_channel_order == 'bgr'


def test_deeplab_rgb_letterbox_and_model_resolution(deeplab, road_frame):
    import cv2
    rgb = cv2.cvtColor(road_frame, cv2.COLOR_BGR2RGB)
    base = SegmentationPipeline(deeplab, PipelineConfig()).process(road_frame, 'bgr').mask
    same = SegmentationPipeline(deeplab, PipelineConfig()).process(rgb, 'rgb').mask
    np.testing.assert_array_equal(base, same)
    cfg = PipelineConfig(preprocess=PreprocessConfig(resize_policy='letterbox'),
                         postprocess=PostprocessConfig(output_resolution='model'))
    result = SegmentationPipeline(deeplab, cfg).process(rgb, 'rgb')
    geo = result.geometry
    assert result.mask.shape == (geo.content_height, geo.content_width) == (289, 513)
    assert result.overlay.shape == (289, 513, 3)
    # The model sees a different (letterboxed, smaller) image, so masks differ in detail,
    # but the scene layout must be the same: road at the bottom centre, aligned with the frame.
    patch = result.mask[int(289 * 0.8):, int(513 * 0.35):int(513 * 0.65)]
    assert (patch == 0).mean() > 0.8
    small = cv2.resize(base, (513, 289), interpolation=cv2.INTER_NEAREST)
    assert (small == result.mask).mean() > 0.7


def test_bench_quick_smoke(tmp_path):
    import json
    from benchmarks import bench
    out = tmp_path / 'bench.json'
    docs = tmp_path / 'benchmarks.md'
    docs.write_text('# Benchmarks\n\n## GPU (other section)\n\nkeep me\n')
    # Default: results to --out only; the tracked docs are left alone.
    assert bench.main(['--quick', '--json', str(out), '--docs', str(docs),
                       '--out', str(tmp_path / 'out')]) == 0
    assert 'CPU pipeline' not in docs.read_text()
    assert (tmp_path / 'out' / 'bench.json').is_file()
    assert '## CPU pipeline (make bench)' in (tmp_path / 'out' / 'bench.md').read_text()
    # --write-docs: the docs section is replaced.
    assert bench.main(['--quick', '--json', str(out), '--docs', str(docs),
                       '--out', str(tmp_path / 'out'), '--write-docs']) == 0
    result = json.loads(out.read_text())
    assert result['stages']['conversion']['ours']['n'] == 3
    assert result['mask_agreement_ours_vs_naive_ids'] > 0.97
    assert result['exact_vs_fast']['agreement_exact_vs_full_res_reference'] > 0.999
    text = docs.read_text()
    assert 'keep me' in text and '## CPU pipeline (make bench)' in text
    bench.write_docs(docs, bench.markdown(result))  # replaces its own section only
    assert docs.read_text().count('## CPU pipeline') == 1 and 'keep me' in docs.read_text()
