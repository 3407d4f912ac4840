"""Watch whether the camera frames arrive and the frame path moves (no ROS here).

A perception node that is active, whose camera publishes, and that publishes nothing
without a word is the worst failure a robot can have (issue 21: on Jazzy the node went
silent because frames above 0.5 MB never reached it). The node gathers, on each
/diagnostics tick, what the graph, the camera readers and the frame path say
(:class:`CameraInput`, :class:`PathProgress`) and :func:`assess` turns that into one
verdict: a level for /diagnostics, a reason naming the topic and what to check, and the
log key under which the node rate-limits the line it logs.

Checks, worst first:

- **stalled** (ERROR): a frame-path thread ended while active, or the path has held one
  frame for longer than ``stall_timeout_s`` (or 4x the slowest recent frame, whichever is
  longer: a slow model is not a stall).
- **lost in transport** (ERROR): the camera's sequence numbers show that most frames it
  sent while the node waited idle never reached the node (nothing could have replaced
  them in the reader): the typical cause is a DDS shared-memory segment smaller than one
  frame, for large best-effort images.
- **no input** (WARN) after ``input_timeout_s`` without a frame: no publisher on the
  topic, publishers whose QoS cannot match ours (named with the policy), or matched
  publishers whose frames do not arrive.
- **wait misses** (WARN): frames a poll found after the middleware's wait had reported
  nothing (the reader recovered them; the count says the middleware misbehaves).
"""

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

# Of the frames a camera sent while the node waited idle, this share lost means "lost in
# transport" (a few losses on a busy machine are normal for best-effort images).
LOST_SHARE_ERROR = 0.5
# ... counted over at least this many frames sent, so one unlucky frame is not an error.
LOST_MIN_FRAMES = 5
# A frame held longer than this many times the slowest recent frame is stuck.
STALL_FACTOR = 4.0


@dataclass(frozen=True)
class CameraInput:
    """One camera's input side at one moment (gathered by the node)."""

    topic: str
    matched_publishers: int                 # publishers DDS matched with our reader
    graph_publishers: int = 0               # publishers on the topic in the ROS graph
    incompatible: Sequence[str] = ()        # why each unmatched publisher cannot match
    taken: int = 0                          # frames the worker took
    lost_while_idle: int = 0                # sequence gaps seen while the worker waited idle
    wait_misses: int = 0                    # frames found by the poll after an empty wait


@dataclass(frozen=True)
class PathProgress:
    """The frame path at one moment (FramePath.progress())."""

    oldest_in_flight_s: float = 0.0         # age of the oldest frame taken and not finished
    slowest_recent_s: float = 0.0           # longest take-to-finish of the recent frames
    dead_threads: Sequence[str] = ()        # frame-path threads that ended while running


@dataclass(frozen=True)
class Verdict:
    """What the node reports: /diagnostics level and message, and the log key."""

    level: str                              # 'ok', 'warn' or 'error'
    message: str
    key: Optional[str] = None               # rate-limiting key of the log line (None: no log)
    values: Dict[str, object] = field(default_factory=dict)


@dataclass
class _CameraHistory:
    last_taken: int = 0
    last_take_s: float = 0.0
    lost_seen: int = 0
    taken_seen: int = 0
    misses_reported: int = 0


