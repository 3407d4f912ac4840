"""Zero-copy GPU pipeline: camera bytes -> engine input -> mask, overlay, summary counts.

Per submission (one frame, or one frame from each of up to ``batch`` cameras):

1. the CPU copies the message bytes once (from the ``np.frombuffer`` view of the rclpy
   message) into a pinned, mapped host buffer; on an integrated GPU (Jetson) the kernels
   read it in place, on a discrete GPU one ``cudaMemcpyAsync`` moves it;
2. ``preprocess`` writes the engine input (NCHW, normalized, bit-identical to
   ``preprocessing.py``) in device memory, one batch item per frame;
3. the inference engine runs on the same device pointers (TensorRT context, or ONNX
   Runtime's CUDA provider through IOBinding) -- anything implementing
   :class:`~.device_inference.DeviceInference` -- on the pipeline's inference stream;
4. the postprocess kernels write the mono8 mask, the overlay, the per-class and ROI
   histograms and the free-space boundary; on Jetson straight into mapped host buffers, on a
   discrete GPU into device buffers followed by one copy each into the mapped buffers;
5. the CPU publishes from the mapped buffers and computes the bin medians of the
   free-space boundary.

Frames in flight: the buffers of steps 1-2 and 4-5 live in a ring of ``depth`` slots,
each with its own stream; inference runs on one stream shared by all slots (an engine
has one set of bindings), ordered by events. With ``depth=2``, :meth:`GpuPipeline.submit`
of frame N+1 (host copy, upload, preprocess) overlaps frame N's inference, and frame N's
postprocess and download overlap frame N+1's inference; :meth:`GpuPipeline.collect`
returns a submission's results. :meth:`GpuPipeline.process` is submit + collect.

Steps 1-2 and 4-5 are captured as CUDA graphs per slot after the slot's first frame of a
given size; capture failures fall back to plain launches. CUDA events time each stage
(:attr:`GpuResult.times_ms`).
"""

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..backends.base import OutputKind
from ..config import PipelineConfig
from ..errors import BackendError, ImageFormatError
from ..geometry import ResizeGeometry, compute_geometry
from ..labels import palette_lut
from ..output_size import published_geometry
from . import kernels as K
from . import runtime as rt
from .device_inference import DeviceInference
from .frame_ring import FrameRing, GpuTicket
from .resize_tables import resize_tables

STAGES: Tuple[str, ...] = ('upload', 'preprocess', 'inference', 'postprocess', 'download')
# Event indices per slot: start, uploaded, preprocessed, inference start / end,
# postprocessed, downloaded.
_EV_START, _EV_UP, _EV_PRE, _EV_INF0, _EV_INF1, _EV_POST, _EV_END = range(7)


@dataclass
class GpuResult:
    """One frame's outputs: views of its slot's mapped buffers, valid until the slot is reused.

    With ``depth`` slots that is ``depth`` submissions later; copy what you keep longer.
    """

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
        raise ImageFormatError(f'GPU pipeline reads rgb/bgr(a)/mono 8- or 16-bit frames, got '
                               f'{encoding!r}; convert it on the CPU first (conversion.py)')
    cn, offsets = layout
    got = 1 if frame.ndim == 2 else frame.shape[2]
    if frame.dtype != np.uint8 or frame.ndim not in (2, 3) or got != cn:
        raise ImageFormatError(f'expected a uint8 frame with {cn} channel(s) for {encoding}, '
                               f'got {frame.dtype} {frame.shape}; for 16-bit encodings pass '
                               f'the uint8 high-byte view of conversion.image_fields_to_array')
    order = 'gray' if cn == 1 else ('rgb' if offsets[0] == 0 else 'bgr')
    return cn, offsets, order


