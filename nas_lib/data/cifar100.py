"""CIFAR-100 in its "python version" folder (``train``, ``test`` and ``meta`` pickles).

The 100 fine labels are the classes; ``test`` (when present) is the test part. Format:
Krizhevsky, "Learning Multiple Layers of Features from Tiny Images" (2009),
https://www.cs.toronto.edu/~kriz/cifar.html. The files are Python pickles, the format CIFAR-100
is distributed in; only open folders you trust.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nas_lib.data.datasets import DATASETS, RawImages, TEST, TRAIN, check_labels, require_path
from nas_lib.data.sources import _unpickle, read_pickled_batch


@DATASETS.register("cifar100_batches")
def _load_cifar100(path: Path | None, image_size: int | None) -> RawImages:
    """``train`` (and ``test``) of a cifar-100-python folder, fine labels, names from ``meta``."""
    folder = require_path(path, "cifar100_batches", "the cifar-100-python folder")
    train = folder / "train"
    if not train.is_file():
        raise FileNotFoundError(f"dataset 'cifar100_batches': no 'train' file in {folder}")
    x, y = read_pickled_batch(train, b"fine_labels")
    check_labels(y, len(x), train)
    split = np.full(len(y), TRAIN, dtype=np.int8)
    if (folder / "test").is_file():
        tx, ty = read_pickled_batch(folder / "test", b"fine_labels")
        x, y = np.concatenate([x, tx]), np.concatenate([y, ty])
        split = np.concatenate([split, np.full(len(ty), TEST, dtype=np.int8)])
    n_classes = max(int(y.max()) + 1, 100)
    names = tuple(str(i) for i in range(n_classes))
    if (folder / "meta").is_file():
        listed = _unpickle(folder / "meta").get(b"fine_label_names", [])
        names = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in listed) or names
    return RawImages(x, y, names, split)  # bytes: load_dataset converts after subsampling
