"""Where a build's clips run: in-process (one worker), in spawned worker processes, or on Ray actors
(``ray.init()`` without an address: a submitted job joins its cluster). ``run_jobs`` draws items
only as workers come free and yields results in the order they finish; a stop (bad clip, Ctrl-C)
drops the queued items and stops the workers at once.
"""

from __future__ import annotations

import concurrent.futures as futures
import itertools
import multiprocessing
import os
from collections.abc import Callable, Iterator
from typing import Any

from feature_store.errors import StoreError


def check_workers(workers: int) -> None:
    if workers < 1:
        raise StoreError(f"--workers must be at least 1, got {workers}")


# Worker processes and Ray actors hold one job (built from its pickled state) for all their clips.
_WORKER: dict[str, Any] = {}


def _worker_init(job: Callable[..., Any], threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    _WORKER["job"] = job


def _worker_run(*item: Any) -> Any:
    return _WORKER["job"](*item)


class _RayWorker:
    """A Ray actor holding one job (the class is wrapped with ``ray.remote`` at build time)."""

    def __init__(self, job: Callable[..., Any], threads: int) -> None:
        _worker_init(job, threads)

    def run(self, *item: Any) -> Any:
        return _worker_run(*item)


def run_jobs(
    job: Callable[..., Any],
    items: Iterator[tuple[Any, ...]],
    *,
    workers: int,
    use_ray: bool,
    gpus: int = 0,
    count: int | None = None,
) -> Iterator[Any]:
    """``job(*item)`` for every item, in-process (one worker), in worker processes or on Ray
    actors; results in the order they finish. Items are drawn only as workers come free, so an
    item may carry data (a clip's cached face tracks) without all of them sitting in memory. ``count`` (how many items, when known) caps the
    workers started."""
    if count is not None:
        workers = max(1, min(workers, count))
    if use_ray:
        yield from _ray_outcomes(job, items, workers, gpus, count)
    elif workers == 1:
        for item in items:
            yield job(*item)
    else:
        yield from _process_outcomes(job, items, workers)


def _process_outcomes(
    job: Callable[..., Any], items: Iterator[tuple[Any, ...]], workers: int
) -> Iterator[Any]:
    threads = max(1, (os.cpu_count() or 1) // workers)
    # spawn: torch and dlib are not fork-safe once their thread pools have started.
    pool = futures.ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_worker_init,
        initargs=(job, threads),
    )
    pending: set[futures.Future] = set()
    try:
        while True:
            for item in itertools.islice(items, 2 * workers - len(pending)):
                pending.add(pool.submit(_worker_run, *item))
            if not pending:
                return
            done, pending = futures.wait(pending, return_when=futures.FIRST_COMPLETED)
            for finished in done:
                yield finished.result()
    finally:
        # On a stop (bad clip, Ctrl-C, error) queued clips are dropped; running ones finish and
        # are simply not saved, finished ones already are.
        for item in pending:
            item.cancel()
        pool.shutdown(wait=True, cancel_futures=True)


def _ray_outcomes(
    job: Callable[..., Any],
    items: Iterator[tuple[Any, ...]],
    workers: int,
    gpus: int,
    count: int | None,
) -> Iterator[Any]:
    import ray
    from ray.util import ActorPool

    if not ray.is_initialized():
        ray.init()  # no address: a submitted job joins its cluster, otherwise a local one starts
    resources = ray.cluster_resources()
    if gpus and resources.get("GPU", 0) < 1:
        raise StoreError("the recipe asks for device cuda but the Ray cluster has no GPU")
    if workers > 1:
        actors = workers
    else:
        actors = int(resources.get("GPU", 0)) if gpus else int(resources.get("CPU", 1))
    actors = max(1, min(actors, count or actors))
    cpus_each = max(1, int(resources.get("CPU", 1)) // actors)
    # A lost actor (its node gone, its process killed) is restarted and its clip retried: only
    # the clips in flight on it are redone, finished ones are already back at the driver.
    remote = ray.remote(num_cpus=1, num_gpus=gpus, max_restarts=-1, max_task_retries=3)(_RayWorker)
    handles = [remote.remote(job, cpus_each) for _ in range(actors)]
    pool = ActorPool(handles)
    try:
        while True:
            while pool.has_free():
                item = next(items, None)
                if item is None:
                    break
                pool.submit(lambda actor, value: actor.run.remote(*value), item)
            if not pool.has_next():
                return
            yield pool.get_next_unordered()
    except ray.exceptions.RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, StoreError):
            raise cause from None
        raise
    finally:
        for handle in handles:
            ray.kill(handle, no_restart=True)
