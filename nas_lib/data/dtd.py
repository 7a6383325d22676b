"""DTD, the Describable Textures Dataset, in its published layout.

``dtd/images/<class>/<image>.jpg`` with the split lists ``dtd/labels/{train,val,test}1.txt``
(one ``<class>/<image>.jpg`` per line; fold 1 of the ten published). The lists' train and
val images become the training and validation splits, the test list the test part; without a
``labels`` folder every image is training data. Format: Cimpoi et al., "Describing Textures in
the Wild" (CVPR 2014), https://www.robots.ox.ac.uk/~vgg/data/dtd/.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nas_lib.data.datasets import DATASETS, DatasetError, RawImages, SPLIT_NAMES, TRAIN, check_labels, require_path
from nas_lib.data.sources import DEFAULT_FOLDER_SIZE, IMAGE_SUFFIXES, _read_images

FOLD = 1  # the first of DTD's ten published train/val/test folds


def read_fold(labels: Path, images: Path, classes: list[str]) -> tuple[list[Path], list[int], list[int]]:
    """Files, labels and split codes listed by ``train1/val1/test1.txt``; names a bad line."""
    files, ys, splits = [], [], []
    for split in ("train", "val", "test"):
        listing = labels / f"{split}{FOLD}.txt"
        if not listing.is_file():
            raise FileNotFoundError(f"dataset 'dtd': split list {listing} does not exist")
        for line_no, line in enumerate(listing.read_text(encoding="utf-8").splitlines(), start=1):
            entry = line.strip()
            if not entry:
                continue
            name = entry.split("/")[0]
            if name not in classes:
                raise DatasetError(f"{listing} line {line_no}: class {name!r} has no folder in {images}")
            files.append(images / entry)
            ys.append(classes.index(name))
            splits.append(SPLIT_NAMES[split])
    return files, ys, splits


@DATASETS.register("dtd")
def _load_dtd(path: Path | None, image_size: int | None) -> RawImages:
    """The DTD folder (holding ``images/`` and ``labels/``), 47 texture classes by folder name."""
    root = require_path(path, "dtd", "the dtd folder")
    images = root / "images"
    if not images.is_dir():
        raise DatasetError(f"{root}: a DTD folder holds images/<class>/*.jpg (and labels/*.txt); no images/ found")
    classes = sorted(d.name for d in images.iterdir() if d.is_dir() and not d.name.startswith("."))
    if (root / "labels").is_dir():
        files, ys, splits = read_fold(root / "labels", images, classes)
    else:
        files = [f for c in classes for f in sorted((images / c).iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
        ys, splits = [classes.index(f.parent.name) for f in files], [TRAIN] * len(files)
    labels = np.asarray(ys, dtype=np.int64)
    check_labels(labels, len(files), images)
    for file in files:
        if not file.is_file():
            raise FileNotFoundError(f"dataset 'dtd': image {file} listed in labels/ does not exist")
    x = _read_images(files, image_size or DEFAULT_FOLDER_SIZE)
    return RawImages(x, labels, tuple(classes), np.asarray(splits, dtype=np.int8))
