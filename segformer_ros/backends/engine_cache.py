"""Where built TensorRT engines live, and when a cached one may be reused.

An engine is only valid for the exact ONNX (and its external-data files), TensorRT
version, GPU (name, compute capability, SM count and memory: Orin modules share a name and
compute capability), precision and input shape profile it was built with, so the cache key
hashes all of them; a JSON sidecar records them so a mismatch can be explained ("built with
TensorRT 10.3.0 on Orin, this is 10.13.2 on Thor: rebuild"). The timing cache (tactic
timings, reusable across builds of similar networks) is kept beside the engines, one per
TensorRT version and GPU. The directory is created with mode 0o700: an engine may embed
host code and is loaded into the node's process, so other users must not write there.

Files are written crash-safe (robots lose power): a unique temp file beside the target
(several builds in one process -- composed nodes, several cameras' models -- share the
timing cache), ``fsync`` of the file, ``os.replace``, ``fsync`` of the directory. The
sidecar, written after the engine, records the engine's size and SHA-256, so an engine
that is empty, truncated or zero-filled after a crash is recognised (:func:`engine_intact`)
and rebuilt instead of being taken for a stale one.
"""

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..errors import BackendError

Shape = Tuple[int, ...]
# (input name, min, opt, max) per dynamic input
ShapeProfile = Tuple[Tuple[str, Shape, Shape, Shape], ...]

DEFAULT_CACHE_DIR = '~/.cache/segformer_ros'
_CHUNK = 1 << 20


def file_sha256(path: str) -> str:
    """SHA-256 of a file's bytes (hex)."""
    h = hashlib.sha256()
    try:
        with open(path, 'rb') as f:
            for chunk in iter(lambda: f.read(_CHUNK), b''):
                h.update(chunk)
    except OSError as exc:
        raise BackendError(f"cannot read model '{path}' to hash it: {exc}") from None
    return h.hexdigest()


def onnx_sha256(path: str) -> str:
    """SHA-256 of an ONNX model together with the external-data files it names.

    Large models keep their weights beside the graph (``location`` entries of tensors stored
    externally); a changed weight file must change the key, so each file named in the
    protobuf that exists beside the model is folded into the hash in sorted order.
    """
    main = file_sha256(path)
    extra = external_data_files(path)
    if not extra:
        return main
    h = hashlib.sha256(main.encode())
    for name in extra:
        h.update(name.encode())
        h.update(file_sha256(str(Path(path).parent / name)).encode())
    return h.hexdigest()


def external_data_files(path: str) -> List[str]:
    """Names of the external-data files an ONNX model refers to (relative, sorted)."""
    try:
        import onnx
    except ImportError:
        return _external_data_files_raw(path)
    try:
        model = onnx.load(path, load_external_data=False)
    except Exception:  # noqa: BLE001 - not parseable here: TensorRT's parser will say why
        return _external_data_files_raw(path)
    names = set()
    for tensor in model.graph.initializer:   # where exporters put external weights
        for entry in tensor.external_data:
            if entry.key == 'location':
                names.add(entry.value)
    return sorted(n for n in names if (Path(path).parent / n).is_file())


def _external_data_files_raw(path: str) -> List[str]:
    """Without the onnx package: files beside the model whose names occur in its bytes.

    A location string is stored verbatim in the protobuf (after the key 'location'), so a
    sibling file whose name occurs in a model that mentions 'location' is a candidate.
    """
    data = Path(path).read_bytes()
    if b'location' not in data:
        return []
    here = Path(path)
    return sorted(p.name for p in here.parent.iterdir()
                  if p.is_file() and p != here and p.name.encode() in data)


def profile_text(profile: ShapeProfile) -> str:
    """Canonical text of a shape profile, e.g. 'input:1x3x512x512/1x3x1024x1024/...'."""
    def dims(shape: Shape) -> str:
        return 'x'.join(str(int(d)) for d in shape)
    return ';'.join(f'{name}:{dims(lo)}/{dims(opt)}/{dims(hi)}'
                    for name, lo, opt, hi in sorted(profile))


@dataclass(frozen=True)
class EngineKey:
    """Everything a built engine depends on."""

    onnx_sha256: str
    trt_version: str
    gpu_name: str
    compute_capability: Tuple[int, int]
    precision: str
    profile: str  # profile_text(...)
    sm_count: int = 0        # multiprocessors: Orin NX 8 GB vs 16 GB share name and cc
    total_memory: int = 0    # bytes of device memory
    # Version of the backend's own build logic (how the network is parsed and configured):
    # bumped when that changes, so engines built the old way are rebuilt. Sidecars written
    # before the field existed read as 0.
    build_logic: int = 0

    def digest(self) -> str:
        """Short stable hash of all fields (the cache file name stem)."""
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:24]

    def mismatch(self, other: 'EngineKey') -> Dict[str, Tuple[object, object]]:
        """Fields that differ: {field: (this, other)}."""
        a, b = asdict(self), asdict(other)
        return {k: (a[k], b[k]) for k in a if a[k] != b[k]}


