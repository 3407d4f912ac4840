"""Frame in, mask / overlay / summary out: the CPU pipeline around one inference backend.

``SegmentationPipeline`` strings together :mod:`.preprocessing`, ``Backend.infer``,
:mod:`.postprocessing`, :mod:`.overlay` and :mod:`.summary`, timing each stage. It never
touches ROS: the node converts messages with :mod:`.conversion` / :mod:`.compressed` and
hands the arrays (or :class:`~segformer_ros.conversion.ImageView` objects) here.
"""

import contextlib
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, ContextManager, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .backends.base import Backend, OutputKind
from .config import PipelineConfig
from .errors import BackendStateError, ConfigError
from .geometry import ResizeGeometry
from .labels import palette_lut
from .overlay import blend_overlay, overlay_channel_order
from .postprocessing import confidence_from_logits, ids_from_output
from .preprocessing import Frame, unpack_frame, preprocess_batch
from .summary import Summary, compute_summary

STAGES: Tuple[str, ...] = ('preprocess', 'inference', 'postprocess', 'overlay', 'summary')


@dataclass
class SegmentationResult:
    """Everything the pipeline produced for one frame.

    ``mask`` is (H, W) uint8 class ids (255 = unlabeled) at the published resolution;
    ``overlay`` is (H, W, 3) uint8 in ``overlay_channel_order`` ('rgb' or 'bgr') or None;
    ``times`` holds seconds per stage (keys of :data:`STAGES`; for a batch, 'preprocess'
    and 'inference' are the whole batch's time, shared by its results).
    """

    mask: np.ndarray
    overlay: Optional[np.ndarray]
    overlay_channel_order: str
    summary: Optional[Summary]
    geometry: ResizeGeometry
    times: Dict[str, float] = field(default_factory=dict)
    #: (H, W) uint8, 255 * max softmax probability; logits models, when asked for.
    confidence: Optional[np.ndarray] = None


class PendingResults:
    """Results of a submitted batch, finished by :meth:`collect` (once, on any thread)."""

    def __init__(self, finish: Callable[[], List[SegmentationResult]],
                 release: Optional[Callable[[], None]] = None) -> None:
        self._finish: Optional[Callable[[], List[SegmentationResult]]] = finish
        self._release = release

    def collect(self) -> List[SegmentationResult]:
        """Finish the batch and return one result per submitted frame, in order."""
        finish = self._finish
        if finish is None:
            raise BackendStateError('expected results not collected yet, got a second '
                                    'collect() of the same submission')
        self._finish = None
        try:
            return finish()
        finally:
            self.discard()

    def discard(self) -> None:
        """Give the submission's resources back without results (shutdown)."""
        self._finish = None
        release, self._release = self._release, None
        if release is not None:
            release()


@dataclass(frozen=True)
class SubmitOptions:
    """What one ``submit_batch`` call asks for (its keyword arguments, in one value)."""

    want_overlay: bool = True
    want_summary: bool = True
    overlay_alpha: Optional[float] = None
    want_confidence: bool = False
    batch_limit: int = 0
    around_inference: Optional[Callable[[], ContextManager[Any]]] = None


