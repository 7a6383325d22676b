"""The IDX format of the MNIST family (MNIST, Fashion-MNIST, KMNIST, EMNIST), gzip or not.

An IDX file is a big-endian header (two zero bytes, a type code, the number of dimensions, then
one 4-byte size per dimension) followed by the array. The ``idx`` source reads a folder holding
``train-images-idx3-ubyte`` and ``train-labels-idx1-ubyte`` (each optionally ``.gz``); the
``t10k-*`` pair, when present, becomes the test part, which never enters training or validation.
Format: LeCun et al., http://yann.lecun.com/exdb/mnist/ ("the IDX file format").
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from nas_lib.data.datasets import DATASETS, DatasetError, RawImages, require_path as _require

UBYTE = 0x08  # the only element type the MNIST family uses


def read_idx(path: Path) -> np.ndarray:
    """One IDX file (``.gz`` or raw) as a uint8 array of the shape its header gives.

    Raises:
        DatasetError: wrong magic number, an element type other than unsigned byte, or fewer
            bytes than the header promises; the message names the file.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            data = fh.read()
    except (OSError, EOFError) as err:  # gzip raises these for a damaged archive
        raise DatasetError(f"{path}: unreadable ({type(err).__name__}: {err})") from err
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DatasetError(f"{path}: not an IDX file (magic number {data[:4].hex() or 'missing'})")
    kind, ndim = data[2], data[3]
    if kind != UBYTE:
        raise DatasetError(f"{path}: element type 0x{kind:02x} is not unsigned byte (0x08)")
    head = 4 + 4 * ndim
    if len(data) < head:
        raise DatasetError(f"{path}: truncated header")
    shape = struct.unpack(f">{ndim}I", data[4:head])
    expected = int(np.prod(shape, dtype=np.int64))
    if len(data) - head < expected:
        raise DatasetError(f"{path}: truncated: header says {shape} ({expected} bytes), file holds {len(data) - head}")
    return np.frombuffer(data, dtype=np.uint8, count=expected, offset=head).reshape(shape)


def find_idx(folder: Path, stem: str) -> Path:
    """``folder/stem`` or ``folder/stem.gz``, whichever exists."""
    for name in (stem, f"{stem}.gz"):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"dataset 'idx': {folder} holds neither {stem} nor {stem}.gz")


def load_idx_pair(folder: Path, prefix: str) -> tuple[np.ndarray, np.ndarray, Path]:
    """Images (N x H x W uint8) and labels of ``<prefix>-images-idx3-ubyte`` / ``-labels-idx1-ubyte``."""
    images_file = find_idx(folder, f"{prefix}-images-idx3-ubyte")
    labels_file = find_idx(folder, f"{prefix}-labels-idx1-ubyte")
    images, labels = read_idx(images_file), read_idx(labels_file)
    if images.ndim != 3:
        raise DatasetError(f"{images_file}: images must be N x H x W, the header gives {images.shape}")
    if labels.ndim != 1:
        raise DatasetError(f"{labels_file}: labels must be one dimension, the header gives {labels.shape}")
    if len(images) != len(labels):
        raise DatasetError(f"{images_file}: {len(images)} images but {labels_file.name} holds {len(labels)} labels")
    return images, labels, images_file


@DATASETS.register("idx")
def _load_idx(path: Path | None, image_size: int | None) -> RawImages:
    """The training pair of an IDX folder (MNIST family), grayscale, native size; the ``t10k``
    pair (when both files exist) as the test part."""
    folder = _require(path, "idx", "the folder of IDX files")
    if not folder.is_dir():
        raise DatasetError(f"{folder}: dataset 'idx' needs a folder holding train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz]")
    images, labels, source = load_idx_pair(folder, "train")
    classes = np.unique(labels)
    if len(classes) < 2:
        raise DatasetError(f"{source}: every label is {int(classes[0]) if len(classes) else 'missing'}; a classifier needs two classes at least")
    split = np.zeros(len(labels), dtype=np.int8)
    if _has_pair(folder, "t10k"):
        test_images, test_labels, test_source = load_idx_pair(folder, "t10k")
        if test_images.shape[1:] != images.shape[1:]:
            raise DatasetError(f"{test_source}: test images are {test_images.shape[1:]}, training images {images.shape[1:]}")
        images, labels = np.concatenate([images, test_images]), np.concatenate([labels, test_labels])
        split = np.concatenate([split, np.full(len(test_labels), 2, dtype=np.int8)])
    x = images[:, None, :, :]  # bytes: load_dataset converts after subsampling
    n_classes = int(labels.max()) + 1
    return RawImages(x, labels.astype(np.int64), tuple(str(i) for i in range(n_classes)), split)


def _has_pair(folder: Path, prefix: str) -> bool:
    stems = (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte")
    return all((folder / s).is_file() or (folder / f"{s}.gz").is_file() for s in stems)