class InputWatch:
    """Keeps the per-camera history the checks need across /diagnostics ticks."""

    def __init__(self, started_s: float) -> None:
        self._started_s = started_s
        self._cameras: Dict[str, _CameraHistory] = {}

    def assess(self, now_s: float, cameras: Sequence[CameraInput], path: PathProgress,
               input_timeout_s: float, stall_timeout_s: float) -> Verdict:
        """Return the worst finding for this tick (``level == 'ok'`` when all is well)."""
        findings: List[Verdict] = []
        stall = _stall(path, stall_timeout_s)
        if stall is not None:
            findings.append(stall)
        for cam in cameras:
            hist = self._cameras.setdefault(cam.topic, _CameraHistory(last_take_s=self._started_s))
            if cam.taken != hist.last_taken:
                hist.last_taken, hist.last_take_s = cam.taken, now_s
            findings.extend(self._camera_findings(now_s, cam, hist, input_timeout_s))
        values: Dict[str, object] = {
            'frame_path_oldest_in_flight_s': round(path.oldest_in_flight_s, 3)}
        for cam in cameras:
            prefix = cam.topic.strip('/').replace('/', '_') or 'image'
            values[f'{prefix}_publishers'] = cam.matched_publishers
            values[f'{prefix}_frames_lost_in_transport'] = cam.lost_while_idle
            if cam.wait_misses:
                values[f'{prefix}_wait_misses'] = cam.wait_misses
        if not findings:
            return Verdict('ok', 'running', None, values)
        order = {'error': 0, 'warn': 1}
        worst = min(findings, key=lambda v: order[v.level])
        return Verdict(worst.level, worst.message, worst.key, values)

    def _camera_findings(self, now_s: float, cam: CameraInput, hist: _CameraHistory,
                         input_timeout_s: float) -> List[Verdict]:
        found: List[Verdict] = []
        lost = cam.lost_while_idle - hist.lost_seen
        took = cam.taken - hist.taken_seen
        if lost + took >= LOST_MIN_FRAMES:
            # Window closed: judge it, start the next one.
            if lost / (lost + took) >= LOST_SHARE_ERROR:
                found.append(Verdict(
                    'error',
                    f'frames lost in transport on {cam.topic}: of the last {lost + took} '
                    f'frames the camera sent while the node waited, {lost} never arrived; for '
                    f'large best-effort images give the DDS shared-memory segment room for '
                    f'several frames (Fast DDS: segment_size in the XML profile, named by '
                    f'FASTRTPS_DEFAULT_PROFILES_FILE on Humble/Jazzy, '
                    f'FASTDDS_DEFAULT_PROFILES_FILE on Kilted)', f'lost:{cam.topic}'))
            hist.lost_seen, hist.taken_seen = cam.lost_while_idle, cam.taken
        if cam.wait_misses > hist.misses_reported:
            found.append(Verdict(
                'warn', f'{cam.wait_misses} frames on {cam.topic} were found by polling after '
                        f'the middleware\'s wait reported none (recovered; the RMW\'s wait set '
                        f'misses data)', f'misses:{cam.topic}'))
            hist.misses_reported = cam.wait_misses
        idle_s = now_s - hist.last_take_s
        if input_timeout_s > 0 and idle_s >= input_timeout_s:
            found.append(Verdict('warn', _no_input_reason(cam, idle_s), f'no_input:{cam.topic}'))
        return found


def _stall(path: PathProgress, stall_timeout_s: float) -> Optional[Verdict]:
    if path.dead_threads:
        return Verdict('error', f'frame path stalled: thread(s) {", ".join(path.dead_threads)} '
                                f'ended while active (see the log for the error); deactivate '
                                f'and activate again to restart it', 'stall:threads')
    limit = max(stall_timeout_s, STALL_FACTOR * path.slowest_recent_s)
    if stall_timeout_s > 0 and path.oldest_in_flight_s > limit:
        return Verdict('error', f'frame path stalled: one frame in flight for '
                                f'{path.oldest_in_flight_s:.1f} s (limit {limit:.1f} s: '
                                f'stall_timeout_s or {STALL_FACTOR:g}x the slowest recent '
                                f'frame); no mask is published meanwhile', 'stall:frame')
    return None


def _no_input_reason(cam: CameraInput, idle_s: float) -> str:
    head = f'no image on {cam.topic} for {idle_s:.0f} s'
    if cam.matched_publishers:
        return (f'{head}: {cam.matched_publishers} publisher(s) matched but no frame arrived '
                f'(is the camera publishing? large best-effort images need a DDS '
                f'shared-memory segment bigger than one frame)')
    if cam.incompatible:
        return (f'{head}: {len(cam.incompatible)} publisher(s) with incompatible QoS: '
                f'{"; ".join(cam.incompatible)} (the node subscribes best effort, volatile)')
    if cam.graph_publishers:
        return f'{head}: {cam.graph_publishers} publisher(s) on the topic, not matched yet'
    return (f'{head}: no publisher on the topic; check the remapping (image:=...) and that '
            f'the camera runs in this ROS_DOMAIN_ID')
