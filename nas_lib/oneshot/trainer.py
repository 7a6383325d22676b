"""Training a one-shot supernet, with per-epoch checkpoints that make it resumable and cached.

Every method (DARTS, DrNAS, SPOS, ENAS) is a `OneShotMethod` registered in `METHODS`; this module owns
what they share: the supernet and its weight optimiser (SGD, or AdamW), the epoch loop over paired train/val
batches, and the checkpoint folder. The folder is keyed by the space, the data fingerprint and
the whole `OneShotConfig`; after each epoch it holds ``last.pt`` (model, optimisers, scheduler,
architecture parameters, torch RNG state, epoch). A killed run resumes from its last epoch and,
on the same machine and thread count, ends exactly where an uninterrupted run ends; a finished
run is a cache hit that trains nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from nas_lib.artifacts import atomic_write_bytes, atomic_write_json
from nas_lib.data.datasets import ImageDataset
from nas_lib.oneshot.supernet import Supernet
from nas_lib.registry import Registry
from nas_lib.space.base import SearchSpace

CHECKPOINT_VERSION = 1  # bump when the checkpoint layout or the training semantics change


@dataclass(frozen=True)
class OneShotConfig:
    """What a supernet training depends on (all of it is part of the checkpoint key)."""

    method: str = "darts"  # a name in METHODS
    channels: int = 8  # NB201 supernet only (NB201 uses 16; 8 keeps a CPU epoch short)
    cells_per_stage: int = 1  # NB201 supernet only (NB201 uses 5)
    epochs: int = 10
    batch_size: int = 64
    optimizer: str = "sgd"  # weights: "sgd" (with momentum; DARTS') or "adamw" (the hybrid tables' training)
    lr: float = 0.025  # weights, cosine from lr to lr_min (DARTS'); hybrid default: AdamW at 1e-3 = lr_min, constant
    lr_min: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 3e-4
    grad_clip: float = 5.0
    arch_lr: float = 3e-4  # architecture: Adam(betas 0.5, 0.999), DARTS' settings
    arch_weight_decay: float = 1e-3
    drnas_kl: float = 1e-3  # DrNAS: weight of KL(Dir(beta) || Dir(1)) on the concentration
    sandwich: bool = True  # SPOS: also train the largest and the smallest cell every step
    sampling: str = "decision"  # hybrid SPOS paths: every type/connection uniform per "decision", or a uniform "architecture" of a uniform depth
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("channels", "cells_per_stage", "epochs", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.optimizer not in ("sgd", "adamw"):
            raise ValueError(f"optimizer must be 'sgd' or 'adamw', got {self.optimizer!r}")
        if self.sampling not in ("architecture", "decision"):
            raise ValueError(f"sampling must be 'architecture' or 'decision', got {self.sampling!r}")


class OneShotMethod(ABC):
    """A supernet plus how one training step updates it and how the answer is read off.

    Args:
        space: the space whose supernet `build_model` makes (NB201: its per-edge operations are
            the candidates; hybrid: `nas_lib.oneshot.hybrid`).
        data: the train half trains the weights; the val half trains the architecture
            parameters (bilevel methods) and scores subnets.
        config: the options.
    """

    name: ClassVar[str] = "base"

    def __init__(self, space: Any, data: ImageDataset, config: OneShotConfig) -> None:
        self.space, self.data, self.config = space, data, config
        torch.manual_seed(config.seed)
        self.model: Any = self.build_model()  # the NB201 `Supernet` or the `HybridSupernet`
        params = self.model.parameters()
        if config.optimizer == "adamw":
            self.optimizer: torch.optim.Optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
        else:
            self.optimizer = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=config.epochs, eta_min=config.lr_min)
        self.criterion = nn.CrossEntropyLoss()

    # -- what a method defines ------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        """The supernet (the NB201 one; the hybrid space's methods build theirs)."""
        c = self.config
        return Supernet(self.space.edge_ops, c.channels, c.cells_per_stage, self.data.input_shape[0], self.data.num_classes)

    @abstractmethod
    def step(self, x_train: Tensor, y_train: Tensor, x_val: Tensor, y_val: Tensor) -> float:
        """One training step on a train batch (and a val batch for bilevel methods); the loss."""

    @abstractmethod
    def answer(self) -> Any:
        """The method's chosen cell."""

    def arch_state(self) -> dict[str, Any]:
        """Architecture parameters (ENAS: the controller and its baseline) and their optimiser (none for SPOS)."""
        return {}

    def load_arch_state(self, state: dict[str, Any]) -> None:  # noqa: B027  # optional hook
        """Restores `arch_state`."""

    # -- shared ---------------------------------------------------------------------------------
    def train_epoch(self) -> float:
        """One pass over the train half, each batch paired with a val batch; the mean loss."""
        self.model.train()
        losses = [self.step(xt, yt, xv, yv) for xt, yt, xv, yv in self._batches()]
        self.scheduler.step()
        return sum(losses) / max(len(losses), 1)

    def _batches(self) -> Iterator[tuple[Tensor, Tensor, Tensor, Tensor]]:
        d, b = self.data, self.config.batch_size
        train, val = torch.randperm(len(d.train_y)), torch.randperm(len(d.val_y))
        for start in range(0, len(train) - b + 1 if len(train) >= b else 1, b):
            t = train[start : start + b]
            v = val[torch.arange(start, start + len(t)) % len(val)]
            yield d.train_x[t], d.train_y[t], d.val_x[v], d.val_y[v]

    def weight_update(self, loss: Tensor) -> None:
        """Backward, clip and step the supernet weights."""
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.optimizer.step()

    def state_dict(self, epoch: int) -> dict[str, Any]:
        return {
            "version": CHECKPOINT_VERSION,
            "epoch": epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "arch": self.arch_state(),
            "torch_rng": torch.get_rng_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> int:
        """Restores a checkpoint; returns its epoch (the number of epochs done)."""
        if state.get("version") != CHECKPOINT_VERSION:
            raise ValueError(f"checkpoint version {state.get('version')} != {CHECKPOINT_VERSION}")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.load_arch_state(state["arch"])
        torch.set_rng_state(state["torch_rng"])
        return int(state["epoch"])


METHODS: Registry[type[OneShotMethod]] = Registry("one-shot method")


@dataclass(frozen=True)
class TrainOutcome:
    """What `train_supernet` did: the trained method, its answer and the checkpoint story."""

    method: OneShotMethod
    epochs_done: int
    resumed_from: int  # epochs found in the checkpoint (0: trained from scratch)
    trained_epochs: int  # epochs trained by this call (0 on a cache hit)
    losses: tuple[float, ...]
    seconds: float
    folder: Path | None

    @property
    def cache_hit(self) -> bool:
        return self.resumed_from >= self.method.config.epochs

    def answer(self) -> str:
        """The method's architecture as the space's string."""
        return self.method.space.to_string(self.method.answer())


def checkpoint_folder(root: str | Path, space: SearchSpace, data: ImageDataset, config: OneShotConfig) -> Path:
    """``root/<method>-<hash of space, data fingerprint, config>``."""
    key = {"version": CHECKPOINT_VERSION, "space": space.state_key(), "data": data.fingerprint, "config": dataclasses.asdict(config)}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    return Path(root) / f"{config.method}-{digest}"


def train_supernet(
    space: SearchSpace, data: ImageDataset, config: OneShotConfig, cache_dir: str | Path | None = None, stop_after: int | None = None
) -> TrainOutcome:
    """Trains (or resumes, or loads) the supernet of `config.method` for `config.epochs` epochs.

    Args:
        space: the space to search (NB201, or hybrid for the ``hybrid_*`` methods).
        data: the train half trains weights, the val half the architecture.
        config: the method and its options.
        cache_dir: where checkpoint folders live; None trains without checkpoints.
        stop_after: stop once this many epochs are done (as if the process were killed then).

    Returns:
        The `TrainOutcome` (its ``answer()`` is the method's architecture as the space's string).
    """
    start = time.perf_counter()
    method = METHODS.get(config.method)(space, data, config)
    folder = checkpoint_folder(cache_dir, space, data, config) if cache_dir is not None else None
    done = 0
    if folder is not None and (folder / "last.pt").is_file():
        done = method.load_state_dict(torch.load(folder / "last.pt", weights_only=False))
    resumed_from, losses = done, []
    last = config.epochs if stop_after is None else min(config.epochs, stop_after)
    while done < last:
        losses.append(method.train_epoch())
        done += 1
        if folder is not None:
            _save(folder, method, done, losses[-1])
    return TrainOutcome(method, done, resumed_from, done - resumed_from, tuple(losses), time.perf_counter() - start, folder)


def _save(folder: Path, method: OneShotMethod, epoch: int, loss: float) -> None:
    buffer = io.BytesIO()
    torch.save(method.state_dict(epoch), buffer)
    atomic_write_bytes(folder / "last.pt", buffer.getvalue())
    atomic_write_json(folder / "progress.json", {"config": dataclasses.asdict(method.config), "epoch": epoch, "loss": loss})
