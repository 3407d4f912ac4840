"""The picture of a segmented bag in docs/usage.md: record the clip, segment it, show its frames.

``python -m benchmarks.bag_figure [--out docs/images/bag_frames.jpg]`` records four frames of
the bundled clip as a rosbag2 (mcap, JPEG CompressedImage on /front/image_raw/compressed,
with CameraInfo) under out/bag_figure/, segments it with ``segformer-ros-bag run`` (the
bundled DeepLab preset) and draws the output bag's overlay frames, each captioned with its
header stamp and the drivable share of its SegmentationSummary, read back from the bag.
"""

import argparse
import shutil
import sys
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _record(bag: Path) -> None:
    sys.path.insert(0, str(REPO / 'test'))
    from bag_helpers import CameraSpec, clip_frames, write_bag

    write_bag(bag, 'mcap', [CameraSpec('/front/image_raw/compressed', 'front_optical', 'jpeg')],
              clip_frames(4, step=60), period_ns=2_000_000_000)


def montage(bag: Path, namespace: str = 'front', width: int = 480) -> np.ndarray:
    """Overlays of a segmented bag in a 2x2 grid, captioned with stamp and drivable share."""
    import cv2
    from rosbags.rosbag2 import Reader

    from segformer_ros import bag_messages as bm

    store = bm.make_typestore()
    overlays, summaries = {}, {}
    with Reader(bag) as reader:
        wanted = [c for c in reader.connections
                  if c.topic in (f'/{namespace}/segmentation/overlay',
                                 f'/{namespace}/segmentation/summary')]
        for conn, _t, raw in reader.messages(connections=wanted):
            msg = store.deserialize_cdr(raw, conn.msgtype)
            stamp = bm.stamp_ns(msg.header)
            if conn.msgtype == bm.IMAGE:
                rgb = np.asarray(msg.data, np.uint8).reshape(msg.height, msg.width, 3)
                overlays[stamp] = rgb if msg.encoding == 'bgr8' else rgb[..., ::-1]
            else:
                summaries[stamp] = msg
    tiles: List[np.ndarray] = []
    first = min(overlays)
    for stamp in sorted(overlays)[:4]:
        tile = cv2.resize(overlays[stamp], (width, width * overlays[stamp].shape[0]
                                            // overlays[stamp].shape[1]),
                          interpolation=cv2.INTER_AREA)
        s = summaries.get(stamp)
        text = f'+{(stamp - first) / 1e9:.0f} s  stamp {stamp // 10**9}.{stamp % 10**9:09d}'
        if s is not None:
            text += f'  drivable {100 * s.drivable_fraction:.0f} %'
        cv2.rectangle(tile, (0, 0), (width, 24), (0, 0, 0), -1)
        cv2.putText(tile, text, (6, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1,
                    cv2.LINE_AA)
        tiles.append(tile)
    while len(tiles) < 4:
        tiles.append(np.zeros_like(tiles[0]))
    return np.vstack([np.hstack(tiles[:2]), np.hstack(tiles[2:4])])


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Record, segment, draw; return the exit code."""
    import cv2

    from segformer_ros.tools.bag import main as bag_main

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--out', default=str(REPO / 'docs' / 'images' / 'bag_frames.jpg'))
    p.add_argument('--work', default=str(REPO / 'out' / 'bag_figure'))
    args = p.parse_args(argv)
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    _record(work / 'drive')
    rc = bag_main(['run', str(work / 'drive'), str(work / 'drive_segmented'),
                   '--params', 'deeplab_mobilenet_cityscapes',
                   '--image-topics', '/front/image_raw/compressed',
                   '--json', str(work / 'report.json')])
    if rc:
        return rc
    cv2.imwrite(args.out, montage(work / 'drive_segmented'), [cv2.IMWRITE_JPEG_QUALITY, 80])
    print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
