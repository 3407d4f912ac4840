"""pip packaging for segformer_ros (colcon builds with CMakeLists.txt instead).

`pip install .` installs the pure Python package and its console scripts but
not the generated SegmentationSummary message: that needs the colcon build
(see `make setup`). See setup.cfg for why both exist.
"""
from pathlib import Path

from setuptools import find_packages, setup


def _share_files(*folders: str) -> list:
    """(share/segformer_ros/<dir>, [files]) for data_files: the colcon install's layout.

    segformer_ros.assets finds them under <prefix>/share/segformer_ros (presets in config/,
    the bundled demo model and clip in assets/), so package:// paths work after pip install.
    """
    entries = [('share/segformer_ros', ['package.xml'])]
    for folder in folders:
        for directory in sorted({p.parent for p in Path(folder).rglob('*') if p.is_file()}):
            files = sorted(str(p) for p in directory.iterdir() if p.is_file())
            entries.append((f'share/segformer_ros/{directory}', files))
    return entries


setup(
    name='segformer_ros',
    version='0.1.0',
    description='Semantic segmentation (SegFormer / ONNX) as a ROS 2 node',
    license='Apache-2.0',
    maintainer='segformer_ros maintainers',
    packages=find_packages(include=['segformer_ros', 'segformer_ros.*']),
    data_files=_share_files('config', 'launch', 'assets'),
    python_requires='>=3.10',
    install_requires=[
        'numpy',
        'opencv-python-headless',
        'onnxruntime',
        'pyyaml',
        # segformer-ros-bag: rosbag2 read/write without ROS
        'rosbags',
    ],
    extras_require={
        # SegFormer (Hugging Face) -> ONNX export tool.
        'export': ['torch', 'transformers', 'onnx'],
        # CUDA backend (GPU machines only).
        'gpu': ['cuda-python'],
        # segformer-ros-bag --ray: many recordings on a Ray cluster.
        'ray': ['ray'],
        'test': [
            'pytest',
            'pytest-timeout',
            'hypothesis',
            'flake8',
            'flake8-docstrings',
        ],
    },
    entry_points={
        'console_scripts': [
            'segformer_node=segformer_ros.node_main:main',
            'image_source=segformer_ros.image_source_main:main',
            'segformer-ros-export=segformer_ros.tools.export:main',
            'segformer-ros-eval=segformer_ros.tools.evaluate:main',
            'segformer-ros-selfcheck=segformer_ros.tools.selfcheck:main',
            'segformer-ros-build-engine=segformer_ros.tools.build_engine:main',
            'segformer-ros-import-nvinfer=segformer_ros.tools.import_nvinfer:main',
            'segformer-ros-bag=segformer_ros.tools.bag:main',
        ],
    },
)
