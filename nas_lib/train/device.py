"""Device selection with errors that say what is missing."""

from __future__ import annotations

import re

import torch


def check_device_name(device: str) -> str:
    """``device`` when it is a device request (``auto``, ``cpu``, ``cuda``, ``cuda:N``), without
    asking whether this machine has it; ValueError naming the choices otherwise."""
    if not re.fullmatch(r"auto|cpu|cuda(?::\d+)?", device.strip().lower()):
        raise ValueError(f"unknown device {device!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'")
    return device.strip().lower()


def resolve_device(device: str) -> str:
    """Turns a device request into a concrete torch device string.

    Args:
        device: ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"`` (GPU 0) or
            ``"cuda:N"``.

    Returns:
        ``"cpu"`` or ``"cuda:N"``.

    Raises:
        ValueError: the string is none of the above, CUDA was asked for but is unavailable, or
            GPU N does not exist.
    """
    text = check_device_name(device)
    if text == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    if text == "cpu":
        return "cpu"
    if not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available (torch {torch.__version__}); use 'cpu' or 'auto'")
    index = int(text.partition(":")[2] or 0)
    if index >= torch.cuda.device_count():
        raise ValueError(f"device {device!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist")
    return f"cuda:{index}"
