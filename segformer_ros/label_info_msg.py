"""The label set as a message: vision_msgs/LabelInfo, or JSON where vision_msgs is missing.

Message types only, no rclpy. Nav2's semantic_segmentation_layer and the vision_msgs
README's convention read class names from ``vision_msgs/LabelInfo`` on the ``label_info``
topic beside the mask (reliable, transient local, 255 = unlabeled in a mono8 mask). Every
ROS install can have that type (``ros-<distro>-vision-msgs``); where it cannot be imported
the node publishes the same content as JSON on ``label_info_json`` instead: a different
name, so a std_msgs/String can never meet a LabelInfo subscriber on one topic (DDS would
refuse the pair as a type mismatch and the planner would wait forever).
"""

import json
from typing import Any, Optional, Sequence

from std_msgs.msg import Header, String

from .labels import label_info

LABEL_INFO_OUTPUT = 'label_info'
JSON_FALLBACK_OUTPUT = 'label_info_json'


def label_info_type() -> Optional[Any]:
    """Return vision_msgs.msg.LabelInfo, or None when vision_msgs is not installed."""
    try:
        from vision_msgs.msg import LabelInfo
    except ImportError:
        return None
    return LabelInfo


def missing_vision_msgs_hint(real_topic: str, json_topic: str) -> str:
    """Return the one log line saying what the fallback is and what to install."""
    return (f'vision_msgs is not importable: the label set goes out as JSON (std_msgs/String) '
            f'on {json_topic}, not as vision_msgs/LabelInfo on {real_topic}; install '
            f'ros-$ROS_DISTRO-vision-msgs (rosdep key vision_msgs) for Nav2\'s '
            f'semantic_segmentation_layer and other LabelInfo consumers')


def label_info_message(names: Sequence[str], header: Header, threshold: float = 0.0) -> Any:
    """Build a vision_msgs/LabelInfo: ``class_map`` id -> name for ids 0..n-1.

    ``threshold`` is the confidence threshold the pipeline applied (0: none; every pixel
    gets its argmax class). 255, the unlabeled value of our mono8 masks, is the vision_msgs
    convention for "UNLABELED" and needs no entry.
    """
    from vision_msgs.msg import LabelInfo, VisionClass

    msg = LabelInfo()
    msg.header = header
    msg.class_map = [VisionClass(class_id=i, class_name=str(n)) for i, n in enumerate(names)]
    msg.threshold = float(threshold)
    return msg


def label_info_json_message(names: Sequence[str], colors: Sequence[Sequence[int]],
                            drivable_ids: Sequence[int]) -> String:
    """Build the JSON fallback: LabelInfo's fields, colours, drivable ids, 255 = unlabeled."""
    return String(data=json.dumps(label_info(names, colors, drivable_ids)))
