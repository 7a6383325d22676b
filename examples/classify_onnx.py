"""Classify one image with an ONNX export of an EHNAS model (needs onnxruntime, numpy, Pillow).

    python examples/classify_onnx.py export/model.onnx digit.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import onnxruntime as ort

from _image import describe, image_batch, load_labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="model.onnx written by `ehnas export --format onnx`")
    parser.add_argument("image", type=Path, help="an image file (any size; it is resized)")
    args = parser.parse_args()
    labels = load_labels(args.model)
    session = ort.InferenceSession(str(args.model), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {session.get_inputs()[0].name: image_batch(args.image, labels)})
    print(describe(logits, labels))


if __name__ == "__main__":
    main()
