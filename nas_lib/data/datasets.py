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
    csv: a CSV with columns ``path,label`` (and optionally ``split``); paths relative to the CSV.
    idx, cifar100_batches, svhn_mat, stl10_binary, gtsrb, dtd: native formats, one module each
    in this package (see their docstrings).

A source may mark rows ``test`` (a ``split`` array or column, or the format's own test files):
those rows never enter training or validation; they are kept apart as ``test_x``/``test_y``.
Rows marked ``val`` (where a format publishes a validation split) form the validation split
instead of the seeded stratified one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from nas_lib.registry import Registry


class DatasetError(ValueError):
    """A dataset source is malformed; the message names the file and what is wrong with it."""


@dataclass(frozen=True)
class RawImages:
    """What a source loader returns before splitting: images and integer labels.

    Attributes:
        x: N x C x H x W, float32 in [0, 1] or uint8 in 0..255 (converted after the
            ``max_items`` subsample, so large byte datasets are never held as floats whole).
        y: int64 array of N labels in ``range(len(class_names))``.
        class_names: one name per class, indexed by label.
    """

    x: np.ndarray
    y: np.ndarray
    class_names: tuple[str, ...]
    split: np.ndarray | None = None  # per row TRAIN, VAL or TEST; None = every row is TRAIN
    skipped: tuple[tuple[str, str], ...] = ()  # (file, reason) of each image that failed to decode
    files_total: int = 0  # files the source listed, decoded or not (0: the source reads no image files)


TRAIN, VAL, TEST = 0, 1, 2
SPLIT_NAMES = {"train": TRAIN, "val": VAL, "valid": VAL, "validation": VAL, "test": TEST}


def parse_split(values: Sequence[object] | np.ndarray, source: Path) -> np.ndarray:
    """Split names (``train``, ``val``/``valid``/``validation``, ``test``; any case) as int8
    codes; an unknown name raises a `DatasetError` that names ``source`` and the valid names."""
    names = np.asarray([v.decode() if isinstance(v, bytes) else str(v) for v in np.asarray(values).reshape(-1)])
    codes = np.full(len(names), -1, dtype=np.int8)
    for name, code in SPLIT_NAMES.items():
        codes[np.char.lower(np.char.strip(names)) == name] = code
    if (codes < 0).any():
        bad = sorted(set(names[codes < 0].tolist()))[:5]
        raise DatasetError(f"{source}: unknown split value(s) {bad}; use train, val or test")
    return codes


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
        test_x, test_y: the source's test part (normalised like the rest), or None when the
            source has none. It never takes part in training or validation, nor in the
            fingerprint (so adding test files does not change a run's identity).
        skipped: ``(path, reason)`` of every image file that failed to decode and was left
            out (image_folder and csv sources, up to ``max_corrupt_fraction`` of the files).
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
    test_x: Tensor | None = None
    test_y: Tensor | None = None
    skipped: tuple[tuple[str, str], ...] = ()

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
            "test_size": 0 if self.test_y is None else int(self.test_y.numel()),
            "num_classes": self.num_classes,
            "input_shape": list(self.input_shape),
            "fingerprint": self.fingerprint,
        }


Loader = Callable[[Path | None, int | None], RawImages]
DATASETS: Registry[Loader] = Registry("dataset")


def reads_no_path(loader: Loader) -> Loader:
    """Marks a loader whose data needs no ``path`` (``digits`` ships inside scikit-learn): the
    checks before a run (`nas_lib.data.checks.check_source`) then ask for none. Apply it below
    the registration (``@DATASETS.register(...)`` on top)."""
    loader.reads_no_path = True  # type: ignore[attr-defined]  # a function attribute: the mark travels with the loader
    return loader


def needs_path(kind: str) -> bool:
    """Whether the registered source `kind` reads ``path`` (KeyError listing the known ones otherwise)."""
    return not getattr(DATASETS.get(kind), "reads_no_path", False)


def load_dataset(
    kind: str,
    path: str | Path | None = None,
    *,
    image_size: int | None = None,
    val_fraction: float = 0.2,
    seed: int = 0,
    max_items: int | None = None,
    max_corrupt_fraction: float = 0.01,
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
            splitting, and at most this many of the test part; None keeps all.
        max_corrupt_fraction: share of a source's image files that may fail to decode; they
            are left out and listed in ``ImageDataset.skipped``. Above it loading stops.

    Returns:
        The `ImageDataset`.

    Raises:
        KeyError: unknown ``kind`` (the message lists the known ones).
        FileNotFoundError: ``path`` (or a file it lists) does not exist.
        DatasetError: malformed content (bad CSV columns, too many unreadable images, fewer
            than two classes, too few images).
        ValueError: an option is out of range.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must lie in (0, 1), got {val_fraction}")
    if image_size is not None and image_size < 1:
        raise ValueError(f"image_size must be positive, got {image_size}")
    if max_items is not None and max_items < 2:
        raise ValueError(f"max_items must be at least 2, got {max_items}")
    if not 0.0 <= max_corrupt_fraction <= 1.0:
        raise ValueError(f"max_corrupt_fraction must lie in [0, 1], got {max_corrupt_fraction}")
    loader = DATASETS.get(kind)
    raw = loader(Path(path).expanduser() if path is not None else None, image_size)
    check_corrupt(raw, max_corrupt_fraction, kind)
    rng = np.random.default_rng(seed)
    split = raw.split if raw.split is not None else np.zeros(len(raw.y), dtype=np.int8)
    if (split == TEST).any():
        pool, test, pool_split = _subset(raw, split != TEST), _subset(raw, split == TEST), split[split != TEST]
    else:  # untouched: an extra copy would change the array's strides, and with them the CPU kernels' rounding
        pool, test, pool_split = RawImages(raw.x, raw.y, raw.class_names), _subset(raw, split == TEST), split
    if max_items is not None and max_items < len(pool.y):
        keep = np.sort(_stratified_take(pool.y, max_items, rng))
        pool, pool_split = _subset(pool, keep), pool_split[keep]
    if max_items is not None and max_items < len(test.y):  # its own generator: test files never move the split
        test = _subset(test, np.sort(_stratified_take(test.y, max_items, np.random.default_rng((seed, TEST)))))
    pool, test = _sized(pool, image_size), _sized(test, image_size)
    if (pool_split == VAL).any():  # the format's own validation split
        train_idx, val_idx = np.flatnonzero(pool_split == TRAIN), np.flatnonzero(pool_split == VAL)
        if len(train_idx) == 0:
            raise DatasetError(f"dataset {kind!r}: every non-test row is marked val; nothing is left to train on")
    else:
        train_idx, val_idx = stratified_split(pool.y, val_fraction, rng)
    check_classes(pool.y[train_idx], pool.y[val_idx], pool.class_names, kind)
    options = {"kind": kind, "image_size": image_size, "val_fraction": val_fraction, "seed": seed, "max_items": max_items}
    data = _assemble(kind, pool, train_idx, val_idx, options, test if len(test.y) else None)
    return replace(data, skipped=raw.skipped) if raw.skipped else data


def load_reference(ref: Mapping[str, Any]) -> ImageDataset:
    """`load_dataset` from a data reference: a mapping of ``kind`` and any of its keyword
    arguments (``path``, ``image_size``, ``val_fraction``, ``seed``, ``max_items``,
    ``max_corrupt_fraction``), as a hybrid table's protocol or a run's `tasks.data_ref.DataRef`
    holds them; other keys are ignored."""
    keys = ("image_size", "val_fraction", "seed", "max_items", "max_corrupt_fraction")
    return load_dataset(ref["kind"], ref.get("path"), **{k: ref[k] for k in keys if ref.get(k) is not None})


def _subset(raw: RawImages, rows: np.ndarray) -> RawImages:
    """The rows (a boolean mask or indices) of ``raw``, without a split array."""
    return RawImages(raw.x[rows], raw.y[rows], raw.class_names)


def _sized(raw: RawImages, image_size: int | None) -> RawImages:
    """Float images in [0, 1], resized when ``image_size`` asks for it."""
    if raw.x.dtype == np.uint8:
        x = raw.x.astype(np.float32)
        x /= 255.0
        raw = RawImages(x, raw.y, raw.class_names)
    if image_size is None or raw.x.shape[-2:] == (image_size, image_size) or len(raw.y) == 0:
        return raw
    return RawImages(_resize(raw.x, image_size), raw.y, raw.class_names)


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


def _assemble(
    kind: str, raw: RawImages, train_idx: np.ndarray, val_idx: np.ndarray, options: Mapping[str, object], test: RawImages | None = None
) -> ImageDataset:
    """Normalises with the training statistics and fingerprints the result (test part excluded)."""
    x = torch.from_numpy(np.ascontiguousarray(raw.x, dtype=np.float32))
    y = torch.from_numpy(raw.y.astype(np.int64))
    train_x, val_x = x[torch.from_numpy(train_idx)], x[torch.from_numpy(val_idx)]
    mean = train_x.mean(dim=(0, 2, 3))
    std = train_x.std(dim=(0, 2, 3)).clamp_min(1e-6)  # a constant channel must not divide by 0
    for part in (train_x, val_x):  # in place: the indexed copies are ours, and full CIFAR-10 is 600 MB
        part.sub_(mean[:, None, None]).div_(std[:, None, None])
    train_y, val_y = y[torch.from_numpy(train_idx)], y[torch.from_numpy(val_idx)]
    test_x = test_y = None
    if test is not None:
        test_x = torch.from_numpy(np.ascontiguousarray(test.x, dtype=np.float32))
        test_x.sub_(mean[:, None, None]).div_(std[:, None, None])
        test_y = torch.from_numpy(test.y.astype(np.int64))
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
        test_x=test_x,
        test_y=test_y,
    )


def require_path(path: Path | None, kind: str, what: str) -> Path:
    """``path`` itself; a missing argument or file raises an error that names the source."""
    if path is None:
        raise ValueError(f"dataset {kind!r} needs a path to {what}")
    if not path.exists():
        raise FileNotFoundError(f"dataset {kind!r}: {what} {path} does not exist")
    return path


_require = require_path  # the older private name


def check_labels(y: np.ndarray, n_images: int, source: Path) -> None:
    """Labels must match the images in count and hold two classes at least; names ``source``."""
    if len(y) != n_images:
        raise DatasetError(f"{source}: {n_images} images but {len(y)} labels")
    if len(np.unique(y)) < 2:
        raise DatasetError(f"{source}: every label is the same; a classifier needs two classes at least")


def check_corrupt(raw: RawImages, max_fraction: float, kind: str) -> None:
    """Stops when more than ``max_fraction`` of the source's image files failed to decode; the
    message names the count and a few of the files."""
    check_corrupt_share(raw.skipped, raw.files_total or len(raw.y) + len(raw.skipped), max_fraction, kind)


def check_corrupt_share(skipped: Sequence[tuple[str, str]], total: int, max_fraction: float, kind: str) -> None:
    """Raises `DatasetError` when more than ``max_fraction`` of ``total`` files are ``skipped``
    (``(file, reason)`` pairs); the message names the count and a few of the files."""
    if len(skipped) > max_fraction * total:
        shown = "; ".join(f"{p} ({why})" for p, why in skipped[:3])
        raise DatasetError(
            f"dataset {kind!r}: {len(skipped)} of {total} image files cannot be decoded, more than "
            f"data.max_corrupt_fraction={max_fraction} allows; e.g. {shown}"
        )


def check_classes(train_y: np.ndarray, val_y: np.ndarray, class_names: Sequence[str], kind: str) -> None:
    """A classifier needs two classes at least on both sides of the split (one class trains to
    a perfect, meaningless validation accuracy)."""
    for part, y in (("training", train_y), ("validation", val_y)):
        present = sorted({class_names[i] if i < len(class_names) else str(i) for i in np.unique(y).tolist()})
        if len(present) < 2:
            raise DatasetError(
                f"dataset {kind!r}: the {part} split holds {len(present)} class(es) {present}; "
                "a classifier needs two classes at least, each with two images or more"
            )


# every source module registers itself on import
from nas_lib.data import cifar100 as _cifar100, dtd as _dtd, gtsrb as _gtsrb, stl10 as _stl10, svhn as _svhn  # noqa: E402,F401
from nas_lib.data import idx as _idx  # noqa: E402,F401
from nas_lib.data import sources as _sources  # noqa: E402,F401
