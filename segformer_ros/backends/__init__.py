"""Inference backends behind one state-checked interface (see :mod:`.base`)."""

from .base import Backend, ModelInfo, OutputKind, classify_output, normalize_output
from .factory import create_backend

__all__ = ['Backend', 'ModelInfo', 'OutputKind', 'classify_output', 'create_backend',
           'normalize_output']
