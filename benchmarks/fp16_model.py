"""Convert an fp32 ONNX model to fp16 (inputs and logits too), for the fp16 GPU benchmark.

ONNX Runtime has no fp16 build step like TensorRT's; this is the usual offline conversion
(onnxconverter-common's ``convert_float_to_float16``) with fp16 inputs and outputs, so the
GPU pipeline's kernels write fp16 into the engine and read fp16 logits, as with an fp16
engine. Needs ``pip install onnx onnxconverter-common`` (not a dependency of the package).

    python -m benchmarks.fp16_model MODEL.onnx OUT_fp16.onnx
"""

import argparse
import sys
from typing import List, Optional


def main(argv: Optional[List[str]] = None) -> int:
    """Convert ``model`` to fp16 and save it; print its I/O."""
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('model')
    p.add_argument('output')
    args = p.parse_args(argv)
    try:
        import onnx
        from onnxconverter_common import float16
    except ImportError as exc:
        raise SystemExit(f'fp16_model: expected onnx and onnxconverter-common installed, got '
                         f'{exc}; pip install onnx onnxconverter-common') from exc
    model = float16.convert_float_to_float16(onnx.load(args.model), keep_io_types=False)
    onnx.save(model, args.output)
    io = [(v.name, v.type.tensor_type.elem_type) for v in
          list(model.graph.input) + list(model.graph.output)]
    print(f'fp16_model: wrote {args.output}; inputs/outputs (name, ONNX elem type 10 = '
          f'float16): {io}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
