"""ONNX Runtime CUDA inference alone: ms per run and per frame at several batch sizes.

Device-resident input/output (IOBinding on OrtValues, as the GPU pipeline binds its own
buffers), so the numbers are inference without transfers. Also the host CPU time the
calling thread spends per run (kernel launches), and, with ``--cuda-graph``, the same
model with ONNX Runtime's CUDA graph capture (``enable_cuda_graph``), which replays the
launches instead of issuing them. Needs onnxruntime-gpu; runs on the GPU machine::

    python3 -m benchmarks.ort_cuda_probe MODEL.onnx --batches 1,2,4 [--cuda-graph]
    python3 -m benchmarks.ort_cuda_probe MODEL.onnx --batches 4,1,3,2 --alternate \
        --conv-search EXHAUSTIVE,HEURISTIC
"""

import argparse
import json
import statistics
import threading
import time
from typing import Any, Dict, List, Optional, Sequence


def _session(ort: Any, model: str, cuda_graph: bool, conv_search: str = '',
             batch: int = 0, shared_arena: bool = False) -> Any:
    options: Dict[str, str] = {'device_id': '0'}
    if conv_search:
        options['cudnn_conv_algo_search'] = conv_search
    if cuda_graph:
        options['enable_cuda_graph'] = '1'
    so = ort.SessionOptions()
    so.log_severity_level = 3
    if shared_arena:                        # one arena for all sessions of the process
        from segformer_ros.backends.ort_shared_arena import (USE_ENV_ALLOCATORS,
                                                             share_cuda_arena)
        if share_cuda_arena(ort, 0):
            so.add_session_config_entry(USE_ENV_ALLOCATORS, '1')
    if batch:                               # the batch fixed in this session
        probe = ort.InferenceSession(model, providers=['CPUExecutionProvider'])
        so.add_free_dimension_override_by_name(probe.get_inputs()[0].shape[0], batch)
    return ort.InferenceSession(model, sess_options=so,
                                providers=[('CUDAExecutionProvider', options)])


def _shape(dims: Sequence[Any], batch: int, fallback_hw: Sequence[int]) -> List[int]:
    shape = [d if isinstance(d, int) and d > 0 else None for d in dims]
    shape[0] = batch if shape[0] is None else shape[0]
    for i, hw in zip((2, 3), fallback_hw):
        if i < len(shape) and shape[i] is None:
            shape[i] = int(hw)
    return [int(d) for d in shape]


