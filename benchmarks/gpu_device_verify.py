#!/usr/bin/env python3
r"""Verify ``device_id`` on a two-GPU machine (issue 10, defect 2).

With ``device_id: 1`` every allocation and kernel of the GPU pipeline and of ONNX
Runtime's CUDA provider must be on GPU 1, and nothing may touch GPU 0.

How to run it (the lead, with the device tool, kind ``nvidia-h200-x2``; carry: nothing,
the script and segformer_ros are tracked and ``../shared/models`` travels as shared/)::

    # A. GPU pipeline only (works with the machine's CPU-only onnxruntime: the model runs
    #    on the CPU between the GPU kernels through HostInference):
    python3 benchmarks/gpu_device_verify.py --device 1 --out $OUT

    # B. GPU pipeline + ONNX Runtime CUDA provider (the node's own path: backend
    #    onnxruntime, provider cuda, device_id 1, select_pipeline('gpu')): first stage
    #    onnxruntime-gpu as ../shared/device/README.md says (parts .dev/partNN sent in
    #    earlier runs into /root/c/), then in the working run:
    cat /root/c/part* > /root/onnxruntime_gpu-1.31.1-cp312-cp312-manylinux_2_28_x86_64.whl \
      && python3 -m pip install -q --no-index --no-deps --target /root/ortgpu \
         /root/onnxruntime_gpu-*.whl \
      && export PYTHONPATH=/root/ortgpu:$PYTHONPATH \
         LD_LIBRARY_PATH=$(ls -d /opt/torch/.venv/lib/python3.12/site-packages/nvidia/*/lib \
         | tr '\n' ':')$LD_LIBRARY_PATH \
      && python3 benchmarks/gpu_device_verify.py --device 1 --out $OUT

It prints ``PASS``/``FAIL``/``INFO`` lines and writes ``$OUT/device_id_verify.json``; the
exit code is 0 only when every check passed.

How it checks: the parent process makes a context on every GPU and reads each GPU's free
memory (cudaMemGetInfo); a child process then runs the workload with ``--device N`` on a
worker thread that, like the node's inference thread, only calls ``bind_thread()``. While
the child holds its resources the parent reads free memory again (a stray context,
allocation or ORT arena on another GPU shows up there: a CUDA context alone costs
hundreds of MB) and lists the child's GPUs with nvidia-smi. Inside the child every
allocation of segformer_ros.cuda.runtime is checked with cudaPointerGetAttributes and
every kernel launch with cuCtxGetDevice.
"""

import argparse
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MiB = 1 << 20
# A GPU the workload must not touch may change by this much (other processes, driver noise).
OTHER_GPU_TOLERANCE = 8 * MiB
# The workload's GPU must show at least this much more use (context + buffers).
MIN_USE_ON_TARGET = 16 * MiB
Check = Tuple[str, str]   # (PASS | FAIL | INFO, message)


# ----------------------------------------------------------------------------- evaluation
def parse_smi_gpus(text: str) -> Dict[str, int]:
    """Map PCI bus id -> GPU index from ``nvidia-smi --query-gpu=index,pci.bus_id``."""
    out = {}
    for line in text.strip().splitlines():
        parts = [p.strip() for p in line.split(',')]
        if len(parts) >= 2 and parts[0].isdigit():
            out[normalize_bus_id(parts[1])] = int(parts[0])
    return out


def normalize_bus_id(bus_id: str) -> str:
    """Return 'BUS:DEV.FN' of a PCI bus id (the domain's width differs between queries)."""
    return ':'.join(bus_id.strip().upper().split(':')[-2:])


def parse_smi_apps(text: str, gpus: Dict[str, int]) -> Dict[int, List[int]]:
    """Map pid -> GPU indices from ``nvidia-smi --query-compute-apps=pid,gpu_bus_id``."""
    out: Dict[int, List[int]] = {}
    for line in text.strip().splitlines():
        parts = [p.strip() for p in line.split(',')]
        if len(parts) >= 2 and parts[0].isdigit():
            index = gpus.get(normalize_bus_id(parts[1]), -1)
            out.setdefault(int(parts[0]), []).append(index)
    return out


