"""The embedded default: with ``model_path`` empty, run the bundled demo model (no ROS here).

A fresh install then segments a camera out of the box (``ros2 launch segformer_ros
segformer.launch.py`` with no arguments) instead of failing configure. The bundled model is a
DeepLabV3 MobileNet (Cityscapes), not a SegFormer, so its own preset replaces segformer.yaml's
model settings (raw 0..255 input, stretch resize, id-map output), and the node says so in one
WARN line with the way to point it at a real SegFormer.
"""

from typing import Any, Dict, Mapping, Optional, Tuple

from .assets import BUNDLED_MODEL_PRESET, bundled_model_path
from .presets import load_params_file, preset_path


ROS_HOW_TO_SET = ('model_path:=/path/to/segformer.onnx (ros2 launch) or -p model_path:=... '
                  '(ros2 run)')


def with_default_model(params: Mapping[str, Any], how_to_set: str = ROS_HOW_TO_SET
                       ) -> Tuple[Dict[str, Any], Optional[str]]:
    """Return ``params`` (copied) and None, or the bundled model's and a warning when empty.

    Only the names the bundled preset sets are replaced (model, backend, normalisation,
    resize, classes); cameras, topics, QoS and the rest stay as given.
    """
    merged = dict(params)
    if str(params.get('model_path', '')).strip():
        return merged, None
    preset = load_params_file(preset_path(BUNDLED_MODEL_PRESET))
    merged.update(preset)
    model = bundled_model_path()
    merged['model_path'] = str(model)
    warning = (
        f'model_path is empty: running the bundled demo model {model.name} (DeepLabV3 '
        f'MobileNet, Cityscapes; settings of preset {BUNDLED_MODEL_PRESET}.yaml), not a '
        f'SegFormer. Point it at your SegFormer ONNX or TensorRT engine with {how_to_set}')
    return merged, warning
