"""The segformer lifecycle node: wires ROS topics to the segmentation pipeline.

Nothing here computes: conversion, preprocessing, inference, postprocessing and the
summary live in ROS-free modules; this file creates and releases ROS resources in the
lifecycle callbacks, hands frames to the frame path's threads and publishes results.

Threads: the executor(s) serve lifecycle services, parameters, camera_info and the
diagnostics timer; no executor touches camera images: the frame path's intake thread
takes the newest one from each DDS reader (depth 1 unless input_queue_depth says otherwise)
when it is ready for it (frame_reader.py), so frames it would drop cost no Python time
(where the rclpy internals for that are missing, executor callbacks fill keep-latest slots
instead: frame_reader_public.py);
inference and the postprocess + publish of the previous frame overlap on two more threads
(frame_path.py), and the node answers services while frames are processed.
"""

import threading
import time
from typing import (Any, Callable, ContextManager, Dict, List, Optional, Sequence, Tuple,
                    Union)

from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.lifecycle.node import LifecycleNodeMixin
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSCompatibility, QoSProfile,
                       ReliabilityPolicy, qos_check_compatible)
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import String

from .backends.base import Backend
from .channels import ChannelSpec, channels_from_lists
from .errors import ImageFormatError, SegformerRosError
from .executors import FramePathCallbackGroup
from .frame_path import FramePath
from .frame_path_plan import FramePathPlan, plan_frame_path
from .frame_reader import FrameReader, PulledCallbackGroup
from .frame_reader_public import CallbackFrameReader
from .input_watch import CameraInput, InputWatch, PathProgress
from .label_info_msg import (JSON_FALLBACK_OUTPUT, LABEL_INFO_OUTPUT, label_info_json_message,
                             label_info_message, label_info_type, missing_vision_msgs_hint)
from .grid_output import drivable_grid_output
from .memory import NODE_TRIM_PERIOD_S, HeapTrimmer
from .node_parameters import declare_all, read_all, validate_parameter
from .parameters import PARAMETER_NAMES, pipeline_config_from_params, spec
from .rclpy_internals import (InternalsCheck, check_frame_reader_internals,
                              lifecycle_state_label, parameter_overrides)
from .ros_compat import wrap_change_state_service
from .ros_messages import (OVERLAY_ENCODINGS, camera_info_message, diagnostics_message,
                           image_message, summary_message)
from .output_size import MAX_SIDE, size_text
from .stats import RateLimiter, StageStats, stamp_age_s
from .warmup import warm_up_pipeline

STAGES: Tuple[str, ...] = ('input_age', 'convert', 'preprocess', 'inference', 'postprocess',
                           'overlay', 'summary', 'publish')

# Longest error text logged per frame problem (the supported-encodings list fits).
_MAX_LOG_CHARS = 1000

# Camera input: newest frame only (input_queue_depth raises it for the image readers). A
# slow model must drop stale frames, not queue them.
SENSOR_QOS = QoSProfile(reliability=ReliabilityPolicy.BEST_EFFORT,
                        history=HistoryPolicy.KEEP_LAST, depth=1,
                        durability=DurabilityPolicy.VOLATILE)
# Outputs: planners usually subscribe reliable; best-effort subscribers still match.
OUTPUT_QOS = QoSProfile(reliability=ReliabilityPolicy.RELIABLE,
                        history=HistoryPolicy.KEEP_LAST, depth=1,
                        durability=DurabilityPolicy.VOLATILE)


# Label set: published once per configure and kept for late joiners (Nav2's
# semantic segmentation layer reads class names this way, from vision_msgs/LabelInfo).
LATCHED_QOS = QoSProfile(reliability=ReliabilityPolicy.RELIABLE,
                         history=HistoryPolicy.KEEP_LAST, depth=1,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)


