"""`make demo` end to end, shortened: node + image_source + recorder over loopback DDS."""

import json

import pytest

pytest.importorskip('segformer_ros.msg', reason='generated messages missing: run make setup')

from benchmarks import demo  # noqa: E402

pytestmark = pytest.mark.ros


def test_demo_writes_video_summaries_and_report(tmp_path, deeplab_model, video_path) -> None:
    code = demo.main(['--max-frames', '12', '--rate', '8', '--out', str(tmp_path)])
    assert code == 0
    report = json.loads((tmp_path / 'report.json').read_text())
    assert report['frames_published'] > 0 and report['masks'] > 0
    assert report['masks'] <= report['frames_published']
    assert report['node_exit_code'] == 0
    # Numbers are numbers, and the drops add up.
    for key in ('frames_replaced_in_node', 'frames_lost_before_node'):
        assert isinstance(report[key], int), (key, report[key])
    assert isinstance(report['inference_ms_p50'], float)
    assert all(isinstance(v, float) for v in report['stage_ms_p50'].values())
    assert report['frames_without_mask'] == report['frames_published'] - report['masks']
    assert (report['frames_lost_before_node'] + report['frames_replaced_in_node']
            >= report['frames_without_mask'])
    # Only outputs in the output folder: no temporary params file left behind.
    assert not list(tmp_path.glob('*params*')), sorted(p.name for p in tmp_path.iterdir())
    assert (tmp_path / 'overlay.mp4').stat().st_size > 10_000
    lines = (tmp_path / 'summaries.jsonl').read_text().splitlines()
    assert len(lines) == report['summaries'] > 0
    first = json.loads(lines[0])
    assert first['frame_id'] == 'camera' and (first['width'], first['height']) == (960, 540)
    assert 0.0 < first['drivable_fraction'] < 1.0
    # The drivable grid (assumed camera and pose) is published and drawn beside the overlay.
    assert report['grids'] > 0
    assert (tmp_path / 'grid_sample_1.jpg').stat().st_size > 10_000
