"""Bad models and bad configuration fail configure with an actionable message.

And configure succeeds once the parameter is fixed, without restarting the process.

Tiny ONNX models built with onnx.helper stand in for broken exports (unusable output rank
or dtype, uint8 input, NaN/Inf logits); the good model is the shared DeepLab. The node
runs in this process (logs captured from stderr); parameter checks go through the real
set_parameters service and, for the declare-time checks, a node process started with a
params file.
"""

import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')
onnx = pytest.importorskip('onnx')
pytest.importorskip('segformer_ros.msg', reason='generated messages missing: run make setup')

from lifecycle_msgs.msg import Transition  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402

from ros_helpers import (InProcessNode, NodeClient, deeplab_overrides,  # noqa: E402
                         error_lines, image_msg, mask_array, ros_context, start_preset_node,
                         wait_until)
from segformer_ros.labels import CITYSCAPES_CLASSES  # noqa: E402

pytestmark = pytest.mark.ros
SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE


# ------------------------------------------------------------ tiny ONNX models
def _save(path: Path, nodes: List[Any], output: Any, inputs: List[Any] = None) -> Path:
    from onnx import TensorProto, helper

    inputs = inputs or [helper.make_tensor_value_info('input', TensorProto.FLOAT, [1, 3, 8, 8])]
    graph = helper.make_graph(nodes, 'tiny', inputs, [output])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def const_output_model(path: Path, value: np.ndarray, name: str = 'logits') -> Path:
    """Build an ONNX model with input 'input' float [1, 3, 8, 8] whose output is a constant."""
    from onnx import helper, numpy_helper

    node = helper.make_node('Constant', [], [name], value=numpy_helper.from_array(value))
    out = helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(value.dtype),
                                        list(value.shape))
    return _save(path, [node], out)


def uint8_input_model(path: Path) -> Path:
    """Build a model whose image input is uint8 (an NHWC 'front end' export)."""
    from onnx import TensorProto, helper, numpy_helper

    node = helper.make_node('Constant', [], ['logits'], value=numpy_helper.from_array(
        np.zeros((1, 19, 8, 8), np.float32)))
    out = helper.make_tensor_value_info('logits', TensorProto.FLOAT, [1, 19, 8, 8])
    inp = helper.make_tensor_value_info('input', TensorProto.UINT8, [1, 3, 8, 8])
    return _save(path, [node], out, [inp])


# The logits of the NaN/Inf model, per 4x4 cell: values divided by zero where marked.
NAN, POS, NEG = 'nan', '+inf', '-inf'
_CELLS: List[List[Tuple[Any, Any, Any]]] = [
    [(NAN, NAN, NAN)] * 4,                                         # all NaN -> 255
    [(0.0, POS, 1.0), (NAN, 1.0, 5.0), (NEG, NEG, NEG), (NEG, NAN, -3.0)],
    [(3.0, 1.0, 2.0), (1.0, 3.0, 2.0), (1.0, 2.0, 3.0), (3.0, 2.0, 1.0)],
    [(POS, 0.0, POS), (NAN, NAN, 0.0), (1.0, NAN, NAN), (NEG, NEG, 7.0)],
]
# What the mask must be: NaN and -inf never win, +inf beats finite values, ties go to the
# lower id (np.argmax), and a cell with no finite/+inf logit at all is 255 (unlabeled).
EXPECTED_CELLS = np.array([[255, 255, 255, 255],
                           [1, 2, 255, 2],
                           [0, 1, 2, 0],
                           [0, 2, 0, 2]], np.uint8)


def nan_logits_model(path: Path) -> Path:
    """Logits (1, 3, 4, 4) = Div(L, Z) with Z = 0 where the table says NaN/+inf/-inf."""
    from onnx import TensorProto, helper, numpy_helper

    num = np.zeros((1, 3, 4, 4), np.float32)
    den = np.ones((1, 3, 4, 4), np.float32)
    for y, row in enumerate(_CELLS):
        for x, cell in enumerate(row):
            for c, v in enumerate(cell):
                if isinstance(v, str):
                    num[0, c, y, x] = {NAN: 0.0, POS: 1.0, NEG: -1.0}[v]
                    den[0, c, y, x] = 0.0
                else:
                    num[0, c, y, x] = v
    nodes = [helper.make_node('Constant', [], ['num'], value=numpy_helper.from_array(num)),
             helper.make_node('Constant', [], ['den'], value=numpy_helper.from_array(den)),
             helper.make_node('Div', ['num', 'den'], ['logits'])]
    out = helper.make_tensor_value_info('logits', TensorProto.FLOAT, [1, 3, 4, 4])
    return _save(path, nodes, out)


