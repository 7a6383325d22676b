"""Image classification datasets for the short training of finalists (no downloads, no torchvision).

Every source is read from disk (or, for ``digits``, from the copy that ships inside
scikit-learn) into one `ImageDataset`: float32 NCHW tensors normalised per channel with the
statistics of the training split, int64 labels, a stratified seeded train/validation split and a
sha256 fingerprint that changes whenever the content, the split or an option changes.

Sources (the registered name is the ``kind`` argument of `load_dataset`):
    digits: scikit-learn's handwritten digits, 1,797 grayscale 8x8 images, 10 classes.
    cifar10_npz: an ``.npz`` with ``x`` (uint8, N x H x W x C) and ``y`` (integer labels).
    cifar10_batches: the CIFAR-10 "python version" folder (data_batch_1..5, batches.meta).
    image_folder: ``root/<class name>/<image>.png|jpg|jpeg|bmp`` read with PIL.
    csv: a CSV with columns ``path,label``; paths are relative to the CSV file.
"""

from __future__ import annotations

import csv
import hashlib
import json
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from nas_lib.registry import Registry

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
DEFAULT_FOLDER_SIZE = 32  # folders hold images of any size; 32 px matches CIFAR-sized search nets


class DatasetError(ValueError):
    """A dataset source is malformed; the message names the file and what is wrong with it."""


@dataclass(frozen=True)
class RawImages:
    """What a source loader returns before splitting: images in [0, 1] and integer labels.

    Attributes:
        x: float32 array N x C x H x W with values in [0, 1].
        y: int64 array of N labels in ``range(len(class_names))``.
        class_names: one name per class, indexed by label.
    """

    x: np.ndarray
    y: np.ndarray
    class_names: tuple[str, ...]


@dataclass(frozen=True, eq=False, repr=False)  # eq=False: tensors have no single truth value
class ImageDataset:
    """A split, normalised image classification dataset held in memory.

    Attributes:
        name: the source kind (``digits``, ``cifar10_npz``, ...).
        train_x, val_x: float32 N x C x H x W, normalised with the training split's per-channel
            mean and std.
        train_y, val_y: int64 labels.
        num_classes: number of classes (labels are ``0..num_classes-1``).
        class_names: one name per label.
        input_shape: (C, H, W) of one image, what `SearchSpace.build_model` expects.
        fingerprint: sha256 hex over the split tensors and the loading options; a cache key.
        mean, std: the per-channel normalisation, needed to prepare new images for inference.
    """

    name: str
    train_x: Tensor
    train_y: Tensor
    val_x: Tensor
    val_y: Tensor
    num_classes: int
    class_names: tuple[str, ...]
    input_shape: tuple[int, int, int]
    fingerprint: str
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()

    def normalize(self, images: Tensor) -> Tensor:
        """Prepares new images for the trained model: float N x C x H x W in [0, 1] (uint8 is
        scaled by 1/255), normalised with this dataset's training statistics."""
        x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"images must be N x {' x '.join(map(str, self.input_shape))}, got {tuple(x.shape)}")
        mean, std = torch.tensor(self.mean), torch.tensor(self.std)
        return (x - mean[:, None, None]) / std[:, None, None]

    def __repr__(self) -> str:  # the default would print every pixel
        return f"ImageDataset({', '.join(f'{k}={v!r}' for k, v in self.summary().items())})"

    def summary(self) -> dict[str, object]:
        """Plain-data description for logs, Parquet rows and MLflow params."""
        return {
            "name": self.name,
            "train_size": int(self.train_y.numel()),
            "val_size": int(self.val_y.numel()),
            "num_classes": self.num_classes,
            "input_shape": list(self.input_shape),
            "fingerprint": self.fingerprint,
        }


Loader = Callable[[Path | None, int | None], RawImages]
DATASETS: Registry[Loader] = Registry("dataset")


