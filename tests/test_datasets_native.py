"""Native dataset formats: small files written here in each published layout, the test part kept
apart, and bad files that name themselves."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from nas_lib.data.datasets import DatasetError, ImageDataset, load_dataset

RNG = np.random.default_rng(0)


def write_cifar100(root: Path, n: int = 40, n_test: int = 10, classes: int = 4) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, count in (("train", n), ("test", n_test)):
        batch = {
            b"data": RNG.integers(0, 256, (count, 3072), dtype=np.uint8),
            b"fine_labels": [i % classes for i in range(count)],
            b"coarse_labels": [0] * count,
        }
        (root / name).write_bytes(pickle.dumps(batch))
    (root / "meta").write_bytes(pickle.dumps({b"fine_label_names": [f"f{i}".encode() for i in range(classes)]}))
    return root


def write_svhn(root: Path, n: int = 30, n_test: int = 10) -> Path:
    from scipy.io import savemat

    root.mkdir(parents=True, exist_ok=True)
    for name, count in (("train", n), ("test", n_test)):
        x = RNG.integers(0, 256, (32, 32, 3, count), dtype=np.uint8)
        savemat(root / f"{name}_32x32.mat", {"X": x, "y": (np.arange(count) % 10 + 1).reshape(-1, 1).astype(np.uint8)})
    return root


def stl10_bytes(images: np.ndarray) -> bytes:
    """N x 3 x 96 x 96 uint8 images in STL-10's column-major byte order."""
    return np.ascontiguousarray(images.transpose(0, 1, 3, 2)).tobytes()