def evaluate(device: int, free_before: Sequence[int], free_during: Sequence[int],
             child: Dict[str, Any], smi_gpus_of_child: Optional[List[int]]) -> List[Check]:
    """Turn the measurements into PASS/FAIL/INFO lines (pure: unit-tested on the CPU)."""
    checks: List[Check] = []

    def add(ok: bool, msg: str) -> None:
        checks.append(('PASS' if ok else 'FAIL', msg))

    used = [int(b) - int(d) for b, d in zip(free_before, free_during)]
    add(used[device] >= MIN_USE_ON_TARGET,
        f'GPU {device} memory in use by the workload: {used[device] / MiB:.0f} MiB '
        f'(expected >= {MIN_USE_ON_TARGET // MiB} MiB)')
    for other, delta in enumerate(used):
        if other != device:
            add(abs(delta) <= OTHER_GPU_TOLERANCE,
                f'GPU {other} memory change while the workload ran: {delta / MiB:.1f} MiB '
                f'(expected |change| <= {OTHER_GPU_TOLERANCE // MiB} MiB: no context, '
                f'buffer or ORT arena there)')
    allocs = child.get('allocations', [])
    add(bool(allocs), f'{len(allocs)} allocations through segformer_ros.cuda.runtime seen')
    wrong = [a for a in allocs if a.get('current') != device or a.get('pointer') != device]
    add(not wrong, f'allocations on GPU {device} (current device and pointer attributes): '
                   f'{len(allocs) - len(wrong)}/{len(allocs)}' +
        (f'; first wrong: {wrong[0]}' if wrong else ''))
    launches = child.get('launch_devices', {})
    total = sum(int(n) for n in launches.values())
    add(total > 0 and set(launches) == {str(device)},
        f'kernel launches by context device: {launches} (expected only GPU {device})')
    add(int(child.get('frames', 0)) > 0 and not child.get('errors'),
        f'frames processed on the worker thread: {child.get("frames", 0)}; errors: '
        f'{child.get("errors") or "none"}')
    if child.get('ort_cuda'):
        add(child.get('ort_providers', [''])[0] == 'CUDAExecutionProvider',
            f'ONNX Runtime session providers: {child.get("ort_providers")}')
    else:
        checks.append(('INFO', 'ONNX Runtime CUDA provider not checked: onnxruntime-gpu is '
                               'not installed (mode A: the model ran on the CPU)'))
    if smi_gpus_of_child is None:
        checks.append(('INFO', 'nvidia-smi did not list the child process (not installed, or '
                               'another PID namespace); the memory check stands'))
    else:
        add(set(smi_gpus_of_child) == {device},
            f'nvidia-smi: the child process has contexts on GPUs {sorted(smi_gpus_of_child)} '
            f'(expected [{device}])')
    return checks


# ----------------------------------------------------------------------------- child
def _pick_model(shared: Path, model: str) -> Path:
    if model:
        return Path(model)
    path = shared / 'models' / 'deeplab_mnv_edgetpu_slim_cityscapes_nchw_f32.onnx'
    if not path.is_file():
        raise SystemExit(f'FAIL: model {path} not found; pass --model or --shared')
    return path


