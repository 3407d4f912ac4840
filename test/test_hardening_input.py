"""Bad input over real DDS to a running node process (real DeepLab model).

For every kind of broken frame: the node logs exactly one clear error naming what it
expected and what it got (rate-limited: the same bad frame sent 20 times gives one line,
and the next line of that kind reports how many were suppressed), publishes nothing for
the bad frames, stays within its memory (a header claiming gigabytes allocates nothing)
and segments the next good frame normally (its mask carries the good frame's stamp).

One node process serves all raw-input cases (class-scoped fixture), one more the
compressed cases: the cases run in a fixed order, and a case whose kind of error was
logged less than the rate-limit period ago waits for the period to pass first.
"""

import itertools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')
pytest.importorskip('segformer_ros.msg', reason='generated messages missing: run make setup')

from ros_helpers import (NodeClient, compressed_msg, error_lines,  # noqa: E402
                         image_msg, mask_array, next_domain, plain_onnx_mask, ros_context,
                         rss_mb, stamp_ns, start_preset_node, wait_until)
from benchmarks.processes import RosProcess  # noqa: E402

pytestmark = pytest.mark.ros

REPEATS = 20               # copies of each bad frame, sent back to back
RATE_LIMIT_S = 5.0         # SegformerNode._log_limiter period
MAX_PIXELS = 16_000_000    # max_input_pixels of the test node (not the default 16 Mi)
RSS_JUMP_MB = 30.0         # bad headers claim 48 MB .. 4.8 GB; nothing may be allocated
_stamps = itertools.count(1000)


def _next_stamp() -> int:
    return next(_stamps) * 10**9 + 12345


IDLE_S = 1.0   # longer than one inference of the shared model on a loaded 2-core machine


@dataclass
class Case:
    """One kind of bad frame and what its log line must say."""

    id: str
    kind: str                       # one raise site = one rate-limit key in the node
    make: Callable[[int], Any]      # stamp (ns) -> message
    needles: Tuple[str, ...]        # each must appear in the error line
    second_of_kind: bool = False    # its line also reports the earlier batch as suppressed
    claims_mb: float = 0.0          # memory the header claims; the node's RSS must not follow


class _Running:
    """A node process plus the client talking to it."""

    def __init__(self, proc: RosProcess, client: NodeClient, good: Callable[[int], Any],
                 good_hw: Tuple[int, int]) -> None:
        self.proc = proc
        self.client = client
        self.good = good
        self.good_hw = good_hw
        self.logged: Dict[str, float] = {}  # kind -> latest time its line may have been logged

    def run_case(self, case: Case) -> Dict[str, Any]:
        """Send a case's bad frame REPEATS times, then a good one; return what happened."""
        last = self.logged.get(case.kind)
        if last is not None:
            time.sleep(max(0.0, last + RATE_LIMIT_S + 0.3 - time.monotonic()))
        # Let the worker finish any good frame still in flight from the previous case:
        # otherwise the bad frames wait in the keep-latest slot and the good frame sent
        # next replaces them all, and nothing is refused (or logged) at all.
        time.sleep(IDLE_S)
        log_start = len(self.proc.log())
        rss_before = rss_mb(self.proc.pid)
        bad_stamp = _next_stamp()
        bad = case.make(bad_stamp)
        for _ in range(REPEATS):
            self.client.camera.publish(bad)
            time.sleep(0.003)
        # ... and let it refuse them before the good frame can replace the last ones.
        deadline = time.monotonic() + 10.0
        resend_at = time.monotonic() + 1.0
        while not error_lines(self.proc.log()[log_start:]) and time.monotonic() < deadline:
            if time.monotonic() >= resend_at:
                # Fast DDS 2 (make test-jazzy) can lose a whole burst of 16 MB best-effort
                # samples; one more (until the first refusal) changes nothing else.
                self.client.camera.publish(bad)
                resend_at += 1.0
            time.sleep(0.05)
        # The worker handles frames in order: once the good frame's mask is back, every
        # bad frame before it has been refused (or replaced in the keep-latest slot).
        good_stamp = _next_stamp()
        mask = self.client.send_until_mask(lambda: self.good(good_stamp), good_stamp)
        self.logged[case.kind] = time.monotonic()
        new_log = self.proc.log()[log_start:]
        return {'mask': mask, 'errors': error_lines(new_log), 'log': new_log,
                'bad_masks': self.client.masks_with_stamp(bad_stamp),
                'rss_jump_mb': rss_mb(self.proc.pid) - rss_before}


