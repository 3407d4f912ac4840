"""Write rosbag2 recordings with rosbags for the bag tool's tests (as ros2 bag record would).

Frames come from the bundled clip (assets/) or the shared Cityscapes frames; each camera
gets sensor_msgs/Image (any encoding the node accepts) or CompressedImage (JPEG / PNG),
plus sensor_msgs/CameraInfo when asked, stamped and logged at distinct times.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from segformer_ros import bag_messages as bm

T0_NS = 1_700_000_000_000_000_000


@dataclass
class CameraSpec:
    """One recorded camera."""

    topic: str                    # e.g. /front/image_raw or /rear/image_raw/compressed
    frame_id: str
    encoding: str = 'rgb8'        # Image encoding, or 'jpeg' / 'png' for CompressedImage
    camera_info: bool = True
    offset_ns: int = 0            # stamp offset against the other cameras

    @property
    def compressed(self) -> bool:
        return self.encoding in ('jpeg', 'png')


def clip_frames(count: int, step: int = 20) -> List[np.ndarray]:
    """``count`` BGR frames of the bundled driving clip, ``step`` frames apart."""
    import cv2

    from shared_assets import BUNDLED_VIDEO

    cap = cv2.VideoCapture(str(BUNDLED_VIDEO))
    frames: List[np.ndarray] = []
    index = 0
    try:
        while len(frames) < count:
            ok, frame = cap.read()
            if not ok:
                break
            if index % step == 0:
                frames.append(frame)
            index += 1
    finally:
        cap.release()
    assert len(frames) == count, f'clip has fewer than {count * step} frames'
    return frames


def cityscapes_frames(root: Path, scale: float = 0.5) -> List[np.ndarray]:
    """Read the shared Cityscapes frames (BGR), resized by ``scale`` (smaller bags)."""
    import cv2

    frames = []
    for image in sorted((root / 'leftImg8bit').glob('*_leftImg8bit.png')):
        bgr = cv2.imread(str(image), cv2.IMREAD_COLOR)
        frames.append(cv2.resize(bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA))
    return frames


def encode_image(store: Any, bgr: np.ndarray, encoding: str, header: Any) -> Any:
    """Build an Image holding ``bgr`` in ``encoding`` (rgb8, bgr8, rgba8, bgra8, mono8)."""
    import cv2

    arrays = {'rgb8': lambda: cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), 'bgr8': lambda: bgr,
              'rgba8': lambda: cv2.cvtColor(bgr, cv2.COLOR_BGR2RGBA),
              'bgra8': lambda: cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA),
              'mono8': lambda: cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)}
    if encoding in arrays:
        return bm.image(store, arrays[encoding](), encoding, header)
    raise ValueError(f'encode_image: unsupported test encoding {encoding}')


def compressed(store: Any, bgr: np.ndarray, fmt: str, header: Any) -> Any:
    """Build a CompressedImage of ``bgr`` (JPEG quality 95 or PNG)."""
    import cv2

    ok, data = cv2.imencode('.jpg' if fmt == 'jpeg' else '.png', bgr,
                            [cv2.IMWRITE_JPEG_QUALITY, 95] if fmt == 'jpeg' else [])
    assert ok
    return store.types[bm.COMPRESSED_IMAGE](header=bm.copy_header(store, header),
                                            format=f'bgr8; {fmt} compressed bgr8',
                                            data=np.asarray(data, dtype=np.uint8).ravel())


def camera_info(store: Any, width: int, height: int, header: Any) -> Any:
    """Build a pinhole CameraInfo for a width x height camera (focal length = width)."""
    f = float(width)
    t = store.types
    roi_type = t['sensor_msgs/msg/RegionOfInterest']
    roi = roi_type(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    return t[bm.CAMERA_INFO](
        header=bm.copy_header(store, header), height=height, width=width,
        distortion_model='plumb_bob', d=np.zeros(5),
        k=np.array([f, 0, width / 2, 0, f, height / 2, 0, 0, 1], dtype=np.float64),
        r=np.eye(3).ravel(),
        p=np.array([f, 0, width / 2, 0, 0, f, height / 2, 0, 0, 0, 1, 0], dtype=np.float64),
        binning_x=0, binning_y=0, roi=roi)


def header(store: Any, stamp_ns: int, frame_id: str) -> Any:
    """Build a std_msgs/Header."""
    t = store.types
    sec, nsec = divmod(stamp_ns, 1_000_000_000)
    time_type = t['builtin_interfaces/msg/Time']
    return t['std_msgs/msg/Header'](stamp=time_type(sec=sec, nanosec=nsec), frame_id=frame_id)


def write_bag(path: Path, storage: str, cameras: Sequence[CameraSpec],
              frames: Sequence[np.ndarray], period_ns: int = 100_000_000,
              extra: Optional[Dict[str, List[bytes]]] = None,
              version: int = 8) -> Dict[str, List[int]]:
    """Record ``frames`` on every camera; return the stamps (ns) written per image topic.

    Log times are the stamps plus 5 ms (the recorder sees a message after its capture).
    ``extra`` adds raw, already serialized messages: {topic: [cdr bytes]} as Image.
    ``version``: rosbag2 metadata version (rosbags writes 8 or 9).
    """
    from rosbags.rosbag2 import StoragePlugin, Writer

    store = bm.make_typestore()
    plugin = StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3
    writer = Writer(path, version=version, storage_plugin=plugin)
    writer.open()
    stamps: Dict[str, List[int]] = {c.topic: [] for c in cameras}
    try:
        conns = {}
        for cam in cameras:
            msgtype = bm.COMPRESSED_IMAGE if cam.compressed else bm.IMAGE
            conns[cam.topic] = writer.add_connection(cam.topic, msgtype, typestore=store)
            if cam.camera_info:
                info_topic = cam.topic.rsplit('/', 2 if cam.compressed else 1)[0] + \
                    '/camera_info'
                conns[info_topic] = writer.add_connection(info_topic, bm.CAMERA_INFO,
                                                          typestore=store)
        for i, frame in enumerate(frames):
            for cam in cameras:
                stamp = T0_NS + i * period_ns + cam.offset_ns
                hdr = header(store, stamp, cam.frame_id)
                if cam.camera_info:
                    info_topic = cam.topic.rsplit('/', 2 if cam.compressed else 1)[0] + \
                        '/camera_info'
                    writer.write(conns[info_topic], stamp + 4_000_000, store.serialize_cdr(
                        camera_info(store, frame.shape[1], frame.shape[0], hdr),
                        bm.CAMERA_INFO))
                if cam.compressed:
                    msg, msgtype = compressed(store, frame, cam.encoding, hdr), bm.COMPRESSED_IMAGE
                else:
                    msg, msgtype = encode_image(store, frame, cam.encoding, hdr), bm.IMAGE
                writer.write(conns[cam.topic], stamp + 5_000_000,
                             store.serialize_cdr(msg, msgtype))
                stamps[cam.topic].append(stamp)
        for topic, payloads in (extra or {}).items():
            conn = conns.get(topic) or writer.add_connection(topic, bm.IMAGE, typestore=store)
            for j, raw in enumerate(payloads):
                writer.write(conn, T0_NS + len(frames) * period_ns + j, raw)
    finally:
        writer.close()
    return stamps


def read_topic(path: Path, topic: str) -> List[Any]:
    """Return (log time, message) of one topic, deserialized with the tool's typestore."""
    from rosbags.rosbag2 import Reader

    store = bm.make_typestore()
    with Reader(path) as reader:
        conns = [c for c in reader.connections if c.topic == topic]
        return [(t, store.deserialize_cdr(raw, c.msgtype))
                for c, t, raw in reader.messages(connections=conns)]


def topics(path: Path) -> Dict[str, str]:
    """Return topic -> type of a bag."""
    from rosbags.rosbag2 import Reader

    with Reader(path) as reader:
        return {c.topic: c.msgtype for c in reader.connections}
