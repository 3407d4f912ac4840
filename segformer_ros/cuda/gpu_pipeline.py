"""Zero-copy GPU pipeline: camera bytes -> engine input -> mask, overlay, summary counts.

Per frame (batch 1), all on one non-default stream:

1. the CPU copies the message bytes once (from the ``np.frombuffer`` view of the rclpy
   message) into a pinned, mapped host buffer; on an integrated GPU (Jetson) the kernels
   read it in place, on a discrete GPU one ``cudaMemcpyAsync`` moves it;
2. ``preprocess`` writes the engine input (NCHW, normalized) in device memory;
3. the inference engine runs on the same device pointers (TensorRT context, or ONNX
   Runtime's CUDA provider through IOBinding) -- anything implementing
   :class:`DeviceInference`;
4. the postprocess kernels write the mono8 mask, the overlay, the per-class and ROI
   histograms and the free-space boundary; on Jetson straight into mapped host buffers, on a
   discrete GPU into device buffers followed by one copy each into the mapped buffers;
5. the CPU publishes from the mapped buffers (valid until the next :meth:`process`) and
   computes the bin medians of the free-space boundary.

Steps 1-2 and 4 are captured as CUDA graphs after the first frame of a given size (the
whole frame when the engine says it can be captured); capture failures fall back to
plain launches. CUDA events time each stage (:attr:`GpuResult.times_ms`).
"""

import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ..backends.base import OutputKind
from ..config import PipelineConfig
from ..errors import BackendError, ImageFormatError
from ..geometry import ResizeGeometry, compute_geometry
from ..labels import palette_lut
from . import kernels as K
from . import runtime as rt

STAGES: Tuple[str, ...] = ('upload', 'preprocess', 'inference', 'postprocess', 'download')


@dataclass(frozen=True)
class DeviceIOSpec:
    """Engine I/O the pipeline allocates for (concrete shapes, batch 1)."""

    input_name: str
    input_shape: Tuple[int, ...]     # (1, 3, H, W)
    input_dtype: str                 # 'float32' or 'float16'
    output_name: str
    output_shape: Tuple[int, ...]    # (1, C, h, w) logits or (1, H, W) / (1, 1, H, W) ids
    output_dtype: str                # 'float32', 'float16', 'int32' or 'int64'
    output_kind: OutputKind
    graph_capturable: bool = False   # inference may be captured into a CUDA graph

    @property
    def input_nbytes(self) -> int:
        """Bytes of the input tensor."""
        return int(np.prod(self.input_shape)) * np.dtype(self.input_dtype).itemsize

    @property
    def output_nbytes(self) -> int:
        """Bytes of the output tensor."""
        return int(np.prod(self.output_shape)) * np.dtype(self.output_dtype).itemsize

    @property
    def map_hw(self) -> Tuple[int, int]:
        """(height, width) of the output map (logits plane or id map)."""
        return int(self.output_shape[-2]), int(self.output_shape[-1])


class DeviceInference:
    """What the pipeline needs from an engine: I/O spec and a run on device pointers."""

    def device_io_spec(self) -> DeviceIOSpec:
        """Return the engine's I/O (batch 1, concrete H/W)."""
        raise NotImplementedError

    def infer_device(self, input_ptr: int, output_ptr: int, stream_ptr: int) -> None:
        """Queue one inference reading ``input_ptr`` and writing ``output_ptr`` on the stream."""
        raise NotImplementedError


_ORT_DTYPES = {'tensor(float)': 'float32', 'tensor(float16)': 'float16',
               'tensor(int64)': 'int64', 'tensor(int32)': 'int32'}


