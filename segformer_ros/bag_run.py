"""Segment a rosbag2 recording offline: the node's pipeline from bag to bag (no rclpy).

Reads with the pure-Python ``rosbags`` package (mcap and sqlite3 storage, as ``ros2 bag
record`` writes them on Humble, Jazzy and Kilted), converts each sensor_msgs/Image or
CompressedImage with the node's own converters (:mod:`.conversion`, :mod:`.compressed`),
runs :class:`~segformer_ros.pipeline.SegmentationPipeline` (or the GPU pipeline, chosen as
the node chooses it) and writes the node's outputs per camera (:mod:`.bag_messages`): each
output carries its input's header and is logged at its input's log time.

Frames of several cameras share one inference as in the node: consecutive frames of
different cameras (in log-time order) form a batch of at most ``max_batch_size``.
A message that cannot be read or decoded is counted and reported, never fatal; a bag that
cannot be opened or read, a missing topic or a type we cannot read is a
:class:`~segformer_ros.errors.SegformerRosError` naming what was expected.
"""

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from . import bag_messages as bm
from .errors import ImageFormatError, SegformerRosError

IMAGE_TYPES = (bm.IMAGE, bm.COMPRESSED_IMAGE)
OUTPUTS: Tuple[str, ...] = ('mask', 'overlay', 'summary', 'confidence', 'label_info',
                            'camera_info', 'drivable_grid')
STORAGES: Tuple[str, ...] = ('mcap', 'sqlite3')
_KEEP_REASONS = 5


@dataclass
class BagCamera:
    """One image topic of the bag and where its outputs go."""

    image_topic: str
    msgtype: str
    namespace: str
    camera_info_topic: str = ''

    def output_topic(self, output: str) -> str:
        """Absolute topic of one output, e.g. /front/segmentation/mask."""
        ns = self.namespace.strip('/')
        return f'/{ns}/segmentation/{output}' if ns else f'/segmentation/{output}'


@dataclass
class TopicCounts:
    """Per input topic: frames read, segmented, and bad messages with the first reasons."""

    read: int = 0
    segmented: int = 0
    bad: int = 0
    reasons: List[str] = field(default_factory=list)

    def add_bad(self, reason: str) -> None:
        """Count one bad message; keep the first few reasons."""
        self.bad += 1
        if len(self.reasons) < _KEEP_REASONS:
            self.reasons.append(reason)


def frame_view(msg: Any, msgtype: str, max_pixels: int) -> Any:
    """Convert an Image or CompressedImage to an ImageView with the node's converters."""
    from .compressed import decode_compressed
    from .conversion import image_msg_to_array

    if msgtype == bm.COMPRESSED_IMAGE:
        return decode_compressed(msg.format, np.asarray(msg.data, dtype=np.uint8), max_pixels)
    return image_msg_to_array(msg, max_pixels)


def default_namespace(image_topic: str) -> str:
    """Output namespace of an image topic: its parent (``/front/image_raw`` -> ``front``).

    A trailing ``compressed`` level is skipped (``/cam/image_raw/compressed`` -> ``cam``).
    """
    parts = [p for p in image_topic.split('/') if p]
    if parts and parts[-1] == 'compressed':
        parts = parts[:-1]
    return '/'.join(parts[:-1])


def open_reader(path: Path) -> Any:
    """Open a rosbag2 folder or file with rosbags, or raise a clear SegformerRosError."""
    from rosbags.rosbag2 import Reader, ReaderError

    if not path.exists():
        raise SegformerRosError(f"bag '{path}' does not exist; expected a rosbag2 folder (with "
                                f'metadata.yaml) or its .mcap / .db3 file')
    try:
        reader = Reader(path)
        reader.open()
    except ReaderError as exc:
        raise SegformerRosError(f"cannot read bag '{path}': {exc}; expected a rosbag2 "
                                f'recording (mcap or sqlite3 storage)') from None
    except Exception as exc:  # noqa: BLE001 - storage plugins raise their own types
        raise SegformerRosError(f"cannot read bag '{path}' ({type(exc).__name__}: {exc}); "
                                f'expected a complete rosbag2 recording (mcap or sqlite3); '
                                f'a truncated file can be repaired with `ros2 bag reindex`'
                                ) from None
    return reader