class _Image:
    """Buffers and launch arguments of one frame position of a slot (one camera's frame)."""

    def __init__(self, pipe: 'GpuPipeline', slot: '_Slot', index: int, frame_h: int,
                 frame_w: int, cn: int, offsets: Tuple[int, int, int], order: str) -> None:
        cfg, s = pipe.config, pipe.spec
        self.buffers: List[Any] = []
        in_h, in_w = int(s.input_shape[2]), int(s.input_shape[3])
        geo = compute_geometry(frame_h, frame_w, in_h, in_w, cfg.preprocess.resize_policy)
        # The published mask's geometry ('input', 'model' or 'WxH'): the CPU path's own.
        target = published_geometry(geo, cfg.postprocess.output_resolution)
        out_h, out_w = target.frame_height, target.frame_width
        self.geometry, self.out_hw = geo, (out_h, out_w)
        step = frame_w * cn
        frame_bytes = frame_h * step
        npx = out_h * out_w
        # Mapped host layout: frame | mask | overlay | counts (2 x 256 int32) | boundary.
        off_mask = _align(frame_bytes)
        off_ov = _align(off_mask + npx)
        off_cnt = _align(off_ov + 3 * npx)
        off_bnd = _align(off_cnt + 2 * 256 * 4)
        total = _align(off_bnd + 4 * out_w)
        self.mapped = rt.MappedHostBuffer(total)
        self.buffers.append(self.mapped)
        self.frame_host = self.mapped.host[:frame_bytes]
        self.mask_host = self.mapped.view(np.uint8, (out_h, out_w), off_mask)
        self.overlay_host = self.mapped.view(np.uint8, (out_h, out_w, 3), off_ov)
        self.counts_host = self.mapped.view(np.int32, (2, 256), off_cnt)
        self.boundary_host = self.mapped.view(np.int32, (out_w,), off_bnd)
        self.out_span = (off_mask, total - off_mask)
        self.off_cnt = off_cnt
        if pipe.integrated:
            # Kernels read the frame and write the results in place (shared DRAM).
            frame_dev = out_dev = self.mapped.device_ptr
        else:
            self.dev_frame = rt.DeviceBuffer(frame_bytes)
            self.dev_out = rt.DeviceBuffer(total)
            self.buffers += [self.dev_frame, self.dev_out]
            frame_dev, out_dev = self.dev_frame.ptr, self.dev_out.ptr
        self.frame_dev, self.out_dev, self.frame_bytes = frame_dev, out_dev, frame_bytes

        # Constant per-size tables in one device buffer (each part 16-byte aligned):
        # ROI mask (CPU path's rasterizer), resize taps (cv2-exact), output sampling maps.
        from ..postprocessing import _bilinear_axis, nearest_indices
        from ..summary import roi_mask
        roi = np.ascontiguousarray(roi_mask(tuple(tuple(map(float, v))
                                                  for v in cfg.summary.roi_polygon),
                                            out_h, out_w)).astype(np.uint8)
        self.roi_pixel_count = int(roi.sum())
        xtab, ytab = resize_tables(frame_w, frame_h, geo.content_width, geo.content_height)
        mh, mw = s.map_hw
        # Sampling tables from the CPU path's own functions: identical indices and weights.
        sx, ox, sy, oy = target.frame_to_map(mh, mw)
        rows_n, cols_n = nearest_indices(target, mh, mw)
        cx0, cx1, cw = _bilinear_axis(out_w, sx, ox, mw)
        ry0, ry1, rw = _bilinear_axis(out_h, sy, oy, mh)
        tables = [roi.reshape(-1), xtab, ytab, cols_n.astype(np.int32), rows_n.astype(np.int32),
                  cx0.astype(np.int32), cx1.astype(np.int32), cw.astype(np.float32),
                  ry0.astype(np.int32), ry1.astype(np.int32), rw.astype(np.float32)]
        offsets_b, blob = [], []
        at = 0
        for t in tables:
            raw = np.ascontiguousarray(t).view(np.uint8).reshape(-1)
            offsets_b.append(at)
            pad = _align(raw.nbytes, 16) - raw.nbytes
            blob += [raw, np.zeros(pad, np.uint8)]
            at += raw.nbytes + pad
        self.dev_tables = rt.DeviceBuffer(at)
        self.buffers.append(self.dev_tables)
        rt.copy_to_device(np.concatenate(blob), self.dev_tables.ptr)
        ptr = [self.dev_tables.ptr + o for o in offsets_b]

        norm = cfg.preprocess.normalization
        model_bgr = cfg.preprocess.channel_order == 'bgr'
        r, g, b = offsets
        o = (b, g, r) if model_bgr else (r, g, b)
        in_item = s.input_nbytes // s.batch
        self.pre_args = K.KernelArgs('preprocess', dict(
            src=frame_dev, src_step=step, src_cn=cn, o0=o[0], o1=o[1], o2=o[2],
            dst=slot.dev_input.ptr + index * in_item, dst_w=in_w, dst_h=in_h,
            c_top=geo.content_top, c_left=geo.content_left, c_h=geo.content_height,
            c_w=geo.content_width, xtab=ptr[1], ytab=ptr[2],
            s0=norm.scale[0], s1=norm.scale[1], s2=norm.scale[2],
            b0=norm.bias[0], b1=norm.bias[1], b2=norm.bias[2], pad=cfg.preprocess.pad_value))
        self.pre_grid = K.grid_2d(in_w, in_h)

        mapping = dict(zip(('col_n', 'row_n', 'col_i0', 'col_i1', 'col_w', 'row_i0', 'row_i1',
                            'row_w'), ptr[3:]), map_w=mw, map_h=mh)
        overlay_order = 'rgb' if order == 'gray' else order
        epi = dict(mask=out_dev + off_mask, out_w=out_w, out_h=out_h,
                   num_classes=cfg.classes.num_classes, frame=frame_dev, frame_w=frame_w,
                   frame_h=frame_h, frame_step=step, frame_cn=cn, fr=r, fg=g, fb=b,
                   overlay=out_dev + off_ov, overlay_bgr=int(overlay_order == 'bgr'),
                   alpha=cfg.postprocess.overlay_alpha, palette=pipe.const.ptr,
                   hist=out_dev + off_cnt, roi=ptr[0], roi_hist=out_dev + off_cnt + 1024)
        grid = K.grid_2d(out_w, out_h)
        out_item = s.output_nbytes // s.batch
        output = slot.dev_output.ptr + index * out_item
        self.post: List[Tuple[str, Tuple[int, int, int], Tuple[int, int, int], K.KernelArgs]]
        self.post = []
        if s.output_kind is OutputKind.LOGITS:
            channels = int(s.output_shape[1])
            if cfg.postprocess.upsample_mode == 'exact':
                self.post.append(('post_exact', grid, K.BLOCK_2D, K.KernelArgs(
                    'post_exact', dict(logits=output, channels=channels, **mapping, **epi))))
            else:
                small = slot.dev_small.ptr + index * mh * mw
                self.post.append(('argmax_logits', K.grid_1d(mh * mw), K.BLOCK_1D,
                                  K.KernelArgs('argmax_logits', dict(
                                      logits=output, channels=channels, h=mh, w=mw,
                                      out=small))))
                self.post.append(('post_map_u8', grid, K.BLOCK_2D, K.KernelArgs(
                    'post_map_u8', dict(ids=small, **mapping, **epi))))
        else:
            name = K.ids_kernel(s.output_dtype)   # element size = the output buffer's
            self.post.append((name, grid, K.BLOCK_2D, K.KernelArgs(
                name, dict(ids=output, **mapping, **epi))))
        self.post.append(('free_space', K.grid_1d(out_w), K.BLOCK_1D, K.KernelArgs(
            'free_space', dict(mask=out_dev + off_mask, w=out_w, h=out_h,
                               drivable=pipe.const.ptr + 768, boundary=out_dev + off_bnd))))

    def free(self) -> None:
        for b in self.buffers:
            b.free()
        self.buffers = []


