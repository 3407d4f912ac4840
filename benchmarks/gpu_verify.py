#!/usr/bin/env python3
"""Verify and time the zero-copy GPU pipeline on a CUDA machine; write JSON + markdown.

Run from the repo root (the device machine runs exactly this)::

    python3 benchmarks/gpu_verify.py --phase all --shared ../shared --out /tmp/gpu_verify

Phases (``--phase``, comma-separated):

* ``kernels``: GPU kernels vs the CPU path (preprocessing.py / postprocessing.py /
  overlay.py / summary.py) on real video frames, every encoding, stretch and letterbox,
  fast and exact upsampling, id maps; the engine is replaced by a copy of a known output
  so only the kernels are compared. Also per-kernel times vs their byte floors.
* ``bandwidth``: device-to-device and pinned host<->device copy bandwidth (the floors).
* ``hf``: Hugging Face transformers SegFormer-B0 (random init, 19 labels) fp16 eager at
  batch 1, 1024x1024 (the baseline), and the same model captured in a CUDA graph.
* ``hf`` also times the pipeline around that graph synchronously and with two frames in
  flight (``GpuPipeline(depth=2)``, submit N+1 then collect N) over 240 frames.
* ``cameras``: 1, 2, 4 cameras (1080p each) batched into one inference (graph per batch
  size) vs the same frames through batch-1 inferences one after another (issue 6).
* ``ort``: the whole pipeline on the shared DeepLab (inference by ONNX Runtime CPU between
  the GPU kernels -- integer-exact for its QDQ graph -- and by ORT's CUDA provider) and,
  when present, SegFormer-B0 (ORT CUDA through IOBinding on the pipeline's device
  pointers) vs the CPU path (ORT CPU); per-stage times at 1920x1080 -> 1024x1024.
* ``sanitize``: a small run of every kernel (for ``compute-sanitizer --tool memcheck``).
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from segformer_ros.backends.base import OutputKind  # noqa: E402
from segformer_ros.config import (Normalization, PipelineConfig, PostprocessConfig,  # noqa: E402
                                  PreprocessConfig)
from segformer_ros.cuda import kernels as K  # noqa: E402
from segformer_ros.cuda import runtime as rt  # noqa: E402
from segformer_ros.cuda.device_inference import (DeviceInference, DeviceIOSpec,  # noqa: E402
                                                 HostInference, OrtCudaInference)
from segformer_ros.cuda.gpu_pipeline import GpuPipeline  # noqa: E402

IMAGENET = Normalization((123.675, 116.28, 103.53), (58.395, 57.12, 57.375))
ENCODINGS = {'bgr8': 'bgr', 'rgb8': 'rgb', 'bgra8': 'bgr', 'rgba8': 'rgb', 'mono8': 'gray'}
RESULTS: Dict[str, Any] = {}
_STATE: Dict[str, Any] = {}   # objects shared between phases (not written out)


def log(msg: str) -> None:
    """Print a progress line immediately."""
    print(msg, flush=True)


# ----------------------------------------------------------------------------- data
def video_frames(shared: Path, n: int, size: Optional[Tuple[int, int]] = None,
                 stride: int = 20) -> List[np.ndarray]:
    """``n`` BGR frames of the shared driving clip, every ``stride``-th, optionally resized."""
    import cv2
    cap = cv2.VideoCapture(str(shared / 'data' / 'solidWhiteRight.mp4'))
    out: List[np.ndarray] = []
    i = 0
    while len(out) < n:
        ok, frame = cap.read()
        if not ok:
            break
        if i % stride == 0:
            if size is not None:
                frame = cv2.resize(frame, size, interpolation=cv2.INTER_LINEAR)
            out.append(np.ascontiguousarray(frame))
        i += 1
    cap.release()
    if not out:
        raise SystemExit(f'no frames read from {shared}/data/solidWhiteRight.mp4')
    return out


def as_encoding(bgr: np.ndarray, encoding: str) -> np.ndarray:
    """Convert a BGR frame to the array of a sensor_msgs encoding."""
    import cv2
    conv = {'bgr8': None, 'rgb8': cv2.COLOR_BGR2RGB, 'bgra8': cv2.COLOR_BGR2BGRA,
            'rgba8': cv2.COLOR_BGR2RGBA, 'mono8': cv2.COLOR_BGR2GRAY}[encoding]
    return bgr.copy() if conv is None else np.ascontiguousarray(cv2.cvtColor(bgr, conv))


class FixedOutputEngine(DeviceInference):
    """Stand-in engine: 'inference' copies a known output tensor to the output pointer."""

    def __init__(self, input_hw: Tuple[int, int], output: np.ndarray,
                 input_dtype: str = 'float32') -> None:
        self.output = np.ascontiguousarray(output)
        kind = OutputKind.LOGITS if output.dtype.kind == 'f' else OutputKind.CLASS_IDS
        self.spec = DeviceIOSpec('input', (1, 3) + tuple(input_hw), input_dtype, 'out',
                                 tuple(output.shape), str(output.dtype), kind, True)
        self.staging = rt.MappedHostBuffer(self.output.nbytes)
        self.staging.host[:] = self.output.view(np.uint8).reshape(-1)

    def device_io_spec(self) -> DeviceIOSpec:
        """See DeviceInference."""
        return self.spec

    def infer_device(self, input_ptr: int, output_ptr: int, stream_ptr: int,
                     frames: int = 0) -> None:
        """Copy the known output (graph-capturable)."""
        rt.check(rt.bindings()[0].cudaMemcpyAsync(
            output_ptr, self.staging.device_ptr, self.output.nbytes,
            rt.bindings()[0].cudaMemcpyKind.cudaMemcpyDefault, stream_ptr), 'cudaMemcpyAsync')


def device_input(pipe: GpuPipeline) -> np.ndarray:
    """Copy the engine input the preprocess kernel wrote back to the host."""
    s = pipe.spec
    out = np.empty(s.input_shape, dtype=s.input_dtype)
    return rt.copy_to_host(pipe.input_device_ptr(), out)


def cpu_post(output: np.ndarray, kind: OutputKind, frame: np.ndarray, order: str,
             cfg: PipelineConfig, geo: Any) -> Tuple[np.ndarray, np.ndarray, Any]:
    """Compute the CPU path's mask, overlay and summary of one output item."""
    from segformer_ros.labels import palette_lut
    from segformer_ros.overlay import blend_overlay
    from segformer_ros.postprocessing import ids_from_output
    from segformer_ros.summary import compute_summary
    item = output[0] if kind is OutputKind.LOGITS else output.reshape(output.shape[-2:])
    mask = ids_from_output(item, kind, geo, cfg.postprocess, cfg.classes.num_classes)
    ov = blend_overlay(frame, mask, palette_lut(cfg.classes.colors),
                       cfg.postprocess.overlay_alpha, order)
    return mask, ov, compute_summary(mask, cfg.classes, cfg.summary)