# ------------------------------------------------------------------- fixtures
@pytest.fixture
def node(rclpy_context, deeplab_model):
    running = InProcessNode(rclpy_context, deeplab_overrides(deeplab_model))
    yield running
    running.close()


def _set(node: InProcessNode, **values: Any) -> None:
    results = node.node.set_parameters([Parameter(k, value=v) for k, v in values.items()])
    assert all(r.successful for r in results), [r.reason for r in results]


# -------------------------------------------------------- configure failures
def _bad_cases(tmp: Path) -> List[Tuple[str, Dict[str, Any], Dict[str, Any], str]]:
    """(id, bad parameters, parameters that fix it, text the error must contain)."""
    garbage = tmp / 'garbage.onnx'
    garbage.write_bytes(b'this is not a protobuf\x00\xff' * 50)
    rank2 = const_output_model(tmp / 'rank2.onnx', np.zeros((1, 5), np.float32))
    rank5 = const_output_model(tmp / 'rank5.onnx', np.zeros((1, 2, 3, 4, 5), np.int64))
    bools = const_output_model(tmp / 'bool.onnx', np.zeros((1, 8, 8), bool))
    float_ids = const_output_model(tmp / 'float_ids.onnx', np.zeros((1, 8, 8), np.float32))
    u8 = uint8_input_model(tmp / 'uint8_input.onnx')
    nan3 = nan_logits_model(tmp / 'nan3.onnx')
    names20 = list(CITYSCAPES_CLASSES) + ['trailer']
    return [
        ('missing_model_file', {'model_path': str(tmp / 'nope' / 'model.onnx')}, {},
         'does not exist; set model_path to an ONNX file'),
        ('relative_model_path_missing', {'model_path': 'nope/model.onnx'}, {},
         "does not exist (a relative path resolves against the process's current directory"),
        ('model_path_is_a_directory', {'model_path': str(tmp)}, {}, 'is a directory'),
        ('not_an_onnx_file', {'model_path': str(garbage)}, {},
         'as an ONNX model'),
        ('output_float_rank2', {'model_path': str(rank2)}, {},
         'unusable model output: expected float logits (N, C, h, w)'),
        ('output_int64_rank5', {'model_path': str(rank5)}, {},
         'got shape (1, 2, 3, 4, 5) dtype int64'),
        ('output_bool_id_map', {'model_path': str(bools)}, {}, 'dtype bool'),
        ('output_float_id_map', {'model_path': str(float_ids)}, {},
         'got shape (1, 8, 8) dtype float32'),
        ('input_uint8', {'model_path': str(u8)}, {}, 'expected a float32 (or float16) input'),
        ('more_classes_than_colours', {'class_names': names20}, {},
         'expected a colour for each of the 20 classes, got 19; add entries to class_colors'),
        ('logit_channels_vs_class_names', {'model_path': str(nan3)}, {},
         "model outputs 3 logits channels but 19 class names are configured"),
        ('class_colors_not_triples', {'class_colors': [1, 2, 3, 4]}, {},
         'class_colors needs 3 values per class, got 4 values'),
        ('unknown_drivable_class', {'drivable_classes': ['runway']}, {}, 'runway'),
        ('input_width_without_height', {'input_width': 640}, {},
         'set both input_width and input_height'),
        ('mean_not_three_values', {'mean': [1.0, 2.0]}, {}, 'mean needs 3 values'),
        ('cuda_provider_without_gpu_build', {'onnxruntime_provider': 'cuda'}, {},
         'onnxruntime-gpu'),
        ('tensorrt_backend_unavailable', {'backend': 'tensorrt'}, {},
         'backend tensorrt is not available'),
        ('camera_lists_of_different_length', {'cameras': ['front', 'rear'],
                                              'camera_topics': ['/a']},
         {'camera_topics': ['/a', '/b']},
         'camera_topics needs one entry per camera'),
    ]