def plan_cameras(connections: Sequence[Any], image_topics: Sequence[str],
                 namespaces: Sequence[str] = (), info_topics: Sequence[str] = ()
                 ) -> List[BagCamera]:
    """Match the requested image topics with the bag's connections (clear errors)."""
    types: Dict[str, str] = {}
    for c in connections:
        types.setdefault(c.topic, c.msgtype)
    available = ', '.join(f'{t} ({m})' for t, m in sorted(types.items())) or 'none'
    if not image_topics:
        raise SegformerRosError(f'no image topic given; the bag has: {available}')
    if namespaces and len(namespaces) != len(image_topics):
        raise SegformerRosError(f'--namespaces has {len(namespaces)} entries for '
                                f'{len(image_topics)} image topics; give one per topic')
    if info_topics and len(info_topics) != len(image_topics):
        raise SegformerRosError(f'--camera-info-topics has {len(info_topics)} entries for '
                                f'{len(image_topics)} image topics; give one per topic')
    cameras: List[BagCamera] = []
    for i, topic in enumerate(image_topics):
        if topic not in types:
            raise SegformerRosError(f'topic {topic} is not in the bag; expected one of the '
                                    f'image topics it has: {available}')
        if types[topic] not in IMAGE_TYPES:
            raise SegformerRosError(f'topic {topic} has type {types[topic]}; expected '
                                    f'{" or ".join(IMAGE_TYPES)}')
        ns = namespaces[i] if namespaces else default_namespace(topic)
        info = info_topics[i] if info_topics else ''
        if not info:
            parent = default_namespace(topic)
            guess = f'/{parent}/camera_info' if parent else '/camera_info'
            info = guess if types.get(guess) == bm.CAMERA_INFO else ''
        elif types.get(info) != bm.CAMERA_INFO:
            raise SegformerRosError(f'camera info topic {info} is not a {bm.CAMERA_INFO} topic '
                                    f'of the bag; it has: {available}')
        cameras.append(BagCamera(topic, types[topic], ns, info))
    outputs = [c.output_topic('mask') for c in cameras]
    if len(set(outputs)) != len(outputs):
        raise SegformerRosError(f'two image topics would write the same outputs {outputs}; '
                                f'give --namespaces, one per topic')
    return cameras


class _Grid:
    """The drivable grid of one camera from a fixed mounting pose (ground_grid math)."""

    def __init__(self, settings: Any, config: Any) -> None:
        from .ground_grid import drivable_lut

        self.settings = settings
        self._lut = drivable_lut(config.classes.drivable_ids)
        self._roi = (tuple(tuple(map(float, v)) for v in config.summary.roi_polygon)
                     if settings.use_roi else None)
        self._pose = settings.mounting.camera_pose()
        self._key: Optional[tuple] = None
        self._projection: Any = None

    def compute(self, mask: np.ndarray, info: Any) -> np.ndarray:
        from .ground_grid import CameraModel, GroundProjection

        camera = CameraModel.from_camera_info(
            info.k, info.d, info.distortion_model, (int(info.width), int(info.height)),
            (int(mask.shape[1]), int(mask.shape[0])))
        if camera != self._key or self._projection is None:
            self._projection = GroundProjection(camera, self._pose, self.settings.grid,
                                                self._roi)
            self._key = camera
        return self._projection.occupancy(mask, self._lut)


@dataclass
class RunOptions:
    """What to write besides the masks."""

    outputs: Tuple[str, ...] = OUTPUTS
    copy_input: bool = False
    storage: str = ''           # '' = as the input
    max_input_pixels: int = 16 * 1024 * 1024


