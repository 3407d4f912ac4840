"""Command-line helpers of the executables (no ROS here).

A mistyped command line ends with exit status 2 and one line saying what was wrong, never
a Python traceback; and the params files it names are found without rcl, to check them.
"""

import sys
from typing import Any, Callable, List, Optional, Sequence, TextIO

EXIT_BAD_USAGE = 2


def one_line(exc: BaseException) -> str:
    """Return the exception's message on one line (rclpy's span several, with tabs)."""
    text = ' '.join(str(exc).split())
    return text or type(exc).__name__


def bad_usage(prog: str, exc: BaseException, stream: Optional[TextIO] = None) -> int:
    """Print ``prog: bad usage: <reason>`` (one line) and return the bad-usage exit status."""
    print(f'{prog}: bad usage: {one_line(exc)} (see {prog} --help)',
          file=stream or sys.stderr, flush=True)
    return EXIT_BAD_USAGE


def help_asked(args: Optional[Sequence[str]], usage: str) -> bool:
    """Print ``usage`` and return True when -h or --help stands before ``--ros-args``.

    ``args``: the command line without the program name (None: ``sys.argv[1:]``). What
    follows ``--ros-args`` is ROS's, never a request for this program's help.
    """
    argv = sys.argv[1:] if args is None else list(args)
    user_args = argv[:argv.index('--ros-args')] if '--ros-args' in argv else argv
    if '-h' in user_args or '--help' in user_args:
        print(usage, end='')
        return True
    return False


def init_or_bad_usage(prog: str, init: Callable[[], Any]) -> Optional[int]:
    """Call ``init`` (rclpy.init on the command line); None, or the bad-usage exit status.

    rclpy.init raises on malformed ``--ros-args``: that is one line and exit status 2, as
    for any other mistyped command line.
    """
    try:
        init()
    except Exception as exc:  # noqa: BLE001 - malformed --ros-args: one line, exit 2
        return bad_usage(prog, exc)
    return None


def params_files(argv: Sequence[str]) -> List[str]:
    """Return the files given with ``--params-file FILE`` in ``--ros-args ... [--]``."""
    files: List[str] = []
    in_ros_args = False
    args = list(argv)
    for i, arg in enumerate(args):
        if arg == '--ros-args':
            in_ros_args = True
        elif arg == '--':
            in_ros_args = False
        elif in_ros_args and arg == '--params-file' and i + 1 < len(args):
            files.append(args[i + 1])
    return files


def absorb_late_interrupt() -> None:
    """Ignore the next SIGINT from now on; a further one raises KeyboardInterrupt as usual.

    The one ignored is the late KeyboardInterrupt of the Ctrl-C that stopped spin():
    rclpy's SIGINT handler shuts the context down at once (spin() returns, or raises
    ExternalShutdownException) and chains to Python's handler, which raises KeyboardInterrupt
    only when the main thread next runs Python code: now and then that is inside the
    shutdown in ``finally``, which it cut short with a traceback (seen in about one Ctrl-C
    in ten on a 2-core machine). Python calls the handler installed when it processes the
    signal, so replacing it here absorbs that pending one. Call it where the process
    starts to shut down (main thread only; elsewhere it does nothing).
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return
    absorbed = [False]

    def handler(signum: int, frame: object) -> None:
        if absorbed[0]:
            raise KeyboardInterrupt
        absorbed[0] = True

    signal.signal(signal.SIGINT, handler)
