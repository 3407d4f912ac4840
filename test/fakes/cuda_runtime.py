"""A fake of cuda-python's ``cuda.bindings.runtime`` with per-thread current devices.

Only what :mod:`segformer_ros.cuda.runtime` calls. "Device memory" is host memory (ctypes
buffers), so pointers are real addresses and copies are ``memmove``; every allocation,
stream and context remembers the device that was current on the calling thread when it was
made, which is what the device_id tests check.

Behaviour modelled on the CUDA Runtime API reference: the current device is per host
thread and starts at 0 (cudaSetDevice: "sets device as the current device for the calling
host thread"); calls return ``(cudaError_t, *values)`` as cuda-python does.

Memory is tracked (address -> size, device, and the dtype last written by a typed writer
such as an engine's output): :meth:`FakeCudaRuntime.access` refuses a read or write that
leaves its allocation, touches freed memory or reads a tensor as another dtype. A real GPU
reports such an access as ``cudaErrorIllegalAddress`` (700) -- not at the launch, which
returns success, but at the next synchronizing call, and it is sticky: "The device
encountered a load or store instruction on an invalid memory address. This leaves the
process in an inconsistent state and any further CUDA work will return the same error"
(CUDA Runtime API, cudaError enum). The fake does the same: the faulty work is skipped, the
error is remembered and every later call returns it (:attr:`FakeCudaRuntime.sticky`).
"""

import ctypes
import enum
import threading
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple


class cudaError_t(enum.IntEnum):  # noqa: N801 - the binding's name
    """The error codes used here (values as in driver_types.h)."""

    cudaSuccess = 0
    cudaErrorInvalidValue = 1
    cudaErrorInvalidDevice = 101
    cudaErrorInvalidResourceHandle = 400
    cudaErrorIllegalAddress = 700


class cudaDeviceAttr(enum.IntEnum):  # noqa: N801
    """Device attributes the package reads (values as in driver_types.h)."""

    cudaDevAttrMultiProcessorCount = 16
    cudaDevAttrIntegrated = 18
    cudaDevAttrCanMapHostMemory = 19
    cudaDevAttrComputeCapabilityMajor = 75
    cudaDevAttrComputeCapabilityMinor = 76


class cudaMemcpyKind(enum.IntEnum):  # noqa: N801
    """Copy directions."""

    cudaMemcpyHostToHost = 0
    cudaMemcpyHostToDevice = 1
    cudaMemcpyDeviceToHost = 2
    cudaMemcpyDeviceToDevice = 3
    cudaMemcpyDefault = 4


@dataclass
class FakeGpu:
    """One fake GPU's identity (what DeviceInfo and the engine cache key read)."""

    name: str = 'Orin'
    cc: Tuple[int, int] = (8, 7)
    sm_count: int = 16
    total_memory: int = 16 << 30
    integrated: bool = True


@dataclass
class _Prop:
    name: bytes
    totalGlobalMem: int


@dataclass
class Allocation:
    """One live allocation: kind ('device', 'host', 'stream'), device, bytes."""

    kind: str
    device: int
    nbytes: int
    buf: Any = field(default=None, repr=False)
    dtype: Optional[str] = None   # numpy name of what a typed writer last stored here


