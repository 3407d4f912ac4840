"""Smoke tests of the build: the generated message, the colcon install, DDS.

They need `make setup` (tools/setup.sh) and run in the environment of
tools/ros_env.sh (`make test` does both).
"""
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
INSTALL = Path(os.environ.get('SEGFORMER_ROS_INSTALL', REPO / '.build' / 'colcon' / 'install'))

EXPECTED_FIELDS = {
    'header': 'std_msgs/Header',
    'width': 'uint32',
    'height': 'uint32',
    'class_names': 'sequence<string>',
    'class_pixel_counts': 'sequence<uint32>',
    'class_fractions': 'sequence<float>',
    'unlabeled_pixel_count': 'uint32',
    'roi_polygon_x': 'sequence<float>',
    'roi_polygon_y': 'sequence<float>',
    'roi_pixel_count': 'uint32',
    'roi_class_pixel_counts': 'sequence<uint32>',
    'roi_class_fractions': 'sequence<float>',
    'drivable_class_ids': 'sequence<uint8>',
    'drivable_fraction': 'float',
    'roi_drivable_fraction': 'float',
    'free_space_column_starts': 'sequence<uint32>',
    'free_space_rows': 'sequence<uint32>',
}


def _site_packages():
    found = sorted(INSTALL.glob('lib/python3.*/site-packages'))
    assert found, f'no colcon install at {INSTALL}: run `make setup`'
    return found[-1]


def test_generated_message_fields():
    from segformer_ros.msg import SegmentationSummary

    assert SegmentationSummary.get_fields_and_field_types() == EXPECTED_FIELDS
    msg = SegmentationSummary(
        width=4, height=2, class_names=['road', 'car'], class_pixel_counts=[6, 2],
        free_space_rows=[1, 2])
    assert list(msg.class_pixel_counts) == [6, 2]
    assert list(msg.free_space_rows) == [1, 2]


def test_source_package_is_merged_with_generated_msg():
    import segformer_ros
    import segformer_ros.msg

    # Our sources come from the checkout, the generated msg from the install.
    assert Path(segformer_ros.__file__).parent == REPO / 'segformer_ros'
    assert Path(segformer_ros.msg.__file__).is_relative_to(INSTALL)
    assert segformer_ros.__version__ == '0.1.0'


def test_colcon_install_layout():
    share = INSTALL / 'share' / 'segformer_ros'
    assert (share / 'package.xml').is_file()
    assert (share / 'launch').is_dir()
    assert (share / 'config' / 'fastdds_loopback.xml').is_file()
    assert (share / 'msg' / 'SegmentationSummary.msg').is_file()
    for exe in ('segformer_node', 'image_source'):
        path = INSTALL / 'lib' / 'segformer_ros' / exe
        assert path.is_file() and os.access(path, os.X_OK), path
    # Both rosidl_generator_py and our install() write segformer_ros/__init__.py;
    # ours must be the one that ends up installed.
    init = _site_packages() / 'segformer_ros' / '__init__.py'
    assert '__version__' in init.read_text()


def test_colcon_install_works_standalone(tmp_path):
    """The install tree alone (no source checkout on sys.path) is usable."""
    code = textwrap.dedent("""
        import segformer_ros
        from segformer_ros.msg import SegmentationSummary
        print(segformer_ros.__file__, segformer_ros.__version__)
        print(SegmentationSummary(class_names=['x']).class_names)
    """)
    env = dict(os.environ, PYTHONPATH=str(_site_packages()))
    out = subprocess.run(
        [sys.executable, '-c', code], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    first = out.stdout.splitlines()[0]
    assert first.startswith(str(_site_packages())) and first.endswith(' 0.1.0'), out.stdout
    assert "['x']" in out.stdout


PUBLISHER = textwrap.dedent("""
    import time
    import rclpy
    from segformer_ros.msg import SegmentationSummary
    from rclpy.executors import ExternalShutdownException
    rclpy.init()
    node = rclpy.create_node('build_test_publisher')
    pub = node.create_publisher(SegmentationSummary, 'build_test/summary', 10)
    msg = SegmentationSummary(width=2, height=3, class_names=['road', 'car'],
                              class_pixel_counts=[4, 2], free_space_rows=[1, 2, 3])
    deadline = time.monotonic() + 20
    try:
        while time.monotonic() < deadline:
            pub.publish(msg)
            rclpy.spin_once(node, timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        # Leave the graph: Fast DDS then removes its /dev/shm segment and port files.
        node.destroy_node()
        rclpy.try_shutdown()
""")


@pytest.mark.ros
def test_summary_crosses_processes_over_dds():
    """A message published by another process arrives (typesupport libs found)."""
    for var in ('RMW_IMPLEMENTATION', 'FASTDDS_DEFAULT_PROFILES_FILE', 'ROS_DOMAIN_ID'):
        assert os.environ.get(var), f'{var} unset: run through tools/ros_env.sh'
    assert os.environ.get('ROS_AUTOMATIC_DISCOVERY_RANGE') == 'SYSTEM_DEFAULT'

    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from segformer_ros.msg import SegmentationSummary

    from ros_helpers import orphaned, shm_owned

    # Files already there (other runs on this machine) are not this test's to judge.
    existing = set(str(p) for p in Path('/dev/shm').glob('fastdds_*'))
    pub = subprocess.Popen([sys.executable, '-c', PUBLISHER])
    owned = set()
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = rclpy.create_node('build_test_subscriber', context=context)
        got = []
        node.create_subscription(
            SegmentationSummary, 'build_test/summary', got.append, 10)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        deadline = time.monotonic() + 15
        while not got and time.monotonic() < deadline and pub.poll() is None:
            executor.spin_once(timeout_sec=0.1)
        assert got, f'nothing received (publisher exit code {pub.poll()})'
        owned = shm_owned(pub.pid)
        assert list(got[0].class_pixel_counts) == [4, 2]
        assert list(got[0].free_space_rows) == [1, 2, 3]
        assert list(got[0].class_names) == ['road', 'car']
    finally:
        # SIGINT, like Ctrl-C: a SIGKILLed participant leaves its files in /dev/shm.
        pub.send_signal(signal.SIGINT)
        try:
            pub.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pub.kill()
            pub.wait()
        node.destroy_node()
        rclpy.shutdown(context=context)
    assert pub.returncode == 0
    assert owned, 'the publisher owned no Fast DDS shared-memory files (nothing checked)'
    assert orphaned(owned - existing) == [], 'the publisher left files in /dev/shm'
