#!/usr/bin/env python3
"""Fast vs exact agreement and confidence histograms of a logits preset on labelled frames.

Run from the repo root (numbers in docs/benchmarks.md come from exactly this)::

    python3 benchmarks/logits_report.py --params espnetv2_cityscapes
        --images ../shared/data/cityscapes/leftImg8bit --labels ../shared/data/cityscapes/gtFine

Per frame: pixels where ``upsample_mode: fast`` and ``exact`` agree. Over all frames: the
confidence image (255 x max softmax probability, the ``segmentation/confidence`` topic)
as a histogram, and, where labels are given, the fast mask's accuracy per confidence bin
(what a Nav2 ``mark_confidence`` threshold buys).
"""

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

BIN_EDGES = (0, 64, 128, 192, 230, 255, 256)   # the last bin is 255 alone (p >= 0.998)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Print the report; return 0."""
    import cv2

    from segformer_ros.pipeline import SegmentationPipeline
    from segformer_ros.tools.evaluate import build_pipeline, folder_samples, load_tool_params, \
        read_label

    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--params', required=True, help='preset name or params file (logits model)')
    p.add_argument('--images', required=True, help='image folder')
    p.add_argument('--labels', help='label folder (train ids), paired by stem')
    p.add_argument('--threads', type=int, default=2, help='ONNX Runtime threads')
    args = p.parse_args(argv)

    params = load_tool_params(args.params, [('num_threads', args.threads)])
    backend, fast = build_pipeline(params, lambda m: print(m, file=sys.stderr), warmup=0)
    cfg = fast.config
    exact = SegmentationPipeline(backend, replace(cfg, postprocess=replace(
        cfg.postprocess, upsample_mode='exact')))
    samples, _ = folder_samples(Path(args.images), Path(args.labels) if args.labels else None)
    hist = np.zeros(len(BIN_EDGES) - 1, np.int64)
    right = np.zeros_like(hist)
    labelled = np.zeros_like(hist)
    agreements: List[float] = []
    for image, label, fmt in samples:
        frame = cv2.imread(str(image), cv2.IMREAD_COLOR)
        a = fast.process(frame, 'bgr', want_confidence=True, want_overlay=False,
                         want_summary=False)
        b = exact.process(frame, 'bgr', want_overlay=False, want_summary=False)
        agreements.append(float((a.mask == b.mask).mean()))
        print(f'{image.name}: {frame.shape[1]}x{frame.shape[0]}, fast vs exact agreement '
              f'{agreements[-1] * 100:.2f}%, void/unlabeled {np.mean(a.mask == 255) * 100:.3f}%')
        bins = np.digitize(a.confidence, BIN_EDGES[1:-1])
        hist += np.bincount(bins.ravel(), minlength=hist.size)
        if label is not None:
            gt = read_label(label, fmt)
            valid = gt != 255
            labelled += np.bincount(bins[valid], minlength=hist.size)
            right += np.bincount(bins[valid & (gt == a.mask)], minlength=hist.size)
    backend.release()
    print(f'fast vs exact agreement: mean {np.mean(agreements) * 100:.2f}%, '
          f'min {np.min(agreements) * 100:.2f}% over {len(agreements)} frames')
    print('| confidence (mono8) | share of pixels | fast-mask accuracy on labelled pixels |')
    print('|---|---|---|')
    for i in range(hist.size):
        lo, hi = BIN_EDGES[i], BIN_EDGES[i + 1] - 1
        span = f'{lo}' if lo == hi else f'{lo}-{hi}'
        acc = f'{right[i] / labelled[i] * 100:.1f}%' if labelled[i] else '-'
        print(f'| {span} | {hist[i] / hist.sum() * 100:.1f}% | {acc} |')
    return 0


if __name__ == '__main__':
    sys.exit(main())