def load_dataset(
    kind: str,
    path: str | Path | None = None,
    *,
    image_size: int | None = None,
    val_fraction: float = 0.2,
    seed: int = 0,
    max_items: int | None = None,
) -> ImageDataset:
    """Loads a registered dataset source and splits it into train and validation tensors.

    Args:
        kind: a name in `DATASETS` (``digits``, ``cifar10_npz``, ``cifar10_batches``,
            ``image_folder``, ``csv``).
        path: the file or folder to read; ignored by ``digits``, required by the others.
        image_size: resize every image to ``image_size x image_size`` (bilinear, antialiased).
            None keeps the native size; folders and CSV lists default to 32.
        val_fraction: share of each class held out for validation, in (0, 1).
        seed: seeds the subsample and the split, so the same arguments give the same split.
        max_items: keep at most this many images (a stratified seeded subsample) before
            splitting; None keeps all.

    Returns:
        The `ImageDataset`.

    Raises:
        KeyError: unknown ``kind`` (the message lists the known ones).
        FileNotFoundError: ``path`` (or a file it lists) does not exist.
        DatasetError: malformed content (bad CSV columns, unreadable image, too few images).
        ValueError: an option is out of range.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must lie in (0, 1), got {val_fraction}")
    if image_size is not None and image_size < 1:
        raise ValueError(f"image_size must be positive, got {image_size}")
    if max_items is not None and max_items < 2:
        raise ValueError(f"max_items must be at least 2, got {max_items}")
    loader = DATASETS.get(kind)
    raw = loader(Path(path).expanduser() if path is not None else None, image_size)
    rng = np.random.default_rng(seed)
    if max_items is not None and max_items < len(raw.y):
        keep = np.sort(_stratified_take(raw.y, max_items, rng))
        raw = RawImages(raw.x[keep], raw.y[keep], raw.class_names)
    if image_size is not None and raw.x.shape[-2:] != (image_size, image_size):
        raw = RawImages(_resize(raw.x, image_size), raw.y, raw.class_names)
    train_idx, val_idx = stratified_split(raw.y, val_fraction, rng)
    options = {"kind": kind, "image_size": image_size, "val_fraction": val_fraction, "seed": seed, "max_items": max_items}
    return _assemble(kind, raw, train_idx, val_idx, options)


def stratified_split(labels: np.ndarray, val_fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a seeded split that holds out ``val_fraction`` of every class.

    Each class with at least two images gives at least one image to each side, so every class
    the data has is scored on the validation split.
    """
    train, val = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        n_val = int(round(len(members) * val_fraction))
        if len(members) >= 2:
            n_val = min(max(n_val, 1), len(members) - 1)
        val.append(members[:n_val])
        train.append(members[n_val:])
    train_idx, val_idx = np.sort(np.concatenate(train)), np.sort(np.concatenate(val))
    if len(train_idx) == 0 or len(val_idx) == 0:
        raise DatasetError(f"{len(labels)} images are too few to split with val_fraction={val_fraction}")
    return train_idx, val_idx


