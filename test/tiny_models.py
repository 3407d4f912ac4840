"""Small ONNX models built in the tests (fast on a CPU, known behaviour)."""

from pathlib import Path
from typing import Tuple

import numpy as np


def logits_model(path: Path, classes: int = 19, input_hw: Tuple[int, int] = (64, 64),
                 stride: int = 4, seed: int = 0, dynamic: bool = False, batch: int = 1,
                 argmax: bool = False, half_input: bool = False,
                 ids_dtype: str = 'int64') -> Path:
    """Build a SegFormer-shaped logits model: 1x1 conv to ``classes`` channels, avg-pool.

    Output (N, classes, H/stride, W/stride) float32, like SegFormer's 1/4-resolution logits;
    colours decide the class, so real frames give varied masks. ``batch``: a fixed batch
    size; ``argmax``: output an int64 class-id map (N, H/stride, W/stride) instead;
    ``half_input``: a float16 input (cast to float inside), i.e. an fp16-typed network;
    ``ids_dtype``: the id map's type with ``argmax`` ('int64', 'int32', 'uint8' or 'int8':
    TensorRT 10/11 allow UINT8/INT8 network outputs), cast after the ArgMax.
    """
    import onnx
    from onnx import TensorProto, helper

    rng = np.random.default_rng(seed)
    weight = rng.normal(0, 0.05, (classes, 3, 1, 1)).astype(np.float32)
    bias = rng.normal(0, 0.5, (classes,)).astype(np.float32)
    h, w = input_hw
    in_shape = ['N', 3, 'H', 'W'] if dynamic else [batch, 3, h, w]
    out_shape = ['N', classes, 'h', 'w'] if dynamic else [batch, classes, h // stride, w // stride]
    first = 'input'
    nodes = []
    if half_input:
        nodes.append(helper.make_node('Cast', ['input'], ['input_f32'], to=TensorProto.FLOAT))
        first = 'input_f32'
    nodes += [helper.make_node('Conv', [first, 'W', 'B'], ['conv']),
              helper.make_node('AveragePool', ['conv'], ['pooled' if argmax else 'logits'],
                               kernel_shape=[stride, stride], strides=[stride, stride])]
    out_name, out_type = 'logits', TensorProto.FLOAT
    if argmax:
        types = {'int64': TensorProto.INT64, 'int32': TensorProto.INT32,
                 'uint8': TensorProto.UINT8, 'int8': TensorProto.INT8}
        out_name, out_type = 'argmax', types[ids_dtype]
        if ids_dtype == 'int64':
            nodes.append(helper.make_node('ArgMax', ['pooled'], ['argmax'], axis=1, keepdims=0))
        else:
            nodes += [helper.make_node('ArgMax', ['pooled'], ['argmax64'], axis=1, keepdims=0),
                      helper.make_node('Cast', ['argmax64'], ['argmax'], to=out_type)]
        out_shape = out_shape[:1] + out_shape[2:]
    graph = helper.make_graph(
        nodes, 'tiny_logits',
        [helper.make_tensor_value_info('input', TensorProto.FLOAT16 if half_input
                                       else TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info(out_name, out_type, out_shape)],
        initializer=[helper.make_tensor('W', TensorProto.FLOAT, weight.shape, weight.ravel()),
                     helper.make_tensor('B', TensorProto.FLOAT, bias.shape, bias)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def constant_ids_model(path: Path, ids: np.ndarray, dtype: str = 'int64') -> Path:
    """Build a model whose output is the (H, W) class-id map ``ids`` whatever the input.

    Input (1, 3, H, W) float32, output (1, H, W) ``dtype`` (int64, int32, uint8 or int8;
    argmax-inside-the-graph kind): the input is reduced, zeroed and added to the constant
    map (in int64, then cast), so ONNX Runtime really runs it; a test then knows the exact
    mask the node publishes.
    """
    import onnx
    from onnx import TensorProto, helper

    h, w = ids.shape
    out_type = {'int64': TensorProto.INT64, 'int32': TensorProto.INT32,
                'uint8': TensorProto.UINT8, 'int8': TensorProto.INT8}[dtype]
    nodes = [helper.make_node('ReduceMean', ['input'], ['mean'], axes=[1], keepdims=0),
             helper.make_node('Mul', ['mean', 'zero'], ['zeros']),
             helper.make_node('Cast', ['zeros'], ['zeros_int'], to=TensorProto.INT64)]
    if dtype == 'int64':
        nodes.append(helper.make_node('Add', ['zeros_int', 'ids'], ['class_ids']))
    else:
        nodes += [helper.make_node('Add', ['zeros_int', 'ids'], ['sum64']),
                  helper.make_node('Cast', ['sum64'], ['class_ids'], to=out_type)]
    graph = helper.make_graph(
        nodes,
        'constant_ids',
        [helper.make_tensor_value_info('input', TensorProto.FLOAT, [1, 3, h, w])],
        [helper.make_tensor_value_info('class_ids', out_type, [1, h, w])],
        initializer=[helper.make_tensor('zero', TensorProto.FLOAT, [], [0.0]),
                     helper.make_tensor('ids', TensorProto.INT64, [1, h, w],
                                        ids.astype(np.int64).ravel())])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path