def input_storage(path: Path) -> str:
    """'mcap' or 'sqlite3': how the input bag is stored (by its files)."""
    if path.is_file():
        return 'mcap' if path.suffix == '.mcap' else 'sqlite3'
    return 'mcap' if any(path.glob('*.mcap')) else 'sqlite3'


class BagSegmenter:
    """Run one pipeline over one bag, writing the segmented bag (see the module docstring)."""

    def __init__(self, pipeline: Any, params: Dict[str, Any], options: RunOptions,
                 log: Callable[[str], None], stop: Optional[threading.Event] = None) -> None:
        self.pipeline = pipeline
        #: Set (e.g. by a SIGINT handler) to stop after the current batch; the bag is closed.
        self.stop = stop if stop is not None else threading.Event()
        self.params = params
        self.options = options
        self.log = log
        self.store = bm.make_typestore()
        self.counts: Dict[str, TopicCounts] = {}
        self.written: Dict[str, int] = {}
        self.grid_skipped: Dict[str, str] = {}
        self.interrupted = False
        #: Seconds per pipeline stage of every frame (the report's medians).
        self.times: List[Dict[str, float]] = []

    # ------------------------------------------------------------------ writing
    def _writer(self, output: Path, storage: str) -> Any:
        from rosbags.rosbag2 import StoragePlugin, Writer, WriterError

        if output.exists():
            raise SegformerRosError(f"output '{output}' exists; expected a new path (rosbag2 "
                                    f'writes a folder)')
        plugin = StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3
        try:
            writer = Writer(output, version=8, storage_plugin=plugin)
            writer.open()
        except WriterError as exc:
            raise SegformerRosError(f"cannot write bag '{output}': {exc}") from None
        return writer

    def _write(self, writer: Any, conns: Dict[str, Any], topic: str, msgtype: str,
               log_time: int, msg: Any) -> None:
        conn = conns.get(topic)
        if conn is None:
            conn = conns[topic] = writer.add_connection(topic, msgtype, typestore=self.store)
        writer.write(conn, log_time, self.store.serialize_cdr(msg, msgtype))
        self.written[topic] = self.written.get(topic, 0) + 1

    # ------------------------------------------------------------------ the run
    def run(self, input_path: Path, output: Path, cameras: Sequence[BagCamera], reader: Any,
            progress: Optional[Any] = None) -> None:
        """Segment every frame of ``cameras`` in ``reader``; the output bag is always closed."""
        from .ground_grid import grid_settings_from_params

        want = set(self.options.outputs)
        storage = self.options.storage or input_storage(input_path)
        config = self.pipeline.config
        settings = grid_settings_from_params(self.params)
        grids: Dict[str, _Grid] = {}
        for cam in cameras:
            self.counts[cam.image_topic] = TopicCounts()
            if 'drivable_grid' not in want:
                continue
            if not cam.camera_info_topic:
                self.grid_skipped[cam.image_topic] = 'no CameraInfo topic for this camera'
            elif settings.mounting is None:
                self.grid_skipped[cam.image_topic] = (
                    'no camera pose: set grid_camera_z > 0 (and grid_camera_x/y/roll/pitch/yaw)'
                    '; bags are segmented without TF')
            else:
                grids[cam.image_topic] = _Grid(settings, config)
        by_topic = {c.image_topic: c for c in cameras}
        info_of = {c.camera_info_topic: c for c in cameras if c.camera_info_topic}
        wanted = [c for c in reader.connections
                  if c.topic in by_topic or c.topic in info_of]
        latest_info: Dict[str, Any] = {}
        label_sent: Dict[str, bool] = {}
        writer = self._writer(output, storage)
        conns: Dict[str, Any] = {}
        batch: List[Tuple[BagCamera, Any, int, Any]] = []
        limit = int(self.params.get('max_batch_size', 0)) or len(cameras)

        def flush() -> None:
            if batch:
                self._segment(batch, writer, conns, want, latest_info, label_sent, grids)
                if progress is not None:
                    progress.step(len(batch))
                batch.clear()

        try:
            for conn, log_time, raw in reader.messages(connections=wanted):
                if self.stop.is_set():
                    self.interrupted = True
                    break
                if self.options.copy_input:
                    self._copy(writer, conns, conn, log_time, raw)
                if conn.topic in info_of and conn.topic not in by_topic:
                    try:
                        latest_info[info_of[conn.topic].image_topic] = \
                            self.store.deserialize_cdr(raw, conn.msgtype)
                    except Exception as exc:  # noqa: BLE001 - a corrupt message is counted
                        self.counts[info_of[conn.topic].image_topic].add_bad(
                            f'{conn.topic} at {log_time}: unreadable CameraInfo ({exc})')
                    continue
                cam = by_topic[conn.topic]
                counts = self.counts[cam.image_topic]
                counts.read += 1
                try:
                    msg = self.store.deserialize_cdr(raw, conn.msgtype)
                    view = self._view(msg, cam.msgtype)
                except ImageFormatError as exc:
                    counts.add_bad(f'{cam.image_topic} at {log_time}: {exc}')
                    if progress is not None:
                        progress.step()
                    continue
                except Exception as exc:  # noqa: BLE001 - corrupt CDR raises many types
                    counts.add_bad(f'{cam.image_topic} at {log_time}: unreadable message '
                                   f'({type(exc).__name__}: {exc})')
                    if progress is not None:
                        progress.step()
                    continue
                if any(b[0] is cam for b in batch) or len(batch) >= limit:
                    flush()
                batch.append((cam, msg, log_time, view))
                if len(batch) >= limit:
                    flush()
            if not self.stop.is_set():
                flush()
        except KeyboardInterrupt:
            # Ctrl-C: what was written stays a valid bag (closed below).
            self.interrupted = True
        except SegformerRosError:
            raise
        except Exception as exc:  # noqa: BLE001 - storage errors mid-file
            raise SegformerRosError(
                f"reading '{input_path}' failed after {sum(c.read for c in self.counts.values())}"
                f' frames ({type(exc).__name__}: {exc}); expected a complete rosbag2 '
                f'recording; the frames before it were written to {output}') from None
        finally:
            writer.close()

    def _copy(self, writer: Any, conns: Dict[str, Any], conn: Any, log_time: int,
              raw: bytes) -> None:
        out = conns.get(conn.topic)
        if out is None:
            out = conns[conn.topic] = writer.add_connection(conn.topic, conn.msgtype,
                                                            typestore=self.store)
        writer.write(out, log_time, raw)
        self.written[conn.topic] = self.written.get(conn.topic, 0) + 1

    def _view(self, msg: Any, msgtype: str) -> Any:
        return frame_view(msg, msgtype, int(self.options.max_input_pixels))

    def _segment(self, batch: Sequence[Tuple[BagCamera, Any, int, Any]], writer: Any,
                 conns: Dict[str, Any], want: set, latest_info: Dict[str, Any],
                 label_sent: Dict[str, bool], grids: Dict[str, Any]) -> None:
        from .ros_messages import OVERLAY_ENCODINGS

        pipeline = self.pipeline
        results = pipeline.submit_batch(
            [(view.array, view.channel_order) for _, _, _, view in batch],
            want_overlay='overlay' in want, want_summary='summary' in want,
            overlay_alpha=float(self.params.get('overlay_alpha', 0.5)),
            want_confidence=pipeline.has_logits and 'confidence' in want,
            batch_limit=int(self.params.get('max_batch_size', 0))).collect()
        names = pipeline.config.classes.names
        for (cam, msg, log_time, _), result in zip(batch, results):
            header = msg.header
            if 'label_info' in want and not label_sent.get(cam.image_topic):
                self._write(writer, conns, cam.output_topic('label_info'), bm.LABEL_INFO,
                            log_time, bm.label_info(self.store, names, header))
                label_sent[cam.image_topic] = True
            self._write(writer, conns, cam.output_topic('mask'), bm.IMAGE, log_time,
                        bm.image(self.store, result.mask, 'mono8', header))
            info = latest_info.get(cam.image_topic)
            h, w = result.mask.shape[:2]
            if 'camera_info' in want and info is not None:
                self._write(writer, conns, cam.output_topic('camera_info'), bm.CAMERA_INFO,
                            log_time, bm.camera_info(self.store, info, header, w, h))
            grid = grids.get(cam.image_topic)
            if grid is not None and info is not None:
                self._write(writer, conns, cam.output_topic('drivable_grid'), bm.OCCUPANCY_GRID,
                            log_time, bm.occupancy_grid(self.store,
                                                        grid.compute(result.mask, info),
                                                        grid.settings, header))
            if result.overlay is not None:
                self._write(writer, conns, cam.output_topic('overlay'), bm.IMAGE, log_time,
                            bm.image(self.store, result.overlay,
                                     OVERLAY_ENCODINGS[result.overlay_channel_order], header))
            if result.summary is not None:
                self._write(writer, conns, cam.output_topic('summary'), bm.SUMMARY, log_time,
                            bm.summary(self.store, result.summary, header))
            if result.confidence is not None:
                self._write(writer, conns, cam.output_topic('confidence'), bm.IMAGE, log_time,
                            bm.image(self.store, result.confidence, 'mono8', header))
            self.counts[cam.image_topic].segmented += 1
            self.times.append(result.times)


