"""The lab: benchmarks, soak, demo and GPU-verification harnesses (run from a checkout).

Not installed: ``segformer_ros/`` is what users install and run; this package drives it
(node processes on loopback DDS, recorders, synthetic publishers) and measures it. Run its
modules from the repository root, e.g. ``python -m benchmarks.bench`` (``make bench``).
Product code never imports from here.
"""
