"""segformer-ros-export on a tiny random SegFormer: fixed and dynamic exports load and run."""

import numpy as np
import pytest

from segformer_ros.backends import OutputKind
from segformer_ros.backends.onnxruntime_backend import OnnxRuntimeBackend
from segformer_ros.tools import export


def test_opset_below_17_is_refused(tmp_path, capsys):
    assert export.main(['ckpt', '-o', str(tmp_path / 'x.onnx'), '--opset', '13']) == 2
    assert '--opset must be >= 17' in capsys.readouterr().err


@pytest.fixture(scope='module')
def tiny_checkpoint(tmp_path_factory):
    torch = pytest.importorskip('torch')
    transformers = pytest.importorskip('transformers')
    torch.manual_seed(0)
    config = transformers.SegformerConfig(
        num_encoder_blocks=4, depths=[1, 1, 1, 1], hidden_sizes=[8, 16, 24, 32],
        num_attention_heads=[1, 1, 2, 2], decoder_hidden_size=32, num_labels=19)
    model = transformers.SegformerForSemanticSegmentation(config).eval()
    path = tmp_path_factory.mktemp('ckpt') / 'tiny_segformer'
    model.save_pretrained(str(path))
    return path


def test_fixed_size_export(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / 'fixed.onnx'
    rc = export.main([str(tiny_checkpoint), '-o', str(out), '--height', '64', '--width', '96',
                      '--check'])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert 'LayerNormalization nodes' in text and 'check (96x64)' in text and ': ok' in text
    summary = export.graph_summary(out)
    assert summary['opset'] >= 17 and summary['layer_norm_nodes'] > 0
    assert list(summary['outputs']) == ['logits'] and list(summary['inputs']) == ['input']
    with OnnxRuntimeBackend(str(out)) as backend:
        info = backend.model_info
        assert info.input_shape == (1, 3, 64, 96)
        assert info.output_kind is OutputKind.LOGITS and info.num_classes == 19
        assert info.output_shape == (1, 19, 16, 24)
        assert backend.infer(np.zeros((1, 3, 64, 96), np.float32)).shape == (1, 19, 16, 24)


def test_dynamic_export_runs_at_two_sizes(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / 'dynamic.onnx'
    rc = export.main([str(tiny_checkpoint), '-o', str(out), '--dynamic', '--height', '64',
                      '--width', '64', '--check'])
    assert rc == 0, capsys.readouterr()
    with OnnxRuntimeBackend(str(out)) as backend:
        info = backend.model_info
        assert info.input_shape == (None, 3, None, None)
        assert info.output_shape == (None, 19, None, None)
        assert info.output_kind is OutputKind.LOGITS and info.num_classes == 19
        rng = np.random.default_rng(0)
        for n, h, w in ((1, 64, 64), (2, 96, 160)):
            x = rng.standard_normal((n, 3, h, w)).astype(np.float32)
            out_logits = backend.infer(x)
            assert out_logits.shape == (n, 19, h // 4, w // 4)
            assert np.isfinite(out_logits).all()


def test_dynamic_batch_export_keeps_height_and_width(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / 'dynamic_batch.onnx'
    rc = export.main([str(tiny_checkpoint), '-o', str(out), '--dynamic-batch', '--height', '64',
                      '--width', '96', '--check'])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert 'check (96x64; batch 1, 2)' in text and ': ok' in text
    with OnnxRuntimeBackend(str(out)) as backend:
        info = backend.model_info
        assert info.input_shape == (None, 3, 64, 96)
        # The exporter leaves the logits' H/W symbolic here; the runs below pin them.
        assert info.output_shape[:2] == (None, 19)
        for n in (1, 3):
            assert backend.infer(np.zeros((n, 3, 64, 96), np.float32)).shape == (n, 19, 16, 24)
        with pytest.raises(Exception):  # the height and width stay fixed
            backend.infer(np.zeros((1, 3, 96, 96), np.float32))


def test_dynamic_and_dynamic_batch_exclude_each_other(tmp_path, capsys):
    with pytest.raises(SystemExit):
        export.main(['ckpt', '-o', str(tmp_path / 'x.onnx'), '--dynamic', '--dynamic-batch'])
    assert 'not allowed with argument' in capsys.readouterr().err


def test_export_matches_torch(tiny_checkpoint, tmp_path):
    torch = pytest.importorskip('torch')
    model = export.load_model(str(tiny_checkpoint))
    out = tmp_path / 'm.onnx'
    export.export_onnx(model, out, 64, 64, dynamic=True)
    diff = export.check_export(model, out, [(64, 64), (32, 96)])
    assert diff < 1e-4
    assert torch.__version__  # torch was really used for the reference


def test_bad_checkpoint_directory(tmp_path, capsys):
    pytest.importorskip('transformers')
    empty = tmp_path / 'empty_ckpt'
    empty.mkdir()
    assert export.main([str(empty), '-o', str(tmp_path / 'x.onnx')]) == 2
    assert 'cannot load SegFormer checkpoint' in capsys.readouterr().err