def bag_frame_total(reader: Any, cameras: Sequence[BagCamera]) -> int:
    """Messages on the cameras' image topics (for the progress ETA)."""
    topics = {c.image_topic for c in cameras}
    return sum(int(c.msgcount) for c in reader.connections if c.topic in topics)


def report(input_path: Path, output: Path, segmenter: BagSegmenter,
           cameras: Sequence[BagCamera], started: float, extra: Dict[str, Any]) -> Dict[str, Any]:
    """Return the JSON-ready summary of one run."""
    elapsed = time.monotonic() - started
    frames = sum(c.segmented for c in segmenter.counts.values())
    return {
        'input': str(input_path),
        'output': str(output),
        'interrupted': segmenter.interrupted,
        'cameras': [{'image_topic': c.image_topic, 'type': c.msgtype,
                     'namespace': c.namespace, 'camera_info_topic': c.camera_info_topic,
                     'mask_topic': c.output_topic('mask')} for c in cameras],
        'topics': {t: {'read': c.read, 'segmented': c.segmented, 'bad_messages': c.bad,
                       'bad_reasons': c.reasons} for t, c in segmenter.counts.items()},
        'frames_segmented': frames,
        'bad_messages': sum(c.bad for c in segmenter.counts.values()),
        'written': dict(sorted(segmenter.written.items())),
        'drivable_grid_skipped': segmenter.grid_skipped,
        'seconds': round(elapsed, 3),
        'frames_per_second': round(frames / elapsed, 3) if elapsed > 0 else None,
        **extra,
    }


