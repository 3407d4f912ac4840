r"""segformer-ros-build-engine: build a TensorRT engine from ONNX ahead of time (trtexec-like).

Example (on the robot, once per TensorRT version / GPU)::

    segformer-ros-build-engine --onnx segformer.onnx --output segformer.engine --fp16 \\
        --workspace 1024 --timing-cache ~/.cache/segformer_ros/timing.cache \\
        --shapes input:1x3x512x1024

The engine gets a JSON sidecar (TensorRT version, GPU, precision, profile) so the node can
say why an engine does not fit instead of failing obscurely.
"""

import argparse
import sys
import time
from pathlib import Path
from typing import List, Optional, Tuple

from ..errors import SegformerRosError


def parse_shapes(text: str) -> Tuple[Tuple[str, Tuple[int, ...]], ...]:
    """Parse trtexec-style ``name:1x3x512x512[,name2:...]`` into ((name, dims), ...)."""
    out = []
    for part in filter(None, (p.strip() for p in text.split(','))):
        name, sep, dims = part.rpartition(':')
        if not sep or not name:
            raise ValueError(f"expected 'name:1x3xHxW', got {part!r}")
        try:
            shape = tuple(int(d) for d in dims.lower().split('x'))
        except ValueError:
            raise ValueError(f"expected integer dims like 1x3x512x512, got {dims!r}") from None
        if any(d <= 0 for d in shape):
            raise ValueError(f'dims must be positive, got {shape}')
        out.append((name, shape))
    return tuple(out)


def main(argv: Optional[List[str]] = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(prog='segformer-ros-build-engine', description=__doc__.split(
        '\n')[0])
    ap.add_argument('--onnx', required=True, help='ONNX model to build from')
    ap.add_argument('--output', required=True, help='engine file to write (.engine/.plan)')
    prec = ap.add_mutually_exclusive_group()
    prec.add_argument('--fp16', dest='precision', action='store_const', const='fp16')
    prec.add_argument('--fp32', dest='precision', action='store_const', const='fp32')
    prec.add_argument('--int8', dest='precision', action='store_const', const='int8',
                      help='only for explicitly quantized (Q/DQ) ONNX')
    ap.add_argument('--workspace', type=int, default=1024, help='workspace limit in MiB')
    ap.add_argument('--timing-cache', default='', help='timing cache file (read and updated)')
    ap.add_argument('--shapes', default='', help='input shapes, e.g. input:1x3x512x1024')
    args = ap.parse_args(argv)
    precision = args.precision or 'fp16'
    try:
        import tensorrt as trt
        from ..backends import trt_compat
        from ..backends.engine_cache import _atomic_write, make_key
        from ..backends.tensorrt_backend import build_serialized_engine
        from ..cuda import runtime as rt
        trt_compat.check_version(trt)
        shapes = parse_shapes(args.shapes)
        profile = tuple((n, s, s, s) for n, s in shapes)
        rt.set_device(0)
        info = rt.device_info(0)
        last = {'phase': ''}

        def progress(phase: str, fraction: float) -> None:
            if phase != last['phase'] or fraction >= 1.0:
                print(f'  {phase}: {fraction * 100:.0f}%', flush=True)
                last['phase'] = phase

        start = time.monotonic()
        plan = build_serialized_engine(
            trt, args.onnx, precision, args.workspace, profile,
            Path(args.timing_cache).expanduser() if args.timing_cache else None,
            progress, lambda m: print(m, flush=True))
        out = Path(args.output)
        _atomic_write(out, plan)
        key = make_key(args.onnx, trt.__version__, info.name, info.compute_capability,
                       precision, profile)
        import json
        from dataclasses import asdict
        _atomic_write(out.with_suffix('.json'), json.dumps(asdict(key), indent=1).encode())
        print(f'wrote {out} ({len(plan) / 1e6:.1f} MB, {precision}, TensorRT {trt.__version__}, '
              f'{info.name}) in {time.monotonic() - start:.0f} s')
        return 0
    except ImportError as exc:
        print(f'error: TensorRT is not importable ({exc}); run this on the robot (JetPack '
              f'ships TensorRT) or install TensorRT >= 10', file=sys.stderr)
        return 2
    except (SegformerRosError, ValueError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1


if __name__ == '__main__':
    sys.exit(main())
