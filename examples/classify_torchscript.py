"""Classify one image with a TorchScript export of an EHNAS model (needs torch, numpy, Pillow).

    python examples/classify_torchscript.py export/model.torchscript.pt digit.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from _image import describe, image_batch, load_labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="model.torchscript.pt written by `ehnas export --format torchscript`")
    parser.add_argument("image", type=Path, help="an image file (any size; it is resized)")
    args = parser.parse_args()
    labels = load_labels(args.model)
    model = torch.jit.load(str(args.model), map_location="cpu")
    with torch.no_grad():
        logits = model(torch.from_numpy(image_batch(args.image, labels))).numpy()
    print(describe(logits, labels))


if __name__ == "__main__":
    main()