_CASE_IDS = [
    'missing_model_file', 'relative_model_path_missing', 'model_path_is_a_directory',
    'not_an_onnx_file',
    'output_float_rank2', 'output_int64_rank5', 'output_bool_id_map', 'output_float_id_map',
    'input_uint8', 'more_classes_than_colours', 'logit_channels_vs_class_names',
    'class_colors_not_triples', 'unknown_drivable_class', 'input_width_without_height',
    'mean_not_three_values', 'cuda_provider_without_gpu_build',
    'tensorrt_backend_unavailable', 'camera_lists_of_different_length']


@pytest.mark.parametrize('case_id', _CASE_IDS)
def test_bad_model_or_config_fails_configure_then_fix_works(node, tmp_path, capfd,
                                                            deeplab_model, case_id) -> None:
    cases = {c[0]: c for c in _bad_cases(tmp_path)}
    _, bad, fix, needle = cases[case_id]
    if case_id == 'tensorrt_backend_unavailable':
        from segformer_ros.backends.factory import tensorrt_status
        if tensorrt_status()[0]:
            pytest.skip('TensorRT is available here')
    if case_id == 'cuda_provider_without_gpu_build':
        import onnxruntime as ort
        if 'CUDAExecutionProvider' in ort.get_available_providers():
            pytest.skip('onnxruntime-gpu is installed here')
    good = {name: node.node.get_parameter(name).value for name in bad}
    good = {name: value for name, value in good.items() if value is not None}
    _set(node, **bad)
    capfd.readouterr()
    assert node.node.trigger_configure() == FAILURE
    assert node.state() == 'unconfigured'
    err = capfd.readouterr().err
    lines = [line for line in error_lines(err) if 'configure failed' in line]
    assert lines, f'no configure error logged:\n{err}'
    assert needle in lines[0], lines[0]
    assert 'unexpectedly' not in err and 'Traceback' not in err, err
    assert node.node._backend is None and node.node._pipeline is None
    # Fix the parameter (restore the good value) and configure again, same process.
    _set(node, **{**good, **fix})
    assert node.node.trigger_configure() == SUCCESS, capfd.readouterr().err
    assert node.state() == 'inactive'
    assert node.node.trigger_cleanup() == SUCCESS


# ---------------------------------------------------------------- NaN / Inf
@pytest.mark.parametrize('upsample_mode', ['fast', 'exact'])
def test_nan_and_inf_logits_give_a_well_defined_mask(rclpy_context, tmp_path,
                                                     upsample_mode) -> None:
    model = nan_logits_model(tmp_path / 'nan.onnx')
    overrides = deeplab_overrides(model, class_names=['a', 'b', 'c'],
                                  class_colors=[255, 0, 0, 0, 255, 0, 0, 0, 255],
                                  drivable_classes=['a'], upsample_mode=upsample_mode)
    running = InProcessNode(rclpy_context, overrides)
    try:
        assert running.node.trigger_configure() == SUCCESS
        assert running.node.trigger_activate() == SUCCESS
        client = running.client
        assert client.wait_for_camera_match()
        frame = np.full((8, 8, 3), 100, np.uint8)
        mask = client.send_until_mask(lambda: image_msg(frame, 'rgb8', 5 * 10**9), 5 * 10**9)
        assert mask is not None
        got = mask_array(mask)
        expected = np.kron(EXPECTED_CELLS, np.ones((2, 2), np.uint8))
        if upsample_mode == 'fast':
            np.testing.assert_array_equal(got, expected)
        else:
            # Bilinear mixing moves boundaries, but all-non-finite cells stay unlabeled and
            # every other pixel is a real class.
            np.testing.assert_array_equal(got[expected == 255], 255)
            assert set(np.unique(got[expected != 255])) <= {0, 1, 2}
        # The node keeps going: a second frame gives the same answer.
        again = client.send_until_mask(lambda: image_msg(frame, 'rgb8', 6 * 10**9), 6 * 10**9)
        assert again is not None
        np.testing.assert_array_equal(mask_array(again), got)
        assert running.node._stats.errors == 0
    finally:
        running.close()


