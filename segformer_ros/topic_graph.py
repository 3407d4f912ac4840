"""What the ROS graph says about a subscribed topic's publishers (for input_watch's warning)."""

from typing import Any, List

from rclpy.qos import QoSCompatibility, qos_check_compatible

from .input_watch import PublisherInfo


def type_name(msg_type: Any) -> str:
    """'sensor_msgs/msg/Image' for the class sensor_msgs.msg.Image (the graph's spelling)."""
    return f'{msg_type.__module__.split(".", 1)[0]}/msg/{msg_type.__name__}'


def publishers_of(node: Any, topic: str, subscription_qos: Any) -> List[PublisherInfo]:
    """List the publishers of ``topic``, each with its type and whether its QoS matches ours.

    A publisher whose QoS cannot match the subscription (best effort to a reliable reader,
    volatile to a transient-local one) is discovered but never delivers: the classic silent
    camera, so the graph's QoS is checked with rclpy's own compatibility rules.
    """
    out: List[PublisherInfo] = []
    for info in node.get_publishers_info_by_topic(topic):
        compatibility, reason = qos_check_compatible(info.qos_profile, subscription_qos)
        problem = reason.strip() or compatibility.name \
            if compatibility == QoSCompatibility.ERROR else None
        name = f'{info.node_namespace.rstrip("/")}/{info.node_name}'
        out.append(PublisherInfo(name, info.topic_type, problem))
    return out


def published_topics_of_type(node: Any, wanted: str) -> List[str]:
    """Topics another node publishes with type ``wanted`` (sorted): where the images may be.

    The node's own outputs (its masks are Images too) are left out.
    """
    me = (node.get_name(), node.get_namespace())
    return sorted(name for name, types in node.get_topic_names_and_types()
                  if wanted in types and any(
                      (p.node_name, p.node_namespace) != me and p.topic_type == wanted
                      for p in node.get_publishers_info_by_topic(name)))
