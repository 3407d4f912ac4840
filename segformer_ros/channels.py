"""Camera channels: which topics one node reads and writes (no ROS here).

One camera (the default) keeps the historic names: input ``image`` (remapped by the
launch file) and outputs ``segmentation/{mask,overlay,summary}``. Several cameras each
get their own input topic and output namespace: ``<ns>/segmentation/...``.
"""

from dataclasses import dataclass
from typing import List, Sequence

from .errors import ConfigError

OUTPUTS = ('mask', 'overlay', 'summary', 'confidence', 'label_info', 'camera_info',
           'label_info_json', 'drivable_grid')


@dataclass(frozen=True)
class ChannelSpec:
    """One camera: where frames come from and where its results go."""

    name: str
    image_topic: str
    output_namespace: str = ''
    transport: str = 'raw'        # 'raw' or 'compressed'
    camera_info_topic: str = ''   # '' = none; else republished to match the mask

    @property
    def input_topic(self) -> str:
        """Return the topic actually subscribed (compressed: <image>/compressed)."""
        return f'{self.image_topic}/compressed' if self.transport == 'compressed' \
            else self.image_topic

    def output_topic(self, output: str) -> str:
        """Return the relative topic of one output, e.g. 'front/segmentation/mask'."""
        if output not in OUTPUTS:
            raise ValueError(f'unknown output {output!r}; expected one of {OUTPUTS}')
        prefix = f'{self.output_namespace.strip("/")}/' if self.output_namespace.strip('/') else ''
        return f'{prefix}segmentation/{output}'


def single_channel(transport: str, camera_info_topic: str = '') -> List[ChannelSpec]:
    """Return the default: one camera on the relative topic ``image``."""
    return [ChannelSpec('camera', 'image', '', transport, camera_info_topic)]


def channels_from_lists(names: Sequence[str], topics: Sequence[str],
                        namespaces: Sequence[str], transports: Sequence[str],
                        default_transport: str,
                        info_topics: Sequence[str] = ()) -> List[ChannelSpec]:
    """Build channels from parallel parameter lists (empty names -> the single default).

    ``topics``/``namespaces``/``transports``/``info_topics`` may be empty (defaults:
    ``<name>/image``, ``<name>``, ``default_transport``, no camera_info) or have exactly
    one entry per camera (one entry for the single default camera).
    """
    if not names:
        if len(info_topics) > 1:
            raise ConfigError(f'camera_info_topics has {len(info_topics)} entries but there is '
                              f'one camera (cameras is empty): give one topic or none')
        return single_channel(default_transport, info_topics[0] if info_topics else '')
    count = len(names)
    for label, values in (('camera_topics', topics), ('camera_namespaces', namespaces),
                          ('camera_transports', transports),
                          ('camera_info_topics', info_topics)):
        if values and len(values) != count:
            raise ConfigError(f'{label} needs one entry per camera ({count}: {list(names)}), '
                              f'got {len(values)}: {list(values)}; or leave it empty')
    if len(set(names)) != count or any(not n.strip() for n in names):
        raise ConfigError(f'camera names must be unique and non-empty, got {list(names)}')
    channels = []
    for i, name in enumerate(names):
        transport = transports[i] if transports else default_transport
        if transport not in ('raw', 'compressed'):
            raise ConfigError(f'camera {name!r}: transport must be raw or compressed, '
                              f'got {transport!r}')
        channels.append(ChannelSpec(
            name=name,
            image_topic=topics[i] if topics else f'{name}/image',
            output_namespace=namespaces[i] if namespaces else name,
            transport=transport,
            camera_info_topic=info_topics[i] if info_topics else ''))
    namespaces_used = [c.output_namespace.strip('/') for c in channels]
    if len(set(namespaces_used)) != count:
        raise ConfigError(f'cameras must publish into different namespaces, got '
                          f'{namespaces_used}; set camera_namespaces')
    return channels
