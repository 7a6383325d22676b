"""Image arrays from .npz files and seeded fixed batches (what data-dependent proxies read)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

# CIFAR-10 training-set channel statistics (RGB, on [0, 1] pixels), the usual normalisation.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


def load_npz_images(path: str | Path, mean: tuple[float, ...] = CIFAR10_MEAN,
                    std: tuple[float, ...] = CIFAR10_STD) -> tuple[torch.Tensor, torch.Tensor]:
    """Loads ``x`` (uint8 N,H,W,C or N,C,H,W) and ``y`` from an .npz file.

    Args:
        path: the .npz file (keys ``x`` and ``y``).
        mean, std: per-channel statistics on [0, 1] pixels (CIFAR-10's by default).

    Returns:
        float32 images (N, C, H, W) normalised per channel, and int64 labels (N,).
    """
    with np.load(Path(path)) as data:
        x, y = np.asarray(data["x"]), np.asarray(data["y"])
    if x.ndim != 4:
        raise ValueError(f"{path}: expected 4-d images, got shape {x.shape}")
    if x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
        x = x.transpose(0, 3, 1, 2)  # NHWC -> NCHW
    images = torch.from_numpy(np.ascontiguousarray(x)).to(torch.float32)
    if x.dtype == np.uint8:
        images = images / 255.0
    channels = images.shape[1]
    m = torch.tensor(mean[:channels] if len(mean) >= channels else [0.5] * channels).view(1, -1, 1, 1)
    s = torch.tensor(std[:channels] if len(std) >= channels else [0.25] * channels).view(1, -1, 1, 1)
    return (images - m) / s, torch.from_numpy(y.astype(np.int64).reshape(-1))


def fixed_batch(x: torch.Tensor, y: torch.Tensor, batch_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded random batch of `batch_size` distinct examples (the same for the same seed).

    Raises:
        ValueError: if `batch_size` exceeds the number of examples.
    """
    if not 0 < batch_size <= len(x):
        raise ValueError(f"batch_size {batch_size} must be in 1..{len(x)}")
    idx = np.random.default_rng(seed).choice(len(x), size=batch_size, replace=False)
    index = torch.from_numpy(np.sort(idx))
    return x[index].contiguous(), y[index].contiguous()


def training_batch(data: object, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The pipeline's proxy batch: `n` seeded training images of an `ImageDataset` (every proxy
    scores every network on it; a benchmark of the same data and seed gets the same batch)."""
    train_x, train_y = data.train_x, data.train_y  # type: ignore[attr-defined]
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(train_y), generator=gen)[: min(n, len(train_y))]
    return train_x[idx], train_y[idx]
