"""segformer_ros.node_main with a configure that takes SLOW_CONFIGURE_S (default 120 s).

Stands in for a TensorRT engine build (minutes on a Jetson) in test_distro_survival: the
backend's configure first sleeps in its executor thread, where, like a build inside
TensorRT's C++ code, no KeyboardInterrupt can reach it. Everything else is the real node.
"""

import faulthandler
import os
import signal
import sys
import time

from segformer_ros.backends import base
from segformer_ros.node_main import main

_configure = base.Backend.configure


def _slow_configure(self: base.Backend) -> base.ModelInfo:
    print('slow configure: started', flush=True)
    time.sleep(float(os.environ.get('SLOW_CONFIGURE_S', '120')))
    return _configure(self)


if __name__ == '__main__':
    # The test sends SIGUSR1 when the process outlives its SIGINT: every thread's stack.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    base.Backend.configure = _slow_configure  # type: ignore[method-assign]
    sys.exit(main())