def _stratified_take(labels: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` indices drawn so that each class keeps its share (largest remainders first)."""
    classes, sizes = np.unique(labels, return_counts=True)
    quota = sizes * count / sizes.sum()
    take = np.floor(quota).astype(int)
    for i in np.argsort(-(quota - take), kind="stable")[: count - take.sum()]:
        take[i] += 1
    picks = [rng.permutation(np.flatnonzero(labels == c))[:k] for c, k in zip(classes, take)]
    return np.concatenate(picks)


def _resize(x: np.ndarray, size: int) -> np.ndarray:
    """Bilinear, antialiased resize of an N x C x H x W float array, in chunks to bound memory."""
    chunks = []
    for start in range(0, len(x), 2048):
        part = torch.from_numpy(np.ascontiguousarray(x[start : start + 2048]))
        chunks.append(F.interpolate(part, size=(size, size), mode="bilinear", antialias=True, align_corners=False).clamp_(0, 1).numpy())
    return np.concatenate(chunks) if chunks else x


def _assemble(kind: str, raw: RawImages, train_idx: np.ndarray, val_idx: np.ndarray, options: dict[str, object]) -> ImageDataset:
    """Normalises with the training statistics and fingerprints the result."""
    x = torch.from_numpy(np.ascontiguousarray(raw.x, dtype=np.float32))
    y = torch.from_numpy(raw.y.astype(np.int64))
    train_x, val_x = x[torch.from_numpy(train_idx)], x[torch.from_numpy(val_idx)]
    mean = train_x.mean(dim=(0, 2, 3))
    std = train_x.std(dim=(0, 2, 3)).clamp_min(1e-6)  # a constant channel must not divide by 0
    for part in (train_x, val_x):  # in place: the indexed copies are ours, and full CIFAR-10 is 600 MB
        part.sub_(mean[:, None, None]).div_(std[:, None, None])
    train_y, val_y = y[torch.from_numpy(train_idx)], y[torch.from_numpy(val_idx)]
    digest = hashlib.sha256(json.dumps({**options, "classes": list(raw.class_names)}, sort_keys=True).encode())
    for tensor in (train_x, train_y, val_x, val_y):
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.contiguous().numpy().tobytes())
    return ImageDataset(
        name=kind,
        train_x=train_x.contiguous(),
        train_y=train_y,
        val_x=val_x.contiguous(),
        val_y=val_y,
        num_classes=len(raw.class_names),
        class_names=tuple(raw.class_names),
        input_shape=tuple(int(d) for d in x.shape[1:]),  # type: ignore[arg-type]
        fingerprint=digest.hexdigest(),
        mean=tuple(float(v) for v in mean),
        std=tuple(float(v) for v in std),
    )


# -- sources ---------------------------------------------------------------------------------------
def _require(path: Path | None, kind: str, what: str) -> Path:
    if path is None:
        raise ValueError(f"dataset {kind!r} needs a path to {what}")
    if not path.exists():
        raise FileNotFoundError(f"dataset {kind!r}: {what} {path} does not exist")
    return path


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
def _load_digits(path: Path | None, image_size: int | None) -> RawImages:
    """scikit-learn's bundled 8x8 handwritten digits (pixel values 0..16)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images.astype(np.float32) / 16.0)[:, None, :, :]
    return RawImages(x, bunch.target.astype(np.int64), tuple(str(n) for n in bunch.target_names))


CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


@DATASETS.register("cifar10_npz")
def _load_npz(path: Path | None, image_size: int | None) -> RawImages:
    """An npz with ``x`` (uint8 N x H x W x C) and ``y``; CIFAR-10 class names when 10 classes."""
    path = _require(path, "cifar10_npz", "the .npz file")
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = {"x", "y"} - set(archive.files)
            if missing:
                raise DatasetError(f"{path}: arrays {sorted(missing)} missing (found {archive.files})")
            raw = _from_uint8_nhwc(archive["x"], archive["y"], path)
    except DatasetError:
        raise
    except Exception as err:  # numpy raises OSError, ValueError or BadZipFile for a broken file
        raise DatasetError(f"{path}: not a readable .npz file ({type(err).__name__}: {err})") from err
    if len(raw.class_names) == len(CIFAR10_CLASSES) and raw.x.shape[1] == 3:
        raw = RawImages(raw.x, raw.y, CIFAR10_CLASSES)
    return raw


@DATASETS.register("cifar10_batches")
def _load_cifar_batches(path: Path | None, image_size: int | None) -> RawImages:
    """The CIFAR-10 python folder: every ``data_batch_*`` present (test_batch stays unseen).

    The batches are Python pickles, the format CIFAR-10 is distributed in; only open folders
    you trust.
    """
    folder = _require(path, "cifar10_batches", "the CIFAR-10 batches folder")
    files = sorted(folder.glob("data_batch_*"))
    if not files:
        raise FileNotFoundError(f"dataset 'cifar10_batches': no data_batch_* files in {folder}")
    xs, ys = [], []
    for file in files:
        batch = _unpickle(file)
        if b"data" not in batch or b"labels" not in batch:
            raise DatasetError(f"{file}: a CIFAR-10 batch needs 'data' and 'labels' (found {sorted(map(str, batch))})")
        xs.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        ys.append(np.asarray(batch[b"labels"], dtype=np.int64))
    names = CIFAR10_CLASSES
    meta = folder / "batches.meta"
    if meta.exists():
        names = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in _unpickle(meta).get(b"label_names", names))
    x = np.concatenate(xs).astype(np.float32)
    x /= 255.0
    return RawImages(x, np.concatenate(ys), names)


def _unpickle(file: Path) -> dict:
    try:
        with file.open("rb") as fh:
            obj = pickle.load(fh, encoding="bytes")
    except Exception as err:  # a truncated or foreign file; say which one
        raise DatasetError(f"{file}: not a CIFAR-10 pickle ({type(err).__name__}: {err})") from err
    if not isinstance(obj, dict):
        raise DatasetError(f"{file}: expected a pickled dict, got {type(obj).__name__}")
    return obj


def _read_images(files: Sequence[Path], size: int) -> np.ndarray:
    """Reads image files as RGB, resized to ``size x size``; names the file that fails."""
    from PIL import Image, UnidentifiedImageError

    out = np.empty((len(files), 3, size, size), dtype=np.float32)
    for i, file in enumerate(files):
        try:
            with Image.open(file) as img:
                rgb = img.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
        except FileNotFoundError:
            raise
        except (UnidentifiedImageError, OSError, ValueError) as err:
            raise DatasetError(f"cannot read image {file}: {err}") from err
        out[i] = np.asarray(rgb, dtype=np.float32).transpose(2, 0, 1) / 255.0
    return out


@DATASETS.register("image_folder")
def _load_image_folder(path: Path | None, image_size: int | None) -> RawImages:
    """``root/<class>/<image>``; classes are the sub-folder names in sorted order."""
    root = _require(path, "image_folder", "the image folder")
    if not root.is_dir():
        raise DatasetError(f"{root} is not a folder")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    files, labels = [], []
    for label, name in enumerate(classes):
        found = sorted(f for f in (root / name).iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        files += found
        labels += [label] * len(found)
    if not files:
        raise DatasetError(f"{root}: no images ({'/'.join(IMAGE_SUFFIXES)}) in class sub-folders {classes or '(none)'}")
    x = _read_images(files, image_size or DEFAULT_FOLDER_SIZE)
    return RawImages(x, np.asarray(labels, dtype=np.int64), tuple(classes))


@DATASETS.register("csv")
def _load_csv(path: Path | None, image_size: int | None) -> RawImages:
    """A CSV with ``path,label`` columns; integer labels sort numerically, others by name."""
    table = _require(path, "csv", "the CSV file")
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
    return RawImages(_read_images(files, image_size or DEFAULT_FOLDER_SIZE), labels, tuple(names))


from nas_lib.data import idx as _idx  # noqa: E402,F401  (registers the "idx" source; imports this module)