def compare_post(res: Any, mask: np.ndarray, ov: np.ndarray, summ: Any,
                 cfg: PipelineConfig, overlay_exact: bool = True) -> Dict[str, Any]:
    """Agreement of the GPU outputs with the CPU path's."""
    from segformer_ros.cuda.gpu_pipeline import free_space_rows
    from segformer_ros.summary import free_space_boundary
    n = cfg.classes.num_classes
    agree = float((res.mask == mask).mean())
    ov_diff = int(np.abs(res.overlay.astype(np.int16) - ov.astype(np.int16)).max())
    counts_ok = [int(c) for c in res.class_counts[:n]] == list(summ.class_pixel_counts)
    roi_ok = [int(c) for c in res.roi_counts[:n]] == list(summ.roi_class_pixel_counts)
    drv = np.zeros(256, bool)
    drv[list(cfg.classes.drivable_ids)] = True
    bnd_ref = free_space_boundary(drv[res.mask])
    _, rows = free_space_rows(res.boundary, cfg.summary.free_space_bins)
    return {'mask_agreement': agree, 'overlay_max_abs_diff': ov_diff,
            'class_counts_equal_on_gpu_mask': counts_ok if agree == 1.0 else None,
            'roi_counts_equal_on_gpu_mask': roi_ok if agree == 1.0 else None,
            'boundary_equal': bool(np.array_equal(res.boundary, bnd_ref)),
            'free_space_rows_equal': rows == list(summ.free_space_rows) if agree == 1.0
            else None}