def child_main(args: argparse.Namespace) -> int:
    """Run the workload on ``args.device``; report over stdout; hold until told to finish."""
    import onnxruntime as ort

    from segformer_ros.backends.onnxruntime_backend import OnnxRuntimeBackend
    from segformer_ros.config import PipelineConfig
    from segformer_ros.cuda import kernels as K
    from segformer_ros.cuda import runtime as rt
    from segformer_ros.cuda.device_inference import HostInference, OrtCudaInference
    from segformer_ros.cuda.gpu_pipeline import GpuPipeline
    from segformer_ros.gpu_segmentation import select_pipeline

    rt_mod, drv, _ = rt.bindings()
    device = int(args.device)
    allocations: List[Dict[str, Any]] = []
    launches: Dict[str, int] = {}
    lock = threading.Lock()

    def pointer_device(ptr: int) -> int:
        attrs = rt.check(rt_mod.cudaPointerGetAttributes(ptr), 'cudaPointerGetAttributes')
        return int(attrs.device)

    def record(kind: str, ptr: int) -> None:
        current = int(rt.check(rt_mod.cudaGetDevice(), 'cudaGetDevice'))
        with lock:
            allocations.append({'kind': kind, 'current': current,
                                'pointer': pointer_device(ptr),
                                'thread': threading.current_thread().name})

    dev_init, host_init = rt.DeviceBuffer.__init__, rt.MappedHostBuffer.__init__

    def dev_buffer(self: Any, nbytes: int) -> None:
        dev_init(self, nbytes)
        record('device', self.ptr)

    def host_buffer(self: Any, nbytes: int) -> None:
        host_init(self, nbytes)
        record('mapped', self.device_ptr)

    launch = K.KernelModule.launch

    def counted_launch(self: Any, *a: Any, **k: Any) -> None:
        ctx_dev = int(rt.check(drv.cuCtxGetDevice(), 'cuCtxGetDevice'))
        with lock:
            launches[str(ctx_dev)] = launches.get(str(ctx_dev), 0) + 1
        launch(self, *a, **k)

    rt.DeviceBuffer.__init__ = dev_buffer            # type: ignore[method-assign]
    rt.MappedHostBuffer.__init__ = host_buffer       # type: ignore[method-assign]
    K.KernelModule.launch = counted_launch           # type: ignore[method-assign]

    model = _pick_model(Path(args.shared), args.model)
    ort_cuda = 'CUDAExecutionProvider' in ort.get_available_providers()
    logs: List[str] = []
    config = PipelineConfig()
    if ort_cuda:   # the node's path: backend onnxruntime/cuda with device_id, select_pipeline
        backend = OnnxRuntimeBackend(str(model), provider='cuda', device_id=device)
        backend.configure()
        pipeline: Any = select_pipeline('gpu', backend, config, 'cuda', logs.append)
        providers = list(backend.session.get_providers())
        bind = backend.bind_thread
    else:          # GPU pipeline on GPU `device`, the model on the CPU in between
        backend = OnnxRuntimeBackend(str(model), provider='cpu')
        backend.configure()
        session = backend.session
        spec = OrtCudaInference(session).device_io_spec()
        engine = HostInference(spec, lambda x: session.run([spec.output_name],
                                                           {spec.input_name: x})[0])
        pipeline = GpuPipeline(config, engine, device=device)
        providers = list(session.get_providers())

        def bind() -> None:
            rt.set_device(device)

    result: Dict[str, Any] = {'frames': 0, 'errors': []}

    def worker() -> None:   # like the node's segformer_inference thread
        try:
            bind()
            rng = np.random.default_rng(0)
            for _ in range(int(args.frames)):
                frame = rng.integers(0, 255, (720, 1280, 3), dtype=np.uint8)
                if ort_cuda:
                    pipeline.process(frame, 'bgr')
                else:
                    pipeline.process(frame, 'bgr8')
                result['frames'] += 1
            rt.check(rt_mod.cudaDeviceSynchronize(), 'cudaDeviceSynchronize')
        except Exception as exc:  # noqa: BLE001 - reported to the parent
            result['errors'].append(f'{type(exc).__name__}: {exc}')

    thread = threading.Thread(target=worker, name='segformer_inference')
    thread.start()
    thread.join()
    report = {'pid': os.getpid(), 'device': device, 'model': str(model), 'ort_cuda': ort_cuda,
              'ort_providers': providers, 'allocations': allocations,
              'launch_devices': launches, 'log': logs, **result}
    print('READY ' + json.dumps(report), flush=True)
    sys.stdin.readline()     # the parent measures while everything is still allocated
    pipeline.release()
    backend.release()
    return 0


