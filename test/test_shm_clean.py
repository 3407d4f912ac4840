"""benchmarks/shm_clean.py removes dead participants' shared-memory files, never live ones."""

import fcntl
from pathlib import Path

from benchmarks.shm_clean import clean_zombies


def _participant(folder: Path, prefix: str, name: str, port: bool = False) -> Path:
    """Write the files of one Fast DDS segment (or port): data, lock, a port's mutex."""
    (folder / f'{prefix}_{name}').write_bytes(b'x' * 8192)
    lock = folder / f'{prefix}_{name}_el'
    lock.touch()
    if port:
        (folder / f'sem.{prefix}_{name}_mutex').touch()
    return lock


def test_dead_participants_files_go_and_live_ones_stay(tmp_path: Path) -> None:
    dead_segment = _participant(tmp_path, 'fastdds', '00f5380e02f5db31')
    dead_port = _participant(tmp_path, 'fastrtps', 'port7915', port=True)
    live_lock = _participant(tmp_path, 'fastrtps', '0d874d2a499c5182')
    unrelated = tmp_path / 'sem.something_else'
    unrelated.touch()
    with open(live_lock, 'ab') as held:   # a live participant holds its lock
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        removed, freed = clean_zombies(tmp_path)
        assert (tmp_path / 'fastrtps_0d874d2a499c5182').exists() and live_lock.exists()
    assert not dead_segment.exists() and not (tmp_path / 'fastdds_00f5380e02f5db31').exists()
    assert not dead_port.exists() and not (tmp_path / 'fastrtps_port7915').exists()
    assert not (tmp_path / 'sem.fastrtps_port7915_mutex').exists()
    assert unrelated.exists()
    assert removed == 5 and freed >= 2 * 8192


def test_a_missing_folder_is_nothing_to_clean(tmp_path: Path) -> None:
    assert clean_zombies(tmp_path / 'absent') == (0, 0)
