"""segformer_ros: semantic segmentation (SegFormer / ONNX) as a ROS 2 node.

The node runs an ONNX segmentation model on sensor_msgs/Image frames and
publishes a class mask, a colour overlay and a
segformer_ros/msg/SegmentationSummary per frame.
"""

# In a source checkout this directory is first on sys.path, but the generated
# message module segformer_ros.msg (and its typesupport extension modules)
# lives in the colcon build's install tree, i.e. in a second directory named
# segformer_ros further down sys.path. extend_path merges every segformer_ros
# directory on sys.path into this package's __path__, so `segformer_ros.msg`
# is found there while our own modules come from here. In an installed tree
# both live in one directory and this is a no-op.
__path__ = __import__('pkgutil').extend_path(__path__, __name__)


def _refuse_other_pythons_builds(paths: list) -> None:
    """Fail loudly when a segformer_ros directory of another Python version is on the path.

    The generated message extensions carry no ABI tag (``..._rosidl_typesupport_c.so``), so
    a Python 3.11 build merged in here loads into a 3.12 process and aborts it inside the
    interpreter (seen with the Kilted and Jazzy environments sourced one after the other).
    """
    import re
    import sys

    ours = '%d.%d' % sys.version_info[:2]
    foreign = [p for p in paths
               if (m := re.search(r'/lib/python(3\.[0-9]+)/(site|dist)-packages/', str(p) + '/'))
               and m.group(1) != ours]
    if foreign:
        raise ImportError(
            f'segformer_ros: expected only builds for Python {ours} on sys.path, got '
            f'{", ".join(map(str, foreign))} (built for another Python: its generated messages '
            'would crash this interpreter). Fix: open a new shell and source one environment '
            '(tools/ros_env.sh, or one ROS install\'s setup.bash), or remove it from PYTHONPATH.')


_refuse_other_pythons_builds(list(__path__))

__version__ = '0.1.0'
