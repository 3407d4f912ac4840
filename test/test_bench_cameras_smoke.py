"""The multi-camera benchmark runs end to end in its quick mode."""

import json

import pytest

pytest.importorskip('segformer_ros.msg', reason='generated messages missing: run make setup')

from benchmarks import bench_cameras  # noqa: E402

pytestmark = pytest.mark.ros


def test_quick_two_cameras(tmp_path, deeplab_model, video_path) -> None:
    code = bench_cameras.main(['--quick', '--cameras', '2', '--models', 'deeplab',
                               '--out', str(tmp_path), '--duration', '2'])
    assert code == 0
    results = json.loads((tmp_path / 'results.json').read_text())
    assert [(r['cameras'], r['batched']) for r in results] == [(2, False), (2, True)]
    for r in results:
        assert r['total_fps'] > 0
        for cam in r['per_camera'].values():
            assert cam['received'] > 0 and cam['sent'] >= cam['received']
            assert cam['latency_ms_p50'] > 0
