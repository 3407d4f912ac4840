"""Thin wrappers over cuda-python's runtime bindings (``cuda.bindings.runtime``).

Only what the GPU pipeline and the TensorRT backend need: checked calls whose errors name
the CUDA error, streams, events, device buffers and pinned *mapped* host buffers (host
memory the GPU can address: on Jetson, where CPU and GPU share DRAM, kernels read and
write it in place; on a discrete GPU it is the source/target of one async copy).

cuda-python 12.x (JetPack 6) and 13.x both expose ``cuda.bindings.runtime``; older 12.x
releases only ``cuda.cudart``: :func:`bindings` accepts either.
"""

import ctypes
from dataclasses import dataclass
from typing import Any, Tuple

import numpy as np

from ..errors import BackendError

_INSTALL_HINT = ('install cuda-python matching the CUDA driver (pip install cuda-python; '
                 'JetPack 6: cuda-python 12.x)')


def bindings() -> Tuple[Any, Any, Any]:
    """Return the (runtime, driver, nvrtc) modules of cuda-python; BackendError without it."""
    try:
        from cuda.bindings import driver, nvrtc, runtime
    except ImportError:
        try:  # cuda-python < 12.6 layout
            from cuda import cuda as driver  # type: ignore[no-redef]
            from cuda import cudart as runtime  # type: ignore[no-redef]
            from cuda import nvrtc  # type: ignore[no-redef]
        except ImportError as exc:
            raise BackendError(f'expected cuda-python (cuda.bindings), got ImportError: {exc}; '
                               f'{_INSTALL_HINT}') from None
    return runtime, driver, nvrtc


def _error_name(err: Any) -> str:
    """Readable name of a runtime, driver or NVRTC error code."""
    name = getattr(err, 'name', None)
    return str(name) if name else str(err)


def check(result: Any, what: str) -> Any:
    """Unpack a cuda-python call result ``(err, *values)``; raise BackendError on failure.

    Returns None, the single value, or a tuple of values.
    """
    if not isinstance(result, tuple):
        result = (result,)
    err, values = result[0], result[1:]
    if int(err) != 0:
        raise BackendError(f'{what} failed: expected cudaSuccess, got {_error_name(err)} '
                           f'({int(err)}); check the GPU, the driver and free GPU memory')
    if not values:
        return None
    return values[0] if len(values) == 1 else values


def cuda_available(device: int = 0) -> Tuple[bool, str]:
    """Whether cuda-python imports and a CUDA device ``device`` is present (ok, reason)."""
    try:
        rt, _, _ = bindings()
    except BackendError as exc:
        return False, str(exc)
    try:
        err, count = rt.cudaGetDeviceCount()
    except Exception as exc:  # a broken driver install raises from inside the bindings
        return False, f'cudaGetDeviceCount raised {type(exc).__name__}: {exc}'
    if int(err) != 0:
        return False, f'no usable CUDA driver/device (cudaGetDeviceCount: {_error_name(err)})'
    if count <= device:
        return False, f'expected CUDA device {device}, found {count} device(s)'
    return True, ''


@dataclass(frozen=True)
class DeviceInfo:
    """What the pipeline and the engine cache need to know about the GPU."""

    index: int
    name: str
    compute_capability: Tuple[int, int]
    integrated: bool           # Jetson: CPU and GPU share DRAM (kernels read host memory)
    can_map_host_memory: bool
    total_memory: int
    sm_count: int = 0          # multiprocessors: tells apart Orin modules of one name and cc

    @property
    def sm(self) -> str:
        """Compute capability as 'sm_XY' (NVRTC architecture name)."""
        return f'sm_{self.compute_capability[0]}{self.compute_capability[1]}'


def set_device(device: int = 0) -> None:
    """Make ``device`` current and create its primary context (driver calls need one)."""
    rt, _, _ = bindings()
    check(rt.cudaSetDevice(device), f'cudaSetDevice({device})')
    check(rt.cudaFree(0), 'cudaFree(0) (context creation)')


def device_info(device: int = 0) -> DeviceInfo:
    """Name, compute capability and integrated-ness of ``device``."""
    rt, _, _ = bindings()
    attr = rt.cudaDeviceAttr

    def get(a: Any) -> int:
        return int(check(rt.cudaDeviceGetAttribute(a, device), f'cudaDeviceGetAttribute({a})'))

    prop = check(rt.cudaGetDeviceProperties(device), 'cudaGetDeviceProperties')
    name = prop.name
    if isinstance(name, (bytes, bytearray)):
        name = name.split(b'\0', 1)[0].decode(errors='replace')
    return DeviceInfo(
        index=device, name=str(name).strip(),
        compute_capability=(get(attr.cudaDevAttrComputeCapabilityMajor),
                            get(attr.cudaDevAttrComputeCapabilityMinor)),
        integrated=bool(get(attr.cudaDevAttrIntegrated)),
        can_map_host_memory=bool(get(attr.cudaDevAttrCanMapHostMemory)),
        total_memory=int(prop.totalGlobalMem),
        sm_count=get(attr.cudaDevAttrMultiProcessorCount))