def _start(tmp_dir: Path, model: Path, extra: Dict[str, Any], compressed: bool,
           good: Callable[[int], Any], good_hw: Tuple[int, int]):
    domain = next_domain()
    proc = start_preset_node(tmp_dir, domain, model, autostart=True,
                             max_input_pixels=MAX_PIXELS, **extra)
    with ros_context(domain) as context:
        client = NodeClient(context, camera_topic='/image/compressed' if compressed
                            else '/image', compressed=compressed)
        try:
            assert proc.wait_for_log('configured:', 60.0), proc.log()[-3000:]
            assert wait_until(lambda: client.state() == 'active', 30.0), proc.log()[-3000:]
            assert client.wait_for_camera_match(), 'node never subscribed to the camera'
            running = _Running(proc, client, good, good_hw)
            # First frame: ONNX Runtime allocates its arenas; later RSS readings are steady.
            assert client.send_until_mask(lambda: good(1), 1) is not None, proc.log()[-3000:]
            yield running
            log = proc.log()
            assert 'Traceback' not in log, log[-3000:]
        finally:
            client.close()
            code = proc.stop()
    assert code == 0, f'node exited with {code}:\n{proc.log()[-3000:]}'


@pytest.fixture(scope='session')
def small_rgb(street_frames_bgr) -> np.ndarray:
    import cv2

    return cv2.cvtColor(cv2.resize(street_frames_bgr[2], (96, 64),
                                   interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope='class')
def raw_node(tmp_path_factory, deeplab_model, small_rgb):
    def good(stamp: int) -> Any:
        return image_msg(small_rgb, 'rgb8', stamp, frame_id='good')

    yield from _start(tmp_path_factory.mktemp('raw_node'), deeplab_model, {}, False, good,
                      small_rgb.shape[:2])


@pytest.fixture(scope='class')
def compressed_node(tmp_path_factory, deeplab_model, small_rgb):
    import cv2

    jpeg = cv2.imencode('.jpg', cv2.cvtColor(small_rgb, cv2.COLOR_RGB2BGR))[1].tobytes()

    def good(stamp: int) -> Any:
        return compressed_msg(jpeg, 'jpeg', stamp, frame_id='good')

    yield from _start(tmp_path_factory.mktemp('compressed_node'), deeplab_model,
                      {'input_transport': 'compressed'}, True, good, small_rgb.shape[:2])


# ------------------------------------------------------------------ raw cases
_PIX = np.arange(48 * 64 * 3, dtype=np.uint8).reshape(48, 64, 3)


def _raw(**fields: Any) -> Callable[[int], Any]:
    def make(stamp: int) -> Any:
        kw = dict(fields)
        arr = kw.pop('array', _PIX)
        return image_msg(arr, kw.pop('encoding', 'rgb8'), stamp, frame_id='bad', **kw)
    return make


_TOO_LARGE = np.full((4001, 4000), 128, np.uint8)  # 16.0 MP of real data, mono8

RAW_CASES: List[Case] = [
    Case('unknown_encoding', 'encoding-unknown', _raw(encoding='xyz8'),
         ("unknown or unsupported image encoding 'xyz8'", 'expected one of: rgb8')),
    Case('float_32FC1', 'encoding-refused',
         _raw(encoding='32FC1', array=np.zeros((48, 64), np.float32).view(np.uint8)),
         ("'32FC1' is not supported", 'float images', 'expected one of: rgb8')),
    Case('step_shorter_than_row', 'step', _raw(step=100),
         ('image step 100 is shorter than one row', 'at least 192 bytes per row')),
    Case('data_shorter_than_step_x_height', 'data-short', _raw(data=bytes(1000)),
         ('image data too short', 'needs step*height = 9216 bytes, got 1000')),
    Case('zero_width', 'empty', _raw(width=0), ('expected a non-empty image, got 0x48',)),
    Case('header_40000x40000_few_bytes', 'max-pixels',
         _raw(width=40000, height=40000, step=120000, data=bytes(16)),
         ('40000x40000 = 1600000000 pixels exceeds the limit of 16000000',), claims_mb=4800),
    Case('yuv422_odd_width', 'yuv-odd',
         _raw(encoding='yuv422', array=np.zeros((48, 63 * 2), np.uint8), width=63),
         ('expected an even width, got 63',)),
    # Second cases of a kind: their line also reports the suppressed first batch.
    Case('float_64FC3', 'encoding-refused',
         _raw(encoding='64FC3', array=np.zeros((48, 64, 3), np.float64).view(np.uint8)),
         ("'64FC3' is not supported", 'float images'), True),
    Case('zero_height', 'empty', _raw(height=0, data=b''),
         ('expected a non-empty image, got 64x0',), True),
    Case('larger_than_max_input_pixels', 'max-pixels', _raw(array=_TOO_LARGE, encoding='mono8'),
         ('4000x4001 = 16004000 pixels exceeds the limit of 16000000',), True),
    Case('header_4000x4000_rgba16_claims_128MB_over_10_bytes', 'data-short',
         _raw(encoding='rgba16', width=4000, height=4000, step=32000, data=bytes(10)),
         ('needs step*height = 128000000 bytes, got 10',), True, claims_mb=128),
]


def _check_case(running: _Running, case: Case, result: Dict[str, Any]) -> None:
    mask = result['mask']
    assert mask is not None, f'no mask for the good frame after {case.id}:\n{result["log"]}'
    assert (mask.height, mask.width) == running.good_hw
    assert mask.header.frame_id == 'good'
    assert result['bad_masks'] == [], f'{case.id}: a mask was published for a bad frame'
    errors = result['errors']
    assert len(errors) == 1, f'{case.id}: expected one error line, got {errors}'
    for needle in case.needles:
        assert needle in errors[0], f'{case.id}: {needle!r} not in {errors[0]!r}'
    assert 'dropped a frame on' in errors[0]
    if case.second_of_kind:
        # The previous batch of this kind: 1 logged, the rest counted as suppressed.
        import re
        found = re.search(r'\((\d+) similar errors suppressed\)', errors[0])
        assert found and 1 <= int(found.group(1)) <= REPEATS - 1, errors[0]
    if case.claims_mb:
        assert result['rss_jump_mb'] < RSS_JUMP_MB < case.claims_mb, \
            f'{case.id}: RSS +{result["rss_jump_mb"]:.1f} MB'


class TestRawInput:
    """sensor_msgs/Image input (one node process for the whole class)."""

    @pytest.mark.parametrize('case', RAW_CASES, ids=[c.id for c in RAW_CASES])
    def test_bad_frame_is_refused_once_and_next_frame_works(self, raw_node, case) -> None:
        _check_case(raw_node, case, raw_node.run_case(case))

    @pytest.mark.parametrize('encoding,big', [('rgb16', False), ('16UC3', False),
                                              ('mono16', True)])
    def test_16bit_frames_are_converted_like_their_high_bytes(self, raw_node, street_frames_bgr,
                                                              encoding, big) -> None:
        import cv2

        bgr = cv2.resize(street_frames_bgr[1], (240, 135), interpolation=cv2.INTER_AREA)
        if encoding == 'mono16':
            eight, eight_enc = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), 'mono8'
        elif encoding == 'rgb16':
            eight, eight_enc = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), 'rgb8'
        else:
            eight, eight_enc = bgr, 'bgr8'
        low = np.random.default_rng(3).integers(0, 256, eight.shape, dtype=np.uint16)
        sixteen = (eight.astype(np.uint16) << 8) | low
        if big:
            sixteen = sixteen.astype('>u2')
        client = raw_node.client
        s8, s16 = _next_stamp(), _next_stamp()
        m8 = client.send_until_mask(lambda: image_msg(eight, eight_enc, s8), s8)
        m16 = client.send_until_mask(lambda: image_msg(sixteen.view(np.uint8).reshape(
            135, 240, -1), encoding, s16, step=240 * 2 * (1 if eight.ndim == 2 else 3),
            is_bigendian=big), s16)
        assert m8 is not None and m16 is not None, raw_node.proc.log()[-2000:]
        assert (m16.height, m16.width) == (135, 240)
        np.testing.assert_array_equal(mask_array(m16), mask_array(m8))

    def test_frame_size_changes_follow_each_frame(self, raw_node, deeplab_model,
                                                  street_frames_bgr) -> None:
        import cv2

        client = raw_node.client
        sizes = [(240, 135), (320, 180), (97, 61), (135, 240), (240, 135)]
        frames = {s: cv2.cvtColor(cv2.resize(street_frames_bgr[3], s,
                                             interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
                  for s in set(sizes)}
        # One at a time: each mask has its frame's size and matches a plain ONNX Runtime run.
        for size in sizes:
            stamp = _next_stamp()
            mask = client.send_until_mask(lambda: image_msg(frames[size], 'rgb8', stamp), stamp)
            assert mask is not None
            assert (mask.width, mask.height) == size
            agreement = (mask_array(mask) == plain_onnx_mask(deeplab_model, frames[size])).mean()
            assert agreement >= 0.99, (size, agreement)
        # A burst of alternating sizes: whatever the keep-latest slot lets through must have
        # the size of the frame whose stamp it carries.
        sent: Dict[int, Tuple[int, int]] = {}
        for size in sizes * 4:
            stamp = _next_stamp()
            sent[stamp] = size
            client.camera.publish(image_msg(frames[size], 'rgb8', stamp))
            time.sleep(0.01)
        last = max(sent)
        assert wait_until(lambda: client.masks_with_stamp(last), 30.0)
        got = [m for _, m in list(client.masks) if stamp_ns(m) in sent]
        assert len(got) >= 2
        for m in got:
            assert (m.width, m.height) == sent[stamp_ns(m)]

    def test_no_traceback_and_failures_counted(self, raw_node) -> None:
        client = raw_node.client
        assert wait_until(lambda: client.diag_value('frames_failed') >= len(RAW_CASES), 5.0)
        log = raw_node.proc.log()
        assert 'Traceback' not in log and 'unexpectedly' not in log


# ----------------------------------------------------------- compressed cases
def _jpeg_bytes(h: int = 48, w: int = 64) -> bytes:
    import cv2
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx * 4 % 256, yy * 5 % 256, (xx + yy) % 256], axis=2).astype(np.uint8)
    return cv2.imencode('.jpg', img)[1].tobytes()


