"""segformer-ros-bag (issue 24 items 1-3): rosbag2 in, segmented rosbag2 out, compare.

Bags are written with rosbags from the bundled clip (and the shared Cityscapes frames for
eval / selfcheck), in both storages, raw and compressed images, two cameras with CameraInfo.
The masks in the output bag must equal the node's own masks for the same messages over DDS
(the bag's CDR bytes deserialized with rclpy and published to the running node).
"""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np
import pytest

from bag_helpers import (CameraSpec, T0_NS, cityscapes_frames, clip_frames, read_topic,
                         topics, write_bag)
from segformer_ros import bag_messages as bm
from segformer_ros.tools.bag import main

pytest.importorskip('rosbags')

REPO = Path(__file__).resolve().parents[1]
PRESET = 'deeplab_mobilenet_cityscapes'
CAMERAS = [CameraSpec('/front/image_raw', 'front_optical', 'rgb8'),
           CameraSpec('/rear/image_raw/compressed', 'rear_optical', 'jpeg', offset_ns=3_000)]
GRID = ['--set', 'grid_camera_z=1.5', '--set', 'grid_camera_pitch=0.2']


def _run(tmp: Path, bag: Path, name: str, *extra: str) -> Tuple[Path, Dict[str, Any]]:
    out, report = tmp / name, tmp / f'{name}.json'
    rc = main(['run', str(bag), str(out), '--params', PRESET, '--set', 'warmup_iterations=0',
               '--image-topics', *[c.topic for c in CAMERAS], '--json', str(report),
               '--quiet', *extra])
    assert rc == 0
    return out, json.loads(report.read_text())


def _masks(bag: Path, topic: str) -> Dict[int, Tuple[np.ndarray, Any, int]]:
    """Map stamp -> (mask, header, log time) of a mask topic."""
    out = {}
    for log_time, msg in read_topic(bag, topic):
        out[bm.stamp_ns(msg.header)] = (bm.mask_from_image(msg).copy(), msg.header, log_time)
    return out


@pytest.fixture(scope='module')
def recorded(tmp_path_factory) -> Dict[str, Any]:
    """Two cameras (rgb8 Image + JPEG CompressedImage, CameraInfo) in mcap and sqlite3."""
    tmp = tmp_path_factory.mktemp('bags')
    frames = clip_frames(3)
    bags, runs = {}, {}
    for storage in ('mcap', 'sqlite3'):
        bags[storage] = tmp / f'in_{storage}'
        stamps = write_bag(bags[storage], storage, CAMERAS, frames)
        runs[storage] = _run(tmp, bags[storage], f'out_{storage}', '--copy-input', *GRID)
    return {'tmp': tmp, 'bags': bags, 'runs': runs, 'stamps': stamps, 'frames': frames}


@pytest.fixture(scope='module')
def recorded_cityscapes(tmp_path_factory) -> Tuple[Path, Path]:
    """Record the shared Cityscapes frames (half size) on the same two cameras, in sqlite3."""
    from shared_assets import cityscapes_root

    tmp = tmp_path_factory.mktemp('cs_bags')
    bag = tmp / 'in_sqlite3'
    write_bag(bag, 'sqlite3', CAMERAS, cityscapes_frames(cityscapes_root(), scale=0.5))
    return bag, _run(tmp, bag, 'out_sqlite3', '--copy-input', *GRID)[0]


