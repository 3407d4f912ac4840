"""One CUDA memory arena for all of a process's ONNX Runtime sessions on a GPU.

A dynamic-batch model serving several cameras runs in one session per batch size
(``OnnxRuntimeBackend.session_for_batch`` says why). Each ONNX Runtime CUDA session keeps
its own arena at the high-water mark of its runs, so four sessions (batch 1-4 of
SegFormer-B0 1024², H200) held 2.4 + 4.5 + 7.8 + 7.6 = 22.3 GB; drawing on one arena
registered with ORT's environment (``session.use_env_allocators``), the same four held
8.0-8.9 GB, at the same speed (5.3 / 8.9 / 12.5 / 16.2 ms per run; docs/benchmarks.md,
"Node vs pipeline"). The sessions run one after the other on the inference thread, so one
arena at the largest batch's size serves them all.

The arena belongs to ORT's environment: it outlives the sessions (a lifecycle cleanup
drops the sessions, the arena keeps its memory for the next configure) until the process
exits. No ROS here.
"""

import threading
from typing import Any, Set

_REGISTERED: Set[int] = set()
_LOCK = threading.Lock()

#: The session option that makes a session take its allocators from the environment.
USE_ENV_ALLOCATORS = 'session.use_env_allocators'


def share_cuda_arena(ort: Any, device_id: int) -> bool:
    """Register one CUDA arena for ``device_id`` with ORT's environment (once per process).

    Returns True when sessions on that device can use it (set :data:`USE_ENV_ALLOCATORS`),
    False when this onnxruntime cannot register one (older than 1.15, or a CPU-only
    build): the sessions then keep an arena each.
    """
    with _LOCK:
        if device_id in _REGISTERED:
            return True
        register = getattr(ort, 'create_and_register_allocator_v2', None)
        if register is None:
            return False
        try:
            memory = ort.OrtMemoryInfo('Cuda', ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR,
                                       int(device_id), ort.OrtMemType.DEFAULT)
            # 0 / -1: ORT's defaults for the limit, growth, first chunk and dead bytes.
            register('CUDAExecutionProvider', memory, {'device_id': str(device_id)},
                     ort.OrtArenaCfg(0, -1, -1, -1))
        except Exception:  # noqa: BLE001 - ORT's pybind errors; per-session arenas still work
            return False
        _REGISTERED.add(device_id)
        return True
