"""docs/architecture.md names files that exist, and every product module has its place."""

import re
from pathlib import Path
from typing import List

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / 'docs' / 'architecture.md'
# Top-level folders a path on the page may start with; anything else is under segformer_ros/.
TOP = ('segformer_ros/', 'benchmarks/', 'tools/', 'test/', 'config/', 'launch/', 'assets/',
       'msg/', 'scripts/', 'docs/')


def _code_spans(text: str) -> List[str]:
    return re.findall(r'`([^`\n]+)`', text)


def _path_like(span: str) -> bool:
    return (bool(re.fullmatch(r'[\w./-]+', span)) and ('/' in span or span.endswith('.py'))
            and not span.startswith(('/', '-', 'http')))


def test_every_path_on_the_page_exists() -> None:
    text = PAGE.read_text()
    missing = []
    for span in _code_spans(text):
        if not _path_like(span) or '/' not in span:
            continue
        candidates = [REPO / span] if span.startswith(TOP) else [REPO / 'segformer_ros' / span,
                                                                 REPO / span]
        if not any(c.exists() for c in candidates):
            missing.append(span)
    for link in re.findall(r'\]\(([^)#]+)\)', text):
        if not (PAGE.parent / link).exists():
            missing.append(link)
    assert not missing, f'docs/architecture.md names paths that do not exist: {missing}'


def test_every_bare_module_name_is_a_file() -> None:
    product = {p.name for p in (REPO / 'segformer_ros').rglob('*.py')}
    lab = {p.name for folder in ('benchmarks', 'tools', 'test')
           for p in (REPO / folder).rglob('*')}
    unknown = [s for s in _code_spans(PAGE.read_text())
               if _path_like(s) and '/' not in s and s not in product | lab
               and not (REPO / s).exists()]
    assert not unknown, f'docs/architecture.md names modules that do not exist: {unknown}'


def test_every_product_module_is_on_the_map() -> None:
    text = PAGE.read_text()
    spans = set(_code_spans(text))
    absent = []
    for path in sorted((REPO / 'segformer_ros').rglob('*.py')):
        if path.name == '__init__.py':
            continue
        relative = path.relative_to(REPO).as_posix()
        folder = path.parent.relative_to(REPO).as_posix() + '/'
        inner = path.relative_to(REPO / 'segformer_ros').as_posix()
        named = (relative in text or inner in spans
                 or (path.name in spans and (folder in text or folder == 'segformer_ros/')))
        # A folder's row covers its modules; the top level is named module by module.
        if not named and (folder == 'segformer_ros/' or folder not in spans):
            absent.append(relative)
    assert not absent, f'add these modules to the map of docs/architecture.md: {absent}'


def test_the_readme_stays_a_readme() -> None:
    """Issue 26: under 250 lines, and it leads the reader to the architecture page."""
    readme = (REPO / 'README.md').read_text()
    assert len(readme.splitlines()) < 250, (
        f'README.md has {len(readme.splitlines())} lines; move deep material to docs/ pages')
    assert '(docs/architecture.md)' in readme


def test_benchmarks_page_opens_with_the_results() -> None:
    """Issue 26: the first section of docs/benchmarks.md is the current results."""
    headings = [line for line in (REPO / 'docs' / 'benchmarks.md').read_text().splitlines()
                if line.startswith('## ')]
    assert headings and headings[0].lower().startswith('## current results'), headings[:3]