# Submission layouts (frame sizes, encodings, count) a slot keeps buffers and graphs for;
# past this many (cameras changing resolution) it starts over.
_MAX_LAYOUTS = 16


class _Slot:
    """One ring slot: its stream, events, engine I/O buffers, frames and captured graphs.

    Buffers are kept per frame position and layout, graphs per submission layout: with
    several cameras a slot sees submissions of 1..batch frames in turn, and rebuilding
    whenever the count changed would repeat configure-time work (pinned allocations of
    the frame and its outputs, lookup tables, graph capture) on the frame path.
    """

    def __init__(self, pipe: 'GpuPipeline') -> None:
        s = pipe.spec
        self.stream = rt.Stream()
        self.events = [rt.Event() for _ in range(7)]
        # Recorded after a submission's last work; collect sleeps on it: with ORT's run
        # returning once queued, the collecting thread waits out the inference, and a
        # spinning wait would hold a CPU core for all of it.
        self.done = rt.Event(blocking=True)
        self.dev_input = rt.DeviceBuffer(s.input_nbytes)
        self.dev_output = rt.DeviceBuffer(s.output_nbytes)
        mh, mw = s.map_hw
        self.dev_small = rt.DeviceBuffer(s.batch * mh * mw)
        self.images: List[_Image] = []
        self._images: Dict[Tuple[Any, ...], _Image] = {}     # (position, h, w, encoding)
        self.key: Optional[Tuple[Any, ...]] = None
        self.graphs: Dict[str, rt.Graph] = {}
        self._graphs: Dict[Tuple[Any, ...], Dict[str, rt.Graph]] = {}
        self._frames_at: Dict[Tuple[Any, ...], int] = {}
        self.graphed = False
        self.want_overlay = True

    @property
    def frames_at_key(self) -> int:
        """Submissions this slot ran with the current layout."""
        return self._frames_at.get(self.key, 0) if self.key is not None else 0

    def count_frame(self) -> None:
        if self.key is not None:
            self._frames_at[self.key] = self.frames_at_key + 1

    def use_layout(self, pipe: 'GpuPipeline', key: Tuple[Any, ...],
                   frames: Sequence[Tuple[np.ndarray, str]],
                   layouts: List[Tuple[int, Tuple[int, int, int], str]]) -> None:
        """Point :attr:`images` and :attr:`graphs` at the buffers of this layout."""
        if key == self.key:
            return
        if key not in self._graphs and len(self._graphs) >= _MAX_LAYOUTS:
            self.free_sized()
        images = []
        for i, ((f, enc), (cn, offs, order)) in enumerate(zip(frames, layouts)):
            at = (i, f.shape[0], f.shape[1], enc)
            if at not in self._images:
                self._images[at] = _Image(pipe, self, i, f.shape[0], f.shape[1], cn, offs,
                                          order)
            images.append(self._images[at])
        self.images = images
        self.graphs = self._graphs.setdefault(key, {})
        self.key = key

    def drop_graphs(self) -> None:
        """Forget every captured graph (capture failed: plain launches from now on)."""
        for graphs in self._graphs.values():
            for g in graphs.values():
                g.destroy()
            graphs.clear()

    def free_sized(self) -> None:
        self.drop_graphs()
        self._graphs, self._frames_at, self.graphs = {}, {}, {}
        for im in self._images.values():
            im.free()
        self._images, self.images = {}, []
        self.key = None

    def release(self) -> None:
        self.free_sized()
        for b in (self.dev_input, self.dev_output, self.dev_small):
            b.free()
        for e in self.events + [self.done]:
            e.destroy()
        self.stream.destroy()


