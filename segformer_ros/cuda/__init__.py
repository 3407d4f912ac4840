"""CUDA helpers of the GPU path: thin cuda-python wrappers, NVRTC kernels, the pipeline.

Nothing here imports cuda-python at module import: :func:`runtime.cuda_available` says
whether the GPU path can run, and every wrapper imports ``cuda.bindings`` lazily, so the
CPU path and the no-GPU test suite never need it.
"""
