"""`make soak`: a long run of camera -> node -> recorder, watching for slow leaks and drift.

Starts the segformer node (DeepLab Cityscapes preset) and an image_source process that
loops the bundled assets/data/solidWhiteRight.mp4 at ``--rate`` Hz, records masks, overlays and
summaries in this process, and samples the node's RSS, threads and open files every
second. At the end it reports:

* RSS growth after warm-up: the median of the last minute minus the median of the minute
  after ``--warmup-min``, for the whole RSS and split into private memory (RssAnon: heap,
  where a leak shows; target < 5 MB) and shared memory (RssShmem: pages of the fixed-size
  Fast DDS segments, resident once touched, so it rises towards the segment sizes);
* image -> mask latency p50/p95 per ``--window-min`` window (drift);
* every ERROR/WARN line and traceback in the node's log, the node's exit code and its
  /diagnostics counters (frames in/out/dropped/failed).

It writes a JSON report to ``--out`` and appends a section to docs/reliability.md
(``--doc``; ``--doc ''`` to skip). Exit code 0 when the run met its targets.

Example: ``python -m benchmarks.soak --minutes 30 --rate 30``
"""

import argparse
import datetime
import json
import os
import platform
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from segformer_ros.stats import percentiles
from benchmarks.processes import (REPO_ROOT, RosProcess, confine_this_process,
                                  image_source_command, loopback_env, node_command, params_file,
                                  pick_domain_id)

BUNDLED_MODEL_FILE = 'deeplab_mnv_edgetpu_slim_cityscapes_nchw_f32.onnx'
DEFAULT_MODEL = REPO_ROOT / 'assets' / 'models' / BUNDLED_MODEL_FILE  # bundled
DEFAULT_VIDEO = REPO_ROOT / 'assets' / 'data' / 'solidWhiteRight.mp4'  # bundled
DEFAULT_PRESET = REPO_ROOT / 'config' / 'deeplab_mobilenet_cityscapes.yaml'
DEFAULT_DOC = REPO_ROOT / 'docs' / 'reliability.md'
RSS_TARGET_MB = 5.0


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    """Command-line options of the soak run."""
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--minutes', type=float, default=30.0, help='length of the run')
    p.add_argument('--rate', type=float, default=30.0, help='camera rate in Hz')
    p.add_argument('--width', type=int, default=0, help='resize camera frames (0 = native)')
    p.add_argument('--model', default=str(DEFAULT_MODEL), help='ONNX model')
    p.add_argument('--params', default=str(DEFAULT_PRESET), help='params file (preset)')
    p.add_argument('--video', default=str(DEFAULT_VIDEO), help='video file or image folder')
    p.add_argument('--warmup-min', type=float, default=2.0,
                   help='minutes before the RSS baseline is taken')
    p.add_argument('--window-min', type=float, default=5.0, help='latency window length')
    p.add_argument('--out', default=str(REPO_ROOT / 'out' / 'soak'), help='output folder')
    p.add_argument('--doc', default='',
                   help="markdown file the results are appended to (default: none; "
                        "--write-docs = docs/reliability.md)")
    p.add_argument('--write-docs', action='store_true',
                   help='append the results to docs/reliability.md')
    p.add_argument('--startup-timeout', type=float, default=120.0)
    args = p.parse_args(argv)
    if args.write_docs and not args.doc:
        args.doc = str(DEFAULT_DOC)
    return args


def _proc_mem_mb(pid: int) -> Dict[str, float]:
    """VmRSS, RssAnon and RssShmem of a process in MiB (NaN where missing)."""
    text = Path(f'/proc/{pid}/status').read_text()
    out = {}
    for key in ('VmRSS', 'RssAnon', 'RssShmem'):
        match = re.search(rf'^{key}:\s+(\d+) kB', text, re.MULTILINE)
        out[key] = int(match.group(1)) / 1024.0 if match else float('nan')
    return out


def _proc_counts(pid: int) -> Tuple[int, int]:
    """(threads, open file descriptors) of a process."""
    return len(os.listdir(f'/proc/{pid}/task')), len(os.listdir(f'/proc/{pid}/fd'))


