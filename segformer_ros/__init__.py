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

__version__ = '0.1.0'