def bag_frame_count(path: Path, topic: str) -> int:
    """Messages on ``topic`` of the bag (the tools' progress total)."""
    reader = open_reader(path)
    try:
        return sum(int(c.msgcount) for c in reader.connections if c.topic == topic)
    finally:
        reader.close()


def iter_bag_frames(path: Path, topic: str, max_frames: Optional[int] = None,
                    on_bad: Optional[Callable[[str], None]] = None,
                    max_pixels: int = 16 * 1024 * 1024) -> Iterator[Tuple[str, Any]]:
    """(name, ImageView) of each readable frame of one image topic, in log-time order.

    The name is ``<stamp sec>_<nanosec>`` of the header (unique per camera frame). Messages
    that cannot be read or decoded go to ``on_bad`` with the reason and are skipped; a
    missing topic, a type we cannot read or an unreadable bag raise SegformerRosError.
    """
    store = bm.make_typestore()
    reader = open_reader(path)
    try:
        cam = plan_cameras(reader.connections, [topic])[0]
        conns = [c for c in reader.connections if c.topic == topic]
        count = 0
        for _conn, log_time, raw in reader.messages(connections=conns):
            if max_frames is not None and count >= max_frames:
                return
            try:
                msg = store.deserialize_cdr(raw, cam.msgtype)
                view = frame_view(msg, cam.msgtype, max_pixels)
            except Exception as exc:  # noqa: BLE001 - bad input is reported, not fatal
                if on_bad is not None:
                    on_bad(f'{topic} at {log_time}: {exc}')
                continue
            count += 1
            yield f'{int(msg.header.stamp.sec)}_{int(msg.header.stamp.nanosec):09d}', view
    finally:
        reader.close()