class _Channel:
    """ROS entities of one camera (created on configure/activate, destroyed on cleanup)."""

    def __init__(self, spec: ChannelSpec) -> None:
        self.spec = spec
        self.subscription: Optional[Any] = None
        self.mask_pub: Optional[Any] = None
        self.overlay_pub: Optional[Any] = None
        self.summary_pub: Optional[Any] = None
        self.confidence_pub: Optional[Any] = None
        self.label_info_pub: Optional[Any] = None
        self.camera_info_pub: Optional[Any] = None
        self.camera_info_sub: Optional[Any] = None
        self.latest_camera_info: Optional[CameraInfo] = None   # set by the executor thread
        # vision_msgs/LabelInfo goes out once per configure, with the first frame's header
        # (the camera's frame_id); the JSON fallback at configure.
        self.label_info_sent = False
        self.grid: Optional[Any] = None   # DrivableGridOutput (owns its lifecycle publisher)

    def lifecycle_publishers(self) -> List[Any]:
        """Return the publishers that follow the lifecycle (silent unless active)."""
        return [p for p in (self.mask_pub, self.overlay_pub, self.summary_pub,
                            self.confidence_pub, self.camera_info_pub) if p is not None]


# The frame reader: pulled from DDS, or the public-API fallback (rclpy_internals.py).
_Reader = Union[FrameReader, CallbackFrameReader]

# One camera frame on the frame path: its channel, the message (header; it owns the
# data the view reads) and the converted view.
_Frame = Tuple[_Channel, Any, Any]