def memory_in_use_mb() -> float:
    """Device memory in use on the current GPU, all processes together (MiB)."""
    free, total = check(bindings()[0].cudaMemGetInfo(), 'cudaMemGetInfo')
    return (int(total) - int(free)) / 2**20


def current_device() -> int:
    """Return the calling thread's current CUDA device (cudaGetDevice; per host thread)."""
    rt, _, _ = bindings()
    return int(check(rt.cudaGetDevice(), 'cudaGetDevice'))


class Stream:
    """A non-blocking CUDA stream (never the legacy default stream)."""

    def __init__(self) -> None:
        rt, _, _ = bindings()
        self._rt = rt
        self.handle = check(rt.cudaStreamCreateWithFlags(rt.cudaStreamNonBlocking),
                            'cudaStreamCreateWithFlags')

    @property
    def ptr(self) -> int:
        """The cudaStream_t as an integer (for TensorRT, ONNX Runtime, cuLaunchKernel)."""
        return int(self.handle)

    def synchronize(self) -> None:
        """Wait until all work queued on the stream has finished."""
        check(self._rt.cudaStreamSynchronize(self.handle), 'cudaStreamSynchronize')

    def wait(self, event: 'Event') -> None:
        """Make later work on this stream wait for ``event`` (no host blocking)."""
        check(self._rt.cudaStreamWaitEvent(self.handle, event.handle, 0), 'cudaStreamWaitEvent')

    def destroy(self) -> None:
        """Destroy the stream (idempotent)."""
        if self.handle is not None:
            check(self._rt.cudaStreamDestroy(self.handle), 'cudaStreamDestroy')
            self.handle = None


class Event:
    """A CUDA event with timing enabled.

    ``blocking``: :meth:`synchronize` puts the waiting thread to sleep until the event
    completes (``cudaEventBlockingSync``) instead of spinning on a CPU core, CUDA's
    default while it has cores to spare.
    """

    def __init__(self, blocking: bool = False) -> None:
        rt, _, _ = bindings()
        self._rt = rt
        if blocking:
            self.handle = check(rt.cudaEventCreateWithFlags(rt.cudaEventBlockingSync),
                                'cudaEventCreateWithFlags')
        else:
            self.handle = check(rt.cudaEventCreate(), 'cudaEventCreate')

    def record(self, stream: Stream) -> None:
        """Record the event on ``stream``."""
        check(self._rt.cudaEventRecord(self.handle, stream.handle), 'cudaEventRecord')

    def synchronize(self) -> None:
        """Wait for the event."""
        check(self._rt.cudaEventSynchronize(self.handle), 'cudaEventSynchronize')

    def elapsed_ms(self, start: 'Event') -> float:
        """Milliseconds between ``start`` and this event (both recorded and completed)."""
        return float(check(self._rt.cudaEventElapsedTime(start.handle, self.handle),
                           'cudaEventElapsedTime'))

    def destroy(self) -> None:
        """Destroy the event (idempotent)."""
        if self.handle is not None:
            check(self._rt.cudaEventDestroy(self.handle), 'cudaEventDestroy')
            self.handle = None


class DeviceBuffer:
    """``nbytes`` of device memory (cudaMalloc)."""

    def __init__(self, nbytes: int) -> None:
        rt, _, _ = bindings()
        self._rt = rt
        self.nbytes = int(nbytes)
        self.ptr = int(check(rt.cudaMalloc(max(1, self.nbytes)), f'cudaMalloc({nbytes})'))

    def free(self) -> None:
        """Free the memory (idempotent)."""
        if self.ptr:
            check(self._rt.cudaFree(self.ptr), 'cudaFree')
            self.ptr = 0


class MappedHostBuffer:
    """Pinned host memory mapped into the GPU's address space (cudaHostAllocMapped).

    ``host`` is a uint8 numpy view of it (the CPU fills / publishes from it) and
    ``device_ptr`` the address kernels use (the same DRAM on Jetson, PCIe on a dGPU).
    """

    def __init__(self, nbytes: int) -> None:
        rt, _, _ = bindings()
        self._rt = rt
        self.nbytes = int(nbytes)
        flags = rt.cudaHostAllocMapped | rt.cudaHostAllocPortable
        self.host_ptr = int(check(rt.cudaHostAlloc(max(1, self.nbytes), flags),
                                  f'cudaHostAlloc({nbytes}, mapped)'))
        self.device_ptr = int(check(rt.cudaHostGetDevicePointer(self.host_ptr, 0),
                                    'cudaHostGetDevicePointer'))
        raw = (ctypes.c_uint8 * max(1, self.nbytes)).from_address(self.host_ptr)
        self.host = np.frombuffer(raw, dtype=np.uint8, count=self.nbytes)

    def view(self, dtype: Any, shape: Tuple[int, ...], offset: int = 0) -> np.ndarray:
        """Return a typed numpy view of the buffer (no copy)."""
        count = int(np.prod(shape))
        size = count * np.dtype(dtype).itemsize
        if offset + size > self.nbytes:
            raise BackendError(f'view of {size} bytes at {offset} does not fit the mapped '
                               f'buffer of {self.nbytes} bytes')
        return self.host[offset:offset + size].view(dtype).reshape(shape)

    def free(self) -> None:
        """Free the memory (idempotent); views taken before must not be used after."""
        if self.host_ptr:
            self.host = np.empty(0, dtype=np.uint8)
            check(self._rt.cudaFreeHost(self.host_ptr), 'cudaFreeHost')
            self.host_ptr = 0
            self.device_ptr = 0