# ------------------------------------------------------------------------ phases
def phase_kernels(shared: Path, out: Path, sanitize: bool = False) -> None:
    """GPU kernels vs the CPU path with a fixed engine output."""
    from segformer_ros.preprocessing import preprocess
    rng = np.random.default_rng(0)
    if sanitize:
        frames = [rng.integers(0, 256, (61, 97, 3), dtype=np.uint8)]
        in_hw, logit_hw, ids_hw = (64, 48), (16, 12), (33, 29)
    else:
        frames = video_frames(shared, 2, (1920, 1080))
        in_hw, logit_hw, ids_hw = (1024, 1024), (256, 256), (513, 513)
    rows: List[Dict[str, Any]] = []
    logits = rng.standard_normal((1, 19) + logit_hw).astype(np.float32)
    logits[0, :, 0, 0] = np.nan                     # an all-NaN pixel -> 255
    logits[0, 3, 1, 1] = np.inf                     # +inf wins
    ids = rng.integers(-2, 22, (1,) + ids_hw).astype(np.int64)  # some out of range
    for model, output, norm in (('logits', logits, IMAGENET), ('ids_i64', ids, Normalization()),
                                ('ids_i32', ids.astype(np.int32), Normalization())):
        for policy in ('stretch', 'letterbox'):
            modes = ('fast', 'exact') if model == 'logits' else ('fast',)
            for mode in modes:
                for res_name in ('input', 'model'):
                    encs = list(ENCODINGS) if (mode, res_name, policy) == (
                        'fast', 'input', 'stretch') or sanitize else ['bgr8']
                    for enc in encs:
                        cfg = PipelineConfig(
                            preprocess=PreprocessConfig(policy, 'rgb', norm, pad_value=114.0),
                            postprocess=PostprocessConfig(mode, res_name, 0.5))
                        engine = FixedOutputEngine(in_hw, output)
                        pipe = GpuPipeline(cfg, engine, use_graphs=True, timing=True)
                        for fi, bgr in enumerate(frames):
                            frame = as_encoding(bgr, enc)
                            order = ENCODINGS[enc]
                            r = pipe.process(frame, enc)
                            r = pipe.process(frame, enc)   # second run: graph replay
                            gin = device_input(pipe)
                            cin, geo = preprocess(frame, order, cfg.preprocess, in_hw)
                            dpix = np.abs(gin - cin) / np.array(norm.scale,
                                                                np.float32)[None, :, None, None]
                            cpu_frame = frame[:, :, :3] if frame.ndim == 3 else frame
                            mask, ov, summ = cpu_post(output, engine.spec.output_kind,
                                                      cpu_frame, order, cfg, geo)
                            row = {'model': model, 'policy': policy, 'mode': mode,
                                   'resolution': res_name, 'encoding': enc, 'frame': fi,
                                   'input_bit_exact': bool(np.array_equal(
                                       gin.view(np.uint32), cin.view(np.uint32))),
                                   'input_max_abs_diff_px': float(dpix.max()),
                                   'graphs': bool(pipe.slots[0].graphs)}
                            cmp = compare_post(r, mask, ov, summ, cfg)
                            if res_name == 'model':
                                cmp['overlay_max_abs_diff'] = None  # CPU uses INTER_AREA there
                            row.update(cmp)
                            rows.append(row)
                            log(json.dumps(row))
                        pipe.release()
                        engine.staging.free()
    RESULTS['kernels' if not sanitize else 'sanitize'] = rows


def _median_ms(fn: Callable[[], None], stream: rt.Stream, iters: int = 50,
               warmup: int = 5) -> float:
    start, end = rt.Event(), rt.Event()
    for _ in range(warmup):
        fn()
    stream.synchronize()
    times = []
    for _ in range(iters):
        start.record(stream)
        fn()
        end.record(stream)
        end.synchronize()
        times.append(end.elapsed_ms(start))
    return statistics.median(times)


def phase_bandwidth() -> None:
    """Measure device and host<->device copy bandwidth (the byte floors' denominators)."""
    rt.set_device(0)
    st = rt.Stream()
    n = 1 << 30
    a, b = rt.DeviceBuffer(n), rt.DeviceBuffer(n)
    rt.memset_async(a.ptr, 1, n, st)
    d2d = _median_ms(lambda: rt.memcpy_async(b.ptr, a.ptr, n, st), st, 20)
    h = rt.MappedHostBuffer(64 << 20)
    h.host[:] = 7
    h2d = _median_ms(lambda: rt.memcpy_async(a.ptr, h.host_ptr, 64 << 20, st), st, 20)
    d2h = _median_ms(lambda: rt.memcpy_async(h.host_ptr, a.ptr, 64 << 20, st), st, 20)
    info = rt.device_info(0)
    RESULTS['device'] = {'name': info.name, 'sm': info.sm, 'integrated': info.integrated}
    RESULTS['bandwidth_GBps'] = {
        'device_rw': 2 * n / d2d / 1e6, 'h2d_pinned': (64 << 20) / h2d / 1e6,
        'd2h_pinned': (64 << 20) / d2h / 1e6}
    log(json.dumps(RESULTS['bandwidth_GBps']))
    for buf in (a, b):
        buf.free()
    h.free()
    st.destroy()


def _graph_ms(launch: Callable[[rt.Stream], None], reps: int = 100) -> float:
    """Per-launch time of ``reps`` back-to-back launches replayed from one CUDA graph."""
    st = rt.Stream()
    g = rt.Graph()
    g.begin(st)
    for _ in range(reps):
        launch(st)
    g.end(st)
    ms = _median_ms(lambda: g.launch(st), st, iters=20, warmup=3) / reps
    g.destroy()
    st.destroy()
    return ms


