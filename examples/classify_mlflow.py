"""Classify image files with a registered EHNAS model through MLflow alone (no EHNAS installed).

The model takes raw uint8 images (N x H x W x C; N x H x W too when it has one channel) and returns
class ids, names and probabilities. Its MLmodel metadata says which (``metadata["input"]``).

    MLFLOW_TRACKING_URI=sqlite:///runs/mlflow.db python examples/classify_mlflow.py models:/ehnas-idx@champion a.png b.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import mlflow
import numpy as np
from PIL import Image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_uri", help="models:/<name>@<alias> or a runs:/ URI")
    parser.add_argument("images", type=Path, nargs="+", help="image files")
    args = parser.parse_args()
    model = mlflow.pyfunc.load_model(args.model_uri)
    _, height, width, channels = model.metadata.metadata["input"]["shape"]
    batch = np.stack([_pixels(p, height, width, channels) for p in args.images])
    for path, row in zip(args.images, model.predict(batch).itertuples()):
        print(f"{path}: {row.class_name} {row.probability:.3f}")


def _pixels(path: Path, height: int, width: int, channels: int) -> np.ndarray:
    with Image.open(path) as img:
        pixels = np.asarray(img.convert("L" if channels == 1 else "RGB").resize((width, height), Image.Resampling.BILINEAR))
    return pixels.reshape(height, width, channels).astype(np.uint8)


if __name__ == "__main__":
    main()
