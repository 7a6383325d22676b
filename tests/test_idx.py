"""The IDX source (MNIST family): native files, gzip or raw, and clear errors for bad files."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from nas_lib.data.datasets import DatasetError, load_dataset
from nas_lib.data.idx import read_idx


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file of unsigned bytes: the header, then the array."""
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()


def write_idx_pair(folder: Path, prefix: str, images: np.ndarray, labels: np.ndarray, gz: bool = False) -> None:
    """Writes ``<prefix>-images-idx3-ubyte`` and ``<prefix>-labels-idx1-ubyte`` (``.gz`` when gz)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in ((f"{prefix}-images-idx3-ubyte", images), (f"{prefix}-labels-idx1-ubyte", labels)):
        data = idx_bytes(array)
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trip(tmp_path: Path, gz: bool) -> None:
    images = np.random.default_rng(0).integers(0, 256, (30, 6, 5), dtype=np.uint8)
    labels = (np.arange(30) % 3).astype(np.uint8)
    write_idx_pair(tmp_path, "train", images, labels, gz=gz)
    write_idx_pair(tmp_path, "t10k", images[:3], labels[:3], gz=gz)
    data = load_dataset("idx", tmp_path, val_fraction=0.2)
    assert data.input_shape == (1, 6, 5) and data.num_classes == 3
    assert len(data.train_y) + len(data.val_y) == 30  # the t10k test files never enter
    suffix = ".gz" if gz else ""
    assert np.array_equal(read_idx(tmp_path / f"train-images-idx3-ubyte{suffix}"), images)


def test_idx_errors_name_the_file(tmp_path: Path) -> None:
    images = np.zeros((10, 4, 4), dtype=np.uint8)
    write_idx_pair(tmp_path, "train", images, np.arange(10, dtype=np.uint8) % 2)
    file = tmp_path / "train-images-idx3-ubyte"
    good = file.read_bytes()
    file.write_bytes(b"\x12\x34" + good[2:])
    with pytest.raises(DatasetError, match="train-images-idx3-ubyte: not an IDX file"):
        load_dataset("idx", tmp_path)
    file.write_bytes(good[:-5])
    with pytest.raises(DatasetError, match="train-images-idx3-ubyte: truncated"):
        load_dataset("idx", tmp_path)
    write_idx_pair(tmp_path, "train", images, np.arange(9, dtype=np.uint8) % 2)
    with pytest.raises(DatasetError, match="10 images but train-labels-idx1-ubyte holds 9 labels"):
        load_dataset("idx", tmp_path)
    write_idx_pair(tmp_path, "train", images, np.zeros(10, dtype=np.uint8))
    with pytest.raises(DatasetError, match="two classes"):
        load_dataset("idx", tmp_path)
    (tmp_path / "train-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match="train-labels-idx1-ubyte"):
        load_dataset("idx", tmp_path)


def test_real_mnist(shared_data: Path) -> None:
    data = load_dataset("idx", shared_data / "mnist", max_items=2000, image_size=14)
    assert data.input_shape == (1, 14, 14) and data.num_classes == 10
    assert len(data.train_y) + len(data.val_y) == 2000
    assert np.bincount(data.train_y.numpy()).min() > 100  # stratified: every digit present


def test_test_files_never_move_the_split(tmp_path: Path) -> None:
    """A trained table's rows must reproduce whether or not the folder also holds t10k files."""
    rng = np.random.default_rng(1)
    write_idx_pair(tmp_path / "with", "train", rng.integers(0, 256, (40, 4, 4), dtype=np.uint8), np.arange(40, dtype=np.uint8) % 4)
    (tmp_path / "without").mkdir()
    for f in (tmp_path / "with").iterdir():
        (tmp_path / "without" / f.name).write_bytes(f.read_bytes())
    write_idx_pair(tmp_path / "with", "t10k", rng.integers(0, 256, (30, 4, 4), dtype=np.uint8), np.arange(30, dtype=np.uint8) % 4)
    a = load_dataset("idx", tmp_path / "with", max_items=20, val_fraction=0.5)
    b = load_dataset("idx", tmp_path / "without", max_items=20, val_fraction=0.5)
    assert a.test_y is not None and len(a.test_y) == 20 and b.test_y is None
    assert a.fingerprint == b.fingerprint
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.val_y, b.val_y)
