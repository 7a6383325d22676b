"""Shared by the example scripts: read ``labels.json`` and turn an image file into the uint8 batch
every exported EHNAS model takes (1 x H x W x C). Needs only numpy and Pillow."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image


def load_labels(model_file: Path) -> dict:
    """``labels.json`` beside the model file (written by ``ehnas export``)."""
    return json.loads((model_file.parent / "labels.json").read_text(encoding="utf-8"))


def image_batch(image_file: Path, labels: dict) -> np.ndarray:
    """The image converted to the model's colour mode and size, as a 1 x H x W x C uint8 array."""
    spec = labels["input"]
    with Image.open(image_file) as img:
        pixels = np.asarray(img.convert(spec["color"]).resize((spec["width"], spec["height"]), Image.Resampling.BILINEAR))
    return np.ascontiguousarray(pixels.reshape(1, spec["height"], spec["width"], spec["channels"]), dtype=np.uint8)


def describe(logits: np.ndarray, labels: dict) -> str:
    """``<class name> <probability>`` of the top class."""
    z = logits[0] - logits[0].max()
    probs = np.exp(z) / np.exp(z).sum()
    best = int(probs.argmax())
    return f"{labels['class_names'][best]} {probs[best]:.3f}"