# ------------------------------------------------------------------ node over DDS
@pytest.mark.ros
@pytest.mark.parametrize('source', ['clip_mcap', 'cityscapes_sqlite3'])
def test_masks_equal_the_nodes_over_dds(source, request, rclpy_context, deeplab_model):
    import rclpy
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.qos import qos_profile_sensor_data
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import CameraInfo, CompressedImage, Image

    from ros_helpers import InProcessNode, deeplab_overrides, wait_until
    from segformer_ros.tools.spin import BackgroundSpin

    if source == 'clip_mcap':
        recorded = request.getfixturevalue('recorded')
        bag, out = recorded['bags']['mcap'], recorded['runs']['mcap'][0]
    else:
        bag, out = request.getfixturevalue('recorded_cityscapes')
    node = InProcessNode(rclpy_context, deeplab_overrides(
        deeplab_model, cameras=['front', 'rear'],
        camera_topics=['/front/image_raw', '/rear/image_raw'],
        camera_transports=['raw', 'compressed'],
        camera_info_topics=['/front/camera_info', '/rear/camera_info']))
    peer = rclpy.create_node('bag_tool_peer', context=rclpy_context)
    got: Dict[str, List[Any]] = {'front': [], 'rear': []}
    infos: Dict[str, List[Any]] = {'front': [], 'rear': []}
    for ns in got:
        peer.create_subscription(Image, f'/{ns}/segmentation/mask', got[ns].append, 50)
        peer.create_subscription(CameraInfo, f'/{ns}/segmentation/camera_info',
                                 infos[ns].append, 50)
    pubs = {'/front/image_raw': peer.create_publisher(Image, '/front/image_raw',
                                                      qos_profile_sensor_data),
            '/rear/image_raw/compressed': peer.create_publisher(
                CompressedImage, '/rear/image_raw/compressed', qos_profile_sensor_data),
            '/front/camera_info': peer.create_publisher(CameraInfo, '/front/camera_info', 10),
            '/rear/camera_info': peer.create_publisher(CameraInfo, '/rear/camera_info', 10)}
    types = {'/front/image_raw': Image, '/rear/image_raw/compressed': CompressedImage,
             '/front/camera_info': CameraInfo, '/rear/camera_info': CameraInfo}
    executor = MultiThreadedExecutor(num_threads=2, context=rclpy_context)
    executor.add_node(peer)
    spin = BackgroundSpin(executor, 'bag_peer_spin')
    try:
        node.node.trigger_configure()
        node.node.trigger_activate()
        assert node.state() == 'active'
        assert wait_until(lambda: all(p.get_subscription_count() for p in pubs.values()), 20.0)
        from rosbags.rosbag2 import Reader
        with Reader(bag) as reader:
            messages = [(c.topic, raw) for c, _t, raw in reader.messages()]
        for topic, raw in messages:
            msg = deserialize_message(bytes(raw), types[topic])
            if topic.endswith('camera_info'):
                pubs[topic].publish(msg)
                time.sleep(0.05)   # the node keeps the latest CameraInfo before the image
                continue
            ns = topic.split('/')[1]
            stamp = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
            for _ in range(5):   # resend if discovery lost it (keep-latest drops nothing here)
                pubs[topic].publish(msg)
                if wait_until(lambda: any(m.header.stamp.sec * 10**9 + m.header.stamp.nanosec
                                          == stamp for m in got[ns]), 6.0):
                    break
            else:
                pytest.fail(f'no mask from the node for {topic} at {stamp}')
    finally:
        spin.stop()
        peer.destroy_node()
        node.close()

    for ns in ('front', 'rear'):
        tool = _masks(out, f'/{ns}/segmentation/mask')
        assert len(tool) == 3
        node_masks = {}
        for m in got[ns]:
            node_masks.setdefault(m.header.stamp.sec * 10**9 + m.header.stamp.nanosec, m)
        assert set(node_masks) == set(tool)
        for stamp, m in node_masks.items():
            mask, header, _ = tool[stamp]
            node_mask = np.frombuffer(bytes(m.data), np.uint8).reshape(m.height, m.width)
            assert node_mask.tobytes() == mask.tobytes(), f'{ns} {stamp}'
            assert header.frame_id == m.header.frame_id == f'{ns}_optical'
        tool_infos = {bm.stamp_ns(i.header): i for _, i in
                      read_topic(out, f'/{ns}/segmentation/camera_info')}
        for info in infos[ns]:
            stamp = info.header.stamp.sec * 10**9 + info.header.stamp.nanosec
            theirs = tool_infos[stamp]
            assert (info.width, info.height) == (theirs.width, theirs.height)
            assert list(info.k) == list(theirs.k) and list(info.p) == list(theirs.p)