def _kernel_times(pipe: GpuPipeline, frame: np.ndarray, enc: str) -> Dict[str, Any]:
    """Time each stage's kernel/copy alone (stream launch and graph replay); count bytes."""
    pipe.process(frame, enc)
    st = pipe.slots[0].stream
    im = pipe.slots[0].images[0]
    s = pipe.spec
    h, w = frame.shape[:2]
    cn = 1 if frame.ndim == 2 else frame.shape[2]
    oh, ow = im.out_hw
    mh, mw = s.map_hw
    out: Dict[str, Any] = {}
    bw = RESULTS['bandwidth_GBps']
    in_b = s.input_nbytes
    frame_b = h * w * cn
    up = (lambda t: rt.memcpy_async(im.frame_dev, im.mapped.device_ptr, im.frame_bytes, t))
    out['upload'] = (_median_ms(lambda: up(st), st), _graph_ms(up, 20), frame_b,
                     bw['h2d_pinned'])
    pre = (lambda t: pipe.kernels.launch('preprocess', im.pre_grid, K.BLOCK_2D, im.pre_args,
                                         t.ptr))
    # bytes: the frame read once, the input written once, the two small tables
    out['preprocess'] = (_median_ms(lambda: pre(st), st), _graph_ms(pre), frame_b + in_b,
                         bw['device_rw'])
    npx = oh * ow
    scanned = int(np.sum(oh - im.boundary_host + 1).clip(0, npx))
    for name, grid, block, args in im.post:
        if name == 'argmax_logits':
            nbytes = s.output_nbytes + mh * mw
        elif name == 'free_space':
            nbytes = min(scanned, npx) + 4 * ow
        else:
            src = mh * mw if name == 'post_map_u8' else (
                s.output_nbytes if name == 'post_exact' else mh * mw * (
                    8 if s.output_dtype == 'int64' else 4))
            # reads: ids/logits + frame (overlay) + ROI mask; writes: mask + overlay
            nbytes = src + npx * cn + npx + npx + 3 * npx

        def launch(t: rt.Stream, n: str = name, g: Any = grid, b: Any = block,
                   a: Any = args) -> None:
            pipe.kernels.launch(n, g, b, a, t.ptr)
        out[name] = (_median_ms(lambda: launch(st), st), _graph_ms(launch), nbytes,
                     bw['device_rw'])
    off, size = im.out_span
    down = (lambda t: rt.memcpy_async(im.mapped.device_ptr + off, im.out_dev + off, size, t))
    out['download'] = (_median_ms(lambda: down(st), st), _graph_ms(down, 20), size,
                       bw['d2h_pinned'])
    table = {}
    for k, (ms, gms, nbytes, gbps) in out.items():
        floor = nbytes / gbps / 1e6
        table[k] = {'ms': ms, 'graph_ms': gms, 'bytes': nbytes, 'floor_ms': floor,
                    'x_floor': ms / floor, 'graph_x_floor': gms / floor}
    return table


class TorchGraphInference(DeviceInference):
    """HF SegFormer fp16 captured in a CUDA graph (a stand-in for a TensorRT fp16 engine)."""

    def __init__(self, model: Any, stream_ptr: int, batch: int = 1) -> None:
        import torch
        self.torch = torch
        self.static_in = torch.zeros((batch, 3, 1024, 1024), dtype=torch.float16,
                                     device='cuda')
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.no_grad(), torch.cuda.stream(side):
            for _ in range(3):
                model(pixel_values=self.static_in)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.no_grad(), torch.cuda.graph(self.graph):
            self.static_out = model(pixel_values=self.static_in).logits
        torch.cuda.synchronize()
        self.ext = torch.cuda.ExternalStream(stream_ptr)
        self.spec = DeviceIOSpec('pixel_values', (batch, 3, 1024, 1024), 'float16', 'logits',
                                 tuple(self.static_out.shape), 'float16', OutputKind.LOGITS)

    def device_io_spec(self) -> DeviceIOSpec:
        """See DeviceInference."""
        return self.spec

    def infer_device(self, input_ptr: int, output_ptr: int, stream_ptr: int,
                     frames: int = 0) -> None:
        """Copy in, replay the graph on the pipeline stream, copy out."""
        st = _PtrStream(stream_ptr)
        rt.memcpy_async(self.static_in.data_ptr(), input_ptr, self.spec.input_nbytes, st)
        with self.torch.cuda.stream(self.ext):
            self.graph.replay()
        rt.memcpy_async(output_ptr, self.static_out.data_ptr(), self.spec.output_nbytes, st)


class _PtrStream:
    """Minimal Stream look-alike around a raw cudaStream_t integer."""

    def __init__(self, ptr: int) -> None:
        self.handle = ptr
        self.ptr = ptr


def _hf_model() -> Any:
    import torch
    from transformers import SegformerConfig, SegformerForSemanticSegmentation
    torch.manual_seed(0)
    return SegformerForSemanticSegmentation(SegformerConfig(num_labels=19)).cuda().half().eval()


def _eager_ms(model: Any, batch: int = 1, iters: int = 100) -> float:
    """Median wall ms of HF eager fp16 inference (synchronized), batch ``batch``."""
    import torch
    x = torch.randn(batch, 3, 1024, 1024, device='cuda', dtype=torch.float16)
    with torch.no_grad():
        for _ in range(10):
            model(pixel_values=x)
        torch.cuda.synchronize()
        ts = []
        for _ in range(iters):
            t = time.perf_counter()
            model(pixel_values=x)
            torch.cuda.synchronize()
            ts.append((time.perf_counter() - t) * 1e3)
    return statistics.median(ts)


