"""How one training run executes on its device: precision, memory layout, compilation, sync cadence.

The CUDA defaults follow PyTorch's performance tuning guide: bf16 autocast (no loss scaling is
needed with bf16's fp32 exponent range), channels-last images and conv weights, cuDNN autotuning,
the fused AdamW kernel, and no host synchronisation inside the step. On CPU every default keeps
the plain fp32 eager path, so results there do not change with this module.

Nothing here sets process-wide state outside a ``with`` block that restores it, so several runs
can share one GPU from separate worker processes and one process can alternate devices.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import cast

import torch
from torch import Tensor, nn

from nas_lib.train.config import TrainConfig

CUDA_CHECK_EVERY = 25  # the host waits once per 25 steps, so the GPU runs ahead; a NaN is still caught within the epoch


@dataclass(frozen=True)
class Execution:
    """The concrete settings of one run on one device (see `resolve_execution`).

    Attributes:
        device: ``"cpu"`` or ``"cuda:N"``.
        autocast_dtype: dtype of the autocast region, or None for plain fp32.
        channels_last: images and 4-D weights in NHWC layout.
        compile_backend: `torch.compile` backend, or None for eager.
        check_every: steps between non-finite loss checks.
        fused_optimizer: use AdamW's fused CUDA kernel.
    """

    device: str
    autocast_dtype: torch.dtype | None
    channels_last: bool
    compile_backend: str | None
    check_every: int
    fused_optimizer: bool

    @property
    def is_cuda(self) -> bool:
        return self.device.startswith("cuda")

    def autocast(self) -> contextlib.AbstractContextManager:
        """The mixed-precision region of a forward pass (a no-op for fp32)."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=self.autocast_dtype)

    @contextlib.contextmanager
    def backend_flags(self) -> Iterator[None]:
        """cuDNN autotuning for the run's duration on CUDA (unless the caller asked for
        deterministic cuDNN), restored afterwards; no other flag is touched."""
        before = torch.backends.cudnn.benchmark
        torch.backends.cudnn.benchmark = before or (self.is_cuda and not torch.backends.cudnn.deterministic)
        try:
            yield
        finally:
            torch.backends.cudnn.benchmark = before

    def prepare_model(self, model: nn.Module) -> nn.Module:
        """Moves ``model`` to the device and layout; returns what to call (compiled or ``model``).

        The returned module shares its parameters with ``model``; read weights from ``model``
        (a compiled module prefixes its state-dict keys).
        """
        model.to(self.device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stub omits memory_format
        if self.compile_backend is None:
            return model
        return cast(nn.Module, torch.compile(model, backend=self.compile_backend))

    def images(self, x: Tensor) -> Tensor:
        """A batch (or a whole split) of NCHW images in the run's device and layout."""
        x = x.to(self.device)
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def optimizer(self, model: nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
        """AdamW; the fused kernel on CUDA (one launch for all parameters, no host round trip)."""
        return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, fused=self.fused_optimizer or None)


def resolve_execution(cfg: TrainConfig, device: str) -> Execution:
    """The settings `train_and_evaluate` uses for ``cfg`` on a resolved ``device``.

    Args:
        cfg: the training configuration (its ``precision``, ``channels_last``, ``compile`` and
            ``check_every`` fields; ``"auto"``/None pick the device's default).
        device: ``"cpu"`` or ``"cuda:N"`` (as returned by `resolve_device`).

    Raises:
        ValueError: bf16 was asked for on a CPU, or ``compile`` names no torch.compile backend.
    """
    is_cuda = device.startswith("cuda")
    return Execution(
        device=device,
        autocast_dtype=_autocast_dtype(cfg.precision, is_cuda, device),
        channels_last=is_cuda if cfg.channels_last is None else cfg.channels_last,
        compile_backend=_compile_backend(cfg.compile),
        check_every=cfg.check_every or (CUDA_CHECK_EVERY if is_cuda else 1),
        fused_optimizer=is_cuda,
    )


def _autocast_dtype(precision: str, is_cuda: bool, device: str) -> torch.dtype | None:
    if precision == "fp32":
        return None
    if not is_cuda:
        if precision == "bf16":
            raise ValueError(f"precision 'bf16' is CUDA only (device {device!r}); use 'auto' or 'fp32' on CPU")
        return None
    if precision == "auto" and torch.cuda.get_device_capability(torch.device(device))[0] < 8:  # pre-Ampere: bf16 is emulated
        return None
    return torch.bfloat16


def _compile_backend(name: str | None) -> str | None:
    if name is None:
        return None
    known = torch.compiler.list_backends(exclude_tags=())
    if name not in known:
        raise ValueError(f"unknown torch.compile backend {name!r}; known: {', '.join(sorted(known))}")
    return name
