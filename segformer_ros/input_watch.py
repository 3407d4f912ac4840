"""When to say that a camera topic brings no images, and what to say (no ROS here).

An active node on a topic nobody publishes (a remap typo, the wrong namespace, a compressed
stream where raw is expected) would otherwise be silent: only /diagnostics says "active but
no input images". The node asks :class:`InputWatch` once a second which cameras have been
silent long enough to warn about, and builds the warning with :func:`no_input_message`
from what the ROS graph says about the topic's publishers (topic_graph.py reads it).
"""

import time
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

# First warning after this long without an image (since activate or the last image): a
# camera driver that starts with the node has had time to be discovered and publish.
FIRST_WARNING_S = 5.0
# Then again at most this often, as long as the topic stays silent.
REPEAT_WARNING_S = 30.0
# A slow camera (one image every 10 s) is not "stopped" between its images: after images
# have come, the wait before a warning is also at least this many of its last intervals.
SLOW_CAMERA_INTERVALS = 3.0
# Topics of the expected type named as candidates in the warning.
MAX_CANDIDATES = 5


@dataclass(frozen=True)
class PublisherInfo:
    """One publisher of the watched topic, as the ROS graph reports it."""

    node: str                    # fully qualified node name ('/camera/driver'; '_NODE' unknown)
    type_name: str               # 'sensor_msgs/msg/Image'
    qos_problem: Optional[str]   # None: its QoS matches the subscription's; else why not


class InputWatch:
    """Per camera: time since the last image, and whether a warning is due now."""

    def __init__(self, cameras: int, first_after_s: float = FIRST_WARNING_S,
                 repeat_s: float = REPEAT_WARNING_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if cameras < 1:
            raise ValueError(f'expected at least one camera, got {cameras}')
        self._first_after = first_after_s
        self._repeat = repeat_s
        self._clock = clock
        now = clock()
        self._counts = [0] * cameras
        self._since = [now] * cameras            # last image, or the start
        self._next_warning = [now + first_after_s] * cameras
        self._warned = [False] * cameras
        self._ever = [False] * cameras
        self._wait = [first_after_s] * cameras   # silence that earns a warning

    def update(self, seen: Sequence[int]) -> Tuple[List[int], List[int]]:
        """Take the frames seen so far per camera; return (warn now, resumed after a warning)."""
        if len(seen) != len(self._counts):
            raise ValueError(f'expected {len(self._counts)} frame counts, got {len(seen)}')
        now = self._clock()
        due: List[int] = []
        resumed: List[int] = []
        for i, count in enumerate(seen):
            if count != self._counts[i]:
                if self._ever[i]:
                    self._wait[i] = max(self._first_after,
                                        SLOW_CAMERA_INTERVALS * (now - self._since[i]))
                self._counts[i] = count
                self._since[i] = now
                self._ever[i] = True
                self._next_warning[i] = now + self._wait[i]
                if self._warned[i]:
                    resumed.append(i)
                    self._warned[i] = False
            elif now >= self._next_warning[i]:
                due.append(i)
                self._warned[i] = True
                self._next_warning[i] = now + self._repeat
        return due, resumed

    def silent_s(self, camera: int) -> float:
        """Seconds since the camera's last image (or since the start when none came)."""
        return self._clock() - self._since[camera]

    def ever_received(self, camera: int) -> bool:
        """Tell whether an image of this camera has arrived."""
        return self._ever[camera]


def no_input_message(topic: str, expected_type: str, silent_s: float, ever_received: bool,
                     publishers: Sequence[PublisherInfo],
                     candidates: Sequence[str] = ()) -> str:
    """Say in one line the topic, its publishers (count, type, QoS) and the likely fix.

    ``candidates``: other topics carrying ``expected_type`` (named when there is no publisher).
    """
    head = (f'no image on {topic} for {silent_s:.0f} s' if not ever_received else
            f'images stopped on {topic} {silent_s:.0f} s ago')
    if not publishers:
        found = ''
        if candidates:
            shown = ', '.join(candidates[:MAX_CANDIDATES])
            more = len(candidates) - MAX_CANDIDATES
            found = (f'; topics of that type: {shown}' + (f' (+{more} more)' if more > 0 else ''))
        return (f'{head}: it has no publisher (the node subscribes {expected_type} there; check '
                f'the topic name, namespace and remapping, e.g. -r image:=/camera/image_raw'
                f'{found})')
    count = f'{len(publishers)} publisher{"s" if len(publishers) != 1 else ""}'
    wrong_type = [p for p in publishers if p.type_name != expected_type]
    bad_qos = [p for p in publishers if p.type_name == expected_type and p.qos_problem]
    if wrong_type:
        types = sorted({p.type_name for p in wrong_type})
        hint = ''
        if any(t.endswith('/CompressedImage') for t in types):
            hint = '; for a compressed stream set input_transport (or camera_transports) ' \
                   'to compressed'
        elif expected_type.endswith('/CompressedImage'):
            hint = '; for raw images set input_transport (or camera_transports) to raw'
        return (f'{head}: {count} ({_nodes(wrong_type)}) of {", ".join(types)}, but the node '
                f'subscribes {expected_type}: the types do not match{hint}')
    if bad_qos:
        return (f'{head}: {count}, QoS incompatible with the node\'s subscription: '
                + '; '.join(f'{p.node}: {p.qos_problem}' for p in bad_qos))
    question = 'has it stopped' if ever_received else 'is it publishing'
    return (f'{head}: {count} ({_nodes(publishers)}), type {expected_type} and QoS compatible, '
            f'but no image arrives: {question} (a paused bag, a camera waiting for a '
            f'trigger)?')


def _nodes(publishers: Sequence[PublisherInfo]) -> str:
    names = sorted({p.node for p in publishers})
    return ', '.join(names)
