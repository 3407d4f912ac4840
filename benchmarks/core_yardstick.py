"""Per-core yardstick: how fast one core of this machine does the node's kind of CPU work.

The node's CPU per mask is mostly two kinds of work: copying multi-MB frames (rclpy's take,
the mask's message) and Python bookkeeping. This times one of each, best of 5, so that a
CPU-per-mask figure measured on one machine can be scaled to another (docs/jetson.md, "CPU
per mask on an AGX Orin"): run it on both and scale by the ratio.

    python -m benchmarks.core_yardstick
"""

import argparse
import json
import time
from typing import Callable, Dict, List, Optional

import numpy as np

FRAME_BYTES = 1920 * 1080 * 3   # a 1080p rgb8 frame


def _best_of(work: Callable[[], None], rounds: int = 5) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(copies: int = 50, loop_iterations: int = 2_000_000) -> Dict[str, float]:
    """Milliseconds for one 6 MB frame copy into fresh memory and for a Python loop.

    The copies are kept until the round ends, so each lands in memory not touched before
    (page faults included), as a frame taken from DDS into a new message does.
    """
    frame = np.random.randint(0, 255, FRAME_BYTES, dtype=np.uint8)

    def copy_frames() -> None:
        kept = [bytes(frame) for _ in range(copies)]
        del kept

    def python_loop() -> None:
        total = 0
        for i in range(loop_iterations):
            total += i * i % 7

    return {'fresh_copy_6mb_ms': round(_best_of(copy_frames) / copies * 1e3, 3),
            'python_loop_ms': round(_best_of(python_loop) * 1e3, 1)}


def main(argv: Optional[List[str]] = None) -> int:
    """Print the yardstick as one JSON line."""
    argparse.ArgumentParser(description=__doc__.split('\n\n')[0]).parse_args(argv)
    print(json.dumps(measure()))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
