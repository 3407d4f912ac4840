"""The allocator setting used by the node process keeps image buffers from piling up."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# A frame loop's allocation pattern: a 6 MB message buffer and a few-MB result freed each
# frame, small objects living a while. Prints RSS growth in kB.
LOOP = '''
import random, sys
import numpy as np
from segformer_ros.memory import pin_mmap_threshold
if sys.argv[1] == 'pin':
    assert pin_mmap_threshold() is True
def rss():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS'):
            return int(line.split()[1])
random.seed(0)
base, keep = rss(), []
for i in range(400):
    frame = np.ones(6 * 1024 * 1024 + random.randint(0, 100) * 4096, np.uint8)
    result = np.ones(random.randint(1, 3) * 1024 * 1024, np.uint8)
    keep.append(np.ones(random.randint(1, 50) * 1024, np.uint8))
    if len(keep) > 30:
        keep.pop(0)
    del frame
print(rss() - base)
'''


def _growth_kb(mode: str) -> int:
    out = subprocess.run([sys.executable, '-c', LOOP, mode], capture_output=True, text=True,
                         check=True, cwd=str(REPO))
    return int(out.stdout.strip().splitlines()[-1])


def test_pinned_mmap_threshold_limits_rss_growth() -> None:
    pinned, default = _growth_kb('pin'), _growth_kb('default')
    assert pinned < 8 * 1024, f'pinned: RSS grew {pinned} kB'
    assert pinned < default / 2, f'pinned {pinned} kB vs glibc default {default} kB'