def _patched_jpeg(height: int, width: int) -> bytes:
    data = bytearray(_jpeg_bytes())
    i = bytes(data).index(b'\xff\xc0')
    data[i + 5:i + 7] = height.to_bytes(2, 'big')
    data[i + 7:i + 9] = width.to_bytes(2, 'big')
    return bytes(data)


def _corrupt_scan_jpeg() -> bytes:
    """Return a JPEG whose scan is cut after its header and followed by noise (no EOI marker)."""
    data = _jpeg_bytes()
    sos = data.index(b'\xff\xda')
    noise = np.random.default_rng(5).integers(0, 256, 600, dtype=np.uint8).tobytes()
    return data[:sos + 14] + noise


def _bogus_sof_jpeg() -> bytes:
    """Return a whole JPEG whose frame header says 5 components (libjpeg refuses it)."""
    data = bytearray(_jpeg_bytes())
    data[bytes(data).index(b'\xff\xc0') + 9] = 5
    return bytes(data)


def _giant_png() -> bytes:
    import struct
    import zlib
    ihdr = struct.pack('>IIBBBBB', 50000, 50000, 8, 2, 0, 0, 0)
    chunk = struct.pack('>I', len(ihdr)) + b'IHDR' + ihdr + struct.pack(
        '>I', zlib.crc32(b'IHDR' + ihdr))
    return b'\x89PNG\r\n\x1a\n' + chunk + b'\x00' * 32