class SubmittingPipeline:
    """What both pipelines (CPU here, GPU in gpu_segmentation.py) offer, in one place.

    A pipeline implements ``_submit`` (inference started, a :class:`PendingResults` back)
    and sets ``_input_hw``, ``_config`` and ``_kind``; ``submit_batch``, the synchronous
    ``process`` / ``process_batch`` and the properties are defined here once.
    """

    _input_hw: Tuple[int, int]
    _config: PipelineConfig
    _kind: OutputKind

    @property
    def input_hw(self) -> Tuple[int, int]:
        """(height, width) of the model input frames are resized to."""
        return self._input_hw

    @property
    def config(self) -> PipelineConfig:
        """The configuration in use (output size and overlay alpha follow later calls)."""
        return self._config

    @property
    def has_logits(self) -> bool:
        """True when the model outputs logits (so a confidence map can be computed)."""
        return self._kind is OutputKind.LOGITS

    def submit_batch(self, frames: Sequence[Tuple[Frame, Optional[str]]], *,
                     want_overlay: bool = True, want_summary: bool = True,
                     overlay_alpha: Optional[float] = None,
                     want_confidence: bool = False, batch_limit: int = 0,
                     around_inference: Optional[Callable[[], ContextManager[Any]]] = None
                     ) -> PendingResults:
        """Start segmenting ``(frame, channel_order)`` pairs; ``collect()`` the results.

        ``batch_limit``: most frames per inference (0: as many as the model takes).
        ``around_inference``: a context entered around each inference call. What is done
        now and what at collect: the pipeline's ``_submit``.
        """
        return self._submit(frames, SubmitOptions(
            want_overlay=want_overlay, want_summary=want_summary, overlay_alpha=overlay_alpha,
            want_confidence=want_confidence, batch_limit=batch_limit,
            around_inference=around_inference))

    def _submit(self, frames: Sequence[Tuple[Frame, Optional[str]]],
                options: SubmitOptions) -> PendingResults:
        raise NotImplementedError

    def process(self, frame: Frame, channel_order: Optional[str] = None, *,
                want_overlay: bool = True, want_summary: bool = True,
                overlay_alpha: Optional[float] = None,
                want_confidence: bool = False) -> SegmentationResult:
        """Segment one frame (uint8 array with ``channel_order``, or an ImageView)."""
        return self.process_batch([(frame, channel_order)], want_overlay=want_overlay,
                                  want_summary=want_summary, overlay_alpha=overlay_alpha,
                                  want_confidence=want_confidence)[0]

    def process_batch(self, frames: Sequence[Tuple[Frame, Optional[str]]], *,
                      want_overlay: bool = True, want_summary: bool = True,
                      overlay_alpha: Optional[float] = None,
                      want_confidence: bool = False) -> List[SegmentationResult]:
        """Segment several ``(frame, channel_order)`` pairs (e.g. one per camera), now."""
        return self.submit_batch(frames, want_overlay=want_overlay, want_summary=want_summary,
                                 overlay_alpha=overlay_alpha,
                                 want_confidence=want_confidence).collect()


