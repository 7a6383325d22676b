"""Score functions for measurement and for the offline provider: proxies and benchmark tables.

`proxy_score_fn` wraps a `nas_lib.proxies` proxy as ``spec -> float`` (higher is better),
memoised per architecture, so the guard and the offline provider never score one twice.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from pathlib import Path

import torch

from nas_lib.space.base import SearchSpace

# Data-free proxies only need the input shape; a tiny random batch supplies it.
DATA_FREE = frozenset({"params", "flops"})


def proxy_batch(name: str, data: str | Path | None, batch_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch a proxy scores on: real images from an npz file, or a random stand-in for a
    data-free proxy (a data-dependent proxy without data raises ValueError)."""
    if data is not None:
        from nas_lib.data.arrays import fixed_batch, load_npz_images

        x, y = load_npz_images(data)
        return fixed_batch(x, y, batch_size, seed)
    if name not in DATA_FREE:
        raise ValueError(f"proxy {name!r} needs images: pass an npz file (e.g. cifar10_train1000.npz)")
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(2, 3, 32, 32, generator=gen), torch.zeros(2, dtype=torch.long)


def proxy_score_fn(
    space: SearchSpace,
    name: str,
    *,
    data: str | Path | None = None,
    batch_size: int = 64,
    seed: int = 0,
    batch: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> Callable[[Hashable], float]:
    """``spec -> score`` (higher is better) from the registered proxy `name`, memoised; on
    `batch` when given, else on a batch from the npz file `data`."""
    from nas_lib.proxies import get_proxy

    proxy = get_proxy(name)
    batch = batch if batch is not None else proxy_batch(name, data, batch_size, seed)
    sign = 1.0 if getattr(proxy, "higher_is_better", True) else -1.0
    memo: dict[Hashable, float] = {}

    def score(spec: Hashable) -> float:
        key = space.score_key(name, spec)  # specs sharing a key share the score (NB201 params)
        if key not in memo:
            memo[key] = sign * float(proxy.score(space, spec, batch, seed).value)
        return memo[key]

    return score


class PrecomputedScore:
    """``spec -> score`` from a table of precomputed proxy scores (e.g. NASLib's zero-cost
    scores of 725 NB201 cells); NaN for cells it lacks.

    Attributes:
        pool: the architectures the table scores; the offline provider ranks these (those inside
            the current space) instead of random draws it could not score.
    """

    def __init__(self, path: str | Path, column: str, space: SearchSpace, arch_column: str = "arch") -> None:
        from nas_lib.pruning.measure import table_score_fn

        self._lookup = table_score_fn(path, column, space, arch_column)
        import pandas as pd

        archs = (
            pd.read_csv(path, usecols=[arch_column])[arch_column]
            if str(path).endswith(".csv")
            else pd.read_parquet(path, columns=[arch_column])[arch_column]
        )
        self.pool = [space.from_string(a) for a in archs.astype(str)]

    def __call__(self, spec: Hashable) -> float:
        return self._lookup(spec)