# ----------------------------------------------------------------------------- parent
def _free_memory(rt: Any, count: int) -> List[int]:
    rt_mod, _, _ = rt.bindings()
    free = []
    for d in range(count):
        rt.set_device(d)
        free.append(int(rt.check(rt_mod.cudaMemGetInfo(), 'cudaMemGetInfo')[0]))
    return free


def _smi_gpus_of(pid: int) -> Optional[List[int]]:
    try:
        gpus = subprocess.run(['nvidia-smi', '--query-gpu=index,pci.bus_id',
                               '--format=csv,noheader'], capture_output=True, text=True,
                              timeout=30).stdout
        apps = subprocess.run(['nvidia-smi', '--query-compute-apps=pid,gpu_bus_id',
                               '--format=csv,noheader'], capture_output=True, text=True,
                              timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_smi_apps(apps, parse_smi_gpus(gpus)).get(pid)


def parent_main(args: argparse.Namespace) -> int:
    """Measure around a child that runs the workload; print PASS/FAIL; write the JSON."""
    from segformer_ros.cuda import runtime as rt
    rt_mod, _, _ = rt.bindings()
    count = int(rt.check(rt_mod.cudaGetDeviceCount(), 'cudaGetDeviceCount'))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if count <= int(args.device) or count < 2:
        print(f'FAIL: needs two GPUs and device {args.device}; found {count}')
        return 2
    free_before = _free_memory(rt, count)     # after this process's own contexts exist
    cmd = [sys.executable, str(Path(__file__).resolve()), '--child', '--device',
           str(args.device), '--frames', str(args.frames), '--shared', args.shared]
    if args.model:
        cmd += ['--model', args.model]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    child: Dict[str, Any] = {}
    lines = []
    assert proc.stdout is not None and proc.stdin is not None
    for line in proc.stdout:
        lines.append(line.rstrip())
        if line.startswith('READY '):
            child = json.loads(line[6:])
            break
    if not child:
        proc.wait(timeout=60)
        print('FAIL: the workload process ended without a report:\n' + '\n'.join(lines[-30:]))
        return 1
    free_during = _free_memory(rt, count)
    smi = _smi_gpus_of(int(child['pid']))
    proc.stdin.write('\n')
    proc.stdin.flush()
    proc.wait(timeout=120)
    checks = evaluate(int(args.device), free_before, free_during, child, smi)
    for status, msg in checks:
        print(f'{status}: {msg}')
    ok = all(s != 'FAIL' for s, _ in checks)
    print('PASS: device_id verified' if ok else 'FAIL: device_id verification failed')
    summary = {k: v for k, v in child.items() if k != 'allocations'}
    summary['allocation_count'] = len(child.get('allocations', []))
    (out / 'device_id_verify.json').write_text(json.dumps({
        'ok': ok, 'checks': checks, 'free_before': free_before, 'free_during': free_during,
        'nvidia_smi_gpus_of_child': smi, 'child': summary}, indent=1))
    return 0 if ok else 1


def main(argv: Optional[List[str]] = None) -> int:
    """Command-line entry point (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--device', type=int, default=1, help='GPU the workload must use')
    ap.add_argument('--frames', type=int, default=10, help='frames through the pipeline')
    ap.add_argument('--shared', default=str(Path(__file__).resolve().parents[2] / 'shared'),
                    help='the shared/ folder (models/)')
    ap.add_argument('--model', default='', help='ONNX model (default: shared DeepLab)')
    ap.add_argument('--out', default='/tmp/device_id_verify', help='folder for the JSON')
    ap.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    return child_main(args) if args.child else parent_main(args)


if __name__ == '__main__':
    sys.exit(main())
