"""Plain configuration objects for the segmentation pipeline (no ROS here).

The node turns its ROS parameters into these; the tools build them from presets
(config/*.yaml) or command-line flags. Validation lives here so the node, the tools and
the tests reject the same mistakes with the same messages.
"""

from dataclasses import dataclass, field
from typing import Optional, Sequence, Tuple

from .errors import ConfigError
from .geometry import RESIZE_POLICIES
from .labels import CITYSCAPES_CLASSES, CITYSCAPES_DRIVABLE, CITYSCAPES_PALETTE
from .output_size import parse_output_resolution

CHANNEL_ORDERS: Tuple[str, ...] = ('rgb', 'bgr')
UPSAMPLE_MODES: Tuple[str, ...] = ('fast', 'exact')
# The named ones; an explicit 'WxH' is accepted too (output_size.parse_output_resolution).
OUTPUT_RESOLUTIONS: Tuple[str, ...] = ('input', 'model')

# Lower-centre trapezoid in front of the vehicle, normalized (x right, y down).
DEFAULT_ROI_POLYGON: Tuple[Tuple[float, float], ...] = (
    (0.10, 1.00), (0.40, 0.60), (0.60, 0.60), (0.90, 1.00))


@dataclass(frozen=True)
class Normalization:
    """Per-channel ``y = (x - mean) / std`` on 0..255 pixels, in the model's channel order.

    DeepStream nvinfer writes the same thing as ``y = net_scale_factor * (x - offsets)``:
    :meth:`from_nvinfer` maps one to the other exactly.
    """

    mean: Tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: Tuple[float, float, float] = (1.0, 1.0, 1.0)

    def __post_init__(self) -> None:
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ConfigError(f'expected 3 mean and 3 std values, got {len(self.mean)} and '
                              f'{len(self.std)}')
        if any(not s > 0 for s in self.std):
            raise ConfigError(f'std values must be > 0, got {tuple(self.std)}')

    @classmethod
    def from_nvinfer(cls, net_scale_factor: float,
                     offsets: Sequence[float] = (0.0, 0.0, 0.0)) -> 'Normalization':
        """Build from nvinfer's ``net-scale-factor`` and ``offsets`` (a semicolon list there)."""
        if not net_scale_factor > 0:
            raise ConfigError(f'net-scale-factor must be > 0, got {net_scale_factor}')
        std = 1.0 / float(net_scale_factor)
        return cls(tuple(float(o) for o in offsets), (std, std, std))  # type: ignore[arg-type]

    @property
    def scale(self) -> Tuple[float, float, float]:
        """Multiplier of the fused form ``y = x * scale + bias`` (what the kernels use)."""
        return tuple(1.0 / s for s in self.std)  # type: ignore[return-value]

    @property
    def bias(self) -> Tuple[float, float, float]:
        """Addend of the fused form ``y = x * scale + bias``."""
        return tuple(-m / s for m, s in zip(self.mean, self.std))  # type: ignore[return-value]


@dataclass(frozen=True)
class PreprocessConfig:
    """How a camera frame becomes the model's NCHW float32 input."""

    resize_policy: str = 'stretch'
    channel_order: str = 'rgb'
    normalization: Normalization = field(default_factory=Normalization)
    pad_value: float = 0.0  # letterbox padding, in 0..255 pixel units before normalization

    def __post_init__(self) -> None:
        if self.resize_policy not in RESIZE_POLICIES:
            raise ConfigError(f'resize_policy must be one of {RESIZE_POLICIES}, '
                              f'got {self.resize_policy!r}')
        if self.channel_order not in CHANNEL_ORDERS:
            raise ConfigError(f'channel_order must be one of {CHANNEL_ORDERS}, '
                              f'got {self.channel_order!r}')


@dataclass(frozen=True)
class ClassConfig:
    """Class names (index = id), their colours, and which ids count as drivable."""

    names: Tuple[str, ...] = CITYSCAPES_CLASSES
    colors: Tuple[Tuple[int, int, int], ...] = CITYSCAPES_PALETTE
    drivable_ids: Tuple[int, ...] = (CITYSCAPES_CLASSES.index(CITYSCAPES_DRIVABLE[0]),)
    # Logits channels after the classes that mean void / background (ESPNetv2 Cityscapes:
    # 1): where one wins, the mask says 255 (unlabeled); they are never a class.
    void_channels: int = 0

    def __post_init__(self) -> None:
        if not self.names:
            raise ConfigError('expected at least one class name, got none')
        if len(self.names) > 255:
            raise ConfigError(f'at most 255 classes fit a mono8 mask (255 = unlabeled), '
                              f'got {len(self.names)}')
        if len(self.colors) < len(self.names):
            raise ConfigError(
                f'expected a colour for each of the {len(self.names)} classes, got '
                f'{len(self.colors)}; add entries to class_colors')
        for c in self.colors:
            if len(c) != 3 or any(not 0 <= v <= 255 for v in c):
                raise ConfigError(f'colours must be 3 values in 0..255, got {tuple(c)}')
        if not 0 <= self.void_channels <= 255 - len(self.names):
            raise ConfigError(f'void_channels must be in 0..{255 - len(self.names)}, got '
                              f'{self.void_channels}')
        bad = [i for i in self.drivable_ids if not 0 <= i < len(self.names)]
        if bad:
            raise ConfigError(f'drivable class ids {bad} are outside 0..{len(self.names) - 1}')

    @property
    def num_classes(self) -> int:
        """Number of classes (ids 0 .. num_classes - 1)."""
        return len(self.names)


@dataclass(frozen=True)
class PostprocessConfig:
    """How model outputs become a mask at the published resolution."""

    upsample_mode: str = 'fast'          # logits only: 'fast' or 'exact' (see postprocessing)
    output_resolution: str = 'input'     # 'input' (camera), 'model' or 'WxH' (output_size)
    overlay_alpha: float = 0.5           # weight of the class colour in the overlay

    def __post_init__(self) -> None:
        if self.upsample_mode not in UPSAMPLE_MODES:
            raise ConfigError(f'upsample_mode must be one of {UPSAMPLE_MODES}, '
                              f'got {self.upsample_mode!r}')
        parse_output_resolution(self.output_resolution)   # ConfigError with the reason
        if not 0.0 <= self.overlay_alpha <= 1.0:
            raise ConfigError(f'overlay_alpha must be in [0, 1], got {self.overlay_alpha}')


@dataclass(frozen=True)
class SummaryConfig:
    """Region of interest and free-space settings of the per-frame summary."""

    roi_polygon: Tuple[Tuple[float, float], ...] = DEFAULT_ROI_POLYGON
    free_space_bins: int = 32

    def __post_init__(self) -> None:
        if len(self.roi_polygon) < 3:
            raise ConfigError(
                f'roi_polygon needs at least 3 vertices, got {len(self.roi_polygon)}')
        for x, y in self.roi_polygon:
            if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
                raise ConfigError(f'roi_polygon vertices are normalized (0..1), got ({x}, {y})')
        if not 1 <= self.free_space_bins <= 4096:
            raise ConfigError(f'free_space_bins must be in 1..4096, got {self.free_space_bins}')


@dataclass(frozen=True)
class PipelineConfig:
    """Everything the pipeline needs besides the backend."""

    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    postprocess: PostprocessConfig = field(default_factory=PostprocessConfig)
    classes: ClassConfig = field(default_factory=ClassConfig)
    summary: SummaryConfig = field(default_factory=SummaryConfig)
    # Model input size (height, width) when the model's own dims are dynamic.
    input_size: Optional[Tuple[int, int]] = None
