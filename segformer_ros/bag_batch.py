"""Many recordings at once: a local process pool or a Ray cluster, one task per recording.

Each task is :func:`segment_task`: it builds its own backend and pipeline from the job's
parameters (as the node does) and segments one bag with :class:`~.bag_run.BagSegmenter`, so
the results are the same whichever executor runs it. With Ray (``--ray ADDRESS`` or
``auto``; the opt-in extra ``pip install 'segformer_ros[ray]'`` / ``make setup RAY=1``) a task
asks for a GPU when the parameters run inference or the pipeline on one. Input and output
paths must be reachable from every worker (shared storage on a cluster).

Ctrl-C (``stop`` set by the caller's SIGINT handler): pool workers finish their current batch
and close their bags (valid, marked interrupted), recordings not yet started are reported as
not started; Ray tasks are cancelled, which raises KeyboardInterrupt in them: the bag
segmenter closes the bag and the task's report comes back marked interrupted.

Token authentication: ``ray start --head`` enables it where a token exists (Ray 2.60); a
driver given an explicit ADDRESS then needs ``RAY_AUTH_MODE=token`` and the token
(``RAY_AUTH_TOKEN_PATH``, ``RAY_AUTH_TOKEN`` or ``~/.ray/auth_token``), as any Ray driver
does; ``auto`` picks up a local token by itself.
"""

import concurrent.futures
import multiprocessing
import os
import signal
import threading
from dataclasses import asdict
from typing import Any, Callable, Dict, List, Optional, Sequence

from .bag_run import BagJob, segment_bag
from .errors import SegformerRosError

# Set in a pool worker by the parent (through the pool's initializer): stop after the batch.
_worker_stop: Optional[Any] = None


def wants_gpu(params: Dict[str, Any], cluster_has_gpu: bool = False) -> bool:
    """Return True when inference or the pipeline runs on a GPU (a Ray task asks for one).

    ``backend: auto`` means TensorRT where a GPU is present: on a cluster with GPUs its
    tasks ask for one (else several tasks would share a GPU Ray does not account for).
    """
    return (params.get('backend') == 'tensorrt'
            or (params.get('backend') == 'auto' and cluster_has_gpu)
            or params.get('onnxruntime_provider') in ('cuda', 'tensorrt')
            or params.get('pipeline') == 'gpu')


def stopped(job: BagJob, why: str) -> Dict[str, Any]:
    """Report of a recording an interruption kept from starting or cancelled (``why``)."""
    return {'input': job.input, 'output': job.output, 'interrupted': True, 'stopped': why}


def segment_task(job_fields: Dict[str, Any], stop: Optional[Any] = None) -> Dict[str, Any]:
    """Segment one bag in whatever process runs this; return its report.

    A bag that cannot be segmented (a SegformerRosError, or any other failure of that one
    recording) gives a report with ``error`` set instead of raising, so one bad recording
    does not lose the others' results. ``stop`` (an Event; in a pool
    worker the pool's shared one) ends the run after the current batch.
    """
    job = BagJob(**job_fields)
    stop = stop if stop is not None else _worker_stop
    if stop is not None and stop.is_set():
        return stopped(job, 'not started (interrupted)')
    messages: List[str] = []
    try:
        result = segment_bag(job, messages.append, stop=stop)
    except Exception as exc:  # noqa: BLE001 - one recording's failure must not end the batch
        error = str(exc) if isinstance(exc, SegformerRosError) else \
            f'{type(exc).__name__}: {exc}'
        return {'input': job.input, 'output': job.output, 'error': error, 'log': messages,
                'worker_pid': os.getpid()}
    result['log'] = messages
    result['worker_pid'] = os.getpid()
    return result


def _pool_worker_init(stop: Any) -> None:
    global _worker_stop
    _worker_stop = stop
    # Ctrl-C at a terminal reaches the whole process group: the parent decides (it sets
    # ``stop``), so a worker never dies mid-write with KeyboardInterrupt.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def run_local(jobs: Sequence[BagJob], workers: int,
              on_done: Callable[[Dict[str, Any]], None] = lambda _r: None,
              stop: Optional[threading.Event] = None) -> List[Dict[str, Any]]:
    """Run the jobs here (``workers`` <= 1) or in a pool of ``workers`` processes."""
    stop = stop if stop is not None else threading.Event()
    if workers <= 1:
        results = []
        for job in jobs:
            results.append(segment_task(asdict(job), stop))
            on_done(results[-1])
        return results
    # spawn: a fresh interpreter per worker (no fork of a process holding ONNX Runtime or
    # CUDA state).
    context = multiprocessing.get_context('spawn')
    shared_stop = context.Event()
    if stop.is_set():
        shared_stop.set()
    with concurrent.futures.ProcessPoolExecutor(
            max_workers=min(workers, len(jobs)), mp_context=context,
            initializer=_pool_worker_init, initargs=(shared_stop,)) as pool:
        futures = [pool.submit(segment_task, asdict(job)) for job in jobs]
        pending = set(futures)
        while pending:
            done, pending = concurrent.futures.wait(
                pending, timeout=0.2, return_when=concurrent.futures.FIRST_COMPLETED)
            if stop.is_set():
                shared_stop.set()
            for future in done:
                on_done(future.result())
        return [f.result() for f in futures]


def run_ray(jobs: Sequence[BagJob], address: str,
            on_done: Callable[[Dict[str, Any]], None] = lambda _r: None,
            stop: Optional[threading.Event] = None) -> List[Dict[str, Any]]:
    """Run one Ray task per job on the cluster at ``address`` ('auto': the running one)."""
    try:
        import ray
    except ImportError:
        raise SegformerRosError('--ray needs the ray package: pip install '
                                "'segformer_ros[ray]' (or make setup RAY=1)") from None
    stop = stop if stop is not None else threading.Event()
    started_here = not ray.is_initialized()
    if started_here:
        try:
            ray.init(address=address, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise SegformerRosError(
                f'cannot connect to the Ray cluster at {address!r}: {exc}; expected a running '
                f'cluster (ray start --head) or auto; a cluster with token authentication '
                f'also needs RAY_AUTH_MODE=token and its token here') from None
    try:
        remote = ray.remote(segment_task)
        cluster_has_gpu = ray.cluster_resources().get('GPU', 0) > 0
        refs = {}
        for job in jobs:
            # One CPU per task (a task's ONNX Runtime uses num_threads of them: the params
            # decide); a GPU where the params infer or preprocess on one.
            gpus = 1 if wants_gpu(job.params, cluster_has_gpu) else 0
            options = {'num_cpus': 1, 'num_gpus': gpus, 'max_retries': 0}
            refs[remote.options(**options).remote(asdict(job))] = job
        pending = list(refs)
        results: Dict[Any, Dict[str, Any]] = {}
        cancelled = False
        while pending:
            done, pending = ray.wait(pending, num_returns=1, timeout=0.2)
            if stop.is_set() and not cancelled:
                cancelled = True
                for ref in pending:
                    ray.cancel(ref)
            for ref in done:
                try:
                    results[ref] = ray.get(ref)
                except ray.exceptions.TaskCancelledError:
                    # KeyboardInterrupt in the task: its bag was closed, its report lost.
                    results[ref] = stopped(refs[ref], 'cancelled (interrupted)')
                on_done(results[ref])
        return [results[ref] for ref in refs]
    finally:
        if started_here:
            ray.shutdown()