class FakeCudaRuntime:
    """The module object handed out in place of ``cuda.bindings.runtime``."""

    cudaError_t = cudaError_t
    cudaDeviceAttr = cudaDeviceAttr
    cudaMemcpyKind = cudaMemcpyKind
    cudaStreamNonBlocking = 1
    cudaHostAllocPortable = 1
    cudaHostAllocMapped = 2

    def __init__(self, gpus: List[FakeGpu]) -> None:
        self.gpus = gpus
        self._local = threading.local()
        self.live: Dict[int, Allocation] = {}
        self.history: List[Allocation] = []   # every allocation ever made
        self.contexts: set = set()             # devices whose primary context exists
        self.copies: List[Tuple[int, int, int]] = []   # (dst, src, nbytes) of async copies
        self._lock = threading.Lock()
        self.synchronized = 0                          # stream/device synchronizations
        self.sticky: Optional[cudaError_t] = None    # a device fault: every call returns it
        self.faults: List[str] = []                   # what each refused access was

    # ---------------------------------------------------------------- access checks
    def _find(self, ptr: int) -> Optional[Tuple[int, Allocation]]:
        for base, rec in list(self.live.items()):
            if rec.kind != 'stream' and base <= ptr < base + max(1, rec.nbytes):
                return base, rec
        return None

    def was_freed(self, ptr: int) -> bool:
        """Tell whether ``ptr`` lies in memory this fake handed out and has freed since."""
        if self._find(ptr) is not None:
            return False
        return any(ctypes.addressof(r.buf) <= ptr < ctypes.addressof(r.buf) + max(1, r.nbytes)
                   for r in self.history if r.buf is not None and r.kind != 'stream')

    def access(self, ptr: int, nbytes: int, what: str, dtype: Optional[str] = None,
               write: bool = False) -> bool:
        """Check a device-side access of ``nbytes`` at ``ptr``; False (and a fault) if illegal.

        Legal: inside one live allocation, and for a typed read the dtype last written there
        (if any typed writer wrote it) is ``dtype``. A write with ``dtype`` tags the
        allocation. Addresses the fake never handed out are host memory of the test (numpy
        arrays copied with cudaMemcpyDefault) and are not checked.
        """
        if self.sticky is not None:
            return False
        found = self._find(int(ptr))
        problem = ''
        if int(ptr) == 0 and nbytes:
            problem = f'{what}: {nbytes} bytes at the null pointer'
        elif found is None:
            if self.was_freed(int(ptr)):
                problem = f'{what}: {nbytes} bytes at {int(ptr):#x}, freed memory'
            else:
                return True
        else:
            base, rec = found
            end = base + rec.nbytes
            if int(ptr) + int(nbytes) > end:
                problem = (f'{what}: {nbytes} bytes at {int(ptr):#x} run {int(ptr) + nbytes - end}'
                           f' bytes past the end of a {rec.nbytes}-byte allocation')
            elif dtype is not None and not write and rec.dtype not in (None, dtype):
                problem = f'{what}: read as {dtype}, but holds {rec.dtype}'
            elif dtype is not None and write:
                rec.dtype = dtype
        if problem:
            self.faults.append(problem)
            self.sticky = cudaError_t.cudaErrorIllegalAddress
            return False
        return True

    def _status(self) -> Any:
        return self.sticky if self.sticky is not None else cudaError_t.cudaSuccess

    # ---------------------------------------------------------------- devices
    def current(self) -> int:
        """Return the calling thread's current device (0 until cudaSetDevice)."""
        return int(getattr(self._local, 'device', 0))

    def cudaGetDeviceCount(self) -> Tuple[Any, int]:  # noqa: N802
        return cudaError_t.cudaSuccess, len(self.gpus)

    def cudaSetDevice(self, device: int) -> Tuple[Any]:  # noqa: N802
        if not 0 <= int(device) < len(self.gpus):
            return (cudaError_t.cudaErrorInvalidDevice,)
        self._local.device = int(device)
        return (cudaError_t.cudaSuccess,)

    def cudaGetDevice(self) -> Tuple[Any, int]:  # noqa: N802
        return cudaError_t.cudaSuccess, self.current()

    def cudaGetDeviceProperties(self, device: int) -> Tuple[Any, Any]:  # noqa: N802
        gpu = self.gpus[int(device)]
        return cudaError_t.cudaSuccess, _Prop(gpu.name.encode() + b'\0\0', gpu.total_memory)

    def cudaDeviceGetAttribute(self, attr: Any, device: int) -> Tuple[Any, int]:  # noqa: N802
        gpu = self.gpus[int(device)]
        values = {cudaDeviceAttr.cudaDevAttrMultiProcessorCount: gpu.sm_count,
                  cudaDeviceAttr.cudaDevAttrIntegrated: int(gpu.integrated),
                  cudaDeviceAttr.cudaDevAttrCanMapHostMemory: 1,
                  cudaDeviceAttr.cudaDevAttrComputeCapabilityMajor: gpu.cc[0],
                  cudaDeviceAttr.cudaDevAttrComputeCapabilityMinor: gpu.cc[1]}
        return cudaError_t.cudaSuccess, values[attr]

    # ---------------------------------------------------------------- memory
    def _alloc(self, kind: str, nbytes: int) -> int:
        buf = ctypes.create_string_buffer(max(1, int(nbytes)))
        ptr = ctypes.addressof(buf)
        record = Allocation(kind, self.current(), int(nbytes), buf)
        with self._lock:
            self.live[ptr] = record
            self.history.append(record)
        return ptr

    def cudaFree(self, ptr: int) -> Tuple[Any]:  # noqa: N802
        if int(ptr) == 0:   # the idiom that creates the current device's primary context
            self.contexts.add(self.current())
            return (cudaError_t.cudaSuccess,)
        with self._lock:
            record = self.live.pop(int(ptr), None)
        if record is None or record.kind != 'device':
            return (cudaError_t.cudaErrorInvalidValue,)
        return (cudaError_t.cudaSuccess,)

    def cudaMalloc(self, nbytes: int) -> Tuple[Any, int]:  # noqa: N802
        return cudaError_t.cudaSuccess, self._alloc('device', nbytes)

    def cudaHostAlloc(self, nbytes: int, flags: int) -> Tuple[Any, int]:  # noqa: N802
        return cudaError_t.cudaSuccess, self._alloc('host', nbytes)

    def cudaHostGetDevicePointer(self, ptr: int, flags: int) -> Tuple[Any, int]:  # noqa: N802
        return cudaError_t.cudaSuccess, int(ptr)   # mapped: same address (UVA)

    def cudaFreeHost(self, ptr: int) -> Tuple[Any]:  # noqa: N802
        with self._lock:
            record = self.live.pop(int(ptr), None)
        ok = record is not None and record.kind == 'host'
        return (cudaError_t.cudaSuccess if ok else cudaError_t.cudaErrorInvalidValue,)

    def is_pinned(self, ptr: int, nbytes: int) -> bool:
        """Tell whether [ptr, ptr+nbytes) lies in a cudaHostAlloc'ed buffer."""
        for base, rec in list(self.live.items()):
            if rec.kind == 'host' and base <= ptr and ptr + nbytes <= base + max(1, rec.nbytes):
                return True
        return False

    def device_of(self, ptr: int) -> int:
        """Return the device an address was allocated on (-1 for memory the fake did not make)."""
        for base, rec in list(self.live.items()):
            if base <= ptr < base + max(1, rec.nbytes):
                return rec.device
        return -1

    # ---------------------------------------------------------------- streams
    def cudaStreamCreateWithFlags(self, flags: int) -> Tuple[Any, int]:  # noqa: N802
        return cudaError_t.cudaSuccess, self._alloc('stream', 8)

    def cudaStreamDestroy(self, stream: int) -> Tuple[Any]:  # noqa: N802
        with self._lock:
            record = self.live.pop(int(stream), None)
        return (cudaError_t.cudaSuccess if record else cudaError_t.cudaErrorInvalidResourceHandle,)

    def cudaStreamSynchronize(self, stream: int) -> Tuple[Any]:  # noqa: N802
        self.synchronized += 1
        return (self._status(),)

    def cudaDeviceSynchronize(self) -> Tuple[Any]:  # noqa: N802
        self.synchronized += 1
        return (self._status(),)

    def stream_device(self, stream: int) -> int:
        """Return the device a stream was created on (-1: not a stream of this fake)."""
        rec = self.live.get(int(stream))
        return rec.device if rec is not None and rec.kind == 'stream' else -1

    def _copy(self, dst: int, src: int, nbytes: int) -> Any:
        if (self.access(int(src), int(nbytes), 'copy source')
                and self.access(int(dst), int(nbytes), 'copy destination', write=True)):
            ctypes.memmove(int(dst), int(src), int(nbytes))
        return self._status()

    def cudaMemcpyAsync(self, dst: int, src: int, nbytes: int, kind: Any,  # noqa: N802
                        stream: Any) -> Tuple[Any]:
        self.copies.append((int(dst), int(src), int(nbytes)))
        return (self._copy(dst, src, nbytes),)

    def cudaMemcpy(self, dst: int, src: int, nbytes: int, kind: Any) -> Tuple[Any]:  # noqa: N802
        return (self._copy(dst, src, nbytes),)

    def cudaGetLastError(self) -> Tuple[Any]:  # noqa: N802
        return (self._status(),)