# ------------------------------------------------------- parameter ranges
BAD_VALUES = [
    ('overlay_alpha', 1.5, 'overlay_alpha'), ('overlay_alpha', -0.1, 'overlay_alpha'),
    ('warmup_iterations', -1, 'warmup_iterations'), ('num_threads', 1000, 'num_threads'),
    ('max_input_pixels', 0, 'max_input_pixels'), ('diagnostics_period', 0.0, ''),
    ('workspace_mb', 8, 'workspace_mb'), ('free_space_bins', 0, 'free_space_bins'),
    ('batch_window_ms', 500.0, ''), ('backend', 'tensorflow', "['auto', 'tensorrt'"),
    ('resize_policy', 'crop', 'stretch'), ('precision', 'int4', 'fp16'),
    ('input_transport', 'udp', 'compressed'), ('upsample_mode', 'cubic', 'fast'),
    ('cameras', [1, 2], 'list of strings'), ('overlay_alpha', 'half', ''),
    # A NOT_SET value would undeclare the parameter: configure could then never succeed
    # again in this process, and no later set_parameters could bring it back.
    ('model_path', None, 'cannot be'), ('cameras', None, 'cannot be'),
]


def test_out_of_range_parameters_rejected_with_reason(node) -> None:
    client = node.client
    reasons = {}
    for name, value, needle in BAD_VALUES:
        before = node.node.get_parameter(name).value
        (result,) = client.set_parameters(**{name: value})
        assert not result.successful, f'{name}={value!r} was accepted'
        assert result.reason, f'{name}={value!r} rejected without a reason'
        assert needle in result.reason, (name, value, result.reason)
        reasons[name] = result.reason
        assert node.node.has_parameter(name)
        assert node.node.get_parameter(name).value == before
    # The way to clear a list parameter is an empty list.
    (result,) = client.set_parameters(cameras=[])
    assert result.successful, result.reason
    # Still configurable: nothing was undeclared or changed by the rejected values.
    assert node.node.trigger_configure() == SUCCESS
    assert node.node._channels[0].spec.input_topic == 'image'
    # Ranges are also advertised, so `ros2 param describe` shows them.
    desc = node.node.describe_parameter('overlay_alpha')
    assert (desc.floating_point_range[0].from_value,
            desc.floating_point_range[0].to_value) == (0.0, 1.0)
    (result,) = client.set_parameters(overlay_alpha=0.3)
    assert result.successful


def test_params_file_with_unknown_keys_and_bad_values(tmp_path, ros_domain,
                                                      deeplab_model) -> None:
    proc = start_preset_node(tmp_path, ros_domain, deeplab_model,
                             modle_path='/typo/model.onnx', input_widht=640,
                             overlay_alpha=7.0, free_space_bins=-3, backend='tensorflow')
    try:
        with ros_context(ros_domain) as context, NodeClient(context) as client:
            assert client.state() == 'unconfigured'
            log = proc.log()
            for needle in ("unknown parameter 'modle_path' (ignored); did you mean "
                           'model_path?', "unknown parameter 'input_widht' (ignored); did you "
                           'mean input_width',
                           'parameter overlay_alpha: override rejected',
                           'using the default 0.5',
                           'parameter free_space_bins: override rejected',
                           'parameter backend: override rejected',
                           "using the default 'auto'"):
                assert needle in log, f'{needle!r} not in the node log:\n{log}'
            # The typo'd key does not stop the node: it configures with the defaults,
            # and the preset's backend (onnxruntime) is replaced by the default (auto).
            assert client.transition(Transition.TRANSITION_CONFIGURE), proc.log()[-2000:]
            assert client.state() == 'inactive'
            assert 'Traceback' not in proc.log()
    finally:
        code = proc.stop()
    assert code == 0, proc.log()[-2000:]


def test_configure_failure_over_services_is_fixable(tmp_path, ros_domain,
                                                    deeplab_model) -> None:
    """What a lifecycle manager sees: change_state fails, set_parameters, then succeeds."""
    proc = start_preset_node(tmp_path, ros_domain, tmp_path / 'missing.onnx')
    try:
        with ros_context(ros_domain) as context, NodeClient(context) as client:
            assert client.state() == 'unconfigured'
            assert not client.transition(Transition.TRANSITION_CONFIGURE)
            assert client.state() == 'unconfigured'
            assert wait_until(lambda: 'missing.onnx' in proc.log(), 5.0)
            line = [x for x in error_lines(proc.log()) if 'configure failed' in x][0]
            assert 'does not exist; set model_path' in line
            (result,) = client.set_parameters(model_path=str(deeplab_model))
            assert result.successful
            start = time.monotonic()
            assert client.transition(Transition.TRANSITION_CONFIGURE)
            assert client.state() == 'inactive'
            assert time.monotonic() - start < 30.0
    finally:
        code = proc.stop()
    assert code == 0, proc.log()[-2000:]
