"""`make bench-ros`: image -> mask latency over real DDS on loopback, as a planner sees it.

Processes: a publisher (tools/rate_publisher.py: pre-built 1920x1080 rgb8 frames of the
shared video, sensor-data QoS, fresh stamps) -> the segformer node (its own process, the
DeepLab preset) -> a subscriber in this process (OutputRecorder). Latency is receipt time
minus the header stamp (the node copies the camera stamp). Scenarios, each with a fresh
node so its /diagnostics stage windows hold only that scenario:

* ``transport``: publisher -> a plain subscriber in this process, no node (the floor);
* ``pipeline``: the standalone pipeline (same params, model, threads and frames) looped in
  this process without ROS: the yardstick of the "Node vs pipeline" ratios (issue 9);
* ``pipeline_full``: the same loop computing mask, overlay and summary: the yardstick of
  the ``full`` scenario (issue 22: both sides compute the same outputs);
* ``pipeline_camera``: the same loop while the camera publisher(s) run at ``--rate`` into
  an idle depth-1 reader in this process (the node's reader, never taken): what the
  pipeline gets of a machine it shares with the camera. Not the issue's yardstick; it
  splits the node's shortfall into the camera's share and the node's own;
* ``mask_only``: only the mask subscribed (the node skips overlay and summary);
* ``full``: mask, overlay and summary subscribed;
* ``flood``: mask only at ``--flood-rate``: with keep-latest input the latency must stay
  flat over the run instead of growing with a queue;
* ``ros_floor``: the camera into benchmarks/ros_floor.py instead of the node: a minimal
  rclpy process that takes the frames as the node does and publishes a mono8 mask of
  their size as the node does, no model, no pre/post (issue 22): its CPU per mask is
  what ROS costs any Python node at this frame size, so the node-vs-pipeline figures
  also say what the node adds beyond pipeline + floor.

Writes out/bench_ros/bench_ros.json, docs/images/bench_ros_latency.png and the section
"End-to-end over ROS 2 (make bench-ros)" of docs/benchmarks.md (not with --quick).
"""

import argparse
import datetime
import json
import os
import platform
import re
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from benchmarks.processes import (REPO_ROOT, RosProcess, confine_this_process, loopback_env,
                                  node_command, params_file, pick_domain_id)
from benchmarks.trivial_model import TRIVIAL, write_trivial_model

BUNDLED_MODEL_FILE = 'deeplab_mnv_edgetpu_slim_cityscapes_nchw_f32.onnx'
DEFAULT_MODEL = REPO_ROOT / 'assets' / 'models' / BUNDLED_MODEL_FILE  # bundled
DEFAULT_VIDEO = REPO_ROOT / 'assets' / 'data' / 'solidWhiteRight.mp4'  # bundled
DEFAULT_PRESET = REPO_ROOT / 'config' / 'deeplab_mobilenet_cityscapes.yaml'
DOCS = REPO_ROOT / 'docs' / 'benchmarks.md'
PLOT = REPO_ROOT / 'docs' / 'images' / 'bench_ros_latency.png'
SECTION_TITLE = '## End-to-end over ROS 2 (make bench-ros)'
CAMERA_TOPIC = '/camera/image_raw'
MATCH_TIMEOUT_S = 20.0   # the benchmark's subscriptions matching the node's outputs
TARGET_OVERHEAD_MS = 15.0
STAGES = ('input_age', 'convert', 'preprocess', 'inference', 'postprocess', 'overlay', 'summary',
          'publish')

# (receipt time, latency), both in seconds.
Sample = Tuple[float, float]


class Scenario:
    """One measured configuration."""

    def __init__(self, name: str, label: str, rate_hz: float, node: bool,
                 overlay: bool = False, summary: bool = False) -> None:
        self.name = name
        self.label = label
        self.rate_hz = rate_hz
        self.node = node
        self.overlay = overlay
        self.summary = summary


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    """Command-line options of the benchmark."""
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--duration', type=float, default=None,
                   help='seconds of publishing per scenario (default 20; 3 with --quick)')
    p.add_argument('--rate', type=float, default=30.0, help='camera rate in Hz')
    p.add_argument('--flood-rate', type=float, default=200.0, help='flood run rate in Hz')
    p.add_argument('--width', type=int, default=None, help='frame width (default 1920; '
                   '640 with --quick)')
    p.add_argument('--height', type=int, default=None, help='frame height (default 1080; '
                   '360 with --quick)')
    p.add_argument('--quick', action='store_true',
                   help='smoke mode: short scenarios, small frames, no docs written')
    p.add_argument('--write-docs', action='store_true',
                   help='also replace the section of docs/benchmarks.md and its plot in '
                        'docs/images (default: only --out)')
    p.add_argument('--no-write-docs', action='store_true',
                   help=argparse.SUPPRESS)  # the default now; kept for old scripts
    p.add_argument('--scenarios', default='transport,pipeline,mask_only,full,flood',
                   help='comma-separated subset of transport,pipeline,pipeline_full,'
                   'pipeline_camera,mask_only,full,flood,ros_floor (pipeline: the standalone '
                   'pipeline loop in this process, no ROS; pipeline_full: the same with overlay '
                   'and summary, the yardstick of full; pipeline_camera: the same loop with the '
                   'camera publishing beside it; ros_floor: a minimal rclpy process taking the '
                   'frames and publishing masks as the node does, no model: the ROS floor)')
    p.add_argument('--model', default=str(DEFAULT_MODEL),
                   help='ONNX model (or engine); "trivial": a class-id model that costs '
                   'almost nothing (benchmarks/trivial_model.py), so the node\'s own work '
                   'shows')
    p.add_argument('--params', default=str(DEFAULT_PRESET), help='params file (preset)')
    p.add_argument('--video', default=str(DEFAULT_VIDEO), help='video file or image folder')
    p.add_argument('--backend', default='onnxruntime', help='auto, onnxruntime or tensorrt')
    p.add_argument('--out', default=str(REPO_ROOT / 'out' / 'bench_ros'), help='output folder')
    p.add_argument('--note', default='', help='a line added to the docs section (e.g. '
                   'machine state)')
    p.add_argument('--startup-timeout', type=float, default=90.0)
    p.add_argument('--set', action='append', default=[], metavar='NAME=VALUE',
                   help='node parameter for the node and the standalone pipeline alike, '
                   'YAML value (e.g. --set pipeline=gpu --set onnxruntime_provider=cuda)')
    p.add_argument('--cameras', type=int, default=1,
                   help='cameras (publisher processes, /cam<i>/image) into one node; the '
                   'node runs with cameras [cam0, ...] and batches their frames')
    p.add_argument('--pipeline-seconds', type=float, default=None,
                   help='seconds of the standalone pipeline loop (default: --duration / 2)')
    p.add_argument('--rounds', type=int, default=1,
                   help='run the scenarios this many times, interleaved (pipeline, node, '
                   'pipeline, node, ...); node-vs-pipeline figures are the medians of the '
                   'per-round ones, so load that changes between minutes cancels')
    p.add_argument('--check-ratio', type=float, default=None, metavar='R',
                   help='exit 3 when a mask-only node scenario delivers less than R x what '
                   'the standalone pipeline measured in this run allows (CI check)')
    p.add_argument('--check-basis', choices=('cpu', 'wall', 'both'), default='cpu',
                   help='--check-ratio on frames per CPU-second (default; steady on a busy '
                   'machine), on masks per second, or both must pass')
    args = p.parse_args(argv)
    args.overrides = parse_sets(p, args.set)
    args.duration = args.duration or (3.0 if args.quick else 20.0)
    args.width = args.width or (640 if args.quick else 1920)
    args.height = args.height or (360 if args.quick else 1080)
    args.settle_s = 0.5 if args.quick else 2.0
    args.window_s = 1.0 if args.quick else 5.0
    args.write_docs = args.write_docs and not (args.quick or args.no_write_docs)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.rounds < 1:
        p.error(f'expected --rounds >= 1, got {args.rounds}')
    if args.duration <= args.settle_s or args.rate <= 0 or args.flood_rate <= 0:
        p.error(f'expected --duration > {args.settle_s} s and positive rates, got '
                f'{args.duration}, {args.rate}, {args.flood_rate}')
    return args


def parse_sets(parser: argparse.ArgumentParser, items: Sequence[str]) -> Dict[str, Any]:
    """``NAME=VALUE`` items as a parameter dict (values parsed as YAML, as in params files)."""
    import yaml

    from segformer_ros.parameters import PARAMETER_NAMES

    out: Dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition('=')
        if not sep or name not in PARAMETER_NAMES:
            parser.error(f'--set expects NAME=VALUE with a node parameter name, got {item!r}')
        out[name] = yaml.safe_load(value)
    return out


