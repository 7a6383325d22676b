"""Network construction overlapped with scoring: worker processes build the next networks.

Building an NB201 network (module construction and weight initialisation, in Python on the
host) costs about as much as scoring it with a forward-only proxy on a GPU, so a scorer that
builds each network itself leaves the device idle for that time. Here `workers` processes build
the networks of the coming specs, under the same seed and with the same code as the scorer
(`nas_lib.proxies.base.build_network`, so the weights are bit-identical), while the calling
process scores the current one. At most `window` networks are built ahead, so memory stays
bounded on a long sample. A network that fails to build is handed over as None: the scorer
then builds it itself and reports the failure as usual.
"""

from __future__ import annotations

import multiprocessing
import pickle
from collections import deque
from collections.abc import Generator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

import torch
from torch import nn

from nas_lib.proxies.base import build_network


def _build_bytes(space: Any, spec: Any, batch: tuple[torch.Tensor, torch.Tensor], seed: int) -> bytes:
    """Builds one network in a worker and pickles it (plain bytes: no shared-memory handles)."""
    torch.set_num_threads(1)  # the builders must not compete with the scorer's threads
    return pickle.dumps(build_network(space, spec, batch, seed), protocol=pickle.HIGHEST_PROTOCOL)


def prebuilt_networks(
    space: Any, specs: Sequence[Any], batch: tuple[torch.Tensor, torch.Tensor], seed: int, workers: int, window: int | None = None
) -> Generator[tuple[Any, nn.Module | None], None, None]:
    """Yields (spec, network or None) in the order of `specs`, built ahead by worker processes.

    Args:
        space: the search space (pickled to the workers).
        specs: the architectures, in scoring order.
        batch: the proxy batch; only its shape and label count reach the build (the labels set
            the number of classes as in `build_network`).
        seed: the initialisation seed, as given to the scorer.
        workers: builder processes (>= 1).
        window: networks built ahead at most (default 2 x workers).

    Raises:
        ValueError: if `workers` < 1 or `window` < 1.
    """
    if workers < 1:
        raise ValueError(f"prefetching needs at least one worker, got {workers}")
    window = window or 2 * workers
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    shape_only = (torch.empty((1, *batch[0].shape[1:])), batch[1][:0] if batch[1].numel() == 0 else batch[1].max().view(1))
    ctx = multiprocessing.get_context("spawn")  # no fork of a process that may hold CUDA or threads
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        pending: deque[tuple[Any, Future]] = deque()
        todo = iter(specs)
        for spec in todo:
            pending.append((spec, pool.submit(_build_bytes, space, spec, shape_only, seed)))
            if len(pending) >= window:
                break
        while pending:
            spec, future = pending.popleft()
            nxt = next(todo, None)
            if nxt is not None:
                pending.append((nxt, pool.submit(_build_bytes, space, nxt, shape_only, seed)))
            try:
                model = pickle.loads(future.result())
            except Exception:  # noqa: BLE001  a spec that cannot be built: the scorer builds it and reports why
                model = None
            yield spec, model
