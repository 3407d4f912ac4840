"""Find the package's data files (config/, assets/) and resolve model paths, without ROS.

Params files refer to files shipped with a package as ``package://<package>/<path>``, e.g.::

    model_path: package://segformer_ros/assets/models/deeplab_mnv_edgetpu_slim_cityscapes.onnx

(the bundled file's name is longer; see :data:`BUNDLED_MODEL_URI`), which means
``<share dir of the package>/<path>``, like ``$(find-pkg-share <package>)/<path>`` in a launch
file. For segformer_ros the share dir is found, in this order, in:

1. the source checkout this module runs from (the directory holding ``package.xml``);
2. the ament index (a colcon install: ``<prefix>/share/segformer_ros``);
3. ``<sys.prefix>/share/segformer_ros`` and the user base's ``share/segformer_ros``
   (``pip install`` puts config/, launch/ and assets/ there as data files).

Other packages resolve through the ament index only. Never the current directory: a params file
means the same wherever the node is started. Plain relative paths still resolve against the
current directory (as ROS does), and a missing one says which directory that was.
"""

import os
import site
import sys
from pathlib import Path
from typing import List, Optional

from .errors import ConfigError

PACKAGE_NAME = 'segformer_ros'
PACKAGE_URI_SCHEME = 'package://'
_BUNDLED_MODEL_FILE = 'deeplab_mnv_edgetpu_slim_cityscapes_nchw_f32.onnx'
# The embedded default: what the node loads when model_path is empty.
BUNDLED_MODEL_URI = f'{PACKAGE_URI_SCHEME}{PACKAGE_NAME}/assets/models/{_BUNDLED_MODEL_FILE}'
BUNDLED_VIDEO_URI = f'{PACKAGE_URI_SCHEME}{PACKAGE_NAME}/assets/data/solidWhiteRight.mp4'
# The params file holding the bundled model's own conventions (normalisation, resize, I/O).
BUNDLED_MODEL_PRESET = 'deeplab_mobilenet_cityscapes'


def _source_checkout() -> Optional[Path]:
    root = Path(__file__).resolve().parents[1]
    return root if (root / 'package.xml').is_file() else None


def _ament_share(package: str) -> Optional[Path]:
    try:
        from ament_index_python.packages import (PackageNotFoundError,
                                                 get_package_share_directory)
    except ImportError:
        return None
    try:
        return Path(get_package_share_directory(package))
    except (PackageNotFoundError, ValueError, LookupError, OSError):
        # OSError/LookupError: AMENT_PREFIX_PATH unset or the package is not in the index.
        return None


def share_dirs(package: str = PACKAGE_NAME) -> List[Path]:
    """Directories that may hold ``package``'s data files, in search order (existing ones)."""
    candidates: List[Optional[Path]] = []
    if package == PACKAGE_NAME:
        candidates.append(_source_checkout())
    candidates.append(_ament_share(package))
    if package == PACKAGE_NAME:
        prefixes = [sys.prefix, getattr(site, 'USER_BASE', None) or '']
        candidates += [Path(p) / 'share' / package for p in prefixes if p]
    found: List[Path] = []
    for d in candidates:
        if d is not None and d.is_dir() and d.resolve() not in [f.resolve() for f in found]:
            found.append(d)
    return found


def resolve_package_uri(uri: str) -> Path:
    """Return the file a ``package://<package>/<path>`` URI names; ConfigError when absent."""
    rest = uri[len(PACKAGE_URI_SCHEME):]
    package, _, relative = rest.partition('/')
    if not package or not relative:
        raise ConfigError(f"'{uri}' is not a package URI; expected "
                          f'{PACKAGE_URI_SCHEME}<package>/<path inside its share directory>')
    dirs = share_dirs(package)
    for d in dirs:
        candidate = d / relative
        if candidate.exists():
            return candidate
    where = [str(d) for d in dirs] or ['no share directory found']
    raise ConfigError(f"'{uri}': no file '{relative}' in the share directory of {package} "
                      f'(searched {where}); check the path, or rebuild/reinstall the package')


def resolve_model_path(value: str) -> str:
    """Return the model file ``value`` names: a package URI resolved, ``~`` expanded.

    Cheap and without file-system checks for plain paths (the backends check at configure,
    with :func:`relative_path_note` in their "does not exist" errors); a package URI whose
    file is absent raises ConfigError naming the directories searched.
    """
    if value.startswith(PACKAGE_URI_SCHEME):
        return str(resolve_package_uri(value))
    return os.path.expanduser(value)


def relative_path_note(path: str, cwd: Optional[str] = None) -> str:
    """For a relative ``path``: which directory it was resolved against; else ''."""
    if not path or os.path.isabs(path):
        return ''
    base = Path(cwd) if cwd is not None else Path.cwd()
    return (f" (a relative path resolves against the process's current directory, here "
            f"'{base}', giving '{base / path}'; use an absolute path, or "
            f'{PACKAGE_URI_SCHEME}<package>/<path> for a file installed with a package)')


def bundled_model_path() -> Path:
    """Return the bundled demo model (ConfigError if installed without it)."""
    return resolve_package_uri(BUNDLED_MODEL_URI)


def bundled_video_path() -> Path:
    """Return the bundled demo clip (ConfigError if installed without it)."""
    return resolve_package_uri(BUNDLED_VIDEO_URI)