class GpuPipeline:
    """GPU pre/post-processing around a :class:`DeviceInference` engine, ``depth`` frames deep.

    ``stream`` is the inference stream; omitted, it is the engine's
    :attr:`~.device_inference.DeviceInference.inference_stream` (an ONNX Runtime session's
    ``user_compute_stream``), else a new one (destroyed by :meth:`release`). ``depth`` is
    how many submissions may be in flight: 1 for :meth:`process` alone, 2 to overlap
    consecutive frames with :meth:`submit` / :meth:`collect`.
    """

    def __init__(self, config: PipelineConfig, engine: DeviceInference, device: int = 0,
                 use_graphs: bool = True, timing: bool = True,
                 stream: Optional[rt.Stream] = None, depth: int = 1) -> None:
        self.ring = FrameRing(depth)
        rt.set_device(device)
        self.config = config
        self.engine = engine
        self.spec = engine.device_io_spec()
        self.info = rt.device_info(device)
        self.integrated = self.info.integrated
        self.use_graphs = use_graphs
        self.timing = timing
        self.graph_error: Optional[str] = None
        required = getattr(engine, 'inference_stream', None)   # TensorRT: any stream
        if stream is None:
            stream = required
        elif required is not None and stream.ptr != required.ptr:
            raise BackendError(f'expected the engine\'s inference stream {required.ptr:#x}, '
                               f'got {stream.ptr:#x}; omit stream= to use the engine\'s')
        self._own_stream = stream is None
        if self.spec.output_kind is not OutputKind.LOGITS:
            K.ids_kernel(self.spec.output_dtype)   # refuse an unreadable id type up front
        self.stream = stream or rt.Stream()
        logits_dtype = self.spec.output_dtype if self.spec.output_kind is OutputKind.LOGITS \
            else 'float32'
        self.kernels = K.KernelModule(self.info.sm, self.spec.input_dtype, logits_dtype)
        # Constant tables: palette and drivable lookup, uploaded once.
        self.const = rt.DeviceBuffer(1024)
        pal = palette_lut(config.classes.colors).reshape(-1)[:768].astype(np.uint8)
        drv = np.zeros(256, np.uint8)
        drv[list(config.classes.drivable_ids)] = 1
        rt.copy_to_device(np.concatenate([pal, drv]), self.const.ptr)
        self.slots = [_Slot(self) for _ in range(depth)]
        self._last = self.slots[0]
        self._capturing = False

    @property
    def depth(self) -> int:
        """Submissions that may be in flight at once."""
        return self.ring.depth

    @property
    def batch(self) -> int:
        """Frames one submission may carry (the engine's batch)."""
        return self.spec.batch

    # ------------------------------------------------------------------ stages
    def _upload_and_preprocess(self, slot: _Slot) -> None:
        st = slot.stream
        if not self.integrated:
            for im in slot.images:
                rt.memcpy_async(im.frame_dev, im.mapped.device_ptr, im.frame_bytes, st)
        self._mark(slot, _EV_UP)
        for im in slot.images:
            self.kernels.launch('preprocess', im.pre_grid, K.BLOCK_2D, im.pre_args, st.ptr)

    def _postprocess(self, slot: _Slot) -> None:
        st = slot.stream
        for im in slot.images:
            rt.memset_async(im.out_dev + im.off_cnt, 0, 2 * 256 * 4, st)
            for name, grid, block, args in im.post:
                self.kernels.launch(name, grid, block, args, st.ptr)
        self._mark(slot, _EV_POST)
        if not self.integrated:
            for im in slot.images:
                off, size = im.out_span
                rt.memcpy_async(im.mapped.device_ptr + off, im.out_dev + off, size, st)

    def _mark(self, slot: _Slot, i: int) -> None:
        if self.timing and not self._capturing:
            slot.events[i].record(slot.stream)

    def _capture(self, slot: _Slot, name: str, fn: Callable[[_Slot], None]) -> None:
        g = rt.Graph()
        self._capturing = True
        try:
            g.begin(slot.stream)
            try:
                fn(slot)
            except Exception:
                g.abort(slot.stream)
                raise
            g.end(slot.stream)
            slot.graphs[name] = g
        except BackendError as exc:
            self.graph_error = f'CUDA graph capture of {name} failed ({exc}); plain launches'
            self.use_graphs = False
            for each in self.slots:
                each.drop_graphs()
        finally:
            self._capturing = False

    # ------------------------------------------------------------------ public API
    def submit(self, frame: np.ndarray, encoding: str, want_overlay: bool = True) -> GpuTicket:
        """Queue one frame (H, W[, C]) uint8 with a sensor_msgs encoding; return its ticket.

        Returns once the frame is copied into pinned memory and its GPU work is queued;
        :meth:`collect` waits for the results. ``frame`` may be a row-strided view of the
        message data: the one CPU copy packs it.
        """
        return self.submit_batch([(frame, encoding)], want_overlay)

    def submit_batch(self, frames: Sequence[Tuple[np.ndarray, str]],
                     want_overlay: bool = True,
                     around_inference: Optional[Callable[[], ContextManager[Any]]] = None
                     ) -> GpuTicket:
        """Queue up to :attr:`batch` ``(frame, encoding)`` pairs as one inference.

        ``around_inference``: a context entered around the engine call (the node's frame
        path uses it to know when this thread waits in inference, not needing the GIL).
        """
        if not 1 <= len(frames) <= self.batch:
            raise ImageFormatError(f'expected 1 to {self.batch} frames per submission (the '
                                   f'engine batch), got {len(frames)}')
        layouts = [_frame_layout(f, enc) for f, enc in frames]
        key = tuple((f.shape[:2], enc) for f, enc in frames)
        ticket = self.ring.acquire(len(frames))
        slot = self.slots[ticket.slot]
        try:
            self._queue(slot, frames, layouts, key, want_overlay,
                        around_inference or contextlib.nullcontext)
        except Exception:
            self.ring.release(ticket)
            raise
        return ticket

    def _queue(self, slot: _Slot, frames: Sequence[Tuple[np.ndarray, str]],
               layouts: List[Tuple[int, Tuple[int, int, int], str]], key: Tuple[Any, ...],
               want_overlay: bool,
               around_inference: Callable[[], ContextManager[Any]]) -> None:
        slot.use_layout(self, key, frames, layouts)
        # The one CPU copy per frame: message bytes -> pinned mapped buffer.
        for im, (f, _) in zip(slot.images, frames):
            np.copyto(im.frame_host.reshape(f.shape), f)
        st = slot.stream
        if self.timing:
            slot.events[_EV_START].record(st)
        if self.use_graphs and slot.frames_at_key >= 1 and not slot.graphs:
            self._capture(slot, 'pre', self._upload_and_preprocess)
            if self.use_graphs:
                self._capture(slot, 'post', self._postprocess)
        slot.graphed = bool(self.use_graphs and slot.graphs)
        if slot.graphed:
            slot.graphs['pre'].launch(st)
        else:
            self._upload_and_preprocess(slot)
        ev = slot.events
        ev[_EV_PRE].record(st)            # always: the inference stream waits on it
        self.stream.wait(ev[_EV_PRE])
        if self.timing:
            ev[_EV_INF0].record(self.stream)
        with around_inference():
            self.engine.infer_device(slot.dev_input.ptr, slot.dev_output.ptr, self.stream.ptr,
                                     frames=len(frames))
        ev[_EV_INF1].record(self.stream)  # always: the slot stream waits on it
        st.wait(ev[_EV_INF1])
        if slot.graphed:
            slot.graphs['post'].launch(st)
        else:
            self._postprocess(slot)
        if self.timing:
            ev[_EV_END].record(st)
        slot.done.record(st)
        slot.count_frame()
        slot.want_overlay = want_overlay

    def collect(self, ticket: Optional[GpuTicket] = None) -> GpuResult:
        """Wait for a submission (default: the oldest) and return its first frame's result."""
        return self.collect_batch(ticket)[0]

    def collect_batch(self, ticket: Optional[GpuTicket] = None) -> List[GpuResult]:
        """Wait for a submission (default: the oldest); one result per submitted frame."""
        t = ticket if ticket is not None else self.ring.oldest()
        self.ring.check(t)
        slot = self.slots[t.slot]
        slot.done.synchronize()
        self.ring.release(t)
        self._last = slot
        times: Dict[str, float] = {}
        if self.timing:
            ev = slot.events
            times['inference'] = ev[_EV_INF1].elapsed_ms(ev[_EV_INF0])
            times['total'] = ev[_EV_END].elapsed_ms(ev[_EV_START])
            if slot.graphed:
                times['upload+preprocess'] = ev[_EV_PRE].elapsed_ms(ev[_EV_START])
                times['postprocess+download'] = ev[_EV_END].elapsed_ms(ev[_EV_INF1])
            else:
                times['upload'] = ev[_EV_UP].elapsed_ms(ev[_EV_START])
                times['preprocess'] = ev[_EV_PRE].elapsed_ms(ev[_EV_UP])
                times['postprocess'] = ev[_EV_POST].elapsed_ms(ev[_EV_INF1])
                times['download'] = ev[_EV_END].elapsed_ms(ev[_EV_POST])
        return [GpuResult(im.mask_host, im.overlay_host if slot.want_overlay else None,
                          im.counts_host[0], im.counts_host[1], im.boundary_host, im.geometry,
                          dict(times)) for im in slot.images[:t.count]]

    def process(self, frame: np.ndarray, encoding: str, want_overlay: bool = True) -> GpuResult:
        """Run one frame synchronously (submit, then collect); see :meth:`submit`."""
        return self.collect(self.submit(frame, encoding, want_overlay))

    def process_batch(self, frames: Sequence[Tuple[np.ndarray, str]],
                      want_overlay: bool = True) -> List[GpuResult]:
        """Run up to :attr:`batch` frames through one inference, synchronously."""
        return self.collect_batch(self.submit_batch(frames, want_overlay))

    @property
    def in_flight(self) -> int:
        """Submissions not collected yet."""
        return self.ring.in_flight

    def input_device_ptr(self) -> int:
        """Device address of the engine input of the last collected submission (checks)."""
        return self._last.dev_input.ptr

    def output_device_ptr(self) -> int:
        """Device address of the engine output of the last collected submission."""
        return self._last.dev_output.ptr

    def release(self) -> None:
        """Free every buffer, graph, event, stream and the kernel module (idempotent)."""
        for slot in self.slots:
            slot.release()
        self.slots = []
        self.const.free()
        self.kernels.unload()
        if self._own_stream:
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
