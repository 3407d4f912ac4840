"""segformer-ros-export: Hugging Face SegFormer checkpoint -> ONNX for the segformer node.

The ONNX file has one input ``input`` (float32 NCHW, RGB, normalized as the checkpoint's
image processor says) and one output ``logits`` (float32 (N, num_labels, H/4, W/4)),
which is what :class:`segformer_ros.backends.onnxruntime_backend.OnnxRuntimeBackend` and
the TensorRT backend expect. Opset >= 17 keeps each LayerNorm a single
``LayerNormalization`` node (TensorRT runs it in one fused kernel, fp16-safe).

torch and transformers are optional extras, imported only here::

    pip install 'segformer_ros[export]'
"""

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

MIN_OPSET = 17
INPUT_NAME = 'input'
OUTPUT_NAME = 'logits'
_INSTALL_HINT = ("in this repository's development venv: make setup EXPORT=1; elsewhere: "
                 "pip install 'segformer_ros[export]' (torch, transformers, onnx)")


def _print(msg: str) -> None:
    print(msg, flush=True)


def _error(msg: str) -> None:
    print(f'segformer-ros-export: error: {msg}', file=sys.stderr, flush=True)


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of the export tool."""
    parser = argparse.ArgumentParser(
        prog='segformer-ros-export',
        description='Export a Hugging Face SegFormer checkpoint (directory or hub id) to ONNX '
                    "with input 'input' (N,3,H,W) and output 'logits' (N,C,H/4,W/4).")
    parser.add_argument('checkpoint', help='checkpoint directory (save_pretrained output) or a '
                        'hub id such as nvidia/segformer-b0-finetuned-cityscapes-1024-1024 '
                        '(hub ids need internet access)')
    parser.add_argument('-o', '--output', required=True, help='ONNX file to write')
    parser.add_argument('--height', type=int, default=1024,
                        help='input height (fixed export; with --dynamic: trace/check size)')
    parser.add_argument('--width', type=int, default=1024,
                        help='input width (fixed export; with --dynamic: trace/check size)')
    shapes = parser.add_mutually_exclusive_group()
    shapes.add_argument('--dynamic', action='store_true',
                        help='dynamic batch, height and width (set input_height/input_width '
                             'in the node parameters, or the TensorRT profile)')
    shapes.add_argument('--dynamic-batch', action='store_true',
                        help='dynamic batch, fixed height and width: several cameras share '
                             'one inference (the node batches up to max_batch_size frames)')
    parser.add_argument('--opset', type=int, default=MIN_OPSET,
                        help=f'ONNX opset (>= {MIN_OPSET}, default {MIN_OPSET})')
    parser.add_argument('--check', action='store_true',
                        help='run the export with onnxruntime and compare with torch')
    parser.add_argument('--tolerance', type=float, default=1e-3,
                        help='largest accepted max abs logit difference for --check '
                             '(default 1e-3)')
    return parser


def _import_deps() -> Tuple[Any, Any]:
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise RuntimeError(f'the export needs torch and transformers ({exc}); '
                           f'{_INSTALL_HINT}') from None
    return torch, transformers


def load_model(checkpoint: str) -> Any:
    """Load a SegformerForSemanticSegmentation in eval mode (float32, CPU)."""
    _torch, transformers = _import_deps()
    try:
        model = transformers.SegformerForSemanticSegmentation.from_pretrained(checkpoint)
    except (OSError, ValueError) as exc:
        raise RuntimeError(f"cannot load SegFormer checkpoint '{checkpoint}': "
                           f'{str(exc).splitlines()[0]}; expected a directory with '
                           f'config.json + weights, or a hub id (needs internet)') from None
    return model.float().eval()


def export_onnx(model: Any, output: Path, height: int, width: int, dynamic: bool,
                opset: int = MIN_OPSET, dynamic_batch: bool = False) -> None:
    """Trace ``model`` to ONNX with one input ``input`` and one output ``logits``.

    ``dynamic``: batch, height and width dynamic; ``dynamic_batch``: the batch alone.
    """
    torch, _transformers = _import_deps()

    class LogitsOnly(torch.nn.Module):
        """Return the logits tensor instead of HF's output dataclass."""

        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, pixel_values: Any) -> Any:
            return self.inner(pixel_values=pixel_values, return_dict=True).logits

    wrapped = LogitsOnly(model).eval()
    dummy = torch.zeros(1, 3, height, width, dtype=torch.float32)
    dynamic_axes = None
    if dynamic:
        dynamic_axes = {INPUT_NAME: {0: 'batch', 2: 'height', 3: 'width'},
                        OUTPUT_NAME: {0: 'batch', 2: 'logits_height', 3: 'logits_width'}}
    elif dynamic_batch:
        dynamic_axes = {INPUT_NAME: {0: 'batch'}, OUTPUT_NAME: {0: 'batch'}}
    output.parent.mkdir(parents=True, exist_ok=True)
    kwargs = dict(input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                  opset_version=opset, dynamic_axes=dynamic_axes, do_constant_folding=True)
    with torch.no_grad(), warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of dynamo; we use it on purpose.
        warnings.filterwarnings('ignore', category=DeprecationWarning)
        # transformers' SDPA helper tests `q_length > 1 and ... and is_causal`; SegFormer
        # attention is never causal, so the traced constant (False) is right at any size.
        warnings.filterwarnings('ignore', message='Converting a tensor to a Python boolean')
        try:
            # The TorchScript exporter: stable graphs with fused LayerNormalization at opset 17.
            torch.onnx.export(wrapped, (dummy,), str(output), dynamo=False, **kwargs)
        except TypeError:  # torch < 2.5 has no 'dynamo' argument
            torch.onnx.export(wrapped, (dummy,), str(output), **kwargs)