def write_stl10(root: Path, n: int = 20, n_test: int = 10) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, count in (("train", n), ("test", n_test)):
        (root / f"{name}_X.bin").write_bytes(stl10_bytes(RNG.integers(0, 256, (count, 3, 96, 96), dtype=np.uint8)))
        (root / f"{name}_y.bin").write_bytes((np.arange(count) % 10 + 1).astype(np.uint8).tobytes())
    (root / "class_names.txt").write_text("\n".join(["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]))
    return root


def _gtsrb_image(file: Path, box: tuple[int, int, int, int], size: tuple[int, int] = (20, 16)) -> None:
    """A black image whose region of interest (inclusive corners) is white."""
    from PIL import Image

    pixels = np.zeros((size[1], size[0], 3), dtype=np.uint8)
    x1, y1, x2, y2 = box
    pixels[y1 : y2 + 1, x1 : x2 + 1] = 255
    Image.fromarray(pixels).save(file)


def write_gtsrb(root: Path, classes: int = 3, per_class: int = 4, n_test: int = 6) -> Path:
    box = (3, 2, 14, 11)
    header = "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\n"
    for c in range(classes):
        folder = root / "Final_Training" / "Images" / f"{c:05d}"
        folder.mkdir(parents=True)
        lines = [f"{c:05d}_{i:05d}.ppm;20;16;{';'.join(map(str, box))};{c}\n" for i in range(per_class)]
        for i in range(per_class):
            _gtsrb_image(folder / f"{c:05d}_{i:05d}.ppm", box)
        (folder / f"GT-{c:05d}.csv").write_text(header + "".join(lines))
    test = root / "Final_Test" / "Images"
    test.mkdir(parents=True)
    for i in range(n_test):
        _gtsrb_image(test / f"{i:05d}.ppm", box)
    (test / "GT-final_test.csv").write_text(header + "".join(f"{i:05d}.ppm;20;16;{';'.join(map(str, box))};{i % classes}\n" for i in range(n_test)))
    return root


def write_dtd(root: Path, classes: tuple[str, ...] = ("banded", "dotted", "woven"), per_class: int = 6) -> Path:
    from PIL import Image

    lists: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for c in classes:
        (root / "images" / c).mkdir(parents=True)
        for i in range(per_class):
            name = f"{c}/{c}_{i:04d}.jpg"
            Image.fromarray(RNG.integers(0, 256, (24, 20, 3), dtype=np.uint8)).save(root / "images" / name)
            lists[("train", "train", "val", "val", "test", "test")[i % 6]].append(name)
    (root / "labels").mkdir()
    for split, names in lists.items():
        (root / "labels" / f"{split}1.txt").write_text("\n".join(names) + "\n")
    return root


def _sizes(data: ImageDataset) -> tuple[int, int, int]:
    return len(data.train_y), len(data.val_y), 0 if data.test_y is None else len(data.test_y)


def test_cifar100_batches(tmp_path: Path) -> None:
    data = load_dataset("cifar100_batches", write_cifar100(tmp_path), val_fraction=0.25)
    assert _sizes(data) == (32, 8, 10) and data.class_names == ("f0", "f1", "f2", "f3")
    assert data.input_shape == (3, 32, 32) and data.test_x.shape == (10, 3, 32, 32)
    (tmp_path / "train").write_bytes(pickle.dumps({b"data": np.zeros((5, 3072), np.uint8), b"fine_labels": [1] * 5}))
    with pytest.raises(DatasetError, match="train: every label is the same"):
        load_dataset("cifar100_batches", tmp_path)
    (tmp_path / "train").write_bytes(pickle.dumps({b"data": np.zeros((5, 3072), np.uint8), b"fine_labels": [0, 1] * 3}))
    with pytest.raises(DatasetError, match="train: 5 images but 6 labels"):
        load_dataset("cifar100_batches", tmp_path)
    (tmp_path / "train").write_bytes(pickle.dumps({b"data": np.zeros((5, 3072), np.uint8), b"fine_labels": [0, 1] * 3})[:-9])
    with pytest.raises(DatasetError, match="train: not a CIFAR pickle"):
        load_dataset("cifar100_batches", tmp_path)


def test_svhn_mat_maps_label_10_to_digit_0(tmp_path: Path) -> None:
    data = load_dataset("svhn_mat", write_svhn(tmp_path), val_fraction=0.2)
    assert _sizes(data) == (20, 10, 10) and data.num_classes == 10
    assert sorted(set(data.train_y.tolist()) | set(data.val_y.tolist())) == list(range(10))
    alone = load_dataset("svhn_mat", tmp_path / "train_32x32.mat")  # a single file: no test part
    assert _sizes(alone)[2] == 0
    from scipy.io import savemat

    savemat(tmp_path / "train_32x32.mat", {"X": np.zeros((32, 32, 3, 4), np.uint8), "y": np.ones((5, 1), np.uint8)})
    with pytest.raises(DatasetError, match="train_32x32.mat: 4 images but 5 labels"):
        load_dataset("svhn_mat", tmp_path)
    (tmp_path / "train_32x32.mat").write_bytes(b"MATLAB 5.0 MAT-file, truncated")
    with pytest.raises(DatasetError, match="train_32x32.mat: not a readable MATLAB file"):
        load_dataset("svhn_mat", tmp_path)


def test_stl10_binary_reads_column_major_images(tmp_path: Path) -> None:
    write_stl10(tmp_path)
    image = np.zeros((2, 3, 96, 96), dtype=np.uint8)
    image[:, 0, 0, :] = 255  # the top row of the red channel: its transpose would be the left column
    (tmp_path / "train_X.bin").write_bytes(stl10_bytes(np.concatenate([image, np.zeros((18, 3, 96, 96), np.uint8)])))
    data = load_dataset("stl10_binary", tmp_path, val_fraction=0.5, seed=0)
    assert _sizes(data) == (10, 10, 10) and data.class_names[-1] == "truck"
    red = torch.cat([data.train_x, data.val_x])[:, 0]
    top = red[:, 0, 1:].std(dim=1)
    assert (top > 0).sum() == 0 and red[:, 0, :].max() > red[:, 1:, :].max()  # a bright top row, nothing else
    (tmp_path / "train_X.bin").write_bytes(stl10_bytes(image)[:-7])
    with pytest.raises(DatasetError, match="train_X.bin: truncated"):
        load_dataset("stl10_binary", tmp_path)
    (tmp_path / "train_X.bin").write_bytes(stl10_bytes(image))
    with pytest.raises(DatasetError, match="train_X.bin: 2 images but train_y.bin holds 20 labels"):
        load_dataset("stl10_binary", tmp_path)


def test_gtsrb_crops_each_image_to_its_region(tmp_path: Path) -> None:
    data = load_dataset("gtsrb", write_gtsrb(tmp_path), image_size=8, val_fraction=0.25)
    assert _sizes(data) == (9, 3, 6) and data.num_classes == 3 and data.input_shape == (3, 8, 8)
    assert float(data.train_x.std()) < 1e-3  # only the white region is left: every pixel alike
    (tmp_path / "Final_Training" / "Images" / "00001" / "00001_00002.ppm").write_bytes(b"P6 broken")
    with pytest.raises(DatasetError, match="00001_00002.ppm"):
        load_dataset("gtsrb", tmp_path)


def test_dtd_uses_the_published_fold(tmp_path: Path) -> None:
    data = load_dataset("dtd", write_dtd(tmp_path), image_size=8)
    assert _sizes(data) == (6, 6, 6) and data.class_names == ("banded", "dotted", "woven")
    (tmp_path / "images" / "dotted" / "dotted_0003.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DatasetError, match="dotted_0003.jpg"):
        load_dataset("dtd", tmp_path)


def test_npz_split_keeps_test_images_out_of_training(tmp_path: Path) -> None:
    x = RNG.integers(0, 100, (40, 6, 6, 3), dtype=np.uint8)
    x[30:] = 255  # the test images are the only white ones
    split = np.array(["train"] * 30 + ["test"] * 10)
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(40) % 5, split=split)
    data = load_dataset("cifar10_npz", tmp_path / "d.npz", val_fraction=0.2)
    assert _sizes(data) == (25, 5, 10)
    mean, std = torch.tensor(data.mean)[:, None, None], torch.tensor(data.std)[:, None, None]
    assert float((torch.cat([data.train_x, data.val_x]) * std + mean).max()) <= 100 / 255 + 1e-5
    assert torch.allclose(data.test_x * std + mean, torch.ones(1), atol=1e-5)
    np.savez(tmp_path / "bad.npz", x=x, y=np.arange(40) % 5, split=np.array(["train"] * 39 + ["holdout"]))
    with pytest.raises(DatasetError, match=r"bad.npz: unknown split value\(s\) \['holdout'\]"):
        load_dataset("cifar10_npz", tmp_path / "bad.npz")


def test_csv_split_column_and_val_rows(tmp_path: Path) -> None:
    from PIL import Image

    rows = ["path,label,split"]
    for i in range(12):
        Image.fromarray(np.full((5, 5, 3), i * 20, np.uint8)).save(tmp_path / f"{i}.png")
        rows.append(f"{i}.png,{'ab'[i % 2]},{('train', 'train', 'val', 'val', 'test', 'test')[i // 2]}")
    (tmp_path / "l.csv").write_text("\n".join(rows) + "\n")
    data = load_dataset("csv", tmp_path / "l.csv", image_size=4)
    assert _sizes(data) == (4, 4, 4) and data.class_names == ("a", "b")


def test_real_mnist_test_part(shared_data: Path) -> None:
    data = load_dataset("idx", shared_data / "mnist", max_items=500)
    assert _sizes(data)[2] == 500 and data.input_shape == (1, 28, 28)
    assert sorted(set(data.test_y.tolist())) == list(range(10))
    assert data.fingerprint == load_dataset("idx", shared_data / "mnist", max_items=500).fingerprint
