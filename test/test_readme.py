"""The README's reference sections match the code."""

from pathlib import Path

from segformer_ros.parameters import markdown_table

README = Path(__file__).resolve().parents[1] / 'README.md'


def test_parameter_table_in_sync() -> None:
    text = README.read_text()
    begin, end = '<!-- parameters:begin -->\n', '<!-- parameters:end -->'
    table = text[text.index(begin) + len(begin):text.index(end)]
    assert table == markdown_table(), 'regenerate with segformer_ros.parameters.markdown_table()'


def test_quickstart_commands_present() -> None:
    text = README.read_text()
    assert 'make demo' in text and 'make test' in text


# ------------------------------------------- every command a user is shown must run
# Parsed from the README's ```bash blocks and the examples in the executables' --help; each
# runs (briefly) or is dry-run at --help level, and a command that needs what a plain clone
# lacks (a ROS 2 install, the network) is skipped with the reason, never silently.
import importlib  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import shlex  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from typing import List, Optional, Tuple  # noqa: E402

import pytest  # noqa: E402

REPO = README.parent
# Console scripts whose argparse parser is the dry run (they need models or torch to run).
ARGPARSE_TOOLS = {'segformer-ros-eval': 'segformer_ros.tools.evaluate',
                  'segformer-ros-selfcheck': 'segformer_ros.tools.selfcheck',
                  'segformer-ros-export': 'segformer_ros.tools.export',
                  'segformer-ros-build-engine': 'segformer_ros.tools.build_engine'}
# ROS executables of this package, run for real for a few seconds.
ROS_EXECUTABLES = {'segformer_node': 'segformer_ros.node_main',
                   'image_source': 'segformer_ros.image_source_main'}
# What a plain clone cannot do, with the reason a skip gives.
NEEDS_ROS = ('ros2', 'colcon', 'rosdep')
WORKSPACE_STEPS = ('mkdir', 'cd', 'git', 'source', 'pip')
# The quickstart's make targets: how each is followed (the literal command, or a dry run
# plus where it really runs).
MAKE_LITERAL = ('demo', 'shell')


def _join_continuations(lines: List[str]) -> List[str]:
    out: List[str] = []
    pending = ''
    for line in lines:
        line = line.rstrip()
        if line.endswith('\\'):
            pending += line[:-1].strip() + ' '
            continue
        out.append((pending + line.strip()).strip())
        pending = ''
    return [c for c in out if c]


def _strip_comment(command: str) -> str:
    """Drop a trailing `# comment` (outside quotes)."""
    try:
        lexer = shlex.shlex(command, posix=True, punctuation_chars=False)
        lexer.commenters = '#'
        lexer.whitespace_split = True
        list(lexer)
    except ValueError:
        return command
    match = re.search(r'\s+#\s.*$', command)
    return command[:match.start()] if match else command


def readme_commands(text: Optional[str] = None) -> List[str]:
    """Every command of the README's fenced bash blocks (continuations joined)."""
    text = README.read_text() if text is None else text
    commands: List[str] = []
    for block in re.findall(r'^[ \t]*```bash\n(.*?)^[ \t]*```', text, re.S | re.M):
        commands += [_strip_comment(c) for c in _join_continuations(block.splitlines())]
    return [c for c in commands if c and not c.startswith('#')]


def help_text(program: str) -> str:
    """Return what `<program> --help` prints (run as the console script runs it)."""
    module = ARGPARSE_TOOLS.get(program) or ROS_EXECUTABLES[program]
    done = subprocess.run([sys.executable, '-m', module, '--help'], capture_output=True,
                          text=True, timeout=60, cwd=str(REPO))
    assert done.returncode == 0, (program, done.stderr)
    return done.stdout


def help_commands(program: str) -> List[str]:
    """Commands in `<program> --help`: lines starting with one of our programs' names."""
    names = tuple(ARGPARSE_TOOLS) + tuple(ROS_EXECUTABLES)
    lines, keep = help_text(program).splitlines(), []
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped.split(' ', 1)[0] in names and len(stripped.split()) > 1 and \
                not stripped.startswith(f'{program} [') and 'usage:' not in line:
            block = [stripped]
            j = i
            while block[-1].endswith('\\') and j + 1 < len(lines):
                j += 1
                block.append(lines[j].strip())
            keep += _join_continuations(block)
    return keep


def _all_commands() -> List[Tuple[str, str]]:
    found = [('README', c) for c in readme_commands()]
    for program in list(ARGPARSE_TOOLS) + list(ROS_EXECUTABLES):
        found += [(f'{program} --help', c) for c in help_commands(program)]
    return found


def _run_briefly(argv: List[str], domain: int, seconds: float = 6.0
                 ) -> Tuple[Optional[int], str]:
    """Run; return (exit code, or None when still running at ``seconds``: stopped), output."""
    from benchmarks.processes import loopback_env

    env = loopback_env(domain)
    proc = subprocess.Popen(argv, cwd=str(REPO), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=seconds)
        return proc.returncode, out
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
        return None, out


