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

The gate is on both bases (``--check-basis both``): masks per second (the wall clock, what
the issue asks) and frames per CPU-second (node process CPU per mask vs the loop's CPU per
frame). On the shared 2-core development machine under other sessions' builds (load 7-8)
the wall-clock rates of the loop and the node, a minute apart, differed 2-3x run to run
(wall ratios 0.48-3.4 for the same code) while their CPU cost per frame stayed within ~15 %,
so the gate was on the CPU basis alone until a quiet run of this configuration (load 0.3-1,
2026-11-30) gave wall ratios 1.03, 1.12, 0.89 (median 1.03) and CPU ratios 1.02, 1.11, 0.91.
Three interleaved rounds (pipeline, node, pipeline, ...) and their medians: one round caught
while the machine slows down (it does, by minutes: the loop alone ran at 8.0 and 4.3
frames/s ten minutes apart) does not decide. A failing run is repeated once: load from
outside the test passes, a slow node fails both runs.
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
           '--set', 'num_threads=1', '--check-ratio', str(MIN_RATIO), '--check-basis', 'both',
           '--no-write-docs', '--model', str(deeplab_model), '--video', str(video_path)]
    runs = []
    for attempt in range(2):
        out = tmp_path / f'run{attempt}'
        proc = subprocess.run(cmd + ['--out', str(out)], cwd=str(REPO), env=dict(os.environ),
                              capture_output=True, text=True, timeout=300)
        output = proc.stdout[-4000:] + proc.stderr[-3000:]
        report = json.loads((out / 'bench_ros.json').read_text())
        nvp = report['node_vs_pipeline']
        entry = nvp['scenarios']['mask_only']
        print(f'run {attempt + 1}: pipeline {nvp["pipeline_fps"]} frames/s, node '
              f'{entry["output_hz"]} masks/s (allowed {entry["allowed_hz"]}), wall ratio '
              f'{entry["throughput_ratio"]}, CPU ratio {entry["cpu_ratio"]} (medians of '
              f'{nvp.get("rounds", 1)} rounds; per round {entry.get("per_round")}), load '
              f'{report["load_before"]} -> {report["load_after"]}')
        # Exit 3 is the ratio check failing; anything else is the benchmark failing.
        assert proc.returncode in (0, 3), output
        assert entry['output_hz'] > 0, output
        runs.append((entry['throughput_ratio'], entry['cpu_ratio'], output))
        if proc.returncode == 0:
            break
    wall, cpu, output = runs[-1]
    assert wall >= MIN_RATIO and cpu >= MIN_RATIO, (
        f'node below {MIN_RATIO} x its pipeline in {len(runs)} runs (wall, CPU): '
        f'{[(w, c) for w, c, _ in runs]}\n{output}')