class OrtCudaInference(DeviceInference):
    """ONNX Runtime CUDA-provider session run through IOBinding on the pipeline's pointers.

    Create the session with provider option ``user_compute_stream`` set to the pipeline
    stream (``same_stream=True``) so ORT's kernels queue behind the preprocess kernel;
    otherwise the stream is synchronized before each run.
    """

    def __init__(self, session: Any, input_hw: Optional[Tuple[int, int]] = None,
                 same_stream: bool = False, output_name: Optional[str] = None) -> None:
        self.session = session
        self.same_stream = same_stream
        inp = session.get_inputs()[0]
        outs = session.get_outputs()
        out = outs[0] if output_name is None else next(o for o in outs if o.name == output_name)
        shape = [d if isinstance(d, int) and d > 0 else None for d in inp.shape]
        if shape[2] is None or shape[3] is None:
            if input_hw is None:
                raise BackendError(f'model input {inp.name} has dynamic H/W {inp.shape}; '
                                   f'pass input_hw (input_height/input_width parameters)')
            shape[2], shape[3] = input_hw
        shape[0] = 1
        in_dtype = _ORT_DTYPES[inp.type]
        out_dtype = _ORT_DTYPES.get(out.type)
        if out_dtype is None:
            raise BackendError(f'output {out.name} has type {out.type}; expected float or int '
                               f'logits/ids')
        out_shape = [d if isinstance(d, int) and d > 0 else None for d in out.shape]
        if any(d is None for d in out_shape):
            # Dynamic output dims: one CPU-side run of zeros tells the concrete shape.
            probe = session.run([out.name], {inp.name: np.zeros(shape, dtype=in_dtype)})[0]
            out_shape = list(probe.shape)
        kind = OutputKind.LOGITS if out_dtype.startswith('float') else OutputKind.CLASS_IDS
        self._spec = DeviceIOSpec(inp.name, tuple(shape), in_dtype, out.name, tuple(out_shape),
                                  out_dtype, kind, graph_capturable=False)
        self._binding: Any = None
        self._bound: Tuple[int, int] = (0, 0)

    def device_io_spec(self) -> DeviceIOSpec:
        """See :class:`DeviceInference`."""
        return self._spec

    def infer_device(self, input_ptr: int, output_ptr: int, stream_ptr: int) -> None:
        """See :class:`DeviceInference`."""
        s = self._spec
        if self._binding is None or self._bound != (input_ptr, output_ptr):
            b = self.session.io_binding()
            b.bind_input(s.input_name, 'cuda', 0, np.dtype(s.input_dtype), list(s.input_shape),
                         input_ptr)
            b.bind_output(s.output_name, 'cuda', 0, np.dtype(s.output_dtype),
                          list(s.output_shape), output_ptr)
            self._binding, self._bound = b, (input_ptr, output_ptr)
        if not self.same_stream:
            rt.check(rt.bindings()[0].cudaStreamSynchronize(stream_ptr), 'cudaStreamSynchronize')
        self.session.run_with_iobinding(self._binding)


@dataclass
class GpuResult:
    """One frame's outputs; arrays are views of mapped buffers valid until the next frame."""

    mask: np.ndarray
    overlay: Optional[np.ndarray]
    class_counts: np.ndarray        # (256,) int32 pixel count per id (255 = unlabeled)
    roi_counts: np.ndarray          # (256,) int32 per id inside the ROI
    boundary: np.ndarray            # (W,) int32 free-space boundary row per column
    geometry: ResizeGeometry
    times_ms: Dict[str, float] = field(default_factory=dict)


def _frame_layout(frame: np.ndarray, encoding: str) -> Tuple[int, Tuple[int, int, int], str]:
    layout = K.encoding_layout(encoding)
    if layout is None:
        raise ImageFormatError(f'GPU pipeline reads 8-bit rgb8/bgr8/rgba8/bgra8/mono8 frames, '
                               f'got {encoding!r}; convert it on the CPU first (conversion.py)')
    cn, offsets = layout
    got = 1 if frame.ndim == 2 else frame.shape[2]
    if frame.dtype != np.uint8 or frame.ndim not in (2, 3) or got != cn:
        raise ImageFormatError(f'expected a uint8 frame with {cn} channel(s) for {encoding}, '
                               f'got {frame.dtype} {frame.shape}')
    order = 'gray' if cn == 1 else ('rgb' if offsets[0] == 0 else 'bgr')
    return cn, offsets, order