def build_bag_pipeline(params: Dict[str, Any], cameras: int, log: Callable[[str], None],
                       warmup: Optional[int] = None) -> Tuple[Any, Any]:
    """Backend and pipeline as the node builds them for ``cameras`` cameras."""
    from .backends.factory import backend_options_from_params, create_backend
    from .gpu_segmentation import select_pipeline
    from .parameters import pipeline_config_from_params

    config = pipeline_config_from_params(params)
    limit = int(params.get('max_batch_size', 0))
    max_batch = min(cameras, limit) if limit else cameras
    options = {**backend_options_from_params(params), 'input_hw': config.input_size,
               'max_batch': max(1, max_batch)}
    backend = create_backend(params['backend'], params['model_path'], logger=log, **options)
    try:
        backend.configure()
        pipeline = select_pipeline(params['pipeline'], backend, config,
                                   params['onnxruntime_provider'], log, max_batch=max_batch,
                                   frames_per_submission=cameras)
        backend.warmup(int(params['warmup_iterations']) if warmup is None else warmup,
                       pipeline.input_hw)
    except BaseException:
        backend.release()
        raise
    return backend, pipeline


@dataclass
class BagJob:
    """One recording to segment, with everything a worker needs (plain data, picklable)."""

    input: str
    output: str
    params: Dict[str, Any]
    image_topics: List[str]
    namespaces: List[str] = field(default_factory=list)
    camera_info_topics: List[str] = field(default_factory=list)
    outputs: Tuple[str, ...] = OUTPUTS
    copy_input: bool = False
    storage: str = ''
    warmup: Optional[int] = None


def segment_bag(job: BagJob, log: Callable[[str], None],
                progress_factory: Optional[Callable[[int], Any]] = None,
                stop: Optional[threading.Event] = None) -> Dict[str, Any]:
    """Segment one bag as ``job`` says; return the report (SegformerRosError when it cannot).

    ``progress_factory(total)`` returns an object with ``step(n)`` and ``close()`` (the
    tools' progress line); ``stop`` ends the run after the current batch (Ctrl-C).
    """
    from .stats import stage_medians

    started = time.monotonic()
    input_path, output = Path(job.input), Path(job.output)
    reader = open_reader(input_path)
    try:
        cameras = plan_cameras(reader.connections, job.image_topics, job.namespaces,
                               job.camera_info_topics)
        backend, pipeline = build_bag_pipeline(job.params, len(cameras), log, job.warmup)
        segmenter = BagSegmenter(pipeline, job.params, RunOptions(
            outputs=tuple(dict.fromkeys(('mask', *job.outputs))), copy_input=job.copy_input,
            storage=job.storage, max_input_pixels=int(job.params['max_input_pixels'])),
            log, stop)
        progress = progress_factory(bag_frame_total(reader, cameras)) \
            if progress_factory else None
        try:
            segmenter.run(input_path, output, cameras, reader, progress)
        finally:
            if progress is not None:
                progress.close()
            description = backend.describe()
            if hasattr(pipeline, 'release'):
                pipeline.release()
            backend.release()
    finally:
        reader.close()
    return report(input_path, output, segmenter, cameras, started, {
        'model_path': str(job.params['model_path']), 'backend': description,
        'stage_ms_median': stage_medians(segmenter.times)})
