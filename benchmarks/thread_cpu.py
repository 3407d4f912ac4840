"""CPU per thread of a running process over a few seconds, from /proc (no profiler needed).

Where py-spy cannot attach (a Python it cannot read the version of), this still tells
which threads are busy: ``python -m benchmarks.thread_cpu PID [SECONDS]``. Names come
from /proc/PID/task/TID/comm: the node names its frame-path threads there
(``segformer_intake`` etc., cut to 15 characters); Fast DDS names its own.
"""

import os
import sys
import time
from typing import Dict, List, Optional, Tuple


def _thread_times(pid: int) -> Dict[int, Tuple[str, float]]:
    out: Dict[int, Tuple[str, float]] = {}
    tick = os.sysconf('SC_CLK_TCK')
    for tid in os.listdir(f'/proc/{pid}/task'):
        try:
            with open(f'/proc/{pid}/task/{tid}/stat') as f:
                fields = f.read().rsplit(')', 1)[1].split()
            with open(f'/proc/{pid}/task/{tid}/comm') as f:
                name = f.read().strip()
        except OSError:
            continue
        out[int(tid)] = (name, (int(fields[11]) + int(fields[12])) / tick)
    return out


def main(argv: Optional[List[str]] = None) -> int:
    """Print each thread's CPU percent (of one core) over the window, busiest first."""
    args = sys.argv[1:] if argv is None else argv
    if not args:
        raise SystemExit('usage: python -m benchmarks.thread_cpu PID [SECONDS]')
    pid, seconds = int(args[0]), float(args[1]) if len(args) > 1 else 5.0
    before = _thread_times(pid)
    time.sleep(seconds)
    after = _thread_times(pid)
    rows = sorted(((after[t][1] - before[t][1]) * 100.0 / seconds, t, after[t][0])
                  for t in after if t in before)
    total = sum(r[0] for r in rows)
    print(f'thread_cpu: pid {pid}, {seconds:g} s, total {total:.0f}% of one core')
    for pct, tid, name in reversed(rows):
        if pct >= 1.0:
            print(f'  {pct:6.1f}%  {tid:>8}  {name}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
