"""The first sources: scikit-learn digits, npz arrays, CIFAR-10 batches, image folders and CSV lists.

Each is registered in `DATASETS` under the name given in `nas_lib.data.datasets`' docstring.
An npz ``split`` array and a CSV ``split`` column (train / val / test per row) are honoured:
test rows never enter training or validation.
"""

from __future__ import annotations

import csv
import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nas_lib.data.datasets import DATASETS, DatasetError, RawImages, parse_split, reads_no_path, require_path as _require

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".ppm")
DEFAULT_FOLDER_SIZE = 32  # folders hold images of any size; 32 px matches CIFAR-sized search nets


def _from_uint8_nhwc(x: np.ndarray, y: np.ndarray, source: Path) -> RawImages:
    """Checks and converts uint8 N x H x W x C images and their labels."""
    if x.ndim == 3:  # N x H x W grayscale
        x = x[..., None]
    if x.ndim != 4:
        raise DatasetError(f"{source}: images must be N x H x W x C, got shape {x.shape}")
    y = np.asarray(y).reshape(-1)
    if len(y) != len(x):
        raise DatasetError(f"{source}: {len(x)} images but {len(y)} labels")
    if not np.issubdtype(y.dtype, np.integer) or (len(y) and y.min() < 0):
        raise DatasetError(f"{source}: labels must be non-negative integers, got dtype {y.dtype}")
    scale = 255.0 if x.dtype == np.uint8 else 1.0  # float images are taken as already in [0, 1]
    images = np.transpose(x, (0, 3, 1, 2)).astype(np.float32) / scale
    n_classes = int(y.max()) + 1 if len(y) else 0
    return RawImages(images, y.astype(np.int64), tuple(str(i) for i in range(n_classes)))


@DATASETS.register("digits")
@reads_no_path
def _load_digits(path: Path | None, image_size: int | None) -> RawImages:
    """scikit-learn's bundled 8x8 handwritten digits (pixel values 0..16)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images.astype(np.float32) / 16.0)[:, None, :, :]
    return RawImages(x, bunch.target.astype(np.int64), tuple(str(n) for n in bunch.target_names))


CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


@DATASETS.register("cifar10_npz")
def _load_npz(path: Path | None, image_size: int | None) -> RawImages:
    """An npz with ``x`` (uint8 N x H x W x C), ``y`` and optionally ``split`` (train/val/test
    per image); CIFAR-10 class names when 10 classes."""
    path = _require(path, "cifar10_npz", "the .npz file")
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = {"x", "y"} - set(archive.files)
            if missing:
                raise DatasetError(f"{path}: arrays {sorted(missing)} missing (found {archive.files})")
            raw = _from_uint8_nhwc(archive["x"], archive["y"], path)
            if "split" in archive.files:
                split = parse_split(archive["split"], path)
                if len(split) != len(raw.y):
                    raise DatasetError(f"{path}: {len(raw.y)} images but {len(split)} split values")
                raw = RawImages(raw.x, raw.y, raw.class_names, split)
    except DatasetError:
        raise
    except Exception as err:  # numpy raises OSError, ValueError or BadZipFile for a broken file
        raise DatasetError(f"{path}: not a readable .npz file ({type(err).__name__}: {err})") from err
    if len(raw.class_names) == len(CIFAR10_CLASSES) and raw.x.shape[1] == 3:
        raw = RawImages(raw.x, raw.y, CIFAR10_CLASSES, raw.split)
    return raw


@DATASETS.register("cifar10_batches")
def _load_cifar_batches(path: Path | None, image_size: int | None) -> RawImages:
    """The CIFAR-10 python folder: every ``data_batch_*`` present, and ``test_batch`` (when
    present) as the test part.

    The batches are Python pickles, the format CIFAR-10 is distributed in; only open folders
    you trust.
    """
    folder = _require(path, "cifar10_batches", "the CIFAR-10 batches folder")
    files = sorted(folder.glob("data_batch_*"))
    if not files:
        raise FileNotFoundError(f"dataset 'cifar10_batches': no data_batch_* files in {folder}")
    test = folder / "test_batch"
    parts = [read_pickled_batch(file, b"labels") for file in files + ([test] if test.is_file() else [])]
    xs, ys = [p[0] for p in parts], [p[1] for p in parts]
    split = np.concatenate([np.full(len(p[1]), 2 if f == test else 0, dtype=np.int8) for f, p in zip(files + [test], parts)])
    names: tuple[str, ...] = CIFAR10_CLASSES
    meta = folder / "batches.meta"
    if meta.exists():
        names = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in _unpickle(meta).get(b"label_names", names))
    return RawImages(np.concatenate(xs), np.concatenate(ys), names, split)  # bytes: converted after subsampling


def read_pickled_batch(file: Path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Images (N x 3 x 32 x 32 uint8) and labels of one CIFAR python batch; names the file
    when a key is missing or the counts differ."""
    batch = _unpickle(file)
    if b"data" not in batch or label_key not in batch:
        raise DatasetError(f"{file}: a CIFAR batch needs 'data' and {label_key.decode()!r} (found {sorted(k.decode() if isinstance(k, bytes) else str(k) for k in batch)})")
    data = np.asarray(batch[b"data"], dtype=np.uint8)
    if data.ndim != 2 or data.shape[1] != 3072:
        raise DatasetError(f"{file}: 'data' must be N x 3072 bytes (32x32 RGB), got shape {data.shape}")
    labels = np.asarray(batch[label_key], dtype=np.int64)
    if len(labels) != len(data):
        raise DatasetError(f"{file}: {len(data)} images but {len(labels)} labels")
    return data.reshape(-1, 3, 32, 32), labels