class SegformerNode(LifecycleNode):
    """Lifecycle node running semantic segmentation on camera images."""

    def __init__(self, node_name: str = 'segformer', **kwargs: Any) -> None:
        # What LifecycleNode.__init__ does, but with the lifecycle services in their own
        # reentrant group: get_state answers while a long configure (model load, TensorRT
        # engine build) is still running on another executor thread.
        Node.__init__(self, node_name, **kwargs)
        LifecycleNodeMixin.__init__(self, callback_group=ReentrantCallbackGroup())
        # Humble/Jazzy: an invalid change_state request must not end spin (ros_compat).
        wrap_change_state_service(self)
        self._backend: Optional[Backend] = None
        self._pipeline: Optional[Any] = None          # SegmentationPipeline
        self._params: Dict[str, Any] = {}
        self._channels: List[_Channel] = []
        self._slots: Optional[_Reader] = None
        # The fast frame reader's rclpy internals, checked at configure (rclpy_internals.py);
        # the fallback's WARN is logged once per node.
        self._reader_check: Optional[InternalsCheck] = None
        self._said_reader_fallback = False
        self._frame_path: Optional[FramePath] = None
        self._stats: Optional[StageStats] = None
        self._diag_pub: Optional[Any] = None
        self._diag_timer: Optional[Any] = None
        # The diagnostics timer runs on an executor thread while a transition (another
        # thread) may be destroying its publisher: publishing on a publisher whose
        # destruction was requested raises InvalidHandle, which would end the spin.
        self._diag_lock = threading.Lock()
        self._build_progress: Optional[Tuple[str, float]] = None
        self._image_group: Optional[FramePathCallbackGroup] = None
        self._log_limiter = RateLimiter(period_s=5.0)
        # Input and stall watchdog (input_watch.py); warnings repeat at most every 30 s.
        self._input_watch: Optional[InputWatch] = None
        self._image_qos: Optional[QoSProfile] = None
        self._warn_limiter = RateLimiter(period_s=30.0)
        # match_camera_info: (width, height) of the last CameraInfo on that topic.
        self._match_sub: Optional[Any] = None
        self._match_size: Optional[Tuple[int, int]] = None
        self._said_no_confidence = False
        self.add_on_set_parameters_callback(self._on_set_parameters)
        for problem in declare_all(self):
            self.get_logger().error(problem)

    # ------------------------------------------------------------------ lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Validate parameters, load and warm up the model, create publishers."""
        try:
            self._configure_resources()
        except SegformerRosError as exc:
            self.get_logger().error(f'configure failed: {exc}')
            self._release_resources()
            return TransitionCallbackReturn.FAILURE
        except Exception as exc:  # noqa: BLE001 - a transition must never raise
            self.get_logger().error(
                f'configure failed unexpectedly ({type(exc).__name__}: {exc}); check '
                f'model_path and backend parameters')
            self._release_resources()
            return TransitionCallbackReturn.FAILURE
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Subscribe to the camera topics and start the inference worker."""
        try:
            self._start_processing()
        except Exception as exc:  # noqa: BLE001
            self.get_logger().error(f'activate failed: {type(exc).__name__}: {exc}')
            self._stop_processing()
            return TransitionCallbackReturn.FAILURE
        routes = [f'{c.subscription.topic_name} -> {c.mask_pub.topic_name}'
                  for c in self._channels]  # resolved names: remaps and namespace applied
        self.get_logger().info(f'active: segmenting {", ".join(routes)}')
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Unsubscribe and stop the worker; publishers stay but fall silent."""
        topics = [c.subscription.topic_name for c in self._channels if c.subscription]
        self._stop_processing()
        self.get_logger().info(f'deactivated: stopped segmenting {", ".join(topics) or "-"}; '
                               f'the model stays loaded (activate resumes, cleanup releases it)')
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Release the model, publishers and timers."""
        model = self._params.get('model_path', '')
        self._stop_processing()
        self._release_resources()
        self.get_logger().info(f'cleaned up: released the model {model} and the publishers; '
                               f'configure loads it again (with the current parameters)')
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Release everything, whatever state we were in."""
        self._stop_processing()
        self._release_resources()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Release everything and go back to unconfigured."""
        self.get_logger().error(f'error while in state {state.label}: releasing resources')
        self._stop_processing()
        self._release_resources()
        return TransitionCallbackReturn.SUCCESS

    # --------------------------------------------------------------- configure
    def _configure_resources(self) -> None:
        from .backends.factory import backend_options_from_params, create_backend
        from .assets import resolve_model_path
        from .default_model import with_default_model
        from .gpu_segmentation import select_pipeline
        from .model_metadata import check_normalization
        from .nvinfer_config import apply_nvinfer_config

        # nvinfer_config: the DeepStream file's values under the parameters given to us.
        params, nvinfer = apply_nvinfer_config(read_all(self), parameter_overrides(self))
        if nvinfer is not None:
            self.get_logger().info(
                f'nvinfer_config {params["nvinfer_config"]}: mapped {dict(nvinfer.mapped)}; '
                f'not mapped {dict(nvinfer.unmapped)}')
        params, default_model_warning = with_default_model(params)
        if default_model_warning:
            self.get_logger().warn(default_model_warning)
        config = pipeline_config_from_params(params)
        # A mean/std the model's own metadata contradicts fails here (masks would be wrong).
        normalization_warning = check_normalization(resolve_model_path(params['model_path']),
                                                    config.preprocess)
        if normalization_warning:
            self.get_logger().warn(normalization_warning)
        specs = channels_from_lists(params['cameras'], params['camera_topics'],
                                    params['camera_namespaces'], params['camera_transports'],
                                    params['input_transport'], params['camera_info_topics'])
        if params['match_camera_info'] and len(specs) > 1:
            raise SegformerRosError(
                f'match_camera_info sizes one camera\'s mask, got {len(specs)} cameras; leave '
                f'it empty and set output_resolution: WIDTHxHEIGHT instead')
        self._params = params
        self._reader_check = self._check_frame_reader()
        batch_limit = int(params.get('max_batch_size', 0))
        max_batch = min(len(specs), batch_limit) if batch_limit else len(specs)
        # /diagnostics first: a TensorRT engine build can take minutes, and the timer (its
        # own callback group, another executor thread) reports its progress meanwhile.
        self._build_progress = None
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self._diag_timer = self.create_timer(
            float(params['diagnostics_period']), self._publish_diagnostics,
            callback_group=MutuallyExclusiveCallbackGroup())
        options = {**backend_options_from_params(params), 'input_hw': config.input_size,
                   'max_batch': max(1, max_batch)}
        self._backend = create_backend(
            params['backend'], params['model_path'], logger=self.get_logger().info,
            progress=self._on_build_progress, **options)
        info = self._backend.configure()
        self._pipeline = select_pipeline(
            params['pipeline'], self._backend, config, params['onnxruntime_provider'],
            self.get_logger().info, max_batch=max_batch,
            frames_per_submission=len(specs), in_flight=max(2, params['frames_in_flight']))
        self._backend.warmup(params['warmup_iterations'], self._pipeline.input_hw)
        # One frame through the whole pipeline: a fault around the model fails here.
        warm_up_pipeline(self._pipeline, len(specs), int(params.get('max_batch_size', 0)))
        self._stats = StageStats(STAGES)
        self._channels = [_Channel(s) for s in specs]
        for ch in self._channels:
            ch.mask_pub = self.create_lifecycle_publisher(
                Image, ch.spec.output_topic('mask'), OUTPUT_QOS)
            ch.overlay_pub = self.create_lifecycle_publisher(
                Image, ch.spec.output_topic('overlay'), OUTPUT_QOS)
            ch.summary_pub = self.create_lifecycle_publisher(
                _summary_type(), ch.spec.output_topic('summary'), OUTPUT_QOS)
            if self._pipeline.has_logits:
                # A class-id model has no scores: no topic that would never carry a message.
                ch.confidence_pub = self.create_lifecycle_publisher(
                    Image, ch.spec.output_topic('confidence'), OUTPUT_QOS)
            if ch.spec.camera_info_topic:
                ch.camera_info_pub = self.create_lifecycle_publisher(
                    CameraInfo, ch.spec.output_topic('camera_info'), OUTPUT_QOS)
            ch.grid = drivable_grid_output(self, ch.spec, params, config, OUTPUT_QOS,
                                           self._log_error)
            ch.label_info_pub = self._create_label_info_publisher(ch, config)
        if not self._pipeline.has_logits and not self._said_no_confidence:
            self._said_no_confidence = True
            self.get_logger().info(
                f'{self._channels[0].spec.output_topic("confidence")} is not advertised: the '
                f'model outputs class ids, not scores (a logits model publishes it)')
        self.get_logger().info(
            f'configured: {self._backend.describe()}, {type(self._pipeline).__name__}, '
            f'model {params["model_path"]} '
            f'({info.output_kind.value}, input {self._pipeline.input_hw}), cameras '
            f'{[c.spec.input_topic for c in self._channels]}')

    def _check_frame_reader(self) -> InternalsCheck:
        """Check the fast frame reader's rclpy internals; WARN once when falling back."""
        try:
            check = check_frame_reader_internals(self.context)
        except ValueError as exc:   # an invalid $SEGFORMER_ROS_FRAME_READER
            raise SegformerRosError(str(exc)) from exc
        if not check.usable and not self._said_reader_fallback:
            self._said_reader_fallback = True
            self.get_logger().warning(check.fallback_warning())
        return check

    def _release_resources(self) -> None:
        for ch in self._channels:
            for pub in ch.lifecycle_publishers():
                self.destroy_lifecycle_publisher(pub)
            if ch.label_info_pub is not None:
                self.destroy_publisher(ch.label_info_pub)
            if ch.grid is not None:
                ch.grid.release()
        self._channels = []
        with self._diag_lock:
            if self._diag_timer is not None:
                self.destroy_timer(self._diag_timer)
                self._diag_timer = None
            if self._diag_pub is not None:
                self.destroy_publisher(self._diag_pub)
                self._diag_pub = None
        if self._pipeline is not None and hasattr(self._pipeline, 'release'):
            self._pipeline.release()   # the GPU pipeline's device and mapped buffers
        self._pipeline = None
        if self._backend is not None:
            try:
                self._backend.release()
            except Exception as exc:  # noqa: BLE001 - cleanup must finish
                self.get_logger().warn(f'backend release failed: {exc}')
            self._backend = None
        self._stats = None
        self._match_size = None

    def _create_label_info_publisher(self, ch: _Channel, config: Any) -> Any:
        """Latched vision_msgs/LabelInfo publisher; where that type is missing, JSON now."""
        msg_type = label_info_type()
        if msg_type is not None:
            return self.create_publisher(msg_type, ch.spec.output_topic(LABEL_INFO_OUTPUT),
                                         LATCHED_QOS)
        topic = ch.spec.output_topic(JSON_FALLBACK_OUTPUT)
        if ch is self._channels[0]:
            self.get_logger().warning(missing_vision_msgs_hint(
                ch.spec.output_topic(LABEL_INFO_OUTPUT), topic))
        pub = self.create_publisher(String, topic, LATCHED_QOS)
        pub.publish(label_info_json_message(config.classes.names, config.classes.colors,
                                            config.classes.drivable_ids))
        ch.label_info_sent = True
        return pub

    # -------------------------------------------------------------- activate
    def _start_processing(self) -> None:
        # Camera images: no executor takes them; the worker pulls the newest one (the oldest
        # kept, at input_queue_depth > 1) from the reader when it is ready for it
        # (frame_reader.py says why, with numbers). Fallback: rclpy_internals.py.
        check = self._reader_check
        fast = check is not None and check.usable
        pulled = PulledCallbackGroup()
        image_qos = QoSProfile(reliability=SENSOR_QOS.reliability, history=SENSOR_QOS.history,
                               depth=int(self._params['input_queue_depth']),
                               durability=SENSOR_QOS.durability)
        self._image_qos = image_qos
        # camera_info (small): node_main's frame-path executor (executors.py).
        self._image_group = FramePathCallbackGroup()
        # The public-API fallback: executor callbacks into keep-latest slots.
        fallback = None if fast else CallbackFrameReader(len(self._channels), image_qos.depth)
        for index, ch in enumerate(self._channels):
            msg_type = CompressedImage if ch.spec.transport == 'compressed' else Image
            ch.subscription = self.create_subscription(
                msg_type, ch.spec.input_topic,
                _never_called if fallback is None else fallback.callback(index), image_qos,
                callback_group=pulled if fallback is None else self._image_group)
            if ch.spec.camera_info_topic:
                # Best effort matches reliable and best-effort camera drivers alike.
                ch.camera_info_sub = self.create_subscription(
                    CameraInfo, ch.spec.camera_info_topic,
                    lambda msg, c=ch: setattr(c, 'latest_camera_info', msg), SENSOR_QOS,
                    callback_group=self._image_group)
        if self._params.get('match_camera_info'):
            self._match_sub = self.create_subscription(
                CameraInfo, self._params['match_camera_info'], self._on_match_camera_info,
                SENSOR_QOS, callback_group=self._image_group)
        slots = fallback if fallback is not None else FrameReader(
            self.context, [ch.subscription for ch in self._channels])
        self._slots = slots
        # Overlap and batching by measurement (frame_path_plan says what and why).
        plan = plan_frame_path(int(self._params['frames_in_flight']),
                               bool(getattr(self._pipeline, 'inference_on_device', False)),
                               int(self._params['num_threads']),
                               float(self._params['batch_window_ms']),
                               getattr(self._pipeline, 'frames_per_inference', None),
                               int(self._params['max_batch_size']))
        reader = 'DDS readers pulled by the worker' if fast else 'executor callbacks (fallback)'
        self.get_logger().info(f'frame path: {plan.reason}; frame reader: {reader} (rclpy '
                               f'{check.rclpy_version if check else "unknown"})')
        trimmer, counters = HeapTrimmer(NODE_TRIM_PERIOD_S), [0, 0]
        self._frame_path = FramePath(
            take=lambda wait_turn: self._take_frames(slots, trimmer, plan, counters,
                                                     wait_turn),
            submit=self._submit_frames, finish=self._publish_results,
            on_error=self._on_frame_error, prefetch=plan.prefetch,
            in_flight=plan.in_flight,
            keep_running=lambda: not slots.closed and self.context.ok(),
            bind_thread=self._backend.bind_thread, name='segformer')
        self._frame_path.start()
        self._input_watch = InputWatch(time.monotonic())

    def _stop_processing(self) -> None:
        self._input_watch = None
        # The worker first: it waits on the image subscriptions destroyed below.
        if self._slots is not None:
            self._slots.close()
        if self._frame_path is not None and not self._frame_path.stop(timeout_s=30.0):
            self.get_logger().warn('frame path threads did not stop within 30 s')
        for ch in self._channels:
            for sub in (ch.subscription, ch.camera_info_sub):
                if sub is not None:
                    self.destroy_subscription(sub)
            ch.subscription = ch.camera_info_sub = None
        if self._match_sub is not None:
            self.destroy_subscription(self._match_sub)
            self._match_sub = None
        if self._slots is not None:
            self._slots.destroy()
        self._frame_path = None
        self._slots = None

    # ------------------------------------------------------------ frame path
    # frame_path.py runs these on overlapping threads: take (+ convert) -> submit
    # (preprocess + inference) -> finish (postprocess + publish).
    def _take_frames(self, slots: _Reader, trimmer: HeapTrimmer, plan: FramePathPlan,
                     counters: List[int], wait_turn: Callable[[], None]
                     ) -> Optional[List[_Frame]]:
        """Take and convert the next frame of each camera; None when there is none yet."""
        trimmer.maybe_trim()
        batch = slots.take_batch(plan.batch_window_s, timeout_s=0.5, before_take=wait_turn,
                                 one_frame=plan.one_frame)
        stats = self._stats
        if not batch or stats is None:
            return None
        # Frames seen and skipped since the last batch.
        now_seen, now_dropped = slots.frames_seen(), sum(slots.drop_counts().values())
        stats.input_rate.tick(now_seen - counters[0])
        stats.count_drop(now_dropped - counters[1])
        counters[0], counters[1] = now_seen, now_dropped
        return self._convert(batch, stats) or None

    def _convert(self, batch: Sequence[Tuple[int, Any]], stats: StageStats) -> List[_Frame]:
        from .compressed import decode_compressed
        from .conversion import image_msg_to_array

        max_pixels = int(self._params['max_input_pixels'])
        frames: List[_Frame] = []
        now_ns = time.time_ns()
        for index, msg in batch:
            ch = self._channels[index]
            # input_age: from the image's stamp to its take (DDS transport plus the time it
            # waited in the reader for the model to be free); the part of the
            # latency that is not the node's work. Stamps on another clock are skipped.
            age = stamp_age_s(msg.header.stamp.sec, msg.header.stamp.nanosec, now_ns)
            if age is not None:
                stats.add_times({'input_age': age})
            t0 = time.perf_counter()
            try:
                if isinstance(msg, CompressedImage):
                    view = decode_compressed(msg.format, msg.data, max_pixels)
                else:
                    view = image_msg_to_array(msg, max_pixels)
            except ImageFormatError as exc:
                stats.count_error()
                self._log_error(f'input:{ch.spec.name}:{_raise_site(exc)}',
                                f'dropped a frame on {ch.spec.input_topic}: {exc}')
                continue
            stats.add_times({'convert': time.perf_counter() - t0})
            frames.append((ch, msg, view))
        return frames

    def _submit_frames(self, frames: List[_Frame],
                       around_inference: Callable[[], ContextManager[Any]]) -> Optional[Any]:
        """Preprocess and start inference; the pending results go to _publish_results."""
        pipeline = self._pipeline
        if pipeline is None or not self._follow_match_size(pipeline):
            return None
        want_overlay = any(ch.overlay_pub.get_subscription_count() > 0 for ch, _, _ in frames)
        want_summary = any(ch.summary_pub.get_subscription_count() > 0 for ch, _, _ in frames)
        want_confidence = pipeline.has_logits and any(
            ch.confidence_pub.get_subscription_count() > 0 for ch, _, _ in frames)
        return pipeline.submit_batch(
            [(view.array, view.channel_order) for _, _, view in frames],
            want_overlay=want_overlay, want_summary=want_summary,
            overlay_alpha=float(self.get_parameter('overlay_alpha').value),
            want_confidence=want_confidence,
            batch_limit=int(self._params.get('max_batch_size', 0)),
            around_inference=around_inference)

    def _publish_results(self, frames: List[_Frame], results: List[Any]) -> None:
        """Publish the results of ``frames``."""
        stats, pipeline = self._stats, self._pipeline
        if stats is None or pipeline is None:
            return
        for (ch, msg, _), result in zip(frames, results):
            t0 = time.perf_counter()
            if not ch.label_info_sent:
                ch.label_info_pub.publish(label_info_message(pipeline.config.classes.names,
                                                             msg.header))
                ch.label_info_sent = True
            ch.mask_pub.publish(image_message(result.mask, 'mono8', msg.header))
            info = ch.latest_camera_info
            if info is not None and ch.camera_info_pub is not None:
                ch.camera_info_pub.publish(camera_info_message(
                    info, msg.header, result.mask.shape[1], result.mask.shape[0]))
            if ch.grid is not None:   # CPU and GPU pipelines alike hand over a host mask
                ch.grid.publish(result.mask, msg.header, info)
            if result.overlay is not None and ch.overlay_pub.get_subscription_count() > 0:
                ch.overlay_pub.publish(image_message(
                    result.overlay, OVERLAY_ENCODINGS[result.overlay_channel_order], msg.header))
            if result.summary is not None and ch.summary_pub.get_subscription_count() > 0:
                ch.summary_pub.publish(summary_message(result.summary, msg.header))
            if (result.confidence is not None and ch.confidence_pub is not None
                    and ch.confidence_pub.get_subscription_count() > 0):
                ch.confidence_pub.publish(image_message(result.confidence, 'mono8', msg.header))
            times = dict(result.times)
            times['publish'] = time.perf_counter() - t0
            stats.add_times(times)
            stats.output_rate.tick()

    def _on_frame_error(self, stage: str, exc: BaseException) -> None:
        if not self.context.ok():
            # Ctrl-C / SIGTERM shut the context down while a frame was in flight: its
            # publish fails by design; that is shutdown, not an error.
            return
        if self._stats is not None:
            self._stats.count_error()
        self._log_error(f'frame:{stage}', f'frame failed ({stage}): {type(exc).__name__}: {exc}')

    # ---------------------------------------------------- match_camera_info
    def _on_match_camera_info(self, msg: CameraInfo) -> None:
        if 1 <= msg.width <= MAX_SIDE and 1 <= msg.height <= MAX_SIDE:
            self._match_size = (int(msg.width), int(msg.height))
        else:
            self._log_error('match_camera_info:size',
                            f'ignored a CameraInfo on {self._params["match_camera_info"]}: '
                            f'expected width and height in 1..{MAX_SIDE}, got '
                            f'{msg.width}x{msg.height}')

    def _follow_match_size(self, pipeline: Any) -> bool:
        """Size the outputs like the match_camera_info camera; False: wait for its size."""
        topic = self._params.get('match_camera_info')
        if not topic:
            return True
        size = self._match_size
        if size is None:
            # A mask of another size is useless to a planner pairing it pixel for pixel
            # with the depth cloud: publish nothing until the size is known.
            if self._log_limiter.allow('match_camera_info:wait'):
                self.get_logger().warning(f'match_camera_info: no CameraInfo on {topic} yet; '
                                          f'frames are dropped until its size is known')
            return False
        pipeline.set_output_resolution(size_text(*size))
        return True

    # ---------------------------------------------------------- diagnostics
    def _publish_diagnostics(self) -> None:
        with self._diag_lock:
            try:
                self._publish_diagnostics_locked()
            except Exception as exc:  # noqa: BLE001 - reported, and the node goes on
                if not self.context.ok():
                    return   # shutting down: nothing to report
                # Raised from a timer callback, it would end executor.spin() and with it
                # the node (node_main): a report is not worth the segmentation.
                self._log_error('diagnostics', f'diagnostics: expected to publish the '
                                               f'node\'s status, got {exc!r}; the frame path '
                                               f'goes on (please report this)')

    def _publish_diagnostics_locked(self) -> None:
        stats, pub, backend = self._stats, self._diag_pub, self._backend
        slots, channels = self._slots, self._channels   # a transition may clear them
        if pub is None:
            return
        name = f'{self.get_name()}: segmentation'
        if stats is None:   # still configuring: report the engine build, if any
            phase, fraction = self._build_progress or ('loading model', 0.0)
            level, message = 'ok', f'configuring: {phase}'
            values: Dict[str, object] = {'state': self._state_label(), 'build_phase': phase,
                                         'build_progress': float(fraction),
                                         'model': self._params.get('model_path', '')}
        else:
            values = {'state': self._state_label(),
                      'backend': backend.describe() if backend else 'none',
                      'model': self._params.get('model_path', '')}
            values.update(stats.snapshot())
            if slots is not None and len(channels) > 1:
                for index, dropped in slots.drop_counts().items():
                    values[f'{channels[index].spec.name}_frames_dropped'] = dropped
            level, message = 'ok', 'running'
            watch, path = self._input_watch, self._frame_path
            if values['state'] == 'active' and watch is not None and slots is not None:
                verdict = watch.assess(
                    time.monotonic(), self._camera_inputs(slots, channels),
                    path.progress() if path is not None else PathProgress(),
                    float(self.get_parameter('input_timeout_s').value),
                    float(self.get_parameter('stall_timeout_s').value))
                values.update(verdict.values)
                level, message = verdict.level, verdict.message
                self._log_verdict(verdict)
            if level == 'ok' and stats.errors:
                level, message = 'warn', f'{stats.errors} frames failed (see the log)'
        pub.publish(diagnostics_message(self.get_clock().now().to_msg(), name,
                                        self.get_fully_qualified_name(), level, message,
                                        values))

    def _camera_inputs(self, slots: _Reader, channels: List[_Channel]
                       ) -> List[CameraInput]:
        """Gather what DDS, the graph and the reader say about each camera's input."""
        inputs = []
        for ch, counters in zip(channels, slots.input_counters()):
            sub = ch.subscription
            if sub is None:
                continue
            matched = sub.get_publisher_count()
            graph, incompatible = 0, []
            if not matched:   # only then is the graph worth a query: why does none match?
                for info in self.get_publishers_info_by_topic(sub.topic_name):
                    graph += 1
                    compatible, reason = qos_check_compatible(info.qos_profile,
                                                              self._image_qos or SENSOR_QOS)
                    if compatible == QoSCompatibility.ERROR:
                        incompatible.append(f'{info.node_namespace.rstrip("/")}/'
                                            f'{info.node_name}: {reason}')
            inputs.append(CameraInput(sub.topic_name, matched, graph, tuple(incompatible),
                                      counters['taken'], counters['lost_while_idle'],
                                      counters['wait_misses']))
        return inputs

    def _log_verdict(self, verdict: Any) -> None:
        """Log the watchdog's finding: errors every 5 s at most, warnings every 30 s."""
        if verdict.key is None:
            return
        if verdict.level == 'error':
            self._log_error(verdict.key, verdict.message)
        elif self._warn_limiter.allow(verdict.key):
            self.get_logger().warn(verdict.message)

    def _on_build_progress(self, phase: str, fraction: float) -> None:
        """Engine build progress (TensorRT IProgressMonitor): log each phase, keep the last."""
        previous = self._build_progress
        self._build_progress = (phase, fraction)
        if previous is None or previous[0] != phase:
            self.get_logger().info(f'engine build: {phase}')

    def shutdown_resources(self) -> None:
        """Stop the worker and release everything (process exit without a transition)."""
        self._stop_processing()
        self._release_resources()

    # ---------------------------------------------------------------- helpers
    def _state_label(self) -> str:
        return lifecycle_state_label(self)

    def _log_error(self, key: str, text: str) -> None:
        """Log an error at most once per 5 s per key, with the count of suppressed ones."""
        if self._log_limiter.allow(key):
            suppressed = self._log_limiter.take_suppressed(key)
            suffix = f' ({suppressed} similar errors suppressed)' if suppressed else ''
            if len(text) > _MAX_LOG_CHARS:
                # Messages quote publisher-controlled strings (an encoding can be megabytes).
                text = f'{text[:_MAX_LOG_CHARS]}... ({len(text) - _MAX_LOG_CHARS} more chars)'
            self.get_logger().error(text + suffix)

    def _on_set_parameters(self, params: List[Any]) -> Any:
        for param in params:
            if (param.type_ == Parameter.Type.NOT_SET and param.name in PARAMETER_NAMES
                    and self.has_parameter(param.name)):
                # rclpy would undeclare it (the list parameters are dynamically typed):
                # configure could then never read it again in this process.
                return SetParametersResult(
                    successful=False,
                    reason=f'{param.name} cannot be unset; set a value instead (e.g. [] for '
                           f'an empty list)')
            result = validate_parameter(param)
            if not result.successful:
                return result
        self._say_when_it_applies(params)
        return SetParametersResult(successful=True)

    def _say_when_it_applies(self, params: List[Any]) -> None:
        """Log that a configure-time parameter set on a configured node waits for configure."""
        state = self._state_label()
        if state not in ('inactive', 'active'):
            return   # unconfigured: the next configure reads it anyway
        later = [p.name for p in params if p.name in PARAMETER_NAMES
                 and not spec(p.name).dynamic and not spec(p.name).read_only]
        if later:
            steps = 'deactivate, cleanup, configure, activate' if state == 'active' else \
                'cleanup, configure'
            self.get_logger().info(
                f'{", ".join(later)} set while {state}: applies at the next configure '
                f'({steps}); the running configuration is unchanged')


def _raise_site(exc: BaseException) -> str:
    """Where ``exc`` was raised (``file:line``): the rate-limit key of one kind of bad input.

    Keyed per kind, a new problem (a step error after an encoding error) is logged at once
    instead of hiding behind the previous one for the rate-limit period; keyed on the raise
    site rather than the message, the key set stays bounded although messages quote
    publisher-controlled strings (encodings, formats).
    """
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return type(exc).__name__
    return f'{tb.tb_frame.f_code.co_filename.rsplit("/", 1)[-1]}:{tb.tb_lineno}'


def _never_called(msg: Any) -> None:
    """Do nothing: no executor runs the pulled image subscriptions."""


def _summary_type() -> Any:
    from .msg import SegmentationSummary
    return SegmentationSummary
