"""The backend seam: a small state-checked base that every inference engine plugs into.

Modelled on Polygraphy's runners: public methods check the state and call ``_impl``
hooks, heavy dependencies are imported inside the hooks (never at module import), and
errors say what was expected, what was found and how to fix it.

Life cycle::

    backend = SomeBackend(model_path, **options)   # cheap: nothing loaded
    info = backend.configure()                      # load/build, validate I/O
    out = backend.infer(batch)                      # any number of times
    backend.release()                               # free everything; configure() may follow

Two model conventions are supported (see :class:`OutputKind`): float logits
``(N, C, h, w)`` and class-id maps ``(N, H, W)`` / ``(N, 1, H, W)`` / ``(N, H, W, 1)``.
:meth:`Backend.infer` always returns logits as ``(N, C, h, w)`` float and id maps as
``(N, H, W)`` integers, whatever layout the model used.
"""

import abc
import enum
import threading
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

import numpy as np

from ..errors import BackendStateError, ModelError

Dim = Optional[int]  # None = dynamic


class OutputKind(enum.Enum):
    """What the model's output tensor holds."""

    LOGITS = 'logits'        # float (N, C, h, w): upsample + argmax in postprocessing
    CLASS_IDS = 'class_ids'  # integer id map, argmax already inside the graph


@dataclass(frozen=True)
class ModelInfo:
    """The model's I/O as the backend sees it after configure()."""

    input_name: str
    input_shape: Tuple[Dim, Dim, Dim, Dim]   # NCHW; None where dynamic
    input_dtype: str                          # numpy dtype name, e.g. 'float32'
    output_name: str
    output_shape: Tuple[Dim, ...]             # as declared by the model
    output_kind: OutputKind
    num_classes: Optional[int] = None         # logits channels; None for id maps

    @property
    def input_hw(self) -> Tuple[Dim, Dim]:
        """(height, width) of the model input, None where dynamic."""
        return self.input_shape[2], self.input_shape[3]

    @property
    def max_batch(self) -> Dim:
        """Fixed batch size, or None when the batch dimension is dynamic."""
        return self.input_shape[0]


def classify_output(shape: Tuple[Dim, ...], dtype: str) -> Tuple[OutputKind, Optional[int]]:
    """Decide from an output's declared shape and dtype which convention a model uses.

    Raises ModelError naming the accepted layouts when neither fits.
    """
    rank = len(shape)
    is_int = np.issubdtype(np.dtype(dtype), np.integer)
    is_float = np.issubdtype(np.dtype(dtype), np.floating)
    if is_int:
        if rank == 3 or (rank == 4 and (shape[1] == 1 or shape[3] == 1)):
            return OutputKind.CLASS_IDS, None
    elif is_float and rank == 4:
        if shape[1] is not None and shape[1] == 1:
            raise ModelError(
                f'output of shape {shape} ({dtype}) has one channel: expected logits '
                f'(N, C>1, h, w) float or a class-id map (N, H, W) int32/int64')
        return OutputKind.LOGITS, shape[1]
    raise ModelError(
        f'unusable model output: expected float logits (N, C, h, w) or an int32/int64 '
        f'class-id map (N, H, W), (N, 1, H, W) or (N, H, W, 1); got shape {tuple(shape)} '
        f'dtype {dtype}. Export the model with its logits (or argmax) as the only output.')


def normalize_output(raw: np.ndarray, kind: OutputKind) -> np.ndarray:
    """Bring a raw model output to the canonical layout of its kind."""
    if kind is OutputKind.CLASS_IDS:
        if raw.ndim == 4:
            raw = raw[:, 0] if raw.shape[1] == 1 else raw[..., 0]
        if raw.ndim != 3:
            raise ModelError(f'expected a class-id map (N, H, W), got shape {raw.shape}')
        return raw
    if raw.ndim != 4:
        raise ModelError(f'expected logits (N, C, h, w), got shape {raw.shape}')
    return raw


class Backend(abc.ABC):
    """Base class of inference backends; subclasses implement the ``_impl`` hooks."""

    #: Short name used in parameters, logs and /diagnostics.
    name: str = 'base'

    def __init__(self, model_path: str, **options: Any) -> None:
        self.model_path = model_path
        self.options: Dict[str, Any] = dict(options)
        self._info: Optional[ModelInfo] = None
        # infer() may be called from a worker thread while a lifecycle transition
        # calls release(): the lock keeps release from freeing buffers in use.
        self._lock = threading.RLock()

    # ----------------------------------------------------------------- public API
    @property
    def is_configured(self) -> bool:
        """True between a successful configure() and release()."""
        return self._info is not None

    @property
    def model_info(self) -> ModelInfo:
        """I/O description of the configured model."""
        if self._info is None:
            raise BackendStateError(
                f'{self.name} backend: model_info requested before configure(); '
                f'call configure() first')
        return self._info

    def configure(self) -> ModelInfo:
        """Load (or build) the model and validate its I/O. Idempotent while configured."""
        with self._lock:
            if self._info is None:
                self._info = self._configure_impl()
            return self._info

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Run the model on an NCHW float32 batch; return canonical logits or id maps."""
        with self._lock:
            info = self.model_info
            if batch.ndim != 4 or batch.shape[1] != 3:
                raise ValueError(f'{self.name} backend: expected an NCHW batch with 3 channels, '
                                 f'got shape {batch.shape}')
            for got, want, what in ((batch.shape[0], info.input_shape[0], 'batch'),
                                    (batch.shape[2], info.input_shape[2], 'height'),
                                    (batch.shape[3], info.input_shape[3], 'width')):
                if want is not None and got != want:
                    raise ValueError(f'{self.name} backend: model {what} is fixed at {want}, '
                                     f'got {got}')
            return normalize_output(self._infer_impl(batch), info.output_kind)

    def warmup(self, iterations: int = 2, input_hw: Optional[Tuple[int, int]] = None) -> None:
        """Run a few inferences on a dummy frame so the first real frame is not slow."""
        info = self.model_info
        h = info.input_shape[2] or (input_hw or (512, 512))[0]
        w = info.input_shape[3] or (input_hw or (512, 512))[1]
        dummy = np.zeros((info.input_shape[0] or 1, 3, h, w), dtype=np.float32)
        for _ in range(max(0, iterations)):
            self.infer(dummy)

    def release(self) -> None:
        """Free the model and every buffer. Safe to call in any state, more than once."""
        with self._lock:
            if self._info is not None or self._has_resources():
                try:
                    self._release_impl()
                finally:
                    self._info = None

    def bind_thread(self) -> None:
        """Prepare the calling thread to run this backend (call first in a worker thread).

        The CUDA current device is per host thread: GPU backends make their ``device_id``
        current here. CPU backends need nothing.
        """

    def describe(self) -> str:
        """One line for logs and /diagnostics: backend, device/provider, precision."""
        return self.name

    def __enter__(self) -> 'Backend':
        self.configure()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    # ------------------------------------------------------------------- hooks
    @abc.abstractmethod
    def _configure_impl(self) -> ModelInfo:
        """Load the model; return its ModelInfo. Raise ModelError/BackendError on failure."""

    @abc.abstractmethod
    def _infer_impl(self, batch: np.ndarray) -> np.ndarray:
        """Run one batch; return the raw output array (host memory)."""

    @abc.abstractmethod
    def _release_impl(self) -> None:
        """Free sessions, engines, buffers."""

    def _has_resources(self) -> bool:
        """Override when resources may exist before configure() finished (partial failure)."""
        return False
