"""segformer-ros-import-nvinfer: a DeepStream nvinfer config -> this node's params file.

``segformer-ros-import-nvinfer CONFIG -o PARAMS.yaml`` writes a ROS 2 params file (for
``params_file:=`` or ``--params``) from a Gst-nvinfer config; the keys it maps and every key
it does not map, with the reason, are written as comments at its top and printed on stderr.
The node can also read the nvinfer config itself: ``nvinfer_config:=CONFIG`` (our own
parameters override it). The mapping is :mod:`segformer_ros.nvinfer_config`'s.
Exit codes: 0 written, 2 a config that cannot be imported (the reason on stderr).
"""

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from ..errors import SegformerRosError


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of the importer."""
    p = argparse.ArgumentParser(
        prog='segformer-ros-import-nvinfer',
        description='Write a segformer_ros params file from a DeepStream nvinfer config file.')
    p.add_argument('config', help='nvinfer config file (INI with a [property] group)')
    p.add_argument('-o', '--output', default='-',
                   help="params YAML to write ('-' = stdout, the default)")
    p.add_argument('--node-name', default='segformer',
                   help='node name of the params file section (default segformer)')
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Import; return the exit code (0 written, 2 error)."""
    from ..nvinfer_config import import_nvinfer, params_yaml
    from ..parameters import pipeline_config_from_params

    args = build_parser().parse_args(argv)
    try:
        imported = import_nvinfer(args.config)
        pipeline_config_from_params(imported.params)  # the values must make a valid config
    except SegformerRosError as exc:
        print(f'segformer-ros-import-nvinfer: error: {exc}', file=sys.stderr, flush=True)
        return 2
    text = params_yaml(imported, args.config, args.node_name)
    if args.output == '-':
        sys.stdout.write(text)
    else:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text)
    for key, target in imported.mapped.items():
        print(f'mapped      {key} -> {target}', file=sys.stderr)
    for key, reason in imported.unmapped.items():
        print(f'not mapped  {key}: {reason}', file=sys.stderr)
    print(f'{len(imported.mapped)} keys mapped, {len(imported.unmapped)} not mapped'
          + (f'; wrote {args.output}' if args.output != '-' else ''), file=sys.stderr, flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