def _pipelined_fps(pipe: GpuPipeline, items: List[Any], n: int, batched: bool) -> float:
    """Steady-state submissions/s with two in flight (submit N+1, then collect N)."""
    submit = pipe.submit_batch if batched else (lambda f: pipe.submit(f, 'bgr8'))
    collect = pipe.collect_batch if batched else pipe.collect
    for i in range(6):                            # warm-up, graph capture in both slots
        collect(submit(items[i % len(items)]))
    t = time.perf_counter()
    prev = submit(items[0])
    for i in range(1, n):
        cur = submit(items[i % len(items)])
        collect(prev)
        prev = cur
    collect(prev)
    return n / (time.perf_counter() - t)


def _sync_wall_ms(fn: Callable[[Any], Any], items: List[Any], n: int) -> List[float]:
    for i in range(4):
        fn(items[i % len(items)])
    walls = []
    for i in range(n):
        t = time.perf_counter()
        fn(items[i % len(items)])
        walls.append((time.perf_counter() - t) * 1e3)
    return walls


def phase_hf(out: Path, shared: Path, n_frames: int = 240) -> None:
    """HF SegFormer-B0 fp16 eager baseline, its CUDA-graph replay, and the pipeline with it."""
    model = _hf_model()
    eager = _eager_ms(model)
    st = rt.Stream()
    rt.set_device(0)
    eng = TorchGraphInference(model, st.ptr)
    graph_ms = _median_ms(lambda: eng.infer_device(eng.static_in.data_ptr(),
                                                   eng.static_out.data_ptr(), st.ptr), st, 100)
    cfg = PipelineConfig(preprocess=PreprocessConfig('stretch', 'rgb', IMAGENET))
    pipe = GpuPipeline(cfg, eng, use_graphs=True, timing=True, stream=st, depth=2)
    frames = video_frames(shared, 8, (1920, 1080), stride=10)
    per = []
    walls = _sync_wall_ms(lambda f: per.append(pipe.process(f, 'bgr8').times_ms), frames,
                          n_frames)
    per = per[4:]
    fps_sync = 1e3 * n_frames / sum(walls)
    fps_pipe = _pipelined_fps(pipe, frames, n_frames, batched=False)
    eager_after = _eager_ms(model)               # the baseline again: drift check
    RESULTS['hf'] = {'eager_fp16_ms': eager, 'eager_fp16_ms_again': eager_after,
                     'graph_fp16_ms': graph_ms, 'frames': n_frames,
                     'pipeline_with_graph_fp16': {
                         'wall_ms_median': statistics.median(walls),
                         'gpu_total_ms_median': statistics.median(p['total'] for p in per),
                         'stages_ms_median': {k: statistics.median(p[k] for p in per)
                                              for k in per[0]},
                         'fps_sync': fps_sync, 'fps_two_in_flight': fps_pipe},
                     'fps_ratio_vs_eager_sync': fps_sync * eager / 1e3,
                     'fps_ratio_vs_eager_two_in_flight': fps_pipe * eager / 1e3}
    RESULTS['hf']['kernel_floors'] = _kernel_times(pipe, frames[0], 'bgr8')
    log(json.dumps(RESULTS['hf'], indent=1))
    pipe.release()
    _STATE['hf_model'] = model


def phase_cameras(shared: Path, n_rounds: int = 100) -> None:
    """Issue 6 on the GPU: N 1080p cameras batched into one inference vs N batch-1 runs."""
    model = _STATE.get('hf_model') or _hf_model()
    rt.set_device(0)
    st = rt.Stream()
    cfg = PipelineConfig(preprocess=PreprocessConfig('stretch', 'rgb', IMAGENET))
    frames = video_frames(shared, 8, (1920, 1080), stride=10)
    eng1 = TorchGraphInference(model, st.ptr, 1)
    single = GpuPipeline(cfg, eng1, stream=st, depth=2)
    rows = []
    for n in (1, 2, 4):
        cams = [(frames[i], 'bgr8') for i in range(n)]
        rounds = [[(frames[(r + i) % 8], 'bgr8') for i in range(n)] for r in range(8)]
        engn = eng1 if n == 1 else TorchGraphInference(model, st.ptr, n)
        batched = single if n == 1 else GpuPipeline(cfg, engn, stream=st, depth=2)
        infer_ms = _median_ms(lambda: engn.infer_device(engn.static_in.data_ptr(),
                                                        engn.static_out.data_ptr(), st.ptr),
                              st, 50)
        b_lat = _sync_wall_ms(batched.process_batch, rounds, n_rounds)
        s_lat = _sync_wall_ms(lambda fr: [single.process(f, e) for f, e in fr], rounds,
                              n_rounds)
        b_fps = n * _pipelined_fps(batched, rounds, n_rounds, batched=True)
        s_fps = _pipelined_fps(single, [f for r in rounds for f, _ in r], n * n_rounds,
                               batched=False)
        rows.append({'cameras': n, 'inference_ms_batch': infer_ms,
                     'batched_latency_ms_median': statistics.median(b_lat),
                     'sequential_latency_ms_median': statistics.median(s_lat),
                     'batched_fps_sync': 1e3 * n / statistics.median(b_lat),
                     'sequential_fps_sync': 1e3 * n / statistics.median(s_lat),
                     'batched_fps_two_in_flight': b_fps,
                     'sequential_fps_two_in_flight': s_fps})
        log(json.dumps(rows[-1]))
        del cams
        if n != 1:
            batched.release()
    single.release()
    RESULTS['cameras'] = rows


