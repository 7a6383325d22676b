"""SVHN, cropped digits, in its MATLAB files (``train_32x32.mat``, ``test_32x32.mat``).

Each file holds ``X`` (32 x 32 x 3 x N uint8) and ``y`` (N x 1, labels 1..10 where 10 is the
digit 0), read with `scipy.io.loadmat`. Format: Netzer et al., "Reading Digits in Natural Images
with Unsupervised Feature Learning" (NIPS workshop 2011), http://ufldl.stanford.edu/housenumbers/.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nas_lib.data.datasets import DATASETS, DatasetError, RawImages, TEST, TRAIN, check_labels, require_path


def read_svhn_mat(file: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (N x 3 x 32 x 32 uint8) and labels 0..9 of one SVHN ``.mat`` file.

    Raises:
        DatasetError: not a readable MATLAB file, ``X``/``y`` missing or mis-shaped, counts
            differ, or a label outside 1..10; the message names the file.
    """
    from scipy.io import loadmat

    try:
        mat = loadmat(str(file))
    except Exception as err:  # scipy raises ValueError, TypeError or OSError for a damaged file
        raise DatasetError(f"{file}: not a readable MATLAB file ({type(err).__name__}: {err})") from err
    if "X" not in mat or "y" not in mat:
        raise DatasetError(f"{file}: an SVHN file needs arrays 'X' and 'y' (found {sorted(k for k in mat if not k.startswith('__'))})")
    x, y = np.asarray(mat["X"]), np.asarray(mat["y"]).reshape(-1)
    if x.ndim != 4 or x.shape[2] != 3:
        raise DatasetError(f"{file}: 'X' must be H x W x 3 x N, got shape {x.shape}")
    if x.shape[3] != len(y):
        raise DatasetError(f"{file}: {x.shape[3]} images but {len(y)} labels")
    if len(y) and (y.min() < 1 or y.max() > 10):
        raise DatasetError(f"{file}: labels must lie in 1..10 (10 is the digit 0), found {int(y.min())}..{int(y.max())}")
    return np.transpose(x, (3, 2, 0, 1)).astype(np.uint8), (y.astype(np.int64) % 10)


@DATASETS.register("svhn_mat")
def _load_svhn(path: Path | None, image_size: int | None) -> RawImages:
    """A ``train_32x32.mat`` file, or a folder holding it (and ``test_32x32.mat`` as the test part)."""
    path = require_path(path, "svhn_mat", "the SVHN .mat file or folder")
    train = path / "train_32x32.mat" if path.is_dir() else path
    if not train.is_file():
        raise FileNotFoundError(f"dataset 'svhn_mat': no train_32x32.mat in {path}")
    x, y = read_svhn_mat(train)
    check_labels(y, len(x), train)
    split = np.full(len(y), TRAIN, dtype=np.int8)
    test = train.parent / "test_32x32.mat"
    if path.is_dir() and test.is_file():
        tx, ty = read_svhn_mat(test)
        x, y = np.concatenate([x, tx]), np.concatenate([y, ty])
        split = np.concatenate([split, np.full(len(ty), TEST, dtype=np.int8)])
    return RawImages(x, y, tuple(str(d) for d in range(10)), split)  # bytes: converted after subsampling
