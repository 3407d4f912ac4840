"""Error types raised by segformer_ros.

Every error the package raises on bad input, bad configuration or a broken model
derives from :class:`SegformerRosError`, so callers (the node, the tools, the fuzz
tests) can tell "the package refused this, with a reason" from a bug.
Messages follow one rule: say what was expected, what was received, and how to fix it.
"""


class SegformerRosError(Exception):
    """Base class of every error raised deliberately by segformer_ros."""


class ImageFormatError(SegformerRosError, ValueError):
    """An image (raw or compressed) that cannot be converted: encoding, size, step, data."""


class ConfigError(SegformerRosError, ValueError):
    """A parameter or preset that is out of range or inconsistent."""


class ModelError(SegformerRosError):
    """A model file that is missing, unreadable or has unusable inputs/outputs."""


class BackendError(SegformerRosError):
    """An inference backend that cannot be created, configured or run."""


class BackendStateError(BackendError):
    """A backend method called in the wrong state (e.g. infer() before configure())."""
