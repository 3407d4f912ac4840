"""Inference backends behind one state-checked interface (see :mod:`.base`)."""

import os

# ONNX Runtime's PyPI builds (1.31 seen) record 1DS telemetry (device id, process path, OS,
# CPU) under ~/.cache/Microsoft/DeveloperTools/.onnxruntime and try to upload it over
# HTTPS. A perception node must not: the variable is read when onnxruntime loads, and every
# backend (the TensorRT one too, for its fp16 check) imports it lazily after this package.
# An explicit ORT_DISABLE_TELEMETRY from the user's environment is kept.
os.environ.setdefault('ORT_DISABLE_TELEMETRY', '1')

from .base import Backend, ModelInfo, OutputKind, classify_output, normalize_output  # noqa: E402
from .factory import create_backend  # noqa: E402

__all__ = ['Backend', 'ModelInfo', 'OutputKind', 'classify_output', 'create_backend',
           'normalize_output']
