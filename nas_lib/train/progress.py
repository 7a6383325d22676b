"""Progress inside a training epoch: batches done, images per second and the time left.

An epoch of a large dataset can run for many minutes; `BatchReporter` turns the loop's batch
count into a `BatchProgress` at most every ``every_s`` seconds and always after an epoch's last
batch, and hands it to a callback. It reads only host-side counters and the clock, so it adds no
device synchronisation to the CUDA fast path.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class BatchProgress:
    """Where an epoch stands.

    Attributes:
        epoch: the current epoch (1-based) of ``epochs`` planned.
        batch: batches trained so far in this epoch, of ``batches`` planned (at an epoch's end
            ``batch == batches``, even when a last single-image batch was skipped).
        images: images trained so far in this epoch.
        seconds: wall time since the epoch began.
        final: whether this is the epoch's last report (its training batches are all done).
    """

    epoch: int
    epochs: int
    batch: int
    batches: int
    images: int
    seconds: float
    final: bool = False

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0

    @property
    def eta_s(self) -> float:
        """Seconds until this epoch's training batches are done, at the rate so far."""
        return (self.batches - self.batch) * self.seconds / self.batch if self.batch else 0.0

    def line(self) -> str:
        """``epoch 1/5, batch 300/750, 412 images/s, ETA 1m05s``."""
        return (
            f"epoch {self.epoch}/{self.epochs}, batch {self.batch}/{self.batches}, {self.images_per_s:.0f} images/s, ETA {format_seconds(self.eta_s)}"
        )


def format_seconds(seconds: float) -> str:
    """``45s``, ``3m07s``, ``1h02m``."""
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


OnBatches = Callable[[BatchProgress], None]


class BatchReporter:
    """Calls ``callback`` during an epoch, at most every ``every_s`` seconds (0: after every
    batch) and once after the epoch's last batch."""

    def __init__(self, callback: OnBatches, every_s: float, epochs: int, batches: int) -> None:
        if every_s < 0:
            raise ValueError(f"every_s must be >= 0, got {every_s}")
        self.callback, self.every_s, self.epochs, self.batches = callback, every_s, epochs, batches
        self.epoch, self.started, self.last_report = 0, 0.0, 0.0

    def start_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.started = self.last_report = time.perf_counter()

    def batch_done(self, batch: int, images: int) -> None:
        now = time.perf_counter()
        if now - self.last_report >= self.every_s and batch < self.batches:
            self._report(batch, self.batches, images, now, final=False)

    def epoch_done(self, batch: int, images: int) -> None:
        self._report(batch, batch, images, time.perf_counter(), final=True)

    def _report(self, batch: int, batches: int, images: int, now: float, final: bool) -> None:
        self.last_report = now
        self.callback(BatchProgress(self.epoch, self.epochs, batch, batches, images, now - self.started, final))
