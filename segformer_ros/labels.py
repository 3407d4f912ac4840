"""Class names, colours and label-id tables for the Cityscapes label set.

Cityscapes "train ids" (0..18) are what SegFormer / TAO CitySemSegFormer / DeepLab
Cityscapes models predict; 255 marks unlabeled pixels in masks and ground truth.
"""

from typing import Dict, List, Sequence, Tuple

import numpy as np

UNLABELED: int = 255

CITYSCAPES_CLASSES: Tuple[str, ...] = (
    'road', 'sidewalk', 'building', 'wall', 'fence', 'pole', 'traffic light',
    'traffic sign', 'vegetation', 'terrain', 'sky', 'person', 'rider', 'car',
    'truck', 'bus', 'train', 'motorcycle', 'bicycle',
)

# The official Cityscapes colours (cityscapesScripts labels.py), RGB, train-id order.
CITYSCAPES_PALETTE: Tuple[Tuple[int, int, int], ...] = (
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
    (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
    (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70),
    (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32),
)

CITYSCAPES_DRIVABLE: Tuple[str, ...] = ('road',)

# labelIds (0..33, -1) -> trainIds, from cityscapesScripts' labels.py; 255 = ignore.
CITYSCAPES_LABEL_TO_TRAIN: Dict[int, int] = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10,
    24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}


def label_ids_to_train_ids(label_ids: np.ndarray) -> np.ndarray:
    """Map a Cityscapes labelIds image to trainIds (uint8, 255 where ignored)."""
    lut = np.full(256, UNLABELED, dtype=np.uint8)
    for label_id, train_id in CITYSCAPES_LABEL_TO_TRAIN.items():
        lut[label_id] = train_id
    ids = np.asarray(label_ids)
    if ids.dtype != np.uint8:
        # labelIds use -1 for 'license plate'; anything outside 0..255 is ignore.
        ids = np.where((ids >= 0) & (ids <= 255), ids, UNLABELED).astype(np.uint8)
    return lut[ids]


def palette_lut(colors: Sequence[Sequence[int]], size: int = 256,
                unlabeled_color: Sequence[int] = (0, 0, 0)) -> np.ndarray:
    """Build a (size, 3) uint8 table class id -> RGB; ids without a colour get unlabeled_color."""
    lut = np.empty((size, 3), dtype=np.uint8)
    lut[:] = np.asarray(unlabeled_color, dtype=np.uint8)
    if len(colors):
        lut[:len(colors)] = np.asarray(colors, dtype=np.uint8).reshape(-1, 3)
    return lut


def class_ids_for_names(class_names: Sequence[str], wanted: Sequence[str]) -> List[int]:
    """Resolve class names (or decimal ids as strings) to ids; ValueError on unknown names."""
    ids: List[int] = []
    for name in wanted:
        if name in class_names:
            ids.append(list(class_names).index(name))
        elif str(name).isdigit() and int(name) < len(class_names):
            ids.append(int(name))
        else:
            raise ValueError(
                f'drivable class {name!r} is not a class of the model; expected one of '
                f'{list(class_names)} or an id below {len(class_names)}')
    return ids


def label_info(names: Sequence[str], colors: Sequence[Sequence[int]],
               drivable_ids: Sequence[int]) -> Dict[str, object]:
    """Describe the label set as published on ``segmentation/label_info`` (JSON).

    Shaped like vision_msgs/LabelInfo (``class_map`` id -> name, ``threshold``) so a
    consumer can switch to that message once it is available, plus our colours, the
    drivable ids and the unlabeled value used in the mask.
    """
    return {
        'class_map': {str(i): str(n) for i, n in enumerate(names)},
        'threshold': 0.0,
        'colors': [list(map(int, c)) for c in colors[:len(names)]],
        'drivable_class_ids': [int(i) for i in drivable_ids],
        'unlabeled_id': UNLABELED,
        'mask_encoding': 'mono8',
        'confidence_encoding': 'mono8 (255 * max softmax probability)',
    }
