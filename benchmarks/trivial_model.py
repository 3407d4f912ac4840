"""A class-id ONNX model that costs (almost) nothing: the node's own work shows (issue 22).

``bench_ros --model trivial`` writes it into its output folder. A 1x1 convolution to 19
channels (Cityscapes' classes, the presets' class names), a 4x4 average pool and an ArgMax
cast to uint8, on a fixed 64x64 float32 input: the frame is still resized to the model
input and the 16x16 id map still resized back to the frame, as with a real model (the
pipeline's pre- and postprocessing), but inference takes well under a millisecond on one
core. The node's CPU per mask over the standalone pipeline's CPU per frame then measures
what the node adds (take, conversion, publish, threads, bookkeeping), not the model.
"""

from pathlib import Path

import numpy as np

TRIVIAL = 'trivial'
CLASSES = 19
INPUT_HW = (64, 64)
STRIDE = 4


def write_trivial_model(path: Path, seed: int = 0) -> Path:
    """Write the trivial class-id model to ``path``; return ``path``."""
    import onnx
    from onnx import TensorProto, helper

    rng = np.random.default_rng(seed)
    weight = rng.normal(0, 0.05, (CLASSES, 3, 1, 1)).astype(np.float32)
    bias = rng.normal(0, 0.5, (CLASSES,)).astype(np.float32)
    h, w = INPUT_HW
    nodes = [helper.make_node('Conv', ['input', 'W', 'B'], ['conv']),
             helper.make_node('AveragePool', ['conv'], ['pooled'],
                              kernel_shape=[STRIDE, STRIDE], strides=[STRIDE, STRIDE]),
             helper.make_node('ArgMax', ['pooled'], ['ids64'], axis=1, keepdims=0),
             helper.make_node('Cast', ['ids64'], ['class_ids'], to=TensorProto.UINT8)]
    graph = helper.make_graph(
        nodes, 'trivial_class_ids',
        [helper.make_tensor_value_info('input', TensorProto.FLOAT, [1, 3, h, w])],
        [helper.make_tensor_value_info('class_ids', TensorProto.UINT8,
                                       [1, h // STRIDE, w // STRIDE])],
        initializer=[helper.make_tensor('W', TensorProto.FLOAT, weight.shape, weight.ravel()),
                     helper.make_tensor('B', TensorProto.FLOAT, bias.shape, bias)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    model.ir_version = 8
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path