def _ort_session(model: Path, provider: str, stream_ptr: int = 0, tf32: bool = True) -> Any:
    import onnxruntime as ort
    if provider == 'cuda' and hasattr(ort, 'preload_dlls'):
        ort.preload_dlls()  # CUDA/cuDNN libraries of the nvidia-* wheels
    so = ort.SessionOptions()
    so.log_severity_level = 3
    if provider == 'cuda':
        opts = {'device_id': 0, 'cudnn_conv_algo_search': 'EXHAUSTIVE', 'use_tf32': int(tf32)}
        if stream_ptr:
            opts['user_compute_stream'] = str(stream_ptr)
        return ort.InferenceSession(str(model), so, providers=[('CUDAExecutionProvider', opts)])
    return ort.InferenceSession(str(model), so, providers=['CPUExecutionProvider'])


def phase_ort(shared: Path, out: Path, n_frames: int) -> None:
    """Whole pipeline with ORT CUDA vs the CPU path (ORT CPU) on real frames; timings."""
    import onnxruntime as ort
    from segformer_ros.backends.onnxruntime_backend import OnnxRuntimeBackend
    from segformer_ros.pipeline import SegmentationPipeline
    from segformer_ros.preprocessing import preprocess
    RESULTS['ort'] = {'version': ort.__version__, 'providers': ort.get_available_providers()}
    models = shared / 'models'
    rt.set_device(0)
    deeplab = models / 'deeplab_mnv_edgetpu_slim_cityscapes_nchw_f32.onnx'
    segformer = models / 'segformer_b0_random_1024.onnx'
    # (name, model, normalization, upsampling, inference): 'host_cpu' runs the model with
    # the CPU path's own ORT CPU session between the GPU kernels (integer-exact QDQ).
    cases = [
        ('deeplab', deeplab, Normalization(), 'fast', 'host_cpu'),
        ('deeplab', deeplab, Normalization(), 'fast', 'cuda'),
        ('segformer_b0_random', segformer, IMAGENET, 'fast', 'cuda'),
        ('segformer_b0_random', segformer, IMAGENET, 'exact', 'cuda'),
    ]
    frames = video_frames(shared, n_frames, (1920, 1080), stride=15)
    for name, path, norm, mode, infer in cases:
        if not path.is_file():
            log(f'skipping {name}: {path} not found')
            continue
        cfg = PipelineConfig(preprocess=PreprocessConfig('stretch', 'rgb', norm),
                             postprocess=PostprocessConfig(mode, 'input', 0.5))
        st = rt.Stream()
        cpu_backend = OnnxRuntimeBackend(str(path), provider='cpu')
        cpu_backend.configure()
        cpu = SegmentationPipeline(cpu_backend, cfg)
        cuda_eng = OrtCudaInference(_ort_session(path, 'cuda', st.ptr), same_stream=True)
        eng: DeviceInference = cuda_eng
        if infer == 'host_cpu':
            spec0 = cuda_eng.device_io_spec()
            sess = cpu_backend.session
            eng = HostInference(spec0, lambda x, s0=spec0, ss=sess: ss.run(
                [s0.output_name], {s0.input_name: x})[0])
        pipe = GpuPipeline(cfg, eng, use_graphs=True, timing=True, stream=st)
        in_hw = tuple(eng.device_io_spec().input_shape[2:])
        agree, logit_err, rows = [], [], []
        for i, f in enumerate(frames):
            r = pipe.process(f, 'bgr8')
            c = cpu.process(f, 'bgr', want_overlay=True, want_summary=True)
            a = float((r.mask == c.mask).mean())
            agree.append(a)
            row = {'frame': i, 'mask_agreement': a}
            # Where disagreement comes from: GPU preprocessing fed to the CPU inference, and
            # the CPU preprocessing fed to the CUDA inference, each through the CPU
            # postprocessing, compared with the CPU path.
            from segformer_ros.postprocessing import ids_from_output
            spec = eng.device_io_spec()
            gin = device_input(pipe)
            cin, geo = preprocess(f, 'bgr', cfg.preprocess, in_hw)
            n = cfg.classes.num_classes

            def post(o: np.ndarray) -> np.ndarray:
                item = o[0] if spec.output_kind is OutputKind.LOGITS else o.reshape(
                    o.shape[-2:])
                return ids_from_output(item, spec.output_kind, geo, cfg.postprocess, n)
            row['agree_gpu_pre_cpu_infer'] = float((post(cpu_backend.infer(gin)) == c.mask)
                                                   .mean())
            row['input_bit_exact'] = bool(np.array_equal(gin.view(np.uint32),
                                                         cin.view(np.uint32)))
            cuda_out = cuda_eng.session.run(None, {spec.input_name: cin})[
                [o.name for o in cuda_eng.session.get_outputs()].index(spec.output_name)]
            row['agree_cpu_pre_cuda_infer'] = float((post(cuda_out) == c.mask).mean())
            if eng.device_io_spec().output_kind is OutputKind.LOGITS:
                g_logits = rt.copy_to_host(pipe.output_device_ptr(),
                                           np.empty(eng.device_io_spec().output_shape, np.float32))
                cin, _ = preprocess(f, 'bgr', cfg.preprocess, in_hw)
                c_logits = cpu_backend.infer(cin)
                err = float(np.linalg.norm(g_logits - c_logits) / np.linalg.norm(c_logits))
                logit_err.append(err)
                top2 = np.sort(c_logits[0], axis=0)[-2:]
                row.update(logits_rel_l2=err,
                           logits_max_abs=float(np.abs(g_logits - c_logits).max()),
                           frac_near_tie_lt_1e_2=float(((top2[1] - top2[0]) < 1e-2).mean()))
            rows.append(row)
            log(f'{name} {mode} {infer} frame {i}: {row}')
        # timing: steady state with graphs around ORT
        per, walls = [], []
        for _ in range(3):
            for f in frames:
                t = time.perf_counter()
                r = pipe.process(f, 'bgr8')
                walls.append((time.perf_counter() - t) * 1e3)
                per.append(r.times_ms)
        stages = {k: statistics.median(p[k] for p in per) for k in per[0]}
        entry = {'model': name, 'mode': mode, 'inference': infer, 'frames': len(frames),
                 'input_bit_exact_all': all(r['input_bit_exact'] for r in rows),
                 'agree_gpu_pre_cpu_infer_min': min(r['agree_gpu_pre_cpu_infer'] for r in rows),
                 'agree_cpu_pre_cuda_infer_min': min(r['agree_cpu_pre_cuda_infer']
                                                     for r in rows),
                 'mask_agreement_min': min(agree), 'mask_agreement_mean': float(np.mean(agree)),
                 'logits_rel_l2_max': max(logit_err) if logit_err else None,
                 'rows': rows, 'stages_ms_median_graphs': stages,
                 'wall_ms_median': statistics.median(walls),
                 'graph_error': pipe.graph_error}
        if 'bandwidth_GBps' in RESULTS and name.startswith('segformer'):
            entry['kernel_floors'] = _kernel_times(pipe, frames[0], 'bgr8')
            # per-stage split without graphs
            pipe.use_graphs = False
            for slot in pipe.slots:
                for g in slot.graphs.values():
                    g.destroy()
                slot.graphs = {}
            per2 = [pipe.process(f, 'bgr8').times_ms for f in frames * 2]
            entry['stages_ms_median_plain'] = {k: statistics.median(p[k] for p in per2)
                                               for k in per2[0]}
        RESULTS.setdefault('ort_cases', []).append(entry)
        log(json.dumps({k: v for k, v in entry.items() if k != 'rows'}, indent=1))
        pipe.release()
        cpu_backend.release()
        st.destroy()