class SegmentationPipeline(SubmittingPipeline):
    """Run a configured backend on camera frames and post-process its outputs."""

    def __init__(self, backend: Backend, config: PipelineConfig) -> None:
        info = backend.model_info  # BackendStateError if not configured
        h, w = info.input_hw
        if h is None or w is None:
            if config.input_size is None:
                raise ConfigError(
                    f'model {backend.model_path!r} has a dynamic input size {info.input_shape};'
                    f' expected input_size (height, width) in the configuration, got none')
            h, w = (h or config.input_size[0]), (w or config.input_size[1])
        if int(h) <= 0 or int(w) <= 0:
            raise ConfigError(f'expected a positive model input size, got {h}x{w}')
        num_classes = config.classes.num_classes
        void = config.classes.void_channels
        if (info.output_kind is OutputKind.LOGITS and info.num_classes is not None
                and info.num_classes != num_classes + void):
            raise ConfigError(
                f'model outputs {info.num_classes} logits channels but {num_classes} class '
                f'names are configured (plus {void} void_channels); set class_names to the '
                f'model\'s classes and void_channels to its trailing void/background '
                f'channels: together they must make {info.num_classes}')
        self._backend = backend
        self._config = config
        self._input_hw = (int(h), int(w))
        self._kind = info.output_kind
        self._max_batch = info.max_batch
        self._lut = palette_lut(config.classes.colors)
        self._buffers: Dict[int, np.ndarray] = {}
        self._lock = threading.Lock()  # the preprocess buffers are shared state

    def _buffer(self, n: int) -> np.ndarray:
        buf = self._buffers.get(n)
        if buf is None:
            buf = np.empty((n, 3) + self._input_hw, dtype=np.float32)
            self._buffers = {n: buf}  # keep only the current batch shape
        return buf

    @property
    def frames_per_inference(self) -> Optional[int]:
        """The model's fixed batch (frames one inference takes), None when dynamic."""
        return None if self._max_batch is None else int(self._max_batch)

    @property
    def inference_on_device(self) -> bool:
        """False: inference runs on the host CPU (see GpuSegmentationPipeline)."""
        return False

    def set_output_resolution(self, output_resolution: str) -> None:
        """Publish at another size from the next frame on ('input', 'model' or 'WxH').

        For ``match_camera_info``: the size is known only when the depth camera's
        CameraInfo arrives. ConfigError (with the reason) for an invalid value.
        """
        if output_resolution != self._config.postprocess.output_resolution:
            post = replace(self._config.postprocess, output_resolution=output_resolution)
            self._config = replace(self._config, postprocess=post)

    def _submit(self, frames: Sequence[Tuple[Frame, Optional[str]]],
                options: SubmitOptions) -> PendingResults:
        """Preprocess and infer now; postprocess, overlay and summary when collected.

        Uses one ``backend.infer`` call when the model's batch dimension is dynamic or equals
        ``len(frames)``; otherwise runs chunks of the fixed batch size (the last one padded).

        The split lets a caller (the node's frame path) run the next frame's inference
        while another thread finishes this one: :meth:`PendingResults.collect` needs only
        the model outputs, the geometries and the frames, all held by the returned object
        (the preprocess buffer is free again once this returns). The frames must stay
        unchanged until then (the overlay blends them).
        """
        cfg = self._config
        alpha = options.overlay_alpha
        if alpha is None:
            alpha = cfg.postprocess.overlay_alpha
        confidence = options.want_confidence and self.has_logits
        fixed = None if self._max_batch is None else int(self._max_batch)
        step = len(frames) if fixed is None else fixed
        if options.batch_limit > 0:
            step = min(step, int(options.batch_limit))
        step = max(1, step)
        inferred = []
        for start in range(0, len(frames), step):
            part = list(frames[start:start + step])
            inferred.append(self._infer_chunk(
                part, fixed or len(part), options.around_inference or contextlib.nullcontext))

        def finish() -> List[SegmentationResult]:
            results: List[SegmentationResult] = []
            for item in inferred:
                results.extend(self._finish_chunk(item, cfg, options.want_overlay,
                                                  options.want_summary, alpha, confidence))
            return results
        return PendingResults(finish)

    def _infer_chunk(self, frames: List[Tuple[Frame, Optional[str]]], batch: int,
                     around_inference: Callable[[], ContextManager[Any]]) -> '_Inferred':
        cfg = self._config
        with self._lock:
            t0 = time.perf_counter()
            buf = self._buffer(batch)
            _, geos = preprocess_batch(frames, cfg.preprocess, self._input_hw,
                                       out=buf[:len(frames)])
            if len(frames) < batch:
                buf[len(frames):] = 0.0  # padding items of a fixed-size batch
            t1 = time.perf_counter()
            with around_inference():
                outputs = self._backend.infer(buf)   # a fresh array: the buffer is reused
            t2 = time.perf_counter()
        return _Inferred(frames, list(geos), outputs, t1 - t0, t2 - t1)

    def _finish_chunk(self, item: '_Inferred', cfg: PipelineConfig, want_overlay: bool,
                      want_summary: bool, alpha: float,
                      want_confidence: bool) -> List[SegmentationResult]:
        results = []
        for i, ((frame, order), geo) in enumerate(zip(item.frames, item.geometries)):
            times = {'preprocess': item.preprocess_s, 'inference': item.inference_s}
            t = time.perf_counter()
            mask = ids_from_output(item.outputs[i], self._kind, geo, cfg.postprocess,
                                   cfg.classes.num_classes)
            confidence = None
            if want_confidence:
                confidence = confidence_from_logits(item.outputs[i], geo, cfg.postprocess)
            times['postprocess'] = time.perf_counter() - t
            array, frame_order = unpack_frame(frame, order)
            overlay = None
            t = time.perf_counter()
            if want_overlay:
                overlay = blend_overlay(array, mask, self._lut, alpha, frame_order)
            times['overlay'] = time.perf_counter() - t
            summary = None
            t = time.perf_counter()
            if want_summary:
                summary = compute_summary(mask, cfg.classes, cfg.summary)
            times['summary'] = time.perf_counter() - t
            results.append(SegmentationResult(mask, overlay, overlay_channel_order(frame_order),
                                              summary, geo, times, confidence))
        return results


@dataclass
class _Inferred:
    """One chunk between inference and postprocessing."""

    frames: List[Tuple[Frame, Optional[str]]]
    geometries: List[ResizeGeometry]
    outputs: np.ndarray
    preprocess_s: float
    inference_s: float