# ------------------------------------------------------------------ bag contents
@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_outputs_keep_headers_and_log_times(recorded, storage):
    bag, (out, report) = recorded['bags'][storage], recorded['runs'][storage]
    suffix = '.mcap' if storage == 'mcap' else '.db3'
    assert list(out.glob(f'*{suffix}')), f'output not stored as {storage}'
    inputs = {c.topic: {bm.stamp_ns(m.header): (m.header, t) for t, m in read_topic(bag, c.topic)}
              for c in CAMERAS}
    kinds = topics(out)
    for cam, ns in zip(CAMERAS, ('front', 'rear')):
        expected = inputs[cam.topic]
        for output, msgtype in (('mask', bm.IMAGE), ('overlay', bm.IMAGE),
                                ('summary', bm.SUMMARY), ('camera_info', bm.CAMERA_INFO)):
            topic = f'/{ns}/segmentation/{output}'
            assert kinds[topic] == msgtype
            msgs = read_topic(out, topic)
            assert len(msgs) == 3
            for log_time, msg in msgs:
                header, in_log = expected[bm.stamp_ns(msg.header)]
                assert msg.header.frame_id == header.frame_id
                assert log_time == in_log
        masks = _masks(out, f'/{ns}/segmentation/mask')
        for _t, s in read_topic(out, f'/{ns}/segmentation/summary'):
            mask = masks[bm.stamp_ns(s.header)][0]
            counts = np.bincount(mask.ravel(), minlength=256)[:len(s.class_names)]
            assert list(s.class_pixel_counts) == counts.tolist()
        labels = read_topic(out, f'/{ns}/segmentation/label_info')
        assert len(labels) == 1 and labels[0][1].class_map[0].class_name == 'road'
        grids = read_topic(out, f'/{ns}/segmentation/drivable_grid')
        assert len(grids) == 3 and grids[0][1].info.width == 200
        assert set(np.unique(grids[0][1].data)) <= {-1, 0, 100}
        assert len(set(np.unique(grids[0][1].data))) > 1, 'grid all one value'
        # --copy-input: the input topics, byte for byte.
        assert len(read_topic(out, cam.topic)) == 3
    assert report['frames_segmented'] == 6 and report['bad_messages'] == 0
    assert not report['interrupted'] and report['frames_per_second'] > 0


def test_sqlite3_and_mcap_give_the_same_masks(recorded):
    for ns in ('front', 'rear'):
        a = _masks(recorded['runs']['mcap'][0], f'/{ns}/segmentation/mask')
        b = _masks(recorded['runs']['sqlite3'][0], f'/{ns}/segmentation/mask')
        assert set(a) == set(b) and len(a) == 3
        for stamp in a:
            assert a[stamp][0].tobytes() == b[stamp][0].tobytes()


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_bag_format_version_9_gives_the_same_masks(recorded, tmp_path, storage):
    """Metadata version 9 (newer rosbag2 releases; the other tests write 8) reads the same."""
    bag = tmp_path / 'v9'
    write_bag(bag, storage, CAMERAS, recorded['frames'], version=9)
    assert 'version: 9' in (bag / 'metadata.yaml').read_text()
    out, report = _run(tmp_path, bag, 'out_v9')
    assert report['frames_segmented'] == 6
    for ns in ('front', 'rear'):
        a = _masks(out, f'/{ns}/segmentation/mask')
        b = _masks(recorded['runs'][storage][0], f'/{ns}/segmentation/mask')
        assert set(a) == set(b) and len(a) == 3
        for stamp in a:
            assert a[stamp][0].tobytes() == b[stamp][0].tobytes()
            assert a[stamp][1].frame_id == b[stamp][1].frame_id