def make_key(onnx_path: str, trt_version: str, gpu_name: str, compute_capability: Sequence[int],
             precision: str, profile: ShapeProfile, sm_count: int = 0,
             total_memory: int = 0, build_logic: int = 0,
             onnx_digest: Optional[str] = None) -> EngineKey:
    """Build the key of an engine built from ``onnx_path`` with these settings.

    ``onnx_digest``: :func:`onnx_sha256` of the model when the caller has it already.
    """
    cc = tuple(int(c) for c in compute_capability)
    if len(cc) != 2:
        raise BackendError(f'expected compute capability (major, minor), got {tuple(cc)}')
    return EngineKey(onnx_digest or onnx_sha256(onnx_path), str(trt_version),
                     str(gpu_name).strip(), (cc[0], cc[1]), precision, profile_text(profile),
                     int(sm_count), int(total_memory), int(build_logic))


def key_for_device(onnx_path: str, trt_version: str, device: Any, precision: str,
                   profile: ShapeProfile, build_logic: int = 0,
                   onnx_digest: Optional[str] = None) -> EngineKey:
    """make_key with the GPU fields of a ``cuda.runtime.DeviceInfo``."""
    return make_key(onnx_path, trt_version, device.name, device.compute_capability, precision,
                    profile, int(getattr(device, 'sm_count', 0) or 0),
                    int(getattr(device, 'total_memory', 0) or 0), build_logic, onnx_digest)


class EngineCache:
    """A directory of ``<stem>-<digest>.engine`` files with ``.json`` sidecars."""

    def __init__(self, directory: str = '') -> None:
        self.directory = Path(os.path.expanduser(directory or DEFAULT_CACHE_DIR))

    def ensure_dir(self) -> Path:
        """Create the directory (0o700) if needed; refuse a world-writable one."""
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise BackendError(f"cannot create engine cache dir '{self.directory}': {exc}; "
                               f'set engine_cache_dir to a writable directory') from None
        mode = self.directory.stat().st_mode & 0o777
        if mode & 0o002:
            raise BackendError(f"engine cache dir '{self.directory}' is world-writable "
                               f'(mode {oct(mode)}); expected 0o700: chmod 700 it or pick '
                               f'another engine_cache_dir')
        return self.directory

    def engine_path(self, key: EngineKey, stem: str = 'model') -> Path:
        """Path of the engine for ``key`` (whether or not it exists)."""
        safe = ''.join(c if c.isalnum() or c in '-_' else '_' for c in stem)[:64] or 'model'
        return self.directory / f'{safe}-{key.digest()}.engine'

    def timing_cache_path(self, trt_version: str, gpu_name: str,
                          compute_capability: Sequence[int], sm_count: int = 0) -> Path:
        """Return the timing cache file for this TensorRT version and GPU.

        The SM count is part of it as it is of the engine key: Orin modules share name and
        compute capability, and tactic timings of an 8-SM part mislead a 16-SM one.
        """
        tag = hashlib.sha256(f'{trt_version}|{gpu_name}|{tuple(compute_capability)}|'
                             f'{int(sm_count)}'.encode())
        return self.directory / f'timing-{tag.hexdigest()[:16]}.cache'

    @staticmethod
    def sidecar(engine_path: Path) -> Path:
        """Return the JSON metadata file beside an engine."""
        return engine_path.with_suffix('.json')

    def profile_memo(self, onnx_digest: str, input_hw: Optional[Sequence[int]],
                     trt_version: str) -> Path:
        """File remembering the input profile TensorRT's parser found for this ONNX.

        Without the onnx package the profile (part of the key) comes from a TensorRT parse;
        remembered here, a cached engine is found without parsing on every configure.
        """
        hw = 'x'.join(str(int(d)) for d in input_hw) if input_hw else '-'
        tag = hashlib.sha256(f'{onnx_digest}|{hw}|{trt_version}'.encode()).hexdigest()[:24]
        return self.directory / f'profile-{tag}.json'

    def lookup(self, key: EngineKey, stem: str = 'model') -> Optional[Path]:
        """Path of a cached engine whose sidecar matches ``key`` exactly, else None."""
        path = self.engine_path(key, stem)
        meta = read_sidecar(path)
        if path.is_file() and meta is not None and meta == key:
            return path
        return None

    def discard(self, engine_path: Path) -> None:
        """Remove a cached engine and its sidecar (e.g. one that failed its accuracy check)."""
        for path in (Path(engine_path), self.sidecar(Path(engine_path))):
            try:
                path.unlink()
            except FileNotFoundError:
                pass

    def store(self, key: EngineKey, engine_bytes: bytes, stem: str = 'model',
              notes: Optional[Dict[str, Any]] = None) -> Path:
        """Write an engine and its sidecar atomically (rename), mode 0o600.

        ``notes`` (e.g. the effective precision) are recorded beside the key fields.
        """
        self.ensure_dir()
        path = self.engine_path(key, stem)
        write_engine(path, engine_bytes, key, notes)
        return path