class GpuPipeline:
    """Batch-1 GPU pre/post-processing around a :class:`DeviceInference` engine."""

    def __init__(self, config: PipelineConfig, engine: DeviceInference, device: int = 0,
                 use_graphs: bool = True, timing: bool = True,
                 stream: Optional[rt.Stream] = None) -> None:
        rt.set_device(device)
        self.config = config
        self.engine = engine
        self.spec = engine.device_io_spec()
        self.info = rt.device_info(device)
        self.integrated = self.info.integrated
        self.use_graphs = use_graphs
        self.timing = timing
        self.graph_error: Optional[str] = None
        self.stream = stream or rt.Stream()
        logits_dtype = self.spec.output_dtype if self.spec.output_kind is OutputKind.LOGITS \
            else 'float32'
        self.kernels = K.KernelModule(self.info.sm, self.spec.input_dtype, logits_dtype)
        self.events = [rt.Event() for _ in range(len(STAGES) + 1)]
        self._buffers: List[Any] = []
        self._key: Optional[Tuple[Any, ...]] = None
        self._graphs: Dict[str, rt.Graph] = {}
        self._frames_at_key = 0
        # Constant tables: palette and drivable lookup, uploaded once.
        self._const = rt.DeviceBuffer(1024)
        pal = palette_lut(config.classes.colors).reshape(-1)[:768].astype(np.uint8)
        drv = np.zeros(256, np.uint8)
        drv[list(config.classes.drivable_ids)] = 1
        rt.copy_to_device(np.concatenate([pal, drv]), self._const.ptr)
        self.dev_input = rt.DeviceBuffer(self.spec.input_nbytes)
        self.dev_output = rt.DeviceBuffer(self.spec.output_nbytes)
        mh, mw = self.spec.map_hw
        self.dev_small = rt.DeviceBuffer(mh * mw)

    # ------------------------------------------------------------------ setup
    def _alloc(self, frame_h: int, frame_w: int, step: int, cn: int, offsets: Tuple[int, ...],
               order: str) -> None:
        """(Re)allocate the per-size buffers and pack the kernel arguments."""
        self._free_sized()
        cfg = self.config
        s = self.spec
        in_h, in_w = int(s.input_shape[2]), int(s.input_shape[3])
        geo = compute_geometry(frame_h, frame_w, in_h, in_w, cfg.preprocess.resize_policy)
        if cfg.postprocess.output_resolution == 'input':
            out_h, out_w = frame_h, frame_w
        else:
            out_h, out_w = geo.content_height, geo.content_width
        self.geometry, self.out_hw = geo, (out_h, out_w)
        frame_bytes = frame_h * step
        npx = out_h * out_w
        # Mapped host layout: frame | mask | overlay | counts (2 x 256 int32) | boundary.
        off_mask = _align(frame_bytes)
        off_ov = _align(off_mask + npx)
        off_cnt = _align(off_ov + 3 * npx)
        off_bnd = _align(off_cnt + 2 * 256 * 4)
        total = _align(off_bnd + 4 * out_w)
        self.mapped = rt.MappedHostBuffer(total)
        self._buffers.append(self.mapped)
        self.frame_host = self.mapped.host[:frame_bytes]
        self.mask_host = self.mapped.view(np.uint8, (out_h, out_w), off_mask)
        self.overlay_host = self.mapped.view(np.uint8, (out_h, out_w, 3), off_ov)
        counts = self.mapped.view(np.int32, (2, 256), off_cnt)
        self.counts_host = counts
        self.boundary_host = self.mapped.view(np.int32, (out_w,), off_bnd)
        mp = self.mapped.device_ptr
        self._out_span = (off_mask, total - off_mask)
        if self.integrated:
            # Kernels read the frame and write the results in place (shared DRAM).
            frame_dev, out_dev = mp, mp
        else:
            self.dev_frame = rt.DeviceBuffer(frame_bytes)
            self.dev_out = rt.DeviceBuffer(total)
            self._buffers += [self.dev_frame, self.dev_out]
            frame_dev, out_dev = self.dev_frame.ptr, self.dev_out.ptr
        self._frame_dev = frame_dev
        self._out_dev = out_dev
        self._frame_bytes = frame_bytes
        # ROI mask at the published size, rasterized once with the CPU path's function.
        from ..summary import roi_mask
        roi = np.ascontiguousarray(roi_mask(tuple(tuple(map(float, v))
                                                  for v in cfg.summary.roi_polygon),
                                            out_h, out_w))
        self.roi_pixel_count = int(roi.sum())
        self.dev_roi = rt.DeviceBuffer(npx)
        self._buffers.append(self.dev_roi)
        rt.copy_to_device(roi, self.dev_roi.ptr)

        norm = cfg.preprocess.normalization
        model_bgr = cfg.preprocess.channel_order == 'bgr'
        r, g, b = offsets
        o = (b, g, r) if model_bgr else (r, g, b)
        resized = (geo.content_height, geo.content_width) != (frame_h, frame_w)
        self.pre_args = K.KernelArgs('preprocess', dict(
            src=frame_dev, src_w=frame_w, src_h=frame_h, src_step=step, src_cn=cn,
            o0=o[0], o1=o[1], o2=o[2], dst=self.dev_input.ptr, dst_w=in_w, dst_h=in_h,
            c_top=geo.content_top, c_left=geo.content_left, c_h=geo.content_height,
            c_w=geo.content_width, sx=frame_w / geo.content_width,
            sy=frame_h / geo.content_height, round_px=int(resized),
            s0=norm.scale[0], s1=norm.scale[1], s2=norm.scale[2],
            b0=norm.bias[0], b1=norm.bias[1], b2=norm.bias[2], pad=cfg.preprocess.pad_value))
        self.pre_grid = K.grid_2d(in_w, in_h)

        mh, mw = s.map_hw
        target = geo if cfg.postprocess.output_resolution == 'input' else ResizeGeometry(
            geo.content_height, geo.content_width, in_h, in_w, geo.content_top,
            geo.content_left, geo.content_height, geo.content_width)
        # Sampling tables from the CPU path's own functions: identical indices and weights.
        from ..postprocessing import _bilinear_axis, nearest_indices
        sx, ox, sy, oy = target.frame_to_map(mh, mw)
        rows_n, cols_n = nearest_indices(target, mh, mw)
        cx0, cx1, cw = _bilinear_axis(out_w, sx, ox, mw)
        ry0, ry1, rw = _bilinear_axis(out_h, sy, oy, mh)
        tables = [cols_n.astype(np.int32), rows_n.astype(np.int32), cx0.astype(np.int32),
                  cx1.astype(np.int32), cw.astype(np.float32), ry0.astype(np.int32),
                  ry1.astype(np.int32), rw.astype(np.float32)]
        blob = np.concatenate([t.view(np.uint8) for t in tables])
        self.dev_tables = rt.DeviceBuffer(blob.nbytes)
        self._buffers.append(self.dev_tables)
        rt.copy_to_device(blob, self.dev_tables.ptr)
        ptrs, offset = [], 0
        for t in tables:
            ptrs.append(self.dev_tables.ptr + offset)
            offset += t.nbytes
        mapping = dict(zip(('col_n', 'row_n', 'col_i0', 'col_i1', 'col_w', 'row_i0', 'row_i1',
                            'row_w'), ptrs), map_w=mw, map_h=mh)
        overlay_order = 'rgb' if order == 'gray' else order
        epi = dict(mask=out_dev + off_mask, out_w=out_w, out_h=out_h,
                   num_classes=cfg.classes.num_classes, frame=frame_dev, frame_w=frame_w,
                   frame_h=frame_h, frame_step=step, frame_cn=cn, fr=r, fg=g, fb=b,
                   overlay=out_dev + off_ov, overlay_bgr=int(overlay_order == 'bgr'),
                   alpha=cfg.postprocess.overlay_alpha, palette=self._const.ptr,
                   hist=out_dev + off_cnt, roi=self.dev_roi.ptr,
                   roi_hist=out_dev + off_cnt + 1024)
        self._epi, self._mapping = epi, mapping
        self._off_cnt = off_cnt
        self.post_grid = K.grid_2d(out_w, out_h)
        self._post: List[Tuple[str, Tuple[int, int, int], Tuple[int, int, int], K.KernelArgs]]
        self._post = []
        if s.output_kind is OutputKind.LOGITS:
            channels = int(s.output_shape[1])
            if cfg.postprocess.upsample_mode == 'exact':
                self._post.append(('post_exact', self.post_grid, K.BLOCK_2D, K.KernelArgs(
                    'post_exact', dict(logits=self.dev_output.ptr, channels=channels,
                                       **mapping, **epi))))
            else:
                self._post.append(('argmax_logits', K.grid_1d(mh * mw), K.BLOCK_1D,
                                   K.KernelArgs('argmax_logits', dict(
                                       logits=self.dev_output.ptr, channels=channels, h=mh,
                                       w=mw, out=self.dev_small.ptr))))
                self._post.append(('post_map_u8', self.post_grid, K.BLOCK_2D, K.KernelArgs(
                    'post_map_u8', dict(ids=self.dev_small.ptr, **mapping, **epi))))
        else:
            name = 'post_ids_i64' if s.output_dtype == 'int64' else 'post_ids_i32'
            self._post.append((name, self.post_grid, K.BLOCK_2D, K.KernelArgs(
                name, dict(ids=self.dev_output.ptr, **mapping, **epi))))
        self._post.append(('free_space', K.grid_1d(out_w), K.BLOCK_1D, K.KernelArgs(
            'free_space', dict(mask=out_dev + off_mask, w=out_w, h=out_h,
                               drivable=self._const.ptr + 768,
                               boundary=out_dev + off_bnd))))

    # ------------------------------------------------------------------ stages
    def _upload_and_preprocess(self) -> None:
        st = self.stream
        if not self.integrated:
            rt.memcpy_async(self._frame_dev, self.mapped.device_ptr, self._frame_bytes, st)
        self._mark(1)
        self.kernels.launch('preprocess', self.pre_grid, K.BLOCK_2D, self.pre_args, st.ptr)

    def _postprocess(self) -> None:
        st = self.stream
        rt.memset_async(self._out_dev + self._off_cnt, 0, 2 * 256 * 4, st)
        for name, grid, block, args in self._post:
            self.kernels.launch(name, grid, block, args, st.ptr)
        self._mark(4)
        if not self.integrated:
            off, size = self._out_span
            rt.memcpy_async(self.mapped.device_ptr + off, self._out_dev + off, size, st)

    def _mark(self, i: int) -> None:
        if self.timing and not self._capturing:
            self.events[i].record(self.stream)

    _capturing = False

    def _capture(self, name: str, fn: Any) -> None:
        g = rt.Graph()
        self._capturing = True
        try:
            g.begin(self.stream)
            try:
                fn()
            except Exception:
                g.abort(self.stream)
                raise
            g.end(self.stream)
            self._graphs[name] = g
        except BackendError as exc:
            self.graph_error = f'CUDA graph capture of {name} failed ({exc}); plain launches'
            self.use_graphs = False
            for graph in self._graphs.values():
                graph.destroy()
            self._graphs = {}
        finally:
            self._capturing = False

    # ------------------------------------------------------------------ public API
    def process(self, frame: np.ndarray, encoding: str, want_overlay: bool = True) -> GpuResult:
        """Run one frame (H, W[, C]) uint8 with a sensor_msgs encoding; return its outputs.

        ``frame`` may be a row-strided view of the message data (step > W * C): the one
        CPU copy packs it into the mapped buffer.
        """
        cn, offsets, order = _frame_layout(frame, encoding)
        h, w = frame.shape[:2]
        step = w * cn
        key = (h, w, step, encoding)
        if key != self._key:
            self._alloc(h, w, step, cn, offsets, order)
            self._key, self._frames_at_key = key, 0
        # The one CPU copy: message bytes -> pinned mapped buffer.
        np.copyto(self.frame_host.reshape(frame.shape), frame)
        st = self.stream
        if self.timing:
            self.events[0].record(st)
        steady = self.use_graphs and self._frames_at_key >= 1
        if steady and not self._graphs:
            self._capture('pre', self._upload_and_preprocess)
            if self.use_graphs:
                self._capture('post', self._postprocess)
        if self.use_graphs and self._graphs:
            self._graphs['pre'].launch(st)
        else:
            self._upload_and_preprocess()
        self._mark(2)
        self.engine.infer_device(self.dev_input.ptr, self.dev_output.ptr, st.ptr)
        self._mark(3)
        if self.use_graphs and self._graphs:
            self._graphs['post'].launch(st)
        else:
            self._postprocess()
        self._mark(5)
        st.synchronize()
        self._frames_at_key += 1
        times: Dict[str, float] = {}
        if self.timing:
            ev = self.events
            graphed = bool(self.use_graphs and self._graphs)
            times['inference'] = ev[3].elapsed_ms(ev[2])
            times['total'] = ev[5].elapsed_ms(ev[0])
            if graphed:
                times['upload+preprocess'] = ev[2].elapsed_ms(ev[0])
                times['postprocess+download'] = ev[5].elapsed_ms(ev[3])
            else:
                times['upload'] = ev[1].elapsed_ms(ev[0])
                times['preprocess'] = ev[2].elapsed_ms(ev[1])
                times['postprocess'] = ev[4].elapsed_ms(ev[3])
                times['download'] = ev[5].elapsed_ms(ev[4])
        return GpuResult(self.mask_host, self.overlay_host if want_overlay else None,
                         self.counts_host[0], self.counts_host[1], self.boundary_host,
                         self.geometry, times)

    def input_device_ptr(self) -> int:
        """Device address of the engine input (for checks against the CPU preprocessing)."""
        return self.dev_input.ptr

    def output_device_ptr(self) -> int:
        """Device address of the engine output."""
        return self.dev_output.ptr

    def _free_sized(self) -> None:
        for g in self._graphs.values():
            g.destroy()
        self._graphs = {}
        for b in self._buffers:
            b.free()
        self._buffers = []

    def release(self) -> None:
        """Free every buffer, graph, event, the stream and the kernel module."""
        self._free_sized()
        for b in (self._const, self.dev_input, self.dev_output, self.dev_small):
            b.free()
        for e in self.events:
            e.destroy()
        self.kernels.unload()
        self.stream.destroy()


def _align(n: int, a: int = 256) -> int:
    return -(-n // a) * a


def free_space_rows(boundary: np.ndarray, bins: int) -> Tuple[List[int], List[int]]:
    """Column starts and per-bin median boundary rows (summary.py's convention)."""
    width = boundary.shape[0]
    bins = min(bins, width)
    starts = (np.arange(bins, dtype=np.int64) * width) // bins
    ends = np.append(starts[1:], width)
    rows = [int(np.floor(np.median(boundary[s:e]))) for s, e in zip(starts, ends)]
    return [int(s) for s in starts], rows


def wall_ms(fn: Any, *args: Any) -> Tuple[Any, float]:
    """Run ``fn(*args)``; return its result and the wall time in ms."""
    t = time.perf_counter()
    out = fn(*args)
    return out, (time.perf_counter() - t) * 1e3