def scenarios_for(args: argparse.Namespace) -> List[Scenario]:
    """Return the scenarios selected by ``--scenarios``, in run order."""
    known = {
        'transport': Scenario('transport', 'transport only (no node)', args.rate, node=False),
        'pipeline': Scenario('pipeline', 'standalone pipeline (no ROS, same frames)', 0.0,
                             node=False),
        'pipeline_full': Scenario('pipeline_full', 'standalone pipeline, mask + overlay + '
                                  'summary (no ROS, same frames)', 0.0, node=False,
                                  overlay=True, summary=True),
        'pipeline_camera': Scenario('pipeline_camera', 'standalone pipeline beside the '
                                    'camera (its publisher into an idle reader here)',
                                    args.rate, node=False),
        'mask_only': Scenario('mask_only', 'node, mask only', args.rate, node=True),
        'full': Scenario('full', 'node, mask + overlay + summary', args.rate, node=True,
                         overlay=True, summary=True),
        'flood': Scenario('flood', 'node, mask only, flood', args.flood_rate, node=True),
        'ros_floor': Scenario('ros_floor', 'ROS floor: frame take + mask publish, no model '
                              '(benchmarks/ros_floor.py)', args.rate, node=False),
    }
    names = [n.strip() for n in args.scenarios.split(',') if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise SystemExit(f'bench_ros: expected --scenarios from {sorted(known)}, got {names}')
    return [known[n] for n in names]


# ------------------------------------------------------------------ process sampling
def start_file(report: Path) -> Path:
    """Return the file a gated camera publisher waits for (beside its report)."""
    return report.with_suffix('.start')


class ProcSampler:
    """CPU time and RSS of one process from /proc, sampled by the caller about once a second.

    CPU% is relative to one core (200% = two cores busy).
    """

    def __init__(self, pid: int, period_s: float = 1.0) -> None:
        self.pid = pid
        self.period_s = period_s
        self.samples: List[Tuple[float, float, float]] = []   # (time, cpu s, rss MB)
        self._tick = float(os.sysconf('SC_CLK_TCK'))

    def maybe_sample(self, force: bool = False) -> None:
        """Take a sample when a period has passed since the last one (or ``force``)."""
        now = time.monotonic()
        if not force and self.samples and now - self.samples[-1][0] < self.period_s:
            return
        try:
            stat = Path(f'/proc/{self.pid}/stat').read_text()
            status = Path(f'/proc/{self.pid}/status').read_text()
        except OSError:
            return   # the process has exited
        fields = stat[stat.rindex(')') + 2:].split()
        cpu_s = (int(fields[11]) + int(fields[12])) / self._tick   # utime + stime
        match = re.search(r'^VmRSS:\s+(\d+) kB', status, re.M)
        rss_mb = int(match.group(1)) / 1024.0 if match else float('nan')
        self.samples.append((now, cpu_s, rss_mb))

    def summary(self) -> Dict[str, Optional[float]]:
        """Mean CPU% over the sampled span, peak per-interval CPU%, RSS at the end and peak."""
        if len(self.samples) < 2:
            return {'cpu_percent': None, 'cpu_percent_max': None, 'rss_mb': None,
                    'rss_mb_max': None, 'samples': len(self.samples)}
        t = np.array([s[0] for s in self.samples])
        cpu = np.array([s[1] for s in self.samples])
        rss = np.array([s[2] for s in self.samples])
        per_interval = np.diff(cpu) / np.maximum(np.diff(t), 1e-6) * 100.0
        return {'cpu_percent': _r((cpu[-1] - cpu[0]) / (t[-1] - t[0]) * 100.0),
                'cpu_percent_max': _r(per_interval.max()),
                'rss_mb': _r(rss[-1]), 'rss_mb_max': _r(rss.max()),
                'samples': len(self.samples)}


class MachineSampler(ProcSampler):
    """Busy CPU of the whole machine from /proc/stat (200% = two cores busy), and idle.

    Beside the node's and the camera's own figures it tells whether the node got less CPU
    because the machine was full (the other processes took it) or because it waited.
    """

    def __init__(self, period_s: float = 1.0) -> None:
        super().__init__(0, period_s)
        self.cores = os.cpu_count() or 1

    def maybe_sample(self, force: bool = False) -> None:
        """Take a sample when a period has passed since the last one (or ``force``)."""
        now = time.monotonic()
        if not force and self.samples and now - self.samples[-1][0] < self.period_s:
            return
        try:
            fields = [int(v) for v in Path('/proc/stat').read_text().split('\n', 1)[0].split()[1:]]
        except (OSError, ValueError):
            return
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)   # idle + iowait
        busy = sum(fields[:8]) - idle                               # guest is inside user
        self.samples.append((now, busy / self._tick, float('nan')))

    def summary(self) -> Dict[str, Optional[float]]:
        """Mean busy CPU% of all cores over the span, and the idle share of the machine."""
        base = super().summary()
        busy = base['cpu_percent']
        return {'cpu_percent': busy, 'cpu_percent_max': base['cpu_percent_max'],
                'idle_percent_of_machine': (_r(100.0 - busy / self.cores)
                                            if busy is not None else None),
                'cores': self.cores, 'samples': base['samples']}


# ----------------------------------------------------------------------- statistics
def latency_stats(samples: Sequence[Sample], settle_s: float) -> Dict[str, Any]:
    """p50/p95/max latency (ms) of samples received ``settle_s`` after the first one."""
    if not samples:
        return {'count': 0, 'p50_ms': None, 'p95_ms': None, 'max_ms': None, 'mean_ms': None}
    first = samples[0][0]
    kept = np.array([lat for t, lat in samples if t - first >= settle_s]) * 1e3
    if kept.size == 0:   # very short runs: keep everything rather than nothing
        kept = np.array([lat for _, lat in samples]) * 1e3
    p50, p95 = np.percentile(kept, [50, 95])
    return {'count': int(kept.size), 'p50_ms': _r(p50), 'p95_ms': _r(p95),
            'max_ms': _r(kept.max()), 'mean_ms': _r(kept.mean())}


