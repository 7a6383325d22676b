"""STL-10 in its binary files (``train_X.bin``, ``train_y.bin``, ``test_*.bin``, ``class_names.txt``).

Images are 96 x 96 RGB bytes stored channel by channel in column-major order; labels are bytes
1..10. The unlabelled split is not read. Format: Coates, Lee and Ng, "An Analysis of Single-Layer
Networks in Unsupervised Feature Learning" (AISTATS 2011), https://cs.stanford.edu/~acoates/stl10/.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nas_lib.data.datasets import DATASETS, DatasetError, RawImages, TEST, TRAIN, check_labels, require_path

SIDE = 96
IMAGE_BYTES = 3 * SIDE * SIDE


def read_stl10_pair(folder: Path, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N x 3 x 96 x 96 uint8) and labels 0..9 of ``<prefix>_X.bin`` / ``<prefix>_y.bin``.

    Raises:
        DatasetError: a size that is not a whole number of images, counts that differ, or a
            label outside 1..10; the message names the file.
    """
    images_file, labels_file = folder / f"{prefix}_X.bin", folder / f"{prefix}_y.bin"
    for file in (images_file, labels_file):
        if not file.is_file():
            raise FileNotFoundError(f"dataset 'stl10_binary': {file} does not exist")
    raw = np.fromfile(images_file, dtype=np.uint8)
    if raw.size % IMAGE_BYTES:
        raise DatasetError(f"{images_file}: truncated: {raw.size} bytes is not a whole number of 96x96 RGB images ({IMAGE_BYTES} bytes each)")
    x = raw.reshape(-1, 3, SIDE, SIDE).transpose(0, 1, 3, 2)  # column-major on disk
    y = np.fromfile(labels_file, dtype=np.uint8).astype(np.int64)
    if len(y) != len(x):
        raise DatasetError(f"{images_file}: {len(x)} images but {labels_file.name} holds {len(y)} labels")
    if len(y) and (y.min() < 1 or y.max() > 10):
        raise DatasetError(f"{labels_file}: labels must lie in 1..10, found {int(y.min())}..{int(y.max())}")
    return np.ascontiguousarray(x), y - 1


@DATASETS.register("stl10_binary")
def _load_stl10(path: Path | None, image_size: int | None) -> RawImages:
    """The ``train`` pair of an stl10_binary folder, the ``test`` pair (when present) as test part."""
    folder = require_path(path, "stl10_binary", "the stl10_binary folder")
    x, y = read_stl10_pair(folder, "train")
    check_labels(y, len(x), folder / "train_y.bin")
    split = np.full(len(y), TRAIN, dtype=np.int8)
    if (folder / "test_X.bin").is_file():
        tx, ty = read_stl10_pair(folder, "test")
        x, y = np.concatenate([x, tx]), np.concatenate([y, ty])
        split = np.concatenate([split, np.full(len(ty), TEST, dtype=np.int8)])
    names = tuple(str(i) for i in range(10))
    listed = folder / "class_names.txt"
    if listed.is_file():
        lines = [line.strip() for line in listed.read_text(encoding="utf-8").splitlines() if line.strip()]
        names = tuple(lines) if len(lines) == 10 else names
    return RawImages(x, y, names, split)  # bytes: load_dataset converts after subsampling