class _Samples:
    """Time series gathered during the run (seconds since start)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.mask: List[Tuple[float, float]] = []        # (receipt t, latency s)
        self.rss: List[Tuple[float, float]] = []         # (t, MiB) VmRSS
        self.anon: List[Tuple[float, float]] = []        # (t, MiB) RssAnon
        self.shmem: List[Tuple[float, float]] = []       # (t, MiB) RssShmem
        self.threads: List[Tuple[float, int]] = []
        self.fds: List[Tuple[float, int]] = []


def _median_between(series: List[Tuple[float, float]], lo: float, hi: float) -> float:
    values = [v for t, v in series if lo <= t < hi]
    return float(np.median(values)) if values else float('nan')


def _windows(samples: _Samples, duration_s: float, window_s: float) -> List[Dict[str, Any]]:
    rows = []
    start = 0.0
    while start < duration_s - 1e-6:
        end = min(start + window_s, duration_s)
        lat = [v for t, v in samples.mask if start <= t < end]
        p50, p95 = percentiles(lat)
        rows.append({'from_min': round(start / 60, 2), 'to_min': round(end / 60, 2),
                     'masks': len(lat), 'fps': round(len(lat) / (end - start), 2),
                     'latency_ms_p50': round(p50 * 1e3, 1), 'latency_ms_p95': round(p95 * 1e3, 1),
                     'rss_mb_median': round(_median_between(samples.rss, start, end), 1)})
        start = end
    return rows


def run(args: argparse.Namespace) -> Dict[str, Any]:
    """Run the soak; return the report (also written as JSON)."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from benchmarks.recorder import OutputRecorder
    from segformer_ros.tools.spin import BackgroundSpin

    for path, what in ((args.model, 'model'), (args.video, 'video')):
        if not Path(path).exists():
            raise SystemExit(f'soak: {what} {path} not found (the defaults are the bundled '
                             f'assets/)')
    stamp = datetime.datetime.now().strftime('%Y%m%d-%H%M%S')
    out = Path(args.out) / stamp
    out.mkdir(parents=True, exist_ok=True)
    domain = pick_domain_id(offset=57)
    confine_this_process(domain)
    env = loopback_env(domain)
    overrides = params_file({'model_path': str(Path(args.model).resolve()), 'autostart': True,
                             'warmup_iterations': 2}, str(out))
    node = RosProcess(node_command([args.params, overrides], {'image': '/camera/image_raw'}),
                      env, out / 'node.log')
    samples = _Samples()
    t0 = time.monotonic()

    def on_mask(msg: Any) -> None:
        now = time.time()
        latency = now - (msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9)
        with samples.lock:
            samples.mask.append((time.monotonic() - t0, latency))

    rclpy.init()
    recorder = OutputRecorder(name='segformer_soak_recorder', camera_topic='/camera/image_raw',
                              on_mask=on_mask)
    executor = SingleThreadedExecutor()
    executor.add_node(recorder)
    spinner: Optional[BackgroundSpin] = None
    interrupted = False
    source: Optional[RosProcess] = None
    duration_s = args.minutes * 60.0
    node_code: Optional[int] = None
    try:
        print(f'soak: starting the node (domain {domain}, output {out})', flush=True)
        if not node.wait_for_log('configured', args.startup_timeout):
            raise SystemExit('soak: the node did not configure; its log:\n' + node.log()[-3000:])
        spinner = BackgroundSpin(executor, 'soak_recorder_spin')
        source = RosProcess(image_source_command(
            str(Path(args.video).resolve()), rate_hz=args.rate, width=args.width, loop=True,
            wait_for_subscribers=2), env, out / 'image_source.log')
        t0 = time.monotonic()
        next_print = 60.0
        while True:
            elapsed = time.monotonic() - t0
            if elapsed >= duration_s:
                break
            if not rclpy.ok():
                interrupted = True
                print('soak: interrupted; stopping and reporting what was measured', flush=True)
                break
            if not node.running():
                print('soak: the node exited early!', flush=True)
                break
            threads, fds = _proc_counts(node.pid)
            with samples.lock:
                mem = _proc_mem_mb(node.pid)
                samples.rss.append((elapsed, mem['VmRSS']))
                samples.anon.append((elapsed, mem['RssAnon']))
                samples.shmem.append((elapsed, mem['RssShmem']))
                samples.threads.append((elapsed, threads))
                samples.fds.append((elapsed, fds))
            if elapsed >= next_print:
                next_print += 60.0
                with samples.lock:
                    recent = [v for t, v in samples.mask if t >= elapsed - 60]
                p50, p95 = percentiles(recent)
                print(f'soak: {elapsed / 60:5.1f} min  masks/s {len(recent) / 60:5.2f}  '
                      f'latency p50 {p50 * 1e3:6.1f} ms p95 {p95 * 1e3:6.1f} ms  '
                      f'RSS {samples.rss[-1][1]:7.1f} MB  threads {threads}  fds {fds}',
                      flush=True)
            time.sleep(max(0.0, 1.0 - (time.monotonic() - t0 - elapsed)))
        time.sleep(2.0)   # a last /diagnostics message
    finally:
        if source is not None:
            source.stop()
        node_code = node.stop()
        if spinner is not None:
            spinner.stop()   # joins: see segformer_ros.tools.spin
        else:
            executor.shutdown()
        recorder.destroy_node()
        rclpy.try_shutdown()
    actual_s = min(duration_s, max((t for t, _ in samples.rss), default=0.0) + 1.0)
    report = _report(args, samples, recorder, node, node_code, out, actual_s)
    if interrupted:
        report['interrupted'] = True
        report['passed'] = False
    return report