def test_every_encoding_the_node_accepts(tmp_path):
    """Each encoding of encodings.SUPPORTED_ENCODINGS gives the node's converter's mask."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    from bag_helpers import header
    from segformer_ros.conversion import image_msg_to_array
    from segformer_ros.encodings import SUPPORTED_ENCODINGS
    from segformer_ros.tools.evaluate import build_pipeline

    store = bm.make_typestore()
    rng = np.random.default_rng(24)
    base = clip_frames(1)[0][::8, ::8]          # 120 x 68, real content
    h, w = base.shape[:2]
    bag = tmp_path / 'encodings'
    writer = Writer(bag, version=8, storage_plugin=StoragePlugin.MCAP)
    writer.open()
    sent = {}
    for i, (name, info) in enumerate(sorted(SUPPORTED_ENCODINGS.items())):
        topic = f'/enc_{name.lower()}/image'
        row = w * info.bytes_per_pixel
        data = rng.integers(0, 256, size=h * row, dtype=np.uint8)
        if info.bytes_per_channel == 1 and info.channels in (1, 3):
            data = (base.mean(axis=2).astype(np.uint8) if info.channels == 1 else base).ravel()
        msg = store.types[bm.IMAGE](header=header(store, T0_NS + i, 'cam'), height=h, width=w,
                                    encoding=name, is_bigendian=0, step=row, data=data)
        conn = writer.add_connection(topic, bm.IMAGE, typestore=store)
        writer.write(conn, T0_NS + i, store.serialize_cdr(msg, bm.IMAGE))
        sent[topic] = msg
    writer.close()
    out, report = tmp_path / 'out', tmp_path / 'report.json'
    assert main(['run', str(bag), str(out), '--params', PRESET, '--image-topics', *sent,
                 '--outputs', 'mask', '--json', str(report), '--quiet',
                 '--set', 'warmup_iterations=0']) == 0
    assert json.loads(report.read_text())['bad_messages'] == 0
    from segformer_ros.presets import load_params_file, preset_path

    # The reference: the same preset (a bare model_path gets SegFormer's settings).
    model = REPO / 'assets' / 'models' / 'deeplab_mnv_edgetpu_slim_cityscapes_nchw_f32.onnx'
    backend, pipeline = build_pipeline({**load_params_file(preset_path(PRESET)),
                                        'model_path': str(model)}, lambda _m: None, 0)
    try:
        for topic, msg in sent.items():
            view = image_msg_to_array(msg)
            want = pipeline.process(view.array, view.channel_order, want_overlay=False,
                                    want_summary=False).mask
            got = read_topic(out, topic.replace('/image', '/segmentation/mask'))
            assert len(got) == 1, topic
            assert bm.mask_from_image(got[0][1]).tobytes() == want.tobytes(), topic
    finally:
        backend.release()


def test_bad_messages_are_counted_not_fatal(tmp_path):
    from bag_helpers import compressed, encode_image, header

    store = bm.make_typestore()
    frame = clip_frames(1)[0]
    good = encode_image(store, frame, 'bgr8', header(store, T0_NS, 'cam'))
    short = encode_image(store, frame, 'bgr8', header(store, T0_NS + 1, 'cam'))
    short.step = 10                                          # step below width * 3
    depth = store.types[bm.IMAGE](header=header(store, T0_NS + 2, 'cam'), height=2, width=2,
                                  encoding='32FC1', is_bigendian=0, step=8,
                                  data=np.zeros(16, np.uint8))
    raw = [store.serialize_cdr(m, bm.IMAGE) for m in (good, short, depth)]
    raw.append(b'\x00\x01\x00\x00garbage')                  # not a CDR Image
    bag = tmp_path / 'bad'
    write_bag(bag, 'mcap', [CameraSpec('/cam/image_raw', 'cam', 'bgr8', camera_info=False)],
              [frame], extra={'/cam/image_raw': raw})
    out, report = tmp_path / 'out', tmp_path / 'r.json'
    assert main(['run', str(bag), str(out), '--params', PRESET, '--image-topics',
                 '/cam/image_raw', '--json', str(report), '--quiet',
                 '--set', 'warmup_iterations=0']) == 0
    r = json.loads(report.read_text())
    counts = r['topics']['/cam/image_raw']
    assert counts['read'] == 5 and counts['segmented'] == 2 and counts['bad_messages'] == 3
    text = ' '.join(counts['bad_reasons'])
    assert 'step' in text and '32FC1' in text and 'unreadable message' in text
    assert len(read_topic(out, '/cam/segmentation/mask')) == 2
    # A corrupt JPEG in a CompressedImage topic: counted as well.
    bad_jpeg = compressed(store, frame, 'jpeg', header(store, T0_NS, 'cam'))
    bad_jpeg.data = bad_jpeg.data[:200]
    from rosbags.rosbag2 import StoragePlugin, Writer
    bag3 = tmp_path / 'bad3'
    w = Writer(bag3, version=8, storage_plugin=StoragePlugin.SQLITE3)
    w.open()
    conn = w.add_connection('/c/image/compressed', bm.COMPRESSED_IMAGE, typestore=store)
    w.write(conn, T0_NS, store.serialize_cdr(bad_jpeg, bm.COMPRESSED_IMAGE))
    w.close()
    assert main(['run', str(bag3), str(tmp_path / 'out3'), '--params', PRESET,
                 '--image-topics', '/c/image/compressed', '--json', str(report), '--quiet',
                 '--set', 'warmup_iterations=0']) == 0
    r = json.loads(report.read_text())
    assert r['bad_messages'] == 1 and 'jpeg' in r['topics']['/c/image/compressed'][
        'bad_reasons'][0].lower()


@pytest.mark.parametrize('case', ['missing_topic', 'wrong_type', 'not_a_bag', 'truncated',
                                  'no_such_path', 'output_exists'])
def test_unusable_input_is_a_clear_error(recorded, tmp_path, capsys, case):
    bag = recorded['bags']['mcap']
    topics_arg = ['/front/image_raw']
    out = tmp_path / 'out'
    if case == 'missing_topic':
        topics_arg, expect = ['/left/image_raw'], 'topic /left/image_raw is not in the bag'
    elif case == 'wrong_type':
        topics_arg, expect = ['/front/camera_info'], 'has type sensor_msgs/msg/CameraInfo'
    elif case == 'not_a_bag':
        bag = tmp_path / 'x.mcap'
        bag.write_bytes(b'this is not a bag' * 100)
        expect = 'cannot read bag'
    elif case == 'truncated':
        src = next(recorded['bags']['mcap'].glob('*.mcap'))
        bag = tmp_path / 'cut.mcap'
        bag.write_bytes(src.read_bytes()[:len(src.read_bytes()) // 2])
        expect = 'cannot read bag'
    elif case == 'no_such_path':
        bag, expect = tmp_path / 'nope', 'does not exist'
    else:
        out.mkdir()
        expect = 'exists; expected a new path'
    rc = main(['run', str(bag), str(out), '--params', PRESET, '--image-topics', *topics_arg,
               '--quiet', '--set', 'warmup_iterations=0'])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert expect in err and 'Traceback' not in err
    if case == 'missing_topic':
        assert '/front/image_raw (sensor_msgs/msg/Image)' in err   # what it has


def test_ctrl_c_leaves_a_valid_bag(tmp_path):
    frames = clip_frames(40, step=5)
    bag = tmp_path / 'long'
    stamps = write_bag(bag, 'mcap', [CameraSpec('/cam/image_raw', 'cam', 'bgr8', False)],
                       frames)['/cam/image_raw']
    out, report = tmp_path / 'out', tmp_path / 'r.json'
    proc = subprocess.Popen(
        [sys.executable, '-m', 'segformer_ros.tools.bag', 'run', str(bag), str(out),
         '--params', PRESET, '--image-topics', '/cam/image_raw', '--json', str(report),
         '--set', 'warmup_iterations=0', '--set', 'num_threads=1'],
        cwd=REPO, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        line = proc.stderr.readline()
        while line and 'bag 1/40' not in line:   # the first frame is done
            line = proc.stderr.readline()
        assert line, 'the tool ended before its first frame'
        proc.send_signal(signal.SIGINT)
        rest = proc.communicate(timeout=60)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, rest
    assert 'stopping after the current batch' in rest
    r = json.loads(report.read_text())
    assert r['interrupted'] and 1 <= r['frames_segmented'] < 40
    masks = read_topic(out, '/cam/segmentation/mask')   # a readable, closed bag
    assert len(masks) == r['frames_segmented']
    assert [bm.stamp_ns(m.header) for _t, m in masks] == stamps[:len(masks)]


def test_compare_gates_on_agreement(recorded, tmp_path, capsys):
    bag, out = recorded['bags']['mcap'], recorded['runs']['mcap'][0]
    report = tmp_path / 'cmp.json'
    assert main(['compare', str(out), str(recorded['runs']['sqlite3'][0]),
                 '--json', str(report)]) == 0
    same = json.loads(report.read_text())
    front = same['topics']['/front/segmentation/mask']
    assert front['pixel_agreement'] == 1.0 and front['frames_compared'] == 3
    assert same['passed'] and front['per_class_iou']['road'] == 1.0
    # Another preprocessing (letterbox): masks differ a little.
    other, _ = _run(tmp_path, bag, 'letterbox', '--set', 'resize_policy=letterbox',
                    '--outputs', 'mask', 'label_info')
    assert main(['compare', str(out), str(other), '--json', str(report),
                 '--min-agreement', '0.9999']) == 1
    diff = json.loads(report.read_text())
    agreement = diff['topics']['/front/segmentation/mask']['pixel_agreement']
    assert 0.5 < agreement < 1.0 and not diff['passed'] and 'below' in diff['failure']
    assert main(['compare', str(out), str(other), '--min-agreement', '0.5']) == 0
    # Frames in one bag only.
    short = tmp_path / 'short'
    write_bag(short, 'mcap', CAMERAS, recorded['frames'][:2])
    fewer, _ = _run(tmp_path, short, 'fewer', '--outputs', 'mask')
    assert main(['compare', str(out), str(fewer), '--json', str(report)]) == 0
    r = json.loads(report.read_text())['topics']['/rear/segmentation/mask']
    assert (r['frames_compared'], r['only_in_a'], r['only_in_b']) == (2, 1, 0)
    capsys.readouterr()


# ------------------------------------------------------------------ eval / selfcheck
@pytest.fixture(scope='module')
def cityscapes_bag(tmp_path_factory) -> Tuple[Path, Path]:
    from shared_assets import cityscapes_root

    root = cityscapes_root()
    bag = tmp_path_factory.mktemp('cs') / 'cityscapes'
    write_bag(bag, 'sqlite3', [CameraSpec('/cs/image_raw', 'cs', 'bgr8', False)],
              cityscapes_frames(root, scale=1.0))
    return root, bag


def test_eval_on_a_bag_equals_eval_on_the_images(cityscapes_bag, tmp_path):
    from segformer_ros.tools.evaluate import main as eval_main

    root, bag = cityscapes_bag
    assert eval_main(['--params', PRESET, '--bag', str(bag), '--topic', '/cs/image_raw',
                      '--masks', str(tmp_path / 'bag'), '--quiet',
                      '--json', str(tmp_path / 'bag.json')]) == 0
    assert eval_main(['--params', PRESET, '--images', str(root / 'leftImg8bit'),
                      '--masks', str(tmp_path / 'img'), '--quiet']) == 0
    import cv2
    from_bag = sorted((tmp_path / 'bag').glob('*.png'))
    from_images = sorted((tmp_path / 'img').glob('*.png'))
    assert len(from_bag) == len(from_images) == 3
    for a, b in zip(from_bag, from_images):
        assert cv2.imread(str(a), cv2.IMREAD_UNCHANGED).tobytes() == \
            cv2.imread(str(b), cv2.IMREAD_UNCHANGED).tobytes()
    report = json.loads((tmp_path / 'bag.json').read_text())
    assert report['dataset'] == {'kind': 'bag', 'bag': str(bag), 'topic': '/cs/image_raw'}
    assert report['frames'] == 3


def test_selfcheck_on_a_bag(cityscapes_bag, tmp_path, capsys):
    from segformer_ros.tools.selfcheck import main as selfcheck_main

    _root, bag = cityscapes_bag
    report = tmp_path / 'sc.json'
    assert selfcheck_main(['--params', PRESET, '--bag', str(bag), '--topic', '/cs/image_raw',
                           '--num-threads-a', '1', '--num-threads-b', '2', '--allow-same',
                           '--quiet', '--json', str(report)]) == 0
    r = json.loads(report.read_text())
    assert r['agreement']['frames'] == 3 and r['agreement']['pixel_agreement'] == 1.0
    assert selfcheck_main(['--params', PRESET, '--bag', str(bag), '--quiet']) == 2
    assert '--bag needs --topic' in capsys.readouterr().err


def test_summary_definition_matches_the_msg_file():
    lines = [ln.split('#')[0].strip() for ln in
             (REPO / 'msg' / 'SegmentationSummary.msg').read_text().splitlines()]
    assert [ln for ln in lines if ln] == bm.SUMMARY_DEFINITION.strip().splitlines()