def check_command(command: str, domain: int) -> str:
    """Run or dry-run one documented command; return how it was checked (or pytest.skip)."""
    words = shlex.split(command)
    first = words[0]
    if first in NEEDS_ROS:
        if shutil.which(first) is None:
            pytest.skip(f'needs a ROS 2 installation: {first} is not on PATH ({command!r}; '
                        f'the real-ROS install is checked where ROS 2 is installed)')
        if words[:2] == ['ros2', 'launch']:
            done = subprocess.run(words[:4] + ['--show-args'], capture_output=True, text=True,
                                  timeout=120)
            assert done.returncode == 0, done.stderr
            return 'ros2 launch --show-args'
        if first == 'ros2':
            pytest.skip(f'needs the running node and camera: test_ros2_launch.py / '
                        f'test_ros2_cli.py run it against them ({command!r})')
        pytest.skip(f'{first} builds or installs a ROS 2 workspace ({command!r})')
    if first in WORKSPACE_STEPS:
        pytest.skip(f'a workspace step of the real-ROS install, not runnable in a plain clone '
                    f'({command!r})')
    if first == 'make':
        target = words[1] if len(words) > 1 else 'all'
        dry = subprocess.run(['make', '-n'] + words[1:], cwd=str(REPO), capture_output=True,
                             text=True, timeout=60)
        assert dry.returncode == 0, (command, dry.stderr)
        if target in MAKE_LITERAL:
            return f'make -n; literally in test_readme_quickstart_{target}'
        return 'make -n (make test itself is what CI runs)'
    if first in ARGPARSE_TOOLS:
        parser = importlib.import_module(ARGPARSE_TOOLS[first]).build_parser()
        parser.parse_args(words[1:])   # SystemExit (2) on an unknown or malformed option
        return 'argument parsing (dry run)'
    if first in ROS_EXECUTABLES:
        code, out = _run_briefly([sys.executable, '-m', ROS_EXECUTABLES[first]] + words[1:],
                                 domain)
        assert code in (0, None), (command, code, out[-2000:])
        assert 'Traceback' not in out and '[ERROR]' not in out, (command, out[-2000:])
        return 'ran (stopped after a few seconds)' if code is None else 'ran to the end'
    raise AssertionError(f'no check for the documented command {command!r}; add one')


def test_documented_commands_are_found() -> None:
    commands = [c for _, c in _all_commands()]
    assert {'make demo', 'make test', 'make shell'} <= set(commands), commands
    assert any(c.startswith('image_source --ros-args') and 'rate_hz:=10' in c
               for c in commands), commands
    assert any(c.startswith('segformer-ros-export ') for c in commands), commands
    sample = '```bash\nmake x   # a comment\na \\\n  b\n```\n'
    assert readme_commands(sample) == ['make x', 'a b']


@pytest.mark.parametrize('where, command', _all_commands(),
                         ids=lambda value: value[:60] if isinstance(value, str) else value)
def test_documented_command_runs(where: str, command: str, ros_domain: int) -> None:
    assert check_command(command, ros_domain)


def test_readme_quickstart_make_shell() -> None:
    """`make shell`, exactly as the README says, gives a shell with the console scripts."""
    done = subprocess.run(['make', 'shell'], input='segformer-ros-eval --help >/dev/null && '
                          'echo EVAL=ok; echo DOM=$ROS_DOMAIN_ID; exit\n', cwd=str(REPO),
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, 'TERM': 'dumb'})
    assert done.returncode == 0, done.stderr[-2000:]
    assert 'EVAL=ok' in done.stdout and 'DOM=' in done.stdout, (done.stdout, done.stderr)


@pytest.mark.ros
def test_readme_quickstart_make_demo(tmp_path) -> None:
    """`make demo`, exactly as the README says: a report, the overlay video, the summaries."""
    done = subprocess.run(['make', 'demo'], cwd=str(REPO), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    assert 'demo report' in done.stdout and "{'" not in done.stdout, done.stdout[-3000:]
    for name in ('overlay.mp4', 'summaries.jsonl', 'report.json'):
        assert (REPO / 'out' / 'demo' / name).stat().st_size > 0, name


def test_user_docs_cite_no_development_only_paths() -> None:
    """README, docs and presets name no `../shared/` file: users do not have that folder."""
    user_docs = [README] + [REPO / 'docs' / name for name in (
        'jetson.md', 'nav2.md', 'reliability.md', 'usage.md', 'drivable_grid.md',
        'architecture.md', 'development.md')] + sorted((REPO / 'config').glob('*.yaml'))
    cited = [f'{p.name}:{i}' for p in user_docs
             for i, line in enumerate(p.read_text().splitlines(), 1) if '../shared' in line]
    assert not cited, cited
    # The lab notebook says what that folder is before its commands use it.
    bench = (REPO / 'docs' / 'benchmarks.md').read_text()
    assert bench.index('**not distributed**') < bench.index('../shared/')
    # reliability.md: an empty model_path loads the bundled model (it no longer fails).
    assert 'model_path is empty: set it' not in (REPO / 'docs' / 'reliability.md').read_text()