# ------------------------------------------------------------------------ report
def _floor_table(rows: Dict[str, Any]) -> List[str]:
    out = ['\n| stage | ms (stream launch) | ms (graph replay) | bytes | floor ms | x floor '
           '(launch / graph) |', '|---|---|---|---|---|---|']
    for k, v in rows.items():
        out.append(f"| {k} | {v['ms']:.4f} | {v['graph_ms']:.4f} | {v['bytes']} | "
                   f"{v['floor_ms']:.4f} | {v['x_floor']:.2f} / {v['graph_x_floor']:.2f} |")
    return out


def markdown(res: Dict[str, Any]) -> str:
    """Markdown tables of the results."""
    lines = []
    dev = res.get('device', {})
    lines.append(f"GPU: {dev.get('name', '?')} ({dev.get('sm', '?')}, integrated="
                 f"{dev.get('integrated', '?')})")
    bw = res.get('bandwidth_GBps')
    if bw:
        lines.append(f"Measured bandwidth: device {bw['device_rw']:.0f} GB/s (read+write), "
                     f"pinned H2D {bw['h2d_pinned']:.1f} GB/s, D2H {bw['d2h_pinned']:.1f} GB/s")
    if 'kernels' in res:
        rows = res['kernels']
        lines.append(f"\nKernel checks: {len(rows)} cases; input bit-exact in "
                     f"{sum(r['input_bit_exact'] for r in rows)}; min mask agreement "
                     f"{min(r['mask_agreement'] for r in rows):.6f}; max overlay diff "
                     f"{max((r['overlay_max_abs_diff'] or 0) for r in rows)}; max input diff "
                     f"{max(r['input_max_abs_diff_px'] for r in rows):.3f} px")
    for c in res.get('ort_cases', []):
        lines.append(f"\n{c['model']} ({c['mode']}, inference {c['inference']}): input "
                     f"bit-exact {c['input_bit_exact_all']}; mask agreement min "
                     f"{c['mask_agreement_min']*100:.3f}% mean {c['mask_agreement_mean']*100:.3f}%"
                     f" over {c['frames']} frames; logits rel L2 max {c['logits_rel_l2_max']}; "
                     f"GPU preprocessing + CPU inference vs CPU path min "
                     f"{c['agree_gpu_pre_cpu_infer_min']*100:.3f}%; CPU preprocessing + CUDA "
                     f"inference vs CPU path min {c['agree_cpu_pre_cuda_infer_min']*100:.3f}%")
        lines.append(f"stages (graphs) ms: {json.dumps(c['stages_ms_median_graphs'])}; wall "
                     f"{c['wall_ms_median']:.3f} ms")
        if 'stages_ms_median_plain' in c:
            lines.append(f"stages (plain) ms: {json.dumps(c['stages_ms_median_plain'])}")
        if 'kernel_floors' in c:
            lines += _floor_table(c['kernel_floors'])
    hf = res.get('hf')
    if hf:
        p = hf['pipeline_with_graph_fp16']
        lines.append(f"\nHF SegFormer-B0 fp16 eager: {hf['eager_fp16_ms']:.3f} ms (again after: "
                     f"{hf['eager_fp16_ms_again']:.3f}); CUDA graph: {hf['graph_fp16_ms']:.3f} "
                     f"ms; pipeline (graph engine) over {hf['frames']} frames: sync wall "
                     f"{p['wall_ms_median']:.3f} ms = {p['fps_sync']:.1f} fps "
                     f"({hf['fps_ratio_vs_eager_sync']:.2f}x eager); two in flight "
                     f"{p['fps_two_in_flight']:.1f} fps "
                     f"({hf['fps_ratio_vs_eager_two_in_flight']:.2f}x eager); stages "
                     f"{json.dumps(p['stages_ms_median'])}")
        lines += _floor_table(hf['kernel_floors'])
    if 'cameras' in res:
        lines.append('\n| cameras | inference ms (batch) | batched latency ms | sequential '
                     'latency ms | batched fps (sync / 2 in flight) | sequential fps (sync / '
                     '2 in flight) |\n|---|---|---|---|---|---|')
        for r in res['cameras']:
            lines.append(f"| {r['cameras']} | {r['inference_ms_batch']:.3f} | "
                         f"{r['batched_latency_ms_median']:.3f} | "
                         f"{r['sequential_latency_ms_median']:.3f} | "
                         f"{r['batched_fps_sync']:.1f} / {r['batched_fps_two_in_flight']:.1f} | "
                         f"{r['sequential_fps_sync']:.1f} / "
                         f"{r['sequential_fps_two_in_flight']:.1f} |")
    if res.get('failures'):
        lines.append(f"\nFAILURES: {res['failures']}")
    return '\n'.join(lines) + '\n'


