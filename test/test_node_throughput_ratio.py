"""CI guard of issue 9: the node must run at (nearly) the speed of its own pipeline.

One short bench_ros run measures, in the same run on the same machine, the standalone
pipeline (``SegmentationPipeline.process`` looped on the published frames, no ROS) and
the node process fed by a camera faster than the model (mask only), and fails when the
node delivers less than 80 % of what the pipeline allows. A ratio, not a time: a slow or
busy CI machine slows both sides alike.

Small frames (640x360) keep it short; one ONNX Runtime thread keeps the model's speed
independent of what else runs on a 2-core machine (with two threads, any other busy
process makes ORT's parallel loops wait for a straggler, and the node, which shares the
machine with the camera and the subscriber, would be measured against a pipeline that
had the machine to itself).

The gate is on frames per CPU-second (``--check-basis cpu``: node process CPU per mask vs
the loop's CPU per frame), the throughput a CPU-bound machine allows: on the shared 2-core
development machine (load 7-8) the wall-clock rates of the loop and the node, a minute
apart, differed 2-3x run to run (wall ratios 0.48-3.4 for the same code), their CPU cost
per frame within ~15 % (main's node 1.3-2.1x the loop's CPU per frame, this one 0.9-1.1x).
The wall-clock ratio is printed too. Three interleaved rounds (pipeline, node, pipeline, ...)
and their median: one round caught while the machine slows down (it does, by minutes: the
loop alone ran at 8.0 and 4.3 frames/s ten minutes apart) does not decide.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MIN_RATIO = 0.8


@pytest.mark.ros
@pytest.mark.slow
def test_node_keeps_up_with_its_pipeline(tmp_path, deeplab_model, video_path):
    pytest.importorskip('rclpy')
    pytest.importorskip('segformer_ros.msg', reason='generated messages missing: run make setup')
    cmd = [sys.executable, '-m', 'benchmarks.bench_ros',
           '--scenarios', 'pipeline,mask_only', '--width', '640', '--height', '360',
           '--rate', '30', '--duration', '8', '--pipeline-seconds', '5', '--rounds', '3',
           '--set', 'num_threads=1', '--check-ratio', str(MIN_RATIO), '--no-write-docs',
           '--out', str(tmp_path), '--model', str(deeplab_model), '--video', str(video_path)]
    proc = subprocess.run(cmd, cwd=str(REPO), env=dict(os.environ), capture_output=True,
                          text=True, timeout=300)
    output = proc.stdout[-4000:] + proc.stderr[-3000:]
    report = json.loads((tmp_path / 'bench_ros.json').read_text())
    nvp = report['node_vs_pipeline']
    entry = nvp['scenarios']['mask_only']
    print(f'pipeline {nvp["pipeline_fps"]} frames/s, node {entry["output_hz"]} masks/s '
          f'(allowed {entry["allowed_hz"]}), wall ratio {entry["throughput_ratio"]}, CPU ratio '
          f'{entry["cpu_ratio"]} (medians of {nvp.get("rounds", 1)} rounds; per round '
          f'{entry.get("per_round")}), load {report["load_before"]} -> {report["load_after"]}')
    assert proc.returncode == 0, output
    assert entry['output_hz'] > 0, output
    assert entry['cpu_ratio'] >= MIN_RATIO, output