def memcpy_async(dst: int, src: int, nbytes: int, stream: Stream) -> None:
    """Queue a copy of ``nbytes`` (cudaMemcpyDefault: direction from the pointers, UVA)."""
    rt, _, _ = bindings()
    check(rt.cudaMemcpyAsync(dst, src, nbytes, rt.cudaMemcpyKind.cudaMemcpyDefault,
                             stream.handle), 'cudaMemcpyAsync')


def memset_async(ptr: int, value: int, nbytes: int, stream: Stream) -> None:
    """Queue a byte fill of device memory."""
    rt, _, _ = bindings()
    check(rt.cudaMemsetAsync(ptr, value, nbytes, stream.handle), 'cudaMemsetAsync')


def copy_to_device(host: np.ndarray, dst: int, stream_ptr: int = 0) -> None:
    """Copy a contiguous host array to device address ``dst``; returns when it has landed.

    With ``stream_ptr`` the copy is ordered after the work queued on that stream (and
    waited for); without, it is a plain ``cudaMemcpy`` followed by a device-wide sync
    (a pageable ``cudaMemcpy`` may return before the DMA has finished).
    """
    rt, _, _ = bindings()
    arr = np.ascontiguousarray(host)
    kind = rt.cudaMemcpyKind.cudaMemcpyHostToDevice
    if stream_ptr:
        check(rt.cudaMemcpyAsync(dst, arr.ctypes.data, arr.nbytes, kind, stream_ptr),
              'cudaMemcpyAsync(H2D)')
        check(rt.cudaStreamSynchronize(stream_ptr), 'cudaStreamSynchronize')
    else:
        check(rt.cudaMemcpy(dst, arr.ctypes.data, arr.nbytes, kind), 'cudaMemcpy(H2D)')
        check(rt.cudaDeviceSynchronize(), 'cudaDeviceSynchronize')


def copy_to_host(src: int, out: np.ndarray, stream_ptr: int = 0) -> np.ndarray:
    """Copy ``out.nbytes`` from device address ``src`` into ``out``, synchronously.

    With ``stream_ptr`` the copy is queued after that stream's work (then waited for).
    """
    rt, _, _ = bindings()
    if not out.flags.c_contiguous:
        raise BackendError('copy_to_host needs a C-contiguous output array')
    kind = rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
    if stream_ptr:
        check(rt.cudaMemcpyAsync(out.ctypes.data, src, out.nbytes, kind, stream_ptr),
              'cudaMemcpyAsync(D2H)')
        check(rt.cudaStreamSynchronize(stream_ptr), 'cudaStreamSynchronize')
    else:
        check(rt.cudaDeviceSynchronize(), 'cudaDeviceSynchronize')
        check(rt.cudaMemcpy(out.ctypes.data, src, out.nbytes, kind), 'cudaMemcpy(D2H)')
    return out


class Graph:
    """A captured CUDA graph of work queued on one stream (capture, then launch many times)."""

    def __init__(self) -> None:
        rt, _, _ = bindings()
        self._rt = rt
        self.graph: Any = None
        self.exec: Any = None

    def begin(self, stream: Stream) -> None:
        """Start capturing ``stream`` (thread-local mode: other threads keep working)."""
        rt = self._rt
        check(rt.cudaStreamBeginCapture(
            stream.handle, rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal),
            'cudaStreamBeginCapture')

    def end(self, stream: Stream) -> None:
        """Stop capturing and instantiate the graph."""
        rt = self._rt
        self.graph = check(rt.cudaStreamEndCapture(stream.handle), 'cudaStreamEndCapture')
        self.exec = check(rt.cudaGraphInstantiate(self.graph, 0), 'cudaGraphInstantiate')

    def abort(self, stream: Stream) -> None:
        """End a failed capture, ignoring errors (the stream is usable again afterwards)."""
        rt = self._rt
        try:
            rt.cudaStreamEndCapture(stream.handle)
        except Exception:  # the capture may already be invalidated
            pass
        rt.cudaGetLastError()
        self.destroy()

    def launch(self, stream: Stream) -> None:
        """Replay the graph on ``stream``."""
        check(self._rt.cudaGraphLaunch(self.exec, stream.handle), 'cudaGraphLaunch')

    def destroy(self) -> None:
        """Free the graph (idempotent)."""
        if self.exec is not None:
            self._rt.cudaGraphExecDestroy(self.exec)
            self.exec = None
        if self.graph is not None:
            self._rt.cudaGraphDestroy(self.graph)
            self.graph = None
