"""Launch the segformer lifecycle node, configure and activate it, optionally with rviz2.

    ros2 launch segformer_ros segformer.launch.py model_path:=/models/segformer.onnx \
        image_topic:=/camera/image_raw

The node starts unconfigured; lifecycle events then configure it and, once it reaches
inactive, activate it (autostart:=false leaves that to a lifecycle manager).
"""

import os
from typing import List

import launch
from ament_index_python.packages import get_package_share_directory
from launch import LaunchContext, LaunchDescription
from launch.actions import (DeclareLaunchArgument, EmitEvent, OpaqueFunction,
                            RegisterEventHandler)
from launch.conditions import IfCondition
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from lifecycle_msgs.msg import Transition

PACKAGE = 'segformer_ros'


def _node_and_autostart(context: LaunchContext) -> List[launch.Action]:
    """Build the node with the resolved arguments, plus the lifecycle autostart events."""
    def arg(name: str) -> str:
        return LaunchConfiguration(name).perform(context)

    overrides = {'autostart': False}
    # Only override what was given: an empty argument keeps the params file's value.
    for name in ('model_path', 'backend'):
        if arg(name):
            overrides[name] = arg(name)
    node = LifecycleNode(
        package=PACKAGE, executable='segformer_node', name=arg('node_name'),
        namespace=arg('namespace'), output='screen',
        parameters=[arg('params_file'), overrides],
        remappings=[('image', arg('image_topic')),
                    ('image/compressed', arg('image_topic') + '/compressed')],
        arguments=['--ros-args', '--log-level', arg('log_level')])
    actions: List[launch.Action] = [node]
    if arg('autostart').lower() in ('true', '1', 'yes'):
        actions.append(RegisterEventHandler(OnStateTransition(
            target_lifecycle_node=node, start_state='configuring', goal_state='inactive',
            entities=[EmitEvent(event=ChangeState(
                lifecycle_node_matcher=matches_action(node),
                transition_id=Transition.TRANSITION_ACTIVATE))])))
        actions.append(EmitEvent(event=ChangeState(
            lifecycle_node_matcher=matches_action(node),
            transition_id=Transition.TRANSITION_CONFIGURE)))
    return actions


def generate_launch_description() -> LaunchDescription:
    """Arguments, the segformer lifecycle node with autostart, and optional rviz2."""
    share = get_package_share_directory(PACKAGE)
    return LaunchDescription([
        DeclareLaunchArgument(
            'model_path', default_value='',
            description='ONNX model or TensorRT engine; empty keeps model_path from params_file.'),
        DeclareLaunchArgument(
            'image_topic', default_value='/camera/image_raw',
            description='Camera image topic (sensor_msgs/Image; <topic>/compressed with '
                        'input_transport: compressed).'),
        DeclareLaunchArgument(
            'backend', default_value='',
            description='auto (TensorRT if available, else ONNX Runtime), tensorrt or '
                        'onnxruntime; empty keeps backend from params_file (default auto).'),
        DeclareLaunchArgument(
            'params_file', default_value=os.path.join(share, 'config', 'segformer.yaml'),
            description='ROS 2 parameters file (presets: segformer_cityscapes.yaml, '
                        'citysemsegformer_tao.yaml, deeplab_mobilenet_cityscapes.yaml).'),
        DeclareLaunchArgument(
            'namespace', default_value='',
            description='Namespace of the node and its topics (outputs are relative).'),
        DeclareLaunchArgument(
            'node_name', default_value='segformer', description='Name of the node.'),
        DeclareLaunchArgument(
            'autostart', default_value='true',
            description='Configure and activate through lifecycle events; false leaves it '
                        'to a lifecycle manager.'),
        DeclareLaunchArgument(
            'use_rviz', default_value='false',
            description='Start rviz2 showing the camera image, overlay and mask.'),
        DeclareLaunchArgument(
            'log_level', default_value='info', description='Logging level of the node.'),
        OpaqueFunction(function=_node_and_autostart),
        Node(package='rviz2', executable='rviz2', name='segformer_rviz',
             arguments=['-d', os.path.join(share, 'config', 'segformer.rviz')],
             condition=IfCondition(LaunchConfiguration('use_rviz'))),
    ])