def graph_summary(path: Path) -> dict:
    """Op counts and I/O of an ONNX file (LayerNormalization count included)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    ops: dict = {}
    for node in model.graph.node:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1

    def dims(value_info: Any) -> List[Any]:
        return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]

    opset = max((o.version for o in model.opset_import if o.domain in ('', 'ai.onnx')),
                default=0)
    return {
        'opset': opset,
        'inputs': {i.name: dims(i) for i in model.graph.input},
        'outputs': {o.name: dims(o) for o in model.graph.output},
        'layer_norm_nodes': ops.get('LayerNormalization', 0),
        'nodes': sum(ops.values()),
    }


def check_export(model: Any, path: Path, sizes: Sequence[Tuple[int, int]],
                 batches: Sequence[int] = (1,)) -> float:
    """Largest |torch - onnxruntime| logit difference over random inputs of ``sizes``.

    Each size runs at every batch in ``batches`` (several prove a dynamic batch).
    """
    torch, _transformers = _import_deps()
    from ..backends.onnxruntime_backend import OnnxRuntimeBackend

    rng = np.random.default_rng(0)
    worst = 0.0
    with OnnxRuntimeBackend(str(path)) as backend:
        for (h, w), n in ((size, n) for size in sizes for n in batches):
            x = rng.standard_normal((n, 3, h, w)).astype(np.float32)
            with torch.no_grad():
                ref = model(pixel_values=torch.from_numpy(x)).logits.numpy()
            got = backend.infer(x)
            if got.shape != ref.shape:
                raise RuntimeError(f'onnxruntime output shape {got.shape} != torch {ref.shape} '
                                   f'at input {h}x{w}')
            worst = max(worst, float(np.max(np.abs(got - ref))))
    return worst


def checkpoint_normalization(checkpoint: str) -> Tuple[List[float], List[float], str]:
    """(mean, std on 0..255 pixels, where from) of the checkpoint's image processor.

    A local ``preprocessor_config.json`` first; else SegformerImageProcessor's defaults
    (ImageNet statistics), which hub SegFormer checkpoints use.
    """
    from ..parameters import IMAGENET_MEAN, IMAGENET_STD

    cfg = Path(checkpoint) / 'preprocessor_config.json'
    if cfg.is_file():
        try:
            data = json.loads(cfg.read_text())
            mean = [round(255.0 * float(m), 4) for m in data['image_mean']]
            std = [round(255.0 * float(s), 4) for s in data['image_std']]
            if len(mean) == 3 and len(std) == 3:
                return mean, std, str(cfg)
        except (ValueError, KeyError, TypeError):
            pass
    return list(IMAGENET_MEAN), list(IMAGENET_STD), 'SegformerImageProcessor defaults (ImageNet)'


def write_preprocessing_metadata(path: Path, mean: Sequence[float], std: Sequence[float],
                                 channel_order: str = 'rgb') -> None:
    """Store the model's normalization in the ONNX file (the node refuses another one)."""
    import onnx

    from ..model_metadata import PREPROCESSING_KEY, preprocessing_metadata

    model = onnx.load(str(path), load_external_data=False)
    kept = [p for p in model.metadata_props if p.key != PREPROCESSING_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    entry = model.metadata_props.add()
    entry.key = PREPROCESSING_KEY
    entry.value = preprocessing_metadata(mean, std, channel_order)
    onnx.save(model, str(path))


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the export tool; return the process exit code (0 ok, 1 check failed, 2 error)."""
    args = build_parser().parse_args(argv)
    if args.opset < MIN_OPSET:
        _error(f'--opset must be >= {MIN_OPSET} (LayerNormalization is a single op only from '
               f'opset 17), got {args.opset}')
        return 2
    if args.height < 32 or args.width < 32:
        _error(f'--height/--width must be >= 32 (SegFormer downsamples by 32), got '
               f'{args.width}x{args.height}')
        return 2
    output = Path(args.output)
    try:
        model = load_model(args.checkpoint)
        num_labels = int(model.config.num_labels)
        _print(f'loaded {args.checkpoint}: {type(model).__name__}, {num_labels} classes, '
               f'hidden sizes {list(model.config.hidden_sizes)}')
        export_onnx(model, output, args.height, args.width, args.dynamic, args.opset,
                    dynamic_batch=args.dynamic_batch)
    except RuntimeError as exc:
        _error(str(exc))
        return 2
    summary = graph_summary(output)
    _print(f'wrote {output} (opset {summary["opset"]}, {summary["nodes"]} nodes)')
    _print(f'  input  {INPUT_NAME}: {summary["inputs"].get(INPUT_NAME)}')
    _print(f'  output {OUTPUT_NAME}: {summary["outputs"].get(OUTPUT_NAME)}')
    if summary['layer_norm_nodes']:
        _print(f'  LayerNorm: {summary["layer_norm_nodes"]} LayerNormalization nodes '
               f'(one op each, fused by TensorRT)')
    else:
        _print('  warning: no LayerNormalization nodes: LayerNorm was decomposed into '
               'primitive ops (slower, and fp16-sensitive in TensorRT)')
    mean, std, origin = checkpoint_normalization(args.checkpoint)
    write_preprocessing_metadata(output, mean, std)
    _print(f'  normalization for the node: mean: {mean}  std: {std}  (channel_order: rgb; '
           f'from {origin}); written to the ONNX metadata, the node refuses another one')
    if args.check:
        sizes = [(args.height, args.width)]
        if args.dynamic:
            # A second, different size proves the H/W really are dynamic.
            sizes.append((max(32, args.height // 2), max(32, args.width // 2 + 32)))
        try:
            batches = (1, 2) if (args.dynamic or args.dynamic_batch) else (1,)
            diff = check_export(model, output, sizes, batches)
        except Exception as exc:  # report any runtime failure of the export as a failed check
            _error(f'check failed: {exc}')
            return 1
        sizes_text = ', '.join(f'{w}x{h}' for h, w in sizes)
        if len(batches) > 1:
            sizes_text += f'; batch {", ".join(map(str, batches))}'
        verdict = 'ok' if diff <= args.tolerance else 'FAILED'
        _print(f'check ({sizes_text}): max abs logit difference torch vs onnxruntime '
               f'{diff:.3g} (tolerance {args.tolerance:g}): {verdict}')
        if diff > args.tolerance:
            return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
