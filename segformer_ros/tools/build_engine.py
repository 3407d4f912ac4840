r"""segformer-ros-build-engine: build a TensorRT engine from ONNX ahead of time (trtexec-like).

Example (on the robot, once per TensorRT version / GPU)::

    segformer-ros-build-engine --onnx segformer.onnx --output segformer.engine --fp16 \\
        --workspace 1024 --timing-cache ~/.cache/segformer_ros/timing.cache \\
        --shapes input:1x3x512x1024

The engine gets a JSON sidecar (TensorRT version, GPU, precision, profile) so the node can
say why an engine does not fit instead of failing obscurely. Parent directories of
``--output`` and ``--timing-cache`` are created before the build, and a built plan is never
lost to a later write error. After the build the engine is compared with ONNX Runtime on one
distinct frame per batch item (without onnxruntime, a batch > 1 engine checks itself: each
item alone vs the batched run); a batch > 1 engine whose items disagree is removed
(NVIDIA/TensorRT#4853). The sidecar records what was checked: ``checked`` (whether a check
ran), ``check_method`` and ``item_agreement``.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, List, Optional, Tuple

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


def _prepare_dirs(*paths: Optional[Path]) -> None:
    """Create the parent directories of the output files before minutes of building."""
    for path in paths:
        if path is not None:
            path.expanduser().parent.mkdir(parents=True, exist_ok=True)


def _write_plan(out: Path, plan: bytes, key: Any, notes: dict) -> Path:
    """Write the engine + sidecar; never lose the plan to a write error.

    If ``out`` cannot be written, the plan goes to the current directory, then the temp
    directory, and a warning says where.
    """
    from ..backends.engine_cache import write_engine
    candidates = [out, Path.cwd() / out.name, Path(tempfile.gettempdir()) / out.name]
    errors = []
    for path in candidates:
        try:
            write_engine(path, plan, key, notes)
            if path != out:
                print(f'warning: could not write {out} ({"; ".join(errors)}); the built engine '
                      f'was saved as {path} instead', file=sys.stderr)
            return path
        except OSError as exc:
            errors.append(f'{path}: {exc}')
    raise OSError(f'could not write the engine anywhere: {"; ".join(errors)}')


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of the engine builder."""
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
    ap.add_argument('--shapes', default='', help='input shapes, e.g. input:1x3x512x1024 '
                    '(needed for a dynamic-size ONNX)')
    ap.add_argument('--device', type=int, default=0, help='CUDA device index (device_id)')
    ap.add_argument('--no-check', action='store_true',
                    help='skip the accuracy check against ONNX Runtime after the build (it '
                    'refuses batch > 1 engines that give wrong results, NVIDIA/TensorRT#4853)')
    return ap


def main(argv: Optional[List[str]] = None) -> int:
    """Command-line entry point."""
    args = build_parser().parse_args(argv)
    precision = args.precision or 'fp16'
    out = Path(args.output).expanduser()
    timing = Path(args.timing_cache).expanduser() if args.timing_cache else None
    try:
        import tensorrt as trt
        from ..backends import trt_compat
        from ..backends.engine_cache import key_for_device
        from ..backends.tensorrt_backend import BUILD_LOGIC, build_engine
        from ..cuda import runtime as rt
        trt_compat.check_version(trt)
        shapes = parse_shapes(args.shapes)
        profile = tuple((n, s, s, s) for n, s in shapes)
        _prepare_dirs(out, timing)
        rt.set_device(args.device)
        info = rt.device_info(args.device)
        last = {'phase': ''}

        def progress(phase: str, fraction: float) -> None:
            if phase != last['phase'] or fraction >= 1.0:
                print(f'  {phase}: {fraction * 100:.0f}%', flush=True)
                last['phase'] = phase

        start = time.monotonic()
        built = build_engine(trt, args.onnx, precision, args.workspace, profile or None,
                             timing, progress, lambda m: print(m, flush=True))
        key = key_for_device(args.onnx, trt.__version__, info, precision, built.profile,
                             BUILD_LOGIC)
        notes = {'precision': built.precision, 'checked': False,
                 'check_method': 'none (--no-check)' if args.no_check else None}
        written = _write_plan(out, built.plan, key, notes)
        print(f'wrote {written} ({len(built.plan) / 1e6:.1f} MB, {built.precision}, TensorRT '
              f'{trt.__version__}, {info.name}) in {time.monotonic() - start:.0f} s')
        if not args.no_check:
            return _check(written, args.onnx, args.device, key, built.precision)
        return 0
    except ImportError as exc:
        print(f'error: TensorRT is not importable ({exc}); run this on the robot (JetPack '
              f'ships TensorRT) or install TensorRT >= 10', file=sys.stderr)
        return 2
    except (SegformerRosError, ValueError, OSError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1


def _check(engine: Path, onnx_path: str, device: int, key: Any, precision: str) -> int:
    """Load the written engine and compare it with ONNX Runtime; refuse a wrong batch engine."""
    from ..backends.engine_cache import EngineCache, read_notes, write_sidecar
    from ..backends.tensorrt_backend import TensorRTBackend
    backend = TensorRTBackend(str(engine), reference_onnx=onnx_path, device_id=device,
                              logger=lambda m: print(m, flush=True))
    try:
        backend.configure()
    except SegformerRosError as exc:
        EngineCache(str(engine.parent)).discard(engine)
        print(f'error: {exc}; removed {engine}', file=sys.stderr)
        return 1
    finally:
        backend.release()
    method = backend.check_method
    notes = read_notes(engine)   # keeps the engine's recorded size and hash
    notes.update(precision=precision, checked=method is not None, check_method=method,
                 item_agreement=backend.item_agreement)
    write_sidecar(engine, key, notes)
    if method is None:
        print('warning: the engine was not checked (install onnxruntime to compare it with '
              'ONNX Runtime); recorded as unchecked', file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
