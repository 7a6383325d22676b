"""GTSRB, the German Traffic Sign Recognition Benchmark, in its published training layout.

``Final_Training/Images/<class, 5 digits>/GT-<class>.csv`` lists each ``.ppm`` image with its
region of interest (``Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId``, ``;``
separated); each image is cropped to its region and resized. A ``GT-final_test.csv`` with a
``ClassId`` column beside the ``Final_Test/Images`` files gives the test part. Format:
Stallkamp et al., "The German Traffic Sign Recognition Benchmark" (IJCNN 2011),
https://benchmark.ini.rub.de/gtsrb_dataset.html.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from nas_lib.data.datasets import DATASETS, DatasetError, RawImages, TEST, TRAIN, check_labels, require_path
from nas_lib.data.sources import DEFAULT_FOLDER_SIZE

COLUMNS = ("Filename", "Roi.X1", "Roi.Y1", "Roi.X2", "Roi.Y2", "ClassId")


def read_annotations(table: Path) -> list[tuple[Path, tuple[int, int, int, int], int]]:
    """``(image file, (x1, y1, x2, y2), class id)`` per row of one GTSRB annotation CSV.

    Raises:
        DatasetError: missing columns or a non-integer field; the message names the CSV and line.
    """
    with table.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh, delimiter=";")
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DatasetError(f"{table}: a GTSRB annotation file needs columns {list(COLUMNS)}; missing {missing}")
        rows = []
        for line, row in enumerate(reader, start=2):
            try:
                box = tuple(int(row[c]) for c in COLUMNS[1:5])
                rows.append((table.parent / row["Filename"], box, int(row["ClassId"])))
            except (TypeError, ValueError) as err:
                raise DatasetError(f"{table} line {line}: {err}") from err
    return rows  # type: ignore[return-value]


def read_cropped(rows: list[tuple[Path, tuple[int, int, int, int], int]], size: int) -> np.ndarray:
    """Each image cropped to its region of interest (inclusive corners), RGB, ``size x size``."""
    from PIL import Image, UnidentifiedImageError

    out = np.empty((len(rows), 3, size, size), dtype=np.float32)
    for i, (file, (x1, y1, x2, y2), _) in enumerate(rows):
        if not file.is_file():
            raise FileNotFoundError(f"dataset 'gtsrb': image {file} listed in its annotation file does not exist")
        try:
            with Image.open(file) as img:
                rgb = img.convert("RGB").crop((x1, y1, x2 + 1, y2 + 1)).resize((size, size), Image.Resampling.BILINEAR)
        except (UnidentifiedImageError, OSError, ValueError) as err:
            raise DatasetError(f"cannot read image {file}: {err}") from err
        out[i] = np.asarray(rgb, dtype=np.float32).transpose(2, 0, 1) / 255.0
    return out


def _training_root(path: Path) -> Path:
    """The folder of per-class sub-folders, given the dataset root or any level down to it."""
    for candidate in (path / "Final_Training" / "Images", path / "Images", path):
        if candidate.is_dir() and any(candidate.glob("*/GT-*.csv")):
            return candidate
    raise DatasetError(f"{path}: no GTSRB training layout (Final_Training/Images/<class>/GT-<class>.csv) found")


def _test_table(path: Path) -> Path | None:
    for candidate in (path / "Final_Test" / "Images" / "GT-final_test.csv", path / "GT-final_test.csv"):
        if candidate.is_file():
            return candidate
    return None


@DATASETS.register("gtsrb")
def _load_gtsrb(path: Path | None, image_size: int | None) -> RawImages:
    """The GTSRB training images (cropped), 43 classes named by id; the labelled test set, if present."""
    root = require_path(path, "gtsrb", "the GTSRB folder")
    rows = [row for table in sorted(_training_root(root).glob("*/GT-*.csv")) for row in read_annotations(table)]
    labels = np.asarray([r[2] for r in rows], dtype=np.int64)
    check_labels(labels, len(rows), _training_root(root))
    split = np.full(len(rows), TRAIN, dtype=np.int8)
    test_table = _test_table(root)
    if test_table is not None:
        test_rows = read_annotations(test_table)
        if test_table.parent == root:  # the ground truth sits at the root, the images in Final_Test/Images
            test_rows = [(root / "Final_Test" / "Images" / f.name, box, c) for f, box, c in test_rows]
        rows += test_rows
        split = np.concatenate([split, np.full(len(test_rows), TEST, dtype=np.int8)])
    labels = np.asarray([r[2] for r in rows], dtype=np.int64)
    names = tuple(str(i) for i in range(int(labels.max()) + 1))
    return RawImages(read_cropped(rows, image_size or DEFAULT_FOLDER_SIZE), labels, names, split)
