"""Engine cache keys, sidecars, directory permissions."""

import os
import stat

import pytest

from segformer_ros.backends.engine_cache import (EngineCache, describe_mismatch, make_key,
                                                 profile_text, read_sidecar)
from segformer_ros.errors import BackendError

PROFILE = (('input', (1, 3, 512, 512), (1, 3, 1024, 1024), (1, 3, 1024, 1024)),)


@pytest.fixture
def onnx_file(tmp_path):
    p = tmp_path / 'm.onnx'
    p.write_bytes(b'not really onnx, but hashed all the same')
    return str(p)


def key(onnx, **kw):
    args = dict(trt_version='10.3.0', gpu_name='Orin', compute_capability=(8, 7),
                precision='fp16', profile=PROFILE)
    args.update(kw)
    return make_key(onnx, **args)


def test_key_changes_with_every_field(onnx_file, tmp_path):
    base = key(onnx_file).digest()
    assert key(onnx_file).digest() == base  # stable
    for change in (dict(trt_version='10.13.2'), dict(gpu_name='Thor'),
                   dict(compute_capability=(11, 0)), dict(precision='fp32'),
                   dict(profile=()), dict(sm_count=8), dict(build_logic=2)):
        assert key(onnx_file, **change).digest() != base, change
    other = tmp_path / 'n.onnx'
    other.write_bytes(b'different bytes')
    assert key(str(other)).digest() != base


def test_sha256_of_file(onnx_file):
    import hashlib
    with open(onnx_file, 'rb') as f:
        assert key(onnx_file).onnx_sha256 == hashlib.sha256(f.read()).hexdigest()


def test_store_lookup_and_mismatch(onnx_file, tmp_path):
    cache = EngineCache(str(tmp_path / 'cache' / 'deep'))
    k = key(onnx_file)
    assert cache.lookup(k, 'm') is None
    path = cache.store(k, b'ENGINE', 'm')
    assert path.read_bytes() == b'ENGINE'
    assert stat.S_IMODE(os.stat(cache.directory).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert cache.lookup(k, 'm') == path
    assert read_sidecar(path) == k
    k2 = key(onnx_file, trt_version='10.13.2')
    assert cache.lookup(k2, 'm') is None
    assert "trt_version: engine '10.3.0', here '10.13.2'" in describe_mismatch(k, k2)


def test_world_writable_dir_refused(tmp_path):
    d = tmp_path / 'open'
    d.mkdir()
    os.chmod(d, 0o777)
    with pytest.raises(BackendError, match='world-writable'):
        EngineCache(str(d)).ensure_dir()


def test_timing_cache_per_version_and_gpu(tmp_path):
    cache = EngineCache(str(tmp_path))
    a = cache.timing_cache_path('10.3.0', 'Orin', (8, 7))
    assert a == cache.timing_cache_path('10.3.0', 'Orin', (8, 7))
    assert a != cache.timing_cache_path('10.3.0', 'Orin', (8, 6))
    assert a != cache.timing_cache_path('10.3.0', 'Orin', (8, 7), 8)   # SM count (issue 23)
    assert a.parent == tmp_path


def test_profile_text_is_order_independent():
    p = (('b', (1,), (2,), (3,)), ('a', (1, 2), (1, 2), (1, 2)))
    assert profile_text(p) == profile_text(tuple(reversed(p))) == 'a:1x2/1x2/1x2;b:1/2/3'


def test_missing_onnx_is_a_clear_error(tmp_path):
    with pytest.raises(BackendError, match='cannot read model'):
        key(str(tmp_path / 'absent.onnx'))
