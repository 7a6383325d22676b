"""Dataset sources: shapes, stratified seeded splits, normalisation, fingerprints, clear errors."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from nas_lib.data.datasets import DATASETS, DatasetError, ImageDataset, load_dataset, stratified_split
from tests.test_datasets_native import write_cifar100, write_dtd, write_gtsrb, write_stl10, write_svhn
from tests.test_idx import write_idx_pair


def _check_split(data: ImageDataset) -> None:
    assert data.train_x.dtype == torch.float32 and data.train_y.dtype == torch.int64
    assert tuple(data.train_x.shape[1:]) == data.input_shape == tuple(data.val_x.shape[1:])
    assert len(data.class_names) == data.num_classes
    assert set(data.val_y.tolist()) == set(data.train_y.tolist())  # every class scored
    assert len(data.fingerprint) == 64


def _tiny_source(kind: str, root: Path) -> Path | None:
    """A small on-disk instance of each registered source (a new source must add one here)."""
    rng = np.random.default_rng(0)
    if kind == "digits":
        return None
    if kind == "cifar10_npz":
        np.savez(root / "d.npz", x=rng.integers(0, 256, (20, 8, 8, 3), dtype=np.uint8), y=np.arange(20) % 10)
        return root / "d.npz"
    if kind == "cifar10_batches":
        (root / "data_batch_1").write_bytes(pickle.dumps({b"data": rng.integers(0, 256, (20, 3072), dtype=np.uint8), b"labels": list(range(10)) * 2}))
        return root
    native = {"cifar100_batches": write_cifar100, "svhn_mat": write_svhn, "stl10_binary": write_stl10, "gtsrb": write_gtsrb, "dtd": write_dtd}
    if kind in native:
        return native[kind](root / kind)
    if kind == "idx":
        write_idx_pair(root, "train", rng.integers(0, 256, (20, 8, 8), dtype=np.uint8), np.arange(20, dtype=np.uint8) % 10)
        return root
    files = _write_images(root / "imgs", {"x": 2, "y": 2})
    if kind == "image_folder":
        return root / "imgs"
    if kind == "csv":
        (root / "l.csv").write_text("path,label\n" + "".join(f"{f.relative_to(root).as_posix()},{f.parent.name}\n" for f in files))
        return root / "l.csv"
    raise AssertionError(f"no test source for dataset kind {kind!r}")


@pytest.mark.parametrize("kind", DATASETS.names())
def test_every_registered_source_loads(kind: str, tmp_path: Path) -> None:
    data = load_dataset(kind, _tiny_source(kind, tmp_path), image_size=8, val_fraction=0.5, max_items=40)
    _check_split(data)
    assert data.name == kind and data.input_shape[1:] == (8, 8)
    assert torch.isfinite(data.train_x).all() and repr(data).startswith("ImageDataset(name=")


def test_registry_lists_every_source() -> None:
    assert set(DATASETS.names()) == {
        "digits",
        "cifar10_npz",
        "cifar10_batches",
        "image_folder",
        "csv",
        "idx",
        "cifar100_batches",
        "svhn_mat",
        "stl10_binary",
        "gtsrb",
        "dtd",
    }
    with pytest.raises(KeyError, match="digits"):
        load_dataset("mnist")


def test_digits_split_is_stratified_normalised_and_seeded() -> None:
    data = load_dataset("digits", val_fraction=0.25, seed=3)
    _check_split(data)
    assert data.input_shape == (1, 8, 8) and data.num_classes == 10
    assert len(data.train_y) + len(data.val_y) == 1797
    counts = torch.bincount(data.val_y, minlength=10).float() / torch.bincount(torch.cat([data.train_y, data.val_y])).float()
    assert torch.allclose(counts, torch.full((10,), 0.25), atol=0.02)
    assert abs(data.train_x.mean().item()) < 1e-4 and abs(data.train_x.std().item() - 1) < 1e-3
    again, other = load_dataset("digits", val_fraction=0.25, seed=3), load_dataset("digits", val_fraction=0.25, seed=4)
    assert again.fingerprint == data.fingerprint and torch.equal(again.val_y, data.val_y)
    assert other.fingerprint != data.fingerprint


def test_max_items_and_image_size() -> None:
    data = load_dataset("digits", max_items=200, image_size=16, seed=1)
    _check_split(data)
    assert len(data.train_y) + len(data.val_y) == 200 and data.input_shape == (1, 16, 16)
    assert torch.bincount(torch.cat([data.train_y, data.val_y])).min() >= 19  # stratified subsample
    assert data.fingerprint != load_dataset("digits", max_items=200, seed=1).fingerprint


@pytest.mark.parametrize("bad", [dict(val_fraction=0.0), dict(val_fraction=1.0), dict(image_size=0), dict(max_items=1)])
def test_bad_options_raise(bad: dict) -> None:
    with pytest.raises(ValueError):
        load_dataset("digits", **bad)


@pytest.mark.parametrize("n_per_class,fraction", [(2, 0.1), (5, 0.2), (7, 0.5), (30, 0.9)])
def test_stratified_split_partitions_every_class(n_per_class: int, fraction: float) -> None:
    labels = np.repeat(np.arange(4), n_per_class)
    train, val = stratified_split(labels, fraction, np.random.default_rng(0))
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(len(labels)))
    for c in range(4):
        assert (labels[train] == c).any() and (labels[val] == c).any()


def test_cifar10_npz(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "small.npz"
    np.savez(path, x=rng.integers(0, 256, (60, 12, 12, 3), dtype=np.uint8), y=np.tile(np.arange(10), 6).astype(np.uint8))
    data = load_dataset("cifar10_npz", path, val_fraction=0.5)
    _check_split(data)
    with np.load(path) as raw:  # normalize() maps raw images exactly as the split was mapped
        normed = data.normalize(torch.from_numpy(raw["x"]).permute(0, 3, 1, 2))
    assert sum(torch.allclose(image, data.val_x[0], atol=1e-5) for image in normed) == 1
    with pytest.raises(ValueError, match="N x 3 x 12 x 12"):
        data.normalize(torch.zeros(1, 3, 8, 8))
    assert data.input_shape == (3, 12, 12) and data.class_names[0] == "airplane"
    np.savez(tmp_path / "bad.npz", images=np.zeros((2, 4, 4, 3), np.uint8))
    with pytest.raises(DatasetError, match="bad.npz.*'y'"):
        load_dataset("cifar10_npz", tmp_path / "bad.npz")
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DatasetError, match="broken.npz"):
        load_dataset("cifar10_npz", tmp_path / "broken.npz")
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        load_dataset("cifar10_npz", tmp_path / "nope.npz")


def test_cifar10_npz_reference_file(shared_data: Path) -> None:
    data = load_dataset("cifar10_npz", shared_data / "cifar10_train1000.npz", max_items=300)
    _check_split(data)
    assert data.input_shape == (3, 32, 32) and data.num_classes == 10
    assert 55 <= len(data.val_y) <= 65 and len(data.train_y) + len(data.val_y) == 300


def test_cifar10_batches(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for i in (1, 2):
        batch = {b"data": rng.integers(0, 256, (20, 3072), dtype=np.uint8), b"labels": [j % 10 for j in range(20)]}
        (tmp_path / f"data_batch_{i}").write_bytes(pickle.dumps(batch))
    names = [f"c{i}".encode() for i in range(10)]
    (tmp_path / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}))
    data = load_dataset("cifar10_batches", tmp_path)
    _check_split(data)
    assert data.input_shape == (3, 32, 32) and data.class_names == tuple(f"c{i}" for i in range(10))
    assert len(data.train_y) + len(data.val_y) == 40
    (tmp_path / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(DatasetError, match="data_batch_3"):
        load_dataset("cifar10_batches", tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="data_batch"):
        load_dataset("cifar10_batches", tmp_path / "empty")


def _write_images(root: Path, classes: dict[str, int]) -> list[Path]:
    from PIL import Image

    rng, files = np.random.default_rng(0), []
    for name, count in classes.items():
        (root / name).mkdir(parents=True)
        for i in range(count):
            size = (10 + i, 14)  # mixed sizes: the loader resizes
            file = root / name / f"{i}.{'png' if i % 2 else 'jpg'}"
            Image.fromarray(rng.integers(0, 256, (*size[::-1], 3), dtype=np.uint8)).save(file)
            files.append(file)
    return files


def test_image_folder(tmp_path: Path) -> None:
    _write_images(tmp_path / "imgs", {"cat": 4, "dog": 5})
    data = load_dataset("image_folder", tmp_path / "imgs", image_size=16, val_fraction=0.25)
    _check_split(data)
    assert data.input_shape == (3, 16, 16) and data.class_names == ("cat", "dog")
    assert load_dataset("image_folder", tmp_path / "imgs").input_shape == (3, 32, 32)
    (tmp_path / "imgs" / "dog" / "broken.png").write_bytes(b"garbage")
    with pytest.raises(DatasetError, match="broken.png"):
        load_dataset("image_folder", tmp_path / "imgs")
    with pytest.raises(FileNotFoundError, match="missing"):
        load_dataset("image_folder", tmp_path / "missing")


def test_csv(tmp_path: Path) -> None:
    files = _write_images(tmp_path / "pics", {"a": 3, "b": 3})
    rows = ["path,label"] + [f"{f.relative_to(tmp_path).as_posix()},{'zebra' if f.parent.name == 'a' else 'ant'}" for f in files]
    (tmp_path / "list.csv").write_text("\n".join(rows) + "\n")
    data = load_dataset("csv", tmp_path / "list.csv", image_size=8, val_fraction=0.34)
    _check_split(data)
    assert data.class_names == ("ant", "zebra") and data.input_shape == (3, 8, 8)
    (tmp_path / "cols.csv").write_text("file,class\nx.png,1\n")
    with pytest.raises(DatasetError, match=r"'path' and 'label'.*\['file', 'class'\]"):
        load_dataset("csv", tmp_path / "cols.csv")
    (tmp_path / "gone.csv").write_text("path,label\nnowhere.png,1\n")
    with pytest.raises(FileNotFoundError, match="line 2.*nowhere.png"):
        load_dataset("csv", tmp_path / "gone.csv")
    (tmp_path / "blank.csv").write_text(f"path,label\n{rows[1].split(',')[0]},\n")
    with pytest.raises(DatasetError, match="line 2: empty label"):
        load_dataset("csv", tmp_path / "blank.csv")
    with pytest.raises(ValueError, match="needs a path"):
        load_dataset("csv")