def write_engine(path: Path, engine_bytes: bytes, key: EngineKey,
                 notes: Optional[Dict[str, Any]] = None) -> None:
    """Write an engine file and its JSON sidecar (key fields + ``notes``), crash-safe.

    The sidecar (written second) records the engine's size and SHA-256: see
    :func:`engine_intact`.
    """
    _atomic_write(path, engine_bytes)
    notes = dict(notes or {})
    notes.update(engine_size=len(engine_bytes),
                 engine_sha256=hashlib.sha256(engine_bytes).hexdigest())
    write_sidecar(path, key, notes)


def engine_intact(engine_path: Path, data: bytes) -> Optional[str]:
    """Say why ``data`` (read from ``engine_path``) is not the engine the sidecar recorded.

    None when it is, and for sidecars without a recorded size (older ones vouch for nothing).
    """
    notes = read_notes(engine_path)
    size = notes.get('engine_size')
    if not isinstance(size, int):
        return None
    if len(data) != size:
        return f'{len(data)} of {size} bytes'
    digest = notes.get('engine_sha256')
    if isinstance(digest, str) and hashlib.sha256(data).hexdigest() != digest:
        return f'{size} bytes, but not the bytes written (SHA-256 differs)'
    return None


def write_sidecar(path: Path, key: EngineKey, notes: Optional[Dict[str, Any]] = None) -> None:
    """Write (or rewrite) the JSON sidecar of an engine: key fields + ``note_*`` fields."""
    meta: Dict[str, Any] = dict(asdict(key))
    meta.update({f'note_{k}': v for k, v in (notes or {}).items()})
    _atomic_write(EngineCache.sidecar(path), json.dumps(meta, indent=1).encode())


def read_notes(engine_path: Path) -> Dict[str, Any]:
    """Return the ``notes`` recorded beside an engine (empty when absent/unreadable)."""
    try:
        data = json.loads(EngineCache.sidecar(Path(engine_path)).read_text())
    except (OSError, ValueError):
        return {}
    return {k[5:]: v for k, v in data.items() if isinstance(k, str) and k.startswith('note_')}


def read_sidecar(engine_path: Path) -> Optional[EngineKey]:
    """Return the EngineKey recorded beside ``engine_path`` (None if absent/unreadable)."""
    try:
        data = json.loads(EngineCache.sidecar(Path(engine_path)).read_text())
        data = {k: v for k, v in data.items() if not str(k).startswith('note_')}
        data['compute_capability'] = tuple(data['compute_capability'])
        return EngineKey(**data)
    except (OSError, ValueError, TypeError, KeyError):
        return None


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a crash leaves the old file or the new one, whole.

    A unique temp name per call (mkstemp: 0o600, O_EXCL), so concurrent writers in one
    process never share a temp file; the data is fsynced before the rename and the
    directory after it, so the rename cannot reach the disk before the bytes (ext4's
    delayed allocation otherwise leaves an empty or zero-filled file after a power cut).
    """
    fd, name = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.tmp', dir=str(path.parent))
    tmp = Path(name)
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    """Persist a rename: fsync the directory (POSIX; not possible everywhere, then skipped)."""
    try:
        fd = os.open(str(directory), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass   # some filesystems refuse fsync on a directory; the data itself is synced
    finally:
        os.close(fd)


def describe_mismatch(found: EngineKey, wanted: EngineKey) -> str:
    """One sentence naming what differs between a cached engine and this setup."""
    diffs = found.mismatch(wanted)
    parts = [f'{k}: engine {a!r}, here {b!r}' for k, (a, b) in diffs.items()
             if k != 'onnx_sha256']
    if 'onnx_sha256' in diffs:
        parts.insert(0, 'the ONNX file changed')
    return '; '.join(parts) or 'no difference recorded'
