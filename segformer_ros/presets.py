"""Read ROS 2 parameter files (config/*.yaml presets) without ROS.

The tools (eval, selfcheck) and the tests read the same presets the node is launched
with, so a preset means the same thing everywhere. A params file looks like::

    segformer:               # node name; also /segformer, /ns/segformer, /** or ns: {segformer: }
      ros__parameters:
        model_path: model.onnx
        mean: [123.675, 116.28, 103.53]

Sections that apply to the node are merged in file order, wildcard sections (``/**``)
first, so a section naming the node overrides a wildcard one.
"""

import fnmatch
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from .errors import ConfigError
from .parameters import PARAMETER_NAMES

PACKAGE_NAME = 'segformer_ros'
# Parameters every rclpy node has; not ours, but not mistakes either.
ROS_BUILTIN_PARAMETERS: Tuple[str, ...] = ('use_sim_time', 'start_type_description_service')
_ROS_BUILTIN_PREFIXES: Tuple[str, ...] = ('qos_overrides.',)


def _flatten(prefix: str, values: Mapping[str, Any], out: Dict[str, Any]) -> None:
    """Nested mappings become dotted names, as ROS 2 does (``a: {b: 1}`` -> ``a.b``)."""
    for key, value in values.items():
        name = f'{prefix}{key}'
        if isinstance(value, Mapping):
            _flatten(name + '.', value, out)
        else:
            out[name] = value


def _node_key_matches(key: str, node_name: str) -> Tuple[bool, bool]:
    """Return (matches, is_wildcard) for a params-file node key such as ``/ns/segformer``.

    Only the last name is compared (with ``*`` / ``**`` globs): the tools run without a
    namespace, and the node gets its namespace's section from ROS itself.
    """
    parts = [part for part in key.strip('/').split('/') if part]
    if not parts:
        return False, False
    last = parts[-1]
    wildcard = '*' in last
    return (last == '**' or fnmatch.fnmatchcase(node_name, last)), wildcard


def _sections(doc: Mapping[str, Any], node_name: str, namespace: str = ''
              ) -> List[Tuple[bool, Mapping[str, Any]]]:
    """(is_wildcard, ros__parameters) for each section of ``doc`` that applies to the node."""
    found: List[Tuple[bool, Mapping[str, Any]]] = []
    for key, value in doc.items():
        if not isinstance(value, Mapping):
            continue
        full = f'{namespace}/{str(key).strip("/")}' if namespace else str(key)
        if 'ros__parameters' in value:
            matches, wildcard = _node_key_matches(full, node_name)
            if matches:
                params = value['ros__parameters'] or {}
                if not isinstance(params, Mapping):
                    raise ConfigError(f'ros__parameters of {full!r} must be a mapping, got '
                                      f'{type(params).__name__}')
                found.append((wildcard, params))
        else:
            # Nested form: ns: {segformer: {ros__parameters: ...}}.
            found.extend(_sections(value, node_name, full))
    return found


def load_params_file(path: Union[str, Path], node_name: str = 'segformer') -> Dict[str, Any]:
    """Load the parameters a ROS 2 params file gives node ``node_name``.

    Returns a flat ``{name: value}`` dict (unknown names included: check them with
    :func:`unknown_parameters`). Raises ConfigError when the file is missing, is not
    YAML, or has no section for the node.
    """
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"params file '{p}' does not exist; expected a ROS 2 params YAML "
                          f'(e.g. one of config/*.yaml)')
    try:
        doc = yaml.safe_load(p.read_text(encoding='utf-8'))
    except yaml.YAMLError as exc:
        raise ConfigError(f"params file '{p}' is not valid YAML: {exc}") from None
    if not isinstance(doc, Mapping):
        raise ConfigError(f"params file '{p}': expected a mapping '{node_name}: "
                          f"ros__parameters: ...' at the top, got {type(doc).__name__}")
    sections = _sections(doc, node_name)
    if not sections:
        raise ConfigError(
            f"params file '{p}' has no parameters for node '{node_name}'; expected a top-level "
            f"'{node_name}:' (or '/**:') key holding 'ros__parameters:', found keys "
            f'{sorted(str(k) for k in doc)}')
    params: Dict[str, Any] = {}
    for _wild, section in sorted(sections, key=lambda s: not s[0]):  # stable: wildcards first
        _flatten('', section, params)
    return params


def params_file_node_problem(path: Union[str, Path], node_name: str) -> Optional[str]:
    """Why ``path`` gives node ``node_name`` nothing (a wrong top-level key), or None.

    ROS skips a section whose key does not name the node without a word, so a params file
    keyed ``segformer_node:`` for the node ``segformer`` would be silently ignored.
    Unreadable files are none of this check's business (None): rcl reports them.
    """
    import yaml

    try:
        doc = yaml.safe_load(Path(path).read_text(encoding='utf-8'))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    if not isinstance(doc, Mapping) or _sections(doc, node_name):
        return None
    return (f"params file '{path}' has no entry for this node '{node_name}' (top-level keys "
            f"found: {sorted(str(k) for k in doc)}); its parameters are ignored. Expected a "
            f"top-level '{node_name}:' (or '/**:') key holding 'ros__parameters:'")


def unknown_parameters(params: Mapping[str, Any]) -> List[str]:
    """Names in ``params`` that are neither node parameters nor rclpy built-ins (typos)."""
    return sorted(k for k in params
                  if k not in PARAMETER_NAMES and k not in ROS_BUILTIN_PARAMETERS
                  and not k.startswith(_ROS_BUILTIN_PREFIXES))


def _config_dirs() -> List[Path]:
    # The checkout, the ament index (colcon) and pip's <prefix>/share: see assets.share_dirs.
    from .assets import share_dirs
    return [d / 'config' for d in share_dirs(PACKAGE_NAME)]


def available_presets() -> List[str]:
    """Names of the presets found (see :func:`preset_path`)."""
    names = set()
    for d in _config_dirs():
        if d.is_dir():
            names.update(f.stem for f in d.glob('*.yaml'))
    return sorted(names)


def preset_path(name: str) -> Path:
    """Find ``config/<name>.yaml`` in the source tree or the installed share directory."""
    stem = name[:-5] if name.endswith('.yaml') else name
    for d in _config_dirs():
        candidate = d / f'{stem}.yaml'
        if candidate.is_file():
            return candidate
    raise ConfigError(f'preset {name!r} not found; expected one of {available_presets()} '
                      f'(searched {[str(d) for d in _config_dirs()]})')


def resolve_params_file(path_or_name: str) -> Path:
    """Return the params file given as a path, or as a preset name (``segformer_cityscapes``)."""
    p = Path(path_or_name)
    if p.is_file():
        return p
    if p.suffix in ('', '.yaml') and len(p.parts) == 1:
        return preset_path(path_or_name)
    raise ConfigError(f"params file '{path_or_name}' does not exist; give a YAML path or a "
                      f'preset name from {available_presets()}')