def probe(model: str, batch: int, runs: int, cuda_graph: bool,
          conv_search: str = '') -> Optional[Dict[str, Any]]:
    """Median wall ms and calling-thread CPU ms per run at ``batch``; None if it cannot run."""
    import numpy as np
    import onnxruntime as ort

    try:
        session = _session(ort, model, cuda_graph, conv_search)
    except Exception as exc:  # noqa: BLE001 - report and go on with the other variants
        return {'error': str(exc).splitlines()[0][:300]}
    inp, out = session.get_inputs()[0], session.get_outputs()[0]
    if isinstance(inp.shape[0], int) and inp.shape[0] not in (batch,):
        return None
    in_shape = _shape(inp.shape, batch, (1024, 1024))
    probe_out = session.run([out.name], {inp.name: np.zeros(in_shape, np.float32)})[0] \
        if not cuda_graph else None
    out_shape = list(probe_out.shape) if probe_out is not None else \
        _shape(out.shape, batch, (in_shape[2] // 4, in_shape[3] // 4))
    x = ort.OrtValue.ortvalue_from_shape_and_type(in_shape, np.float32, 'cuda', 0)
    y = ort.OrtValue.ortvalue_from_shape_and_type(out_shape, np.float32, 'cuda', 0)
    binding = session.io_binding()
    binding.bind_ortvalue_input(inp.name, x)
    binding.bind_ortvalue_output(out.name, y)
    for _ in range(5):                      # tuning, and the graph capture
        session.run_with_iobinding(binding)
    wall: List[float] = []
    cpu: List[float] = []
    for _ in range(runs):
        c0, t0 = time.thread_time(), time.perf_counter()
        session.run_with_iobinding(binding)   # returns once the GPU finished
        wall.append((time.perf_counter() - t0) * 1e3)
        cpu.append((time.thread_time() - c0) * 1e3)
    ms = statistics.median(wall)
    return {'batch': batch, 'cuda_graph': cuda_graph, 'conv_search': conv_search or 'default',
            'ms_per_run': round(ms, 3),
            'ms_per_frame': round(ms / batch, 3), 'frames_per_s': round(1e3 * batch / ms, 1),
            'thread_cpu_ms_per_run': round(statistics.median(cpu), 3)}


def alternate(model: str, batches: Sequence[int], rounds: int,
              conv_search: str = '', per_size: bool = False,
              shared_arena: bool = False) -> Dict[str, Any]:
    """Run the batch sizes in turn (as cameras out of step fill a batch): ms per run by size.

    A shape change costs nothing when the provider caches per shape; a cost on every change
    shows as slow runs here that the fixed-size probe never sees. ``per_size``: one session
    per batch size, its batch fixed (what the node does); ``shared_arena``: those sessions
    draw on one CUDA arena registered with ORT's environment instead of one arena each.
    """
    import numpy as np
    import onnxruntime as ort

    from segformer_ros.cuda.runtime import memory_in_use_mb

    used_mb = memory_in_use_mb()
    shared = None if per_size else _session(ort, model, False, conv_search,
                                            shared_arena=shared_arena)
    bindings = {}
    # Device memory each size added (its session, arena and first run): what N sessions
    # for N cameras cost beside one.
    added_mb: Dict[int, float] = {}
    for n in batches:
        session = shared or _session(ort, model, False, conv_search, batch=n,
                                     shared_arena=shared_arena)
        inp, out = session.get_inputs()[0], session.get_outputs()[0]
        in_shape = _shape(inp.shape, n, (1024, 1024))
        y = session.run([out.name], {inp.name: np.zeros(in_shape, np.float32)})[0]
        binding = session.io_binding()
        binding.bind_ortvalue_input(inp.name, ort.OrtValue.ortvalue_from_shape_and_type(
            in_shape, np.float32, 'cuda', 0))
        binding.bind_ortvalue_output(out.name, ort.OrtValue.ortvalue_from_shape_and_type(
            list(y.shape), np.float32, 'cuda', 0))
        bindings[n] = (session, binding)
        session.run_with_iobinding(binding)        # each size once first (the warm-up)
        now_mb = memory_in_use_mb()
        added_mb[n], used_mb = round(now_mb - used_mb, 1), now_mb
    times: Dict[int, List[float]] = {n: [] for n in batches}

    def timed() -> None:
        for _ in range(rounds):
            for n in batches:
                t0 = time.perf_counter()
                bindings[n][0].run_with_iobinding(bindings[n][1])
                times[n].append((time.perf_counter() - t0) * 1e3)
    # On another thread than the warm-up, as in the node (configure vs the frame path).
    worker = threading.Thread(target=timed)
    worker.start()
    worker.join()
    return {'alternating': list(batches), 'conv_search': conv_search or 'default',
            'session_per_size': per_size, 'shared_arena': shared_arena,
            'ms_per_run_p50': {n: round(statistics.median(v), 3) for n, v in times.items()},
            'ms_per_run_max': {n: round(max(v), 1) for n, v in times.items()},
            'device_mb_added': added_mb}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Print one JSON line per (batch, cuda graph) variant."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('model')
    p.add_argument('--batches', default='1', help='comma-separated batch sizes')
    p.add_argument('--runs', type=int, default=100)
    p.add_argument('--cuda-graph', action='store_true', help='also with enable_cuda_graph')
    p.add_argument('--conv-search', default='',
                   help='comma-separated cudnn_conv_algo_search values to compare '
                        '(EXHAUSTIVE, HEURISTIC, DEFAULT; empty: the provider default)')
    p.add_argument('--alternate', action='store_true',
                   help='instead: run the batch sizes in turn, 5 rounds')
    p.add_argument('--session-per-size', action='store_true',
                   help='with --alternate: one session per batch size, its batch fixed')
    p.add_argument('--shared-arena', action='store_true',
                   help='with --alternate: the sessions share one CUDA arena (ORT env '
                   'allocator, session.use_env_allocators)')
    args = p.parse_args(argv)
    name = args.model.rsplit('/', 1)[-1]
    batches = [int(b) for b in args.batches.split(',')]
    for search in args.conv_search.split(','):
        if args.alternate:
            row = alternate(args.model, batches, 5, search, args.session_per_size,
                            args.shared_arena)
            print(json.dumps({'model': name, **row}), flush=True)
            continue
        for batch in batches:
            for graph in ((False, True) if args.cuda_graph else (False,)):
                row = probe(args.model, batch, args.runs, graph, search)
                if row is not None:
                    print(json.dumps({'model': name, **row}), flush=True)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