def _unpickle(file: Path) -> dict:
    try:
        with file.open("rb") as fh:
            obj = pickle.load(fh, encoding="bytes")
    except Exception as err:  # a truncated or foreign file; say which one
        raise DatasetError(f"{file}: not a CIFAR pickle ({type(err).__name__}: {err})") from err
    if not isinstance(obj, dict):
        raise DatasetError(f"{file}: expected a pickled dict, got {type(obj).__name__}")
    return obj


def decode_images(files: Sequence[Path], size: int) -> tuple[np.ndarray, np.ndarray, tuple[tuple[str, str], ...]]:
    """Reads image files as RGB, resized to ``size x size``, skipping those that fail to decode.

    Returns:
        The decoded images (float32 K x 3 x size x size), the indices of their files in
        ``files``, and ``(path, reason)`` for every file that could not be decoded.

    Raises:
        FileNotFoundError: a file is missing (a wrong list, not a damaged image).
    """
    from PIL import Image, UnidentifiedImageError

    out = np.empty((len(files), 3, size, size), dtype=np.float32)
    kept: list[int] = []
    skipped: list[tuple[str, str]] = []
    for i, file in enumerate(files):
        try:
            with Image.open(file) as img:
                rgb = img.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
        except FileNotFoundError:
            raise
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:  # PIL raises SyntaxError for some broken headers
            skipped.append((str(file), f"{type(err).__name__}: {err}"))
            continue
        out[len(kept)] = np.asarray(rgb, dtype=np.float32).transpose(2, 0, 1) / 255.0
        kept.append(i)
    return out[: len(kept)], np.asarray(kept, dtype=np.int64), tuple(skipped)


def _read_images(files: Sequence[Path], size: int) -> np.ndarray:
    """Like `decode_images`, but the first file that fails to decode is an error naming it."""
    x, _, skipped = decode_images(files, size)
    if skipped:
        raise DatasetError(f"cannot read image {skipped[0][0]}: {skipped[0][1]}")
    return x


def list_image_folder(root: Path) -> tuple[list[Path], list[int], tuple[str, ...]]:
    """The image files of ``root/<class>/<image>``, their labels and the sorted class names."""
    if not root.is_dir():
        raise DatasetError(f"{root} is not a folder")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    files: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        found = sorted(f for f in (root / name).iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        files += found
        labels += [label] * len(found)
    if not files:
        raise DatasetError(f"{root}: no images ({'/'.join(IMAGE_SUFFIXES)}) in class sub-folders {classes or '(none)'}")
    return files, labels, tuple(classes)


def _decoded(files: list[Path], labels: np.ndarray, names: tuple[str, ...], split: np.ndarray | None, size: int) -> RawImages:
    """The files that decode, with their labels and split; the others listed as skipped."""
    x, kept, skipped = decode_images(files, size)
    return RawImages(x, labels[kept], names, None if split is None else split[kept], skipped, len(files))


@DATASETS.register("image_folder")
def _load_image_folder(path: Path | None, image_size: int | None) -> RawImages:
    """``root/<class>/<image>``; classes are the sub-folder names in sorted order."""
    root = _require(path, "image_folder", "the image folder")
    files, labels, classes = list_image_folder(root)
    return _decoded(files, np.asarray(labels, dtype=np.int64), classes, None, image_size or DEFAULT_FOLDER_SIZE)


@DATASETS.register("csv")
def _load_csv(path: Path | None, image_size: int | None) -> RawImages:
    """A CSV with ``path,label`` columns and an optional ``split`` column (train/val/test);
    integer labels sort numerically, others by name."""
    table = _require(path, "csv", "the CSV file")
    files, labels, names, split = read_csv_list(table)
    return _decoded(files, labels, names, split, image_size or DEFAULT_FOLDER_SIZE)


def read_csv_list(table: Path) -> tuple[list[Path], np.ndarray, tuple[str, ...], np.ndarray | None]:
    """The image files a ``path,label[,split]`` CSV lists (each checked to exist), their labels,
    the class names and the split codes (None without a ``split`` column)."""
    with table.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        columns = [c.strip() for c in reader.fieldnames or []]
        if "path" not in columns or "label" not in columns:
            raise DatasetError(f"{table}: needs columns 'path' and 'label', found {columns}")
        rows = [{k.strip(): (v or "").strip() for k, v in row.items() if k} for row in reader]
    if not rows:
        raise DatasetError(f"{table}: no rows")
    files = []
    for line, row in enumerate(rows, start=2):
        if not row.get("label"):
            raise DatasetError(f"{table} line {line}: empty label")
        file = (table.parent / row["path"]).resolve()
        if not row["path"] or not file.is_file():
            raise FileNotFoundError(f"{table} line {line}: image {row['path']!r} not found (looked at {file})")
        files.append(file)
    names = sorted({r["label"] for r in rows}, key=lambda s: (0, int(s), "") if s.lstrip("-").isdigit() else (1, 0, s))
    index = {name: i for i, name in enumerate(names)}
    labels = np.asarray([index[r["label"]] for r in rows], dtype=np.int64)
    split = parse_split([r["split"] or "train" for r in rows], table) if "split" in columns else None
    return files, labels, tuple(names), split