def latency_windows(samples: Sequence[Sample], window_s: float) -> List[Dict[str, Any]]:
    """Latency per ``window_s`` window of receipt time (from the first receipt)."""
    if not samples:
        return []
    first = samples[0][0]
    buckets: Dict[int, List[float]] = {}
    for t, lat in samples:
        buckets.setdefault(int((t - first) // window_s), []).append(lat * 1e3)
    out = []
    for index in sorted(buckets):
        values = np.array(buckets[index])
        p50, p95 = np.percentile(values, [50, 95])
        out.append({'start_s': round(index * window_s, 1), 'count': int(values.size),
                    'p50_ms': _r(p50), 'p95_ms': _r(p95), 'max_ms': _r(values.max())})
    return out


def latency_trend(samples: Sequence[Sample], settle_s: float) -> Dict[str, Any]:
    """Fit the slope of latency over receipt time (ms per s) after settling."""
    if len(samples) < 3:
        return {'slope_ms_per_s': None}
    first = samples[0][0]
    pts = np.array([(t - first, lat * 1e3) for t, lat in samples if t - first >= settle_s])
    if len(pts) < 3:
        return {'slope_ms_per_s': None}
    slope = np.polyfit(pts[:, 0], pts[:, 1], 1)[0]
    return {'slope_ms_per_s': _r(slope, 2)}


def flood_bounded(windows: Sequence[Dict[str, Any]]) -> Optional[bool]:
    """Return True when the last full window's median latency is within 1.5x of the first one's.

    A queue would grow by about (input rate / output rate) x inference time per second,
    i.e. seconds within a few windows; keep-latest keeps the windows flat.
    """
    full = [w for w in windows if w['count'] >= 3]
    if len(full) < 2:
        return None
    return full[-1]['p50_ms'] <= 1.5 * full[0]['p50_ms'] + 5.0


def target_check(result: Dict[str, Any]) -> Dict[str, Any]:
    """Latency p95 minus the node's inference p50 (from /diagnostics) against the target."""
    p95 = result['latency']['p95_ms']
    inference = (result.get('stages_ms_p50') or {}).get('inference')
    if p95 is None or inference is None:
        return {'overhead_ms': None, 'pass': None}
    overhead = p95 - inference
    return {'latency_p95_ms': p95, 'inference_p50_ms': inference,
            'overhead_ms': _r(overhead), 'target_ms': TARGET_OVERHEAD_MS,
            'pass': bool(overhead <= TARGET_OVERHEAD_MS)}


def _r(value: float, digits: int = 1) -> Optional[float]:
    value = float(value)
    return None if value != value else round(value, digits)


def _float(value: Any) -> Optional[float]:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if number != number else number


# -------------------------------------------------------------------------- running
class _Collector:
    """Receipt time and latency of our messages per output kind; counts foreign ones."""

    def __init__(self, frame_id: str) -> None:
        self.frame_id = frame_id
        self.samples: Dict[str, List[Sample]] = {'mask': [], 'overlay': [], 'summary': []}
        self.foreign = 0

    def callback(self, kind: str) -> Callable[[Any], None]:
        """Return a subscription callback recording ``kind`` messages."""
        samples = self.samples[kind]

        def record(msg: Any) -> None:
            now = time.time()
            if msg.header.frame_id != self.frame_id:
                self.foreign += 1   # another run's message (shared domain id)
                return
            stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
            samples.append((now, now - stamp))
        return record


class _Run:
    """Shared state of one benchmark run: rclpy context, env, output folder."""

    def __init__(self, args: argparse.Namespace) -> None:
        from rclpy.executors import SingleThreadedExecutor

        self.args = args
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        # Our frames carry this frame_id; outputs with another one are not ours.
        self.frame_id = f'bench_ros_{os.getpid()}'
        self.domain = self._quiet_domain(discovery_s=1.0 if args.quick else 2.0)
        self.env = loopback_env(self.domain)
        self.executor = SingleThreadedExecutor()

    @staticmethod
    def _quiet_domain(attempts: int = 8, discovery_s: float = 1.5) -> int:
        """Init rclpy on a domain id where no other ROS node is seen; return the id.

        Tests and tools of other runs on this host pick ids from the same 1..100 range;
        sharing one would mix their frames and diagnostics into the measurement.
        """
        import rclpy

        for attempt in range(attempts):
            domain = pick_domain_id(attempt * 13)
            confine_this_process(domain)
            rclpy.init(domain_id=domain)
            probe = rclpy.create_node('bench_ros_domain_probe')
            end = time.monotonic() + discovery_s
            others: List[Tuple[str, str]] = []
            while time.monotonic() < end and not others:
                rclpy.spin_once(probe, timeout_sec=0.1)
                others = [n for n in probe.get_node_names_and_namespaces()
                          if n[0] != probe.get_name()]
            probe.destroy_node()
            if not others:
                return domain
            print(f'bench_ros: domain {domain} is in use by {others[:3]}; trying another',
                  flush=True)
            rclpy.shutdown()
        raise SystemExit(f'bench_ros: no free ROS domain id after {attempts} tries; expected '
                         f'one without other nodes (stop other ROS runs, or retry)')

    def close(self) -> None:
        import rclpy

        self.executor.shutdown()
        rclpy.try_shutdown()

    def spin_for(self, seconds: float, every: Optional[Callable[[], None]] = None) -> None:
        """Serve callbacks for ``seconds``."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.05)
            if every is not None:
                every()

    def spin_until(self, predicate: Callable[[], bool], timeout_s: float) -> bool:
        """Serve callbacks until ``predicate()`` or the timeout."""
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if predicate():
                return True
            self.executor.spin_once(timeout_sec=0.05)
        return predicate()

    def publisher(self, scenario: Scenario, topic: str = CAMERA_TOPIC,
                  tag: str = '', gated: bool = True) -> Tuple[RosProcess, Path]:
        """Start the rate publisher for ``scenario``; it waits for one subscriber.

        ``gated``: it also waits for its start file, which :meth:`measure` creates, so the
        span measured is the whole publishing span however long matching took.
        """
        report = self.out / f'publisher_{scenario.name}{tag}.json'
        start = start_file(report)
        for stale in (report, start):
            stale.unlink(missing_ok=True)
        gate = ['--start-file', str(start), '--start-timeout',
                str(self.args.startup_timeout + MATCH_TIMEOUT_S + 10.0)] if gated else []
        cmd = [sys.executable, '-m', 'benchmarks.rate_publisher',
               '--video', str(Path(self.args.video).resolve()), '--topic', topic,
               '--rate', str(scenario.rate_hz), '--duration', str(self.args.duration),
               '--width', str(self.args.width), '--height', str(self.args.height),
               '--frame-id', self.frame_id, '--wait-subscribers', '1',
               '--wait-timeout', str(self.args.startup_timeout), '--report', str(report),
               *gate]
        return (RosProcess(cmd, self.env, self.out / f'publisher_{scenario.name}{tag}.log'),
                report)

    def measure_all(self, started: Sequence[Tuple[RosProcess, Path]],
                    samplers: Dict[str, ProcSampler]) -> Dict[str, Any]:
        """:meth:`measure` for several publishers (one per camera): counts and rates summed."""
        others = [report_path for _, report_path in started[1:]]
        if not others:
            return self.measure(started[0], samplers)
        first = self.measure(started[0], samplers, start_too=others)
        reports = [first]
        for publisher, report_path in started[1:]:
            publisher.wait(5.0)
            publisher.stop()
            try:
                reports.append(json.loads(report_path.read_text()))
            except (OSError, ValueError):
                raise SystemExit(f'bench_ros: a camera publisher wrote no report; its log:\n'
                                 f'{publisher.log()[-3000:]}')
        total = dict(first)
        total['published'] = sum(int(r.get('published', 0)) for r in reports)
        total['achieved_hz'] = round(sum(float(r.get('achieved_hz') or 0) for r in reports), 2)
        total['seconds'] = max(float(r.get('seconds') or 0) for r in reports)
        total['per_camera_hz'] = [r.get('achieved_hz') for r in reports]
        return total

    def measure(self, started: Tuple[RosProcess, Path], samplers: Dict[str, ProcSampler],
                start_too: Sequence[Path] = ()) -> Dict[str, Any]:
        """Start the camera(s) and measure until the first one ends.

        Starts ``started``'s publisher and those whose reports ``start_too`` names (their
        start files), then serves callbacks and samples processes until it ends.
        """
        publisher, report_path = started
        samplers['publisher'] = ProcSampler(publisher.pid)
        # A sample before the camera starts: every sampler spans the whole publishing time
        # and has two samples at least (the forced one after it).
        for sampler in samplers.values():
            sampler.maybe_sample(force=True)
        for report in (report_path, *start_too):
            start_file(report).touch()

        # The node is configured and matched by now, and the camera starts on its start
        # file just created, so the span sampled is the publishing span.
        limit = self.args.duration + self.args.startup_timeout
        start = time.monotonic()
        while publisher.running() and time.monotonic() - start < limit:
            self.executor.spin_once(timeout_sec=0.05)
            for sampler in samplers.values():
                sampler.maybe_sample()
        for sampler in samplers.values():
            sampler.maybe_sample(force=True)
        code = publisher.stop()
        for report in (report_path, *start_too):
            start_file(report).unlink(missing_ok=True)
        # Late outputs and the node's last diagnostics (published every second).
        self.spin_for(1.1 if self.args.quick else 1.5)
        try:
            pub_report = json.loads(report_path.read_text())
        except (OSError, ValueError):
            raise SystemExit(f'bench_ros: the publisher wrote no report (exit {code}); its '
                             f'log:\n{publisher.log()[-3000:]}')
        return pub_report


def run_transport(run: _Run, scenario: Scenario) -> Dict[str, Any]:
    """Measure publisher -> plain subscriber in this process, node QoS (best effort, depth 1)."""
    import rclpy
    from sensor_msgs.msg import Image

    from segformer_ros.node import SENSOR_QOS

    collect = _Collector(run.frame_id)
    probe = rclpy.create_node('bench_transport_probe')
    probe.create_subscription(Image, CAMERA_TOPIC, collect.callback('mask'), SENSOR_QOS)
    run.executor.add_node(probe)
    try:
        pub = run.measure(run.publisher(scenario), {})
    finally:
        run.executor.remove_node(probe)
        probe.destroy_node()
    result = _result(run, scenario, collect.samples['mask'], pub)
    result['foreign_messages'] = collect.foreign
    return result


def run_node(run: _Run, scenario: Scenario) -> Dict[str, Any]:
    """Measure publisher -> segformer node (fresh process) -> OutputRecorder here."""
    from benchmarks.recorder import OutputRecorder

    args = run.args
    names = [f'cam{i}' for i in range(args.cameras)] if args.cameras > 1 else []
    camera_params: Dict[str, Any] = {'cameras': names} if names else {}
    overrides = params_file({'model_path': str(Path(args.model).resolve()),
                             'backend': args.backend, 'autostart': True, **camera_params,
                             **args.overrides}, str(run.out))
    node = RosProcess(node_command([args.params, overrides],
                                   {} if names else {'image': CAMERA_TOPIC}),
                      run.env, run.out / f'node_{scenario.name}.log')
    collect = _Collector(run.frame_id)
    samples = collect.samples['mask']
    prefixes = [f'/{n}/segmentation' for n in names] or ['/segmentation']
    recorders = [OutputRecorder(name=f'bench_recorder_{scenario.name}_{i}', prefix=prefix,
                                overlay=scenario.overlay, summary=scenario.summary,
                                on_mask=collect.callback('mask'),
                                on_overlay=collect.callback('overlay'),
                                on_summary=collect.callback('summary'))
                 for i, prefix in enumerate(prefixes)]
    recorder = recorders[0]
    for r in recorders:
        run.executor.add_node(r)
    t0 = time.monotonic()
    # Started now so its start-up overlaps the node's; it publishes once the node subscribes.
    started = ([run.publisher(scenario, f'/{n}/image', f'_{n}') for n in names]
               or [run.publisher(scenario)])
    try:
        if not node.wait_for_log('configured', args.startup_timeout):
            raise SystemExit('bench_ros: the node did not configure; its log:\n'
                             + node.log()[-3000:])
        wanted = ['mask'] + (['overlay'] if scenario.overlay else []) + (
            ['summary'] if scenario.summary else [])
        pairs = [(r, f'{prefix}/{w}') for r, prefix in zip(recorders, prefixes) for w in wanted]
        topics = [t for _, t in pairs]
        matched = run.spin_until(
            lambda: all(r.count_publishers(t) >= 1 for r, t in pairs), MATCH_TIMEOUT_S)
        if not matched:
            raise SystemExit(f'bench_ros: the node\'s outputs {topics} never matched')
        run.spin_for(0.5)   # let the node see our subscriptions too (it checks them)
        startup_s = time.monotonic() - t0
        samplers = {'node': ProcSampler(node.pid), 'recorder': ProcSampler(os.getpid()),
                    'machine': MachineSampler()}
        publishing_from = time.monotonic()
        pub = run.measure_all(started, samplers)
        diagnostics = dict(recorder.diagnostics)
        with recorder.lock:
            history = list(recorder.diagnostics_history)
        counts = {k: len(v) for k, v in collect.samples.items()}
        other = {k: latency_stats(collect.samples[k], args.settle_s)
                 for k in ('overlay', 'summary') if counts[k]}
    finally:
        _stop_recorders_and_cameras(run, recorders, started)
        node_code = node.stop()
        Path(overrides).unlink(missing_ok=True)
    result = _result(run, scenario, samples, pub)
    frames_in = _float(diagnostics.get('frames_in'))
    replaced = _float(diagnostics.get('frames_dropped'))
    frames_out = _float(diagnostics.get('frames_out'))
    seconds = float(pub.get('seconds') or 0.0)
    # The node's own count of published masks over the camera's publishing span (every
    # frame published reached the node: frames_in). The recorder here can miss masks: once
    # on 2 cores it matched the node's outputs ~3 s after the camera started and received
    # 89 of 120 (docs/benchmarks.md), which made received/s a harness figure, not the node's.
    # (The camera now waits for the benchmark's start file, so that no longer happens.)
    node_hz = _r(frames_out / seconds, 2) if frames_out and seconds > 0 else None
    result.update({
        'node_exit_code': node_code, 'node_startup_s': round(startup_s, 1),
        'counts': counts, 'other_outputs_latency': other,
        'foreign_messages': collect.foreign,
        'node_frames_in': frames_in, 'node_frames_out': frames_out,
        'node_output_hz': node_hz,
        'recorder_missed': (int(frames_out) - len(samples) if frames_out is not None
                            else None),
        'node_frames_replaced': replaced,
        # The node's skipped share of the frames it saw once the start-up settled (matching
        # of several cameras, first inferences): the steady state the whole-span figure
        # mixes with the start.
        'node_dropped_after_settle': steady_drop_fraction(history, publishing_from,
                                                          args.settle_s),
        # Superseded in the node's depth-1 DDS reader before its callback ran, or lost.
        'not_taken_by_node': (pub['published'] - int(frames_in)
                              if frames_in is not None else None),
        'stages_ms_p50': {s: _r(v, 2) for s in STAGES
                          if (v := _float(diagnostics.get(f'{s}_ms_p50'))) is not None},
        'stages_ms_p95': {s: _r(v, 2) for s in STAGES
                          if (v := _float(diagnostics.get(f'{s}_ms_p95'))) is not None},
        'backend': diagnostics.get('backend'),
        'node_process': samplers['node'].summary(),
        'node_cpu_ms_per_output': cpu_ms_per_output(samplers['node'], len(samples), node_hz),
        'publisher_process': samplers['publisher'].summary(),
        'cameras': max(1, args.cameras),
        # This benchmark process: the recorder's subscriptions and executor (one camera's
        # publisher is measured above; with several, each runs in its own process).
        'recorder_process': samplers['recorder'].summary(),
        'machine_cpu': samplers['machine'].summary(),
    })
    result['target'] = target_check(result)
    return result


def _stop_recorders_and_cameras(run: '_Run', recorders: Sequence[Any],
                                started: Sequence[Tuple[Any, Any]]) -> None:
    """Take the scenario's recorders off the executor and stop its camera processes."""
    for r in recorders:
        run.executor.remove_node(r)
        r.destroy_node()
    for publisher, _ in started:
        publisher.stop()


def run_floor(run: _Run, scenario: Scenario) -> Dict[str, Any]:
    """Measure the ROS floor: camera -> benchmarks/ros_floor.py (fresh process) -> recorder.

    The floor process takes the frames and publishes a mask of their size as the node
    does, with no model and no pre/post (ros_floor.py says exactly what it does); its
    process CPU per mask, sampled over the publishing span as the node's is, is what the
    node cannot avoid at this frame size. Keys as run_node's where they mean the same.
    """
    from benchmarks.recorder import OutputRecorder

    args = run.args
    names = [f'cam{i}' for i in range(args.cameras)] if args.cameras > 1 else []
    images = [f'/{n}/image' for n in names] or [CAMERA_TOPIC]
    prefixes = [f'/{n}/segmentation' for n in names] or ['/segmentation']
    report_path = run.out / f'floor_{scenario.name}.json'
    report_path.unlink(missing_ok=True)
    depth = int(args.overrides.get('input_queue_depth', 1))
    cmd = [sys.executable, '-m', 'benchmarks.ros_floor', '--queue-depth', str(depth),
           '--report', str(report_path)]
    for image, prefix in zip(images, prefixes):
        cmd += ['--image', image, '--mask', f'{prefix}/mask']
    floor = RosProcess(cmd, run.env, run.out / f'floor_{scenario.name}.log')
    collect = _Collector(run.frame_id)
    samples = collect.samples['mask']
    recorders = [OutputRecorder(name=f'bench_recorder_{scenario.name}_{i}', prefix=prefix,
                                overlay=False, summary=False,
                                on_mask=collect.callback('mask'))
                 for i, prefix in enumerate(prefixes)]
    for r in recorders:
        run.executor.add_node(r)
    started = ([run.publisher(scenario, image, f'_{n}') for image, n in zip(images, names)]
               or [run.publisher(scenario)])
    try:
        from benchmarks.ros_floor import READY_LINE

        if not floor.wait_for_log(READY_LINE, args.startup_timeout):
            raise SystemExit('bench_ros: the floor process did not start; its log:\n'
                             + floor.log()[-3000:])
        pairs = [(r, f'{prefix}/mask') for r, prefix in zip(recorders, prefixes)]
        if not run.spin_until(lambda: all(r.count_publishers(t) >= 1 for r, t in pairs),
                              MATCH_TIMEOUT_S):
            raise SystemExit(f'bench_ros: the floor\'s masks {[t for _, t in pairs]} never '
                             f'matched')
        run.spin_for(0.5)
        samplers = {'node': ProcSampler(floor.pid), 'recorder': ProcSampler(os.getpid()),
                    'machine': MachineSampler()}
        pub = run.measure_all(started, samplers)
    finally:
        _stop_recorders_and_cameras(run, recorders, started)
        floor_code = floor.stop()
    try:
        counts = json.loads(report_path.read_text())
    except (OSError, ValueError):
        raise SystemExit(f'bench_ros: the floor process wrote no report (exit {floor_code}); '
                         f'its log:\n{floor.log()[-3000:]}')
    result = _result(run, scenario, samples, pub)
    seconds = float(pub.get('seconds') or 0.0)
    out = float(counts.get('published') or 0)
    out_hz = _r(out / seconds, 2) if out and seconds > 0 else None
    result.update({
        'node_exit_code': floor_code, 'counts': {'mask': len(samples)},
        'foreign_messages': collect.foreign,
        'node_frames_in': float(counts.get('taken', 0) + counts.get('skipped', 0)),
        'node_frames_out': out, 'node_output_hz': out_hz,
        'node_frames_replaced': float(counts.get('skipped', 0)),
        'not_taken_by_node': pub['published'] - int(counts.get('taken', 0)
                                                    + counts.get('skipped', 0)),
        'floor_errors': counts.get('errors'),
        'recorder_missed': int(out) - len(samples),
        'node_process': samplers['node'].summary(),
        'node_cpu_ms_per_output': cpu_ms_per_output(samplers['node'], len(samples), out_hz),
        'publisher_process': samplers['publisher'].summary(),
        'cameras': max(1, args.cameras),
        'recorder_process': samplers['recorder'].summary(),
        'machine_cpu': samplers['machine'].summary(),
    })
    return result


def steady_drop_fraction(history: Sequence[Tuple[float, Dict[str, str]]], start: float,
                         settle_s: float) -> Optional[float]:
    """Frames the node skipped per frame it saw, from ``settle_s`` after ``start`` on.

    ``history``: (monotonic time, /diagnostics values) as received; the counters
    ``frames_in`` and ``frames_dropped`` of the first message at or after the settle time
    and of the last one bound the window. None without two such messages or frames.
    """
    points = [(_float(d.get('frames_in')), _float(d.get('frames_dropped')))
              for t, d in history if t - start >= settle_s]
    points = [(i, d) for i, d in points if i is not None and d is not None]
    if len(points) < 2:
        return None
    seen = points[-1][0] - points[0][0]
    return (points[-1][1] - points[0][1]) / seen if seen > 0 else None


def cpu_ms_per_output(sampler: ProcSampler, outputs: int,
                      output_hz: Optional[float] = None) -> Optional[float]:
    """Return process CPU ms (all threads) per output.

    With ``output_hz`` (the node's own output rate): the sampled CPU rate over it, which
    a recorder that missed outputs does not skew; else CPU over the sampled span per
    output received.
    """
    if len(sampler.samples) < 2:
        return None
    cpu_s = sampler.samples[-1][1] - sampler.samples[0][1]
    if output_hz:
        span = sampler.samples[-1][0] - sampler.samples[0][0]
        return _r(cpu_s / span * 1e3 / output_hz, 2) if span > 0 else None
    if outputs <= 0:
        return None
    return _r(cpu_s * 1e3 / outputs, 2)


def run_pipeline(run: _Run, scenario: Scenario) -> Dict[str, Any]:
    """Measure the standalone pipeline: ``pipeline.process`` looped on the published frames.

    Same params file, model, backend, threads and frames as the node; mask only (what the
    mask-only scenarios ask of the node). ``pipeline``: no ROS traffic meanwhile.
    ``pipeline_camera``: the camera publisher(s) of the node scenarios publish meanwhile
    into a depth-1 reader of this process that nothing takes from (as the node's reader
    between its takes: Fast DDS still receives every frame into it), so the loop shares
    the machine with the camera as the node does, without the node's take, conversion
    and publish.
    """
    from .rate_publisher import load_frames
    from .standalone import (build_pipeline, measure_pipeline, measure_two_in_flight,
                             node_params, release)

    args = run.args
    beside_camera = scenario.name == 'pipeline_camera'
    params = node_params([args.params], {'model_path': str(Path(args.model).resolve()),
                                         'backend': args.backend, **args.overrides})
    frames = load_frames(str(Path(args.video).resolve()), 4, args.width, args.height)
    backend, pipeline = build_pipeline(params)
    camera: Optional[_IdleCamera] = None
    try:
        seconds = args.pipeline_seconds or max(2.0, args.duration / 2)
        if beside_camera:
            camera = _IdleCamera(run, scenario)
            seconds = min(seconds, camera.seconds_left())
        measured = measure_pipeline(backend, pipeline, frames, seconds,
                                    want_overlay=scenario.overlay, want_summary=scenario.summary)
        if beside_camera:
            measured['camera'] = camera.finish()
        elif scenario.name == 'pipeline':
            measured['two_in_flight'] = measure_two_in_flight(pipeline, frames,
                                                              min(seconds, 5.0))
        measured['backend'] = backend.describe()
        measured['pipeline'] = type(pipeline).__name__
    finally:
        if camera is not None:
            camera.close()
        release(backend, pipeline)
    lat = {'count': measured['frames'], 'p50_ms': measured['frame_ms_p50'],
           'p95_ms': measured['frame_ms_p95'], 'max_ms': None, 'mean_ms': None}
    return {'scenario': scenario.name, 'label': scenario.label, 'requested_hz': 0.0,
            'published': measured['frames'], 'publish_hz': None,
            'received': measured['frames'], 'output_hz': measured['fps'],
            'drop_rate': None, 'latency': lat, 'trend': {'slope_ms_per_s': None},
            'windows': [], 'latencies_ms': [], 'receipt_s': [], 'standalone': measured}


class _IdleCamera:
    """The node scenarios' camera publisher(s), publishing into readers nobody takes from.

    One depth-1 best-effort subscription per camera topic (the node's input QoS) on a node
    that no executor spins: each publisher sees its subscriber and publishes, Fast DDS
    delivers every frame into the reader, nothing converts it into a Python message.
    """

    SETTLE_S = 1.5   # after the first match: discovery done, frames flowing

    def __init__(self, run: _Run, scenario: Scenario) -> None:
        import rclpy
        from sensor_msgs.msg import Image

        from segformer_ros.node import SENSOR_QOS

        self._run = run
        names = ([f'cam{i}' for i in range(run.args.cameras)] if run.args.cameras > 1
                 else [])
        topics = [f'/{n}/image' for n in names] or [CAMERA_TOPIC]
        self._node = rclpy.create_node(f'bench_idle_reader_{os.getpid()}')
        for topic in topics:
            self._node.create_subscription(Image, topic, lambda _msg: None, SENSOR_QOS)
        # Ungated: the camera starts once the idle reader matches; the loop starts later.
        self._started = ([run.publisher(scenario, f'/{n}/image', f'_{n}', gated=False)
                          for n in names] or [run.publisher(scenario, gated=False)])
        deadline = time.monotonic() + run.args.startup_timeout
        while not all(self._node.count_publishers(t) >= 1 for t in topics):
            if time.monotonic() > deadline:
                raise SystemExit(f'bench_ros: the camera publisher(s) {topics} never matched '
                                 f'the idle reader; expected a match within '
                                 f'{run.args.startup_timeout:g} s')
            time.sleep(0.05)
        time.sleep(self.SETTLE_S)
        self._publishing_until = time.monotonic() + run.args.duration - self.SETTLE_S

    def seconds_left(self) -> float:
        """Return the publishing time left (at least 1 s): the loop ends before the camera."""
        return max(1.0, self._publishing_until - time.monotonic() - 0.5)

    def finish(self) -> Dict[str, Any]:
        """Wait for the publishers to end; their summed rate."""
        total_hz = 0.0
        for publisher, report in self._started:
            publisher.wait(self._run.args.duration + 10.0)
            try:
                total_hz += float(json.loads(report.read_text()).get('achieved_hz') or 0.0)
            except (OSError, ValueError):
                pass
        return {'cameras': len(self._started), 'published_hz': round(total_hz, 2)}

    def close(self) -> None:
        """Stop the publishers (if still running) and remove the idle reader."""
        for publisher, _ in self._started:
            publisher.stop()
        self._node.destroy_node()


def _result(run: _Run, scenario: Scenario, samples: List[Sample],
            pub: Dict[str, Any]) -> Dict[str, Any]:
    received = len(samples)
    published = int(pub.get('published', 0))
    span = samples[-1][0] - samples[0][0] if len(samples) > 1 else 0.0
    seconds = float(pub.get('seconds') or 0.0)
    windows = latency_windows(samples, run.args.window_s)
    result = {
        'scenario': scenario.name, 'label': scenario.label,
        'requested_hz': scenario.rate_hz, 'published': published,
        'publish_hz': pub.get('achieved_hz'), 'received': received,
        # True: the camera waited for the benchmark to be ready (its start file).
        'camera_gated': pub.get('start_file_seen'),
        # Outputs per second of publishing (defined with a single output too).
        'output_hz': _r(received / seconds, 2) if seconds > 0 else 0.0,
        'output_span_hz': _r((received - 1) / span, 2) if span > 0 else None,
        'drop_rate': _r(1.0 - received / published, 4) if published else None,
        'latency': latency_stats(samples, run.args.settle_s),
        'trend': latency_trend(samples, run.args.settle_s),
        'windows': windows,
        'latencies_ms': [round(lat * 1e3, 2) for _, lat in samples],
        'receipt_s': [round(t - samples[0][0], 3) for t, _ in samples],
    }
    if scenario.name == 'flood':
        result['bounded'] = flood_bounded(windows)
    return result


# ------------------------------------------------------------------------- reporting
def machine_info() -> Dict[str, Any]:
    """Describe this machine: CPU, memory and software versions."""
    from importlib import metadata

    info: Dict[str, Any] = {'cores': os.cpu_count(), 'kernel': platform.release(),
                            'python': platform.python_version()}
    try:
        cpuinfo = Path('/proc/cpuinfo').read_text()
        match = re.search(r'^model name\s*:\s*(.+)$', cpuinfo, re.M)
        info['cpu'] = match.group(1).strip() if match else platform.processor()
        meminfo = Path('/proc/meminfo').read_text()
        match = re.search(r'^MemTotal:\s+(\d+) kB', meminfo, re.M)
        info['memory_gb'] = round(int(match.group(1)) / 1024 ** 2, 1) if match else None
    except OSError:
        pass
    for package in ('onnxruntime', 'numpy', 'opencv-python-headless', 'rclpy'):
        try:
            info[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    info['rmw'] = os.environ.get('RMW_IMPLEMENTATION', '')
    return info


def load_average() -> List[float]:
    """Return the 1, 5 and 15 minute load averages."""
    return [round(v, 2) for v in os.getloadavg()]


def write_plot(report: Dict[str, Any], path: Path) -> bool:
    """Latency histograms per scenario and the flood run's latency over time.

    Returns False (and writes nothing) when matplotlib is not installed.
    """
    try:
        import matplotlib
    except ImportError:
        print('bench_ros: matplotlib is not installed (make setup installs it); no plot',
              file=sys.stderr)
        return False
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    results = report['results']
    fig, (ax_hist, ax_time) = plt.subplots(1, 2, figsize=(10, 3.6), dpi=80)
    values = [np.array(r['latencies_ms']) for r in results if r['latencies_ms']]
    top = max((float(np.percentile(v, 99.5)) for v in values), default=1.0)
    bins = np.linspace(0.0, top * 1.05, 60)
    for r in results:
        if r['latencies_ms']:
            ax_hist.hist(np.clip(r['latencies_ms'], 0, bins[-1]), bins=bins, histtype='step',
                         linewidth=1.5, density=True,
                         label=f'{r["scenario"]} ({r["requested_hz"]:g} Hz)')
    ax_hist.set_xlabel('image -> output latency (ms)')
    ax_hist.set_ylabel('density')
    ax_hist.set_title(f'{report["config"]["width"]}x{report["config"]["height"]} rgb8')
    ax_hist.legend(fontsize=8)
    flood = next((r for r in results if r['scenario'] == 'flood'), None)
    if flood is not None and flood['latencies_ms']:
        ax_time.plot(flood['receipt_s'], flood['latencies_ms'], '.', markersize=3,
                     label='mask latency')
        mids = [w['start_s'] + report['config']['window_s'] / 2 for w in flood['windows']]
        ax_time.plot(mids, [w['p95_ms'] for w in flood['windows']], 'o-', label='window p95')
        ax_time.set_ylim(bottom=0)
        ax_time.set_title(f'flood: {flood["publish_hz"]} Hz published (keep-latest)')
        ax_time.legend(fontsize=8)
    else:
        ax_time.set_title('flood run not measured')
    ax_time.set_xlabel('time since first mask (s)')
    ax_time.set_ylabel('latency (ms)')
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return True


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return 'n/a'
    if isinstance(value, float):
        return f'{value:.{digits}f}'
    return str(value)


def render_section(report: Dict[str, Any], plot_rel: Optional[str]) -> str:
    """Render the docs section (markdown, level-2 heading) for ``report``."""
    cfg, machine = report['config'], report['machine']
    results = {r['scenario']: r for r in report['results']}
    lines = [SECTION_TITLE, '',
             '<!-- Generated by benchmarks/bench_ros.py; rerun the command below '
             'to regenerate this whole section. -->', '',
             f'Publisher process ({cfg["width"]}x{cfg["height"]} rgb8 frames of '
             f'`{cfg["video"]}`, sensor-data QoS) -> segformer node (own process, '
             f'`{cfg["params"]}`, model `{cfg["model"]}`) -> subscriber in the benchmark '
             'process, all over Fast DDS on loopback (shared memory for the payload). '
             'Latency = receipt time minus the camera header stamp the node copies onto '
             f'its outputs; the first {cfg["settle_s"]:g} s of each scenario are '
             f'discarded; {cfg["duration_s"]:g} s per scenario, a fresh node per scenario '
             '(the camera starts once the benchmark has matched the node\'s outputs).',
             '', 'Command:', '', '```', report['command'], '```', '',
             f'Machine: {machine.get("cpu", "?")}, {machine.get("cores")} cores, '
             f'{machine.get("memory_gb")} GB RAM, Linux {machine.get("kernel")}, Python '
             f'{machine.get("python")}, onnxruntime {machine.get("onnxruntime", "?")}, '
             f'rclpy {machine.get("rclpy", "?")} ({machine.get("rmw")}, ROS_DOMAIN_ID '
             f'{report.get("domain_id")}). Backend: '
             f'{report.get("backend") or "n/a"}. Run {report["date"]}; load average '
             f'(1/5/15 min) {report["load_before"]} before, {report["load_after"]} after.']
    if report['load_before'][0] > 0.5 * (machine.get('cores') or 1):
        lines += ['', f'**The machine was busy with other work when this ran** (load '
                      f'{report["load_before"][0]} on {machine.get("cores")} cores): CPU-bound '
                      'numbers (inference, latency) are pessimistic; rerun on a quiet machine.']
    foreign = sum(r.get('foreign_messages') or 0 for r in report['results'])
    if foreign:
        lines += ['', f'**{foreign} messages of another ROS run on the same domain id were '
                      'received (and ignored)**: that run may have loaded the node too.']
    if cfg.get('note'):
        lines += ['', cfg['note']]
    lines += ['', '| scenario | requested Hz | published Hz | outputs Hz | latency p50 / p95 / '
              'max (ms) | dropped (replaced / not taken) | node CPU % (1 core = 100) | '
              'node RSS MB | inference p50 (ms) |',
              '|---|---|---|---|---|---|---|---|---|']
    for r in report['results']:
        lat = r['latency']
        proc = r.get('node_process') or {}
        drop = f'{r["drop_rate"] * 100:.1f} %' if r['drop_rate'] is not None else 'n/a'
        if r['scenario'] not in ('transport', 'pipeline', 'pipeline_full', 'pipeline_camera',
                                 'ros_floor'):
            drop += (f' ({_fmt(r.get("node_frames_replaced"), 0)} / '
                     f'{_fmt(r.get("not_taken_by_node"))})')
            steady = r.get('node_dropped_after_settle')
            if steady is not None:
                drop += f'; after {cfg["settle_s"]:g} s: {steady * 100:.1f} %'
        lines.append(
            f'| {r["label"]} | {r["requested_hz"]:g} | {_fmt(r["publish_hz"])} | '
            f'{_fmt(r["output_hz"])} | {_fmt(lat["p50_ms"])} / {_fmt(lat["p95_ms"])} / '
            f'{_fmt(lat["max_ms"])} | {drop} | {_fmt(proc.get("cpu_percent"), 0)} | '
            f'{_fmt(proc.get("rss_mb_max"), 0)} | '
            f'{_fmt((r.get("stages_ms_p50") or {}).get("inference"))} |')
    lines += ['', 'Outputs Hz = outputs received / seconds of publishing. '
              'Dropped = 1 - outputs received / frames published; "replaced" are frames '
              'the node\'s keep-latest slot overwrote before the worker took them (by design '
              'when frames come faster than inference), "not taken" are frames the node\'s '
              'callback never saw (superseded in its depth-1 best-effort DDS reader while the '
              'executor was busy, or lost); "after N s": the node\'s replaced frames per '
              'frame it saw from N s into the publishing on (its /diagnostics counters), '
              'the steady state without the start-up. The transport row is the floor: the '
              'same publisher and QoS to a plain Python subscriber, no node.']
    staged = [r for r in report['results'] if r.get('stages_ms_p50')]
    if staged:
        lines += ['', 'Node stage medians from /diagnostics (ms, last 300 frames of the '
                      'scenario):', '',
                  '| scenario | ' + ' | '.join(STAGES) + ' |',
                  '|---|' + '---|' * len(STAGES)]
        for r in staged:
            lines.append(f'| {r["scenario"]} | ' + ' | '.join(
                _fmt(r['stages_ms_p50'].get(s), 2) for s in STAGES) + ' |')
    sampled = [r for r in report['results'] if r.get('machine_cpu')]
    if sampled:
        lines += ['', 'Where the CPU went (% of one core, mean over the publishing span; the '
                      'machine row is every process, so busy + idle = cores x 100):', '',
                  '| scenario | node | camera (first) | this benchmark (recorder) | machine '
                  'busy | machine idle % |', '|---|---|---|---|---|---|']
        for r in sampled:
            machine = r['machine_cpu']
            lines.append(
                f'| {r["scenario"]} | {_fmt((r.get("node_process") or {}).get("cpu_percent"), 0)}'
                f' | {_fmt((r.get("publisher_process") or {}).get("cpu_percent"), 0)} | '
                f'{_fmt((r.get("recorder_process") or {}).get("cpu_percent"), 0)} | '
                f'{_fmt(machine.get("cpu_percent"), 0)} of {machine.get("cores")} cores | '
                f'{_fmt(machine.get("idle_percent_of_machine"), 0)} |')
    lines += ['', '### Target: latency p95 - inference p50 <= '
              f'{TARGET_OVERHEAD_MS:g} ms at {cfg["rate_hz"]:g} Hz', '']
    verdict = report['target']
    for name in ('mask_only', 'full'):
        t = (results.get(name) or {}).get('target') or {}
        if t.get('overhead_ms') is not None:
            r = results[name]
            inf_p95 = (r.get('stages_ms_p95') or {}).get('inference')
            others = sum(v for k, v in r['stages_ms_p50'].items() if k != 'inference')
            rest = r['latency']['p50_ms'] - t['inference_p50_ms'] - others
            lines.append(f'- {r["label"]}: {t["latency_p95_ms"]} - {t["inference_p50_ms"]} = '
                         f'**{t["overhead_ms"]} ms**: {"PASS" if t["pass"] else "FAIL"} '
                         f'(inference p95 {_fmt(inf_p95)} ms; at p50: latency '
                         f'{r["latency"]["p50_ms"]} = inference {t["inference_p50_ms"]} + other '
                         f'stages {others:.1f} + the rest {rest:.1f} ms: DDS both ways, '
                         f'keep-latest wait, thread scheduling)')
    lines.append(f'- Overall: **{verdict["verdict"]}**. The inference figure is the node\'s '
                 '`inference_ms_p50` from /diagnostics (the ONNX Runtime run call alone).')
    if 'transport' in results:
        tr = results['transport']['latency']
        lines.append(f'- Floor: DDS alone moves a frame in {_fmt(tr["p50_ms"])} ms p50 / '
                     f'{_fmt(tr["p95_ms"])} ms p95 here; the overhead above also contains the '
                     'keep-latest wait (the frame the worker takes next arrived up to one camera '
                     'period earlier, longer when the node\'s executor lags), inference jitter '
                     '(p95 vs p50), the other stages and the mask\'s own trip back.')
    flood = results.get('flood')
    if flood is not None:
        lines += ['', f'### Flood: {flood["requested_hz"]:g} Hz requested, '
                      f'{_fmt(flood["publish_hz"])} Hz published', '',
                  f'Latency per {cfg["window_s"]:g} s window (keep-latest input: it must '
                  f'stay flat, not grow). Slope over the run: '
                  f'{_fmt(flood["trend"]["slope_ms_per_s"], 2)} ms/s; bounded: '
                  f'**{"yes" if flood.get("bounded") else "no" if flood.get("bounded") is False else "n/a"}**.',  # noqa: E501
                  '', '| window start (s) | masks | p50 (ms) | p95 (ms) | max (ms) |',
                  '|---|---|---|---|---|']
        for w in flood['windows']:
            lines.append(f'| {w["start_s"]:g} | {w["count"]} | {_fmt(w["p50_ms"])} | '
                         f'{_fmt(w["p95_ms"])} | {_fmt(w["max_ms"])} |')
    lines += render_node_vs_pipeline(report)
    if plot_rel:
        lines += ['', f'![image -> mask latency histograms and the flood run]({plot_rel})']
    lines += ['', f'Raw numbers: `{report["json_path"]}` (not committed).', '']
    return '\n'.join(lines)


def replace_section(text: str, section: str) -> str:
    """``text`` with the bench-ros section replaced by ``section`` (appended if absent)."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == SECTION_TITLE), None)
    if start is None:
        base = text.rstrip('\n')
        return (base + '\n\n' if base else '# Benchmarks\n\n') + section.rstrip('\n') + '\n'
    end = next((i for i in range(start + 1, len(lines))
                if re.match(r'#{1,2} ', lines[i])), len(lines))
    gap = [''] if end < len(lines) else []
    new = lines[:start] + section.rstrip('\n').splitlines() + gap + lines[end:]
    return '\n'.join(new) + '\n'


THROUGHPUT_TARGET = 0.9     # issue 9: through ROS >= 90 % of the standalone pipeline
LATENCY_MARGIN_MS = 5.0     # p50 <= standalone frame + transport floor + this
P95_OVER_P50 = 1.5
STAGE_INFLATION_TARGET = 1.5


def node_vs_pipeline(results: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """Compare every node scenario with the standalone pipeline measured in the same run.

    Throughput ratio = node outputs/s over what the pipeline allows at the published rate
    (min(standalone frames/s, published Hz)): 1.0 means the node costs nothing. Latency
    floor = standalone per-frame p50 + the transport-only p50. Stage inflation = node stage
    p50 (/diagnostics) over the standalone stage p50. CPU outside inference = node process
    CPU per output minus the standalone inference CPU per frame. The ``full`` scenario is
    compared with ``pipeline_full`` (the loop computing overlay and summary too) where it
    ran, else with ``pipeline``. With the ``ros_floor`` scenario in the run, the mask-only
    entry also has the floor's CPU per mask (the same camera rate and outputs) and what the
    node spends beyond pipeline + floor: its own cost (issue 22).
    """
    by = {r['scenario']: r for r in results}
    floor_cpu = (by.get('ros_floor') or {}).get('node_cpu_ms_per_output')
    alone = (by.get('pipeline') or {}).get('standalone')
    if not alone:
        return {}
    beside = (by.get('pipeline_camera') or {}).get('standalone')
    alone_full = (by.get('pipeline_full') or {}).get('standalone')
    transport = (by.get('transport') or {}).get('latency', {}).get('p50_ms')
    floor = alone['frame_ms_p50'] + (transport or 0.0)
    out: Dict[str, Any] = {'pipeline_fps': alone['fps'],
                           'pipeline_two_in_flight_fps': (alone.get('two_in_flight') or {}).get(
                               'fps'),
                           'pipeline_frame_ms_p50': alone['frame_ms_p50'],
                           'transport_p50_ms': transport, 'latency_floor_ms': _r(floor),
                           'pipeline_cpu_ms_per_frame': alone['cpu_ms_per_frame'],
                           'pipeline_inference_cpu_ms_per_frame':
                               alone.get('inference_cpu_ms_per_frame'),
                           'pipeline_beside_camera_fps': (beside or {}).get('fps'),
                           'pipeline_full_cpu_ms_per_frame': (alone_full or {}).get(
                               'cpu_ms_per_frame'),
                           'pipeline_full_fps': (alone_full or {}).get('fps'),
                           'scenarios': {}}
    if floor_cpu is not None:
        out['ros_floor_cpu_ms_per_mask'] = floor_cpu
    for r in results:
        if not r['scenario'] in ('mask_only', 'full', 'flood') or not r.get('publish_hz'):
            continue
        same = alone_full if r['scenario'] == 'full' and alone_full else alone
        allowed = min(same['fps'], float(r['publish_hz']))
        lat = r['latency']
        stages = {}
        for stage, value in (r.get('stages_ms_p50') or {}).items():
            base = same['stages_ms_p50'].get(stage)
            if base and value is not None and base > 0.05:
                stages[stage] = {'node_ms': value, 'pipeline_ms': base,
                                 'inflation': _r(value / base, 2)}
        cpu = r.get('node_cpu_ms_per_output')
        inf_cpu = same.get('inference_cpu_ms_per_frame')
        alone_cpu = same.get('cpu_ms_per_frame')
        # The node's published masks per second where it reported them (see run_node).
        out_hz = r.get('node_output_hz') or r['output_hz']
        entry = {'compared_with': 'pipeline_full' if same is alone_full else 'pipeline',
                 'output_hz': out_hz, 'received_hz': r['output_hz'],
                 'allowed_hz': _r(allowed, 2),
                 'throughput_ratio': _r(out_hz / allowed, 3) if allowed else None,
                 # Against the loop that shared the machine with the same camera: the
                 # node's own share of the shortfall (not the yardstick).
                 'throughput_ratio_beside_camera': (
                     _r(out_hz / min(beside['fps'], float(r['publish_hz'])), 3)
                     if beside and beside.get('fps') else None),
                 # Frames per CPU-second, node over pipeline: the throughput ratio a CPU-bound
                 # machine allows, and steady under load that swings wall-clock rates.
                 'cpu_ratio': (_r(alone_cpu / cpu, 3) if cpu and alone_cpu else None),
                 'latency_p50_ms': lat['p50_ms'], 'latency_p95_ms': lat['p95_ms'],
                 'stages': stages, 'node_cpu_ms_per_output': cpu,
                 'node_cpu_ms_outside_inference': (_r(cpu - inf_cpu, 2)
                                                   if cpu is not None and inf_cpu is not None
                                                   else None)}
        entry.update(cpu_budget(r, same, cpu, out_hz))
        if r['scenario'] == 'mask_only' and floor_cpu and cpu and alone_cpu:
            entry.update({'floor_cpu_ms_per_mask': floor_cpu,
                          'node_cpu_ms_beyond_pipeline_and_floor': _r(
                              cpu - alone_cpu - floor_cpu, 2),
                          'node_over_pipeline_plus_floor': _r(cpu / (alone_cpu + floor_cpu),
                                                              3)})
        if r['scenario'] == 'mask_only' and lat['p50_ms'] is not None:
            entry['latency_target_ms'] = _r(floor + LATENCY_MARGIN_MS)
            entry['latency_pass'] = bool(lat['p50_ms'] <= floor + LATENCY_MARGIN_MS
                                         and lat['p95_ms'] <= P95_OVER_P50 * lat['p50_ms'])
        out['scenarios'][r['scenario']] = entry
    return out


def cpu_budget(node_run: Dict[str, Any], alone: Dict[str, Any], node_cpu_ms: Optional[float],
               out_hz: Optional[float]) -> Dict[str, Any]:
    """Predict the throughput ratio a CPU-bound machine allows from CPU spent and given out.

    masks/s = busy CPU of the machine / CPU every process spends per mask, and the loop's
    frames/s = its busy CPU / its CPU per frame; their quotient predicts the throughput
    ratio where the cores are the limit (2 cores). ``harness_cpu_ms_per_output``: the
    camera publisher(s) (the first one's CPU times the number of cameras) and this
    benchmark's subscriber process per mask. ``zero_cost_node_bound``: the ratio a node
    costing exactly the pipeline's CPU per frame would reach with the cores as busy as in
    this run; ``full_use_bound``: the same with the cores as busy as the loop kept them.
    Empty without the figures (e.g. a run too short to sample /proc twice).
    """
    camera = (node_run.get('publisher_process') or {}).get('cpu_percent')
    recorder = (node_run.get('recorder_process') or {}).get('cpu_percent')
    busy = (node_run.get('machine_cpu') or {}).get('cpu_percent')
    alone_cpu, alone_fps = alone.get('cpu_ms_per_frame'), alone.get('fps')
    if None in (camera, recorder, busy, alone_cpu, alone_fps, node_cpu_ms) or not out_hz \
            or not alone_cpu or not alone_fps or not busy:
        return {}
    harness = (camera * int(node_run.get('cameras') or 1) + recorder) * 10.0 / out_hz
    alone_busy = alone_cpu * alone_fps / 10.0     # % of one core, the loop's own process
    use = busy / alone_busy
    return {'harness_cpu_ms_per_output': _r(harness, 2), 'machine_busy_percent': busy,
            'pipeline_busy_percent': _r(alone_busy),
            'cpu_budget_ratio': _r(use * alone_cpu / (node_cpu_ms + harness), 3),
            'zero_cost_node_bound': _r(use * alone_cpu / (alone_cpu + harness), 3),
            'full_use_bound': _r(alone_cpu / (alone_cpu + harness), 3)}


_ROUND_FIELDS = ('output_hz', 'allowed_hz', 'throughput_ratio',
                 'throughput_ratio_beside_camera', 'cpu_ratio', 'latency_p50_ms',
                 'latency_p95_ms', 'node_cpu_ms_per_output', 'node_cpu_ms_outside_inference',
                 'latency_target_ms', 'harness_cpu_ms_per_output', 'machine_busy_percent',
                 'pipeline_busy_percent', 'cpu_budget_ratio', 'zero_cost_node_bound',
                 'full_use_bound', 'floor_cpu_ms_per_mask',
                 'node_cpu_ms_beyond_pipeline_and_floor', 'node_over_pipeline_plus_floor')


def _median(values: Sequence[Any]) -> Optional[float]:
    numbers = sorted(float(v) for v in values if isinstance(v, (int, float)))
    if not numbers:
        return None
    mid = len(numbers) // 2
    return numbers[mid] if len(numbers) % 2 else (numbers[mid - 1] + numbers[mid]) / 2


def _median_or_none(values: Sequence[Any]) -> Optional[float]:
    median = _median(values)
    return None if median is None else _r(median, 3)


def median_of_rounds(rounds: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """Node-vs-pipeline figures over interleaved rounds: the median of each.

    With one round it is that round. Each round pairs a standalone loop with the node runs
    next to it, so a ratio's median over rounds resists load that comes and goes.
    """
    rounds = [r for r in rounds if r]
    if len(rounds) <= 1:
        return dict(rounds[0]) if rounds else {}
    out: Dict[str, Any] = {k: _median_or_none([r.get(k) for r in rounds])
                           for k, v in rounds[0].items()
                           if v is None or isinstance(v, (int, float))}
    out['rounds'] = len(rounds)
    out['scenarios'] = {}
    names = [n for n in rounds[0]['scenarios']]
    for name in names:
        entries = [r['scenarios'][name] for r in rounds if name in r['scenarios']]
        entry: Dict[str, Any] = {k: _median_or_none([e.get(k) for e in entries])
                                 for k in _ROUND_FIELDS if any(k in e for e in entries)}
        entry['compared_with'] = entries[0].get('compared_with', 'pipeline')
        entry['per_round'] = {k: [e.get(k) for e in entries]
                              for k in ('throughput_ratio', 'throughput_ratio_beside_camera',
                                        'cpu_ratio', 'latency_p50_ms')}
        stages: Dict[str, Any] = {}
        for stage in entries[0].get('stages', {}):
            rows = [e['stages'][stage] for e in entries if stage in e.get('stages', {})]
            stages[stage] = {k: _r(_median([row[k] for row in rows]) or 0.0, 2)
                             for k in ('node_ms', 'pipeline_ms', 'inflation')}
        entry['stages'] = stages
        if 'latency_target_ms' in entry and entry.get('latency_p50_ms') is not None:
            entry['latency_pass'] = bool(
                entry['latency_p50_ms'] <= entry['latency_target_ms']
                and (entry.get('latency_p95_ms') or 0.0) <= P95_OVER_P50 * entry['latency_p50_ms'])
        out['scenarios'][name] = entry
    return out


def ratio_check(report: Dict[str, Any], minimum: float,
                basis: str = 'cpu') -> Tuple[bool, str]:
    """Pass when every mask-only node scenario reaches ``minimum`` x the pipeline.

    ``basis`` 'wall': masks/s over what the standalone pipeline allows; 'cpu': frames per
    CPU-second of the node process over those of the standalone loop (the default: on a
    busy 2-core machine the wall-clock rates of two runs a minute apart differ 2-3x, their
    CPU cost per frame does not); 'both': each of them.
    """
    if basis == 'both':
        results = [ratio_check(report, minimum, b) for b in ('wall', 'cpu')]
        return all(ok for ok, _ in results), '; '.join(text for _, text in results)
    key = 'cpu_ratio' if basis == 'cpu' else 'throughput_ratio'
    nvp = report.get('node_vs_pipeline') or {}
    rows = [(name, e[key]) for name, e in (nvp.get('scenarios') or {}).items()
            if name in ('mask_only', 'flood') and e.get(key) is not None]
    if not rows:
        return False, ('no ratio measured: expected the pipeline scenario and a mask-only '
                       'node scenario (mask_only or flood) in --scenarios')
    bad = [(n, v) for n, v in rows if v < minimum]
    text = ', '.join(f'{n} {v:.2f}' for n, v in rows)
    if bad:
        return False, (f'node throughput ({basis}) below {minimum:.2f} x the standalone '
                       f'pipeline ({nvp["pipeline_fps"]} frames/s, '
                       f'{nvp["pipeline_cpu_ms_per_frame"]} CPU ms per frame in this run): '
                       f'{text}')
    return True, f'node throughput ratios ({basis}) {text} >= {minimum:.2f}'


def render_node_vs_pipeline(report: Dict[str, Any]) -> List[str]:
    """Markdown lines of the node-vs-pipeline comparison (empty without a pipeline run)."""
    nvp = report.get('node_vs_pipeline') or {}
    if not nvp:
        return []
    lines = ['', '### Node vs pipeline (same run)', '',
             f'Standalone pipeline: **{nvp["pipeline_fps"]} frames/s**, '
             f'{nvp["pipeline_frame_ms_p50"]} ms per frame p50, CPU '
             f'{_fmt(nvp["pipeline_cpu_ms_per_frame"])} ms per frame (inference '
             f'{_fmt(nvp["pipeline_inference_cpu_ms_per_frame"])}). Latency floor = that + '
             f'transport p50 {_fmt(nvp["transport_p50_ms"])} = **{nvp["latency_floor_ms"]} ms**.'
             + (f' GPU pipeline with two frames in flight: '
                f'**{nvp["pipeline_two_in_flight_fps"]} frames/s**.'
                if nvp.get('pipeline_two_in_flight_fps') else '')
             + (f' Beside the camera (its publisher running into an idle reader, no node): '
                f'**{nvp["pipeline_beside_camera_fps"]} frames/s**; the node against that '
                f'is the last column.'
                if nvp.get('pipeline_beside_camera_fps') else '')
             + (f' Figures are the medians of {nvp["rounds"]} interleaved rounds (pipeline, '
                f'node, pipeline, node, ...); per-round ratios below the table.'
                if nvp.get('rounds') else '')
             + (f' The full scenario is compared with the loop computing mask, overlay and '
                f'summary too: **{nvp["pipeline_full_fps"]} frames/s**, CPU '
                f'{_fmt(nvp["pipeline_full_cpu_ms_per_frame"])} ms per frame.'
                if nvp.get('pipeline_full_cpu_ms_per_frame') else '')
             + ' Masks/s: the node\'s published masks (its frames_out counter) per second '
               'of publishing; what this benchmark\'s recorder received is in the JSON '
               '(received_hz, recorder_missed).',
             '', '| scenario | masks/s | allowed/s | ratio | CPU ratio | latency p50 / p95 (ms) | '
             'node CPU ms / output | outside inference | worst stage inflation | ratio '
             'beside the camera |',
             '|---|---|---|---|---|---|---|---|---|---|']
    for name, e in nvp['scenarios'].items():
        worst = max(e['stages'].items(), key=lambda kv: kv[1]['inflation'], default=None)
        worst_text = (f'{worst[0]} {worst[1]["inflation"]}x ({worst[1]["node_ms"]} vs '
                      f'{worst[1]["pipeline_ms"]} ms)' if worst else 'n/a')
        lines.append(f'| {name} | {_fmt(e["output_hz"])} | {_fmt(e["allowed_hz"])} | '
                     f'**{_fmt(e["throughput_ratio"], 2)}** | {_fmt(e.get("cpu_ratio"), 2)} | '
                     f'{_fmt(e["latency_p50_ms"])} / '
                     f'{_fmt(e["latency_p95_ms"])} | {_fmt(e["node_cpu_ms_per_output"])} | '
                     f'{_fmt(e["node_cpu_ms_outside_inference"])} | {worst_text} | '
                     f'{_fmt(e.get("throughput_ratio_beside_camera"), 2)} |')
    cores = (report.get('machine') or {}).get('cores') or 1
    for name, e in nvp['scenarios'].items():
        busy = e.get('machine_busy_percent')
        if e.get('cpu_budget_ratio') is None or busy is None or busy < 75.0 * cores:
            continue   # not CPU-bound: the budget says nothing
        lines.append(f'\n{name}, CPU budget (the cores are the limit: {_fmt(busy, 0)} % of '
                     f'{cores * 100} busy): node {_fmt(e["node_cpu_ms_per_output"])} + camera '
                     f'and this benchmark\'s subscriber {_fmt(e["harness_cpu_ms_per_output"])} '
                     f'ms of CPU per mask against the loop\'s '
                     f'{_fmt(nvp["pipeline_cpu_ms_per_frame"])} per frame at '
                     f'{_fmt(e["pipeline_busy_percent"], 0)} % busy: predicted ratio '
                     f'{_fmt(e["cpu_budget_ratio"], 2)}; a node costing nothing beyond the '
                     f'pipeline would reach {_fmt(e["zero_cost_node_bound"], 2)} (cores as busy '
                     f'as here) to {_fmt(e["full_use_bound"], 2)} (as busy as the loop).')
    for name, e in nvp['scenarios'].items():
        if e.get('node_over_pipeline_plus_floor') is not None:
            lines.append(f'\n{name} against pipeline + ROS floor: node '
                         f'{_fmt(e["node_cpu_ms_per_output"], 2)} ms CPU per mask vs pipeline '
                         f'{_fmt(nvp["pipeline_cpu_ms_per_frame"], 2)} per frame + floor '
                         f'{_fmt(e["floor_cpu_ms_per_mask"], 2)} per mask (ros_floor: take '
                         f'the frame and publish a mask as the node does, no model) = '
                         f'**{_fmt(e["node_over_pipeline_plus_floor"], 2)}x**; the node\'s '
                         f'own cost beyond both: '
                         f'{_fmt(e["node_cpu_ms_beyond_pipeline_and_floor"], 2)} ms per mask.')
    for name, e in nvp['scenarios'].items():
        per = e.get('per_round')
        if per:
            beside = [v for v in per.get('throughput_ratio_beside_camera') or []
                      if v is not None]
            lines.append(f'\n{name} per round: ratio '
                         f'{", ".join(_fmt(v, 2) for v in per["throughput_ratio"])}; '
                         + (f'beside the camera {", ".join(_fmt(v, 2) for v in beside)}; '
                            if beside else '') + 'CPU ratio '
                         f'{", ".join(_fmt(v, 2) for v in per["cpu_ratio"])}; latency p50 '
                         f'{", ".join(_fmt(v) for v in per["latency_p50_ms"])} ms')
    return lines


def overall_verdict(results: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """Return PASS when every measured 30 Hz node scenario meets the target."""
    checks = [r['target']['pass'] for r in results
              if r['scenario'] in ('mask_only', 'full') and r.get('target')
              and r['target'].get('pass') is not None]
    verdict = 'n/a' if not checks else 'PASS' if all(checks) else 'FAIL'
    return {'verdict': verdict, 'target_ms': TARGET_OVERHEAD_MS}


def _rel(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(REPO_ROOT))
    except ValueError:
        try:
            return os.path.relpath(Path(path).resolve(), REPO_ROOT)
        except ValueError:
            return Path(path).name


def run(args: argparse.Namespace) -> Dict[str, Any]:
    """Run the selected scenarios; return the report (also written as JSON)."""
    if args.model == TRIVIAL:
        args.model = str(write_trivial_model(Path(args.out) / 'trivial_class_ids.onnx'))
    for path, what in ((args.model, 'model'), (args.video, 'video'), (args.params, 'params')):
        if not Path(path).exists():
            raise SystemExit(f'bench_ros: {what} {path} not found (pass --{what}; the '
                             f'defaults are the bundled assets/)')
    scenarios = scenarios_for(args)
    load_before = load_average()
    started = datetime.datetime.now().astimezone()
    state = _Run(args)
    results: List[Dict[str, Any]] = []
    try:
        for rnd, scenario in ((r, s) for r in range(args.rounds) for s in scenarios):
            tag = f' round {rnd + 1}/{args.rounds}' if args.rounds > 1 else ''
            print(f'bench_ros: {scenario.name}{tag} ({scenario.label}, {scenario.rate_hz:g} '
                  f'Hz, {args.duration:g} s) ...', flush=True)
            t0 = time.monotonic()
            runner = run_node if scenario.node else (
                run_pipeline if scenario.name.startswith('pipeline') else
                run_floor if scenario.name == 'ros_floor' else run_transport)
            result = runner(state, scenario)
            result['wall_s'] = round(time.monotonic() - t0, 1)
            result['round'] = rnd
            lat = result['latency']
            print(f'bench_ros:   published {result["publish_hz"]} Hz, outputs '
                  f'{result["output_hz"]} Hz, latency p50 {lat["p50_ms"]} / p95 '
                  f'{lat["p95_ms"]} / max {lat["max_ms"]} ms ({result["wall_s"]} s)', flush=True)
            results.append(result)
    finally:
        state.close()
    rounds = [node_vs_pipeline([r for r in results if r['round'] == rnd])
              for rnd in range(args.rounds)]
    command = 'make bench-ros' + (f' ARGS={shlex.quote(shlex.join(args.argv))}'
                                  if args.argv else '')
    json_path = Path(args.out) / 'bench_ros.json'
    report = {
        'command': command, 'date': started.strftime('%Y-%m-%d %H:%M %Z'),
        'machine': machine_info(), 'load_before': load_before, 'load_after': load_average(),
        'config': {'width': args.width, 'height': args.height, 'rate_hz': args.rate,
                   'cameras': args.cameras, 'overrides': args.overrides,
                   'flood_rate_hz': args.flood_rate, 'duration_s': args.duration,
                   'settle_s': args.settle_s, 'window_s': args.window_s,
                   'quick': args.quick, 'rounds': args.rounds,
                   'model': _rel(Path(args.model)),
                   'params': _rel(Path(args.params)), 'video': _rel(Path(args.video)),
                   'backend': args.backend, 'note': args.note},
        'backend': next((r.get('backend') for r in results if r.get('backend')), None),
        'results': results, 'target': overall_verdict(results),
        'node_vs_pipeline_rounds': rounds,
        'node_vs_pipeline': median_of_rounds(rounds),
        'json_path': _rel(json_path), 'domain_id': state.domain,
    }
    json_path.write_text(json.dumps(report, indent=1))
    return report


def main(argv: Optional[List[str]] = None) -> int:
    """Run the benchmark, print the table, write JSON, plot and docs."""
    args = parse_args(argv)
    report = run(args)
    plot = PLOT if args.write_docs else Path(args.out) / 'bench_ros_latency.png'
    plotted = write_plot(report, plot)
    section = render_section(report, os.path.relpath(plot, DOCS.parent) if plotted else None)
    if args.write_docs:
        # Re-read right before writing: other sections of this file belong to others.
        text = DOCS.read_text() if DOCS.exists() else ''
        DOCS.parent.mkdir(parents=True, exist_ok=True)
        DOCS.write_text(replace_section(text, section))
    else:
        (Path(args.out) / 'bench_ros_section.md').write_text(section)
    print(section)
    print(f'bench_ros: JSON {report["json_path"]}' + (f', plot {_rel(plot)}' if plotted else '')
          + (f', docs {_rel(DOCS)}' if args.write_docs else ''))
    ok = all(r['received'] > 0 for r in report['results'])
    if not ok:
        return 1
    if args.check_ratio is not None:
        passed, text = ratio_check(report, args.check_ratio, args.check_basis)
        print(f'bench_ros: ratio check {"PASS" if passed else "FAIL"}: {text}', flush=True)
        if not passed:
            return 3
    return 0


if __name__ == '__main__':
    sys.exit(main())
