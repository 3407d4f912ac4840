"""`make bench ARGS=--grid-only`: the drivable grid's timing runs and lands in its subsection."""

import json

from benchmarks import bench


def test_grid_only_bench_updates_only_its_subsection(tmp_path) -> None:
    out = tmp_path / 'grid.json'
    docs = tmp_path / 'benchmarks.md'
    docs.write_text('# Benchmarks\n\n## CPU pipeline (make bench)\n\ncpu numbers\n\n'
                    '### Logit upsampling\n\nkeep me\n\n## GPU (other section)\n\nkeep me too\n')
    for _ in range(2):   # the second run replaces the first run's subsection
        assert bench.main(['--grid-only', '--quick', '--json', str(out),
                           '--docs', str(docs), '--write-docs']) == 0
    grid = json.loads(out.read_text())['drivable_grid']
    assert grid['per_frame']['n'] == 20 and grid['per_frame']['min_ms'] > 0
    assert grid['mask'] == '1920x1080' and grid['table_entries'] > 0
    free, occupied, unknown = grid['cells_free_occupied_unknown']
    assert free > 0 and unknown > 0 and free + occupied + unknown == 200 * 200
    text = docs.read_text()
    assert text.count(bench.GRID_SECTION) == 1
    assert 'cpu numbers' in text and 'keep me\n' in text and 'keep me too' in text
    assert text.index(bench.GRID_SECTION) < text.index('## GPU (other section)')
