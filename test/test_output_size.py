"""Masks and confidence at a requested size: output_resolution WxH (a depth camera's)."""

import numpy as np
import pytest

from segformer_ros.backends.base import OutputKind
from segformer_ros.config import PipelineConfig, PostprocessConfig
from segformer_ros.errors import ConfigError
from segformer_ros.geometry import compute_geometry
from segformer_ros.output_size import (output_resolution_problem, parse_output_resolution,
                                       published_geometry, size_text)
from segformer_ros.parameters import check_value, pipeline_config_from_params
from segformer_ros.postprocessing import (argmax_logits, confidence_from_logits,
                                          ids_from_output, nearest_indices)
from tiny_models import logits_model


@pytest.mark.parametrize('text, expected', [
    ('input', 'input'), ('model', 'model'), ('640x480', (640, 480)), (' 320X240 ', (320, 240)),
    ('1x1', (1, 1)), ('8192x8192', (8192, 8192))])
def test_parse_accepts(text, expected):
    assert parse_output_resolution(text) == expected
    assert output_resolution_problem(text) is None


@pytest.mark.parametrize('text', ['', 'camera', '640', '640x', '0x480', '640x0', '9000x10',
                                  '-1x5', '640x480x3', '64.0x48'])
def test_parse_rejects_with_reason(text):
    with pytest.raises(ConfigError, match='output_resolution'):
        parse_output_resolution(text)
    assert 'output_resolution' in check_value('output_resolution', text)
    with pytest.raises(ConfigError, match='output_resolution'):
        pipeline_config_from_params({'output_resolution': text})
    with pytest.raises(ConfigError):
        PostprocessConfig(output_resolution=text)


def test_named_sizes_equal_their_explicit_spelling():
    """'input' == 'FWxFH' and 'model' == 'CWxCH': one sampling rule at every size."""
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((19, 16, 32)).astype(np.float32)
    for policy in ('stretch', 'letterbox'):
        geo = compute_geometry(300, 500, 64, 128, policy)
        for named, explicit in (('input', size_text(500, 300)),
                                ('model', size_text(geo.content_width, geo.content_height))):
            for mode in ('fast', 'exact'):
                a = ids_from_output(logits, OutputKind.LOGITS, geo,
                                    PostprocessConfig(mode, named), 19)
                b = ids_from_output(logits, OutputKind.LOGITS, geo,
                                    PostprocessConfig(mode, explicit), 19)
                np.testing.assert_array_equal(a, b)
            ca = confidence_from_logits(logits, geo, PostprocessConfig('fast', named))
            cb = confidence_from_logits(logits, geo, PostprocessConfig('fast', explicit))
            np.testing.assert_array_equal(ca, cb)


def test_explicit_size_nearest_half_pixel_rule():
    """Stretch to 320x240 from a 16:9 frame: index = floor((x + 0.5) * map_w / W), per axis."""
    geo = compute_geometry(540, 960, 512, 1024)
    ids = np.random.default_rng(0).integers(0, 19, (256, 512)).astype(np.uint8)
    mask = ids_from_output(ids, OutputKind.CLASS_IDS, geo, PostprocessConfig('fast', '320x240'),
                           19)
    assert mask.shape == (240, 320)
    rows = np.floor((np.arange(240) + 0.5) * 256 / 240).astype(int)
    cols = np.floor((np.arange(320) + 0.5) * 512 / 320).astype(int)
    np.testing.assert_array_equal(mask, ids[rows][:, cols])


def test_letterbox_explicit_size_covers_the_content_only():
    """The published field of view is the camera frame's: letterbox padding never shows."""
    geo = compute_geometry(480, 640, 64, 64, 'letterbox')          # 4:3 into a square
    ids = np.full((64, 64), 7, np.uint8)
    ids[:geo.content_top] = 3                                       # padding rows
    ids[geo.content_top + geo.content_height:] = 3
    mask = ids_from_output(ids, OutputKind.CLASS_IDS, geo, PostprocessConfig('fast', '100x50'),
                           19)
    assert mask.shape == (50, 100) and (mask == 7).all()


def test_confidence_comes_from_the_cell_that_decided_the_class():
    """At any size, fast mask and confidence sample the same logit cell per pixel."""
    rng = np.random.default_rng(5)
    logits = (rng.standard_normal((20, 32, 64)) * 4).astype(np.float32)
    geo = compute_geometry(720, 1280, 128, 256, 'letterbox')
    cfg = PostprocessConfig('fast', '424x240')
    target = published_geometry(geo, cfg.output_resolution)
    rows, cols = nearest_indices(target, 32, 64)
    mask = ids_from_output(logits, OutputKind.LOGITS, geo, cfg, 19)
    conf = confidence_from_logits(logits, geo, cfg)
    assert mask.shape == conf.shape == (240, 424)
    np.testing.assert_array_equal(mask, argmax_logits(logits, 19)[rows][:, cols])
    small = confidence_from_logits(logits, geo, PostprocessConfig('fast', size_text(
        geo.content_width, geo.content_height)))
    full_rows, full_cols = nearest_indices(published_geometry(geo, 'model'), 32, 64)
    # The cell each published pixel reads is the same one the 'model'-size map reads there.
    p = np.exp(logits - logits.max(0))
    expected = np.rint(255 / p.sum(0)).astype(np.uint8)
    np.testing.assert_array_equal(conf, expected[rows][:, cols])
    np.testing.assert_array_equal(small, expected[full_rows][:, full_cols])


def test_pipeline_follows_a_new_output_size(tmp_path, street_frames_bgr):
    from segformer_ros.backends.onnxruntime_backend import OnnxRuntimeBackend
    from segformer_ros.pipeline import SegmentationPipeline

    backend = OnnxRuntimeBackend(str(logits_model(tmp_path / 'tiny.onnx')))
    backend.configure()
    try:
        pipeline = SegmentationPipeline(backend, PipelineConfig())
        frame = street_frames_bgr[0]
        assert pipeline.process(frame, 'bgr').mask.shape == frame.shape[:2]
        pipeline.set_output_resolution('320x240')
        result = pipeline.process(frame, 'bgr', want_confidence=True)
        assert result.mask.shape == result.confidence.shape == (240, 320)
        assert result.overlay.shape == (240, 320, 3)
        assert result.summary.width == 320 and result.summary.height == 240
        with pytest.raises(ConfigError, match='output_resolution'):
            pipeline.set_output_resolution('320 by 240')
        assert pipeline.config.postprocess.output_resolution == '320x240'
    finally:
        backend.release()