def _comp(data: bytes, fmt: str = 'jpeg') -> Callable[[int], Any]:
    return lambda stamp: compressed_msg(data, fmt, stamp, frame_id='bad')


COMPRESSED_CASES: List[Case] = [
    Case('not_jpeg_or_png', 'container', _comp(b'GIF89a' + bytes(100)),
         ('neither JPEG nor PNG', 'expected it to start with FF D8')),
    Case('jpeg_cut_short_then_garbage', 'jpeg-end', _comp(_corrupt_scan_jpeg()),
         ('corrupt or truncated jpeg data: expected the JPEG end-of-image marker FF D9',)),
    Case('jpeg_with_bogus_frame_header', 'decode', _comp(_bogus_sof_jpeg()),
         ('corrupt jpeg data: OpenCV could not decode', 'header said 64x48')),
    Case('jpeg_header_claims_60000x60000', 'max-pixels', _comp(_patched_jpeg(60000, 60000)),
         ('60000x60000 = 3600000000 pixels exceeds the limit of 16000000',
          'refusing to decode'), claims_mb=10800),
    Case('jpeg_without_frame_header', 'jpeg-marker', _comp(b'\xff\xd8' + bytes(range(40))),
         ('corrupt jpeg data: expected a JPEG marker at byte 2',)),
    Case('compressed_depth', 'depth', _comp(_jpeg_bytes(), '16UC1; compressedDepth png'),
         ('compressed depth image, not a camera picture',)),
    Case('jpeg_truncated', 'jpeg-end', _comp(_jpeg_bytes()[:700]),
         ('corrupt or truncated jpeg data', 'got '), True),
    Case('png_header_claims_50000x50000', 'max-pixels', _comp(_giant_png(), 'png'),
         ('50000x50000 = 2500000000 pixels exceeds the limit of 16000000',), True,
         claims_mb=7500),
]


class TestCompressedInput:
    """sensor_msgs/CompressedImage input on image/compressed (one node process)."""

    @pytest.mark.parametrize('case', COMPRESSED_CASES, ids=[c.id for c in COMPRESSED_CASES])
    def test_bad_frame_is_refused_once_and_next_frame_works(self, compressed_node,
                                                            case) -> None:
        _check_case(compressed_node, case, compressed_node.run_case(case))

    def test_jpeg_and_png_of_changing_sizes(self, compressed_node, street_frames_bgr) -> None:
        import cv2

        client = compressed_node.client
        for (w, h), ext in (((240, 135), '.jpg'), ((160, 90), '.png'), ((321, 181), '.jpg')):
            frame = cv2.resize(street_frames_bgr[0], (w, h), interpolation=cv2.INTER_AREA)
            data = cv2.imencode(ext, frame)[1].tobytes()
            stamp = _next_stamp()
            mask = client.send_until_mask(
                lambda: compressed_msg(data, ext[1:].replace('jpg', 'jpeg'), stamp), stamp)
            assert mask is not None and (mask.width, mask.height) == (w, h)