def main(argv: Optional[List[str]] = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--phase', default='bandwidth,kernels,hf,cameras,ort')
    ap.add_argument('--shared',
                    default=str(Path(__file__).resolve().parents[2] / 'shared'))
    ap.add_argument('--out', default=os.environ.get('OUT', '/tmp/gpu_verify'))
    ap.add_argument('--frames', type=int, default=8)
    ap.add_argument('--tag', default='gpu_verify')
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    shared = Path(args.shared)
    phases = args.phase.split(',')
    failures = []
    for ph in phases:
        t = time.perf_counter()
        try:
            if ph == 'bandwidth':
                phase_bandwidth()
            elif ph == 'kernels':
                phase_kernels(shared, out)
            elif ph == 'sanitize':
                phase_kernels(shared, out, sanitize=True)
            elif ph == 'hf':
                phase_hf(out, shared)
            elif ph == 'cameras':
                phase_cameras(shared)
            elif ph == 'ort':
                phase_ort(shared, out, args.frames)
            else:
                raise SystemExit(f'unknown phase {ph}')
        except Exception as exc:  # keep going: later phases still report
            import traceback
            traceback.print_exc()
            failures.append(f'{ph}: {type(exc).__name__}: {exc}')
        log(f'phase {ph} took {time.perf_counter() - t:.1f} s')
        RESULTS['failures'] = failures
        (out / f'{args.tag}.json').write_text(json.dumps(RESULTS, indent=1, default=str))
        (out / f'{args.tag}.md').write_text(markdown(RESULTS))
    print(markdown(RESULTS))
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