def _number(value: Optional[str]) -> Any:
    """Return a /diagnostics value ('12.000') as int or float where it is a number."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return value
    return int(number) if number.is_integer() else round(number, 1)


def _log_problems(log: str) -> List[str]:
    lines = [line for line in log.splitlines()
             if '[ERROR]' in line or '[WARN]' in line or 'Traceback' in line]
    return [line if len(line) <= 300 else line[:300] + '...' for line in lines]


def _report(args: argparse.Namespace, samples: _Samples, recorder: Any, node: RosProcess,
            node_code: Optional[int], out: Path, duration_s: float) -> Dict[str, Any]:
    warm = args.warmup_min * 60.0
    rss_start = _median_between(samples.rss, warm, warm + 60.0)
    rss_end = _median_between(samples.rss, duration_s - 60.0, duration_s + 1.0)
    lat = [v for _, v in samples.mask]
    p50, p95 = percentiles(lat)
    diag = dict(recorder.diagnostics)
    problems = _log_problems(node.log_path.read_text(errors='replace'))
    growth = rss_end - rss_start
    anon_start = _median_between(samples.anon, warm, warm + 60.0)
    anon_growth = _median_between(samples.anon, duration_s - 60.0, duration_s + 1.0) - anon_start
    shmem_growth = (_median_between(samples.shmem, duration_s - 60.0, duration_s + 1.0)
                    - _median_between(samples.shmem, warm, warm + 60.0))
    report: Dict[str, Any] = {
        'command': 'python -m benchmarks.soak ' + ' '.join(sys.argv[1:]),
        'started': datetime.datetime.now().isoformat(timespec='seconds'),
        'host': f'{platform.node()} ({os.cpu_count()} CPUs, {platform.processor() or "?"})',
        'minutes': round(duration_s / 60.0, 2), 'camera_rate_hz': args.rate,
        'camera_frames_seen': recorder.counts['camera'],
        'camera_rate_achieved_hz': round(recorder.counts['camera'] / duration_s, 2),
        'masks': recorder.counts['mask'], 'overlays': recorder.counts['overlay'],
        'summaries': recorder.counts['summary'],
        'output_fps': round(recorder.counts['mask'] / duration_s, 2),
        'latency_ms_p50': round(p50 * 1e3, 1), 'latency_ms_p95': round(p95 * 1e3, 1),
        'rss_mb_after_warmup': round(rss_start, 1), 'rss_mb_end': round(rss_end, 1),
        'rss_growth_mb': round(growth, 2),
        'private_rss_growth_mb': round(anon_growth, 2),
        'shared_rss_growth_mb': round(shmem_growth, 2),
        'rss_mb_min_max': [round(min(v for _, v in samples.rss), 1),
                           round(max(v for _, v in samples.rss), 1)] if samples.rss else [],
        'threads_first_last': [samples.threads[0][1], samples.threads[-1][1]]
        if samples.threads else [],
        'fds_first_last': [samples.fds[0][1], samples.fds[-1][1]] if samples.fds else [],
        'windows': _windows(samples, duration_s, args.window_min * 60.0),
        'node_diagnostics': {k: _number(diag.get(k)) for k in (
            'frames_in', 'frames_out', 'frames_dropped', 'frames_failed', 'inference_ms_p50',
            'backend')},
        'node_exit_code': node_code, 'log_problems': problems,
        'targets': {'private_rss_growth_mb_below': RSS_TARGET_MB},
    }
    report['passed'] = bool(anon_growth < RSS_TARGET_MB and node_code == 0 and not problems
                            and report['masks'] > 0)
    (out / 'report.json').write_text(json.dumps(report, indent=2))
    return report


def markdown(report: Dict[str, Any]) -> str:
    """Format the report as a markdown section for docs/reliability.md."""
    d = report['node_diagnostics']
    lines = [
        f'### Soak run {report["started"]} ({report["minutes"]} min at '
        f'{report["camera_rate_hz"]:g} Hz): {"PASSED" if report["passed"] else "FAILED"}', '',
        f'Command: `{report["command"]}` on {report["host"]}.', '',
        '| quantity | value |', '|---|---|',
        f'| camera frames seen by the recorder (rate) | {report["camera_frames_seen"]} '
        f'({report["camera_rate_achieved_hz"]} Hz) |',
        f'| masks / overlays / summaries received | {report["masks"]} / {report["overlays"]} / '
        f'{report["summaries"]} ({report["output_fps"]} masks/s) |',
        f'| node frames in / out / dropped / failed | {d.get("frames_in")} / '
        f'{d.get("frames_out")} / {d.get("frames_dropped")} / {d.get("frames_failed")} |',
        f'| inference p50 (node, last window) | {d.get("inference_ms_p50")} ms '
        f'({d.get("backend")}) |',
        f'| image -> mask latency p50 / p95 (whole run) | {report["latency_ms_p50"]} / '
        f'{report["latency_ms_p95"]} ms |',
        f'| node RSS after warm-up -> end (growth) | {report["rss_mb_after_warmup"]} -> '
        f'{report["rss_mb_end"]} MB ({report["rss_growth_mb"]:+.2f} MB) |',
        f'| of which private (RssAnon) / shared DDS segments (RssShmem) | '
        f'**{report["private_rss_growth_mb"]:+.2f} MB** (target < '
        f'{report["targets"]["private_rss_growth_mb_below"]:g} MB) / '
        f'{report["shared_rss_growth_mb"]:+.2f} MB |',
        f'| node RSS min / max | {report["rss_mb_min_max"]} MB |',
        f'| node threads, fds (first -> last sample) | {report["threads_first_last"]}, '
        f'{report["fds_first_last"]} |',
        f'| node exit code (SIGINT at the end) | {report["node_exit_code"]} |',
        f'| ERROR/WARN lines in the node log | {len(report["log_problems"])} |', '',
        '| window (min) | masks | masks/s | latency p50 (ms) | latency p95 (ms) '
        '| RSS median (MB) |',
        '|---|---|---|---|---|---|',
    ]
    for w in report['windows']:
        lines.append(f'| {w["from_min"]:g}-{w["to_min"]:g} | {w["masks"]} | {w["fps"]} | '
                     f'{w["latency_ms_p50"]} | {w["latency_ms_p95"]} | {w["rss_mb_median"]} |')
    if report['log_problems']:
        lines += ['', 'Node log problems:', '']
        lines += [f'    {line}' for line in report['log_problems'][:20]]
    return '\n'.join(lines) + '\n'


def main(argv: Optional[List[str]] = None) -> int:
    """Run the soak, print and record the report."""
    args = parse_args(argv)
    report = run(args)
    print(json.dumps({k: v for k, v in report.items() if k != 'windows'}, indent=2))
    text = markdown(report)
    print(text)
    if report.get('interrupted'):
        print('soak: interrupted run: not appended to the document')
    elif args.doc:
        doc = Path(args.doc)
        with open(doc, 'a') as f:
            f.write('\n' + text)
        print(f'soak: appended the results to {doc}')
    return 0 if report['passed'] else 1


if __name__ == '__main__':
    sys.exit(main())
