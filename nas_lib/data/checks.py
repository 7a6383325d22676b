"""Checks of a dataset source before a run starts.

`check_source` answers in a second what loading would otherwise find minutes later, inside a
pipeline step: the path is missing or unreadable, a CSV lists files that are absent, a folder
holds one class, or a class has too few images to appear on both sides of the split.
`check_decodable` decodes every image file once (the price of finding a damaged one before the
run rather than inside it) and applies the corrupt-image share `load_dataset` applies.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from nas_lib.data.datasets import TEST, DatasetError, check_corrupt_share, needs_path
from nas_lib.data.sources import decode_images, list_image_folder, read_csv_list

# Each class needs one image in training and one in validation (the split is stratified).
MIN_PER_CLASS = 2


def check_source(kind: str, path: str | Path | None) -> None:
    """Raises when the source cannot be loaded or cannot train a classifier.

    Args:
        kind: a registered dataset name (``data.kind``).
        path: ``data.path``; ignored for a source that reads none (``digits``, see `reads_no_path`).

    Raises:
        KeyError: unknown ``kind`` (the message lists the known ones).
        FileNotFoundError: the path, or a file a CSV lists, does not exist.
        PermissionError: the path cannot be read.
        DatasetError: fewer than two classes, or a class with fewer than `MIN_PER_CLASS` images
            (image_folder and csv, whose labels are known without decoding).
    """
    if not needs_path(kind):
        return
    if path is None:
        raise DatasetError(f"dataset {kind!r} needs data.path")
    where = Path(path).expanduser()
    check_readable(where)
    if kind == "image_folder":
        _, folder_labels, classes = list_image_folder(where)
        check_class_counts(Counter(classes[i] for i in folder_labels), where, classes)
    elif kind == "csv":
        _, labels, names, split = read_csv_list(where)
        used = labels if split is None else labels[split != TEST]
        check_class_counts(Counter(names[i] for i in np.asarray(used).tolist()), where, names)


def check_readable(path: Path) -> None:
    """The path exists and this process may read it (and list it, for a folder)."""
    if not path.exists():
        raise FileNotFoundError(f"dataset path {path} does not exist")
    mode = os.R_OK | (os.X_OK if path.is_dir() else 0)
    if not os.access(path, mode):
        raise PermissionError(f"dataset path {path} is not readable by this user")


def check_class_counts(counts: Mapping[str, int], source: Path, classes: tuple[str, ...] = ()) -> None:
    """Two classes at least, each with `MIN_PER_CLASS` images or more (empty classes count)."""
    full = {name: counts.get(name, 0) for name in classes} | dict(counts)
    if len([n for n in full.values() if n > 0]) < 2:
        raise DatasetError(f"{source}: {len(full)} class(es) {sorted(full)}; a classifier needs two classes at least")
    few = sorted(name for name, n in full.items() if n < MIN_PER_CLASS)
    if few:
        shown = ", ".join(f"{name!r} ({full[name]})" for name in few[:5])
        raise DatasetError(
            f"{source}: class(es) with fewer than {MIN_PER_CLASS} images (one for training, one for "
            f"validation): {shown}{' ...' if len(few) > 5 else ''}"
        )


def check_decodable(kind: str, path: str | Path | None, max_fraction: float) -> tuple[tuple[str, str], ...]:
    """Decodes the image files of an image_folder or csv source (other sources: nothing to do).

    Returns:
        ``(file, reason)`` for each file that does not decode, when their share is tolerated.

    Raises:
        DatasetError: more than ``max_fraction`` of the files do not decode (the message names some).
    """
    if kind not in ("image_folder", "csv") or path is None:
        return ()
    where = Path(path).expanduser()
    files = list_image_folder(where)[0] if kind == "image_folder" else read_csv_list(where)[0]
    _, _, skipped = decode_images(files, 1)  # 1 x 1: the whole file is decoded, the resize costs nothing
    check_corrupt_share(skipped, len(files), max_fraction, kind)
    return skipped
