"""Remove Fast DDS shared-memory files whose owner process is gone (zombies), nothing else.

Every Fast DDS participant maps a shared-memory segment (our loopback profile: 64 MB plus
bookkeeping) and a port file in /dev/shm, and holds an exclusive ``flock`` on each one's
``_el`` / ``_sl`` lock file while it lives. A process that is killed (SIGKILL, a crash, a
test timeout) leaves them behind, and /dev/shm is RAM: on the 2-core machine a day of test
runs had left 288 segments, 16 GB of its 24 GB. This is what eProsima's ``fastdds shm
clean`` does (Fast-DDS tools/fastdds/shm/clean.py: a lock file nobody holds marks a
zombie), for the file names of Fast DDS 3 (``fastdds_*``, Kilted) and of Fast DDS 2
(``fastrtps_*``, Humble and Jazzy), without needing the ``fastdds`` tool (no wheel ships
it). A file whose lock is held by a live process is never touched.

    python -m benchmarks.shm_clean [--dir /dev/shm]
"""

import argparse
import fcntl
import os
import re
from pathlib import Path
from typing import List, Optional, Tuple

SHM_DIR = Path('/dev/shm')
_SEGMENT_LOCK = re.compile(r'^(fastdds|fastrtps)_[0-9a-z]{16}_(el|sl)$')
_PORT_LOCK = re.compile(r'^(fastdds|fastrtps)_port\d{1,5}_(el|sl)$')


def _lock_is_held(path: Path) -> bool:
    """Tell whether another process holds the lock (or the file cannot be checked)."""
    try:
        with open(path, 'ab') as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False   # closing the file releases the lock we just took
    except OSError:
        return True


def _remove(path: Path) -> int:
    """Remove ``path``; its size in bytes (0 if it was not there)."""
    try:
        size = path.stat().st_blocks * 512
        path.unlink()
        return size
    except OSError:
        return 0


def clean_zombies(shm_dir: Path = SHM_DIR) -> Tuple[int, int]:
    """Remove zombie segments and ports under ``shm_dir``; (files removed, bytes freed)."""
    try:
        names = sorted(os.listdir(shm_dir))
    except OSError:
        return 0, 0
    removed, freed = 0, 0
    for name in names:
        segment = _SEGMENT_LOCK.match(name)
        port = _PORT_LOCK.match(name)
        if not (segment or port) or _lock_is_held(shm_dir / name):
            continue
        base = name[:-3]
        files: List[Path] = [shm_dir / name, shm_dir / base]
        if port:
            files.append(shm_dir / f'sem.{base}_mutex')
        for path in files:
            size = _remove(path)
            if size or not path.exists():
                removed += 1
            freed += size
    return removed, freed


def main(argv: Optional[List[str]] = None) -> int:
    """Command line: clean and say how much was freed."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--dir', type=Path, default=SHM_DIR)
    args = parser.parse_args(argv)
    removed, freed = clean_zombies(args.dir)
    print(f'shm_clean: removed {removed} files of dead Fast DDS participants, '
          f'{freed / 1e6:.0f} MB freed')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
