"""Compare the masks of two segmented bags of the same recording (no rclpy).

Frames are paired per mask topic by their header (stamp and frame_id, which segformer-ros-bag
copies from the input); per topic the report gives pixel agreement, the lowest frame
agreement, per-class IoU of A against B (:class:`~segformer_ros.metrics.AgreementStats`)
and the frames present in one bag only.
"""

from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from . import bag_messages as bm
from .metrics import AgreementStats

MASK_SUFFIX = '/segmentation/mask'
LABEL_SUFFIX = '/segmentation/label_info'


def read_masks(path: Path) -> Tuple[Dict[str, Dict[Tuple[int, str], np.ndarray]],
                                    Dict[str, List[str]]]:
    """Masks per topic keyed by (stamp ns, frame_id), and class names per label_info topic."""
    from .bag_run import open_reader

    store = bm.make_typestore()
    reader = open_reader(path)
    masks: Dict[str, Dict[Tuple[int, str], np.ndarray]] = {}
    names: Dict[str, List[str]] = {}
    try:
        conns = [c for c in reader.connections
                 if (c.topic.endswith(MASK_SUFFIX) and c.msgtype == bm.IMAGE)
                 or (c.topic.endswith(LABEL_SUFFIX) and c.msgtype == bm.LABEL_INFO)]
        for conn, _t, raw in reader.messages(connections=conns):
            msg = store.deserialize_cdr(raw, conn.msgtype)
            if conn.msgtype == bm.LABEL_INFO:
                names[conn.topic[:-len(LABEL_SUFFIX)]] = [c.class_name for c in msg.class_map]
                continue
            mask = bm.mask_from_image(msg)
            if mask is not None:
                key = (bm.stamp_ns(msg.header), str(msg.header.frame_id))
                masks.setdefault(conn.topic, {})[key] = mask.copy()
    finally:
        reader.close()
    return masks, names


def compare_bags(path_a: Path, path_b: Path) -> Dict[str, Any]:
    """Compare per mask topic: agreement on common frames, frames in one bag only."""
    masks_a, names_a = read_masks(path_a)
    masks_b, names_b = read_masks(path_b)
    topics: Dict[str, Any] = {}
    for topic in sorted(set(masks_a) | set(masks_b)):
        a, b = masks_a.get(topic, {}), masks_b.get(topic, {})
        ns = topic[:-len(MASK_SUFFIX)]
        names = names_a.get(ns) or names_b.get(ns)
        common = sorted(set(a) & set(b))
        num_classes = len(names) if names else 1 + max(
            [int(m[m != 255].max(initial=0)) for m in list(a.values()) + list(b.values())]
            or [0])
        stats = AgreementStats(num_classes)
        shape_mismatch = 0
        for key in common:
            if a[key].shape != b[key].shape:
                shape_mismatch += 1
                continue
            stats.update(a[key], b[key])
        summary = stats.summary(names)
        topics[topic] = {
            'frames_a': len(a), 'frames_b': len(b), 'frames_compared': stats.frames,
            'only_in_a': len(set(a) - set(b)), 'only_in_b': len(set(b) - set(a)),
            'shape_mismatch': shape_mismatch,
            'pixel_agreement': summary['pixel_agreement'] if stats.frames else None,
            'min_frame_agreement': summary['min_frame_agreement'],
            'per_class_iou': summary['per_class_iou'],
        }
    return {'a': str(path_a), 'b': str(path_b), 'topics': topics}


def gate(result: Dict[str, Any], min_agreement: float) -> Optional[str]:
    """Return the reason the comparison fails, or None when it passes."""
    if not result['topics']:
        return 'no segmentation/mask topic in either bag'
    for topic, r in result['topics'].items():
        if r['frames_compared'] == 0:
            return f'{topic}: no frame in both bags'
        if r['shape_mismatch']:
            return f'{topic}: {r["shape_mismatch"]} frames differ in size'
        if r['pixel_agreement'] < min_agreement:
            return (f'{topic}: pixel agreement {100 * r["pixel_agreement"]:.3f} % is below '
                    f'{100 * min_agreement:.3f} %')
    return None
