"""Product and lab apart: segformer_ros/ never imports benchmarks/, and only it is installed."""

import ast
from pathlib import Path
from typing import List, Tuple

REPO = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> List[Tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def test_product_does_not_import_the_lab() -> None:
    offenders = [f'{path.relative_to(REPO)}:{line} imports {module}'
                 for path in sorted((REPO / 'segformer_ros').rglob('*.py'))
                 for line, module in _imports(path)
                 if module == 'benchmarks' or module.startswith('benchmarks.')]
    assert not offenders, offenders


def test_lab_harnesses_live_in_benchmarks_only() -> None:
    lab = ['bench', 'bench_ros', 'bench_cameras', 'soak', 'naive_reference', 'rate_publisher',
           'recorder', 'processes', 'demo', 'gpu_verify']
    for name in lab:
        assert (REPO / 'benchmarks' / f'{name}.py').is_file(), name
        assert not (REPO / 'segformer_ros' / 'tools' / f'{name}.py').exists(), name
        assert not (REPO / 'tools' / f'{name}.py').exists(), name


def test_benchmarks_is_not_installed() -> None:
    setup_py = (REPO / 'setup.py').read_text()
    assert "find_packages(include=['segformer_ros', 'segformer_ros.*'])" in setup_py
    cmake = (REPO / 'CMakeLists.txt').read_text()
    assert 'benchmarks' not in cmake
